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

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use mio::net::TcpStream;

use super::http::{self, HeadError, Request, RequestHead, Response};
use super::slab::ConnId;
use super::ws::{self, Wire};

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

/// How long a closing connection keeps draining the peer's input after our FIN, so
/// that unread request bytes do not turn the close into an RST that could destroy the
/// response the peer has not read yet.
const LINGER: Duration = Duration::from_secs(2);

/// Reads per `pump` before yielding to other connections.
const READ_BUDGET: usize = 16;

/// Pipelined input is parsed as it comes, but no more than this much is buffered ahead.
const READ_AHEAD: usize = 64 * 1024;

/// Buffers larger than this are released once empty, so a burst does not pin memory on
/// an idle connection.
const KEEP_CAPACITY: usize = 4 * 1024;

enum Phase {
    Http(HttpState),
    Ws(Box<WsState>),
    /// Flushing the last response; after it, our FIN, then reading until the peer's.
    Closing {
        linger_until: Option<Instant>,
    },
}

struct WsState {
    socket: ws::Socket,
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
    /// A handler answer is outstanding (a lane job); nothing else is parsed meanwhile,
    /// so pipelined responses keep request order.
    awaiting: Option<Pending>,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    keep_alive: bool,
    head_only: bool,
}

/// What a pass over the input found.
#[derive(Debug)]
pub enum Parsed {
    Request(Request),
    /// The head was refused; answer and close.
    Invalid(HeadError),
    /// The route answered from the head alone and there is no body: the connection
    /// stays usable.
    Answer(Response),
    /// The route refused the request before its body was read (413, …): the unread
    /// body leaves the stream unframed, so answer and close. Carries "is HEAD".
    Refused(Response, bool),
    /// The declared body is over the route's limit: 413, then close.
    TooLarge(bool),
    /// Nothing complete yet (or waiting on the handler).
    Nothing,
}

pub struct Conn {
    socket: TcpStream,
    pub info: ConnInfo,
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
    /// Tick of the wheel entry this connection armed last; older entries are stale.
    pub timer_tick: Option<u64>,
    /// The deadline that entry stands for.
    pub timer_at: Option<Instant>,
    /// When the connection was upgraded, until the handler is told the WebSocket ended.
    ws_opened: Option<Instant>,
    /// In the reactor's queue of connections to pump this turn.
    pub queued: bool,
    /// The handler wants to hear when everything queued so far has been written.
    pub watch_flush: bool,
}

/// What a passed deadline means for the connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Expiry {
    /// Nothing was due (the deadline moved later).
    NotYet,
    /// Something was queued (a ping, a close frame, a 408): flush it.
    Flush,
    Close,
}

/// The fate of a message queued on a WebSocket.
#[derive(Debug, PartialEq, Eq)]
pub enum Sent {
    Queued,
    /// The queue passed its cap: the socket is being closed with 1013.
    SlowConsumer,
    /// The socket is closing or not a WebSocket; the message was dropped.
    NotOpen,
}

