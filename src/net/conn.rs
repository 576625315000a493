//! One client connection: its socket, buffers, readiness and protocol state.
//!
//! Lifecycle (see docs/LIFECYCLE.md):
//! ```text
//!  accept ──► Http ──(Connection: close | error | drain)──► Closing ──► closed
//!              │ ▲
//!              └─┘ keep-alive: next request
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
    /// Above this many unsent bytes the connection stops reading (backpressure).
    pub max_outbound: usize,
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

#[derive(Debug)]
enum Phase {
    Http(HttpState),
    /// Flushing the last response; after it, our FIN, then reading until the peer's.
    Closing {
        linger_until: Option<Instant>,
    },
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
            peer_closed: false,
            inbuf: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            last_progress: info.accepted_at,
            phase: Phase::Http(HttpState::default()),
            timer_tick: None,
            timer_at: None,
        }
    }

    pub fn socket_mut(&mut self) -> &mut TcpStream {
        &mut self.socket
    }

    /// Records what a poll event said; cleared again only by `WouldBlock`.
    pub fn mark_ready(&mut self, readable: bool, writable: bool) {
        self.readable |= readable;
        self.writable |= writable;
    }

    pub fn outbound_len(&self) -> usize {
        self.out.len() - self.out_pos
    }

    fn http(&mut self) -> Option<&mut HttpState> {
        match &mut self.phase {
            Phase::Http(state) => Some(state),
            Phase::Closing { .. } => None,
        }
    }

    /// An idle keep-alive connection: nothing received, nothing owed, nothing queued.
    pub fn is_idle(&self) -> bool {
        self.inbuf.is_empty()
            && self.outbound_len() == 0
            && matches!(&self.phase, Phase::Http(s) if s.started.is_none() && s.awaiting.is_none())
    }

    /// Reads until `WouldBlock`, EOF, the budget, or backpressure. Returns whether the
    /// socket may still have data (budget exhausted).
    pub fn fill(
        &mut self,
        scratch: &mut [u8],
        now: Instant,
        max_outbound: usize,
    ) -> io::Result<bool> {
        for _ in 0..READ_BUDGET {
            if !self.readable || self.peer_closed || !self.wants_input(max_outbound) {
                return Ok(false);
            }
            match self.socket.read(scratch) {
                Ok(0) => {
                    self.peer_closed = true;
                    self.readable = false;
                }
                Ok(n) => {
                    self.last_progress = now;
                    if let Phase::Http(state) = &mut self.phase {
                        state.started.get_or_insert(now);
                    }
                    if !matches!(self.phase, Phase::Closing { .. }) {
                        self.inbuf.extend_from_slice(&scratch[..n]);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.readable && !self.peer_closed && self.wants_input(max_outbound))
    }

    /// Backpressure: stop taking input while output is piling up or a handler answer is
    /// outstanding, and never buffer more than one body plus some read-ahead.
    fn wants_input(&self, max_outbound: usize) -> bool {
        match &self.phase {
            Phase::Closing { linger_until } => linger_until.is_some(),
            Phase::Http(state) => {
                let cap = match &state.body {
                    Some((_, limit)) => limit.saturating_add(READ_AHEAD),
                    None => READ_AHEAD.max(http::MAX_HEAD_BYTES + 1),
                };
                self.outbound_len() <= max_outbound && self.inbuf.len() < cap
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
        let pending = self.http().and_then(|state| {
            state.started = None;
            state.awaiting.take()
        });
        let (keep_alive, head_only) = match pending {
            Some(p) => (p.keep_alive && keep_alive_allowed, p.head_only),
            None => (false, false),
        };
        if self.outbound_len() == 0 {
            // Starting a fresh write: the write timeout counts from now.
            self.last_progress = now;
        }
        http::write_response(&mut self.out, response, head_only, keep_alive, date);
        if !keep_alive {
            self.start_closing();
        }
    }

    /// Answers a request that will not be served (bad head, refused route, timeout):
    /// the rest of the input is unframed, so the connection closes after it.
    pub fn reject(&mut self, response: &Response, head_only: bool, date: &str, now: Instant) {
        if self.outbound_len() == 0 {
            self.last_progress = now;
        }
        http::write_response(&mut self.out, response, head_only, false, date);
        self.start_closing();
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
        }
        if self.inbuf.is_empty() && self.inbuf.capacity() > KEEP_CAPACITY {
            self.inbuf = Vec::new();
        }
        Ok(())
    }

    /// After a flush: decide whether the connection lives on. A closing connection with
    /// everything written sends FIN and lingers for the peer's; a peer that closed its
    /// side with nothing left to answer is done.
    pub fn settle(&mut self, now: Instant) -> Next {
        let flushed = self.outbound_len() == 0;
        match &mut self.phase {
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
                if self.readable {
                    Next::Yield
                } else {
                    Next::Keep
                }
            }
            Phase::Http(state) => {
                if self.peer_closed && state.awaiting.is_none() && flushed {
                    // A half-closed peer that sent a complete request has been answered;
                    // anything left in the buffer can never become a request.
                    return Next::Close;
                }
                Next::Keep
            }
        }
    }

    /// The earliest moment something must happen to this connection if the peer stays
    /// silent.
    pub fn deadline(&self, limits: &Limits) -> Option<Instant> {
        let write = (self.outbound_len() > 0).then(|| self.last_progress + limits.write_timeout);
        let read = match &self.phase {
            Phase::Closing { linger_until } => *linger_until,
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

    /// Whether the current request has started to arrive (a timeout then earns a 408
    /// rather than a silent close).
    pub fn mid_request(&self) -> bool {
        matches!(&self.phase, Phase::Http(s) if s.started.is_some() && s.awaiting.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

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
        conn.mark_ready(true, true);
        let mut scratch = [0u8; 1024];
        // The peer's bytes may take a moment to show up on loopback.
        for _ in 0..100 {
            conn.readable = true;
            conn.fill(&mut scratch, now, 1 << 20).expect("read");
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
            conn.fill(&mut scratch, now, 1 << 20).expect("read");
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
