//! A full connection slab answers 503 with Retry-After, never crashes, and serves again
//! as soon as connections leave.
mod common;

use std::io::Write;
use std::time::Duration;

use common::{read_response, Server};

#[test]
fn full_slab_refuses_with_503_then_recovers() {
    let server = Server::start(&[("MAX_CONNECTIONS", "4")]);
    let mut held: Vec<_> = (0..4)
        .map(|_| {
            let mut stream = server.connect();
            // A completed request proves the connection holds a slot.
            stream
                .write_all(b"GET /chatbox/healthz HTTP/1.1\r\nHost: t\r\n\r\n")
                .expect("send");
            assert_eq!(read_response(&mut stream).expect("response").status, 200);
            stream
        })
        .collect();

    for _ in 0..3 {
        let refused = server.get("/chatbox/healthz");
        assert_eq!(refused.status, 503);
        assert_eq!(refused.header("retry-after"), Some("1"));
        assert_eq!(refused.json()["code"], "UNAVAILABLE");
    }

    held.truncate(2);
    // The server notices the closes on its next loop turn.
    let mut status = 0;
    for _ in 0..100 {
        status = server.get("/chatbox/healthz").status;
        if status == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(status, 200, "a freed slot is usable again");
    for stream in &mut held {
        stream
            .write_all(b"GET /chatbox/healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            .expect("send");
        assert_eq!(read_response(stream).expect("still served").status, 200);
    }
}
