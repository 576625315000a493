//! Retries, cancellation and the catalog, with scripted providers: no network.

use super::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex};

/// The chunks one call delivers, then its result.
type Call = (Vec<&'static str>, Result<Finish, LlmError>);

/// Plays back one [`Call`] per call.
struct Scripted {
    calls: Mutex<Vec<Call>>,
    count: Arc<AtomicUsize>,
}

impl Scripted {
    fn new(mut calls: Vec<Call>) -> Scripted {
        calls.reverse();
        Scripted {
            calls: Mutex::new(calls),
            count: Arc::default(),
        }
    }

    fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

impl Provider for Scripted {
    fn stream(&self, _: &Request, _: Instant, sink: &mut dyn Sink) -> Result<Finish, LlmError> {
        self.count.fetch_add(1, Ordering::SeqCst);
        let (chunks, result) = self.calls.lock().expect("lock").pop().expect("a call");
        for chunk in chunks {
            if !sink.chunk(chunk) {
                return Err(LlmError::Cancelled);
            }
        }
        result
    }
}

#[derive(Default)]
struct Collect {
    chunks: Vec<String>,
    cancel_after_chunks: Option<usize>,
    cancel_now: bool,
}

impl Sink for Collect {
    fn chunk(&mut self, text: &str) -> bool {
        self.chunks.push(text.to_owned());
        self.cancel_after_chunks != Some(self.chunks.len())
    }
    fn cancelled(&self) -> bool {
        self.cancel_now
    }
}

const FAST: RetryPolicy = RetryPolicy {
    backoff: &[Duration::from_millis(5), Duration::from_millis(10)],
};
const LONG: Duration = Duration::from_secs(30);

fn request() -> Request<'static> {
    /// Never fired: these runs stop through the sink.
    static NOT_ABORTED: LazyLock<Abort> = LazyLock::new(Abort::default);
    Request {
        model: "m",
        turns: &[],
        user_id: "u",
        conversation_id: None,
        abort: &NOT_ABORTED,
    }
}

fn down(retryable: bool) -> Result<Finish, LlmError> {
    Err(LlmError::Unavailable {
        retryable,
        detail: "down".into(),
    })
}

fn done(tokens: u64) -> Result<Finish, LlmError> {
    Ok(Finish {
        total_tokens: Some(tokens),
        conversation_id: None,
    })
}

#[test]
fn spec_policy_is_three_tries_one_then_two_seconds_apart() {
    assert_eq!(
        RetryPolicy::SPEC.backoff,
        [Duration::from_secs(1), Duration::from_secs(2)]
    );
}

#[test]
fn retryable_failures_are_tried_again_up_to_three_times() {
    let p = Scripted::new(vec![
        (vec![], down(true)),
        (vec![], down(true)),
        (vec!["hi"], done(3)),
    ]);
    let mut sink = Collect::default();
    assert_eq!(FAST.run(&p, &request(), LONG, &mut sink), done(3));
    assert_eq!((p.count(), sink.chunks), (3, vec!["hi".to_owned()]));

    let p = Scripted::new(vec![(vec![], down(true)); 3]);
    assert_eq!(
        FAST.run(&p, &request(), LONG, &mut Collect::default()),
        down(true)
    );
    assert_eq!(p.count(), 3);
}

#[test]
fn other_failures_are_not_retried() {
    for result in [
        down(false),
        Err(LlmError::Timeout),
        Err(LlmError::Interrupted { detail: "x".into() }),
        Err(LlmError::Cancelled),
    ] {
        let p = Scripted::new(vec![(vec![], result.clone()), (vec![], done(1))]);
        assert_eq!(
            FAST.run(&p, &request(), LONG, &mut Collect::default()),
            result
        );
        assert_eq!(p.count(), 1);
    }
}

#[test]
fn no_retry_once_a_chunk_was_delivered() {
    let p = Scripted::new(vec![(vec!["partial"], down(true)), (vec![], done(1))]);
    let mut sink = Collect::default();
    assert_eq!(
        FAST.run(&p, &request(), LONG, &mut sink),
        Err(LlmError::Interrupted {
            detail: "down".into()
        })
    );
    assert_eq!((p.count(), sink.chunks.len()), (1, 1));
}

#[test]
fn a_pause_past_the_deadline_gives_up_with_the_last_error() {
    const SLOW: RetryPolicy = RetryPolicy {
        backoff: &[Duration::from_secs(60)],
    };
    let p = Scripted::new(vec![(vec![], down(true)), (vec![], done(1))]);
    let started = Instant::now();
    assert_eq!(
        SLOW.run(
            &p,
            &request(),
            Duration::from_secs(5),
            &mut Collect::default()
        ),
        down(true)
    );
    assert_eq!(p.count(), 1);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn zero_timeout_is_a_timeout_without_calling() {
    let p = Scripted::new(vec![(vec![], done(1))]);
    assert_eq!(
        FAST.run(&p, &request(), Duration::ZERO, &mut Collect::default()),
        Err(LlmError::Timeout)
    );
    assert_eq!(p.count(), 0);
}

#[test]
fn cancelled_before_start_or_during_backoff() {
    let p = Scripted::new(vec![(vec![], done(1))]);
    let mut sink = Collect {
        cancel_now: true,
        ..Collect::default()
    };
    assert_eq!(
        FAST.run(&p, &request(), LONG, &mut sink),
        Err(LlmError::Cancelled)
    );
    assert_eq!(p.count(), 0);

    // The sink turns cancelled once the provider has been called: during the pause.
    struct CancelAfterCall(Arc<AtomicUsize>);
    impl Sink for CancelAfterCall {
        fn chunk(&mut self, _: &str) -> bool {
            true
        }
        fn cancelled(&self) -> bool {
            self.0.load(Ordering::SeqCst) >= 1
        }
    }
    const SLOW: RetryPolicy = RetryPolicy {
        backoff: &[Duration::from_secs(20)],
    };
    let p = Scripted::new(vec![(vec![], down(true)), (vec![], done(1))]);
    let mut sink = CancelAfterCall(Arc::clone(&p.count));
    let started = Instant::now();
    assert_eq!(
        SLOW.run(&p, &request(), LONG, &mut sink),
        Err(LlmError::Cancelled)
    );
    assert_eq!(p.count(), 1);
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn sink_stop_during_a_stream_is_cancelled() {
    let p = Scripted::new(vec![(vec!["a", "b", "c"], done(1))]);
    let mut sink = Collect {
        cancel_after_chunks: Some(2),
        ..Collect::default()
    };
    assert_eq!(
        FAST.run(&p, &request(), LONG, &mut sink),
        Err(LlmError::Cancelled)
    );
    assert_eq!(sink.chunks, ["a", "b"]);
}

fn config(vars: &[(&str, &str)]) -> LlmConfig {
    let mut map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    map.insert(
        "JWT_SECRET".into(),
        "q8Vn2xLr7TzKp4WmYc9HbEs6JdUf3GaN".into(),
    );
    crate::config::Config::from_vars(&map)
        .expect("valid config")
        .llm
}

#[test]
fn catalog_without_providers_is_the_echo_provider() {
    let catalog = Catalog::new(&config(&[]));
    assert_eq!(catalog.models(), [("echo", "Echo (offline)")]);
    assert_eq!(catalog.default_id(), "echo");
    assert_eq!(catalog.types(), ["echo"]);
    let (settings, provider) = catalog.get("echo").expect("echo");
    assert_eq!(settings.kind, ProviderKind::Echo);
    let turns = [Turn {
        role: Role::User,
        content: "a b".into(),
    }];
    let mut sink = Collect::default();
    let request = Request {
        model: &settings.model,
        turns: &turns,
        user_id: "u",
        conversation_id: None,
        abort: &Abort::default(),
    };
    assert_eq!(
        run(provider.as_ref(), &request, LONG, &mut sink),
        Ok(Finish::default())
    );
    assert_eq!(sink.chunks.concat(), "a b");
    assert!(catalog.get("gpt").is_none());
}

#[test]
fn catalog_keeps_configuration_order_and_default() {
    let catalog = Catalog::new(&config(&[
        ("LLM_PROVIDER_1_ID", "local"),
        ("LLM_PROVIDER_1_NAME", "Local Llama"),
        ("LLM_PROVIDER_1_TYPE", "openai"),
        ("LLM_PROVIDER_1_ENDPOINT", "http://127.0.0.1:9/v1/"),
        ("LLM_PROVIDER_1_MODEL", "llama3:8b"),
        ("LLM_PROVIDER_2_ID", "claude"),
        ("LLM_PROVIDER_2_TYPE", "anthropic"),
        ("LLM_PROVIDER_2_ENDPOINT", "https://api.anthropic.com/v1"),
        ("LLM_PROVIDER_2_MODEL", "claude-sonnet-4"),
        ("DEFAULT_MODEL", "claude"),
    ]));
    assert_eq!(
        catalog.models(),
        [("local", "Local Llama"), ("claude", "claude")]
    );
    assert_eq!(catalog.default_id(), "claude");
    assert_eq!(catalog.types(), ["openai", "anthropic"]);
    let (settings, _) = catalog.get("local").expect("local");
    assert_eq!(
        (settings.kind, settings.model.as_str()),
        (ProviderKind::OpenAi, "llama3:8b")
    );
}
