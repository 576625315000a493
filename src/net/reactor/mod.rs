//! The event loop: one `mio::Poll`, a fixed slab of connections, one timer wheel, and the
//! drain state machine. It knows sockets and HTTP framing; what a request means is the
//! [`Handler`]'s business.
//!
//! Tokens: the two listeners, the lane waker and the signal pipe are reserved; every other
//! token is a [`ConnId`] (slot + generation), so an event or completion for a connection
//! that is gone cannot reach the one that reused its slot.
//!
//! Here: the `Reactor`, its tokens, the run loop and the poll timeout. The rest of the
//! loop is one file per job: `accept.rs` (accept, and the full-slab 503), `serve.rs`
//! (pump a connection, carry out the handler's effects), `timeouts.rs` (the timer wheel
//! for connection deadlines), `drain.rs` (signals and the shutdown sequence),
//! `contain.rs` (a handler that panics costs one connection, not the loop).

mod accept;
mod contain;
mod drain;
mod serve;
#[cfg(test)]
mod testing;
mod timeouts;

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};

pub use self::drain::Exit;
use self::drain::Lifecycle;
use super::conn::{Conn, Limits};
use super::handler::{Ctx, Effect, Handler};
use super::lanes::CompletionQueue;
use super::per_ip::PerIp;
use super::reject::RejectPen;
use super::signals::SignalSource;
use super::slab::{ConnId, Slab};
use super::timers::TimerWheel;
use crate::config::Cidr;
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

/// Completions whose list a turn keeps for the next (see `deliver_completions`).
const COMPLETIONS_KEPT: usize = 256;

/// One read syscall's worth; shared by every connection, so idle ones hold no buffer.
const SCRATCH_BYTES: usize = 64 * 1024;

/// The listening sockets: the public one, and the internal one for probes and metrics
/// (`METRICS_PORT`) when configured.
pub struct Listeners {
    pub public: TcpListener,
    pub internal: Option<TcpListener>,
}

/// Slots beyond `MAX_CONNECTIONS` that only the internal listener may use, so kubelet
/// probes and scrapes still get in while the public side is full: a few probes and a
/// scraper or two at a time, with room for their retries.
const INTERNAL_RESERVE: usize = 16;

