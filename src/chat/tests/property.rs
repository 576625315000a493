//! A property test of the frame → engine path: thousands of random sequences from one
//! user (every frame type, valid and broken JSON, floods of one type, random session
//! ids), interleaved with job outcomes of every kind, refusals, ticks and a shutdown,
//! under a strict and a lax rate limit. After every event: nothing panicked, and every
//! queue is under its bound. A seeded PRNG keeps a failure reproducible: the message
//! names the seed.

use super::*;
use crate::chat::hub::HELD_FRAMES_MAX;
use crate::chat::session::WRITES_QUEUED_MAX;

const RUNS: u64 = 1000;
const STEPS: usize = 150;
/// Replies queue past the bound: each is owed to a message already admitted, and a
/// session owes at most two at once (`REPLY_HEADROOM`).
const WRITES_BOUND: usize = WRITES_QUEUED_MAX + 2;
const SOCKETS_MAX: usize = 4;

/// xorshift64*: small, seeded, good enough to pick events.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        (!items.is_empty()).then(|| &items[self.below(items.len())])
    }
}

struct Run {
    h: Harness,
    rng: Rng,
    open: Vec<SocketId>,
    /// Session ids the server named to the user, to name again.
    known: Vec<String>,
    shut_down: bool,
}

impl Run {
    fn session_id(&mut self) -> Option<String> {
        match self.rng.below(6) {
            0 => None,
            1 => Some(format!("made-up-{}", self.rng.below(1000))),
            2 => Some("bob-session".into()),
            _ => self.rng.pick(&self.known).cloned(),
        }
    }

    fn frame(&mut self) -> String {
        let session = self.session_id();
        let content = "x".repeat(self.rng.below(40));
        let mut frame = match self.rng.below(12) {
            0..=2 => serde_json::json!({"type": "user_message", "content": content}),
            3..=5 => {
                let model = ["echo", "gpt"][self.rng.below(2)];
                serde_json::json!({"type": "model_select", "model_id": model})
            }
            6 => serde_json::json!({"type": "model_select", "model_id": "nope"}),
            7 => serde_json::json!({"type": "stop"}),
            8 => serde_json::json!({"type": "ping", "metadata": {"last_seq": "3"}}),
            9 => {
                let kinds = [
                    "help_request",
                    "ai_response",
                    "pong",
                    "file_upload",
                    "bogus",
                ];
                serde_json::json!({"type": self.rng.pick(&kinds)})
            }
            10 => serde_json::json!({"type": "user_message"}),
            _ => return ["{", "[]", "null", "{\"type\":", "\u{0}"][self.rng.below(5)].into(),
        };
        if let Some(id) = session {
            frame["session_id"] = id.into();
        }
        frame.to_string()
    }

    /// An answer a store might give to this continuation, or a failure.
    fn store_result(&mut self, then: &Continuation) -> Outcome {
        let roll = self.rng.below(10);
        if roll == 0 {
            return Outcome::Refused;
        }
        if roll == 1 {
            return Outcome::Store(Err(StoreError::Unavailable("down".into())));
        }
        let reply = match then {
            Continuation::Resolve { .. } | Continuation::Load { .. } => {
                let id = format!("stored-{}", self.rng.below(4));
                let owner = if self.rng.below(5) == 0 { "bob" } else { "ann" };
                match self.rng.below(3) {
                    0 => StoreReply::Found(None),
                    _ => StoreReply::Found(Some(Box::new(stored_session(&id, owner, Vec::new())))),
                }
            }
            Continuation::Sweep => {
                StoreReply::Ended(self.rng.pick(&self.known).cloned().into_iter().collect())
            }
            _ if roll == 2 => return Outcome::Store(Err(StoreError::SessionFull)),
            _ => StoreReply::Appended(self.rng.below(10) as u64 + 1),
        };
        Outcome::Store(Ok(reply))
    }

    fn llm_result(&mut self) -> Outcome {
        match self.rng.below(8) {
            0..=4 => Outcome::Chunk(format!("w{} ", self.rng.below(100))),
            5 => Outcome::Finished(Ok(Finish::default())),
            6 => Outcome::Finished(Err(LlmError::Timeout)),
            _ => Outcome::Refused,
        }
    }

