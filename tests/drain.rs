//! SIGTERM: readiness fails at once, everything else keeps working for the drain delay,
//! then the listener closes, idle connections are closed, in-flight ones finish, exit 0.
mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{closed_within, read_response, Server};

#[test]
fn sigterm_drains_then_exits_zero() {
    let mut server = Server::start(&[("SHUTDOWN_DRAIN_DELAY", "2s"), ("SHUTDOWN_TIMEOUT", "5s")]);
    let mut idle = server.connect();
    idle.write_all(b"GET /chatbox/healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    assert_eq!(read_response(&mut idle).expect("response").status, 200);
    assert_eq!(server.get("/chatbox/readyz").status, 200);

    let signalled = Instant::now();
    server.signal("TERM");
    let mut ready_status = 200;
    while signalled.elapsed() < Duration::from_millis(100) {
        ready_status = server.get("/chatbox/readyz").status;
        if ready_status == 503 {
            break;
        }
    }
    assert_eq!(
        ready_status, 503,
        "readyz must fail within 100 ms of SIGTERM"
    );
    let not_ready = server.get("/chatbox/readyz");
    assert_eq!(not_ready.json()["checks"]["shutdown"]["status"], "draining");

    // The drain delay: new connections and kept-alive ones are still served.
    assert_eq!(server.get("/chatbox/healthz").status, 200);
    idle.write_all(b"GET /chatbox/healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    assert_eq!(read_response(&mut idle).expect("kept-alive").status, 200);

    // After it: the idle connection is closed and the port stops accepting.
    assert!(closed_within(&mut idle, Duration::from_secs(5)));
    let status = server.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", server.logs().join("\n"));
    assert!(
        signalled.elapsed() >= Duration::from_secs(2),
        "exited before the drain delay"
    );
    assert!(
        TcpStream::connect(server.addr()).is_err(),
        "port still open"
    );
    let logs = server.logs().join("\n");
    for phase in ["drain 1/3", "drain 2/3", "drain 3/3"] {
        assert!(logs.contains(phase), "missing {phase} in logs:\n{logs}");
    }
}

#[test]
fn in_flight_request_finishes_after_the_listener_closes() {
    let mut server = Server::start(&[("SHUTDOWN_DRAIN_DELAY", "1s"), ("SHUTDOWN_TIMEOUT", "10s")]);
    let mut partial = server.connect();
    partial
        .write_all(b"GET /chatbox/healthz HTTP/1.1\r\n")
        .expect("send");
    server.signal("TERM");
    std::thread::sleep(Duration::from_millis(1500));
    // Listener closed by now; the started request may still complete.
    partial
        .write_all(b"Host: t\r\n\r\n")
        .unwrap_or_else(|e| panic!("finish the head: {e}\n{}", server.logs().join("\n")));
    let response = read_response(&mut partial).expect("answered during the drain");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("connection"), Some("close"));
    assert_eq!(server.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn second_signal_exits_at_once() {
    let mut server = Server::start(&[("SHUTDOWN_DRAIN_DELAY", "30s"), ("SHUTDOWN_TIMEOUT", "60s")]);
    server.signal("TERM");
    std::thread::sleep(Duration::from_millis(200));
    server.signal("INT");
    let status = server.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(130));
}
