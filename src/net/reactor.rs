//! The event loop: one `mio::Poll`, a fixed slab of connections, one timer wheel, and the
//! drain state machine. It knows sockets and HTTP framing; what a request means is the
//! [`Handler`]'s business.
//!
//! Tokens: the two listeners, the lane waker and the signal pipe are reserved; every other
//! token is a [`ConnId`] (slot + generation), so an event or completion for a connection
//! that is gone cannot reach the one that reused its slot.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

use tungstenite::Message;

use super::conn::{Conn, ConnInfo, Expiry, Limits, ListenerKind, Next, Parsed, Sent};
use super::http::{self, Request, RequestHead, Response};
use super::lanes::CompletionQueue;
use super::reject::RejectPen;
use super::signals::{Signal, SignalSource};
use super::slab::{ConnId, Slab};
use super::timers::TimerWheel;
use super::ws::{self, Event, Incoming};
use crate::metrics::Metrics;
use crate::time;

const PUBLIC_LISTENER: Token = Token(0);
const INTERNAL_LISTENER: Token = Token(1);
const WAKER: Token = Token(2);
const SIGNALS: Token = Token(3);
/// Tokens 4.. belong to the reject pen; slab tokens start after it.
const REJECT_PEN_FIRST: usize = 4;
const REJECT_PEN_SLOTS: usize = 64;
const RESERVED_TOKENS: usize = REJECT_PEN_FIRST + REJECT_PEN_SLOTS;

/// Wheel resolution: timeouts here are seconds long; 10 ms keeps them sharp without
/// waking the loop more than needed.
const TIMER_TICK: Duration = Duration::from_millis(10);
const TIMER_SLOTS: usize = 1024;

/// After `EMFILE`/`ENFILE` the pending connection stays in the backlog and, with
/// edge-triggered readiness, no new event would come for it: retry on a timer instead
/// of spinning.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// One read syscall's worth; shared by every connection, so idle ones hold no buffer.
const SCRATCH_BYTES: usize = 64 * 1024;

/// The application side of the loop.
pub trait Handler {
    /// What worker lanes send back to the loop.
    type Completion: Send + 'static;

    /// Asked once a request head is complete, before its body is read: the largest body
    /// the route takes, or an answer that refuses the request outright.
    fn body_limit(
        &mut self,
        head: &RequestHead,
        conn: &ConnInfo,
        ctx: &Ctx,
    ) -> Result<usize, Response>;

    /// Serves a complete request: now, later (via [`Ctx::reply`]), or by upgrading it.
    fn request(&mut self, request: Request, conn: &ConnInfo, ctx: &mut Ctx) -> Reply;

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
enum Effect {
    Reply(ConnId, Response),
    Send(ConnId, Message),
    Close(ConnId, u16, String),
    WatchFlush(ConnId),
}

/// What the handler may see and do during a call.
pub struct Ctx {
    pub now: Instant,
    pub unix: u64,
    pub draining: bool,
    pub slots_used: usize,
    pub slots_total: usize,
    effects: Vec<Effect>,
}

impl Ctx {
    /// Answers a request that was deferred with [`Reply::Later`].
    pub fn reply(&mut self, conn: ConnId, response: Response) {
        self.effects.push(Effect::Reply(conn, response));
    }

    /// Queues a text frame on a WebSocket (dropped if the socket is gone or closing).
    pub fn send_text(&mut self, conn: ConnId, text: String) {
        self.effects.push(Effect::Send(conn, Message::text(text)));
    }

    pub fn send_binary(&mut self, conn: ConnId, data: Vec<u8>) {
        self.effects.push(Effect::Send(conn, Message::binary(data)));
    }

    /// Starts a WebSocket's close handshake after what is already queued on it.
    pub fn close(&mut self, conn: ConnId, code: u16, reason: impl Into<String>) {
        self.effects.push(Effect::Close(conn, code, reason.into()));
    }

