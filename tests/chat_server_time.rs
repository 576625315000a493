//! A message's stored time is the server's: a client that back-dates its `timestamp`
//! neither rewrites history nor gets its session ended by the idle sweep.
mod common;

use std::time::{Duration, Instant};

use common::chat::{bearer, stored_messages, Client};
use common::Server;
use serde_json::json;

/// How many idle sweeps the store has run, from the store-call histogram.
fn sweeps(server: &Server) -> u64 {
    let scrape = server.get("/chatbox/metrics/prometheus");
    assert_eq!(scrape.status, 200);
    String::from_utf8_lossy(&scrape.body)
        .lines()
        .find(|line| {
            line.starts_with("chatbox_mongodb_operation_seconds_count")
                && line.contains(r#"operation="end_idle""#)
        })
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_back_dated_message_is_stored_now_and_survives_the_sweep() {
    let server = Server::start(&[("SESSION_TTL", "1m"), ("SESSION_CLEANUP_INTERVAL", "1s")]);
    let mut ann = Client::connect(&server, "ann", "");
    let before = chatbox::time::unix_millis_now();
    ann.send(json!({"type": "user_message", "session_id": ann.session_id,
                    "content": "from the past", "timestamp": "2000-01-01T00:00:00Z"}));
    ann.reply();
    let session = ann.session_id.clone();
    let stored = stored_messages(&server, "ann", &session, 2);
    let at = |value: &serde_json::Value| {
        chatbox::time::parse_rfc3339(value.as_str().expect("a timestamp")).expect("RFC 3339")
    };
    assert!(at(&stored[0]["timestamp"]) >= before, "{stored:?}");
    assert_eq!(
        stored[0]["metadata"]["client_timestamp"],
        "2000-01-01T00:00:00.000Z"
    );

    // Two sweeps after the message: the first may have started before it was stored.
    let first = sweeps(&server);
    let deadline = Instant::now() + Duration::from_secs(20);
    while sweeps(&server) < first + 2 {
        assert!(Instant::now() < deadline, "the idle sweep does not run");
        std::thread::sleep(Duration::from_millis(100));
    }
    let list = server.request("GET", "/chatbox/sessions", &bearer("ann"), "");
    let sessions = list.json()["sessions"].clone();
    assert_eq!(sessions[0]["id"], session.as_str(), "{sessions}");
    assert_eq!(sessions[0]["is_active"], true, "{sessions}");
    assert!(at(&sessions[0]["last_activity"]) >= before, "{sessions}");
}
