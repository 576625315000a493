//! The OpenAI, Anthropic and Dify providers against mock servers speaking each wire
//! format: request shapes, streamed chunks, usage, retries, broken streams, stop and
//! timeout, through `llm::RetryPolicy::run` as the server calls them.
mod common;

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use chatbox::config::Config;
use chatbox::llm::{
    Abort, Catalog, Finish, LlmError, Provider, Request, RetryPolicy, Role, Sink, Turn,
};
use common::llm_mock::{LlmMock, Recorded, Script, Wire, DIFY_CONVERSATION_ID, DIFY_TASK_ID};
use serde_json::json;

/// The spec's three tries, without the seconds of back-off.
const FAST: RetryPolicy = RetryPolicy {
    backoff: &[Duration::from_millis(10), Duration::from_millis(20)],
};
const LONG: Duration = Duration::from_secs(20);
const WAIT: Duration = Duration::from_secs(10);
const KEY: &str = "sk-test-key";
const WIRES: [Wire; 3] = [Wire::OpenAi, Wire::Anthropic, Wire::Dify];

fn kind(wire: Wire) -> &'static str {
    match wire {
        Wire::OpenAi => "openai",
        Wire::Anthropic => "anthropic",
        Wire::Dify => "dify",
    }
}

/// The provider as the server builds it: from configuration, through the catalog.
fn provider(wire: Wire, endpoint: &str) -> Arc<dyn Provider> {
    let vars: HashMap<String, String> = [
        ("JWT_SECRET", common::JWT_SECRET),
        ("LLM_PROVIDER_1_ID", "p"),
        ("LLM_PROVIDER_1_TYPE", kind(wire)),
        ("LLM_PROVIDER_1_ENDPOINT", endpoint),
        ("LLM_PROVIDER_1_MODEL", "test-model"),
        ("LLM_PROVIDER_1_API_KEY", KEY),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let config = Config::from_vars(&vars).expect("valid config");
    let catalog = Catalog::new(&config.llm);
    let (settings, provider) = catalog.get("p").expect("the provider");
    assert_eq!(settings.model, "test-model");
    provider
}

fn turn(role: Role, content: &str) -> Turn {
    Turn {
        role,
        content: content.into(),
    }
}

fn history() -> Vec<Turn> {
    vec![
        turn(Role::System, "Be brief."),
        turn(Role::User, "Hi"),
        turn(Role::Assistant, "Hello!"),
        turn(Role::User, "What is SSE?"),
    ]
}

fn request<'a>(turns: &'a [Turn], conversation_id: Option<&'a str>) -> Request<'a> {
    /// Never fired: these requests stop through the sink, or not at all.
    static NOT_ABORTED: LazyLock<Abort> = LazyLock::new(Abort::default);
    Request {
        model: "test-model",
        turns,
        user_id: "user-7",
        conversation_id,
        abort: &NOT_ABORTED,
    }
}

/// Collects chunks; stops after `stop_after` chunks, by returning false or, with
/// `flag_only`, by reporting `cancelled()` while still accepting the chunk.
#[derive(Default)]
struct Collect {
    chunks: Vec<String>,
    stop_after: Option<usize>,
    flag_only: bool,
}

impl Sink for Collect {
    fn chunk(&mut self, text: &str) -> bool {
        self.chunks.push(text.to_owned());
        self.flag_only || !self.cancelled()
    }

    fn cancelled(&self) -> bool {
        self.stop_after.is_some_and(|n| self.chunks.len() >= n)
    }
}

fn stream(
    wire: Wire,
    scripts: Vec<Script>,
    conversation_id: Option<&str>,
) -> (LlmMock, Result<Finish, LlmError>, Vec<String>) {
    let mock = LlmMock::start(wire, scripts);
    let provider = provider(wire, &mock.endpoint());
    let turns = history();
    let mut sink = Collect::default();
    let result = FAST.run(
        provider.as_ref(),
        &request(&turns, conversation_id),
        LONG,
        &mut sink,
    );
    (mock, result, sink.chunks)
}

fn only_request(mock: &LlmMock) -> Recorded {
    let requests = mock.requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    requests.into_iter().next().expect("one request")
}

#[test]
fn openai_request_shape_chunks_and_usage() {
    let (mock, result, chunks) = stream(
        Wire::OpenAi,
        vec![Script::stream(&["Server-", "Sent ", "Events"], Some(42))],
        None,
    );
    assert_eq!(
        result,
        Ok(Finish {
            total_tokens: Some(42),
            conversation_id: None
        })
    );
    assert_eq!(chunks, ["Server-", "Sent ", "Events"]);
    let recorded = only_request(&mock);
    assert_eq!(
        (recorded.method.as_str(), recorded.path.as_str()),
        ("POST", "/v1/chat/completions")
    );
    assert_eq!(
        recorded.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(recorded.header("content-type"), Some("application/json"));
    assert_eq!(recorded.header("accept"), Some("text/event-stream"));
    assert_eq!(
        recorded.body,
        json!({
            "model": "test-model",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"},
                {"role": "user", "content": "What is SSE?"},
            ],
            "stream": true,
            "stream_options": {"include_usage": true},
        })
    );
}

#[test]
fn anthropic_request_shape_chunks_and_usage() {
    let (mock, result, chunks) = stream(
        Wire::Anthropic,
        vec![Script::stream(&["Server-", "Sent ", "Events"], Some(42))],
        None,
    );
    assert_eq!(
        result,
        Ok(Finish {
            total_tokens: Some(42),
            conversation_id: None
        })
    );
    assert_eq!(chunks, ["Server-", "Sent ", "Events"]);
    let recorded = only_request(&mock);
    assert_eq!(
        (recorded.method.as_str(), recorded.path.as_str()),
        ("POST", "/v1/messages")
    );
    assert_eq!(recorded.header("x-api-key"), Some(KEY));
    assert_eq!(recorded.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(recorded.header("authorization"), None);
    assert_eq!(
        recorded.body,
        json!({
            "model": "test-model",
            "system": "Be brief.",
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"},
                {"role": "user", "content": "What is SSE?"},
            ],
            "max_tokens": 4096,
            "stream": true,
        })
    );
}

#[test]
fn dify_request_shape_chunks_usage_and_conversation() {
    let (mock, result, chunks) = stream(
        Wire::Dify,
        vec![Script::stream(&["Server-", "Sent ", "Events"], Some(42))],
        None,
    );
    assert_eq!(
        result,
        Ok(Finish {
            total_tokens: Some(42),
            conversation_id: Some(DIFY_CONVERSATION_ID.into())
        })
    );
    assert_eq!(chunks, ["Server-", "Sent ", "Events"]);
    let recorded = only_request(&mock);
    assert_eq!(
        (recorded.method.as_str(), recorded.path.as_str()),
        ("POST", "/v1/chat-messages")
    );
    assert_eq!(
        recorded.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(
        recorded.body,
        json!({
            "inputs": {},
            "query": "What is SSE?",
            "response_mode": "streaming",
            "user": "user-7",
        })
    );

    // The next turn of the session continues Dify's conversation.
    let (mock, result, _) = stream(
        Wire::Dify,
        vec![Script::stream(&["again"], None)],
        Some("conv-earlier"),
    );
    assert_eq!(
        result,
        Ok(Finish {
            total_tokens: None,
            conversation_id: Some("conv-earlier".into())
        })
    );
    assert_eq!(only_request(&mock).body["conversation_id"], "conv-earlier");
}

#[test]
fn endpoint_with_trailing_slash_and_no_usage() {
    for wire in WIRES {
        let mock = LlmMock::start(wire, vec![Script::stream(&["ok"], None)]);
        let provider = provider(wire, &format!("{}/", mock.endpoint()));
        let turns = history();
        let mut sink = Collect::default();
        let finish = FAST
            .run(provider.as_ref(), &request(&turns, None), LONG, &mut sink)
            .unwrap_or_else(|e| panic!("{wire:?}: {e}"));
        assert_eq!(finish.total_tokens, None, "{wire:?}");
        assert_eq!(sink.chunks, ["ok"], "{wire:?}");
        assert!(
            !only_request(&mock).path.contains("//"),
            "{wire:?}: {}",
            only_request(&mock).path
        );
    }
}

#[test]
fn too_many_requests_and_server_errors_are_retried() {
    for wire in WIRES {
        let (mock, result, chunks) = stream(
            wire,
            vec![
                Script::Status(429, r#"{"error":"slow down"}"#.into()),
                Script::Status(500, r#"{"error":"oops"}"#.into()),
                Script::stream(&["third ", "time"], Some(5)),
            ],
            None,
        );
        assert_eq!(result.map(|f| f.total_tokens), Ok(Some(5)), "{wire:?}");
        assert_eq!(chunks, ["third ", "time"], "{wire:?}");
        let requests = mock.requests();
        assert_eq!(requests.len(), 3, "{wire:?}");
        assert!(
            requests.iter().all(|r| r.body == requests[0].body),
            "{wire:?}: every try sends the same request"
        );
    }
}

#[test]
fn three_failures_are_unavailable() {
    for wire in WIRES {
        let (mock, result, chunks) =
            stream(wire, vec![Script::Status(503, "busy".into()); 3], None);
        match result {
            Err(LlmError::Unavailable {
                retryable: true,
                detail,
            }) => assert!(detail.contains("503"), "{wire:?}: {detail}"),
            other => panic!("{wire:?}: {other:?}"),
        }
        assert!(chunks.is_empty());
        assert_eq!(mock.requests().len(), 3, "{wire:?}");
    }
}

#[test]
fn client_errors_are_not_retried_and_their_body_is_only_in_the_detail() {
    for wire in WIRES {
        let (mock, result, _) = stream(
            wire,
            vec![
                Script::Status(400, "{\"error\":\"bad model\"}\nline two".into()),
                Script::stream(&["never"], None),
            ],
            None,
        );
        match result {
            Err(LlmError::Unavailable {
                retryable: false,
                detail,
            }) => {
                assert!(detail.starts_with("HTTP 400: "), "{wire:?}: {detail}");
                assert!(detail.contains("bad model"), "{wire:?}: {detail}");
                assert!(!detail.contains('\n'), "{wire:?}: one log line: {detail}");
            }
            other => panic!("{wire:?}: {other:?}"),
        }
        assert_eq!(mock.requests().len(), 1, "{wire:?}");
    }
}

#[test]
fn an_error_body_is_cut_at_one_kib() {
    let (_mock, result, _) = stream(
        Wire::OpenAi,
        vec![Script::Status(401, "x".repeat(10_000))],
        None,
    );
    match result {
        Err(LlmError::Unavailable { detail, .. }) => {
            let xs = detail.chars().filter(|c| *c == 'x').count();
            assert_eq!(xs, 1024, "{detail}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_stream_broken_after_chunks_is_interrupted_and_not_retried() {
    for wire in WIRES {
        let (mock, result, chunks) = stream(
            wire,
            vec![
                Script::fail_after(&["partial ", "answer"]),
                Script::stream(&["never"], None),
            ],
            None,
        );
        assert!(
            matches!(result, Err(LlmError::Interrupted { .. })),
            "{wire:?}: {result:?}"
        );
        assert_eq!(chunks, ["partial ", "answer"], "{wire:?}");
        assert_eq!(mock.requests().len(), 1, "{wire:?}");
    }
}

#[test]
fn a_stream_broken_before_any_chunk_is_retried() {
    for wire in WIRES {
        let (mock, result, chunks) = stream(
            wire,
            vec![Script::fail_after(&[]), Script::stream(&["fine"], None)],
            None,
        );
        assert!(result.is_ok(), "{wire:?}: {result:?}");
        assert_eq!(chunks, ["fine"], "{wire:?}");
        assert_eq!(mock.requests().len(), 2, "{wire:?}");
    }
}

#[test]
fn a_refused_connection_is_retryable() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let provider = provider(Wire::OpenAi, &format!("http://127.0.0.1:{port}/v1"));
    let turns = history();
    let result = FAST.run(
        provider.as_ref(),
        &request(&turns, None),
        LONG,
        &mut Collect::default(),
    );
    assert!(
        matches!(
            result,
            Err(LlmError::Unavailable {
                retryable: true,
                ..
            })
        ),
        "{result:?}"
    );
}

/// Stops after two chunks of a slow stream, either way a sink can say so.
fn stop_mid_stream(wire: Wire, flag_only: bool) -> LlmMock {
    let chunks = ["one ", "two ", "three ", "four ", "five ", "six"];
    let mock = LlmMock::start(wire, vec![Script::slow(&chunks, Duration::from_millis(50))]);
    let provider = provider(wire, &mock.endpoint());
    let turns = history();
    let mut sink = Collect {
        stop_after: Some(2),
        flag_only,
        ..Collect::default()
    };
    let result = FAST.run(provider.as_ref(), &request(&turns, None), LONG, &mut sink);
    assert_eq!(result, Err(LlmError::Cancelled), "{wire:?}");
    assert_eq!(sink.chunks, ["one ", "two "], "{wire:?}");
    assert!(
        mock.wait_for_disconnect(WAIT),
        "{wire:?}: the upstream connection was not closed"
    );
    mock
}

#[test]
fn a_stop_closes_the_upstream_connection() {
    for wire in [Wire::OpenAi, Wire::Anthropic] {
        for flag_only in [false, true] {
            let mock = stop_mid_stream(wire, flag_only);
            assert_eq!(mock.requests().len(), 1, "{wire:?}");
        }
    }
}

#[test]
fn a_dify_stop_also_stops_the_task() {
    for flag_only in [false, true] {
        let mock = stop_mid_stream(Wire::Dify, flag_only);
        let requests = mock.wait_for_requests(2, WAIT);
        assert_eq!(requests.len(), 2, "{requests:#?}");
        let stop = &requests[1];
        assert_eq!(
            (stop.method.as_str(), stop.path.as_str()),
            (
                "POST",
                format!("/v1/chat-messages/{DIFY_TASK_ID}/stop").as_str()
            )
        );
        assert_eq!(
            stop.header("authorization"),
            Some(format!("Bearer {KEY}").as_str())
        );
        assert_eq!(stop.body, json!({"user": "user-7"}));
    }
}

#[test]
fn a_silent_upstream_times_out_at_the_deadline() {
    for wire in WIRES {
        let mock = LlmMock::start(wire, vec![Script::Hang, Script::stream(&["late"], None)]);
        let provider = provider(wire, &mock.endpoint());
        let turns = history();
        let result = FAST.run(
            provider.as_ref(),
            &request(&turns, None),
            Duration::from_millis(300),
            &mut Collect::default(),
        );
        assert_eq!(result, Err(LlmError::Timeout), "{wire:?}");
        assert_eq!(mock.wait_for_requests(1, WAIT).len(), 1, "{wire:?}");
        assert!(
            mock.wait_for_disconnect(WAIT),
            "{wire:?}: the timed-out connection stayed open"
        );
    }
}

#[test]
fn an_abort_stops_a_silent_upstream_at_once() {
    for wire in WIRES {
        for silence in [Script::Silent, Script::Hang, Script::stall(&["first"])] {
            let mock = LlmMock::start(wire, vec![silence.clone()]);
            let provider = provider(wire, &mock.endpoint());
            let abort = Abort::default();
            let (tx, rx) = std::sync::mpsc::channel();
            let streaming = {
                let abort = abort.clone();
                std::thread::spawn(move || {
                    let turns = history();
                    let request = Request {
                        abort: &abort,
                        ..request(&turns, None)
                    };
                    let result =
                        FAST.run(provider.as_ref(), &request, LONG, &mut Collect::default());
                    let _ = tx.send(result);
                })
            };
            assert_eq!(
                mock.wait_for_requests(1, WAIT).len(),
                1,
                "{wire:?} {silence:?}"
            );
            // Give the provider time to block in its read; without the abort it stays
            // there for the 30 s header timeout or the 20 s deadline.
            std::thread::sleep(Duration::from_millis(200));
            abort.fire();
            let result = rx.recv_timeout(WAIT).expect("the stream returned");
            assert_eq!(result, Err(LlmError::Cancelled), "{wire:?} {silence:?}");
            streaming.join().expect("stream thread");
            assert!(
                mock.wait_for_disconnect(WAIT),
                "{wire:?} {silence:?}: still open"
            );
            // A Dify task that streamed is still told to stop: that call must get out.
            let dify_stop = wire == Wire::Dify && matches!(silence, Script::Stall { .. });
            assert_eq!(
                mock.wait_for_requests(2, Duration::ZERO).len(),
                1 + usize::from(dify_stop),
                "{wire:?} {silence:?}: no retry"
            );
        }
    }
}
