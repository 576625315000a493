//! LLM providers. A [`Provider`] turns a conversation into a stream of text chunks; it is
//! blocking and runs on the `llm` lane only. [`run`] adds what every provider shares:
//! retries before the first chunk, the whole-stream timeout and cancellation. [`Catalog`]
//! holds the configured providers by id.
//!
//! Cancellation has two halves. The sink's flag is checked between upstream events and
//! during back-off (and `Sink::chunk` returning false stops at once). The request's
//! [`Abort`], fired from the loop's thread, shuts the upstream socket down, so a provider
//! that sends nothing (not accepting, not answering, or silent mid-stream) releases the
//! lane thread at once instead of holding it until a timeout.

mod abort;
mod anthropic;
mod dify;
mod echo;
mod openai;
pub mod sse;
mod transport;
mod upstream;

pub use abort::Abort;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{LlmConfig, ProviderConfig, ProviderKind};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Turn {
    pub role: Role,
    pub content: String,
}

/// One streamed completion request.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// The provider's model name (`LLM_PROVIDER_<n>_MODEL`).
    pub model: &'a str,
    /// The conversation, oldest first; the last turn is the user's new message.
    pub turns: &'a [Turn],
    pub user_id: &'a str,
    /// Dify's conversation id from an earlier turn of the same session.
    pub conversation_id: Option<&'a str>,
    /// Stops the request from another thread, even mid-read.
    pub abort: &'a Abort,
}

/// How a stream that was not cancelled ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Finish {
    /// Provider-reported usage, when it reported any.
    pub total_tokens: Option<u64>,
    /// Dify's conversation id, to send with the session's next turn.
    pub conversation_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LlmError {
    /// Before the first chunk: the provider refused or could not be reached.
    /// `retryable` for connection errors, timeouts before the headers, 429 and 5xx.
    Unavailable { retryable: bool, detail: String },
    /// `LLM_STREAM_TIMEOUT` passed.
    Timeout,
    /// The stream broke after chunks had arrived.
    Interrupted { detail: String },
    /// The sink asked to stop (the user pressed stop, the session ended, shutdown).
    Cancelled,
}

impl fmt::Display for LlmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LlmError::Unavailable { detail, .. } => write!(f, "provider unavailable: {detail}"),
            LlmError::Timeout => f.write_str("stream timed out"),
            LlmError::Interrupted { detail } => write!(f, "stream interrupted: {detail}"),
            LlmError::Cancelled => f.write_str("cancelled"),
        }
    }
}

impl std::error::Error for LlmError {}

/// Receives chunks as they arrive.
pub trait Sink {
    /// Takes one chunk; returns false when the stream should stop (cancelled), and the
    /// provider then drops the upstream connection at once.
    fn chunk(&mut self, text: &str) -> bool;

    /// Checked between upstream reads and during retry back-off.
    fn cancelled(&self) -> bool;
}

pub trait Provider: Send + Sync {
    /// Streams one completion into `sink`. `deadline` bounds the whole call.
    fn stream(
        &self,
        request: &Request,
        deadline: std::time::Instant,
        sink: &mut dyn Sink,
    ) -> Result<Finish, LlmError>;
}

/// How often and after which pauses [`RetryPolicy::run`] tries again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The pause before each further try: `backoff.len() + 1` tries in all.
    pub backoff: &'static [Duration],
}

/// How often a back-off pause looks at [`Sink::cancelled`]: a stop during the pause is
/// answered within this.
const CANCEL_POLL: Duration = Duration::from_millis(50);

impl RetryPolicy {
    /// `spec/websocket.md`: 3 tries, 1 s then 2 s apart.
    pub const SPEC: RetryPolicy = RetryPolicy {
        backoff: &[Duration::from_secs(1), Duration::from_secs(2)],
    };