    fn step(&mut self) {
        let out = match self.rng.below(20) {
            0 if self.open.len() < SOCKETS_MAX => {
                let named = self.session_id();
                let (socket, out) = self.h.open("ann", named.as_deref(), Resume::default());
                self.open.push(socket);
                out
            }
            1 => {
                let Some(&socket) = self.rng.pick(&self.open) else {
                    return;
                };
                self.open.retain(|&s| s != socket);
                self.h.event(Event::Closed { socket })
            }
            2 => {
                let Some(&socket) = self.rng.pick(&self.open) else {
                    return;
                };
                self.h.event(Event::Flushed { socket })
            }
            3..=6 => {
                let ids: Vec<JobId> = self.h.jobs.keys().copied().collect();
                let Some(&id) = self.rng.pick(&ids) else {
                    return;
                };
                let outcome = match &self.h.jobs[&id] {
                    Continuation::Reply { .. } => self.llm_result(),
                    then => {
                        let then = then.clone();
                        self.store_result(&then)
                    }
                };
                self.h.done(id, outcome)
            }
            7 => {
                self.h
                    .advance(Duration::from_millis(self.rng.below(120_000) as u64));
                self.h.event(Event::Tick)
            }
            8 if self.rng.below(50) == 0 => {
                self.shut_down = true;
                self.h.event(Event::Shutdown)
            }
            9 => {
                // A flood: one frame, many times.
                let Some(&socket) = self.rng.pick(&self.open) else {
                    return;
                };
                let text = self.frame();
                for _ in 0..self.rng.below(100) {
                    let out = self.h.send(socket, &text);
                    self.learn(&out);
                    self.check();
                }
                return;
            }
            _ => {
                let Some(&socket) = self.rng.pick(&self.open) else {
                    return;
                };
                let text = self.frame();
                self.h.send(socket, &text)
            }
        };
        self.learn(&out);
        self.check();
    }

    fn learn(&mut self, out: &Out) {
        for effect in &out.0 {
            if let Effect::Send(_, text) = effect {
                let frame: Value = serde_json::from_str(text).expect("frames are JSON");
                if let Some(id) = frame["session_id"].as_str() {
                    if !self.known.iter().any(|k| k == id) && self.known.len() < 16 {
                        self.known.push(id.to_owned());
                    }
                }
            }
        }
    }

    fn check(&self) {
        let footprint = self.h.chat.footprint();
        assert!(footprint.writes_queued <= WRITES_BOUND, "{footprint:?}");
        assert!(footprint.frames_held <= HELD_FRAMES_MAX, "{footprint:?}");
        assert!(
            footprint.rate_buckets <= 2,
            "one user, two budgets: {footprint:?}"
        );
        assert_eq!(footprint.sockets, self.open.len(), "{footprint:?}");
        if !self.shut_down {
            // One write in flight per session.
            let mut writing: Vec<&str> = self
                .h
                .jobs
                .values()
                .filter_map(|then| match then {
                    Continuation::Write { session_id, .. } => Some(session_id.as_str()),
                    _ => None,
                })
                .collect();
            let all = writing.len();
            writing.sort_unstable();
            writing.dedup();
            assert_eq!(writing.len(), all, "two writes of a session in flight");
        }
    }
}

#[test]
fn random_frames_from_one_user_keep_every_queue_bounded() {
    for seed in 1..=RUNS {
        let mut s = settings();
        // Half the runs with a limit no flood reaches, to load the queues behind it.
        s.chat.rate_limit = if seed % 2 == 0 { 5 } else { 1_000_000 };
        s.chat.max_messages = 1000;
        let mut run = Run {
            h: Harness::with(s),
            rng: Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            open: Vec::new(),
            known: Vec::new(),
            shut_down: false,
        };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            for _ in 0..STEPS {
                run.step();
            }
        }));
        if let Err(panic) = result {
            eprintln!("seed {seed} failed");
            std::panic::resume_unwind(panic);
        }
    }
}
