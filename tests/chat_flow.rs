//! The chat sequences of spec/websocket.md, driven through the real binary by real
//! WebSocket clients, with mock LLM providers that speak the providers' wire formats.

mod common;

use std::time::Duration;

use common::chat::{bearer, stored_messages, Client};
use common::llm_mock::{provider_env, LlmMock, Script, Wire};
use common::{Server, JWT_SECRET};
use serde_json::{json, Value};

fn start(env: Vec<(String, String)>) -> Server {
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Server::start(&pairs)
}

fn with_mock(mock: &LlmMock, extra: &[(&str, &str)]) -> Server {
    let mut env = provider_env(1, "gpt", "openai", &mock.endpoint());
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    start(env)
}

fn meta<'a>(frame: &'a Value, key: &str) -> &'a str {
    frame["metadata"][key].as_str().unwrap_or_default()
}

fn seq(frame: &Value) -> u64 {
    meta(frame, "seq").parse().expect("seq is a number")
}

#[test]
fn a_message_streams_a_reply_to_every_device_of_the_user() {
    let server = Server::start(&[]);
    let mut phone = Client::connect(&server, "ann", "");
    assert_eq!(phone.status["model_id"], "echo");
    assert_eq!(phone.status["models"][0]["name"], "Echo (offline)");
    let session = phone.session_id.clone();
    let mut laptop = Client::connect(&server, "ann", &format!("session_id={session}"));
    assert_eq!(
        laptop.session_id, session,
        "the user's own session is joined"
    );

    phone.say("hello brave new world");
    let loading = phone.next();
    assert_eq!(loading["type"], "loading");
    let message_id = meta(&loading, "message_id").to_owned();
    let reply = phone.reply();
    assert_eq!(reply.text, "hello brave new world");
    let seqs: Vec<u64> = reply.frames.iter().map(seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] <= w[1]), "{seqs:?}");
    assert_eq!(reply.last()["model_id"], "echo");

    let echo = laptop.next();
    assert_eq!(echo["type"], "user_message");
    assert_eq!(echo["content"], "hello brave new world");
    assert_eq!(meta(&echo, "message_id"), message_id);
    let seen = laptop.reply();
    assert_eq!(seen.text, reply.text);
    assert_eq!(seen.message_id, reply.message_id);
}

#[test]
fn the_conversation_so_far_goes_to_the_provider() {
    let mock = LlmMock::start(
        Wire::OpenAi,
        vec![
            Script::stream(&["Hi ", "Ann"], Some(12)),
            Script::stream(&["Fine"], Some(20)),
        ],
    );
    let server = with_mock(&mock, &[]);
    let mut client = Client::connect(&server, "ann", "");
    assert_eq!(client.ask("Hello").text, "Hi Ann");
    assert_eq!(client.ask("How are you?").text, "Fine");
    let requests = mock.wait_for_requests(2, Duration::from_secs(5));
    let second = &requests[1];
    assert_eq!(second.path, "/v1/chat/completions");
    assert_eq!(second.header("authorization"), Some("Bearer sk-test-key"));
    assert_eq!(second.body["model"], "upstream-model");
    assert_eq!(second.body["stream"], true);
    assert_eq!(second.body["stream_options"]["include_usage"], true);
    assert_eq!(
        second.body["messages"],
        json!([
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi Ann"},
            {"role": "user", "content": "How are you?"},
        ])
    );
}

#[test]
fn a_reconnect_mid_stream_misses_nothing_and_repeats_nothing() {
    let words = ["one ", "two ", "three ", "four ", "five ", "six "];
    let mock = LlmMock::start(
        Wire::OpenAi,
        vec![Script::slow(&words, Duration::from_millis(150))],
    );
    let server = with_mock(&mock, &[]);
    let mut phone = Client::connect(&server, "ann", "");
    let session = phone.session_id.clone();
    phone.say("count");
    let mut seen = String::new();
    let (mut last_seq, mut message_id) = (0, String::new());
    while last_seq < 2 {
        let frame = phone.expect("ai_response", &["loading"]);
        seen.push_str(frame["content"].as_str().unwrap_or_default());
        last_seq = seq(&frame);
        message_id = meta(&frame, "message_id").to_owned();
    }
    drop(phone);

    // Back within the reconnect window, saying where it left off: only the rest.
    let query = format!("session_id={session}&last_seq={last_seq}&message_id={message_id}");
    let mut back = Client::connect(&server, "ann", &query);
    assert_eq!(back.session_id, session);
    // Another device with no position: the whole reply so far in its first frame.
    let mut tablet = Client::connect(&server, "ann", &format!("session_id={session}"));

    let rest = back.reply();
    assert_eq!(meta(&rest.frames[0], "replay"), "true");
    assert_eq!(rest.message_id, message_id);
    assert_eq!(
        format!("{seen}{}", rest.text),
        words.concat(),
        "no gap, no repeat"
    );
    let all = tablet.reply();
    assert_eq!(meta(&all.frames[0], "replay"), "true");
    assert!(seq(&all.frames[0]) >= last_seq);
    assert_eq!(all.text, words.concat());
}