    /// Streams `request` from `provider` into `sink` within `timeout`, trying again after
    /// a retryable [`LlmError::Unavailable`] as long as no chunk reached the sink: once
    /// the user has seen text, a second try would repeat or contradict it.
    ///
    /// When the next pause would not end before the deadline, the last error is returned
    /// at once: it says more than a [`LlmError::Timeout`] after waiting for nothing.
    pub fn run(
        &self,
        provider: &dyn Provider,
        request: &Request,
        timeout: Duration,
        sink: &mut dyn Sink,
    ) -> Result<Finish, LlmError> {
        let deadline = Instant::now() + timeout;
        let mut pauses = self.backoff.iter();
        loop {
            if sink.cancelled() {
                return Err(LlmError::Cancelled);
            }
            if Instant::now() >= deadline {
                return Err(LlmError::Timeout);
            }
            let mut watched = Watched {
                sink: &mut *sink,
                delivered: false,
            };
            let error = match provider.stream(request, deadline, &mut watched) {
                Ok(finish) => return Ok(finish),
                // A provider must not report "unavailable" after chunks; should one do
                // so, the caller still has to learn that the reply broke off.
                Err(LlmError::Unavailable { detail, .. }) if watched.delivered => {
                    return Err(LlmError::Interrupted { detail })
                }
                Err(
                    error @ LlmError::Unavailable {
                        retryable: true, ..
                    },
                ) => error,
                Err(error) => return Err(error),
            };
            let Some(&pause) = pauses.next() else {
                return Err(error);
            };
            if Instant::now() + pause >= deadline {
                return Err(error);
            }
            log::warn!("llm: {error}; trying again in {pause:?}");
            let until = Instant::now() + pause;
            while let Some(left) = until.checked_duration_since(Instant::now()) {
                if sink.cancelled() {
                    return Err(LlmError::Cancelled);
                }
                std::thread::sleep(left.min(CANCEL_POLL));
            }
        }
    }
}

/// [`RetryPolicy::run`] with [`RetryPolicy::SPEC`].
pub fn run(
    provider: &dyn Provider,
    request: &Request,
    timeout: Duration,
    sink: &mut dyn Sink,
) -> Result<Finish, LlmError> {
    RetryPolicy::SPEC.run(provider, request, timeout, sink)
}

/// Passes chunks through and notes whether any went by.
struct Watched<'a> {
    sink: &'a mut dyn Sink,
    delivered: bool,
}

impl Sink for Watched<'_> {
    fn chunk(&mut self, text: &str) -> bool {
        self.delivered = true;
        self.sink.chunk(text)
    }

    fn cancelled(&self) -> bool {
        self.sink.cancelled()
    }
}

/// The configured providers by id, in configuration order, each ready to stream.
pub struct Catalog {
    entries: Vec<(ProviderConfig, Arc<dyn Provider>)>,
    default_id: String,
}

impl Catalog {
    /// `config.providers` is never empty (the built-in echo provider stands in for none)
    /// and `config.default_model` is always one of them: `Config` checks both.
    pub fn new(config: &LlmConfig) -> Catalog {
        let client = upstream::client();
        let entries = config
            .providers
            .iter()
            .map(|p| {
                let provider: Arc<dyn Provider> = match p.kind {
                    ProviderKind::OpenAi => Arc::new(openai::OpenAi::new(
                        client.clone(),
                        &p.endpoint,
                        p.api_key.clone(),
                    )),
                    ProviderKind::Anthropic => Arc::new(anthropic::Anthropic::new(
                        client.clone(),
                        &p.endpoint,
                        p.api_key.clone(),
                    )),
                    ProviderKind::Dify => Arc::new(dify::Dify::new(
                        client.clone(),
                        &p.endpoint,
                        p.api_key.clone(),
                    )),
                    ProviderKind::Echo => Arc::new(echo::Echo),
                };
                (p.clone(), provider)
            })
            .collect();
        Catalog {
            entries,
            default_id: config.default_model.clone(),
        }
    }

    /// `(id, display name)` of every provider, in configuration order.
    pub fn models(&self) -> Vec<(&str, &str)> {
        self.entries
            .iter()
            .map(|(p, _)| (p.id.as_str(), p.name.as_str()))
            .collect()
    }

    /// The type of every provider (`openai`, `anthropic`, `dify`, `echo`), in
    /// configuration order; two providers of one type give it twice.
    pub fn types(&self) -> Vec<&'static str> {
        self.entries.iter().map(|(p, _)| p.kind.as_str()).collect()
    }

    pub fn default_id(&self) -> &str {
        &self.default_id
    }

    /// The provider's settings (`model` is the upstream model name for
    /// [`Request::model`]) and the provider itself, shareable with a lane thread.
    pub fn get(&self, id: &str) -> Option<(&ProviderConfig, Arc<dyn Provider>)> {
        self.entries
            .iter()
            .find(|(p, _)| p.id == id)
            .map(|(p, provider)| (p, Arc::clone(provider)))
    }
}

#[cfg(test)]
mod tests {
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
}
