//! The chat core driven through its events, with no sockets, lanes or store: jobs are
//! answered by hand, so every sequence of the protocol is checked step by step. This
//! file is the harness; the tests are grouped by topic in the files beside it.

mod admin;
mod bounds;
mod connect;
mod docs;
mod files;
mod footprint;
mod help;
mod lease;
mod lifecycle;
mod messages;
mod property;
mod replies;
mod shared;
mod writes;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::engine::{Chat, Effect, Event, Now, Settings, Tally};
use super::hub::{Resume, User};
use super::jobs::{
    AppendOp, Continuation, Job, JobDone, JobId, LlmCall, Outcome, StoreOp, StoreReply, Work,
};
use super::protocol::ModelInfo;
use super::socket::SocketId;
use crate::config::ChatConfig;
use crate::llm::{Finish, LlmError, Role};
use crate::store::{Message, Sender, Session, StoreError, Transcript};

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
        stream_timeout: Duration::from_secs(120),
        chat: ChatConfig {
            context_messages: 20,
            max_messages: 100,
            rate_limit: 100,
            rate_window: Duration::from_secs(60),
            rate_cleanup: Duration::from_secs(300),
            reconnect_timeout: Duration::from_secs(900),
            session_ttl: Duration::from_secs(900),
            sweep_interval: Duration::from_secs(300),
        },
        help_escalation_after: None,
        files_path: "/chatbox/files/".into(),
    }
}

struct Harness {
    chat: Chat,
    /// The last socket id handed out.
    last_socket: u64,
    /// The jobs in flight and their continuations, kept as the executor keeps them.
    jobs: HashMap<JobId, Continuation>,
    start: Instant,
    elapsed: Duration,
}

/// Effects of one event, with helpers to pick them apart.
#[derive(Debug)]
struct Out(Vec<Effect>);

impl Out {
    fn frames(&self, socket: SocketId) -> Vec<Value> {
        self.0
            .iter()
            .filter_map(|e| match e {
                Effect::Send(s, text) if *s == socket => {
                    Some(serde_json::from_str(text).expect("frames are JSON"))
                }
                _ => None,
            })
            .collect()
    }

    fn only_frame(&self, socket: SocketId) -> Value {
        let frames = self.frames(socket);
        assert_eq!(frames.len(), 1, "one frame to {socket:?}: {frames:#?}");
        frames.into_iter().next().expect("one frame")
    }

    fn jobs(&self) -> Vec<Job> {
        self.0
            .iter()
            .filter_map(|e| match e {
                Effect::Spawn(job) => Some(job.clone()),
                _ => None,
            })
            .collect()
    }

    fn only_job(&self) -> Job {
        let jobs = self.jobs();
        assert_eq!(jobs.len(), 1, "one job: {jobs:#?}");
        jobs.into_iter().next().expect("one job")
    }

    fn has(&self, effect: &Effect) -> bool {
        self.0.contains(effect)
    }
}

fn user(id: &str) -> User {
    User {
        id: id.into(),
        name: id.into(),
        admin: false,
    }
}

fn llm_call(out: &Out) -> LlmCall {
    out.jobs()
        .into_iter()
        .find_map(|j| match j.work {
            Work::Llm(call) => Some(call),
            Work::Store(_) | Work::After { .. } | Work::Notify(_) | Work::CheckUrl(_) => None,
        })
        .expect("the assistant is asked")
}

fn meta<'a>(frame: &'a Value, key: &str) -> Option<&'a str> {
    frame["metadata"][key].as_str()
}

fn stored_session(id: &str, owner: &str, messages: Vec<Message>) -> Transcript {
    Transcript {
        session: Session {
            message_count: messages.len() as u64,
            ..Session::new(id, owner, "Earlier", "", 0)
        },
        messages,
    }
}

impl Harness {
    fn new() -> Harness {
        Harness::with(settings())
    }

    fn with(settings: Settings) -> Harness {
        let start = Instant::now();
        Harness {
            chat: Chat::new(settings, start),
            last_socket: 0,
            jobs: HashMap::new(),
            start,
            elapsed: Duration::ZERO,
        }
    }

    fn now(&self) -> Now {
        Now {
            at: self.start + self.elapsed,
            ms: 1_764_000_000_000 + self.elapsed.as_millis() as i64,
        }
    }