#[test]
fn stop_aborts_the_upstream_request_and_stores_what_arrived() {
    let mock = LlmMock::start(
        Wire::OpenAi,
        vec![Script::slow(
            &["a ", "b ", "c ", "d ", "e ", "f ", "g ", "h "],
            Duration::from_millis(200),
        )],
    );
    let server = with_mock(&mock, &[]);
    let mut client = Client::connect(&server, "ann", "");
    client.say("go");
    let first = client.expect("ai_response", &["loading"]);
    let mut text = first["content"].as_str().unwrap_or_default().to_owned();
    client.send(json!({"type": "stop", "session_id": client.session_id}));
    let rest = client.reply();
    text.push_str(&rest.text);
    let done = rest.last();
    assert_eq!(meta(done, "stopped"), "true");
    assert_eq!(meta(done, "done"), "true");
    assert!(
        text.len() < "a b c d e f g h ".len(),
        "stopped early: {text:?}"
    );
    assert!(
        mock.wait_for_disconnect(Duration::from_secs(5)),
        "the upstream request was aborted"
    );

    let messages = stored_messages(&server, "ann", &client.session_id, 2);
    let stored = &messages[1];
    assert_eq!(stored["sender"], "ai");
    assert_eq!(stored["content"], text.as_str());
    assert_eq!(stored["metadata"]["stopped"], "true");
}

#[test]
fn closing_the_socket_does_not_stop_the_reply() {
    let mock = LlmMock::start(
        Wire::OpenAi,
        vec![Script::slow(&["x ", "y ", "z"], Duration::from_millis(100))],
    );
    let server = with_mock(&mock, &[]);
    let mut client = Client::connect(&server, "ann", "");
    let session = client.session_id.clone();
    client.say("go");
    client.expect("loading", &[]);
    drop(client);
    let messages = stored_messages(&server, "ann", &session, 2);
    assert_eq!(messages[1]["content"], "x y z");
    assert_eq!(
        messages[1]["metadata"],
        Value::Null,
        "neither stopped nor failed"
    );
    assert_eq!(mock.disconnects(), 0, "the stream ran to its end");
}

#[test]
fn model_select_switches_the_provider_and_refuses_unknown_ids() {
    let mock = LlmMock::start(
        Wire::Anthropic,
        vec![Script::stream(&["from claude"], None)],
    );
    let mut env = provider_env(1, "echo-1", "echo", "");
    env.retain(|(k, _)| !k.ends_with("ENDPOINT") && !k.ends_with("API_KEY"));
    env.extend(provider_env(2, "claude", "anthropic", &mock.endpoint()));
    let server = start(env);
    let mut client = Client::connect(&server, "ann", "");
    assert_eq!(
        client.status["model_id"], "echo-1",
        "the first provider is the default"
    );

    client.send(json!({"type":"model_select","session_id":client.session_id,"model_id":"nope"}));
    let error = client.expect("error", &[]);
    assert_eq!(error["error"]["code"], "INVALID_FORMAT");
    assert_eq!(error["error"]["message"], "Invalid model ID: nope");

    client.send(json!({"type":"model_select","session_id":client.session_id,"model_id":"claude"}));
    let status = client.expect("connection_status", &[]);
    assert_eq!(status["content"], "Model changed to claude");
    assert_eq!(status["model_id"], "claude");
    let reply = client.ask("hello");
    assert_eq!(reply.text, "from claude");
    assert_eq!(reply.last()["model_id"], "claude");
    let request = &mock.wait_for_requests(1, Duration::from_secs(5))[0];
    assert_eq!(request.path, "/v1/messages");
    assert_eq!(request.header("anthropic-version"), Some("2023-06-01"));
}

#[test]
fn the_message_rate_limit_says_when_to_retry() {
    let server = Server::start(&[("RATE_LIMIT", "2"), ("RATE_LIMIT_WINDOW", "1m")]);
    let mut client = Client::connect(&server, "ann", "");
    client.ask("one");
    client.ask("two");
    client.say("three");
    let error = client.expect("error", &[]);
    assert_eq!(error["error"]["code"], "TOO_MANY_REQUESTS");
    assert_eq!(
        error["error"]["message"],
        "Too many requests, please slow down"
    );
    let retry = error["error"]["retry_after"].as_u64().expect("retry_after");
    assert!(retry > 1000 && retry <= 30_000, "{retry}");
}

