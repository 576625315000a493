//! The chat state machine. Events go in (a socket connected, a frame arrived, a socket
//! closed or drained, a job finished, time passed); effects come out (send a frame,
//! close a socket, run a job, cancel one, wake me at). No sockets, threads or clocks
//! live here: time is passed in, and jobs run wherever the caller puts them. That makes
//! every sequence of `spec/websocket.md` testable with plain function calls.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::hub::{Hub, Resume, User, HELD_FRAMES_MAX};
use super::jobs::{Job, JobDone, JobId, LlmCall, StoreOp, StoreReply, Work};
use super::protocol::{code, parse_inbound, Inbound, Kind, ModelInfo, Outbound};
use super::ratelimit::RateLimiter;
use super::session::{name_for, AfterWrite, Finished, Live, Write};
use super::stream::{Delivery, Reply};
use crate::ids;
use crate::llm::{Finish, LlmError};
use crate::net::slab::ConnId;
use crate::store::{Message, Millis, Sender, StoreError};

/// The close code and reason for sockets of a session that was ended.
const SESSION_ENDED: (u16, &str) = (1000, "Session ended");
const BUSY: &str = "Server busy — please retry";
const SESSION_FULL: &str = "Session is full, start a new chat";

#[derive(Clone, Debug)]
pub struct Settings {
    pub models: Vec<ModelInfo>,
    pub default_model: String,
    pub context_messages: usize,
    pub max_messages: usize,
    pub rate_limit: u32,
    pub rate_window: Duration,
    pub rate_cleanup: Duration,
    pub reconnect_timeout: Duration,
    pub session_ttl: Duration,
    pub sweep_interval: Duration,
    /// Only for the text of `LLM_TIMEOUT` errors; the lane enforces it.
    pub stream_timeout: Duration,
}

/// The time of an event: monotonic for deadlines, wall clock for what is stored.
#[derive(Clone, Copy, Debug)]
pub struct Now {
    pub at: Instant,
    pub ms: Millis,
}

pub enum Event<'a> {
    Connected {
        socket: ConnId,
        user: User,
        /// The handshake's `?session_id=`.
        session_id: Option<String>,
        resume: Resume,
    },
    Frame {
        socket: ConnId,
        text: &'a str,
    },
    Closed {
        socket: ConnId,
    },
    /// A socket wrote everything queued on it (asked for with [`Effect::WatchFlush`]).
    Flushed {
        socket: ConnId,
    },
    JobDone(JobDone),
    /// Ended through `POST …/end`.
    SessionEnded {
        session_id: String,
    },
    Tick,
    /// The process is stopping: stop and store every reply in flight, and hand over
    /// every queued store write at once.
    Shutdown,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    Send(ConnId, String),
    /// Deliver [`Event::Flushed`] once this socket's queue is written.
    WatchFlush(ConnId),
    Close(ConnId, u16, &'static str),
    Spawn(Job),
    Cancel(JobId),
    /// Deliver [`Event::Tick`] at this time.
    Timer(Instant),
}

/// What a job in flight was for.
enum Pending {
    Resolve {
        socket: ConnId,
    },
    Load {
        socket: ConnId,
        session_id: String,
    },
    Write {
        session_id: String,
        then: AfterWrite,
    },
    Reply {
        session_id: String,
    },
    Sweep,
}

/// Why a store write did not happen.
enum WriteError {
    Busy,
    Store(StoreError),
}

/// Where a frame's `session_id` leads.
enum Target {
    Ready(String),
    /// A store lookup runs first; the frame waits with the socket's held frames.
    Held,
    Refused,
}

pub struct Chat {
    settings: Settings,
    hub: Hub,
    sessions: HashMap<String, Live>,
    pending: HashMap<JobId, Pending>,
    next_job: JobId,
    limiter: RateLimiter,
    next_sweep: Instant,
    next_cleanup: Instant,
    out: Vec<Effect>,
}

impl Chat {
    pub fn new(settings: Settings, now: Instant) -> Chat {
        Chat {
            limiter: RateLimiter::new(settings.rate_limit, settings.rate_window),
            next_sweep: now,
            next_cleanup: now + settings.rate_cleanup,
            settings,
            hub: Hub::default(),
            sessions: HashMap::new(),
            pending: HashMap::new(),
            next_job: 1,
            out: Vec::new(),
        }
    }

    pub fn sockets_of(&self, user_id: &str) -> &[ConnId] {
        self.hub.sockets_of(user_id)
    }

    /// Sessions held in memory, and replies streaming: for tests and metrics.
    pub fn live_sessions(&self) -> usize {
        self.sessions.len()
    }

    pub fn streaming_replies(&self) -> usize {
        self.sessions.values().filter(|s| s.reply.is_some()).count()
    }

    /// Handles one event; the effects are to be applied in order.
    pub fn handle(&mut self, event: Event, now: Now) -> Vec<Effect> {
        match event {
            Event::Connected {
                socket,
                user,
                session_id,
                resume,
            } => self.connected(socket, user, session_id, resume, now),
            Event::Frame { socket, text } => self.frame(socket, text, now),
            Event::Closed { socket } => self.closed(socket, now),
            Event::Flushed { socket } => self.flushed(socket, now),
            Event::JobDone(done) => self.job_done(done, now),
            Event::SessionEnded { session_id } => self.end_session(&session_id, now),
            Event::Tick => self.tick(now),
            Event::Shutdown => self.shutdown(now),
        }
        std::mem::take(&mut self.out)
    }

    // ---- sockets ------------------------------------------------------------------

