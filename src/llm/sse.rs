//! A Server-Sent Events reader (the WHATWG `text/event-stream` format) over any
//! [`BufRead`], one event per call so the caller can check for cancellation between them.
//!
//! What the providers need, and no more: `event:` and `data:` fields, multi-line data
//! joined with `\n`, comments and `id:`/`retry:` ignored, lines ended by LF, CRLF or a
//! lone CR. Memory is bounded: a line or an event's data longer than the limit is an
//! error, so an upstream that never sends a newline cannot make us buffer without end.

use std::fmt;
use std::io::{self, BufRead};

/// Default cap on one line and on one event's data. Provider events are well under 1 KiB
/// per token; Dify's `message_end` can carry retrieval metadata of some tens of KiB.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// One dispatched event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field; `None` when the event had none (the spec's "message").
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

#[derive(Debug)]
pub enum SseError {
    Io(io::Error),
    /// A line or an event's data passed the limit given to [`SseReader::with_limit`].
    TooLong {
        limit: usize,
    },
}

impl fmt::Display for SseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SseError::Io(e) => write!(f, "reading the stream: {e}"),
            SseError::TooLong { limit } => write!(f, "event over {limit} bytes"),
        }
    }
}

impl std::error::Error for SseError {}

pub struct SseReader<R> {
    inner: R,
    limit: usize,
    line: Vec<u8>,
    /// The previous line ended with CR: an LF that follows belongs to it (CRLF), and may
    /// arrive in the next read.
    after_cr: bool,
    event: Option<String>,
    data: String,
    /// Whether any `data:` field was seen; `data:` with an empty value still counts.
    has_data: bool,
}

impl<R: BufRead> SseReader<R> {
    pub fn new(inner: R) -> Self {
        Self::with_limit(inner, MAX_EVENT_BYTES)
    }

    pub fn with_limit(inner: R, limit: usize) -> Self {
        SseReader {
            inner,
            limit,
            line: Vec::new(),
            after_cr: false,
            event: None,
            data: String::new(),
            has_data: false,
        }
    }

    /// The next event with data, or `None` at the end of the stream. Events without
    /// data (keep-alive `event: ping` blocks) are not dispatched, as the spec says; an
    /// event cut off by the end of the stream is dropped, since it may be incomplete.
    pub fn next_event(&mut self) -> Result<Option<Event>, SseError> {
        while self.read_line()? {
            if self.line.is_empty() {
                if let Some(event) = self.dispatch() {
                    return Ok(Some(event));
                }
            } else {
                self.field()?;
            }
        }
        Ok(None)
    }

