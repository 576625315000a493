//! One client connection: its socket, buffers, readiness and protocol state.
//!
//! Lifecycle (see docs/LIFECYCLE.md):
//! ```text
//!  accept ──► Http ──(Connection: close | error | drain)──────────► Closing ──► closed
//!              │ ▲ └──(101 Switching Protocols)──► Ws ──(close handshake,  ▲
//!              └─┘ keep-alive: next request              failure, slow)────┘
//! ```
//! The connection never blocks and never owns a thread. The reactor tells it what the
//! socket reported; the connection reads and writes until `WouldBlock`, parses what is
//! complete, keeps the rest, and reports what it needs next (a handler call, a close).
//!
//! Here: `Conn`, its phases, and the byte plumbing every phase shares (fill, flush,
//! settle). Each phase's protocol is in its own file: `http.rs` (parse, respond,
//! reject), `ws.rs` (upgrade, frames, send, close handshake), `deadlines.rs` (what must
//! happen when, and the timer-wheel entry for it). `Conn` is the reactor's alone: its
//! bookkeeping is private, reached through the narrow methods below.

mod deadlines;
mod http;
mod ws;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use mio::net::TcpStream;

use self::deadlines::ArmedTimer;
pub(in crate::net) use self::deadlines::Expiry;
pub(in crate::net) use self::http::Parsed;
pub(in crate::net) use self::ws::Sent;
use crate::net::http::{RequestHead, Response, MAX_HEAD_BYTES};
use crate::net::slab::ConnId;
use crate::net::ws::{code as ws_code, Socket};

/// Which listener accepted the connection: the public one serves every route under the
/// path prefix, the internal one (`METRICS_PORT`) only probes and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenerKind {
    Public,
    Internal,
}

#[derive(Clone, Copy, Debug)]
pub struct ConnInfo {
    pub id: ConnId,
    pub peer: SocketAddr,
    pub listener: ListenerKind,
    pub accepted_at: Instant,
}

/// Timeouts that apply to every HTTP connection.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// A request head must be complete this long after its first byte (and a new
    /// connection must start one this soon): the slowloris guard.
    pub head_timeout: Duration,
    /// A body that makes no progress for this long is abandoned.
    pub body_idle_timeout: Duration,
    /// An idle keep-alive connection is closed after this long.
    pub idle_timeout: Duration,
    /// Queued output that the peer does not drain for this long closes the connection.
    pub write_timeout: Duration,
    /// Above this many unsent bytes an HTTP connection stops reading (backpressure) and
    /// a WebSocket is closed as a slow consumer.
    pub max_outbound: usize,
    /// Protocol pings go out this often on an open WebSocket.
    pub ping_period: Duration,
    /// A WebSocket that sends nothing (not even a pong) for this long is dead.
    pub pong_wait: Duration,
    /// Largest WebSocket frame or message accepted (close 1009 above it).
    pub max_message_size: usize,
}

impl Limits {
    /// The spec's defaults with every timeout at 10 s: long enough that no unit test
    /// trips one by being slow, shared by the connection's and the reactor's tests.
    #[cfg(test)]
    pub const TESTING: Limits = Limits {
        head_timeout: Duration::from_secs(10),
        body_idle_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(10),
        write_timeout: Duration::from_secs(10),
        max_outbound: 1 << 20,
        ping_period: Duration::from_secs(54),
        pong_wait: Duration::from_secs(60),
        max_message_size: 1 << 20,
    };
}

/// How long a closing connection keeps draining the peer's input after our FIN, so
/// that unread request bytes do not turn the close into an RST that could destroy the
/// response the peer has not read yet.
const LINGER: Duration = Duration::from_secs(2);

/// Reads per `pump` before yielding to other connections.
const READ_BUDGET: usize = 16;

/// Pipelined input is parsed as it comes, but no more than this much is buffered ahead.
const READ_AHEAD: usize = 64 * 1024;

enum Phase {
    Http(HttpState),
    /// Inline: with tungstenite's state held apart and only while busy (`ws::Socket`),
    /// this is no larger than `Http`, and a socket costs one allocation fewer.
    Ws(WsState),
    /// Flushing the last response; after it, our FIN, then reading until the peer's.
    Closing {
        linger_until: Option<Instant>,
    },
}

struct WsState {
    socket: Socket,
    /// Any frame from the peer counts as a sign of life.
    last_heard: Instant,
    next_ping: Instant,
    /// The token's `exp`: the socket is closed with 1008 then.
    expires_at: Option<Instant>,
    /// When we sent a close frame and began waiting for the peer's.
    close_started: Option<Instant>,
}

#[derive(Debug, Default)]
struct HttpState {
    /// When the current request's first byte arrived; `None` between requests.
    started: Option<Instant>,
    /// Head parsed, body still arriving.
    body: Option<(RequestHead, usize)>,
    /// A body handed to the handler in chunks as it arrives (`Body::Stream` routes).
    stream: Option<Streaming>,
    /// A handler answer is outstanding (a lane job); nothing else is parsed meanwhile,
    /// so pipelined responses keep request order.
    awaiting: Option<Pending>,
}