    fn connected(
        &mut self,
        socket: ConnId,
        user: User,
        requested: Option<String>,
        resume: Resume,
        now: Now,
    ) {
        let user_id = user.id.clone();
        self.hub.connect(socket, user, resume);
        if let Some(id) = &requested {
            match self.sessions.get(id) {
                Some(live) if live.owner == user_id && !live.ended => {
                    let id = id.clone();
                    self.bind(socket, &id, now);
                    return;
                }
                // Someone else's (or ended): a fresh session, without saying which.
                Some(_) => {
                    self.bind_fresh(socket, now);
                    return;
                }
                None => {}
            }
        }
        if let Some(state) = self.hub.get_mut(socket) {
            state.held = Some(VecDeque::new());
        }
        let id = self.spawn(Work::Store(StoreOp::Resolve {
            user_id,
            requested,
            history: self.settings.context_messages,
        }));
        self.pending.insert(id, Pending::Resolve { socket });
    }

    fn closed(&mut self, socket: ConnId, now: Now) {
        if let Some(state) = self.hub.disconnect(socket) {
            if let Some(session_id) = state.session {
                self.unbind(socket, &session_id, now);
            }
        }
    }

    fn flushed(&mut self, socket: ConnId, now: Now) {
        let Some(state) = self.hub.get_mut(socket) else {
            return;
        };
        if let Some(delivery) = &mut state.delivery {
            delivery.awaiting_flush = false;
        }
        let Some(session_id) = state.session.clone() else {
            return;
        };
        if let Some(live) = self.sessions.get(&session_id) {
            if let Some(reply) = &live.reply {
                deliver(&mut self.hub, &mut self.out, socket, &live.id, reply, now);
            }
        }
    }

    /// Binds a socket to a session it may use, and tells it so; a socket binding while
    /// a reply streams first gets what it missed.
    fn bind(&mut self, socket: ConnId, session_id: &str, now: Now) {
        let Some(state) = self.hub.get_mut(socket) else {
            return;
        };
        let previous = state.session.replace(session_id.to_owned());
        if previous.as_deref() == Some(session_id) {
            return;
        }
        state.delivery = None;
        let resume = std::mem::take(&mut state.resume);
        let user_id = state.user.id.clone();
        if let Some(previous) = previous {
            self.unbind(socket, &previous, now);
        }
        let Some(live) = self.sessions.get_mut(session_id) else {
            return;
        };
        live.sockets.push(socket);
        live.orphaned_since = None;
        let model_id = effective_model(live, &self.settings);
        let status = Outbound::system(Kind::ConnectionStatus, now.ms)
            .with_session(session_id)
            .with_user(&user_id)
            .with_content("Connected")
            .with_models(&self.settings.models)
            .with_model(model_id)
            .to_json();
        self.out.push(Effect::Send(socket, status));
        replay(&mut self.hub, &mut self.out, socket, live, &resume, now);
    }

    fn bind_fresh(&mut self, socket: ConnId, now: Now) -> Option<String> {
        let owner = self.hub.get(socket)?.user.id.clone();
        let Ok(id) = ids::random_id() else {
            log::error!("the OS random source failed: cannot make a session id");
            self.out.push(Effect::Close(socket, 1011, "Internal error"));
            return None;
        };
        self.sessions
            .insert(id.clone(), Live::fresh(id.clone(), owner));
        self.bind(socket, &id, now);
        Some(id)
    }

    fn unbind(&mut self, socket: ConnId, session_id: &str, now: Now) {
        if let Some(live) = self.sessions.get_mut(session_id) {
            live.sockets.retain(|&s| s != socket);
            if live.sockets.is_empty() {
                live.orphaned_since = Some(now.at);
            }
        }
        self.evict_if_idle(session_id);
    }

    fn evict_if_idle(&mut self, session_id: &str) {
        if self.sessions.get(session_id).is_some_and(Live::is_idle) {
            self.sessions.remove(session_id);
        }
    }

    /// Handles the frames a socket sent while its session was being looked up, until
    /// one of them starts another lookup.
    fn release_held(&mut self, socket: ConnId, now: Now) {
        let Some(mut queue) = self.hub.get_mut(socket).and_then(|s| s.held.take()) else {
            return;
        };
        while let Some(text) = queue.pop_front() {
            self.frame(socket, &text, now);
            match self.hub.get_mut(socket) {
                None => return,
                Some(state) => {
                    if let Some(held) = &mut state.held {
                        held.extend(queue.drain(..));
                        return;
                    }
                }
            }
        }
    }

    // ---- frames -------------------------------------------------------------------

