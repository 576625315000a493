//! 5,000 `model_select` frames from one socket: past the rate limit they are refused
//! with `TOO_MANY_REQUESTS`, the choices admitted behind a write coalesce, the store
//! ends up with the last one, and the server answers as usual afterwards.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use common::chat::{bearer, Client};
use common::ws;
use common::Server;

const FRAMES: usize = 5000;
const RATE_LIMIT: usize = 100;

/// Frames before the last one the bucket admits alternate between the models; from it
/// on they all name `echo-b`, so the last admitted choice is `echo-b` however many
/// tokens trickle back while the flood is sent.
fn model_of(frame: usize) -> &'static str {
    if frame + 1 < RATE_LIMIT && frame.is_multiple_of(2) {
        "echo-a"
    } else {
        "echo-b"
    }
}

fn stored_model(server: &Server, session: &str) -> String {
    let response = server.request(
        "GET",
        &format!("/chatbox/sessions/{session}"),
        &bearer("ann"),
        "",
    );
    assert_eq!(response.status, 200);
    response.json()["model_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn a_model_select_flood_is_refused_past_the_limit_and_the_last_choice_is_stored() {
    let env = [
        ("LLM_PROVIDER_1_ID", "echo-a"),
        ("LLM_PROVIDER_1_TYPE", "echo"),
        ("LLM_PROVIDER_2_ID", "echo-b"),
        ("LLM_PROVIDER_2_TYPE", "echo"),
        ("RATE_LIMIT", "100"),
        ("RATE_LIMIT_WINDOW", "1h"),
    ];
    let server = Server::start(&env);
    let mut client = Client::connect(&server, "ann", "");
    client.set_timeout(Duration::from_secs(20));
    client.ask("hello");
    let session = client.session_id.clone();

    let mut writer = client.stream.try_clone().expect("clone the socket");
    let flood = {
        let session = session.clone();
        thread::spawn(move || {
            for frame in 0..FRAMES {
                let select =
                    json!({"type":"model_select","session_id":session,"model_id":model_of(frame)});
                ws::send_text(&mut writer, &select.to_string());
            }
            ws::send_text(&mut writer, r#"{"type":"ping"}"#);
        })
    };
    let mut refused = 0;
    loop {
        let frame = client.next();
        match frame["type"].as_str() {
            Some("pong") => break,
            Some("error") => {
                assert_eq!(frame["error"]["code"], "TOO_MANY_REQUESTS", "{frame}");
                assert!(frame["error"]["retry_after"]
                    .as_u64()
                    .is_some_and(|ms| ms > 0));
                refused += 1;
            }
            Some("connection_status") => {}
            _ => panic!("unexpected frame during the flood: {frame}"),
        }
    }
    flood.join().expect("the flood was sent");
    assert!(
        refused >= FRAMES - 2 * RATE_LIMIT,
        "only {refused} of {FRAMES} refused"
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    while stored_model(&server, &session) != "echo-b" {
        assert!(Instant::now() < deadline, "the last choice was not stored");
        thread::sleep(Duration::from_millis(20));
    }
    // The server answers as usual, with the model chosen last.
    let reply = client.ask("still there?");
    assert_eq!(reply.last()["model_id"], "echo-b");
    assert!(!reply.text.is_empty());
}