#[test]
fn another_users_session_is_refused_and_the_owner_hears_nothing() {
    let server = Server::start(&[]);
    let mut ann = Client::connect(&server, "ann", "");
    ann.ask("mine");
    let mut bob = Client::connect(&server, "bob", "");
    bob.send(json!({"type":"user_message","session_id":ann.session_id,"content":"let me in"}));
    let error = bob.expect("error", &[]);
    assert_eq!(error["error"]["code"], "UNAUTHORIZED");
    assert_ne!(error["session_id"], ann.session_id.as_str(), "not revealed");
    // The next thing ann gets is the answer to her own ping: nothing of bob's came first.
    ann.send(json!({"type": "ping"}));
    assert_eq!(ann.next()["type"], "pong");
    // A handshake naming ann's session gives bob a fresh one, without an error.
    let bob2 = Client::connect(&server, "bob", &format!("session_id={}", ann.session_id));
    assert_ne!(bob2.session_id, ann.session_id);
}

#[test]
fn provider_errors_before_the_first_chunk_are_retried_then_reported() {
    let mock = LlmMock::start(
        Wire::OpenAi,
        vec![
            Script::Status(429, r#"{"error":"slow down"}"#.into()),
            Script::stream(&["made it"], None),
            Script::Status(400, r#"{"error":"bad request"}"#.into()),
            Script::fail_after(&["half "]),
        ],
    );
    let server = with_mock(&mock, &[]);
    let mut client = Client::connect(&server, "ann", "");
    assert_eq!(client.ask("retry me").text, "made it", "a 429 is retried");
    client.say("refused");
    let error = client.expect("error", &["loading"]);
    assert_eq!(error["error"]["code"], "LLM_UNAVAILABLE");
    assert_eq!(
        error["error"]["message"],
        "AI service is temporarily unavailable"
    );
    assert!(
        !error.to_string().contains("bad request"),
        "upstream bodies never reach clients"
    );
    let broken = client.ask("break");
    assert_eq!(broken.text, "half ");
    assert_eq!(meta(broken.last(), "error"), "true");
    assert_eq!(mock.requests().len(), 4, "a 400 is not retried");
}

#[test]
fn sessions_and_messages_survive_a_restart_encrypted_on_disk() {
    const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // base64, 32 bytes
                                                                      // The session name (its first sentence) is not encrypted by default; the rest is.
    let secret = "the eagle lands at midnight";
    let message = format!("Hello. {secret}");
    let server = Server::start(&[("ENCRYPTION_KEY", KEY)]);
    let mut client = Client::connect(&server, "ann", "");
    let session = client.session_id.clone();
    assert_eq!(client.ask(&message).text, message);
    drop(client);
    stored_messages(&server, "ann", &session, 2);
    let data = server.kill();

    let file = std::fs::read(data.path().join("chatbox.redb")).expect("the store file");
    let needle = secret.as_bytes();
    assert!(
        !file.windows(needle.len()).any(|w| w == needle),
        "message text is not stored in the clear"
    );

    let server = Server::start_in(
        common::binary(),
        data,
        &[("ENCRYPTION_KEY", KEY), ("JWT_SECRET", JWT_SECRET)],
    );
    let client = Client::connect(&server, "ann", "");
    assert_eq!(
        client.session_id, session,
        "the latest active session is resumed"
    );
    let history = server
        .request(
            "GET",
            &format!("/chatbox/sessions/{session}"),
            &bearer("ann"),
            "",
        )
        .json();
    assert_eq!(history["name"], "Hello.");
    let messages = stored_messages(&server, "ann", &session, 2);
    assert_eq!(messages[0]["content"], message.as_str());
    assert_eq!(messages[0]["sender"], "user");
    assert_eq!(messages[1]["content"], message.as_str());
    assert_eq!(messages[1]["sender"], "ai");
}

#[test]
fn a_provider_that_hangs_times_out_with_the_configured_duration() {
    let mock = LlmMock::start(Wire::OpenAi, vec![Script::Hang]);
    let server = with_mock(&mock, &[("LLM_STREAM_TIMEOUT", "1s")]);
    let mut client = Client::connect(&server, "ann", "");
    client.say("anyone there?");
    let error = client.expect("error", &["loading"]);
    assert_eq!(error["error"]["code"], "LLM_TIMEOUT");
    assert_eq!(
        error["error"]["message"],
        "AI service request timed out after 1s"
    );
    assert!(
        mock.wait_for_disconnect(Duration::from_secs(5)),
        "the hung request was dropped"
    );
    // The socket still works.
    client.send(json!({"type": "ping"}));
    assert_eq!(client.next()["type"], "pong");
}
