//! Keep-alive reuse, pipelining in order, HEAD, and the JSON shapes of the probes.
mod common;

use std::io::Write;

use common::{read_head_only_response, read_response, Server};

#[test]
fn one_connection_serves_many_requests() {
    let server = Server::start(&[]);
    let mut stream = server.connect();
    for _ in 0..5 {
        stream
            .write_all(b"GET /chatbox/healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            .expect("send");
        let response = read_response(&mut stream).expect("response on the same connection");
        assert_eq!(response.status, 200);
        assert_eq!(response.header("connection"), Some("keep-alive"));
        assert_eq!(response.json()["status"], "healthy");
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = Server::start(&[]);
    let mut stream = server.connect();
    let paths = [
        "/chatbox/healthz",
        "/chatbox/nope",
        "/chatbox/readyz",
        "/chatbox/healthz",
    ];
    let batch: String = paths
        .iter()
        .map(|p| format!("GET {p} HTTP/1.1\r\nHost: t\r\n\r\n"))
        .collect();
    stream.write_all(batch.as_bytes()).expect("send");
    let statuses: Vec<u16> = paths
        .iter()
        .map(|_| read_response(&mut stream).expect("response").status)
        .collect();
    assert_eq!(statuses, [200, 404, 200, 200]);
}

#[test]
fn head_gets_the_get_headers_without_a_body() {
    let server = Server::start(&[]);
    let mut stream = server.connect();
    stream
        .write_all(b"HEAD /chatbox/healthz HTTP/1.1\r\nHost: t\r\n\r\nGET /chatbox/healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    let head = read_head_only_response(&mut stream).expect("HEAD response");
    assert_eq!(head.status, 200);
    let length: usize = head
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .expect("Content-Length on HEAD");
    // The next bytes on the wire must be the GET's response, not a stray body.
    let get = read_response(&mut stream).expect("GET response");
    assert_eq!(get.status, 200);
    assert_eq!(get.body.len(), length);
}

#[test]
fn connection_close_is_honoured() {
    let server = Server::start(&[]);
    let mut stream = server.connect();
    stream
        .write_all(b"GET /chatbox/healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .expect("send");
    let response = read_response(&mut stream).expect("response");
    assert_eq!(response.header("connection"), Some("close"));
    assert!(common::closed_within(
        &mut stream,
        std::time::Duration::from_secs(5)
    ));
}

#[test]
fn probes_and_errors_have_the_spec_shape() {
    let server = Server::start(&[]);
    let health = server.get("/chatbox/healthz");
    assert_eq!(health.status, 200);
    assert_eq!(health.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(health.header("x-frame-options"), Some("DENY"));
    assert_eq!(
        health.header("referrer-policy"),
        Some("strict-origin-when-cross-origin")
    );
    let timestamp = health.json()["timestamp"]
        .as_str()
        .expect("timestamp")
        .to_owned();
    assert!(
        timestamp.ends_with('Z') && timestamp.len() == 20,
        "{timestamp}"
    );

    let ready = server.get("/chatbox/readyz");
    assert_eq!(ready.status, 200);
    let body = ready.json();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["llm"]["providers_count"], 1);

    let missing = server.get("/chatbox/no/such/route");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["code"], "NOT_FOUND");
    assert_eq!(
        server.get("/healthz").status,
        404,
        "routes live under the prefix"
    );

    let mut stream = server.connect();
    stream
        .write_all(b"POST /chatbox/healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    let wrong_method = read_response(&mut stream).expect("response");
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.header("allow"), Some("GET, HEAD"));
}

#[test]
fn custom_prefix_and_internal_probe_port() {
    let internal = common::free_port();
    let server = Server::start(&[
        ("CHATBOX_PATH_PREFIX", "/api/chat"),
        ("METRICS_PORT", &internal.to_string()),
    ]);
    assert_eq!(server.get("/api/chat/healthz").status, 200);
    assert_eq!(server.get("/chatbox/healthz").status, 404);
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", internal)).expect("internal port");
    stream
        .write_all(b"GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    assert_eq!(read_response(&mut stream).expect("response").status, 200);
}