    fn advance(&mut self, by: Duration) {
        self.elapsed += by;
    }

    /// Handles an event; a broadcast comes out as the sends the application's fan-out
    /// makes of it, in its place, so the tests see which socket got what.
    fn event(&mut self, event: Event) -> Out {
        let now = self.now();
        let effects = self.chat.handle(event, now);
        let out = Out(self.fan_out(effects));
        for job in out.jobs() {
            self.jobs.insert(job.id, job.then);
        }
        out
    }

    fn open(&mut self, user_id: &str, session_id: Option<&str>, resume: Resume) -> (SocketId, Out) {
        self.last_socket += 1;
        let socket = SocketId(self.last_socket);
        let out = self.event(Event::Connected {
            socket,
            user: user(user_id),
            session_id: session_id.map(str::to_owned),
            resume,
        });
        (socket, out)
    }

    fn send(&mut self, socket: SocketId, text: &str) -> Out {
        self.event(Event::Frame { socket, text })
    }

    fn fan_out(&self, effects: Vec<Effect>) -> Vec<Effect> {
        let mut out = Vec::with_capacity(effects.len());
        for effect in effects {
            let Effect::Broadcast { to, frame, except } = effect else {
                out.push(effect);
                continue;
            };
            let sockets = self.chat.audience(&to).into_iter();
            let sends = sockets.filter(|&s| Some(s) != except);
            out.extend(sends.map(|s| Effect::Send(s, frame.clone())));
        }
        out
    }

    /// Answers a job as the executor does: with the continuation it was spawned with. A
    /// chunk leaves the job running, any other outcome ends it, and a job that ended
    /// hears nothing more.
    fn done(&mut self, id: JobId, outcome: Outcome) -> Out {
        let then = match outcome {
            Outcome::Chunk(_) => self.jobs.get(&id).cloned(),
            _ => self.jobs.remove(&id),
        };
        match then {
            Some(then) => self.event(Event::JobDone(JobDone { id, then, outcome })),
            None => Out(Vec::new()),
        }
    }

    fn store(&mut self, id: JobId, result: Result<StoreReply, StoreError>) -> Out {
        self.done(id, Outcome::Store(result))
    }

    fn chunk(&mut self, id: JobId, text: &str) -> Out {
        self.done(id, Outcome::Chunk(text.into()))
    }

    fn finish(&mut self, id: JobId, result: Result<Finish, LlmError>) -> Out {
        self.done(id, Outcome::Finished(result))
    }

    fn refuse(&mut self, id: JobId) -> Out {
        self.done(id, Outcome::Refused)
    }

    /// A socket of a new user on a fresh session: returns the socket and session id.
    fn fresh(&mut self, user_id: &str) -> (SocketId, String) {
        let (socket, out) = self.open(user_id, None, Resume::default());
        let resolve = out.only_job();
        let out = self.store(resolve.id, Ok(StoreReply::Found(None)));
        let status = out.only_frame(socket);
        let session = status["session_id"]
            .as_str()
            .expect("session id")
            .to_owned();
        (socket, session)
    }

    /// Sends a user message and stores it: returns the LLM job id and the effects of
    /// the store write finishing.
    fn say(&mut self, socket: SocketId, session: &str, text: &str) -> (JobId, Out) {
        let frame =
            serde_json::json!({"type": "user_message", "session_id": session, "content": text});
        let out = self.send(socket, &frame.to_string());
        let append = out.only_job();
        assert!(
            matches!(&append.work, Work::Store(StoreOp::Append(AppendOp { message, .. })) if message.content == text),
            "expected the message stored, got {append:?}"
        );
        let out = self.store(append.id, Ok(StoreReply::Appended(1)));
        let llm = out
            .jobs()
            .into_iter()
            .find(|j| matches!(j.work, Work::Llm(_)))
            .expect("the assistant is asked");
        (llm.id, out)
    }
}

/// The append jobs among `out`'s (a tick may also start the idle sweep).
fn appends(out: &Out) -> Vec<Job> {
    let is_append = |job: &Job| matches!(job.work, Work::Store(StoreOp::Append(_)));
    out.jobs().into_iter().filter(is_append).collect()
}
