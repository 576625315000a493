//! The WebSocket client: connections in a slab on one mio (epoll, edge-triggered) loop,
//! frames by hand (`frames`), opening at a bounded parallelism and rate, and the loop that
//! keeps one message in flight per connection (closed loop) or sends each a think time
//! after the answer (paced, see [`Load`]). What a connection says once upgraded is a
//! [`Protocol`]; `conn` drives one connection.

use std::collections::BTreeMap;
use std::io;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

use super::conn::{Conn, Phase};
pub use super::conn::{Protocol, Step};
use super::frames::Target;
use super::meter::{CpuDelta, CpuMeter, CpuSample};
use super::pace::{Load, Pacer};
use super::progress::Progress;

/// Connects (TCP + upgrade) in flight while opening connections for a run.
pub const OPEN_PARALLEL: usize = 128;
/// Room for the 101 response headers (and any error response) before the first frame.
const MIN_READ_BUFFER: usize = 4096;

/// How to open connections: how many, how many at once, how fast, for how long at most.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub total: usize,
    /// Connecting or upgrading at once.
    pub parallel: usize,
    /// Keep them open (idle) once upgraded; otherwise each is closed at once.
    pub keep: bool,
    /// New connections started per second at most; `None`: as fast as `parallel` allows.
    pub rate: Option<f64>,
    /// Connections still pending after this long fail as "timed out".
    pub limit: Duration,
}

pub struct Burst {
    pub upgraded: usize,
    pub failed: usize,
    pub first_error: Option<String>,
    /// Failures by what went wrong (the error text), with counts.
    pub causes: BTreeMap<String, usize>,
    /// Connect start to open (101 received, and the greeting if any), ns.
    pub latencies: Vec<u64>,
    pub elapsed: Duration,
}

impl Burst {
    fn fail(&mut self, error: String) {
        self.failed += 1;
        *self.causes.entry(error.clone()).or_default() += 1;
        self.first_error.get_or_insert(error);
    }
}

/// The messages of a run: one in flight per connection, or paced.
pub struct Run {
    /// Complete answers in the measured window.
    pub messages: u64,
    /// Send to complete answer, ns, sorted.
    pub latencies: Vec<u64>,
    /// Send to the first part of an answer that comes in parts, ns, sorted; empty when
    /// answers come whole.
    pub first: Vec<u64>,
    /// Send to the server's acknowledgement, ns, sorted; empty without one.
    pub acks: Vec<u64>,
    pub errors: usize,
    pub first_error: Option<String>,
    /// Connections still open with a message in flight unanswered for the `stall` given
    /// to [`Client::run`].
    pub stalled: usize,
    pub cpu: CpuDelta,
}

/// One readiness event's outcome for a live connection.
pub struct Outcome {
    pub slot: usize,
    /// The connection was open before this event.
    pub was_open: bool,
    pub result: Result<Step, String>,
}

/// Nanoseconds from `since` to `until`.
pub fn nanos(since: Instant, until: Instant) -> u64 {
    until
        .saturating_duration_since(since)
        .as_nanos()
        .try_into()
        .unwrap_or(u64::MAX)
}

/// Connections in a slab; the token carries slot and generation, so an event still queued
/// for a closed connection cannot reach the one that reuses its slot.
pub struct Client<P: Protocol> {
    poll: Poll,
    events: Events,
    slots: Vec<Option<Conn<P::State>>>,
    generations: Vec<u32>,
    free: Vec<usize>,
    pub open: usize,
    target: Target,
    /// Source addresses to connect from, in turn (empty: the kernel picks): each has its
    /// own ~28k ephemeral ports towards one server address.
    sources: Vec<IpAddr>,
    next_source: usize,
    pub proto: P,
    pub progress: Progress,
}

fn token(slot: usize, generation: u32) -> Token {
    Token(((generation as usize) << 32) | slot)
}

impl<P: Protocol> Client<P> {
    pub fn new(target: Target, proto: P) -> io::Result<Client<P>> {
        Ok(Client {
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            slots: Vec::new(),
            generations: Vec::new(),
            free: Vec::new(),
            open: 0,
            target,
            sources: Vec::new(),
            next_source: 0,
            proto,
            progress: Progress::default(),
        })
    }