    fn frame(&mut self, socket: ConnId, text: &str, now: Now) {
        let Some(state) = self.hub.get_mut(socket) else {
            return;
        };
        if let Some(held) = &mut state.held {
            if held.len() < HELD_FRAMES_MAX {
                held.push_back(text.to_owned());
            } else {
                let bound = state.session.clone();
                self.error(socket, bound.as_deref(), code::SERVICE_ERROR, BUSY, now);
            }
            return;
        }
        let inbound = match parse_inbound(text, now.ms) {
            Ok(inbound) => inbound,
            Err(rejection) => {
                let bound = state.session.clone();
                self.error(
                    socket,
                    bound.as_deref(),
                    rejection.code,
                    rejection.message,
                    now,
                );
                return;
            }
        };
        if state.resume.last_seq.is_none() {
            state.resume.last_seq = inbound
                .metadata
                .get("last_seq")
                .and_then(|seq| seq.parse().ok());
        }
        let refused = match inbound.kind {
            Kind::Ping => {
                let pong = Outbound::system(Kind::Pong, now.ms).to_json();
                self.out.push(Effect::Send(socket, pong));
                return;
            }
            // An answer to nothing we asked; harmless.
            Kind::Pong => return,
            Kind::AiResponse
            | Kind::Error
            | Kind::ConnectionStatus
            | Kind::Loading
            | Kind::Notification => {
                let message = format!(
                    "Invalid message format: {} is sent by the server only",
                    inbound.kind.as_str()
                );
                Some((code::INVALID_FORMAT, message))
            }
            Kind::FileUpload
            | Kind::VoiceMessage
            | Kind::TypingIndicator
            | Kind::HelpRequest
            | Kind::AdminJoin
            | Kind::AdminLeave => {
                let message = format!(
                    "{} is not available on this server yet",
                    inbound.kind.as_str()
                );
                Some((code::SERVICE_ERROR, message))
            }
            Kind::UserMessage | Kind::ModelSelect | Kind::Stop => None,
        };
        if let Some((code, message)) = refused {
            let bound = state.session.clone();
            self.error(socket, bound.as_deref(), code, message, now);
            return;
        }
        let session_id = match self.target(socket, text, inbound.session_id.as_deref(), now) {
            Target::Ready(id) => id,
            Target::Held | Target::Refused => return,
        };
        match inbound.kind {
            Kind::UserMessage => self.user_message(socket, &session_id, inbound, now),
            Kind::ModelSelect => self.model_select(socket, &session_id, inbound, now),
            Kind::Stop => self.stop(&session_id, now),
            _ => {}
        }
    }

    /// The session a frame is for, moving the socket there when it names another of
    /// the user's sessions.
    fn target(&mut self, socket: ConnId, text: &str, named: Option<&str>, now: Now) -> Target {
        let Some(state) = self.hub.get(socket) else {
            return Target::Refused;
        };
        let bound = state.session.clone();
        let named = match (named, &state.alias) {
            (Some(named), Some((from, to))) if named == from => Some(to.clone()),
            (named, _) => named.map(str::to_owned),
        };
        let Some(named) = named.filter(|n| Some(n) != bound.as_ref()) else {
            return match bound {
                Some(id) => Target::Ready(id),
                None => {
                    self.error(socket, None, code::SERVICE_ERROR, BUSY, now);
                    Target::Refused
                }
            };
        };
        let user_id = state.user.id.clone();
        match self.sessions.get(&named) {
            Some(live) if live.owner == user_id && !live.ended => {
                self.bind(socket, &named, now);
                Target::Ready(named)
            }
            Some(live) if live.owner != user_id => {
                self.unauthorized(socket, bound.as_deref(), now);
                Target::Refused
            }
            // Ended: like an unknown id, the frame starts a fresh session.
            Some(_) => match self.bind_fresh(socket, now) {
                Some(fresh) => {
                    self.alias(socket, named, fresh.clone());
                    Target::Ready(fresh)
                }
                None => Target::Refused,
            },
            None => {
                if let Some(state) = self.hub.get_mut(socket) {
                    state.held = Some(VecDeque::from([text.to_owned()]));
                }
                let id = self.spawn(Work::Store(StoreOp::Load {
                    session_id: named.clone(),
                    history: self.settings.context_messages,
                }));
                self.pending.insert(
                    id,
                    Pending::Load {
                        socket,
                        session_id: named,
                    },
                );
                Target::Held
            }
        }
    }

    fn alias(&mut self, socket: ConnId, from: String, to: String) {
        if let Some(state) = self.hub.get_mut(socket) {
            state.alias = Some((from, to));
        }
    }

