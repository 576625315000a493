//! One client cannot take every connection slot, and a full public side does not lock
//! the probes out: `MAX_CONNECTIONS_PER_IP` caps each client address on the public port
//! (the next one gets the full slab's 503), and `METRICS_PORT` has slots of its own.
mod common;

use std::io::Write;
use std::net::TcpStream;

use common::{free_port, read_response, HttpResponse, Server};

/// A connection that completed a request, and so holds a slot.
fn hold(server: &Server) -> TcpStream {
    let mut stream = server.connect();
    stream
        .write_all(b"GET /chatbox/healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    assert_eq!(read_response(&mut stream).expect("response").status, 200);
    stream
}

fn internal_get(port: u16, path: &str) -> HttpResponse {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    read_response(&mut stream).expect("a response")
}

fn assert_refused(response: &HttpResponse) {
    assert_eq!(response.status, 503);
    assert_eq!(response.header("retry-after"), Some("1"));
    assert_eq!(response.json()["code"], "UNAVAILABLE");
}

#[test]
fn one_address_gets_its_cap_and_no_more_while_probes_still_answer() {
    let internal = free_port();
    let server = Server::start(&[
        ("MAX_CONNECTIONS_PER_IP", "3"),
        ("METRICS_PORT", &internal.to_string()),
    ]);
    let held: Vec<_> = (0..3).map(|_| hold(&server)).collect();
    assert_refused(&server.get("/chatbox/healthz"));
    for path in ["/healthz", "/readyz"] {
        assert_eq!(internal_get(internal, path).status, 200, "{path}");
    }
    let scrape = internal_get(internal, "/metrics");
    let text = String::from_utf8_lossy(&scrape.body);
    assert!(
        text.contains(r#"chatbox_ratelimit_blocked_total{limiter="connection"} 1"#),
        "{text}"
    );
    drop(held);
    // The server notices the closes on its next loop turn.
    let freed = (0..100).any(|_| {
        let ok = server.get("/chatbox/healthz").status == 200;
        if !ok {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        ok
    });
    assert!(
        freed,
        "the address's slots come back as its connections close"
    );
}

#[test]
fn a_full_public_side_still_admits_the_internal_port() {
    let internal = free_port();
    let server = Server::start(&[
        ("MAX_CONNECTIONS", "4"),
        ("METRICS_PORT", &internal.to_string()),
    ]);
    let _held: Vec<_> = (0..4).map(|_| hold(&server)).collect();
    assert_refused(&server.get("/chatbox/healthz"));
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(internal_get(internal, path).status, 200, "{path}");
    }
}