    /// Asks for one [`Handler::ws_flushed`] call once the socket's queue is written.
    pub fn watch_flush(&mut self, conn: ConnId) {
        self.effects.push(Effect::WatchFlush(conn));
    }
}

/// The listening sockets: the public one, and the internal one for probes and metrics
/// (`METRICS_PORT`) when configured.
pub struct Listeners {
    pub public: TcpListener,
    pub internal: Option<TcpListener>,
}

#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub max_connections: usize,
    pub limits: Limits,
    /// SIGTERM → listeners closed: the time the endpoints controller needs to stop
    /// sending traffic here.
    pub drain_delay: Duration,
    /// SIGTERM → forced exit: the whole drain, delay included, so that the default
    /// (25 s) ends inside Kubernetes' default 30 s grace period.
    pub shutdown_timeout: Duration,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Exit {
    /// Every connection finished within the drain.
    Drained,
    /// The drain deadline passed with this many connections still open.
    DeadlineReached { open: usize },
    /// A second SIGTERM/SIGINT: exit at once.
    Interrupted(Signal),
}

enum Lifecycle {
    Running,
    Draining {
        since: Instant,
        close_listeners_at: Instant,
        deadline: Instant,
        listeners_closed: bool,
    },
}

struct Clock {
    now: Instant,
    unix: u64,
    http_date: String,
}

impl Clock {
    fn new() -> Clock {
        let unix = time::unix_now();
        Clock {
            now: Instant::now(),
            unix,
            http_date: time::http_date(unix),
        }
    }

    fn tick(&mut self) {
        self.now = Instant::now();
        let unix = time::unix_now();
        if unix != self.unix {
            self.unix = unix;
            self.http_date = time::http_date(unix);
        }
    }
}

pub struct Reactor<H: Handler> {
    poll: Poll,
    listeners: [Option<TcpListener>; 2],
    accept_retry_at: Option<Instant>,
    reject_pen: RejectPen,
    signals: SignalSource,
    slab: Slab<Box<Conn>>,
    wheel: TimerWheel<ConnId>,
    expired: Vec<(u64, ConnId)>,
    /// Connections to pump on this loop turn without waiting for an event: their read
    /// budget ran out with input left (edge-triggered readiness will not be reported
    /// again), or the handler queued output for them.
    pending: VecDeque<ConnId>,
    completions: CompletionQueue<H::Completion>,
    done: Vec<H::Completion>,
    handler: H,
    scratch: Vec<u8>,
    settings: Settings,
    lifecycle: Lifecycle,
    clock: Clock,
    /// Connections refused because the slab was full (logged at each power of two).
    rejected_full: u64,
    metrics: Arc<Metrics>,
}

/// Registers the waker that lanes use to wake the loop; create it before the lanes.
pub fn waker(poll: &Poll) -> io::Result<Arc<Waker>> {
    Ok(Arc::new(Waker::new(poll.registry(), WAKER)?))
}

impl<H: Handler> Reactor<H> {
    /// `signals` must have been installed before the listeners were bound: a SIGTERM
    /// that finds no handler would kill the process outright.
    pub fn new(
        poll: Poll,
        mut signals: SignalSource,
        settings: Settings,
        listeners: Listeners,
        completions: CompletionQueue<H::Completion>,
        handler: H,
        metrics: Arc<Metrics>,
    ) -> io::Result<Reactor<H>> {
        let mut listeners = [Some(listeners.public), listeners.internal];
        for (listener, token) in listeners
            .iter_mut()
            .zip([PUBLIC_LISTENER, INTERNAL_LISTENER])
        {
            if let Some(listener) = listener {
                poll.registry()
                    .register(listener, token, Interest::READABLE)?;
            }
        }
        poll.registry()
            .register(signals.source(), SIGNALS, Interest::READABLE)?;
        let clock = Clock::new();
        Ok(Reactor {
            poll,
            listeners,
            accept_retry_at: None,
            reject_pen: RejectPen::new(REJECT_PEN_FIRST, REJECT_PEN_SLOTS),
            signals,
            slab: Slab::with_capacity(settings.max_connections),
            wheel: TimerWheel::new(clock.now, TIMER_TICK, TIMER_SLOTS),
            expired: Vec::new(),
            pending: VecDeque::new(),
            completions,
            done: Vec::new(),
            handler,
            scratch: vec![0; SCRATCH_BYTES],
            settings,
            lifecycle: Lifecycle::Running,
            clock,
            rejected_full: 0,
            metrics,
        })
    }