    fn user_message(&mut self, socket: ConnId, session_id: &str, inbound: Inbound, now: Now) {
        let Some(content) = inbound.content else {
            self.error(
                socket,
                Some(session_id),
                code::MISSING_FIELD,
                "Required field missing: content",
                now,
            );
            return;
        };
        let Some(user_id) = self.hub.get(socket).map(|s| s.user.id.clone()) else {
            return;
        };
        if let Err(wait) = self.limiter.check(&user_id, now.at) {
            let retry_after = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1);
            let frame = Outbound::error(
                code::TOO_MANY_REQUESTS,
                "Too many requests, please slow down",
                true,
                now.ms,
            )
            .with_session(session_id)
            .with_retry_after(retry_after)
            .to_json();
            self.out.push(Effect::Send(socket, frame));
            return;
        }
        let Some(live) = self.sessions.get_mut(session_id) else {
            return;
        };
        // Room for the message and for the reply it asks for.
        if live.message_count + 2 > self.settings.max_messages as u64 {
            self.error(
                socket,
                Some(session_id),
                code::SERVICE_ERROR,
                SESSION_FULL,
                now,
            );
            return;
        }
        let Ok(message_id) = ids::random_id() else {
            self.error(socket, Some(session_id), code::SERVICE_ERROR, BUSY, now);
            return;
        };
        let mut message = Message::new(message_id, Sender::User, content, inbound.at);
        message.meta = inbound.metadata;
        message.meta.remove("last_seq");
        live.message_count += 1;
        let op = StoreOp::Append {
            session_id: session_id.to_owned(),
            user_id: live.owner.clone(),
            name: name_for(&message.content),
            model_id: live.model_id.clone(),
            message: Box::new(message.clone()),
            max_messages: self.settings.max_messages,
        };
        self.write(
            session_id,
            Write {
                op,
                then: AfterWrite::UserMessage { socket, message },
            },
        );
    }

    fn model_select(&mut self, socket: ConnId, session_id: &str, inbound: Inbound, now: Now) {
        let Some(model_id) = inbound.model_id else {
            self.error(
                socket,
                Some(session_id),
                code::MISSING_FIELD,
                "Required field missing: model_id",
                now,
            );
            return;
        };
        if !self.settings.models.iter().any(|m| m.id == model_id) {
            let message = format!("Invalid model ID: {model_id}");
            self.error(socket, Some(session_id), code::INVALID_FORMAT, message, now);
            return;
        }
        let Some(live) = self.sessions.get_mut(session_id) else {
            return;
        };
        live.model_id = model_id.clone();
        if live.stored || live.writing.is_some() {
            let op = StoreOp::SetModel {
                session_id: session_id.to_owned(),
                model_id: model_id.clone(),
                at: now.ms,
            };
            self.write(
                session_id,
                Write {
                    op,
                    then: AfterWrite::Model { socket, model_id },
                },
            );
        } else {
            // Not stored yet: the model is stored with the session's first message.
            self.model_changed(session_id, &model_id, now);
        }
    }

    fn model_changed(&mut self, session_id: &str, model_id: &str, now: Now) {
        let Some(live) = self.sessions.get(session_id) else {
            return;
        };
        let content = format!("Model changed to {model_id}");
        let frame = Outbound::system(Kind::ConnectionStatus, now.ms)
            .with_session(session_id)
            .with_content(&content)
            .with_model(model_id)
            .to_json();
        for &socket in &live.sockets {
            self.out.push(Effect::Send(socket, frame.clone()));
        }
    }

    /// Stops the reply in progress, if any: the upstream request is cancelled and what
    /// arrived so far is stored as a stopped reply.
    fn stop(&mut self, session_id: &str, now: Now) {
        let Some(reply) = self
            .sessions
            .get_mut(session_id)
            .and_then(|live| live.reply.take())
        else {
            return;
        };
        self.out.push(Effect::Cancel(reply.job));
        self.conclude(session_id, reply, Some("stopped"), None, now);
    }

    // ---- store writes -------------------------------------------------------------

    /// Queues a write; writes of one session run one at a time, in order.
    fn write(&mut self, session_id: &str, write: Write) {
        if let Some(live) = self.sessions.get_mut(session_id) {
            live.writes.push_back(write);
        }
        self.next_write(session_id);
    }

    fn next_write(&mut self, session_id: &str) {
        let write = match self.sessions.get_mut(session_id) {
            Some(live) if live.writing.is_none() => live.writes.pop_front(),
            _ => None,
        };
        let Some(write) = write else {
            return;
        };
        let id = self.spawn(Work::Store(write.op));
        if let Some(live) = self.sessions.get_mut(session_id) {
            live.writing = Some(id);
        }
        self.pending.insert(
            id,
            Pending::Write {
                session_id: session_id.to_owned(),
                then: write.then,
            },
        );
    }

    fn written(
        &mut self,
        session_id: &str,
        then: AfterWrite,
        result: Result<StoreReply, WriteError>,
        now: Now,
    ) {
        if let Some(live) = self.sessions.get_mut(session_id) {
            live.writing = None;
            if result.is_ok() {
                live.stored = true;
            }
        }
        match then {
            AfterWrite::UserMessage { socket, message } => {
                self.user_message_stored(socket, session_id, message, result, now)
            }
            AfterWrite::Reply => {
                if let Err(error) = result {
                    log::error!(
                        "session {session_id}: a reply could not be stored: {}",
                        describe(&error)
                    );
                }
            }
            AfterWrite::Model { socket, model_id } => match result {
                Ok(_) => self.model_changed(session_id, &model_id, now),
                Err(error) => self.write_failed(socket, session_id, &error, now),
            },
        }
        self.next_write(session_id);
        self.evict_if_idle(session_id);
    }

    fn user_message_stored(
        &mut self,
        socket: ConnId,
        session_id: &str,
        message: Message,
        result: Result<StoreReply, WriteError>,
        now: Now,
    ) {
        let context = self.settings.context_messages;
        let Some(live) = self.sessions.get_mut(session_id) else {
            return;
        };
        if let Err(error) = result {
            live.message_count = live.message_count.saturating_sub(1);
            self.write_failed(socket, session_id, &error, now);
            return;
        }
        live.remember(Sender::User, message.content.clone(), context);
        let message_id = message.id.as_deref().unwrap_or_default();
        let mut echo = Outbound::new(Kind::UserMessage, Sender::User, message.at)
            .with_session(session_id)
            .with_user(&live.owner)
            .with_content(&message.content);
        for (key, value) in &message.meta {
            echo = echo.with_meta(key, value);
        }
        let echo = echo.with_meta("message_id", message_id).to_json();
        for &other in live.sockets.iter().filter(|&&s| s != socket) {
            self.out.push(Effect::Send(other, echo.clone()));
        }
        let loading = Outbound::system(Kind::Loading, now.ms)
            .with_session(session_id)
            .with_meta("message_id", message_id)
            .to_json();
        self.out.push(Effect::Send(socket, loading));
        if live.reply.is_some() {
            live.turn_waiting = Some(socket);
        } else {
            self.start_reply(session_id, socket, now);
        }
    }

    fn write_failed(&mut self, socket: ConnId, session_id: &str, error: &WriteError, now: Now) {
        let (code, message) = match error {
            WriteError::Busy => (code::SERVICE_ERROR, BUSY),
            WriteError::Store(StoreError::SessionFull) => (code::SERVICE_ERROR, SESSION_FULL),
            WriteError::Store(StoreError::NotOwner) => {
                self.unauthorized(socket, Some(session_id), now);
                return;
            }
            WriteError::Store(other) => {
                log::warn!("session {session_id}: store write failed: {other}");
                (code::DATABASE_ERROR, "Database operation failed")
            }
        };
        self.error(socket, Some(session_id), code, message, now);
    }

    // ---- replies ------------------------------------------------------------------

    fn start_reply(&mut self, session_id: &str, origin: ConnId, now: Now) {
        let id = self.job_id();
        let Ok(message_id) = ids::random_id() else {
            self.error(origin, Some(session_id), code::SERVICE_ERROR, BUSY, now);
            return;
        };
        let Some(live) = self.sessions.get_mut(session_id) else {
            return;
        };
        let model_id = effective_model(live, &self.settings).to_owned();
        let turns: Vec<_> = live.history.iter().cloned().collect();
        let prompt_bytes = turns.iter().map(|t| t.content.len()).sum();
        let call = LlmCall {
            provider_id: model_id.clone(),
            turns,
            user_id: live.owner.clone(),
            conversation_id: live.conversation_id.clone(),
        };
        live.finished = None;
        live.reply = Some(Reply::new(
            id,
            message_id,
            model_id,
            origin,
            now.at,
            now.ms,
            prompt_bytes,
        ));
        self.out.push(Effect::Spawn(Job {
            id,
            work: Work::Llm(call),
        }));
        self.pending.insert(
            id,
            Pending::Reply {
                session_id: session_id.to_owned(),
            },
        );
    }

    fn chunk(&mut self, job: JobId, text: &str, now: Now) {
        let Some(Pending::Reply { session_id }) = self.pending.get(&job) else {
            return;
        };
        let Some(live) = self.sessions.get_mut(session_id) else {
            return;
        };
        let Some(reply) = live.reply.as_mut().filter(|r| r.job == job) else {
            return;
        };
        if text.is_empty() {
            return;
        }
        reply.push(text);
        for &socket in &live.sockets {
            deliver(&mut self.hub, &mut self.out, socket, &live.id, reply, now);
        }
    }

    fn reply_finished(&mut self, job: JobId, result: Result<Finish, LlmError>, now: Now) {
        let Some(Pending::Reply { session_id }) = self.pending.remove(&job) else {
            return;
        };
        let Some(live) = self.sessions.get_mut(&session_id) else {
            return;
        };
        // A reply that was stopped was concluded then; its job ending changes nothing.
        let Some(reply) = live.reply.take_if(|r| r.job == job) else {
            return;
        };
        let timeout = || {
            let message = format!(
                "AI service request timed out after {}",
                humanize(self.settings.stream_timeout)
            );
            (code::LLM_TIMEOUT, message)
        };
        let (outcome, tokens, error) = match result {
            Ok(finish) => {
                if finish.conversation_id.is_some() {
                    live.conversation_id = finish.conversation_id;
                }
                (None, finish.total_tokens, None)
            }
            Err(LlmError::Cancelled) => (Some("stopped"), None, None),
            Err(LlmError::Interrupted { detail }) => {
                log::warn!("session {session_id}: reply interrupted: {detail}");
                (Some("error"), None, None)
            }
            Err(LlmError::Timeout) => (Some("error"), None, Some(timeout())),
            Err(LlmError::Unavailable { detail, .. }) => {
                log::warn!("session {session_id}: AI service unavailable: {detail}");
                let unavailable = (
                    code::LLM_UNAVAILABLE,
                    "AI service is temporarily unavailable".to_owned(),
                );
                (Some("error"), None, Some(unavailable))
            }
        };
        let origin = reply.origin;
        if reply.seq() > 0 || outcome != Some("error") {
            self.conclude(&session_id, reply, outcome, tokens, now);
        } else {
            // Nothing was streamed: the error frame is the whole answer.
            for socket in live.sockets.iter() {
                if let Some(state) = self.hub.get_mut(*socket) {
                    state.delivery = None;
                }
            }
        }
        if let Some((code, message)) = error {
            self.reply_error(&session_id, origin, code, &message, now);
        }
        self.next_turn(&session_id, now);
    }

    /// A user message stored while the previous reply streamed is answered now.
    fn next_turn(&mut self, session_id: &str, now: Now) {
        let Some(live) = self.sessions.get_mut(session_id) else {
            return;
        };
        match live.turn_waiting.take() {
            Some(origin) if live.reply.is_none() => self.start_reply(session_id, origin, now),
            waiting => live.turn_waiting = waiting,
        }
        self.evict_if_idle(session_id);
    }

    /// Ends a reply: the final frame to every socket (with what each has not seen), and
    /// the reply stored with its usage and timing.
    fn conclude(
        &mut self,
        session_id: &str,
        reply: Reply,
        outcome: Option<&'static str>,
        tokens: Option<u64>,
        now: Now,
    ) {
        let context = self.settings.context_messages;
        let max_messages = self.settings.max_messages;
        let Some(live) = self.sessions.get_mut(session_id) else {
            return;
        };
        for &socket in &live.sockets {
            let Some(state) = self.hub.get_mut(socket) else {
                continue;
            };
            let sent = match state.delivery.take() {
                Some(d) if d.message_id == reply.message_id => d.sent_seq,
                _ => 0,
            };
            let frame = final_frame(session_id, &reply, sent, outcome, false, now);
            self.out.push(Effect::Send(socket, frame));
        }
        if !reply.text.is_empty() {
            let estimate = (reply.prompt_bytes + reply.text.len()) / 4;
            let tokens = tokens.unwrap_or(estimate as u64);
            let elapsed = now.at.saturating_duration_since(reply.started);
            let mut message = Message::new(
                reply.message_id.clone(),
                Sender::Ai,
                reply.text.clone(),
                now.ms,
            );
            if let Some(outcome) = outcome {
                message.meta.insert(outcome.to_owned(), "true".to_owned());
            }
            message.model = Some(reply.model_id.clone());
            message.tokens = Some(i64::try_from(tokens).unwrap_or(i64::MAX));
            message.resp_ms = Some(i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX));
            live.remember(Sender::Ai, reply.text.clone(), context);
            live.message_count += 1;
            let op = StoreOp::Append {
                session_id: session_id.to_owned(),
                user_id: live.owner.clone(),
                name: String::new(),
                model_id: live.model_id.clone(),
                message: Box::new(message),
                max_messages,
            };
            live.writes.push_back(Write {
                op,
                then: AfterWrite::Reply,
            });
        }
        live.finished = Some(Finished {
            reply,
            outcome,
            at: now.at,
        });
        self.next_write(session_id);
    }

    /// Errors about a reply go to the socket that asked for it, or to the session's
    /// sockets when that one is gone.
    fn reply_error(
        &mut self,
        session_id: &str,
        origin: ConnId,
        code: &'static str,
        message: &str,
        now: Now,
    ) {
        let targets: Vec<ConnId> = match self.hub.get(origin) {
            Some(_) => vec![origin],
            None => self
                .sessions
                .get(session_id)
                .map(|live| live.sockets.clone())
                .unwrap_or_default(),
        };
        for socket in targets {
            self.error(socket, Some(session_id), code, message, now);
        }
    }

    // ---- jobs ---------------------------------------------------------------------

    fn spawn(&mut self, work: Work) -> JobId {
        let id = self.job_id();
        self.out.push(Effect::Spawn(Job { id, work }));
        id
    }

    fn job_id(&mut self) -> JobId {
        let id = self.next_job;
        self.next_job += 1;
        id
    }

    fn job_done(&mut self, done: JobDone, now: Now) {
        match done {
            JobDone::Chunk { id, text } => self.chunk(id, &text, now),
            JobDone::Finished { id, result } => self.reply_finished(id, result, now),
            JobDone::Store { id, result } => {
                self.store_done(id, result.map_err(WriteError::Store), now)
            }
            JobDone::Refused { id } => match self.pending.get(&id) {
                Some(Pending::Reply { .. }) => self.reply_refused(id, now),
                Some(_) => self.store_done(id, Err(WriteError::Busy), now),
                None => {}
            },
        }
    }

    /// The LLM job never ran (lane full) or died (panic): a busy error, or, when text
    /// had already streamed, the end of a failed reply that keeps what arrived.
    fn reply_refused(&mut self, job: JobId, now: Now) {
        let Some(Pending::Reply { session_id }) = self.pending.remove(&job) else {
            return;
        };
        let Some(reply) = self
            .sessions
            .get_mut(&session_id)
            .and_then(|live| live.reply.take_if(|r| r.job == job))
        else {
            return;
        };
        let origin = reply.origin;
        if reply.seq() > 0 {
            self.conclude(&session_id, reply, Some("error"), None, now);
        }
        self.reply_error(&session_id, origin, code::SERVICE_ERROR, BUSY, now);
        self.next_turn(&session_id, now);
    }

    fn store_done(&mut self, id: JobId, result: Result<StoreReply, WriteError>, now: Now) {
        let Some(pending) = self.pending.remove(&id) else {
            return;
        };
        match pending {
            Pending::Resolve { socket } => self.resolved(socket, result, now),
            Pending::Load { socket, session_id } => self.loaded(socket, session_id, result, now),
            Pending::Write { session_id, then } => self.written(&session_id, then, result, now),
            Pending::Sweep => match result {
                Ok(StoreReply::Ended(ids)) => {
                    if !ids.is_empty() {
                        log::info!("idle sweep ended {} session(s)", ids.len());
                    }
                    for id in ids {
                        self.end_session(&id, now);
                    }
                }
                Ok(_) => {}
                Err(error) => log::warn!("idle sweep failed: {}", describe(&error)),
            },
            Pending::Reply { session_id } => {
                // Not a store job; put it back untouched.
                self.pending.insert(id, Pending::Reply { session_id });
            }
        }
    }

    fn resolved(&mut self, socket: ConnId, result: Result<StoreReply, WriteError>, now: Now) {
        let Some(user_id) = self.hub.get(socket).map(|s| s.user.id.clone()) else {
            return;
        };
        let found = match result {
            Ok(StoreReply::Found(found)) => found,
            Ok(_) => None,
            Err(error) => {
                log::warn!(
                    "socket {socket:?}: looking up the session failed ({}); starting a fresh one",
                    describe(&error)
                );
                None
            }
        };
        if let Some(state) = self.hub.get_mut(socket) {
            state.held = None;
        }
        match found.filter(|t| t.session.user_id == user_id && t.session.is_active()) {
            Some(transcript) => {
                let id = transcript.session.id.clone();
                let context = self.settings.context_messages;
                self.sessions
                    .entry(id.clone())
                    .or_insert_with(|| Live::from_store(*transcript, context));
                self.bind(socket, &id, now);
            }
            None => {
                self.bind_fresh(socket, now);
            }
        }
        self.release_held(socket, now);
    }

    fn loaded(
        &mut self,
        socket: ConnId,
        session_id: String,
        result: Result<StoreReply, WriteError>,
        now: Now,
    ) {
        let Some(user_id) = self.hub.get(socket).map(|s| s.user.id.clone()) else {
            return;
        };
        let found = match result {
            Ok(StoreReply::Found(found)) => Ok(found),
            Ok(_) => Ok(None),
            Err(error) => Err(error),
        };
        let held = self
            .hub
            .get_mut(socket)
            .and_then(|state| state.held.take())
            .unwrap_or_default();
        let bound = self.hub.get(socket).and_then(|s| s.session.clone());
        match found {
            Ok(Some(t)) if t.session.user_id != user_id => {
                self.unauthorized(socket, bound.as_deref(), now);
                self.requeue(socket, held, 1, now);
            }
            Ok(Some(t)) if t.session.is_active() => {
                let context = self.settings.context_messages;
                self.sessions
                    .entry(session_id)
                    .or_insert_with(|| Live::from_store(*t, context));
                self.requeue(socket, held, 0, now);
            }
            // Unknown or ended: a fresh session under a new id; the frames that named
            // the old id go there.
            Ok(_) => {
                if let Some(fresh) = self.bind_fresh(socket, now) {
                    self.alias(socket, session_id, fresh);
                }
                self.requeue(socket, held, 0, now);
            }
            Err(error) => {
                let (code, message) = match error {
                    WriteError::Busy => (code::SERVICE_ERROR, BUSY),
                    WriteError::Store(error) => {
                        log::warn!("loading session {session_id} failed: {error}");
                        (code::DATABASE_ERROR, "Database operation failed")
                    }
                };
                self.error(socket, bound.as_deref(), code, message, now);
                self.requeue(socket, held, 1, now);
            }
        }
    }

    /// Puts held frames back (dropping the first `answered`) and handles them.
    fn requeue(&mut self, socket: ConnId, mut held: VecDeque<String>, answered: usize, now: Now) {
        held.drain(..answered.min(held.len()));
        if let Some(state) = self.hub.get_mut(socket) {
            state.held = Some(held);
        }
        self.release_held(socket, now);
    }

    // ---- session end, time, shutdown ------------------------------------------------

    /// Tells every socket of an ended session, and closes them: a client starts a new
    /// session by reconnecting.
    fn end_session(&mut self, session_id: &str, now: Now) {
        self.stop(session_id, now);
        let Some(live) = self.sessions.get_mut(session_id) else {
            return;
        };
        live.ended = true;
        let sockets = std::mem::take(&mut live.sockets);
        let frame = Outbound::system(Kind::ConnectionStatus, now.ms)
            .with_session(session_id)
            .with_content("Session ended")
            .with_meta("ended", "true")
            .to_json();
        for socket in sockets {
            if let Some(state) = self.hub.get_mut(socket) {
                state.session = None;
                state.delivery = None;
            }
            self.out.push(Effect::Send(socket, frame.clone()));
            let (code, reason) = SESSION_ENDED;
            self.out.push(Effect::Close(socket, code, reason));
        }
        live.orphaned_since = Some(now.at);
        live.finished = None;
        self.evict_if_idle(session_id);
    }

    fn tick(&mut self, now: Now) {
        if now.at >= self.next_sweep {
            self.next_sweep = now.at + self.settings.sweep_interval;
            let ttl = i64::try_from(self.settings.session_ttl.as_millis()).unwrap_or(i64::MAX);
            let id = self.spawn(Work::Store(StoreOp::EndIdle {
                idle_before: now.ms.saturating_sub(ttl),
                at: now.ms,
            }));
            self.pending.insert(id, Pending::Sweep);
        }
        if now.at >= self.next_cleanup {
            self.next_cleanup = now.at + self.settings.rate_cleanup;
            self.limiter.cleanup(now.at);
        }
        let keep = self.settings.reconnect_timeout;
        let expired = |since: Option<Instant>| since.is_some_and(|t| t + keep <= now.at);
        let orphans: Vec<String> = self
            .sessions
            .values()
            .filter(|live| live.reply.is_some() && expired(live.orphaned_since))
            .map(|live| live.id.clone())
            .collect();
        for id in orphans {
            log::info!("session {id}: nobody connected for {keep:?}; stopping its reply");
            self.stop(&id, now);
        }
        let mut idle = Vec::new();
        for live in self.sessions.values_mut() {
            if expired(live.finished.as_ref().map(|f| f.at)) {
                live.finished = None;
            }
            if live.is_idle() {
                idle.push(live.id.clone());
            }
        }
        for id in idle {
            self.sessions.remove(&id);
        }
        let next = self
            .sessions
            .values()
            .flat_map(|live| {
                let orphan = live.reply.as_ref().and(live.orphaned_since);
                let finished = live.finished.as_ref().map(|f| f.at);
                [orphan, finished].into_iter().flatten().map(|t| t + keep)
            })
            .chain([self.next_sweep, self.next_cleanup])
            .min()
            .unwrap_or(self.next_sweep);
        self.out.push(Effect::Timer(next));
    }

    fn shutdown(&mut self, now: Now) {
        let streaming: Vec<String> = self
            .sessions
            .values()
            .filter(|live| live.reply.is_some())
            .map(|live| live.id.clone())
            .collect();
        for id in &streaming {
            self.stop(id, now);
        }
        // Nothing will come back to start the next write: hand them all over now.
        let writes: Vec<Write> = self
            .sessions
            .values_mut()
            .flat_map(|live| live.writes.drain(..))
            .collect();
        for write in writes {
            self.spawn(Work::Store(write.op));
        }
        if !streaming.is_empty() {
            log::info!(
                "shutdown: stopped {} streaming repl(ies); their text is being stored",
                streaming.len()
            );
        }
    }

    // ---- helpers ------------------------------------------------------------------

    fn error(
        &mut self,
        socket: ConnId,
        session_id: Option<&str>,
        code: &'static str,
        message: impl Into<String>,
        now: Now,
    ) {
        let recoverable = !matches!(code, code::UNAUTHORIZED | code::NOT_FOUND);
        let mut frame = Outbound::error(code, message, recoverable, now.ms);
        if let Some(id) = session_id {
            frame = frame.with_session(id);
        }
        self.out.push(Effect::Send(socket, frame.to_json()));
    }

    fn unauthorized(&mut self, socket: ConnId, bound: Option<&str>, now: Now) {
        self.error(
            socket,
            bound,
            code::UNAUTHORIZED,
            "You do not have permission to access this session",
            now,
        );
    }
}

