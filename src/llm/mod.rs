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
    /// Shared: every reply hands the session's whole history to a lane, and copying it
    /// (a string per turn) was ~20 allocations and copies per chat exchange.
    pub content: Arc<str>,
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
mod tests;
