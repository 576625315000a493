//! The chat state machine. Events go in (a socket connected, a frame arrived, a socket
//! closed or drained, a job finished, time passed); effects come out (send a frame,
//! close a socket, run a job, cancel one, wake me at). No sockets, threads or clocks
//! live here: time is passed in, and jobs run wherever the caller puts them. That makes
//! every sequence of `spec/websocket.md` testable with plain function calls.

mod admin;
mod files;
mod frames;
mod help;
mod lease;
mod lifecycle;
mod news;
mod replies;
mod resume;
mod sockets;
mod writes;

pub use lease::LeaseAnswer;
pub use news::News;
use replies::{deliver, replay, send_final};
use writes::describe;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::helpdesk::HelpDesk;
use super::hub::{Hub, Resume, User, HELD_FRAMES_MAX};
use super::id::Id;
use super::jobs::{
    AfterWrite, AppendOp, Asker, Continuation, Job, JobDone, JobId, LlmCall, Outcome, StoreOp,
    StoreReply, Takeover, Work,
};
use super::protocol::{code, parse_inbound, Inbound, Kind, ModelInfo, Outbound};
use super::ratelimit::RateLimiter;
use super::session::{name_for, Finished, Live, Parked, Write, WRITES_QUEUED_MAX};
use super::socket::SocketId;
use super::stream::{Delivery, Reply};
use crate::config::ChatConfig;
use crate::hash::NameMap;
use crate::ids;
use crate::llm::{Finish, LlmError};
use crate::store::{AssistingAdmin, Message, Millis, Sender, StoreError, Transcript};

/// The close code and reason for sockets of a session that was ended.
const SESSION_ENDED: (u16, &str) = (1000, "Session ended");
const BUSY: &str = "Server busy — please retry";
const SESSION_FULL: &str = "Session is full, start a new chat";

#[derive(Clone, Debug)]
pub struct Settings {
    pub models: Vec<ModelInfo>,
    pub default_model: String,
    /// Only for the text of `LLM_TIMEOUT` errors; the lane enforces it.
    pub stream_timeout: Duration,
    /// The limits and timing the operator set for the chat, kept as loaded.
    pub chat: ChatConfig,
    /// `HELP_ESCALATION_AFTER`: `None`, a help request is never escalated.
    pub help_escalation_after: Option<Duration>,
    /// Where this server's own files are served (`<prefix>/files/`): a `file_url` that
    /// starts with it came from `P/upload` and needs no check of its host.
    pub files_path: String,
}

/// The time of an event: monotonic for deadlines, wall clock for what is stored.
#[derive(Clone, Copy, Debug)]
pub struct Now {
    pub at: Instant,
    pub ms: Millis,
}