    /// Reads one line, without its terminator, into `self.line`; false at the end of the
    /// stream (a final line without terminator is then discarded with its event).
    fn read_line(&mut self) -> Result<bool, SseError> {
        self.line.clear();
        loop {
            let buf = match self.inner.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(SseError::Io(e)),
            };
            if buf.is_empty() {
                return Ok(false);
            }
            let mut start = 0;
            if self.after_cr {
                self.after_cr = false;
                if buf[0] == b'\n' {
                    start = 1;
                }
            }
            let rest = &buf[start..];
            match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(end) => {
                    let fits = append(&mut self.line, &rest[..end], self.limit);
                    self.after_cr = rest[end] == b'\r';
                    self.inner.consume(start + end + 1);
                    fits?;
                    return Ok(true);
                }
                None => {
                    let fits = append(&mut self.line, rest, self.limit);
                    let used = buf.len();
                    self.inner.consume(used);
                    fits?;
                }
            }
        }
    }

    fn field(&mut self) -> Result<(), SseError> {
        let line = String::from_utf8_lossy(&self.line);
        if line.starts_with(':') {
            return Ok(());
        }
        let (name, value) = match line.split_once(':') {
            Some((name, value)) => (name, value.strip_prefix(' ').unwrap_or(value)),
            None => (&*line, ""),
        };
        match name {
            "event" => self.event = Some(value.to_owned()),
            "data" => {
                if self.data.len() + value.len() + 1 > self.limit {
                    return Err(SseError::TooLong { limit: self.limit });
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            // `id` and `retry` are for reconnecting clients; we never reconnect a stream.
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self) -> Option<Event> {
        let event = self.event.take();
        if !std::mem::take(&mut self.has_data) {
            return None;
        }
        Some(Event {
            event,
            data: std::mem::take(&mut self.data),
        })
    }
}

fn append(line: &mut Vec<u8>, bytes: &[u8], limit: usize) -> Result<(), SseError> {
    if line.len() + bytes.len() > limit {
        return Err(SseError::TooLong { limit });
    }
    line.extend_from_slice(bytes);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Read};

    /// Hands out its input in pieces of at most `step` bytes, so events and line endings
    /// straddle read boundaries the way they do on a network stream.
    struct Trickle<'a> {
        input: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.input.len());
            buf[..n].copy_from_slice(&self.input[..n]);
            self.input = &self.input[n..];
            Ok(n)
        }
    }

    fn events_in_steps(input: &str, step: usize) -> Vec<Event> {
        // A buffer as small as the step, so fill_buf never sees more than one piece.
        let reader = BufReader::with_capacity(
            step,
            Trickle {
                input: input.as_bytes(),
                step,
            },
        );
        let mut sse = SseReader::new(reader);
        let mut out = Vec::new();
        while let Some(event) = sse.next_event().expect("valid stream") {
            out.push(event);
        }
        out
    }

    fn events(input: &str) -> Vec<Event> {
        events_in_steps(input, 8192)
    }

    fn ev(event: Option<&str>, data: &str) -> Event {
        Event {
            event: event.map(str::to_owned),
            data: data.to_owned(),
        }
    }

    #[test]
    fn event_and_data_fields() {
        assert_eq!(
            events("event: content_block_delta\ndata: {\"a\":1}\n\ndata: plain\n\n"),
            vec![
                ev(Some("content_block_delta"), "{\"a\":1}"),
                ev(None, "plain")
            ]
        );
    }

    #[test]
    fn multi_line_data_is_joined_with_newlines() {
        assert_eq!(
            events("data: one\ndata:two\ndata\ndata:  three\n\n"),
            vec![ev(None, "one\ntwo\n\n three")]
        );
    }

    #[test]
    fn comments_id_retry_and_unknown_fields_are_ignored() {
        assert_eq!(
            events(": keep-alive\nid: 7\nretry: 100\nfoo: bar\ndata: x\n\n"),
            vec![ev(None, "x")]
        );
    }

    #[test]
    fn events_without_data_are_not_dispatched_and_do_not_leak_their_name() {
        assert_eq!(
            events("event: ping\n\n\n\ndata: x\n\n"),
            vec![ev(None, "x")]
        );
    }

    #[test]
    fn empty_data_field_still_dispatches() {
        assert_eq!(events("data:\n\n"), vec![ev(None, "")]);
    }

    #[test]
    fn crlf_and_lone_cr_end_lines() {
        let expected = vec![ev(Some("e"), "a"), ev(None, "b")];
        assert_eq!(
            events("event: e\r\ndata: a\r\n\r\ndata: b\r\n\r\n"),
            expected
        );
        assert_eq!(events("event: e\rdata: a\r\rdata: b\r\r"), expected);
    }

    #[test]
    fn every_chunk_boundary_gives_the_same_events() {
        let input = "event: message_start\r\ndata: {\"x\":\"é\"}\r\n\r\n: c\n\
                     data: [DONE]\n\nevent: e\rdata: 1\rdata: 2\r\r";
        let whole = events(input);
        assert_eq!(whole.len(), 3);
        assert_eq!(whole[2], ev(Some("e"), "1\n2"));
        for step in 1..input.len() {
            assert_eq!(events_in_steps(input, step), whole, "step {step}");
        }
    }

    #[test]
    fn unterminated_event_at_end_of_stream_is_dropped() {
        assert_eq!(events("data: a\n\ndata: cut"), vec![ev(None, "a")]);
        assert_eq!(events("data: a\n\ndata: b\n"), vec![ev(None, "a")]);
    }

    #[test]
    fn a_line_over_the_limit_is_an_error_without_buffering_it() {
        let long = format!("data: {}\n\n", "x".repeat(100));
        let mut sse = SseReader::with_limit(
            BufReader::with_capacity(
                4,
                Trickle {
                    input: long.as_bytes(),
                    step: 4,
                },
            ),
            32,
        );
        assert!(matches!(
            sse.next_event(),
            Err(SseError::TooLong { limit: 32 })
        ));
        assert!(sse.line.len() <= 32, "buffered {}", sse.line.len());
    }

    #[test]
    fn data_over_the_limit_across_lines_is_an_error() {
        let many = "data: 0123456789\n".repeat(10);
        let mut sse = SseReader::with_limit(many.as_bytes(), 64);
        assert!(matches!(
            sse.next_event(),
            Err(SseError::TooLong { limit: 64 })
        ));
    }

    #[test]
    fn lines_within_the_limit_pass() {
        let input = format!("data: {}\n\n", "y".repeat(26));
        let mut sse = SseReader::with_limit(input.as_bytes(), 32);
        assert_eq!(
            sse.next_event().expect("fits").map(|e| e.data.len()),
            Some(26)
        );
    }
}
