//! Behind a trusted proxy the client is read from every `X-Forwarded-For` line, joined
//! in order: a proxy that appends its own line must not lose to the line the client
//! wrote, or the client picks the address the per-IP limit counts.
mod common;

use common::Server;

/// The public per-IP limit of `P/shared/:token` (spec/http.md).
const PUBLIC_LIMIT: usize = 60;

fn shared(server: &Server, forwarded: &[&str]) -> u16 {
    let headers: String = forwarded
        .iter()
        .map(|hop| format!("X-Forwarded-For: {hop}\r\n"))
        .collect();
    server
        .request("GET", "/chatbox/shared/no-such-token", &headers, "")
        .status
}

#[test]
fn the_proxys_own_line_names_the_client() {
    let server = Server::start(&[("TRUSTED_PROXIES", "127.0.0.0/8")]);
    // The client varies what it writes; the proxy's line behind it is always its address.
    for n in 0..PUBLIC_LIMIT {
        let spoofed = format!("203.0.113.{n}");
        assert_eq!(
            shared(&server, &[&spoofed, "198.51.100.1"]),
            404,
            "request {n}"
        );
    }
    assert_eq!(shared(&server, &["203.0.113.250", "198.51.100.1"]), 429);
    assert_eq!(
        shared(&server, &["203.0.113.250", "198.51.100.2"]),
        404,
        "another client has its own allowance"
    );
}