pub enum Event<'a> {
    Connected {
        socket: SocketId,
        user: User,
        /// The handshake's `?session_id=`.
        session_id: Option<String>,
        resume: Resume,
    },
    Frame {
        socket: SocketId,
        text: &'a str,
    },
    Closed {
        socket: SocketId,
    },
    /// A socket wrote everything queued on it (asked for with [`Effect::WatchFlush`]).
    Flushed {
        socket: SocketId,
    },
    JobDone(JobDone),
    /// Ended through `POST …/end`.
    SessionEnded {
        session_id: String,
    },
    /// An admin takes a session over or hands it back through `P/admin/takeover/:id`;
    /// answered with [`Effect::Answer`].
    Takeover(Takeover),
    Tick,
    /// The process is stopping: stop and store every reply in flight, and hand over
    /// every queued store write at once.
    Shutdown,
    /// Another process changed a session this one may hold (see [`News`]).
    News(News),
    /// What the reply stream of a session held when this process began to hold it:
    /// the news of another process's reply, oldest first (`engine/resume.rs`).
    Replayed {
        session_id: String,
        entries: Vec<News>,
    },
    /// The answer to [`Effect::Lease`] taking a session's lease.
    Leased {
        session_id: String,
        answer: LeaseAnswer,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    Send(SocketId, String),
    /// A frame for everyone in an audience (but `except`), wherever they are connected:
    /// the application resolves it (see `app/fanout.rs`).
    Broadcast {
        to: Audience,
        frame: String,
        except: Option<SocketId>,
    },
    /// The answer to an admin's HTTP request ([`Asker::Request`]).
    Answer(u64, Answer),
    /// Deliver [`Event::Flushed`] once this socket's queue is written.
    WatchFlush(SocketId),
    Close(SocketId, u16, &'static str),
    Spawn(Job),
    Cancel(JobId),
    /// Deliver [`Event::Tick`] at this time.
    Timer(Instant),
    /// Take (answered with [`Event::Leased`]) or release the session's lease: one
    /// reply at a time per session across processes (`engine/lease.rs`).
    Lease {
        session_id: String,
        take: bool,
    },
}

/// Who a [`Effect::Broadcast`] is for. Named, not listed: the sockets are resolved
/// where the frame is delivered, so a frame for a session can travel once to each
/// process that holds some of its sockets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Audience {
    /// The sockets bound to the session, and those of the admin assisting it.
    Session(String),
    /// Every socket of a user.
    User(String),
    /// Every admin socket.
    Admins,
}

/// How an admin's takeover or hand-back ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The session is now assisted by the admin (join) or by nobody (leave).
    Done,
    NotFound,
    Ended,
    /// Another admin assists: their name.
    Held(String),
    /// The store could not take the change.
    Failed,
}

/// What the metrics count, accumulated until [`Chat::take_tally`] collects it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// `error` frames sent, the rate-limit refusal included.
    pub error_frames: u64,
    /// User messages refused by the per-user rate limit. (Model choices and lookups
    /// refused by theirs count as error frames only: the metric's label says messages.)
    pub rate_limited: u64,
    /// Sessions the store created: their first message was stored.
    pub sessions_created: u64,
    /// Sessions the store ended, through the API or the idle sweep.
    pub sessions_ended: u64,
    /// Takeovers stored: an admin joining a session nobody assisted.
    pub takeovers: u64,
}

/// What the core holds, for the tests and the fuzz target that check it stays bounded
/// whatever one user sends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Footprint {
    pub sockets: usize,
    pub sessions: usize,
    /// The longest write queue of any session (the write in flight not counted).
    pub writes_queued: usize,
    /// The most frames any socket holds while its session is looked up.
    pub frames_held: usize,
    /// Rate-limit buckets, both budgets together.
    pub rate_buckets: usize,
    /// Sessions holding their rarely used parts (a write, a reply kept for a
    /// reconnect, an assisting admin, ...): the rest cost only their small part.
    pub sessions_busy: usize,
}

/// Why a store write did not happen.
enum WriteError {
    Busy,
    Store(StoreError),
}

/// Where a frame's `session_id` leads.
enum Target {
    Ready(Id),
    /// A store lookup runs first; the frame waits with the socket's held frames.
    Held,
    Refused,
}

pub struct Chat {
    settings: Settings,
    hub: Hub,
    /// Boxed: a `Live` is large, most are idle, and a map's spare slots (up to half of
    /// them) would each cost a whole one (issue 18).
    /// Keyed by the id the session holds, shared.
    sessions: NameMap<Id, Box<Live>>,
    next_job: JobId,
    /// User messages per user.
    limiter: RateLimiter,
    /// The other frames that make the server work for a user: model choices and
    /// session lookups. Apart from messages, so that neither starves the other.
    controls: RateLimiter,
    next_sweep: Instant,
    next_cleanup: Instant,
    help: HelpDesk,
    out: Vec<Effect>,
    tally: Tally,
    /// Audiences this process started (`true`) or stopped (`false`) holding sockets or
    /// sessions of, until [`Chat::take_listening`] collects them.
    listening: Vec<(Audience, bool)>,
    /// Whether other processes may hold the same sessions ([`Chat::share_sessions`]).
    shared: bool,
    /// What changed in shared sessions, until [`Chat::take_news`] collects it.
    news: Vec<News>,
    /// Whether replies start only under the session's lease ([`Chat::lease_replies`]).
    leased: bool,
}