    pub fn drain_deadline(&self) -> Option<Instant> {
        match self.lifecycle {
            Lifecycle::Running => None,
            Lifecycle::Draining { deadline, .. } => Some(deadline),
        }
    }

    /// After `run`: lets the handler's background work end by `deadline`. Completions keep
    /// being drained (and dropped: their connections are gone) so that no worker stays
    /// blocked on a full completion channel.
    pub fn finish(&mut self, deadline: Instant) -> bool {
        const STEP: Duration = Duration::from_millis(20);
        loop {
            let now = Instant::now();
            if self.handler.finish((now + STEP).min(deadline)) {
                return true;
            }
            self.completions.drain_into(&mut self.done);
            self.done.clear();
            if now >= deadline {
                return false;
            }
        }
    }

    pub fn run(&mut self) -> io::Result<Exit> {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.poll_timeout();
            if let Err(error) = self.poll.poll(&mut events, timeout) {
                if error.kind() != io::ErrorKind::Interrupted {
                    return Err(error);
                }
            }
            self.clock.tick();
            for event in events.iter() {
                match event.token() {
                    PUBLIC_LISTENER => self.accept(0),
                    INTERNAL_LISTENER => self.accept(1),
                    WAKER => self.deliver_completions(),
                    SIGNALS => {
                        if let Some(exit) = self.on_signals() {
                            return Ok(exit);
                        }
                    }
                    token if self.reject_pen.owns(token) => {
                        self.reject_pen.readable(token, self.poll.registry())
                    }
                    token => {
                        let Some(id) = ConnId::from_token(token, RESERVED_TOKENS) else {
                            continue;
                        };
                        // Errors and hang-ups surface as a failed read or write.
                        let fin = event.is_read_closed() || event.is_error();
                        let writable =
                            event.is_writable() || event.is_write_closed() || event.is_error();
                        if let Some(conn) = self.slab.get_mut(id) {
                            conn.mark_ready(event.is_readable(), writable, fin);
                            self.pump(id);
                        }
                    }
                }
            }
            // Pumping may queue more (effects on other connections); those wait for the
            // next turn so that one busy connection cannot starve the poll.
            for _ in 0..self.pending.len() {
                if let Some(id) = self.pending.pop_front() {
                    if let Some(conn) = self.slab.get_mut(id) {
                        conn.dequeue();
                        self.pump(id);
                    }
                }
            }
            if self.accept_retry_at.is_some_and(|at| at <= self.clock.now) {
                self.accept_retry_at = None;
                self.accept(0);
                self.accept(1);
            }
            self.expire_timers();
            self.tick_handler();
            self.reject_pen.expire(self.clock.now, self.poll.registry());
            if let Some(exit) = self.advance_lifecycle() {
                return Ok(exit);
            }
            self.metrics
                .loop_iteration
                .observe(self.clock.now.elapsed());
        }
    }

    fn poll_timeout(&self) -> Option<Duration> {
        if !self.pending.is_empty() {
            return Some(Duration::ZERO);
        }
        let lifecycle = match self.lifecycle {
            Lifecycle::Running => None,
            Lifecycle::Draining {
                close_listeners_at,
                deadline,
                listeners_closed,
                ..
            } => Some(if listeners_closed {
                deadline
            } else {
                close_listeners_at
            }),
        };
        [
            self.wheel.next_deadline(),
            self.handler.wake_at(),
            self.reject_pen.next_deadline(),
            self.accept_retry_at,
            lifecycle,
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|at| at.saturating_duration_since(Instant::now()))
    }

