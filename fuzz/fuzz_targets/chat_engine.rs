//! Fuzzes the chat state machine (`chatbox::chat::engine::Chat`) with arbitrary sequences
//! of events: sockets of three users connecting and closing, frames (well-formed,
//! malformed, naming their own, someone else's or unknown sessions), drains, ticks, and
//! job outcomes of every kind, including outcomes that do not match the job (a lane
//! returning nonsense must not break the core). Outcomes come back as the executor
//! hands them: with the job's continuation, a store job's once, a stream's chunks until
//! its one end.
//!
//! Input: a sequence of 3-byte ops `[what, a, b]`; see `step` for the meaning.
//!
//! Invariants:
//! - never panics;
//! - every frame goes to a socket that is connected, and is a JSON object with `type`,
//!   `timestamp` and `sender`;
//! - every error frame carries a code of spec/websocket.md §Error frame;
//! - no frame naming a session reaches a socket of a user other than the session's owner
//!   (owners are learnt from the `connection_status` frames the server sends);
//! - job ids are never reused;
//! - whatever the frames, every queue stays under its bound: a session's queued writes
//!   (`WRITES_QUEUED_MAX`, plus the two replies a session may owe), a socket's held
//!   frames (`HELD_FRAMES_MAX`), one rate bucket per user and budget;
//! - until shutdown, one store write per session in flight; after it, a session's last
//!   writes come as one job that waits for its write in flight.
//!
//! `CHATBOX_FUZZ_TRACE=1` prints every event and effect to stderr (for triage: run the
//! target binary on one input file).
#![no_main]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chatbox::chat::engine::{Chat, Effect, Event, Now, Settings};
use chatbox::chat::hub::{Resume, User, HELD_FRAMES_MAX};
use chatbox::chat::jobs::{Continuation, JobDone, JobId, Outcome, StoreReply, Work};
use chatbox::chat::protocol::ModelInfo;
use chatbox::chat::session::WRITES_QUEUED_MAX;
use chatbox::chat::socket::SocketId;
use chatbox::config::ChatConfig;
use chatbox::llm::{Finish, LlmError};
use chatbox::store::{Message, Sender, Session, StoreError, Transcript};
use libfuzzer_sys::fuzz_target;

const USERS: [&str; 3] = ["ann", "bob", "cy"];
/// Replies queue past `WRITES_QUEUED_MAX`: each is owed, and a session owes two at most.
const WRITES_BOUND: usize = WRITES_QUEUED_MAX + 2;
/// Sockets open at once, at most.
const SOCKETS: usize = 32;
const CODES: [&str; 9] = [
    "INVALID_FORMAT",
    "MISSING_FIELD",
    "UNAUTHORIZED",
    "NOT_FOUND",
    "TOO_MANY_REQUESTS",
    "LLM_UNAVAILABLE",
    "LLM_TIMEOUT",
    "DATABASE_ERROR",
    "SERVICE_ERROR",
];

