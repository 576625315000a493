//! A reply streaming from the LLM, and how much of it each socket has been sent.
//!
//! Every chunk gets the next sequence number. A socket is sent what it has not seen yet
//! and then waits for its queue to drain before it is sent more, so when chunks arrive
//! faster than a socket reads they are coalesced into one frame instead of piling up.
//! The same bookkeeping serves a socket that binds mid-stream: it is sent the reply so
//! far (or from the `last_seq` it reports) in one frame, then the live chunks.

use std::time::Instant;

use super::jobs::JobId;
use super::socket::SocketId;
use crate::store::Millis;

pub struct Reply {
    pub job: JobId,
    pub message_id: String,
    pub model_id: String,
    pub text: String,
    /// `ends[n - 1]` is the length of `text` after chunk `n`.
    ends: Vec<usize>,
    pub started: Instant,
    pub started_at: Millis,
    /// The socket whose message asked for this reply: errors go there.
    pub origin: SocketId,
    /// Bytes of the conversation sent, for the usage estimate when the provider
    /// reports none.
    pub prompt_bytes: usize,
    /// A reply streaming in another process, mirrored here: when it was last heard of.
    /// Such a reply has no job here and is neither stopped nor stored by this process.
    pub mirror: Option<Instant>,
}

impl Reply {
    pub fn new(
        job: JobId,
        message_id: String,
        model_id: String,
        origin: SocketId,
        started: Instant,
        started_at: Millis,
        prompt_bytes: usize,
    ) -> Reply {
        Reply {
            job,
            message_id,
            model_id,
            text: String::new(),
            ends: Vec::new(),
            started,
            started_at,
            origin,
            prompt_bytes,
            mirror: None,
        }
    }

    pub fn seq(&self) -> u64 {
        self.ends.len() as u64
    }

    pub fn push(&mut self, chunk: &str) {
        self.text.push_str(chunk);
        self.ends.push(self.text.len());
    }

    /// The text after chunk `seq` (all of it for 0; nothing for a seq not reached).
    pub fn since(&self, seq: u64) -> &str {
        let start = match seq {
            0 => 0,
            n => usize::try_from(n - 1)
                .ok()
                .and_then(|i| self.ends.get(i))
                .copied()
                .unwrap_or(self.text.len()),
        };
        &self.text[start..]
    }
}

/// What one socket has received of the current reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub message_id: String,
    pub sent_seq: u64,
    /// A frame is queued on the socket and not yet written: hold further chunks.
    pub awaiting_flush: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_since_a_seq() {
        let socket = SocketId(1);
        let mut reply = Reply::new(1, "m".into(), "echo".into(), socket, Instant::now(), 0, 0);
        assert_eq!((reply.seq(), reply.since(0)), (0, ""));
        for chunk in ["Hel", "lo ", "wörld"] {
            reply.push(chunk);
        }
        assert_eq!(reply.seq(), 3);
        assert_eq!(reply.since(0), "Hello wörld");
        assert_eq!(reply.since(1), "lo wörld");
        assert_eq!(reply.since(2), "wörld");
        assert_eq!(reply.since(3), "");
        assert_eq!(
            reply.since(9),
            "",
            "a seq from the future has nothing missing"
        );
    }
}