impl Chat {
    pub fn new(settings: Settings, now: Instant) -> Chat {
        Chat {
            limiter: RateLimiter::new(settings.chat.rate_limit, settings.chat.rate_window),
            controls: RateLimiter::new(settings.chat.rate_limit, settings.chat.rate_window),
            next_sweep: now,
            next_cleanup: now + settings.chat.rate_cleanup,
            help: HelpDesk::new(settings.help_escalation_after),
            settings,
            hub: Hub::default(),
            sessions: NameMap::default(),
            next_job: 1,
            out: Vec::new(),
            tally: Tally::default(),
            listening: Vec::new(),
            shared: false,
            news: Vec::new(),
            leased: false,
        }
    }

    pub fn sockets_of(&self, user_id: &str) -> &[SocketId] {
        self.hub.sockets_of(user_id)
    }

    /// Each user with a socket here, and how many (for the other pods' limit).
    pub fn socket_counts(&self) -> impl Iterator<Item = (&str, usize)> {
        self.hub.socket_counts()
    }

    /// Whose socket it is.
    pub fn user_of(&self, socket: SocketId) -> Option<&str> {
        self.hub.get(socket).map(|state| &*state.user.id)
    }

    /// The sockets of `to` connected here: the fan-out resolves a broadcast with it.
    pub fn audience(&self, to: &Audience) -> Vec<SocketId> {
        match to {
            Audience::Session(id) => {
                let Some(live) = self.sessions.get(id.as_str()) else {
                    return Vec::new();
                };
                let mut sockets = live.sockets.to_vec();
                if let Some(admin) = &live.rare().assisting {
                    let admin_sockets = self.hub.sockets_of(&admin.id).iter();
                    let admin_sockets = admin_sockets.filter(|s| !sockets.contains(s)).copied();
                    let admin_sockets: Vec<_> = admin_sockets
                        .filter(|&s| self.hub.get(s).is_some_and(|state| state.user.admin))
                        .collect();
                    sockets.extend(admin_sockets);
                }
                sockets
            }
            Audience::User(id) => self.hub.sockets_of(id).to_vec(),
            Audience::Admins => self.hub.admins().to_vec(),
        }
    }

    pub fn footprint(&self) -> Footprint {
        Footprint {
            sockets: self.hub.count(),
            sessions: self.sessions.len(),
            writes_queued: self
                .sessions
                .values()
                .map(|live| live.rare().writes.len())
                .max()
                .unwrap_or(0),
            frames_held: self.hub.held_max(),
            rate_buckets: self.limiter.tracked() + self.controls.tracked(),
            sessions_busy: self.sessions.values().filter(|l| l.holds_rare()).count(),
        }
    }

    /// The audiences this process began or ceased to hold members of since the last
    /// call, in order: a user's first socket and last, the first admin socket and the
    /// last, a session entering memory and leaving it. Frames for them produced
    /// elsewhere matter here exactly while they are held (`app/fanout.rs`).
    pub fn take_listening(&mut self) -> Vec<(Audience, bool)> {
        std::mem::take(&mut self.listening)
    }

    /// What was counted since the last call.
    pub fn take_tally(&mut self) -> Tally {
        std::mem::take(&mut self.tally)
    }