struct Harness {
    chat: Chat,
    /// The last socket id handed out.
    last_socket: u64,
    start: Instant,
    elapsed: Duration,
    /// Open sockets and their user.
    open: Vec<(SocketId, &'static str)>,
    /// Sessions the server told a socket about, and whose they are, in the order they
    /// were learnt: inputs pick sessions by index, so a replay picks the same ones even
    /// though ids are random.
    owners: Vec<(String, &'static str)>,
    /// Jobs in flight and their continuations, as the executor keeps them.
    store_jobs: Vec<(JobId, Continuation)>,
    llm_jobs: Vec<(JobId, Continuation)>,
    seen_jobs: HashSet<JobId>,
    shut_down: bool,
}

fn settings() -> Settings {
    Settings {
        models: vec![
            ModelInfo {
                id: "echo".into(),
                name: "Echo".into(),
            },
            ModelInfo {
                id: "gpt".into(),
                name: "GPT".into(),
            },
        ],
        default_model: "echo".into(),
        stream_timeout: Duration::from_secs(5),
        chat: ChatConfig {
            context_messages: 4,
            max_messages: 6,
            rate_limit: 5,
            rate_window: Duration::from_secs(10),
            rate_cleanup: Duration::from_secs(30),
            reconnect_timeout: Duration::from_secs(20),
            session_ttl: Duration::from_secs(40),
            sweep_interval: Duration::from_secs(15),
        },
        help_escalation_after: Some(Duration::from_secs(30)),
        files_path: "/chatbox/files/".into(),
    }
}

fn session(id: &str, owner: &str, ended: bool) -> Transcript {
    Transcript {
        session: Session {
            ended_at: ended.then_some(1),
            message_count: 1,
            ..Session::new(id, owner, "n", "", 0)
        },
        messages: vec![Message::new("m", Sender::User, "earlier", 0)],
    }
}

impl Harness {
    fn now(&self) -> Now {
        Now {
            at: self.start + self.elapsed,
            ms: 1_700_000_000_000 + self.elapsed.as_millis() as i64,
        }
    }

    fn pick<T: Clone>(items: &[T], byte: u8) -> Option<T> {
        Self::index(items, byte).map(|i| items[i].clone())
    }

    fn index<T>(items: &[T], byte: u8) -> Option<usize> {
        (!items.is_empty()).then(|| byte as usize % items.len())
    }

    /// A session id to name in a frame or handshake: a known one, or not.
    fn session_id(&self, byte: u8) -> Option<String> {
        let known: Vec<String> = self.owners.iter().map(|(id, _)| id.clone()).collect();
        match byte % 4 {
            0 => None,
            1 => Some("unknown-session".into()),
            _ => Self::pick(&known, byte / 4),
        }
    }

    fn frame_text(&self, a: u8, b: u8) -> String {
        let session = self.session_id(b);
        let mut frame = match a % 9 {
            0 | 1 => serde_json::json!({"type": "user_message", "content": format!("hi {b}")}),
            2 => serde_json::json!({"type": "stop"}),
            3 => serde_json::json!({"type": "model_select", "model_id": "gpt"}),
            4 => serde_json::json!({"type": "model_select", "model_id": "nope"}),
            5 => serde_json::json!({"type": "ping", "metadata": {"last_seq": b}}),
            6 => serde_json::json!({"type": "help_request"}),
            7 => serde_json::json!({"type": "user_message"}),
            _ => return String::from_utf8_lossy(&[a, b, b'{']).into_owned(),
        };
        if let Some(id) = session {
            frame["session_id"] = id.into();
        }
        frame.to_string()
    }

    /// The store is honest about owners: a session it returns belongs to whoever the
    /// server already told about it, else to a user fixed by its id.
    fn owner_of(&self, id: &str) -> &'static str {
        self.owner(id).unwrap_or_else(|| {
            let hash = id
                .bytes()
                .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b.into()));
            USERS[hash % USERS.len()]
        })
    }

    fn store_result(&self, a: u8, b: u8) -> Result<StoreReply, StoreError> {
        let id = self
            .session_id(b)
            .unwrap_or_else(|| format!("stored-{}", b % 5));
        let owner = self.owner_of(&id);
        match a % 8 {
            0 => Ok(StoreReply::Found(None)),
            1 => Ok(StoreReply::Found(Some(Box::new(session(
                &id, owner, false,
            ))))),
            2 => Ok(StoreReply::Found(Some(Box::new(session(&id, owner, true))))),
            3 => Ok(StoreReply::Appended(u64::from(b))),
            4 => Ok(StoreReply::Updated(b % 2 == 0)),
            5 => Ok(StoreReply::Ended(vec![id])),
            6 => Err(StoreError::SessionFull),
            _ => Err(StoreError::Unavailable("fuzz".into())),
        }
    }

    fn step(&mut self, what: u8, a: u8, b: u8) {
        let event = match what % 10 {
            0 | 1 => {
                let user = USERS[a as usize % USERS.len()];
                if self.open.len() >= SOCKETS {
                    return;
                }
                self.last_socket += 1;
                let socket = SocketId(self.last_socket);
                self.open.push((socket, user));
                let resume = Resume {
                    message_id: None,
                    last_seq: (b % 2 == 0).then_some(u64::from(b / 2)),
                };
                self.apply_event(Event::Connected {
                    socket,
                    user: User {
                        id: user.into(),
                        name: user.into(),
                        admin: false,
                    },
                    session_id: self.session_id(b),
                    resume,
                });
                return;
            }
            2 | 3 => {
                let Some((socket, _)) = Self::pick(&self.open, a) else {
                    return;
                };
                let text = self.frame_text(b, a.wrapping_mul(7));
                self.apply_event(Event::Frame {
                    socket,
                    text: &text,
                });
                return;
            }
            4 => {
                let Some((socket, _)) = Self::pick(&self.open, a) else {
                    return;
                };
                self.open.retain(|(s, _)| *s != socket);
                Event::Closed { socket }
            }
            5 => {
                let Some((socket, _)) = Self::pick(&self.open, a) else {
                    return;
                };
                Event::Flushed { socket }
            }
            6 => {
                let Some(index) = Self::index(&self.store_jobs, a) else {
                    return;
                };
                let outcome = if b % 16 == 15 {
                    Outcome::Refused
                } else {
                    Outcome::Store(self.store_result(b, a))
                };
                let (id, then) = self.store_jobs.remove(index);
                Event::JobDone(JobDone { id, then, outcome })
            }
            7 => {
                let Some(index) = Self::index(&self.llm_jobs, a) else {
                    return;
                };
                let outcome = match b % 7 {
                    0..=2 => Outcome::Chunk(format!("w{b} ")),
                    3 => Outcome::Finished(Ok(Finish {
                        total_tokens: Some(u64::from(b)),
                        conversation_id: None,
                    })),
                    4 => Outcome::Finished(Err(LlmError::Timeout)),
                    5 => Outcome::Finished(Err(LlmError::Interrupted {
                        detail: "cut".into(),
                    })),
                    _ => Outcome::Refused,
                };
                let (id, then) = match outcome {
                    Outcome::Chunk(_) => self.llm_jobs[index].clone(),
                    _ => self.llm_jobs.remove(index),
                };
                Event::JobDone(JobDone { id, then, outcome })
            }
            8 => {
                self.elapsed += Duration::from_millis(u64::from(a) * 200);
                Event::Tick
            }
            _ => match (a % 8, self.session_id(b)) {
                (0, _) => {
                    self.shut_down = true;
                    Event::Shutdown
                }
                (_, Some(session_id)) => Event::SessionEnded { session_id },
                (_, None) => return,
            },
        };
        self.apply_event(event);
    }

    fn apply_event(&mut self, event: Event) {
        let now = self.now();
        let trace = std::env::var_os("CHATBOX_FUZZ_TRACE").is_some();
        if trace {
            eprintln!("event: {}", describe(&event));
        }
        for effect in self.chat.handle(event, now) {
            if trace {
                eprintln!("  {effect:?}");
            }
            match effect {
                Effect::Send(socket, text) => self.check_frame(socket, &text),
                Effect::Broadcast { to, frame, except } => {
                    for socket in self.chat.audience(&to) {
                        if Some(socket) != except {
                            self.check_frame(socket, &frame);
                        }
                    }
                }
                Effect::Spawn(job) => {
                    assert!(self.seen_jobs.insert(job.id), "job id {} reused", job.id);
                    match job.work {
                        Work::Store(_) | Work::Notify(_) | Work::CheckUrl(_) => {
                            self.store_jobs.push((job.id, job.then))
                        }
                        Work::Llm(_) => self.llm_jobs.push((job.id, job.then)),
                        Work::After { job: after, ops } => {
                            assert!(self.shut_down, "writes chained outside shutdown");
                            assert!(!ops.is_empty(), "an empty chain");
                            assert!(self.seen_jobs.contains(&after), "chained to no job");
                            self.store_jobs.push((job.id, job.then));
                        }
                    }
                }
                Effect::WatchFlush(socket) | Effect::Close(socket, _, _) => {
                    assert!(self.user_of(socket).is_some(), "effect for a closed socket")
                }
                // No takeover events are sent, so no answers come.
                Effect::Cancel(_) | Effect::Timer(_) | Effect::Answer(..) | Effect::Lease { .. } => {}
            }
        }
        self.check_bounds();
    }

    fn check_bounds(&self) {
        let footprint = self.chat.footprint();
        assert!(footprint.writes_queued <= WRITES_BOUND, "{footprint:?}");
        assert!(footprint.frames_held <= HELD_FRAMES_MAX, "{footprint:?}");
        assert!(footprint.rate_buckets <= 2 * USERS.len(), "{footprint:?}");
        assert_eq!(footprint.sockets, self.open.len(), "{footprint:?}");
        if self.shut_down {
            return;
        }
        let mut writing: Vec<&str> = self
            .store_jobs
            .iter()
            .filter_map(|(_, then)| match then {
                Continuation::Write { session_id, .. } => Some(session_id.as_str()),
                _ => None,
            })
            .collect();
        let all = writing.len();
        writing.sort_unstable();
        writing.dedup();
        assert_eq!(writing.len(), all, "two writes of one session in flight");
    }

    fn owner(&self, session: &str) -> Option<&'static str> {
        self.owners
            .iter()
            .find(|(id, _)| id == session)
            .map(|(_, user)| *user)
    }

    fn user_of(&self, socket: SocketId) -> Option<&'static str> {
        self.open
            .iter()
            .find(|(s, _)| *s == socket)
            .map(|(_, u)| *u)
    }

    fn check_frame(&mut self, socket: SocketId, text: &str) {
        let user = self
            .user_of(socket)
            .unwrap_or_else(|| panic!("frame for a socket that is not open: {text}"));
        let frame: serde_json::Value = serde_json::from_str(text).expect("frames are JSON");
        for field in ["type", "timestamp", "sender"] {
            assert!(frame[field].is_string(), "no {field}: {text}");
        }
        if frame["type"] == "error" {
            let code = frame["error"]["code"].as_str().unwrap_or_default();
            assert!(CODES.contains(&code), "unknown error code: {text}");
        }
        let Some(session) = frame["session_id"].as_str() else {
            return;
        };
        if frame["type"] == "connection_status" && self.owner(session).is_none() {
            self.owners.push((session.to_owned(), user));
        }
        if let Some(owner) = self.owner(session) {
            assert_eq!(
                owner, user,
                "a frame of {owner}'s session reached {user}: {text}"
            );
        }
    }
}

