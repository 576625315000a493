//! The chat core driven through its events, with no sockets, lanes or store: jobs are
//! answered by hand, so every sequence of the protocol is checked step by step.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::engine::{Chat, Effect, Event, Now, Settings, Tally};
use super::hub::{Resume, User};
use super::jobs::{AppendOp, Job, JobDone, JobId, LlmCall, StoreOp, StoreReply, Work};
use super::protocol::ModelInfo;
use crate::config::ChatConfig;
use crate::llm::{Finish, LlmError, Role};
use crate::net::slab::{ConnId, Slab};
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
    }
}

struct Harness {
    chat: Chat,
    slab: Slab<()>,
    start: Instant,
    elapsed: Duration,
}

/// Effects of one event, with helpers to pick them apart.
#[derive(Debug)]
struct Out(Vec<Effect>);

impl Out {
    fn frames(&self, socket: ConnId) -> Vec<Value> {
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

    fn only_frame(&self, socket: ConnId) -> Value {
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
            Work::Store(_) => None,
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
            slab: Slab::with_capacity(64),
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

    fn event(&mut self, event: Event) -> Out {
        let now = self.now();
        Out(self.chat.handle(event, now))
    }

    fn open(&mut self, user_id: &str, session_id: Option<&str>, resume: Resume) -> (ConnId, Out) {
        let socket = self.slab.insert_with(|_| ()).expect("slot");
        let out = self.event(Event::Connected {
            socket,
            user: user(user_id),
            session_id: session_id.map(str::to_owned),
            resume,
        });
        (socket, out)
    }

    fn send(&mut self, socket: ConnId, text: &str) -> Out {
        self.event(Event::Frame { socket, text })
    }

    fn store(&mut self, id: JobId, result: Result<StoreReply, StoreError>) -> Out {
        self.event(Event::JobDone(JobDone::Store { id, result }))
    }

    fn chunk(&mut self, id: JobId, text: &str) -> Out {
        self.event(Event::JobDone(JobDone::Chunk {
            id,
            text: text.into(),
        }))
    }

    fn finish(&mut self, id: JobId, result: Result<Finish, LlmError>) -> Out {
        self.event(Event::JobDone(JobDone::Finished { id, result }))
    }

    /// A socket of a new user on a fresh session: returns the socket and session id.
    fn fresh(&mut self, user_id: &str) -> (ConnId, String) {
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
    fn say(&mut self, socket: ConnId, session: &str, text: &str) -> (JobId, Out) {
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

#[test]
fn a_new_socket_gets_a_fresh_session_and_the_models() {
    let mut h = Harness::new();
    let (socket, out) = h.open("ann", None, Resume::default());
    let resolve = out.only_job();
    assert_eq!(
        resolve.work,
        Work::Store(StoreOp::Resolve {
            user_id: "ann".into(),
            requested: None,
            history: 20
        })
    );
    let status = h
        .store(resolve.id, Ok(StoreReply::Found(None)))
        .only_frame(socket);
    assert_eq!(status["type"], "connection_status");
    assert_eq!(status["sender"], "system");
    assert_eq!(status["user_id"], "ann");
    assert_eq!(status["model_id"], "echo");
    assert_eq!(status["models"][1]["id"], "gpt");
    let id = status["session_id"].as_str().expect("id");
    assert_eq!(id.len(), 32);
    assert!(id
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
}

#[test]
fn the_latest_active_session_is_resumed_with_its_history() {
    let mut h = Harness::new();
    let (socket, out) = h.open("ann", None, Resume::default());
    let earlier = stored_session(
        "s-old",
        "ann",
        vec![
            Message::new("m1", Sender::User, "hello", 1),
            Message::new("m2", Sender::Ai, "hi there", 2),
        ],
    );
    let out = h.store(
        out.only_job().id,
        Ok(StoreReply::Found(Some(Box::new(earlier)))),
    );
    assert_eq!(out.only_frame(socket)["session_id"], "s-old");
    let (_, out) = h.say(socket, "s-old", "and now?");
    let call = llm_call(&out);
    let turns: Vec<(Role, &str)> = call
        .turns
        .iter()
        .map(|t| (t.role, t.content.as_str()))
        .collect();
    assert_eq!(
        turns,
        [
            (Role::User, "hello"),
            (Role::Assistant, "hi there"),
            (Role::User, "and now?")
        ]
    );
}

#[test]
fn a_user_message_is_stored_before_it_is_acknowledged_then_streamed() {
    let mut h = Harness::new();
    let (phone, session) = h.fresh("ann");
    let (laptop, out) = h.open("ann", Some(&session), Resume::default());
    assert!(
        out.jobs().is_empty(),
        "a live session binds without the store"
    );
    assert_eq!(out.only_frame(laptop)["session_id"], session.as_str());

    let frame =
        serde_json::json!({"type":"user_message","session_id":session,"content":"Hi there. More"});
    let out = h.send(phone, &frame.to_string());
    assert!(
        out.frames(phone).is_empty(),
        "nothing is acknowledged before the store write"
    );
    assert!(out.frames(laptop).is_empty());
    let append = out.only_job();
    let Work::Store(StoreOp::Append(AppendOp {
        name,
        message,
        user_id,
        ..
    })) = &append.work
    else {
        panic!("expected append: {append:?}");
    };
    assert_eq!((name.as_str(), user_id.as_str()), ("Hi there.", "ann"));
    let message_id = message.id.clone().expect("message id");

    let out = h.store(append.id, Ok(StoreReply::Appended(1)));
    let loading = out.only_frame(phone);
    assert_eq!(loading["type"], "loading");
    assert_eq!(meta(&loading, "message_id"), Some(message_id.as_str()));
    let echo = out.only_frame(laptop);
    assert_eq!(echo["type"], "user_message");
    assert_eq!(echo["content"], "Hi there. More");
    assert_eq!(meta(&echo, "message_id"), Some(message_id.as_str()));
    let call = llm_call(&out);
    assert_eq!(out.jobs().len(), 1);
    assert_eq!(call.provider_id, "echo");
    assert_eq!(call.turns.len(), 1);
    assert_eq!(call.turns[0].role, Role::User);
}

#[test]
fn a_back_dated_message_is_stored_at_server_time() {
    let mut h = Harness::new();
    let (phone, session) = h.fresh("ann");
    let (laptop, _) = h.open("ann", Some(&session), Resume::default());
    let frame = serde_json::json!({"type": "user_message", "session_id": session,
        "content": "from the past", "timestamp": "2000-01-01T00:00:00Z"});
    let append = h.send(phone, &frame.to_string()).only_job();
    let Work::Store(StoreOp::Append(AppendOp { message, .. })) = &append.work else {
        panic!("expected append: {append:?}");
    };
    assert_eq!(message.at, h.now().ms, "the store's time, not the client's");
    assert_eq!(
        message.meta.get("client_timestamp").map(String::as_str),
        Some("2000-01-01T00:00:00.000Z")
    );
    let out = h.store(append.id, Ok(StoreReply::Appended(1)));
    let echo = out.only_frame(laptop);
    assert_eq!(echo["timestamp"], crate::time::rfc3339_millis(h.now().ms));

    // Without a `timestamp` there is no claim to keep.
    let frame = serde_json::json!({"type": "user_message", "session_id": session,
        "content": "now"});
    let append = h.send(phone, &frame.to_string()).only_job();
    let Work::Store(StoreOp::Append(AppendOp { message, .. })) = &append.work else {
        panic!("expected append: {append:?}");
    };
    assert_eq!(message.at, h.now().ms);
    assert!(!message.meta.contains_key("client_timestamp"));
}

#[test]
fn chunks_stream_to_every_device_and_coalesce_while_a_socket_is_behind() {
    let mut h = Harness::new();
    let (phone, session) = h.fresh("ann");
    let (laptop, _) = h.open("ann", Some(&session), Resume::default());
    let (llm, _) = h.say(phone, &session, "hello");

    let out = h.chunk(llm, "Hel");
    for socket in [phone, laptop] {
        let frame = out.only_frame(socket);
        assert_eq!(frame["type"], "ai_response");
        assert_eq!(frame["sender"], "ai");
        assert_eq!(frame["content"], "Hel");
        assert_eq!(meta(&frame, "seq"), Some("1"));
        assert_eq!(meta(&frame, "done"), Some("false"));
        assert_eq!(meta(&frame, "streaming"), Some("true"));
        assert!(out.has(&Effect::WatchFlush(socket)));
    }
    // The phone drains, the laptop does not: the laptop's chunks wait and join up.
    assert!(h.event(Event::Flushed { socket: phone }).0.is_empty());
    let out = h.chunk(llm, "lo ");
    assert_eq!(out.only_frame(phone)["content"], "lo ");
    assert!(out.frames(laptop).is_empty());
    h.event(Event::Flushed { socket: phone });
    let out = h.chunk(llm, "you");
    assert_eq!(out.only_frame(phone)["content"], "you");
    let out = h.event(Event::Flushed { socket: laptop });
    let caught_up = out.only_frame(laptop);
    assert_eq!(caught_up["content"], "lo you");
    assert_eq!(meta(&caught_up, "seq"), Some("3"));

    let out = h.finish(
        llm,
        Ok(Finish {
            total_tokens: Some(42),
            conversation_id: None,
        }),
    );
    for socket in [phone, laptop] {
        let done = out.only_frame(socket);
        assert_eq!(meta(&done, "done"), Some("true"));
        assert_eq!(meta(&done, "seq"), Some("3"));
        assert!(done.get("content").is_none(), "nothing was left unsent");
    }
    let Work::Store(StoreOp::Append(AppendOp { message, .. })) = out.only_job().work else {
        panic!("the reply is stored");
    };
    assert_eq!(message.sender, Sender::Ai);
    assert_eq!(message.content, "Hello you");
    assert_eq!(message.tokens, Some(42));
    assert_eq!(message.model.as_deref(), Some("echo"));
    assert!(message.resp_ms.is_some());
}

#[test]
fn stop_cancels_the_upstream_and_stores_the_partial_reply() {
    let mut h = Harness::new();
    let (socket, session) = h.fresh("ann");
    let (llm, _) = h.say(socket, &session, "hello");
    h.chunk(llm, "Part");
    let stop = serde_json::json!({"type":"stop","session_id":session});
    let out = h.send(socket, &stop.to_string());
    assert!(out.has(&Effect::Cancel(llm)));
    let done = out.only_frame(socket);
    assert_eq!(meta(&done, "done"), Some("true"));
    assert_eq!(meta(&done, "stopped"), Some("true"));
    let Work::Store(StoreOp::Append(AppendOp { message, .. })) = out.only_job().work else {
        panic!("the partial reply is stored");
    };
    assert_eq!(message.content, "Part");
    assert_eq!(
        message.meta.get("stopped").map(String::as_str),
        Some("true")
    );
    // Chunks already in flight from the cancelled job change nothing.
    assert!(h.chunk(llm, "ial").0.is_empty());
    assert!(h.finish(llm, Err(LlmError::Cancelled)).0.is_empty());
}

#[test]
fn a_socket_that_binds_mid_stream_gets_the_reply_so_far_then_live_chunks() {
    let mut h = Harness::new();
    let (phone, session) = h.fresh("ann");
    let (llm, _) = h.say(phone, &session, "hello");
    h.chunk(llm, "one ");
    h.chunk(llm, "two ");
    // The phone drops; the reply keeps streaming.
    h.event(Event::Closed { socket: phone });
    assert!(h.chunk(llm, "three ").0.is_empty(), "nobody to send to");

    let (back, out) = h.open("ann", Some(&session), Resume::default());
    let frames = out.frames(back);
    assert_eq!(frames[0]["type"], "connection_status");
    assert_eq!(frames[1]["content"], "one two three ");
    assert_eq!(meta(&frames[1], "replay"), Some("true"));
    assert_eq!(meta(&frames[1], "seq"), Some("3"));
    h.event(Event::Flushed { socket: back });
    let live = h.chunk(llm, "four");
    assert_eq!(live.only_frame(back)["content"], "four");
    assert_eq!(meta(&live.only_frame(back), "seq"), Some("4"));

    // A device that says where it left off gets only the rest.
    let resume = Resume {
        message_id: None,
        last_seq: Some(2),
    };
    let (tablet, out) = h.open("ann", Some(&session), resume);
    assert_eq!(out.frames(tablet)[1]["content"], "three four");
}

#[test]
fn a_reconnect_after_the_end_gets_the_missed_tail_once() {
    let mut h = Harness::new();
    let (phone, session) = h.fresh("ann");
    let (llm, _) = h.say(phone, &session, "hello");
    let first = h.chunk(llm, "one ").only_frame(phone);
    let message_id = meta(&first, "message_id").expect("id").to_owned();
    h.event(Event::Closed { socket: phone });
    h.chunk(llm, "two");
    h.finish(llm, Ok(Finish::default()));

    let resume = Resume {
        message_id: Some(message_id),
        last_seq: Some(1),
    };
    let (back, out) = h.open("ann", Some(&session), resume);
    let tail = &out.frames(back)[1];
    assert_eq!(tail["content"], "two");
    assert_eq!(meta(tail, "done"), Some("true"));
    assert_eq!(meta(tail, "replay"), Some("true"));
    let (plain, out) = h.open("ann", Some(&session), Resume::default());
    assert_eq!(out.frames(plain).len(), 1, "no resume asked, no replay");
}

#[test]
fn another_users_session_is_refused_without_revealing_it() {
    let mut h = Harness::new();
    let (ann, ann_session) = h.fresh("ann");
    let (bob, _) = h.fresh("bob");
    let frame = serde_json::json!({"type":"user_message","session_id":ann_session,"content":"hi"});
    let out = h.send(bob, &frame.to_string());
    let error = out.only_frame(bob);
    assert_eq!(error["error"]["code"], "UNAUTHORIZED");
    assert_eq!(
        error["error"]["message"],
        "You do not have permission to access this session"
    );
    assert!(out.frames(ann).is_empty(), "never routed to the owner");

    // Not in memory: the store answers, with the same result.
    let (carl, _) = h.fresh("carl");
    let frame = serde_json::json!({"type":"user_message","session_id":"s-bob","content":"hi"});
    let load = h.send(carl, &frame.to_string()).only_job();
    let theirs = stored_session("s-bob", "bob", Vec::new());
    let out = h.store(load.id, Ok(StoreReply::Found(Some(Box::new(theirs)))));
    assert_eq!(out.only_frame(carl)["error"]["code"], "UNAUTHORIZED");
    assert!(out.jobs().is_empty(), "the refused message is not stored");

    // Someone else's id in the handshake: a fresh session, no error.
    let (dave, out) = h.open("dave", Some(&ann_session), Resume::default());
    let status = out.only_frame(dave);
    assert_ne!(status["session_id"], ann_session.as_str());
}

#[test]
fn an_unknown_session_id_starts_a_fresh_session_the_frames_follow() {
    let mut h = Harness::new();
    let (socket, first) = h.fresh("ann");
    let frame = serde_json::json!({"type":"user_message","session_id":"made-up","content":"hi"});
    let load = h.send(socket, &frame.to_string()).only_job();
    // Frames sent meanwhile wait their turn.
    assert!(h.send(socket, r#"{"type":"ping"}"#).0.is_empty());
    let out = h.store(load.id, Ok(StoreReply::Found(None)));
    let frames = out.frames(socket);
    assert_eq!(frames[0]["type"], "connection_status");
    let fresh = frames[0]["session_id"].as_str().expect("id");
    assert_ne!(fresh, first);
    assert_ne!(fresh, "made-up");
    assert_eq!(frames[1]["type"], "pong");
    let Work::Store(StoreOp::Append(AppendOp { session_id, .. })) = out.only_job().work else {
        panic!("the message is stored in the fresh session");
    };
    assert_eq!(session_id, fresh);
}

#[test]
fn the_rate_limit_answers_with_retry_after() {
    let mut s = settings();
    s.chat.rate_limit = 2;
    let mut h = Harness::with(s);
    let (socket, session) = h.fresh("ann");
    let frame = serde_json::json!({"type":"user_message","session_id":session,"content":"x"});
    for _ in 0..2 {
        let out = h.send(socket, &frame.to_string());
        assert!(out.frames(socket).is_empty(), "within the limit: {out:?}");
    }
    let out = h.send(socket, &frame.to_string());
    let error = out.only_frame(socket);
    assert_eq!(error["error"]["code"], "TOO_MANY_REQUESTS");
    let retry = error["error"]["retry_after"].as_u64().expect("retry_after");
    assert!((1..=30_000).contains(&retry), "{retry}");
    assert!(out.jobs().is_empty());
}

#[test]
fn model_select_validates_and_tells_every_device() {
    let mut h = Harness::new();
    let (socket, session) = h.fresh("ann");
    let (other, _) = h.open("ann", Some(&session), Resume::default());
    let bad = serde_json::json!({"type":"model_select","session_id":session,"model_id":"nope"});
    let error = h.send(socket, &bad.to_string()).only_frame(socket);
    assert_eq!(error["error"]["code"], "INVALID_FORMAT");
    assert_eq!(error["error"]["message"], "Invalid model ID: nope");

    let good = serde_json::json!({"type":"model_select","session_id":session,"model_id":"gpt"});
    let out = h.send(socket, &good.to_string());
    for s in [socket, other] {
        let status = out.only_frame(s);
        assert_eq!(status["content"], "Model changed to gpt");
        assert_eq!(status["model_id"], "gpt");
    }
    let (_, out) = h.say(socket, &session, "hi");
    assert_eq!(
        llm_call(&out).provider_id,
        "gpt",
        "the session's model answers"
    );
}

#[test]
fn a_stored_session_stores_its_model_before_confirming() {
    let mut h = Harness::new();
    let (socket, session) = h.fresh("ann");
    let (llm, _) = h.say(socket, &session, "hi");
    h.finish(llm, Ok(Finish::default()));
    let select = serde_json::json!({"type":"model_select","session_id":session,"model_id":"gpt"});
    let out = h.send(socket, &select.to_string());
    assert!(out.frames(socket).is_empty());
    let job = out.only_job();
    assert!(matches!(job.work, Work::Store(StoreOp::SetModel { .. })));
    let out = h.store(job.id, Ok(StoreReply::Updated(true)));
    assert_eq!(out.only_frame(socket)["model_id"], "gpt");
}

#[test]
fn provider_failures_become_the_spec_errors() {
    let mut h = Harness::new();
    let (socket, session) = h.fresh("ann");
    let (llm, _) = h.say(socket, &session, "hi");
    let out = h.finish(
        llm,
        Err(LlmError::Unavailable {
            retryable: true,
            detail: "503 upstream".into(),
        }),
    );
    let error = out.only_frame(socket);
    assert_eq!(error["error"]["code"], "LLM_UNAVAILABLE");
    assert_eq!(
        error["error"]["message"],
        "AI service is temporarily unavailable"
    );
    assert!(out.jobs().is_empty(), "nothing arrived, nothing to store");

    let (llm, _) = h.say(socket, &session, "again");
    let out = h.finish(llm, Err(LlmError::Timeout));
    assert_eq!(
        out.only_frame(socket)["error"]["message"],
        "AI service request timed out after 2m0s"
    );

    let (llm, _) = h.say(socket, &session, "and again");
    h.chunk(llm, "half");
    let out = h.finish(
        llm,
        Err(LlmError::Interrupted {
            detail: "reset".into(),
        }),
    );
    let done = out.only_frame(socket);
    assert_eq!(meta(&done, "done"), Some("true"));
    assert_eq!(meta(&done, "error"), Some("true"));
    let Work::Store(StoreOp::Append(AppendOp { message, .. })) = out.only_job().work else {
        panic!("what arrived is stored");
    };
    assert_eq!(message.content, "half");
}

#[test]
fn a_full_llm_lane_is_a_clear_busy_error() {
    let mut h = Harness::new();
    let (socket, session) = h.fresh("ann");
    let (llm, _) = h.say(socket, &session, "hi");
    let out = h.event(Event::JobDone(JobDone::Refused { id: llm }));
    let error = out.only_frame(socket);
    assert_eq!(error["error"]["code"], "SERVICE_ERROR");
    assert_eq!(error["error"]["message"], "Server busy — please retry");
}

#[test]
fn a_failed_store_write_is_reported_and_nothing_is_acknowledged() {
    let mut h = Harness::new();
    let (socket, session) = h.fresh("ann");
    let frame = serde_json::json!({"type":"user_message","session_id":session,"content":"x"});
    let append = h.send(socket, &frame.to_string()).only_job();
    let out = h.store(append.id, Err(StoreError::Unavailable("disk".into())));
    let error = out.only_frame(socket);
    assert_eq!(error["error"]["code"], "DATABASE_ERROR");
    assert_eq!(error["error"]["message"], "Database operation failed");
    assert!(
        out.jobs().is_empty(),
        "no assistant call for an unstored message"
    );
}

#[test]
fn a_full_session_refuses_new_messages() {
    let mut s = settings();
    s.chat.max_messages = 2;
    let mut h = Harness::with(s);
    let (socket, session) = h.fresh("ann");
    let (llm, _) = h.say(socket, &session, "one");
    h.chunk(llm, "answer");
    h.finish(llm, Ok(Finish::default()));
    let frame = serde_json::json!({"type":"user_message","session_id":session,"content":"two"});
    let out = h.send(socket, &frame.to_string());
    let error = out.only_frame(socket);
    assert_eq!(
        error["error"]["message"],
        "Session is full, start a new chat"
    );
}

#[test]
fn the_cap_admits_its_last_message_and_stores_the_reply_it_is_owed() {
    let mut s = settings();
    s.chat.max_messages = 3;
    let mut h = Harness::with(s);
    let (socket, session) = h.fresh("ann");
    let (llm, _) = h.say(socket, &session, "one");
    h.chunk(llm, "answer");
    let reply = h.finish(llm, Ok(Finish::default())).only_job();
    h.store(reply.id, Ok(StoreReply::Appended(2)));

    // Two stored, cap three: the third is the user's.
    let (llm, _) = h.say(socket, &session, "two");
    h.chunk(llm, "last answer");
    let reply = h.finish(llm, Ok(Finish::default())).only_job();
    let Work::Store(StoreOp::Append(AppendOp { max_messages, .. })) = reply.work else {
        panic!("expected the reply stored: {reply:?}");
    };
    assert!(max_messages > 3, "the owed reply fits past the cap");
    h.store(reply.id, Ok(StoreReply::Appended(4)));

    let frame = serde_json::json!({"type":"user_message","session_id":session,"content":"three"});
    let error = h.send(socket, &frame.to_string()).only_frame(socket);
    assert_eq!(error["error"]["code"], "SERVICE_ERROR");
    assert_eq!(
        error["error"]["message"],
        "Session is full, start a new chat"
    );
}

#[test]
fn closing_a_socket_does_not_stop_the_reply() {
    let mut h = Harness::new();
    let (phone, session) = h.fresh("ann");
    let (laptop, _) = h.open("ann", Some(&session), Resume::default());
    let (llm, _) = h.say(phone, &session, "hello");
    h.event(Event::Closed { socket: phone });
    let out = h.chunk(llm, "still here");
    assert_eq!(out.only_frame(laptop)["content"], "still here");
    let out = h.finish(llm, Ok(Finish::default()));
    assert!(!out.has(&Effect::Cancel(llm)));
    assert_eq!(out.jobs().len(), 1, "the reply is stored");
}

#[test]
fn ending_a_session_tells_and_closes_its_sockets() {
    let mut h = Harness::new();
    let (phone, session) = h.fresh("ann");
    let (laptop, _) = h.open("ann", Some(&session), Resume::default());
    let out = h.event(Event::SessionEnded {
        session_id: session.clone(),
    });
    for socket in [phone, laptop] {
        let status = out.only_frame(socket);
        assert_eq!(status["type"], "connection_status");
        assert_eq!(meta(&status, "ended"), Some("true"));
        assert!(out.has(&Effect::Close(socket, 1000, "Session ended")));
    }
}

#[test]
fn the_sweep_runs_on_its_interval_and_ends_idle_sessions() {
    let mut h = Harness::new();
    let (socket, session) = h.fresh("ann");
    let out = h.event(Event::Tick);
    let sweep = out.only_job();
    let Work::Store(StoreOp::EndIdle { idle_before, at }) = sweep.work else {
        panic!("expected the idle sweep: {sweep:?}");
    };
    assert_eq!(at - idle_before, 900_000);
    assert!(out.0.iter().any(|e| matches!(e, Effect::Timer(_))));
    assert!(
        h.event(Event::Tick).jobs().is_empty(),
        "not again before the interval"
    );
    let out = h.store(sweep.id, Ok(StoreReply::Ended(vec![session])));
    assert!(out.has(&Effect::Close(socket, 1000, "Session ended")));
    h.advance(Duration::from_secs(301));
    assert_eq!(h.event(Event::Tick).jobs().len(), 1);
}

#[test]
fn a_reply_nobody_watches_is_stopped_after_the_reconnect_window() {
    let mut h = Harness::new();
    let (socket, session) = h.fresh("ann");
    let (llm, _) = h.say(socket, &session, "hello");
    h.chunk(llm, "partial");
    h.event(Event::Closed { socket });
    h.advance(Duration::from_secs(899));
    assert!(!h.event(Event::Tick).has(&Effect::Cancel(llm)));
    h.advance(Duration::from_secs(2));
    let out = h.event(Event::Tick);
    assert!(out.has(&Effect::Cancel(llm)));
    assert!(out.jobs().iter().any(|j| matches!(
        &j.work,
        Work::Store(StoreOp::Append(AppendOp { message, .. })) if message.content == "partial"
    )));
}

#[test]
fn shutdown_stops_replies_and_hands_over_their_writes() {
    let mut h = Harness::new();
    let (socket, session) = h.fresh("ann");
    let (llm, _) = h.say(socket, &session, "hello");
    h.chunk(llm, "so far");
    let out = h.event(Event::Shutdown);
    assert!(out.has(&Effect::Cancel(llm)));
    let stored: Vec<BTreeMap<String, String>> = out
        .jobs()
        .into_iter()
        .filter_map(|j| match j.work {
            Work::Store(StoreOp::Append(AppendOp { message, .. })) => Some(message.meta),
            _ => None,
        })
        .collect();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].get("stopped").map(String::as_str), Some("true"));
}

#[test]
fn a_second_message_during_a_reply_is_answered_after_it() {
    let mut h = Harness::new();
    let (socket, session) = h.fresh("ann");
    let (first, _) = h.say(socket, &session, "one");
    let frame = serde_json::json!({"type":"user_message","session_id":session,"content":"two"});
    let append = h.send(socket, &frame.to_string()).only_job();
    let out = h.store(append.id, Ok(StoreReply::Appended(2)));
    assert!(out.jobs().is_empty(), "one reply at a time per session");
    assert_eq!(out.only_frame(socket)["type"], "loading");
    let out = h.finish(first, Ok(Finish::default()));
    let call = llm_call(&out);
    let last = call.turns.last().expect("turns");
    assert_eq!(last.content, "two");
}

#[test]
fn bad_frames_get_errors_on_their_own_socket() {
    let mut h = Harness::new();
    let (socket, _) = h.fresh("ann");
    let cases = [
        ("nope", "INVALID_FORMAT", "Invalid message format"),
        (
            r#"{"type":"dance"}"#,
            "INVALID_FORMAT",
            "Invalid message format: unknown message type dance",
        ),
        (
            r#"{"type":"user_message"}"#,
            "MISSING_FIELD",
            "Required field missing: content",
        ),
        (
            r#"{"type":"model_select"}"#,
            "MISSING_FIELD",
            "Required field missing: model_id",
        ),
        (
            r#"{"type":"ai_response","content":"x"}"#,
            "INVALID_FORMAT",
            "Invalid message format: ai_response is sent by the server only",
        ),
    ];
    for (text, code, message) in cases {
        let error = h.send(socket, text).only_frame(socket);
        assert_eq!(error["type"], "error", "{text}");
        assert_eq!(error["error"]["code"], code, "{text}");
        assert_eq!(error["error"]["message"], message, "{text}");
    }
    let pong = h.send(socket, r#"{"type":"ping"}"#).only_frame(socket);
    assert_eq!(pong["type"], "pong");
}

#[test]
fn a_socket_that_closes_while_its_message_is_stored_hears_nothing_more() {
    let mut h = Harness::new();
    let (phone, session) = h.fresh("ann");
    let (laptop, _) = h.open("ann", Some(&session), Resume::default());
    let frame = serde_json::json!({"type":"user_message","session_id":session,"content":"bye"});
    let append = h.send(phone, &frame.to_string()).only_job();
    h.event(Event::Closed { socket: phone });
    let out = h.store(append.id, Ok(StoreReply::Appended(1)));
    assert!(out.frames(phone).is_empty(), "{out:?}");
    assert_eq!(out.only_frame(laptop)["type"], "user_message");
    assert_eq!(
        llm_call(&out).turns.len(),
        1,
        "the reply still comes, for the laptop"
    );
}

#[test]
fn a_reply_the_store_fails_is_kept_and_stored_once_the_store_is_back() {
    let mut h = Harness::new();
    let (socket, session) = h.fresh("ann");
    let (llm, _) = h.say(socket, &session, "hello");
    h.chunk(llm, "Hi!");
    let write = h.finish(llm, Ok(Finish::default())).only_job();
    let down = || Err(StoreError::Unavailable("connection refused".into()));
    let out = h.store(write.id, down());
    let Some(Effect::Timer(first)) = out
        .0
        .iter()
        .find(|e| matches!(e, Effect::Timer(_)))
        .cloned()
    else {
        panic!("a retry is scheduled: {:?}", out.0);
    };
    assert_eq!(first, h.now().at + Duration::from_secs(1));

    // While it waits, the user's next message is refused at once, not queued behind it.
    let frame = serde_json::json!({"type":"user_message","session_id":session,"content":"again"});
    let out = h.send(socket, &frame.to_string());
    assert_eq!(out.only_frame(socket)["error"]["code"], "DATABASE_ERROR");
    assert!(out.jobs().is_empty());

    // Retried when its wait is over, then after twice as long.
    h.advance(Duration::from_secs(1));
    let retry = appends(&h.event(Event::Tick)).remove(0);
    assert_eq!(retry.work, write.work, "the same reply, unchanged");
    assert!(
        appends(&h.event(Event::Tick)).is_empty(),
        "one attempt at a time"
    );
    let out = h.store(retry.id, down());
    assert!(out.has(&Effect::Timer(h.now().at + Duration::from_secs(2))));
    h.advance(Duration::from_secs(2));
    let retry = appends(&h.event(Event::Tick)).remove(0);
    h.store(retry.id, Ok(StoreReply::Appended(2)));

    // Stored: the session takes messages again.
    let (_, out) = h.say(socket, &session, "back");
    assert!(out.frames(socket).iter().any(|f| f["type"] == "loading"));
}

#[test]
fn a_message_queued_behind_a_reply_that_fails_is_answered_at_once() {
    let mut h = Harness::new();
    let (socket, session) = h.fresh("ann");
    let (llm, _) = h.say(socket, &session, "hello");
    h.chunk(llm, "Hi!");
    let write = h.finish(llm, Ok(Finish::default())).only_job();
    let frame = serde_json::json!({"type":"user_message","session_id":session,"content":"next"});
    assert!(
        h.send(socket, &frame.to_string()).jobs().is_empty(),
        "queued behind the reply"
    );
    let out = h.store(write.id, Err(StoreError::Unavailable("down".into())));
    assert_eq!(out.only_frame(socket)["error"]["code"], "DATABASE_ERROR");
    assert!(appends(&out).is_empty());
}

#[test]
fn a_parked_reply_is_handed_over_at_shutdown() {
    let mut h = Harness::new();
    let (socket, session) = h.fresh("ann");
    let (llm, _) = h.say(socket, &session, "hello");
    h.chunk(llm, "Hi!");
    let write = h.finish(llm, Ok(Finish::default())).only_job();
    h.store(write.id, Err(StoreError::Unavailable("down".into())));
    let out = h.event(Event::Shutdown);
    assert_eq!(out.only_job().work, write.work);
}

#[test]
fn a_reply_refused_for_good_is_not_retried() {
    let mut h = Harness::new();
    let (socket, session) = h.fresh("ann");
    let (llm, _) = h.say(socket, &session, "hello");
    h.chunk(llm, "Hi!");
    let write = h.finish(llm, Ok(Finish::default())).only_job();
    let out = h.store(write.id, Err(StoreError::SessionFull));
    assert!(!out.0.iter().any(|e| matches!(e, Effect::Timer(_))));
    h.advance(Duration::from_secs(60));
    assert!(appends(&h.event(Event::Tick)).is_empty());
}

/// The append jobs among `out`'s (a tick may also start the idle sweep).
fn appends(out: &Out) -> Vec<Job> {
    let is_append = |job: &Job| matches!(job.work, Work::Store(StoreOp::Append(_)));
    out.jobs().into_iter().filter(is_append).collect()
}

#[test]
fn the_tally_counts_sessions_errors_and_refusals_once() {
    let mut s = settings();
    s.chat.rate_limit = 2;
    let mut h = Harness::with(s);
    let (socket, session) = h.fresh("ann");
    assert_eq!(
        h.chat.take_tally(),
        Tally::default(),
        "connecting counts nothing"
    );

    let (llm, _) = h.say(socket, &session, "first");
    h.chunk(llm, "reply");
    let reply = h.finish(llm, Ok(Finish::default())).only_job();
    h.store(reply.id, Ok(StoreReply::Appended(2)));
    let frame = serde_json::json!({"type":"user_message","session_id":session,"content":"x"});
    let append = h.send(socket, &frame.to_string()).only_job();
    h.store(append.id, Ok(StoreReply::Appended(3)));
    assert_eq!(
        h.chat.take_tally(),
        Tally {
            sessions_created: 1,
            ..Tally::default()
        },
        "only the first stored message creates the session"
    );

    h.send(socket, &frame.to_string());
    h.send(socket, r#"{"type":"help_request"}"#);
    h.event(Event::SessionEnded {
        session_id: session.clone(),
    });
    assert_eq!(
        h.chat.take_tally(),
        Tally {
            error_frames: 2,
            rate_limited: 1,
            sessions_ended: 1,
            ..Tally::default()
        }
    );
    assert_eq!(h.chat.take_tally(), Tally::default(), "taking resets it");
}