/// A streamed body in progress.
#[derive(Debug)]
struct Streaming {
    /// Bytes of the declared body not yet handed over.
    remaining: usize,
    /// The handler said `Flow::Pause`: nothing is read until it resumes.
    paused: bool,
    /// How to answer once the last chunk is handed over.
    pending: Pending,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    keep_alive: bool,
    head_only: bool,
}

/// One accepted connection; only the reactor holds one, in its slab.
pub(in crate::net) struct Conn {
    socket: TcpStream,
    info: ConnInfo,
    readable: bool,
    writable: bool,
    /// The poll reported the peer's FIN (or an error): read on until EOF.
    fin_reported: bool,
    peer_closed: bool,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    last_progress: Instant,
    phase: Phase,
    /// The timer-wheel entry this connection armed last; older entries are stale.
    timer: Option<ArmedTimer>,
    /// When the connection was upgraded, until the handler is told the WebSocket ended.
    ws_opened: Option<Instant>,
    /// In the reactor's queue of connections to pump this turn.
    queued: bool,
    /// The handler wants to hear when everything queued so far has been written.
    watch_flush: bool,
    /// A streamed body ended before its last chunk; the handler has not heard yet.
    body_aborted: bool,
}

/// What the reactor should do with a connection after pumping it.
#[derive(Debug, PartialEq, Eq)]
pub(in crate::net) enum Next {
    Keep,
    /// Readiness left over after the read budget ran out: pump again soon.
    Yield,
    Close,
}

impl Conn {
    pub fn new(socket: TcpStream, info: ConnInfo) -> Conn {
        Conn {
            socket,
            info,
            readable: false,
            writable: false,
            fin_reported: false,
            peer_closed: false,
            inbuf: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            last_progress: info.accepted_at,
            phase: Phase::Http(HttpState::default()),
            timer: None,
            ws_opened: None,
            queued: false,
            watch_flush: false,
            body_aborted: false,
        }
    }

    pub fn socket_mut(&mut self) -> &mut TcpStream {
        &mut self.socket
    }

    pub fn info(&self) -> ConnInfo {
        self.info
    }

    /// Marks the connection as in the reactor's queue of connections to pump this turn;
    /// false when it already was, so that it is queued at most once.
    pub fn enqueue(&mut self) -> bool {
        !std::mem::replace(&mut self.queued, true)
    }

    /// The reactor took the connection off its queue to pump it.
    pub fn dequeue(&mut self) {
        self.queued = false;
    }

    /// Asks `take_flushed` to report once everything queued so far is written.
    pub fn watch_flush(&mut self) {
        self.watch_flush = true;
    }

    /// Records what a poll event said; cleared again only by `WouldBlock` (or a short
    /// read, see `fill`).
    pub fn mark_ready(&mut self, readable: bool, writable: bool, fin: bool) {
        self.readable |= readable || fin;
        self.writable |= writable;
        self.fin_reported |= fin;
    }

    pub fn outbound_len(&self) -> usize {
        self.out.len() - self.out_pos
    }

    pub fn is_websocket(&self) -> bool {
        matches!(self.phase, Phase::Ws(_))
    }

    /// True once, when a watched WebSocket has written everything it had queued.
    pub fn take_flushed(&mut self) -> bool {
        let flushed = self.watch_flush && self.outbound_len() == 0 && self.is_websocket();
        if flushed {
            self.watch_flush = false;
        }
        flushed
    }

    /// An idle keep-alive connection: nothing received, nothing owed, nothing queued.
    pub fn is_idle(&self) -> bool {
        self.inbuf.is_empty()
            && self.outbound_len() == 0
            && matches!(&self.phase, Phase::Http(s) if s.started.is_none() && s.awaiting.is_none())
    }