#[derive(Clone, Debug)]
pub struct Settings {
    /// Public connections; the internal listener has `INTERNAL_RESERVE` slots more.
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// Peers not held to `max_connections_per_ip`: `TRUSTED_PROXIES`, whose connections
    /// are many clients'.
    pub per_ip_exempt: Vec<Cidr>,
    pub limits: Limits,
    /// SIGTERM → listeners closed: the time the endpoints controller needs to stop
    /// sending traffic here.
    pub drain_delay: Duration,
    /// SIGTERM → forced exit: the whole drain, delay included, so that the default
    /// (25 s) ends inside Kubernetes' default 30 s grace period.
    pub shutdown_timeout: Duration,
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
    /// Lent to every `Ctx` and given back by `apply`, so that a call into the handler
    /// (one per WebSocket message) allocates no list for what it asks.
    effects: Vec<Effect>,
    handler: H,
    scratch: Vec<u8>,
    settings: Settings,
    lifecycle: Lifecycle,
    clock: Clock,
    /// Open connections per listener (public, internal).
    open: [usize; 2],
    per_ip: PerIp,
    /// Connections refused, per reason (logged at each power of two).
    refused: [u64; 2],
    /// No tick before this: the last one panicked.
    tick_held_until: Option<Instant>,
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
        let reserve = listeners.internal.as_ref().map_or(0, |_| INTERNAL_RESERVE);
        let per_ip = PerIp::new(
            settings.max_connections_per_ip,
            settings.per_ip_exempt.clone(),
        );
        let mut listeners = [Some(listeners.public), listeners.internal];
        for (listener, token) in listeners
            .iter_mut()
            .zip([PUBLIC_LISTENER, INTERNAL_LISTENER])
        {
            if let Some(listener) = listener {
                // Linux hands TCP_NODELAY down to every accepted socket: set once here, it
                // saves a `setsockopt` per connection (a connect storm is thousands).
                socket2::SockRef::from(&*listener).set_tcp_nodelay(true)?;
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
            slab: Slab::with_capacity(settings.max_connections + reserve),
            wheel: TimerWheel::new(clock.now, TIMER_TICK, TIMER_SLOTS),
            expired: Vec::new(),
            pending: VecDeque::new(),
            completions,
            done: Vec::new(),
            effects: Vec::new(),
            handler,
            scratch: vec![0; SCRATCH_BYTES],
            settings,
            lifecycle: Lifecycle::Running,
            clock,
            open: [0; 2],
            per_ip,
            refused: [0; 2],
            tick_held_until: None,
            metrics,
        })
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
            if let Some(exit) = self.turn(&mut events)? {
                return Ok(exit);
            }
        }
    }

    /// One loop turn: wait for events (or the next deadline), serve them, then the
    /// queued connections, timers, the handler's tick and the drain.
    fn turn(&mut self, events: &mut Events) -> io::Result<Option<Exit>> {
        let timeout = self.poll_timeout();
        if let Err(error) = self.poll.poll(events, timeout) {
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
                        return Ok(Some(exit));
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
        self.retry_accept();
        self.expire_timers();
        self.tick_handler();
        self.reject_pen.expire(self.clock.now, self.poll.registry());
        if let Some(exit) = self.advance_lifecycle() {
            return Ok(Some(exit));
        }
        self.metrics
            .loop_iteration
            .observe(self.clock.now.elapsed());
        Ok(None)
    }

    fn poll_timeout(&self) -> Option<Duration> {
        if !self.pending.is_empty() {
            return Some(Duration::ZERO);
        }
        [
            self.wheel.next_deadline(),
            self.next_tick(),
            self.reject_pen.next_deadline(),
            self.accept_retry_at,
            self.lifecycle.next_step(),
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|at| at.saturating_duration_since(Instant::now()))
    }

    fn ctx(&mut self) -> Ctx {
        Ctx {
            now: self.clock.now,
            unix: self.clock.unix,
            draining: self.lifecycle.is_draining(),
            slots_used: self.slab.len(),
            slots_total: self.slab.capacity(),
            effects: std::mem::take(&mut self.effects),
        }
    }

    fn tick_handler(&mut self) {
        let now = self.clock.now;
        if self.next_tick().is_some_and(|at| at <= now) {
            let mut ctx = self.ctx();
            let ticked = self.contained("tick", |reactor| reactor.handler.tick(&mut ctx));
            self.tick_held_until = ticked.is_none().then_some(now + contain::TICK_BACKOFF);
            self.apply(ctx, None);
        }
    }

    fn deliver_completions(&mut self) {
        self.completions.drain_into(&mut self.done);
        if self.done.is_empty() {
            return;
        }
        let mut ctx = self.ctx();
        let mut delivered = std::mem::take(&mut self.done);
        for done in delivered.drain(..) {
            // One completion's panic loses that completion only.
            self.contained("completion", |reactor| {
                reactor.handler.completion(done, &mut ctx)
            });
        }
        // The emptied list goes back: a busy loop's turn would otherwise grow a new one
        // (a realloc and a consolidation of the allocator's free lists, 2 % of the loop).
        // A burst's worth (up to the queue's capacity) is not kept for an idle server.
        delivered.shrink_to(COMPLETIONS_KEPT);
        self.done = delivered;
        self.apply(ctx, None);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use mio::Poll;

    use super::waker;
    use crate::background::Waking;
    use crate::net::lanes::{completion_channel, Lane};
    use crate::net::slab::{ConnId, Slab};

    /// The loop delivers a completion by looking its `ConnId` up in the slab, as `apply`
    /// does: a job that outlives its connection must not reach the slot's next tenant.
    #[test]
    fn late_completion_for_a_reused_slot_is_dropped() {
        let poll = Poll::new().expect("poll");
        let (completions, queue) = completion_channel(waker(&poll).expect("waker"), 8);
        let mut lane: Lane<ConnId> =
            Lane::new("test", 1, 4, Waking::AfterTheLoop, completions).expect("lane");
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