    pub fn with_sources(mut self, sources: Vec<IpAddr>) -> Self {
        self.sources = sources;
        self
    }

    pub fn sources(&self) -> &[IpAddr] {
        &self.sources
    }

    fn connect(&mut self) -> io::Result<()> {
        let buf_len = self.proto.buffer_len().max(MIN_READ_BUFFER);
        let source = (!self.sources.is_empty()).then(|| {
            self.next_source = (self.next_source + 1) % self.sources.len();
            self.sources[self.next_source]
        });
        let (headers, state) = self.proto.connect();
        let mut conn = Conn::connect(&self.target, source, &headers, buf_len, state)?;
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.generations.push(0);
            self.slots.len() - 1
        });
        let interest = Interest::READABLE | Interest::WRITABLE;
        let tok = token(slot, self.generations[slot]);
        if let Err(e) = self.poll.registry().register(conn.stream(), tok, interest) {
            self.free.push(slot);
            return Err(e);
        }
        self.slots[slot] = Some(conn);
        Ok(())
    }

    /// Closes the connection in `slot` (if any).
    pub fn remove(&mut self, slot: usize) {
        if let Some(mut conn) = self.slots[slot].take() {
            let _ = self.poll.registry().deregister(conn.stream());
            if conn.phase == Phase::Open {
                self.open -= 1;
            }
            self.generations[slot] = self.generations[slot].wrapping_add(1);
            self.free.push(slot);
        }
    }

    /// Answers the server's close frame on `slot`, then closes the connection.
    pub fn answer_close(&mut self, slot: usize, code: Option<u16>) {
        if let Some(conn) = self.slots.get_mut(slot).and_then(Option::as_mut) {
            // 1005 (no code) may not be sent back: answer it with 1000.
            conn.answer_close(code.filter(|&c| c != 1005).unwrap_or(1000));
        }
        self.remove(slot);
    }

    pub fn close_all(&mut self) {
        for slot in 0..self.slots.len() {
            self.remove(slot);
        }
    }

    /// The slots of live connections.
    pub fn live(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&s| self.slots[s].is_some())
            .collect()
    }

    pub fn is_live(&self, slot: usize) -> bool {
        self.slots.get(slot).is_some_and(Option::is_some)
    }

    /// When `slot`'s message in flight was sent, if it has not been answered yet.
    pub fn waiting_since(&self, slot: usize) -> Option<Instant> {
        let conn = self.slots.get(slot)?.as_ref()?;
        conn.in_flight.then_some(conn.since)
    }

    /// Sends the protocol's next message on `slot`.
    pub fn send(&mut self, slot: usize) -> Result<(), String> {
        match self.slots.get_mut(slot).and_then(Option::as_mut) {
            Some(conn) => conn.send(&self.proto),
            None => Err("no connection in this slot".into()),
        }
    }

    /// Polls once; the outcome of each event of a live connection.
    pub fn poll_once(&mut self, timeout: Duration) -> io::Result<Vec<Outcome>> {
        if let Err(e) = self.poll.poll(&mut self.events, Some(timeout)) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        let mut out = Vec::new();
        for event in self.events.iter() {
            let slot = event.token().0 & 0xffff_ffff;
            let generation = (event.token().0 >> 32) as u32;
            if self.generations.get(slot) != Some(&generation) {
                continue;
            }
            let Some(conn) = self.slots[slot].as_mut() else {
                continue;
            };
            let was_open = conn.phase == Phase::Open;
            let result = conn.on_event(event, &self.proto);
            out.push(Outcome {
                slot,
                was_open,
                result,
            });
        }
        Ok(out)
    }

    /// Opens `total` connections with at most `parallel` connecting or upgrading at once.
    /// With `keep`, they stay open (idle); without, each is closed once upgraded.
    pub fn burst(&mut self, total: usize, parallel: usize, keep: bool) -> Burst {
        self.open_plan(&Plan {
            total,
            parallel,
            keep,
            rate: None,
            limit: Duration::from_secs(30 + total as u64 / 200),
        })
    }

    /// Opens connections as `plan` says; each one that is not open within its limit
    /// (refused, failed, or still pending at the end) is a failure with its cause.
    pub fn open_plan(&mut self, plan: &Plan) -> Burst {
        let start = Instant::now();
        let deadline = start + plan.limit;
        let mut burst = Burst {
            upgraded: 0,
            failed: 0,
            first_error: None,
            causes: BTreeMap::new(),
            latencies: Vec::with_capacity(plan.total),
            elapsed: Duration::ZERO,
        };
        let (mut started, mut pending) = (0usize, 0usize);
        while burst.upgraded + burst.failed < plan.total {
            let now = Instant::now();
            let allowed = plan.rate.map_or(plan.total, |rate| {
                // The first connection at once, then `rate` per second.
                1 + ((now - start).as_secs_f64() * rate) as usize
            });
            while started < plan.total.min(allowed) && pending < plan.parallel {
                started += 1;
                match self.connect() {
                    Ok(()) => pending += 1,
                    Err(e) => burst.fail(format!("connect: {e}")),
                }
            }
            if now >= deadline {
                let stuck = self.pending_slots();
                for slot in stuck {
                    self.remove(slot);
                    burst.fail("timed out".into());
                }
                for _ in started..plan.total {
                    burst.fail("not started: time limit".into());
                }
                break;
            }
            let wait = match plan.rate {
                Some(rate) if started < plan.total => Duration::from_secs_f64(1.0 / rate),
                _ => Duration::from_millis(100),
            };
            let outcomes = match self.poll_once(wait.min(Duration::from_millis(100))) {
                Ok(outcomes) => outcomes,
                Err(e) => {
                    burst.first_error.get_or_insert(format!("epoll: {e}"));
                    break;
                }
            };
            for Outcome {
                slot,
                was_open,
                result,
            } in outcomes
            {
                match (was_open, result) {
                    (_, Ok(Step::Pending)) | (true, Ok(_)) => {}
                    (true, Err(e)) => {
                        // A kept connection closed by the server while others open.
                        burst
                            .first_error
                            .get_or_insert(format!("open connection lost: {e}"));
                        self.remove(slot);
                    }
                    (false, Ok(Step::Closed { code })) => {
                        pending -= 1;
                        burst.fail(format!("closed during the handshake ({code:?})"));
                        self.remove(slot);
                    }
                    (false, Ok(_)) => {
                        if let Some(conn) = self.slots[slot].as_ref() {
                            burst.latencies.push(nanos(conn.since, Instant::now()));
                        }
                        burst.upgraded += 1;
                        pending -= 1;
                        self.open += 1;
                        if !plan.keep {
                            self.remove(slot);
                        }
                    }
                    (false, Err(e)) => {
                        pending -= 1;
                        burst.fail(e);
                        self.remove(slot);
                    }
                }
            }
            let (up, failed, total) = (burst.upgraded, burst.failed, plan.total);
            self.progress
                .show(|| format!("open {up}/{total}, {failed} failed, {pending} in flight"));
        }
        self.progress.clear();
        burst.elapsed = start.elapsed();
        burst
    }

    /// Slots still connecting, upgrading or waiting for their greeting.
    fn pending_slots(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&s| {
                self.slots[s]
                    .as_ref()
                    .is_some_and(|c| c.phase != Phase::Open)
            })
            .collect()
    }

    /// Opens `n` connections for a run, at most OPEN_PARALLEL at once; the burst says
    /// how many failed.
    pub fn open_for_run(&mut self, n: usize) -> Burst {
        self.burst(n, OPEN_PARALLEL.min(n.max(1)), true)
    }

    /// Every open connection sends messages for `warmup` + `measured`, as `load` says:
    /// the next one on the answer (closed) or a think time after it (paced).
    /// A connection with a message in flight unanswered for `stall` at the end counts as
    /// stalled.
    pub fn run(
        &mut self,
        warmup: Duration,
        measured: Duration,
        stall: Duration,
        meter: &CpuMeter,
        load: Load,
    ) -> Run {
        /// The longest poll: how late the end of warm-up and of the window may be seen.
        const TICK: Duration = Duration::from_millis(10);
        let mut run = Run {
            messages: 0,
            latencies: Vec::new(),
            first: Vec::new(),
            acks: Vec::new(),
            errors: 0,
            first_error: None,
            stalled: 0,
            cpu: CpuDelta::default(),
        };
        let mut pacer = match load {
            Load::Closed => None,
            Load::Paced { mean } => Some(Pacer::new(mean)),
        };
        let mut failed_slots = Vec::new();
        let start = Instant::now();
        for slot in self.live() {
            if let Some(pacer) = pacer.as_mut() {
                pacer.start(slot, start);
            } else if let Err(e) = self.send(slot) {
                failed_slots.push((slot, e));
            }
        }
        let warm_until = start + warmup;
        let mut window_start: Option<CpuSample> = None;
        loop {
            for (slot, e) in failed_slots.drain(..) {
                run.errors += 1;
                run.first_error.get_or_insert(e);
                self.remove(slot);
            }
            if self.open == 0 {
                break;
            }
            let now = Instant::now();
            if let Some(w) = window_start {
                if now - w.at >= measured {
                    break;
                }
            } else if now >= warm_until {
                window_start = Some(meter.sample());
            }
            if let Some(pacer) = pacer.as_mut() {
                while let Some(slot) = pacer.pop_due(now) {
                    // A slot removed after an error stays empty for the rest of the run.
                    if let Some(conn) = self.slots[slot].as_mut() {
                        if let Err(e) = conn.send(&self.proto) {
                            failed_slots.push((slot, e));
                        }
                    }
                }
            }
            let timeout = pacer.as_ref().map_or(TICK, |p| p.timeout(now, TICK));
            let outcomes = match self.poll_once(timeout) {
                Ok(outcomes) => outcomes,
                Err(e) => {
                    run.first_error.get_or_insert(format!("epoll: {e}"));
                    break;
                }
            };
            for Outcome { slot, result, .. } in outcomes {
                match result {
                    Ok(Step::Reply { first, ack }) => {
                        let now = Instant::now();
                        if window_start.is_some() {
                            if let Some(conn) = self.slots[slot].as_ref() {
                                run.messages += 1;
                                run.latencies.push(nanos(conn.since, now));
                                run.first.extend(first.map(|at| nanos(conn.since, at)));
                                run.acks.extend(ack.map(|at| nanos(conn.since, at)));
                            }
                        }
                        if let Some(pacer) = pacer.as_mut() {
                            pacer.after_answer(slot, now);
                        } else if let Err(e) = self.send(slot) {
                            failed_slots.push((slot, e));
                        }
                    }
                    Ok(Step::Refused(e)) => {
                        // Counted as an error; the socket stays and sends again.
                        run.errors += 1;
                        run.first_error.get_or_insert(e);
                        if let Some(pacer) = pacer.as_mut() {
                            pacer.after_answer(slot, Instant::now());
                        } else if let Err(e) = self.send(slot) {
                            failed_slots.push((slot, e));
                        }
                    }
                    Ok(Step::Closed { code }) => {
                        failed_slots.push((slot, format!("server closed the socket ({code:?})")))
                    }
                    Ok(_) => {}
                    Err(e) => failed_slots.push((slot, e)),
                }
            }
            let (messages, open) = (run.messages, self.open);
            self.progress
                .show(|| format!("{messages} answers in the window, {open} sockets open"));
        }
        self.progress.clear();
        let end = meter.sample();
        for (slot, e) in failed_slots.drain(..) {
            run.errors += 1;
            run.first_error.get_or_insert(e);
            self.remove(slot);
        }
        if let Some(start) = window_start {
            run.cpu = meter.delta(start, end);
        }
        run.stalled = self
            .slots
            .iter()
            .flatten()
            .filter(|c| c.in_flight && end.at - c.since > stall)
            .count();
        run.latencies.sort_unstable();
        run.first.sort_unstable();
        run.acks.sort_unstable();
        run
    }
}