fn describe(event: &Event) -> String {
    match event {
        Event::Connected {
            socket,
            user,
            session_id,
            resume,
        } => format!("connected {socket:?} {} {session_id:?} {resume:?}", user.id),
        Event::Frame { socket, text } => format!("frame {socket:?} {text}"),
        Event::Closed { socket } => format!("closed {socket:?}"),
        Event::Flushed { socket } => format!("flushed {socket:?}"),
        Event::JobDone(done) => format!("{done:?}"),
        Event::SessionEnded { session_id } => format!("ended {session_id}"),
        Event::Tick => "tick".into(),
        Event::Shutdown => "shutdown".into(),
        // Takeovers and what other pods tell: this harness never sends them.
        Event::Takeover(_) | Event::News(_) | Event::Replayed { .. } | Event::Leased { .. } => {
            unreachable!("an event the harness does not send")
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let start = Instant::now();
    let mut harness = Harness {
        chat: Chat::new(settings(), start),
        last_socket: 0,
        start,
        elapsed: Duration::ZERO,
        open: Vec::new(),
        owners: Vec::new(),
        store_jobs: Vec::new(),
        llm_jobs: Vec::new(),
        seen_jobs: HashSet::new(),
        shut_down: false,
    };
    for op in data.chunks_exact(3) {
        harness.step(op[0], op[1], op[2]);
    }
});
