//! A client that never finishes its request head is answered 408 and closed after the
//! 10 s head timeout, while other clients are served meanwhile.
mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{closed_within, read_response, Server};

#[test]
fn unfinished_head_is_closed_by_the_head_timeout() {
    let server = Server::start(&[]);
    let started = Instant::now();
    let mut slow = server.connect();
    slow.write_all(b"GET /chatbox/healthz HTTP/1.1\r\nHost: t\r\n")
        .expect("send");
    let mut silent = server.connect();

    // Trickling more header bytes does not extend the deadline.
    for _ in 0..4 {
        std::thread::sleep(Duration::from_secs(1));
        slow.write_all(b"X-Slow: 1\r\n").expect("trickle");
        assert_eq!(
            server.get("/chatbox/healthz").status,
            200,
            "others are served"
        );
    }
    let response = read_response(&mut slow).expect("a 408 before the close");
    assert_eq!(response.status, 408);
    assert!(closed_within(&mut slow, Duration::from_secs(5)));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(9),
        "closed too early: {waited:?}"
    );
    assert!(
        closed_within(&mut silent, Duration::from_secs(5)),
        "a silent connection is closed too"
    );
}
