//! The sessions API has a per-user limit, and its store calls never queue ahead of the
//! chat's: one user looping on `GET P/sessions` gets 429s with `Retry-After`, while
//! another user's messages are all stored and answered.
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use common::chat::{bearer, Client};
use common::Server;

/// `RATE_LIMIT` for the test: the chatting user stays under it, the flood goes far over.
const LIMIT: usize = 20;
const FLOODERS: usize = 4;
const MESSAGES: usize = 10;

#[test]
fn a_user_flooding_the_sessions_api_is_limited_and_chat_is_untouched() {
    let limit = LIMIT.to_string();
    let server = Arc::new(Server::start(&[
        ("RATE_LIMIT", limit.as_str()),
        ("RATE_LIMIT_WINDOW", "1h"),
        ("STORE_WORKERS", "1"),
    ]));
    let stop = Arc::new(AtomicBool::new(false));
    let flood: Vec<_> = (0..FLOODERS)
        .map(|_| {
            let (server, stop) = (Arc::clone(&server), Arc::clone(&stop));
            thread::spawn(move || {
                let mut answers = Vec::new();
                while !stop.load(Ordering::Relaxed) || answers.len() < LIMIT {
                    let response = server.request("GET", "/chatbox/sessions", &bearer("flood"), "");
                    answers.push((
                        response.status,
                        response.header("retry-after").map(str::to_owned),
                        response.json(),
                    ));
                }
                answers
            })
        })
        .collect();

    let mut chat = Client::connect(&server, "calm", "");
    for n in 0..MESSAGES {
        // An error frame (busy, rate limited) instead of the reply fails here.
        let reply = chat.ask(&format!("message {n}"));
        assert!(reply.text.contains(&format!("message {n}")), "{reply:?}");
    }
    stop.store(true, Ordering::Relaxed);

    let answers: Vec<_> = flood
        .into_iter()
        .flat_map(|t| t.join().expect("flood thread"))
        .collect();
    let ok = answers
        .iter()
        .filter(|(status, _, _)| *status == 200)
        .count();
    assert!(ok <= LIMIT, "{ok} calls got through a limit of {LIMIT}");
    let limited: Vec<_> = answers
        .iter()
        .filter(|(status, _, _)| *status == 429)
        .collect();
    assert_eq!(
        ok + limited.len(),
        answers.len(),
        "only 200 or 429: {answers:?}"
    );
    assert!(!limited.is_empty(), "the flood was limited");
    for (_, retry_after, body) in limited {
        let seconds: u64 = retry_after
            .as_deref()
            .and_then(|v| v.parse().ok())
            .expect("Retry-After in seconds");
        assert!(seconds >= 1);
        assert_eq!(body["error"], "rate_limit_exceeded");
        assert!(body["retry_after_ms"].as_u64().is_some_and(|ms| ms >= 1));
    }
    // The calm user's own allowance is untouched by the flood.
    let own = server.request("GET", "/chatbox/sessions", &bearer("calm"), "");
    assert_eq!(own.status, 200);
    assert_eq!(own.json()["count"], 1);
}
