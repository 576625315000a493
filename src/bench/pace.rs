//! Paced load: each connection sends its next message a think time after it got the
//! previous answer, as a user who reads and types would, instead of at once (the closed
//! loop). The think time is `mean` jittered uniformly by ±50 %, from a small deterministic
//! PRNG, so the connections do not fall into step; the offered load is then about
//! `connections / mean` messages per second, whatever the server's speed (as long as it
//! keeps up).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// How the connections of a run send their messages.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Load {
    /// One message always in flight per connection: the next is sent on the answer.
    Closed,
    /// The next message `mean` ±50 % after the answer.
    Paced { mean: Duration },
}

impl Load {
    /// Messages per second that `conns` connections offer (paced only).
    pub fn offered(self, conns: usize) -> Option<f64> {
        match self {
            Load::Closed => None,
            Load::Paced { mean } => Some(conns as f64 / mean.as_secs_f64()),
        }
    }

    /// One line for titles: what the mode is.
    pub fn describe(self) -> String {
        match self {
            Load::Closed => "closed loop (every socket always has a message in flight)".into(),
            Load::Paced { mean } => format!(
                "paced (each socket sends {} ms ±50 % after its previous answer)",
                mean.as_millis()
            ),
        }
    }
}

/// splitmix64: tiny, deterministic, and good enough to spread think times.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, span)` nanoseconds (the modulo bias is below 2^-40 here).
    fn below(&mut self, span: Duration) -> Duration {
        let span_ns = span.as_nanos().clamp(1, u128::from(u64::MAX)) as u64;
        Duration::from_nanos(self.next() % span_ns)
    }
}

/// The send times due, earliest first: a min-heap of (due, slot).
pub struct Pacer {
    mean: Duration,
    rng: SplitMix64,
    due: BinaryHeap<Reverse<(Instant, usize)>>,
}

impl Pacer {
    pub fn new(mean: Duration) -> Pacer {
        Pacer {
            mean,
            rng: SplitMix64(0x5eed_c4a7_b0c5),
            due: BinaryHeap::new(),
        }
    }

    /// The first message of `slot`: at a uniform point of the first `mean`, so that the
    /// run starts at its steady rate rather than with every connection at once.
    pub fn start(&mut self, slot: usize, now: Instant) {
        let at = now + self.rng.below(self.mean);
        self.due.push(Reverse((at, slot)));
    }

    /// The next message of `slot`, which got its answer at `now`: `mean` ±50 % later.
    pub fn after_answer(&mut self, slot: usize, now: Instant) {
        let at = now + self.mean / 2 + self.rng.below(self.mean);
        self.due.push(Reverse((at, slot)));
    }

    /// How long a poll may wait: until the earliest send due, at most `cap`.
    pub fn timeout(&self, now: Instant, cap: Duration) -> Duration {
        match self.due.peek() {
            Some(Reverse((at, _))) => cap.min(at.saturating_duration_since(now)),
            None => cap,
        }
    }

    /// A slot whose send is due at `now`, earliest first.
    pub fn pop_due(&mut self, now: Instant) -> Option<usize> {
        match self.due.peek() {
            Some(Reverse((at, _))) if *at <= now => self.due.pop().map(|Reverse((_, s))| s),
            _ => None,
        }
    }
}
