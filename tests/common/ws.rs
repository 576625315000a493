//! A byte-level WebSocket client for tests: the handshake by hand and raw frames, so
//! tests can send what a well-behaved library never would (oversize, bad UTF-8, unmasked)
//! and see exactly which frames and close codes come back.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::{read_response, HttpResponse, Server};

pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// Sends an upgrade request for `target` (path and query) with extra header lines.
/// On 101 the stream is ready for frames; otherwise the error response is returned.
pub fn upgrade(
    server: &Server,
    target: &str,
    extra_headers: &str,
) -> Result<TcpStream, HttpResponse> {
    let mut stream = server.connect();
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n{extra_headers}\r\n"
    )
    .expect("send upgrade");
    let response = read_response(&mut stream).expect("an upgrade response");
    if response.status == 101 {
        assert_eq!(
            response.header("sec-websocket-accept"),
            Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        );
        Ok(stream)
    } else {
        Err(response)
    }
}

pub fn token(user: &str, ttl_secs: u64) -> String {
    chatbox::auth::mint(
        super::JWT_SECRET.as_bytes(),
        user,
        None,
        &[],
        chatbox::time::unix_now(),
        Some(ttl_secs),
    )
    .expect("mint")
}

/// Opens an authenticated chat socket at `P/ws`.
pub fn chat_socket(server: &Server, user: &str) -> Result<TcpStream, HttpResponse> {
    upgrade(
        server,
        "/chatbox/ws",
        &format!("Authorization: Bearer {}\r\n", token(user, 3600)),
    )
}

pub fn echo_socket(server: &Server) -> TcpStream {
    upgrade(server, "/chatbox/echo", "").expect("echo upgrade")
}

pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

/// A client frame; `masked` false breaks the protocol on purpose.
pub fn frame(opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    let mut out = vec![0x80 | opcode];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= u16::MAX as usize => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

pub fn send(stream: &mut TcpStream, opcode: u8, payload: &[u8]) {
    stream
        .write_all(&frame(opcode, payload, true))
        .expect("send frame");
}

pub fn send_text(stream: &mut TcpStream, text: &str) {
    send(stream, TEXT, text.as_bytes());
}

/// Reads one server frame: (opcode, payload). `None` on EOF/reset/timeout.
pub fn read_frame(stream: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).ok()?;
    assert_eq!(head[1] & 0x80, 0, "server frames are never masked");
    let len = match head[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            stream.read_exact(&mut b).ok()?;
            u16::from_be_bytes(b) as usize
        }
        127 => {
            let mut b = [0u8; 8];
            stream.read_exact(&mut b).ok()?;
            u64::from_be_bytes(b) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).ok()?;
    Some((head[0] & 0x0f, payload))
}

/// The next data frame as JSON, skipping pings.
pub fn read_json(stream: &mut TcpStream) -> serde_json::Value {
    loop {
        let (opcode, payload) = read_frame(stream).expect("a frame");
        match opcode {
            PING => continue,
            TEXT => return serde_json::from_slice(&payload).expect("JSON text frame"),
            other => panic!(
                "unexpected opcode {other}: {:?}",
                String::from_utf8_lossy(&payload)
            ),
        }
    }
}

/// Reads frames until a close frame and returns its code and reason.
pub fn read_close(stream: &mut TcpStream, limit: Duration) -> Option<(u16, String)> {
    stream.set_read_timeout(Some(limit)).expect("timeout");
    loop {
        let (opcode, payload) = read_frame(stream)?;
        if opcode == CLOSE {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            return Some((code, String::from_utf8_lossy(&payload[2..]).into_owned()));
        }
    }
}
