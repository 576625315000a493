//! A session at its byte budget (`store::SESSION_BYTES`), through the real binary: the
//! user is told at once that it is full, nothing more is stored, and a new chat works.
mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use chatbox::store::embedded::Embedded;
use chatbox::store::{Append, Message, Sender, Store, StoreError, SESSION_BYTES};
use common::chat::{bearer, Client};
use common::{Server, TempDir};

/// Fills session `big` of ann until less than a KiB is left (a user message may have
/// up to 10,000 characters); returns how many messages that took.
fn nearly_full(data: &TempDir) -> usize {
    let store = Embedded::open(data.path()).expect("open the data dir");
    // Now: a session idle since long ago would be ended by the first idle sweep.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let mut count = 0;
    for size in [1 << 20, 1 << 16, 1 << 12, 1 << 10] {
        let content = "y".repeat(size);
        // More than the budget holds: a store without one fails here, not forever.
        for n in 0.. {
            assert!(n * size <= SESSION_BYTES as usize, "stored past the budget");
            let message = Message::new(format!("m{count}"), Sender::User, content.as_str(), now);
            let append = Append {
                session_id: "big",
                user_id: "ann",
                name: "Big",
                model_id: "",
                message: &message,
                max_messages: 5_000,
            };
            match store.append(&append) {
                Ok(_) => count += 1,
                Err(StoreError::SessionFull) => break,
                Err(other) => panic!("append: {other}"),
            }
        }
    }
    count
}

fn stored(server: &Server) -> usize {
    let response = server.request("GET", "/chatbox/sessions/big?limit=500", &bearer("ann"), "");
    assert_eq!(response.status, 200);
    response.json()["messages"]
        .as_array()
        .expect("messages")
        .len()
}

#[test]
fn a_message_past_the_budget_is_refused_for_good() {
    let data = TempDir::new();
    let count = nearly_full(&data);
    let server = Server::start_in(common::binary(), data, &[]);
    let mut client = Client::connect(&server, "ann", "session_id=big");
    assert_eq!(client.session_id, "big");

    // Well within the protocol's 10,000 characters, over what the session has left.
    for _ in 0..2 {
        client.say(&"z".repeat(5_000));
        let error = client.expect("error", &["user_message", "loading"]);
        assert_eq!(
            error["error"]["message"],
            "Session is full, start a new chat"
        );
    }
    assert_eq!(stored(&server), count, "nothing more is stored");

    let mut fresh = Client::connect(&server, "ann", "session_id=");
    fresh.send(
        serde_json::json!({"type": "user_message", "session_id": "brand-new", "content": "again"}),
    );
    fresh.expect("connection_status", &[]);
    assert!(!fresh.reply().text.is_empty(), "a new chat is answered");
}
