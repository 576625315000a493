//! Uploads over a real socket: multipart bodies built on the fly (a large one is
//! written piece by piece, never held whole), and the answers.

use std::io::Write;
use std::net::TcpStream;

use super::{read_response, HttpResponse, Server};

pub const BOUNDARY: &str = "chatbox-test-boundary-7d1e";

/// The multipart text before and after a file's content.
pub fn framing(filename: &str, content_type: &str) -> (Vec<u8>, Vec<u8>) {
    let before = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
         Content-Type: {content_type}\r\n\r\n"
    );
    let after = format!("\r\n--{BOUNDARY}--\r\n");
    (before.into_bytes(), after.into_bytes())
}

pub fn body(filename: &str, content_type: &str, content: &[u8]) -> Vec<u8> {
    let (mut body, after) = framing(filename, content_type);
    body.extend_from_slice(content);
    body.extend_from_slice(&after);
    body
}

/// Sends the head of `POST P/upload` with `auth` header lines and a declared length.
pub fn start(server: &Server, auth: &str, length: usize) -> TcpStream {
    let mut stream = server.connect();
    write!(
        stream,
        "POST /chatbox/upload HTTP/1.1\r\nHost: t\r\n{auth}\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {length}\r\n\r\n"
    )
    .expect("send head");
    stream
}

/// One upload of `content`, answered.
pub fn upload(server: &Server, auth: &str, filename: &str, content: &[u8]) -> HttpResponse {
    let body = body(filename, "application/octet-stream", content);
    let mut stream = start(server, auth, body.len());
    // The server may refuse early and close: what matters is its answer.
    let _ = stream.write_all(&body);
    read_response(&mut stream).expect("an answer")
}

/// The path and query of a `file_url` (the server answers with a path, no host).
pub fn fetch(server: &Server, file_url: &str, headers: &str) -> HttpResponse {
    server.request("GET", file_url, headers, "")
}

/// The server's peak resident memory so far (`VmHWM`), in bytes.
pub fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .expect("VmHWM");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("a number");
    kib * 1024
}

/// An upload that must succeed: its JSON answer (the body is shown when it did not).
pub fn uploaded(server: &Server, auth: &str, filename: &str, content: &[u8]) -> serde_json::Value {
    let answer = upload(server, auth, filename, content);
    let body = String::from_utf8_lossy(&answer.body);
    assert_eq!(answer.status, 200, "{body}");
    answer.json()
}