    /// An emptied list of effects, handed back so that the next event's effects reuse its
    /// allocation rather than growing a new list from nothing. The effects of one event
    /// are a handful; the list of a rare large one (a shutdown) is not kept.
    pub fn give_back(&mut self, mut effects: Vec<Effect>) {
        const KEPT: usize = 64;
        if self.out.is_empty() && effects.capacity() > self.out.capacity() {
            effects.clear();
            effects.shrink_to(KEPT);
            self.out = effects;
        }
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
            Event::Takeover(takeover) => self.takeover(takeover, now),
            Event::Tick => self.tick(now),
            Event::Shutdown => self.shutdown(now),
            Event::News(news) => self.heard(news, now),
            Event::Leased { session_id, answer } => self.leased(&session_id, answer, now),
            Event::Replayed {
                session_id,
                entries,
            } => self.replayed(&session_id, entries, now),
        }
        std::mem::take(&mut self.out)
    }

    /// Puts a session in memory unless it is there already.
    fn hold(&mut self, id: &str, live: impl FnOnce() -> Live) {
        if !self.sessions.contains_key(id) {
            let live = live();
            self.sessions.insert(live.id.clone(), Box::new(live));
            self.listening
                .push((Audience::Session(id.to_owned()), true));
        }
    }

    /// Whether a session may leave memory: nothing of it is in flight, and no socket
    /// here is its own or its assisting admin's (the admin's socket gets the session's
    /// frames only while it is in memory).
    fn evictable(&self, live: &Live) -> bool {
        let assisted_here = live
            .rare()
            .assisting
            .as_ref()
            .is_some_and(|admin| !self.hub.sockets_of(&admin.id).is_empty());
        live.is_idle() && !assisted_here
    }

    /// Takes a session out of memory.
    fn release(&mut self, id: &str) {
        if self.sessions.remove(id).is_some() {
            self.listening
                .push((Audience::Session(id.to_owned()), false));
        }
    }

    fn spawn(&mut self, work: Work, then: Continuation) -> JobId {
        let id = self.job_id();
        self.out.push(Effect::Spawn(Job { id, work, then }));
        id
    }

    fn job_id(&mut self) -> JobId {
        let id = self.next_job;
        self.next_job += 1;
        id
    }

    fn job_done(&mut self, done: JobDone, now: Now) {
        let JobDone { id, then, outcome } = done;
        match (then, outcome) {
            (Continuation::Reply { session_id }, Outcome::Chunk(text)) => {
                self.chunk(&session_id, id, &text, now)
            }
            (Continuation::Reply { session_id }, Outcome::Finished(result)) => {
                self.reply_finished(&session_id, id, result, now)
            }
            (Continuation::Reply { session_id }, Outcome::Refused) => {
                self.reply_refused(&session_id, id, now)
            }
            // A stream never answers like a store, nor a store job like a stream.
            (Continuation::Reply { .. }, Outcome::Store(_))
            | (_, Outcome::Chunk(_) | Outcome::Finished(_)) => {}
            (then, Outcome::Store(result)) => {
                self.store_done(then, result.map_err(WriteError::Store), now)
            }
            (then, Outcome::Refused) => self.store_done(then, Err(WriteError::Busy), now),
        }
    }

    fn error(
        &mut self,
        socket: SocketId,
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
        self.send_error(socket, frame);
    }

    /// Sends an `error` frame, counting it.
    fn send_error(&mut self, socket: SocketId, frame: Outbound<'_>) {
        if self.send(socket, frame.to_json()) {
            self.tally.error_frames += 1;
        }
    }

    fn broadcast(&mut self, to: Audience, frame: String, except: Option<SocketId>) {
        self.out.push(Effect::Broadcast { to, frame, except });
    }

    /// Queues a frame, unless the socket closed meanwhile (a job can outlive the socket
    /// that asked for it): the core only ever talks to sockets it knows are open.
    /// Returns whether the frame was queued.
    fn send(&mut self, socket: SocketId, frame: String) -> bool {
        let open = self.hub.get(socket).is_some();
        if open {
            self.out.push(Effect::Send(socket, frame));
        }
        open
    }

    fn unauthorized(&mut self, socket: SocketId, bound: Option<&str>, now: Now) {
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