fn effective_model<'a>(live: &'a Live, settings: &'a Settings) -> &'a str {
    if live.model_id.is_empty() {
        &settings.default_model
    } else {
        &live.model_id
    }
}

/// Sends a socket the part of `reply` it has not seen, unless a frame is still queued on
/// it: then the text waits and goes out as one frame when the socket drains.
fn deliver(
    hub: &mut Hub,
    out: &mut Vec<Effect>,
    socket: ConnId,
    session_id: &str,
    reply: &Reply,
    now: Now,
) {
    let Some(state) = hub.get_mut(socket) else {
        return;
    };
    let delivery = match &mut state.delivery {
        Some(d) if d.message_id == reply.message_id => d,
        slot => slot.insert(Delivery {
            message_id: reply.message_id.clone(),
            sent_seq: 0,
            awaiting_flush: false,
        }),
    };
    if delivery.awaiting_flush || delivery.sent_seq >= reply.seq() {
        return;
    }
    let frame = chunk_frame(session_id, reply, delivery.sent_seq, &[], now);
    delivery.sent_seq = reply.seq();
    delivery.awaiting_flush = true;
    out.push(Effect::Send(socket, frame));
    out.push(Effect::WatchFlush(socket));
}

/// What a socket binding to a session gets of its reply: the reply so far while it
/// streams, or the end it missed when it reconnects within `RECONNECT_TIMEOUT`.
fn replay(
    hub: &mut Hub,
    out: &mut Vec<Effect>,
    socket: ConnId,
    live: &Live,
    resume: &Resume,
    now: Now,
) {
    let resumes = |message_id: &str| {
        resume
            .message_id
            .as_deref()
            .is_none_or(|wanted| wanted == message_id)
    };
    if let Some(reply) = &live.reply {
        let from = if resumes(&reply.message_id) {
            resume.last_seq.unwrap_or(0)
        } else {
            0
        };
        let Some(state) = hub.get_mut(socket) else {
            return;
        };
        if reply.seq() == 0 {
            let loading = Outbound::system(Kind::Loading, now.ms)
                .with_session(&live.id)
                .to_json();
            out.push(Effect::Send(socket, loading));
        } else {
            let frame = chunk_frame(&live.id, reply, from, &[("replay", "true")], now);
            out.push(Effect::Send(socket, frame));
            out.push(Effect::WatchFlush(socket));
        }
        state.delivery = Some(Delivery {
            message_id: reply.message_id.clone(),
            sent_seq: reply.seq(),
            awaiting_flush: reply.seq() > 0,
        });
        return;
    }
    let Some(finished) = &live.finished else {
        return;
    };
    let (Some(wanted), Some(last_seq)) = (&resume.message_id, resume.last_seq) else {
        return;
    };
    if *wanted == finished.reply.message_id && last_seq < finished.reply.seq() {
        let frame = final_frame(
            &live.id,
            &finished.reply,
            last_seq,
            finished.outcome,
            true,
            now,
        );
        out.push(Effect::Send(socket, frame));
    }
}

