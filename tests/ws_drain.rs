//! SIGTERM with 1000 open WebSockets: every one receives close 1001, the process exits 0.
mod common;

use std::time::Duration;

use common::ws::{echo_socket, read_close, send, CLOSE};
use common::Server;

#[test]
fn every_socket_gets_1001_on_sigterm() {
    let mut server = Server::start(&[
        ("CHATBOX_ECHO", "true"),
        // All 1000 sockets come from one address.
        ("MAX_CONNECTIONS_PER_IP", "1000"),
        ("SHUTDOWN_DRAIN_DELAY", "200ms"),
        ("SHUTDOWN_TIMEOUT", "20s"),
        ("LOG_LEVEL", "info"),
    ]);
    let mut sockets: Vec<_> = (0..1000).map(|_| echo_socket(&server)).collect();
    server.signal("TERM");
    for (i, socket) in sockets.iter_mut().enumerate() {
        let close = read_close(socket, Duration::from_secs(10));
        assert_eq!(
            close,
            Some((1001, "Server shutting down".to_owned())),
            "socket {i}"
        );
        // Complete the handshake as a browser would.
        send(socket, CLOSE, &1001u16.to_be_bytes());
    }
    assert_eq!(server.wait_exit(Duration::from_secs(15)).code(), Some(0));
    let logs = server.logs().join("\n");
    assert!(logs.contains("sent 1001 to 1000 WebSocket(s)"), "{logs}");
}
