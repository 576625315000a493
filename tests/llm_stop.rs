//! `stop` frees the `llm` lane thread at once, even when the upstream sends nothing: the
//! real binary with one lane thread, a mock provider that goes silent, and a second
//! message that can only be answered once the first stream's thread is free again.
mod common;

use std::thread;
use std::time::Duration;

use common::chat::Client;
use common::llm_mock::{LlmMock, Script, Wire};
use common::Server;
use serde_json::json;

/// Far under the provider's 30 s header timeout and the 120 s stream timeout: a thread
/// freed only by one of those would be too late.
const WAIT: Duration = Duration::from_secs(10);

const SETTLE: Duration = Duration::from_millis(300);

/// Message, stop while `silence` holds the only lane thread (after the reply's
/// `shown` first text, if any), then another message.
fn stop_then_ask_again(silence: Script, shown: &str) {
    let mock = LlmMock::start(
        Wire::OpenAi,
        vec![silence, Script::stream(&["still ", "here"], None)],
    );
    let endpoint = mock.endpoint();
    let server = Server::start(&[
        ("LLM_MAX_CONCURRENT", "1"),
        ("LLM_PROVIDER_1_ID", "gpt"),
        ("LLM_PROVIDER_1_TYPE", "openai"),
        ("LLM_PROVIDER_1_ENDPOINT", &endpoint),
        ("LLM_PROVIDER_1_MODEL", "upstream-model"),
    ]);
    let mut client = Client::connect(&server, "ann", "");
    client.set_timeout(WAIT);
    client.say("anyone there?");
    client.expect("loading", &["user_message"]);
    // The request reached the upstream, which now holds the lane thread in a read.
    assert_eq!(mock.wait_for_requests(1, WAIT).len(), 1);
    if !shown.is_empty() {
        let first = client.expect("ai_response", &[]);
        assert_eq!(first["content"], shown);
    }

    // Time for the lane thread to get from the last event into its next (blocking)
    // read; a stop that lands before that is seen by the flag check on the way. Not an
    // assertion: a slow machine only makes the test easier to pass.
    thread::sleep(SETTLE);
    client.send(json!({"type": "stop", "session_id": client.session_id}));
    let stopped = client.reply();
    assert_eq!(stopped.text, "");
    assert_eq!(stopped.last()["metadata"]["stopped"], "true");
    assert!(
        mock.wait_for_disconnect(WAIT),
        "the silent upstream saw its connection closed"
    );

    // One lane thread: this reply streams only if the stop gave it back.
    let again = client.ask("and now?");
    assert_eq!(again.text, "still here");
    assert_eq!(again.last()["metadata"]["done"], "true");
    assert_eq!(
        mock.requests().len(),
        2,
        "the stopped request was not retried"
    );
}

#[test]
fn stop_frees_the_lane_from_an_upstream_that_never_answers() {
    stop_then_ask_again(Script::Silent, "");
}

#[test]
fn stop_frees_the_lane_from_an_upstream_silent_after_its_headers() {
    stop_then_ask_again(Script::Hang, "");
}

#[test]
fn stop_frees_the_lane_from_an_upstream_silent_mid_stream() {
    stop_then_ask_again(Script::stall(&["first "]), "first ");
}
