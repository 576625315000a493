//! Fuzzes the SSE reader the LLM providers stream through (`chatbox::llm::sse`): the same
//! bytes must give the same events however the network splits them, and memory stays
//! bounded by the limit.
//!
//! Input: `[c0 c1 c2 c3] [limit] stream...`: reads of the stream deliver `c[i % 4]` bytes
//! (0 = everything left) through a `BufReader` of 1–16 bytes (`c0`), so lines and CRLF
//! pairs are cut at every place; `limit` (1–256) caps a line and an event's data.
//!
//! Invariants: never panics; the events (and the error that ends them, if any) equal
//! those of the whole stream read at once; no event's data is over the limit.
#![no_main]

use std::io::{BufReader, Read};

use chatbox::llm::sse::{Event, SseError, SseReader};
use libfuzzer_sys::fuzz_target;

/// A reader that hands out the stream in the given sizes.
struct Chunked<'a> {
    data: &'a [u8],
    sizes: [u8; 4],
    read: usize,
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let size = match self.sizes[self.read % 4] {
            0 => self.data.len(),
            n => usize::from(n),
        };
        self.read += 1;
        let n = size.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// Every event until the end or an error, the error as text.
fn events(mut reader: SseReader<impl std::io::BufRead>) -> (Vec<Event>, Option<String>) {
    let mut out = Vec::new();
    // Bounded: each event consumes at least one byte of a finite input.
    loop {
        match reader.next_event() {
            Ok(Some(event)) => out.push(event),
            Ok(None) => return (out, None),
            Err(error @ SseError::TooLong { .. }) => return (out, Some(error.to_string())),
            Err(SseError::Io(error)) => panic!("an in-memory read failed: {error}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [c0, c1, c2, c3, limit, stream @ ..] = data else {
        return;
    };
    let limit = usize::from(*limit).max(1);
    let whole = events(SseReader::with_limit(stream, limit));
    let chunked = Chunked {
        data: stream,
        sizes: [*c0, *c1, *c2, *c3],
        read: 0,
    };
    let capacity = usize::from(c0 % 16) + 1;
    let split = events(SseReader::with_limit(
        BufReader::with_capacity(capacity, chunked),
        limit,
    ));
    assert_eq!(whole, split, "the events depend on how the stream was split");
    for event in &whole.0 {
        assert!(event.data.len() <= limit, "data over the limit: {event:?}");
    }
});