/// What the reactor should do with a connection after pumping it.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
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
            timer_tick: None,
            timer_at: None,
            ws_opened: None,
            queued: false,
            watch_flush: false,
        }
    }

    pub fn socket_mut(&mut self) -> &mut TcpStream {
        &mut self.socket
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
    pub fn can_read(&self, limits: &Limits) -> bool {
        if !self.readable || self.peer_closed {
            return false;
        }
        match &self.phase {
            Phase::Closing { linger_until } => linger_until.is_some(),
            Phase::Ws(_) => {
                self.outbound_len() <= limits.max_outbound && self.inbuf.len() < READ_AHEAD
            }
            Phase::Http(state) => {
                let cap = match &state.body {
                    Some((_, limit)) => limit.saturating_add(READ_AHEAD),
                    None => READ_AHEAD.max(http::MAX_HEAD_BYTES + 1),
                };
                state.awaiting.is_none()
                    && self.outbound_len() <= limits.max_outbound
                    && self.inbuf.len() < cap
            }
        }
    }

    /// Parses the next complete request. `body_limit` is asked once per head.
    pub fn parse(
        &mut self,
        now: Instant,
        body_limit: impl FnOnce(&RequestHead) -> Result<usize, Response>,
    ) -> Parsed {
        let Phase::Http(state) = &mut self.phase else {
            return Parsed::Nothing;
        };
        if state.awaiting.is_some() {
            return Parsed::Nothing;
        }
        if state.body.is_none() {
            if self.inbuf.is_empty() {
                return Parsed::Nothing;
            }
            state.started.get_or_insert(now);
            match http::parse_head(&self.inbuf) {
                Ok(None) => return Parsed::Nothing,
                Err(error) => return Parsed::Invalid(error),
                Ok(Some((head, used))) => {
                    self.inbuf.drain(..used);
                    let head_only = head.method == http::Method::Head;
                    match body_limit(&head) {
                        Ok(limit) if head.content_length <= limit => {
                            if head.expect_continue && head.content_length > 0 {
                                self.out.extend_from_slice(http::CONTINUE);
                            }
                            state.body = Some((head, limit));
                        }
                        Ok(_) => return Parsed::TooLarge(head_only),
                        Err(response) if head.content_length == 0 => {
                            state.awaiting = Some(Pending {
                                keep_alive: head.keep_alive,
                                head_only,
                            });
                            return Parsed::Answer(response);
                        }
                        Err(response) => return Parsed::Refused(response, head_only),
                    }
                }
            }
        }
        let Some((head, _)) = &state.body else {
            return Parsed::Nothing;
        };
        if self.inbuf.len() < head.content_length {
            return Parsed::Nothing;
        }
        let body: Vec<u8> = self.inbuf.drain(..head.content_length).collect();
        let Some((head, _)) = state.body.take() else {
            return Parsed::Nothing;
        };
        state.awaiting = Some(Pending {
            keep_alive: head.keep_alive,
            head_only: head.method == http::Method::Head,
        });
        Parsed::Request(Request { head, body })
    }

    /// Queues the answer to the request being served. With `keep_alive` false the
    /// connection moves to `Closing` and reads no further requests.
    pub fn respond(
        &mut self,
        response: &Response,
        keep_alive_allowed: bool,
        date: &str,
        now: Instant,
    ) {
        let pending = match &mut self.phase {
            Phase::Http(state) => {
                state.started = None;
                state.awaiting.take()
            }
            Phase::Ws(_) | Phase::Closing { .. } => return,
        };
        let (keep_alive, head_only) = match pending {
            Some(p) => (p.keep_alive && keep_alive_allowed, p.head_only),
            None => (false, false),
        };
        self.queue_response(response, head_only, keep_alive, date, now);
        if !keep_alive {
            self.start_closing();
        }
    }

    /// Answers a request that will not be served (bad head, refused route, timeout):
    /// the rest of the input is unframed, so the connection closes after it.
    pub fn reject(&mut self, response: &Response, head_only: bool, date: &str, now: Instant) {
        self.queue_response(response, head_only, false, date, now);
        self.start_closing();
    }

    fn queue_response(
        &mut self,
        response: &Response,
        head_only: bool,
        keep_alive: bool,
        date: &str,
        now: Instant,
    ) {
        if self.outbound_len() == 0 {
            // Starting a fresh write: the write timeout counts from now.
            self.last_progress = now;
        }
        http::write_response(&mut self.out, response, head_only, keep_alive, date);
    }

    /// Completes the upgrade of the request being served: `101`, then WebSocket framing
    /// on the same buffers (bytes the client pipelined after the request are frames).
    /// False when no request was being served, and nothing changed.
    pub fn upgrade(
        &mut self,
        accept: &str,
        expires_at: Option<Instant>,
        limits: &Limits,
        now: Instant,
    ) -> bool {
        if !matches!(&self.phase, Phase::Http(s) if s.awaiting.is_some()) {
            return false;
        }
        self.out.extend_from_slice(&ws::switching_protocols(accept));
        self.last_progress = now;
        self.ws_opened = Some(now);
        self.phase = Phase::Ws(Box::new(WsState {
            socket: ws::Socket::new(limits.max_message_size),
            last_heard: now,
            next_ping: now + limits.ping_period,
            expires_at,
            close_started: None,
        }));
        true
    }

    /// Once, when an upgraded connection is no longer an open WebSocket (or is about to
    /// be dropped): the moment to tell the handler. Gives when it was upgraded.
    pub fn take_ws_ended(&mut self) -> Option<Instant> {
        if matches!(&self.phase, Phase::Ws(ws) if ws.socket.is_open()) {
            return None;
        }
        self.ws_opened.take()
    }

    /// The next WebSocket event from buffered input.
    pub fn ws_event(&mut self) -> ws::Event {
        let Phase::Ws(state) = &mut self.phase else {
            return ws::Event::NeedInput;
        };
        let mut wire = Wire::new(&self.inbuf, &mut self.out);
        let event = state.socket.next_event(&mut wire);
        let consumed = wire.consumed();
        self.inbuf.drain(..consumed);
        if matches!(event, ws::Event::Finished | ws::Event::Failed(_)) {
            self.start_closing();
        }
        event
    }

    /// Queues a message, unless it would take a queue that the peer has not drained
    /// past `max_outbound`: then the peer is a slow consumer and the socket is closed
    /// with 1013 instead. A message into an empty queue is always taken, so one large
    /// message never counts as slowness; the queue holds at most the cap or one message.
    pub fn ws_send(
        &mut self,
        message: tungstenite::Message,
        limits: &Limits,
        now: Instant,
    ) -> Sent {
        let backlog = self.outbound_len();
        let Phase::Ws(state) = &mut self.phase else {
            return Sent::NotOpen;
        };
        if !state.socket.is_open() {
            return Sent::NotOpen;
        }
        let mut wire = Wire::new(&[], &mut self.out);
        if backlog > 0 && backlog + message.len() > limits.max_outbound {
            // The close frame queues behind what the peer has not read; if it never
            // reads, the write timeout ends the connection.
            state
                .socket
                .close(&mut wire, ws::code::TRY_AGAIN, "slow consumer");
            self.start_closing();
            return Sent::SlowConsumer;
        }
        if backlog == 0 {
            self.last_progress = now;
        }
        if state.socket.send(&mut wire, message) {
            Sent::Queued
        } else {
            Sent::NotOpen
        }
    }

    /// Starts the close handshake; the peer has `CLOSE_HANDSHAKE_TIMEOUT` to answer.
    pub fn ws_close(&mut self, code: u16, reason: &str, now: Instant) {
        let Phase::Ws(state) = &mut self.phase else {
            return;
        };
        if !state.socket.is_open() {
            return;
        }
        let mut wire = Wire::new(&[], &mut self.out);
        state.socket.close(&mut wire, code, reason);
        state.close_started = Some(now);
    }

    pub fn start_closing(&mut self) {
        if !matches!(self.phase, Phase::Closing { .. }) {
            self.phase = Phase::Closing { linger_until: None };
            self.inbuf = Vec::new();
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
            self.out_pos = 0;
            if self.out.capacity() > KEEP_CAPACITY {
                self.out = Vec::new();
            } else {
                self.out.clear();
            }
        } else if self.out_pos > self.out.len() / 2 {
            // A peer that keeps up only partly: reclaim the written half so the queue
            // is bounded by what is unsent, not by everything ever sent.
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
        if self.inbuf.is_empty() && self.inbuf.capacity() > KEEP_CAPACITY {
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
            // left in the buffer can never become a request.
            Phase::Http(state) if self.peer_closed && state.awaiting.is_none() && flushed => {
                Next::Close
            }
            // A WebSocket peer that vanished without a close frame.
            Phase::Ws(_) if self.peer_closed && self.inbuf.is_empty() => Next::Close,
            Phase::Http(_) | Phase::Ws(_) => Next::Keep,
        };
        if next == Next::Keep && self.can_read(limits) {
            Next::Yield
        } else {
            next
        }
    }

    /// The earliest moment something must happen to this connection if the peer stays
    /// silent.
    pub fn deadline(&self, limits: &Limits) -> Option<Instant> {
        let write = (self.outbound_len() > 0).then(|| self.last_progress + limits.write_timeout);
        let read = match &self.phase {
            Phase::Closing { linger_until } => *linger_until,
            Phase::Ws(ws) => [
                Some(ws.next_ping),
                Some(ws.last_heard + limits.pong_wait),
                ws.expires_at,
                ws.close_started.map(|t| t + ws::CLOSE_HANDSHAKE_TIMEOUT),
            ]
            .into_iter()
            .flatten()
            .min(),
            Phase::Http(state) if state.awaiting.is_some() => None,
            Phase::Http(state) => Some(match (&state.body, state.started) {
                (Some(_), _) => self.last_progress + limits.body_idle_timeout,
                (None, Some(started)) => started + limits.head_timeout,
                // A connection that has never sent a byte is held to the head timeout;
                // after a response, the keep-alive idle timeout applies.
                (None, None) if self.last_progress == self.info.accepted_at => {
                    self.info.accepted_at + limits.head_timeout
                }
                (None, None) => self.last_progress + limits.idle_timeout,
            }),
        };
        match (write, read) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Acts on whatever deadline has passed at `now`.
    pub fn expire(
        &mut self,
        now: Instant,
        limits: &Limits,
        error_408: impl FnOnce() -> Response,
        date: &str,
    ) -> Expiry {
        match self.deadline(limits) {
            None => return Expiry::NotYet,
            Some(deadline) if deadline > now => return Expiry::NotYet,
            Some(_) => {}
        }
        if self.outbound_len() > 0 && self.last_progress + limits.write_timeout <= now {
            return Expiry::Close;
        }
        let Phase::Ws(ws) = &mut self.phase else {
            if matches!(&self.phase, Phase::Http(s) if s.started.is_some()) {
                // Mid-request: tell a slow (not malicious) client why.
                self.reject(&error_408(), false, date, now);
                return Expiry::Flush;
            }
            return Expiry::Close;
        };
        if ws
            .close_started
            .is_some_and(|t| t + ws::CLOSE_HANDSHAKE_TIMEOUT <= now)
            || ws.last_heard + limits.pong_wait <= now
        {
            return Expiry::Close;
        }
        if ws.expires_at.is_some_and(|t| t <= now) {
            ws.expires_at = None;
            self.ws_close(ws::code::POLICY, "token expired", now);
            return Expiry::Flush;
        }
        if ws.next_ping <= now {
            ws.next_ping = now + limits.ping_period;
            if ws.socket.is_open() {
                let mut wire = Wire::new(&[], &mut self.out);
                ws.socket
                    .send(&mut wire, tungstenite::Message::Ping(Default::default()));
            }
            return Expiry::Flush;
        }
        Expiry::NotYet
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    const LIMITS: Limits = Limits {
        head_timeout: Duration::from_secs(10),
        body_idle_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(10),
        write_timeout: Duration::from_secs(10),
        max_outbound: 1 << 20,
        ping_period: Duration::from_secs(54),
        pong_wait: Duration::from_secs(60),
        max_message_size: 1 << 20,
    };

    fn pair() -> (Conn, std::net::TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let client =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, peer) = listener.accept().expect("accept");
        server.set_nonblocking(true).expect("nonblocking");
        let mut slab = super::super::slab::Slab::with_capacity(1);
        let id = slab.insert_with(|id| id).expect("slot");
        let info = ConnInfo {
            id,
            peer,
            listener: ListenerKind::Public,
            accepted_at: Instant::now(),
        };
        (Conn::new(TcpStream::from_std(server), info), client)
    }

    #[test]
    fn pipelined_requests_wait_for_the_answer_in_flight() {
        let (mut conn, mut client) = pair();
        client
            .write_all(b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n")
            .expect("write");
        let now = Instant::now();
        conn.mark_ready(true, true, false);
        let mut scratch = [0u8; 1024];
        // The peer's bytes may take a moment to show up on loopback.
        for _ in 0..100 {
            conn.readable = true;
            conn.fill(&mut scratch, now, &LIMITS).expect("read");
            if conn.inbuf.len() >= 38 {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let Parsed::Request(first) = conn.parse(now, |_| Ok(0)) else {
            panic!("first request expected");
        };
        assert_eq!(first.head.path, "/a");
        assert!(matches!(conn.parse(now, |_| Ok(0)), Parsed::Nothing));
        conn.respond(&Response::empty(204), true, "D", now);
        let Parsed::Request(second) = conn.parse(now, |_| Ok(0)) else {
            panic!("second request expected");
        };
        assert_eq!(second.head.path, "/b");
    }

    #[test]
    fn oversize_body_is_refused_before_it_is_read() {
        let (mut conn, mut client) = pair();
        client
            .write_all(b"POST /x HTTP/1.1\r\nContent-Length: 10\r\n\r\n")
            .expect("write");
        let now = Instant::now();
        let mut scratch = [0u8; 1024];
        for _ in 0..100 {
            conn.readable = true;
            conn.fill(&mut scratch, now, &LIMITS).expect("read");
            if !conn.inbuf.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(matches!(
            conn.parse(now, |_| Ok(5)),
            Parsed::TooLarge(false)
        ));
    }
}
