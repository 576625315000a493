//! What the HTTP providers share: one `ureq` configuration, sending the request, sorting
//! failures into [`LlmError`]s, and the read loop that feeds decoded SSE events to the
//! sink. A failure after the request's [`Abort`] fired is a cancellation, whatever the
//! shut-down socket made ureq report.

use std::io::{BufReader, Read};
use std::time::{Duration, Instant};

use ureq::BodyReader;

use super::abort::Abort;
use super::sse::{Event, SseError, SseReader};
use super::transport::Client;
use super::{Finish, LlmError, Sink};

/// Spec: "Header timeout 30 s". Bounds a provider that accepts the request and then
/// never answers, so the retry still has time left.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Spec: upstream error bodies are cut at 1 KiB in logs.
const ERROR_BODY_LIMIT: u64 = 1024;

pub type Events = SseReader<BufReader<BodyReader<'static>>>;

/// The settings every provider request is made with.
pub fn client() -> Client {
    let config = ureq::Agent::config_builder()
        // Error statuses come back as responses so their body can be logged.
        .http_status_as_error(false)
        .timeout_recv_response(Some(HEADER_TIMEOUT))
        // A redirect of a POST to an API is a misconfigured endpoint; following it would
        // either refuse (307/308) or turn the call into a GET (301/302). Report it instead.
        .max_redirects(0)
        .max_redirects_will_error(false)
        .user_agent(concat!("chatbox/", env!("CARGO_PKG_VERSION")))
        .build();
    Client::new(config)
}

/// `{endpoint}/{path}`, whether or not the endpoint ends with `/`.
pub fn join(endpoint: &str, path: &str) -> String {
    format!("{}/{}", endpoint.trim_end_matches('/'), path)
}

/// POSTs `body` as JSON and returns the event stream of a 2xx answer. Every other answer
/// is [`LlmError::Unavailable`] with the status and the start of the body for the log.
/// Firing `abort` stops it at any point, connect and response head included.
pub fn open(
    client: &Client,
    abort: &Abort,
    url: &str,
    headers: &[(&str, String)],
    body: &serde_json::Value,
    deadline: Instant,
) -> Result<Events, LlmError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(LlmError::Timeout);
    }
    let mut request = client
        .agent(abort)
        .post(url)
        .config()
        .timeout_global(Some(left))
        .build()
        .header("content-type", "application/json")
        .header("accept", "text/event-stream");
    for (name, value) in headers {
        request = request.header(*name, value.as_str());
    }
    let response = request
        .send(body.to_string().as_bytes())
        .map_err(|e| request_error(e, abort, deadline))?;
    let status = response.status().as_u16();
    if !response.status().is_success() {
        return Err(LlmError::Unavailable {
            retryable: status == 429 || status >= 500,
            detail: format!(
                "HTTP {status}: {}",
                error_body(response.into_body().into_reader())
            ),
        });
    }
    Ok(SseReader::new(BufReader::new(
        response.into_body().into_reader(),
    )))
}

/// The first KiB of an error body, quoted so that newlines and control characters in
/// it cannot forge log lines.
fn error_body(reader: impl Read) -> String {
    let mut bytes = Vec::new();
    match reader.take(ERROR_BODY_LIMIT).read_to_end(&mut bytes) {
        Ok(_) => format!("{:?}", String::from_utf8_lossy(&bytes)),
        Err(e) => format!("(body unreadable: {e})"),
    }
}

fn request_error(error: ureq::Error, abort: &Abort, deadline: Instant) -> LlmError {
    if abort.is_fired() {
        return LlmError::Cancelled;
    }
    if Instant::now() >= deadline || matches!(error, ureq::Error::Timeout(ureq::Timeout::Global)) {
        return LlmError::Timeout;
    }
    // Network trouble may pass; a bad URL, a header the key cannot form, or a TLS
    // certificate that does not verify will fail the same way on every try.
    let retryable = matches!(
        error,
        ureq::Error::Io(_)
            | ureq::Error::Timeout(_)
            | ureq::Error::HostNotFound
            | ureq::Error::ConnectionFailed
            | ureq::Error::Protocol(_)
    );
    LlmError::Unavailable {
        retryable,
        detail: error.to_string(),
    }
}

/// What one event means to a provider's stream.
pub enum Step {
    Text(String),
    /// Bookkeeping (usage, ids) or an event we have no use for.
    Continue,
    /// The provider's end marker.
    End,
    /// The provider reported an error inside the stream.
    Fail {
        retryable: bool,
        detail: String,
    },
}

