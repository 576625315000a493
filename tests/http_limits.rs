//! Malformed or oversized input gets a clear 4xx and the connection is closed.
mod common;

use std::io::Write;
use std::time::Duration;

use common::{closed_within, read_response, Server};

fn send_raw(server: &Server, raw: &[u8]) -> (common::HttpResponse, bool) {
    let mut stream = server.connect();
    stream.write_all(raw).expect("send");
    let response = read_response(&mut stream).expect("a response");
    let closed = closed_within(&mut stream, Duration::from_secs(5));
    (response, closed)
}

#[test]
fn oversize_head_is_431_and_closes() {
    let server = Server::start(&[]);
    let raw = format!(
        "GET /chatbox/healthz HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "a".repeat(9 * 1024)
    );
    let (response, closed) = send_raw(&server, raw.as_bytes());
    assert_eq!(response.status, 431);
    assert_eq!(response.json()["code"], "HEADERS_TOO_LARGE");
    assert_eq!(response.header("connection"), Some("close"));
    assert!(closed);
}

#[test]
fn too_many_headers_is_431() {
    let server = Server::start(&[]);
    let headers: String = (0..65).map(|i| format!("X-H{i}: v\r\n")).collect();
    let raw = format!("GET /chatbox/healthz HTTP/1.1\r\n{headers}\r\n");
    assert_eq!(send_raw(&server, raw.as_bytes()).0.status, 431);
}

#[test]
fn malformed_request_line_is_400() {
    let server = Server::start(&[]);
    let (response, closed) = send_raw(&server, b"HELLO THERE\r\n\r\n");
    assert_eq!(response.status, 400);
    assert_eq!(response.json()["code"], "BAD_REQUEST");
    assert!(closed);
}

#[test]
fn bad_content_length_is_400() {
    let server = Server::start(&[]);
    let raw = b"POST /chatbox/healthz HTTP/1.1\r\nContent-Length: 12abc\r\n\r\n";
    assert_eq!(send_raw(&server, raw).0.status, 400);
}

#[test]
fn chunked_body_is_refused_with_411() {
    let server = Server::start(&[]);
    let raw = b"POST /chatbox/healthz HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    assert_eq!(send_raw(&server, raw).0.status, 411);
}

#[test]
fn body_over_the_route_limit_is_413_before_it_is_read() {
    let server = Server::start(&[]);
    // The probe takes no body; the server must answer without waiting for the 1 MB.
    let raw = b"GET /chatbox/healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n";
    let (response, closed) = send_raw(&server, raw);
    assert_eq!(response.status, 413);
    assert_eq!(response.json()["code"], "PAYLOAD_TOO_LARGE");
    assert!(closed);
}

#[test]
fn a_refused_request_without_body_keeps_the_connection() {
    let server = Server::start(&[]);
    let mut stream = server.connect();
    stream
        .write_all(b"GET /chatbox/missing HTTP/1.1\r\nHost: t\r\n\r\nGET /chatbox/healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    assert_eq!(read_response(&mut stream).expect("first").status, 404);
    assert_eq!(read_response(&mut stream).expect("second").status, 200);
}
