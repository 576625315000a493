//! SIGTERM while a reply streams: the socket is told, the reply runs on until the drain
//! deadline, then it is stopped, the upstream request aborted, and what arrived stored.

mod common;

use std::time::Duration;

use common::chat::{stored_messages, Client};
use common::llm_mock::{LlmMock, Script, Wire};
use common::ws::read_close;
use common::{binary, Server};

#[test]
fn a_reply_cut_by_the_drain_deadline_is_stored_as_stopped() {
    let mock = LlmMock::start(
        Wire::OpenAi,
        vec![Script::slow_words(40, Duration::from_millis(100))],
    );
    let endpoint = mock.endpoint();
    let env = [
        ("LLM_PROVIDER_1_ID", "gpt"),
        ("LLM_PROVIDER_1_NAME", "GPT"),
        ("LLM_PROVIDER_1_TYPE", "openai"),
        ("LLM_PROVIDER_1_ENDPOINT", endpoint.as_str()),
        ("LLM_PROVIDER_1_MODEL", "m"),
        ("LLM_PROVIDER_1_API_KEY", "sk-test"),
        ("SHUTDOWN_DRAIN_DELAY", "100ms"),
        ("SHUTDOWN_TIMEOUT", "1500ms"),
        ("LOG_LEVEL", "info"),
    ];
    let mut server = Server::start(&env);
    let mut client = Client::connect(&server, "ann", "");
    let session = client.session_id.clone();
    client.say("talk for a while");
    client.expect("ai_response", &["loading"]);
    server.signal("TERM");
    let close = read_close(&mut client.stream, Duration::from_secs(5));
    assert_eq!(close, Some((1001, "Server shutting down".to_owned())));
    assert_eq!(server.wait_exit(Duration::from_secs(10)).code(), Some(0));
    assert!(
        mock.wait_for_disconnect(Duration::from_secs(5)),
        "the upstream request was aborted at the deadline"
    );
    let logs = server.logs().join("\n");
    assert!(logs.contains("shutdown: stopped 1 streaming"), "{logs}");

    let data = server.kill();
    let server = Server::start_in(binary(), data, &env);
    let messages = stored_messages(&server, "ann", &session, 2);
    let reply = &messages[1];
    assert_eq!(reply["sender"], "ai");
    assert_eq!(reply["metadata"]["stopped"], "true");
    let text = reply["content"].as_str().expect("content");
    assert!(text.starts_with("w0 w1 "), "{text}");
    assert!(!text.contains("w39 "), "cut short: {text}");
}