fn chunk_frame(
    session_id: &str,
    reply: &Reply,
    sent: u64,
    extra: &[(&str, &str)],
    now: Now,
) -> String {
    reply_frame(session_id, reply, sent, false, extra, now)
}

fn final_frame(
    session_id: &str,
    reply: &Reply,
    sent: u64,
    outcome: Option<&str>,
    replayed: bool,
    now: Now,
) -> String {
    let mut extra = Vec::with_capacity(2);
    if let Some(outcome) = outcome {
        extra.push((outcome, "true"));
    }
    if replayed {
        extra.push(("replay", "true"));
    }
    reply_frame(session_id, reply, sent, true, &extra, now)
}

/// An `ai_response` carrying the reply's text after chunk `sent`, up to its latest.
fn reply_frame(
    session_id: &str,
    reply: &Reply,
    sent: u64,
    done: bool,
    extra: &[(&str, &str)],
    now: Now,
) -> String {
    let seq = reply.seq().to_string();
    let mut frame = Outbound::new(Kind::AiResponse, Sender::Ai, now.ms)
        .with_session(session_id)
        .with_content(reply.since(sent))
        .with_model(&reply.model_id)
        .with_meta("streaming", "true")
        .with_meta("done", if done { "true" } else { "false" })
        .with_meta("message_id", &reply.message_id)
        .with_meta("seq", &seq);
    for (key, value) in extra {
        frame = frame.with_meta(key, value);
    }
    frame.to_json()
}

fn describe(error: &WriteError) -> String {
    match error {
        WriteError::Busy => "store lane busy".to_owned(),
        WriteError::Store(error) => error.to_string(),
    }
}

/// A duration the way the Go service printed it (`2m0s`, `1h0m0s`, `45s`, `500ms`), so
/// that error texts clients match on stay the same.
fn humanize(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        _ if secs == 0 => format!("{}ms", duration.as_millis()),
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}