/// A provider's wire format: turns events into [`Step`]s and remembers what the
/// [`Finish`] needs.
pub trait Decoder {
    fn decode(&mut self, event: &Event) -> Step;

    /// Whether the stream ending without the end marker still counts as complete.
    fn complete_at_eof(&self) -> bool {
        false
    }

    fn finish(&mut self) -> Finish;
}

/// Reads events until the end marker, the stream breaks, or the sink stops it. Returning
/// drops `events`, which closes the connection when the body was not read to its end:
/// that is how a stop seen between events aborts the upstream request. A stop while a
/// read waits comes through `abort`, which ends that read with an error or an EOF.
pub fn drive(
    mut events: Events,
    decoder: &mut dyn Decoder,
    sink: &mut dyn Sink,
    abort: &Abort,
    deadline: Instant,
) -> Result<Finish, LlmError> {
    let mut delivered = false;
    loop {
        if sink.cancelled() {
            return Err(LlmError::Cancelled);
        }
        let next = events.next_event();
        if abort.is_fired() {
            return Err(LlmError::Cancelled);
        }
        let event = match next {
            Ok(Some(event)) => event,
            Ok(None) if decoder.complete_at_eof() => return Ok(decoder.finish()),
            Ok(None) => {
                return Err(broken(
                    "the stream ended before its end marker".into(),
                    delivered,
                    deadline,
                ))
            }
            Err(SseError::Io(e)) => {
                let error = ureq::Error::from(e);
                if matches!(error, ureq::Error::Timeout(ureq::Timeout::Global)) {
                    return Err(LlmError::Timeout);
                }
                return Err(broken(error.to_string(), delivered, deadline));
            }
            Err(e @ SseError::TooLong { .. }) => {
                return Err(broken(e.to_string(), delivered, deadline))
            }
        };
        match decoder.decode(&event) {
            Step::Text(text) if text.is_empty() => {}
            Step::Text(text) => {
                delivered = true;
                if !sink.chunk(&text) {
                    return Err(LlmError::Cancelled);
                }
            }
            Step::Continue => {}
            Step::End => return Ok(decoder.finish()),
            Step::Fail { retryable, detail } if !delivered => {
                return Err(LlmError::Unavailable { retryable, detail })
            }
            Step::Fail { detail, .. } => return Err(LlmError::Interrupted { detail }),
        }
    }
}

/// A stream that broke: before any chunk the whole call can be tried again unseen.
fn broken(detail: String, delivered: bool, deadline: Instant) -> LlmError {
    if Instant::now() >= deadline {
        LlmError::Timeout
    } else if delivered {
        LlmError::Interrupted { detail }
    } else {
        LlmError::Unavailable {
            retryable: true,
            detail,
        }
    }
}

/// Parses an event's JSON; a provider sending something else is misbehaving, and
/// sending the same request again will not change that.
pub fn parse<T: serde::de::DeserializeOwned>(event: &Event) -> Result<T, Step> {
    serde_json::from_str(&event.data).map_err(|e| Step::Fail {
        retryable: false,
        detail: format!("unexpected event data ({e}): {:?}", clip(&event.data)),
    })
}

/// At most 1 KiB of `text`, cut at a character boundary, for error details.
fn clip(text: &str) -> &str {
    let mut end = text.len().min(ERROR_BODY_LIMIT as usize);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_tolerates_a_trailing_slash() {
        assert_eq!(
            join("http://h:1/v1", "chat/completions"),
            "http://h:1/v1/chat/completions"
        );
        assert_eq!(
            join("http://h:1/v1//", "messages"),
            "http://h:1/v1/messages"
        );
    }

    #[test]
    fn clip_cuts_at_a_char_boundary() {
        let text = "é".repeat(600);
        let clipped = clip(&text);
        assert!(clipped.len() <= 1024 && clipped.len() >= 1022);
        assert!(clipped.chars().all(|c| c == 'é'));
        assert_eq!(clip("short"), "short");
    }

    #[test]
    fn a_break_before_any_chunk_is_retryable_after_one_is_interrupted() {
        let later = Instant::now() + Duration::from_secs(60);
        assert_eq!(
            broken("x".into(), false, later),
            LlmError::Unavailable {
                retryable: true,
                detail: "x".into()
            }
        );
        assert_eq!(
            broken("x".into(), true, later),
            LlmError::Interrupted { detail: "x".into() }
        );
        assert_eq!(broken("x".into(), true, Instant::now()), LlmError::Timeout);
    }
}