    fn ctx(&self) -> Ctx {
        Ctx {
            now: self.clock.now,
            unix: self.clock.unix,
            draining: matches!(self.lifecycle, Lifecycle::Draining { .. }),
            slots_used: self.slab.len(),
            slots_total: self.slab.capacity(),
            effects: Vec::new(),
        }
    }

    fn listeners_closed(&self) -> bool {
        matches!(
            self.lifecycle,
            Lifecycle::Draining {
                listeners_closed: true,
                ..
            }
        )
    }

    fn accept(&mut self, index: usize) {
        let kind = if index == 0 {
            ListenerKind::Public
        } else {
            ListenerKind::Internal
        };
        loop {
            let Some(listener) = &self.listeners[index] else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => {
                    if self.slab.is_full() {
                        self.reject_full(stream);
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let accepted_at = self.clock.now;
                    let inserted = self.slab.insert_with(|id| {
                        Box::new(Conn::new(
                            stream,
                            ConnInfo {
                                id,
                                peer,
                                listener: kind,
                                accepted_at,
                            },
                        ))
                    });
                    let Some(id) = inserted else { continue };
                    let registered = match self.slab.get_mut(id) {
                        Some(conn) => self.poll.registry().register(
                            conn.socket_mut(),
                            id.to_token(RESERVED_TOKENS),
                            Interest::READABLE | Interest::WRITABLE,
                        ),
                        None => continue,
                    };
                    if let Err(error) = registered {
                        log::warn!("register {peer}: {error}");
                        self.slab.remove(id);
                        continue;
                    }
                    self.arm_timer(id);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_resource_exhaustion(&e) => {
                    log::warn!("accept paused for {ACCEPT_RETRY:?}: {e}");
                    self.accept_retry_at = Some(self.clock.now + ACCEPT_RETRY);
                    return;
                }
                // Per-connection failures (ECONNABORTED, …) do not affect the listener.
                Err(e) => log::debug!("accept: {e}"),
            }
        }
    }

    /// The slab is full: answer 503 straight away and let the pen close the socket.
    fn reject_full(&mut self, stream: TcpStream) {
        self.rejected_full += 1;
        if self.rejected_full.is_power_of_two() {
            log::warn!(
                "connection slab full ({} slots): refused {} connection(s) so far",
                self.slab.capacity(),
                self.rejected_full
            );
        }
        let response = self
            .handler
            .error_response(503, "Server at capacity, retry shortly")
            .with_header("Retry-After", "1");
        let mut out = Vec::with_capacity(320);
        http::write_response(&mut out, &response, false, false, &self.clock.http_date);
        self.reject_pen
            .refuse(stream, &out, self.poll.registry(), self.clock.now);
    }

    /// Reads, parses and serves one connection, applies what the handler asked for,
    /// then writes and decides the connection's fate.
    fn pump(&mut self, id: ConnId) {
        let mut ctx = self.ctx();
        let served = self.serve_input(id, &mut ctx);
        self.apply(ctx, Some(id));
        let now = self.clock.now;
        let limits = self.settings.limits;
        let Some(conn) = self.slab.get_mut(id) else {
            return;
        };
        let next = served
            .and_then(|()| conn.flush(now))
            .map(|()| conn.settle(now, &limits));
        match next {
            Ok(Next::Keep) => self.arm_timer(id),
            Ok(Next::Yield) => {
                self.queue(id);
                self.arm_timer(id);
            }
            Ok(Next::Close) => self.close(id),
            Err(error) => {
                log::debug!("connection {id:?}: {error}");
                self.close(id);
            }
        }
        self.notice_ws_end(id);
        self.notice_flushed(id);
    }

    /// Tells the handler a watched socket caught up; what it sends in reply is written
    /// when the connection is pumped again on this turn.
    fn notice_flushed(&mut self, id: ConnId) {
        let flushed = self
            .slab
            .get_mut(id)
            .is_some_and(|conn| conn.take_flushed());
        if flushed {
            let mut ctx = self.ctx();
            self.handler.ws_flushed(id, &mut ctx);
            self.apply(ctx, None);
        }
    }

    fn tick_handler(&mut self) {
        if self
            .handler
            .wake_at()
            .is_some_and(|at| at <= self.clock.now)
        {
            let mut ctx = self.ctx();
            self.handler.tick(&mut ctx);
            self.apply(ctx, None);
        }
    }

    /// The input half of `pump`: everything that turns bytes into handler calls.
    fn serve_input(&mut self, id: ConnId, ctx: &mut Ctx) -> io::Result<()> {
        let keep_alive_allowed = !self.listeners_closed();
        let Reactor {
            slab,
            handler,
            scratch,
            settings,
            clock,
            metrics,
            ..
        } = self;
        let Some(conn) = slab.get_mut(id) else {
            return Ok(());
        };
        let (now, date, limits) = (clock.now, clock.http_date.as_str(), &settings.limits);
        conn.flush(now)?;
        conn.fill(scratch, now, limits)?;
        loop {
            let info = conn.info();
            if conn.is_websocket() {
                match conn.ws_event() {
                    Event::Message(message) => {
                        metrics.messages_received.inc();
                        handler.ws_message(&info, message, ctx);
                        // Answers to this socket go out before its next frame is read: if
                        // that frame is bad, its close frame must follow them, not drop them.
                        for effect in std::mem::take(&mut ctx.effects) {
                            match effect {
                                Effect::Send(to, message) if to == id => {
                                    send(conn, message, limits, now, metrics)
                                }
                                other => ctx.effects.push(other),
                            }
                        }
                    }
                    Event::Control => {}
                    Event::NeedInput | Event::Finished | Event::Failed(_) => return Ok(()),
                }
                continue;
            }
            match conn.parse(now, |head| handler.body_limit(head, &info, ctx)) {
                Parsed::Nothing => return Ok(()),
                Parsed::Request(request) => match handler.request(request, &info, ctx) {
                    Reply::Now(response) => conn.respond(&response, keep_alive_allowed, date, now),
                    Reply::Later => return Ok(()),
                    Reply::Upgrade { accept, expires_at } => {
                        if conn.upgrade(&accept, expires_at, limits, now) {
                            metrics.websockets.inc();
                        }
                        handler.ws_opened(&info, ctx);
                    }
                },
                Parsed::Answer(response) => conn.respond(&response, keep_alive_allowed, date, now),
                Parsed::TooLarge(head_only) => {
                    let response = handler.error_response(413, "Request body too large");
                    conn.reject(&response, head_only, date, now);
                    return Ok(());
                }
                Parsed::Refused(response, head_only) => {
                    conn.reject(&response, head_only, date, now);
                    return Ok(());
                }
                Parsed::Invalid(error) => {
                    let response = handler.error_response(error.status(), error.message());
                    conn.reject(&response, false, date, now);
                    return Ok(());
                }
            }
            if conn.outbound_len() > limits.max_outbound {
                return Ok(());
            }
        }
    }

    /// Schedules a pump on this loop turn; a connection is queued at most once.
    fn queue(&mut self, id: ConnId) {
        if let Some(conn) = self.slab.get_mut(id) {
            if conn.enqueue() {
                self.pending.push_back(id);
            }
        }
    }

    /// Carries out the handler's requests. Connections other than `current` (which its
    /// caller flushes) are queued to be pumped on this loop turn.
    fn apply(&mut self, ctx: Ctx, current: Option<ConnId>) {
        let keep_alive_allowed = !self.listeners_closed();
        let (now, limits) = (self.clock.now, self.settings.limits);
        for effect in ctx.effects {
            let id = match &effect {
                Effect::Reply(id, _)
                | Effect::Send(id, _)
                | Effect::Close(id, _, _)
                | Effect::WatchFlush(id) => *id,
            };
            // An effect for a connection that is gone (or whose slot was reused) is dropped.
            let Some(conn) = self.slab.get_mut(id) else {
                continue;
            };
            match effect {
                Effect::Reply(_, response) => {
                    conn.respond(&response, keep_alive_allowed, &self.clock.http_date, now)
                }
                Effect::Send(_, message) => send(conn, message, &limits, now, &self.metrics),
                Effect::Close(_, code, reason) => conn.ws_close(code, &reason, now),
                Effect::WatchFlush(_) => conn.watch_flush(),
            }
            if Some(id) != current {
                self.queue(id);
            }
        }
    }

    /// A WebSocket that stopped being one (close handshake, failure, slow consumer) is
    /// reported to the handler once, as soon as it happens.
    fn notice_ws_end(&mut self, id: ConnId) {
        let opened = self.slab.get_mut(id).and_then(|conn| conn.take_ws_ended());
        if let Some(opened) = opened {
            self.metrics.websockets.dec();
            self.metrics
                .websocket_seconds
                .observe(self.clock.now.saturating_duration_since(opened));
            let mut ctx = self.ctx();
            self.handler.ws_closed(id, &mut ctx);
            self.apply(ctx, None);
        }
    }

    fn deliver_completions(&mut self) {
        self.completions.drain_into(&mut self.done);
        if self.done.is_empty() {
            return;
        }
        let mut ctx = self.ctx();
        for done in std::mem::take(&mut self.done) {
            self.handler.completion(done, &mut ctx);
        }
        self.apply(ctx, None);
    }

    fn arm_timer(&mut self, id: ConnId) {
        if let Some(conn) = self.slab.get_mut(id) {
            conn.arm_timer(&mut self.wheel, &self.settings.limits);
        }
    }

    fn expire_timers(&mut self) {
        let mut expired = std::mem::take(&mut self.expired);
        self.wheel.expire(self.clock.now, &mut expired);
        for (tick, id) in expired.drain(..) {
            let Some(conn) = self.slab.get_mut(id) else {
                continue;
            };
            if !conn.timer_fired(tick) {
                continue;
            }
            let handler = &self.handler;
            let error_408 = || handler.error_response(408, "Request timed out");
            match conn.expire(
                self.clock.now,
                &self.settings.limits,
                error_408,
                &self.clock.http_date,
            ) {
                Expiry::NotYet => self.arm_timer(id),
                Expiry::Flush => self.pump(id),
                Expiry::Close => {
                    log::debug!("connection {id:?}: timed out");
                    self.close(id);
                }
            }
        }
        self.expired = expired;
    }

    fn close(&mut self, id: ConnId) {
        if let Some(conn) = self.slab.get_mut(id) {
            conn.start_closing();
        }
        self.notice_ws_end(id);
        if let Some(mut conn) = self.slab.remove(id) {
            let _ = self.poll.registry().deregister(conn.socket_mut());
        }
    }

    fn on_signals(&mut self) -> Option<Exit> {
        for signal in self.signals.pending() {
            match (signal, &self.lifecycle) {
                (Signal::Hangup, _) => {
                    log::info!("SIGHUP ignored: configuration is read at start-up")
                }
                (Signal::Terminate(_), Lifecycle::Draining { .. }) => {
                    log::warn!("second {}: exiting now", signal.name());
                    return Some(Exit::Interrupted(signal));
                }
                (Signal::Terminate(_), Lifecycle::Running) => {
                    let now = self.clock.now;
                    let close_listeners_at = now + self.settings.drain_delay;
                    self.lifecycle = Lifecycle::Draining {
                        since: now,
                        close_listeners_at,
                        deadline: now + self.settings.shutdown_timeout,
                        listeners_closed: false,
                    };
                    log::info!(
                        "drain 1/3: {} received; readiness off, serving {} connection(s) for {:?}",
                        signal.name(),
                        self.slab.len(),
                        self.settings.drain_delay
                    );
                }
            }
        }
        None
    }

    fn advance_lifecycle(&mut self) -> Option<Exit> {
        let Lifecycle::Draining {
            since,
            close_listeners_at,
            deadline,
            listeners_closed,
        } = &mut self.lifecycle
        else {
            return None;
        };
        let (since, deadline) = (*since, *deadline);
        let now = self.clock.now;
        if !*listeners_closed && now >= *close_listeners_at {
            *listeners_closed = true;
            for listener in self.listeners.iter_mut() {
                if let Some(mut listener) = listener.take() {
                    let _ = self.poll.registry().deregister(&mut listener);
                }
            }
            let (mut idle, mut sockets) = (0, 0);
            for id in self.slab.ids() {
                let Some(conn) = self.slab.get_mut(id) else {
                    continue;
                };
                if conn.is_idle() {
                    idle += 1;
                    self.close(id);
                } else if conn.is_websocket() {
                    sockets += 1;
                    conn.ws_close(ws::code::GOING_AWAY, "Server shutting down", now);
                    self.queue(id);
                }
            }
            log::info!(
                "drain 2/3: listeners closed; closed {idle} idle connection(s), sent 1001 to {sockets} WebSocket(s); waiting up to {:?} for {}",
                deadline.saturating_duration_since(now),
                self.slab.len()
            );
        }
        if self.listeners_closed() && self.slab.is_empty() && self.handler.is_quiet() {
            log::info!("drain 3/3: complete after {:?}", now.duration_since(since));
            return Some(Exit::Drained);
        }
        if now >= deadline {
            let open = self.slab.len();
            log::warn!("drain 3/3: deadline reached with {open} connection(s) open; closing them");
            for id in self.slab.ids() {
                self.close(id);
            }
            return Some(Exit::DeadlineReached { open });
        }
        None
    }
}

/// Queues a message on a WebSocket, counting it, or the slow consumer it closes.
fn send(conn: &mut Conn, message: Message, limits: &Limits, now: Instant, metrics: &Metrics) {
    match conn.ws_send(message, limits, now) {
        Sent::Queued => metrics.messages_sent.inc(),
        Sent::SlowConsumer => {
            metrics.slow_consumer_closes.inc();
            log::info!(
                "connection {:?}: slow consumer, closed with 1013 (over {} queued bytes)",
                conn.info().id,
                limits.max_outbound
            );
        }
        Sent::NotOpen => {}
    }
}

fn is_resource_exhaustion(error: &io::Error) -> bool {
    // EMFILE, ENFILE, ENOBUFS, ENOMEM
    matches!(error.raw_os_error(), Some(24 | 23 | 105 | 12))
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use mio::Poll;

    use super::waker;
    use crate::net::lanes::{completion_channel, Lane};
    use crate::net::slab::{ConnId, Slab};

    /// The loop delivers a completion by looking its `ConnId` up in the slab, as `apply`
    /// does: a job that outlives its connection must not reach the slot's next tenant.
    #[test]
    fn late_completion_for_a_reused_slot_is_dropped() {
        let poll = Poll::new().expect("poll");
        let (completions, queue) = completion_channel(waker(&poll).expect("waker"), 8);
        let mut lane: Lane<ConnId> = Lane::new("test", 1, 4, completions).expect("lane");
        let mut slab = Slab::with_capacity(1);
        let old = slab.insert_with(|_| "old client").expect("slot");

        let (release, gate) = mpsc::channel::<()>();
        lane.try_submit(
            move |ctx| {
                let _ = gate.recv();
                let _ = ctx.complete(old);
            },
            old,
        )
        .expect("submitted");

        // The client leaves and a new one takes the same slot before the job finishes.
        slab.remove(old);
        let new = slab.insert_with(|_| "new client").expect("slot");
        assert_eq!(old.index(), new.index());
        drop(release);

        let mut done = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while done.is_empty() && Instant::now() < deadline {
            queue.drain_into(&mut done);
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(
            done,
            vec![old],
            "the completion names the connection it was for"
        );
        assert_eq!(slab.get(done[0]), None, "and finds nobody there");
        assert_eq!(slab.get(new), Some(&"new client"));
        assert!(lane.shutdown(Instant::now() + Duration::from_secs(5)));
    }
}
