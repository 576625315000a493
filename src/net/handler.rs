//! The loop's only door to the application: the [`Handler`] trait the reactor calls, the
//! [`Ctx`] a call may use to act on connections, and the [`Reply`] to a request.
//!
//! A handler never touches a connection: what it asks for through `Ctx` is recorded as
//! an `Effect` and carried out by the reactor when the call returns, so the handler
//! needs no socket and cannot reach one that is gone or whose slot was reused.

use std::time::Instant;

use tungstenite::{Bytes, Message, Utf8Bytes};

use super::conn::ConnInfo;
use super::http::{Request, RequestHead, Response};
use super::slab::ConnId;
use super::ws::Incoming;

/// The application side of the loop.
pub trait Handler {
    /// What worker lanes send back to the loop.
    type Completion: Send + 'static;

    /// Asked once a request head is complete, before its body is read: how the route
    /// takes its body and the largest it takes, or an answer that refuses the request
    /// outright.
    fn body_limit(
        &mut self,
        head: &RequestHead,
        conn: &ConnInfo,
        ctx: &Ctx,
    ) -> Result<Body, Response>;

    /// Serves a complete request: now, later (via [`Ctx::reply`]), or by upgrading it.
    /// For a [`Body::Stream`] route it is called with the head and an empty body before
    /// any of the body is read; the body then arrives through [`Handler::body_chunk`].
    fn request(&mut self, request: Request, conn: &ConnInfo, ctx: &mut Ctx) -> Reply;

    /// The next piece (at most [`BODY_CHUNK`] bytes) of a streamed body; `last` marks
    /// its end, after which the request is answered through [`Ctx::reply`].
    /// [`Flow::Pause`] stops reading the socket until [`Ctx::resume_body`].
    fn body_chunk(&mut self, _conn: ConnId, _chunk: Vec<u8>, _last: bool, _ctx: &mut Ctx) -> Flow {
        Flow::Continue
    }

    /// A streamed body ended before its last chunk (the peer left, stalled, or the
    /// request was answered early): whatever consumes it must let go. Called at most
    /// once per streamed request.
    fn body_aborted(&mut self, _conn: ConnId, _ctx: &mut Ctx) {}

    /// The upgrade answered by [`Reply::Upgrade`] is done: the socket is a WebSocket.
    fn ws_opened(&mut self, conn: &ConnInfo, ctx: &mut Ctx);

    fn ws_message(&mut self, conn: &ConnInfo, message: Incoming, ctx: &mut Ctx);

    /// Called exactly once for every socket `ws_opened` saw, however it ended.
    fn ws_closed(&mut self, conn: ConnId, ctx: &mut Ctx);

    /// A socket watched with [`Ctx::watch_flush`] has written everything queued: the
    /// moment to send what was held back while the peer was slower than its producer.
    fn ws_flushed(&mut self, _conn: ConnId, _ctx: &mut Ctx) {}

    /// When the handler next wants [`Handler::tick`] called, if ever.
    fn wake_at(&self) -> Option<Instant> {
        None
    }

    /// Time-driven work (sweeps, expiries), called once `wake_at` has passed.
    fn tick(&mut self, _ctx: &mut Ctx) {}

    fn completion(&mut self, done: Self::Completion, ctx: &mut Ctx);

    /// The body of a protocol-level refusal (400, 408, 411, 413, 431, 503).
    fn error_response(&self, status: u16, message: &str) -> Response;

    /// True once nothing the handler started is still running; the drain waits for it.
    fn is_quiet(&self) -> bool {
        true
    }

    /// Stops background work, waiting until `until` at most; true when all of it ended.
    fn finish(&mut self, until: Instant) -> bool;
}

/// How a route takes its request body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// Read whole (up to this many bytes) before [`Handler::request`] sees it.
    Whole(usize),
    /// Handed over in chunks as it arrives (up to this many bytes in all), so a large
    /// upload never sits in memory: see [`Handler::body_chunk`].
    Stream(usize),
}

impl Body {
    /// The largest body the route takes.
    pub fn limit(self) -> usize {
        match self {
            Body::Whole(limit) | Body::Stream(limit) => limit,
        }
    }
}

/// The largest chunk of a streamed body handed over at once.
pub const BODY_CHUNK: usize = 64 * 1024;

/// Whether the reader of a streamed body takes more now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// The consumer is behind: read nothing more from this socket until it says
    /// [`Ctx::resume_body`]. The peer's bytes wait in the kernel and TCP's window
    /// slows the sender down.
    Pause,
}

pub enum Reply {
    Now(Response),
    /// The handler will answer through [`Ctx::reply`]; until then the connection reads
    /// no further requests.
    Later,
    /// Switch to WebSocket: `accept` is the handshake's `Sec-WebSocket-Accept`, and the
    /// socket is closed with 1008 at `expires_at` (the token's `exp`).
    Upgrade {
        accept: String,
        expires_at: Option<Instant>,
    },
}

/// Something the handler asks the loop to do to a connection.
pub(super) enum Effect {
    Reply(ConnId, Response),
    Send(ConnId, Message),
    Close(ConnId, u16, String),
    WatchFlush(ConnId),
    ResumeBody(ConnId),
}

impl Effect {
    /// The connection it is for.
    pub(super) fn conn(&self) -> ConnId {
        match self {
            Effect::Reply(id, _)
            | Effect::Send(id, _)
            | Effect::Close(id, _, _)
            | Effect::WatchFlush(id)
            | Effect::ResumeBody(id) => *id,
        }
    }
}

/// What the handler may see and do during a call.
pub struct Ctx {
    pub now: Instant,
    pub unix: u64,
    pub draining: bool,
    pub slots_used: usize,
    pub slots_total: usize,
    /// In the order asked; the reactor takes them when the call returns.
    pub(super) effects: Vec<Effect>,
}

impl Ctx {
    /// Answers a request that was deferred with [`Reply::Later`].
    pub fn reply(&mut self, conn: ConnId, response: Response) {
        self.effects.push(Effect::Reply(conn, response));
    }

    /// Queues a text frame on a WebSocket (dropped if the socket is gone or closing).
    pub fn send_text(&mut self, conn: ConnId, text: impl Into<Utf8Bytes>) {
        self.effects
            .push(Effect::Send(conn, Message::Text(text.into())));
    }

    pub fn send_binary(&mut self, conn: ConnId, data: impl Into<Bytes>) {
        self.effects
            .push(Effect::Send(conn, Message::Binary(data.into())));
    }

    /// Starts a WebSocket's close handshake after what is already queued on it.
    pub fn close(&mut self, conn: ConnId, code: u16, reason: impl Into<String>) {
        self.effects.push(Effect::Close(conn, code, reason.into()));
    }

    /// Asks for one [`Handler::ws_flushed`] call once the socket's queue is written.
    pub fn watch_flush(&mut self, conn: ConnId) {
        self.effects.push(Effect::WatchFlush(conn));
    }

    /// Reads a streamed body paused by [`Flow::Pause`] again.
    pub fn resume_body(&mut self, conn: ConnId) {
        self.effects.push(Effect::ResumeBody(conn));
    }
}