    /// Reads until `WouldBlock`, EOF, the budget, or backpressure.
    pub fn fill(&mut self, scratch: &mut [u8], now: Instant, limits: &Limits) -> io::Result<()> {
        for _ in 0..READ_BUDGET {
            if !self.can_read(limits) {
                return Ok(());
            }
            match self.socket.read(scratch) {
                Ok(0) => {
                    self.peer_closed = true;
                    self.readable = false;
                }
                Ok(n) => {
                    self.last_progress = now;
                    // A short read emptied the socket's receive queue. Linux epoll in
                    // edge-triggered mode reports every later arrival as a new edge, so
                    // the extra read that would only say `WouldBlock` is skipped (one
                    // syscall per message; nginx does the same). Linux-only by design.
                    // Not once the peer's FIN was reported: no further edge would come
                    // for the EOF that follows the data.
                    if n < scratch.len() && !self.fin_reported {
                        self.readable = false;
                    }
                    match &mut self.phase {
                        Phase::Closing { .. } => continue,
                        Phase::Http(state) => {
                            state.started.get_or_insert(now);
                        }
                        Phase::Ws(ws) => ws.last_heard = now,
                    }
                    self.inbuf.extend_from_slice(&scratch[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Readiness ∩ interest: the socket may have input and we want it. Interest drops
    /// while output piles up or a handler answer is outstanding, and never more than one
    /// body plus some read-ahead is buffered (backpressure).
    fn can_read(&self, limits: &Limits) -> bool {
        if !self.readable || self.peer_closed {
            return false;
        }
        match &self.phase {
            Phase::Closing { linger_until } => linger_until.is_some(),
            Phase::Ws(_) => {
                self.outbound_len() <= limits.max_outbound && self.inbuf.len() < READ_AHEAD
            }
            Phase::Http(state) if state.stream.is_some() => {
                // A streamed body is read a chunk ahead of its consumer, no more.
                state.stream.as_ref().is_some_and(|s| !s.paused)
                    && self.outbound_len() <= limits.max_outbound
                    && self.inbuf.len() < READ_AHEAD
            }
            Phase::Http(state) => {
                let cap = match &state.body {
                    Some((_, limit)) => limit.saturating_add(READ_AHEAD),
                    None => READ_AHEAD.max(MAX_HEAD_BYTES + 1),
                };
                state.awaiting.is_none()
                    && self.outbound_len() <= limits.max_outbound
                    && self.inbuf.len() < cap
            }
        }
    }

    pub fn start_closing(&mut self) {
        if matches!(&self.phase, Phase::Http(state) if state.stream.is_some()) {
            self.body_aborted = true;
        }
        if !matches!(self.phase, Phase::Closing { .. }) {
            self.phase = Phase::Closing { linger_until: None };
            self.inbuf = Vec::new();
        }
    }

    /// Serving this connection panicked: a request in progress gets `error` (its answer
    /// is never half-queued: responses are written whole), a WebSocket gets 1011, and
    /// either way the connection reads nothing more.
    pub fn fail(&mut self, error: &Response, date: &str, now: Instant) {
        match &self.phase {
            Phase::Http(state) => {
                let head_only = state.awaiting.is_some_and(|pending| pending.head_only);
                self.reject(error, head_only, date, now);
            }
            Phase::Ws(_) => {
                self.ws_close(ws_code::INTERNAL, "Internal error", now);
                // No close handshake: the handler that failed on one frame is not
                // given the frames the peer sends before it reads our close.
                self.start_closing();
            }
            Phase::Closing { .. } => {}
        }
    }

    /// Writes queued output until done or `WouldBlock`.
    pub fn flush(&mut self, now: Instant) -> io::Result<()> {
        while self.writable && self.out_pos < self.out.len() {
            match self.socket.write(&self.out[self.out_pos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.out_pos += n;
                    self.last_progress = now;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.out_pos == self.out.len() {
            // An idle connection holds no buffers (issue 18: thousands of idle sockets
            // each pinning a few hundred bytes); the allocator's free lists hand the
            // memory to the next connection that needs it.
            self.out_pos = 0;
            self.out = Vec::new();
        } else if self.out_pos > self.out.len() / 2 {
            // A peer that keeps up only partly: reclaim the written half so the queue
            // is bounded by what is unsent, not by everything ever sent.
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
        if self.inbuf.is_empty() {
            self.inbuf = Vec::new();
        }
        Ok(())
    }

    /// After a flush: decide whether the connection lives on. A closing connection with
    /// everything written sends FIN and lingers for the peer's; a peer that closed its
    /// side with nothing left to answer is done.
    pub fn settle(&mut self, now: Instant, limits: &Limits) -> Next {
        let flushed = self.outbound_len() == 0;
        let next = match &mut self.phase {
            Phase::Closing { linger_until } => {
                if !flushed {
                    return Next::Keep;
                }
                if self.peer_closed {
                    return Next::Close;
                }
                if linger_until.is_none() {
                    if self.socket.shutdown(Shutdown::Write).is_err() {
                        return Next::Close;
                    }
                    *linger_until = Some(now + LINGER);
                }
                Next::Keep
            }
            // A peer that closed its side with everything answered is done; anything
            // left in the buffer can never become a request. A streamed body's rest may
            // still wait in the buffer behind a pause: it is handed over first.
            Phase::Http(state)
                if self.peer_closed
                    && state.awaiting.is_none()
                    && flushed
                    && (state.stream.is_none() || self.inbuf.is_empty()) =>
            {
                Next::Close
            }
            // A WebSocket peer that vanished without a close frame. Input is read up to
            // the last frame boundary: a rest can only be part of a header that will
            // never be whole.
            Phase::Ws(_) if self.peer_closed => Next::Close,
            Phase::Http(_) | Phase::Ws(_) => Next::Keep,
        };
        if next == Next::Keep && self.can_read(limits) {
            Next::Yield
        } else {
            next
        }
    }
}
