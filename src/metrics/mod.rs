//! Every metric chatbox exports, in one registry, and the scrape that writes them out
//! (`spec/integrations.md` §Metrics; `docs/METRICS.md` explains each one).
//!
//! Names, types and labels of the old service are kept exactly: its dashboards read
//! them. Recording is a relaxed atomic add (see [`instruments`]), so the loop and the
//! lane threads share one `Arc<Metrics>` (the store lane only its [`StoreTimings`])
//! with no lock anywhere. What is a state rather than an event (slots in use, lane
//! queues, the drain, `/proc`) is not recorded at all: the loop reads it when a scrape
//! comes and passes it in as [`State`].
//!
//! Every series exists from the first scrape, with a zero, so that a dashboard never
//! sees "no data" for "nothing happened" — except HTTP request durations, whose
//! route × method grid is shown as it is used.
//!
//! A leaf: it imports nothing else of the crate. What it records is put in its own
//! terms (label values, counts); the application, which knows routes, methods and the
//! chat core, does the translation (`app::measure`).

pub mod instruments;
mod notifications;
pub mod process;
mod redis;
mod requests;
mod store_timings;
pub mod text;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use instruments::{Counter, Gauge, Histogram};
pub use notifications::{NotifyChannel, NotifyFailures};
use process::Process;
pub use redis::RedisMetrics;
pub use requests::RequestTimer;
use requests::RequestTimings;
pub use store_timings::StoreTimings;
use text::{Exposition, Kind, Value};

/// spec/integrations.md gives these.
const CONNECTION_BUCKETS: [f64; 10] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];
/// Time to first chunk: a local model answers in well under a second, a hosted one
/// in one to a few, a struggling one in tens (then retries and timeouts show).
const LLM_BUCKETS: [f64; 11] = [0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0];
/// A loop turn should take microseconds: every connection waits for the slowest one.
const LOOP_BUCKETS: [f64; 13] = [
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1,
];

/// The `limiter` label of `chatbox_ratelimit_blocked_total`, with the old service's
/// values: its dashboards and alerts select on them. A kind of limit rather than each
/// limiter: every limiter that refuses with a sliding window reports `message`, so a
/// new limiter of that kind adds to the same series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limiter {
    /// A connection refused at a limit on open connections.
    Connection,
    /// A message or request refused by a sliding-window rate limit.
    Message,
}

impl Limiter {
    const ALL: [Limiter; 2] = [Limiter::Connection, Limiter::Message];

    fn label(self) -> &'static str {
        match self {
            Limiter::Connection => "connection",
            Limiter::Message => "message",
        }
    }
}

/// What the chat core counted while handling an event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChatCounts {
    /// `error` frames sent to chat clients.
    pub error_frames: u64,
    /// User messages refused by the per-user rate limit (a [`Limiter::Message`]).
    pub rate_limited: u64,
    pub sessions_created: u64,
    pub sessions_ended: u64,
    /// Sessions an admin took over.
    pub admin_takeovers: u64,
}

/// The series of one `provider` label value.
#[derive(Debug)]
pub struct Llm {
    provider: String,
    pub requests: Counter,
    pub errors: Counter,
    pub tokens: Counter,
    pub first_chunk: Histogram,
}

/// What the loop knows at scrape time.
#[derive(Clone, Debug, Default)]
pub struct State {
    pub slots_used: usize,
    pub slots_total: usize,
    pub draining: bool,
    pub lanes: Vec<LaneState>,
    /// `None` where `/proc` could not be read: the `process_*` families are left out.
    pub process: Option<Process>,
}

#[derive(Clone, Debug)]
pub struct LaneState {
    pub name: &'static str,
    pub queue_depth: usize,
    pub rejected: u64,
}

#[derive(Debug)]
pub struct Metrics {
    /// Open WebSockets (the reactor counts them as they open and end).
    pub websockets: Gauge,
    pub websocket_seconds: Histogram,
    /// WebSocket data messages, in and out, on every socket.
    pub messages_received: Counter,
    pub messages_sent: Counter,
    pub slow_consumer_closes: Counter,
    /// Calls into the application that panicked; the loop contained each one.
    pub handler_panics: Counter,
    /// The work of one loop turn, from the poll's return to the next poll.
    pub loop_iteration: Histogram,
    pub notify_failures: NotifyFailures,
    /// The Redis bus; zeros without `REDIS_URL`.
    pub redis: RedisMetrics,
    message_errors: Counter,
    sessions_created: Counter,
    sessions_ended: Counter,
    admin_takeovers: Counter,
    /// Active sessions found in the store at start-up; the gauge moves from there.
    sessions_at_start: AtomicU64,
    blocked: [Counter; Limiter::ALL.len()],
    requests: RequestTimings,
    llm: Vec<Llm>,
    store: Arc<StoreTimings>,
}

impl Metrics {
    /// `providers`: the `provider` label values, each shown from the start; a value
    /// given twice is one series. HTTP requests are not recorded until
    /// [`Metrics::with_requests`] gives their grid.
    pub fn new(providers: &[&str]) -> Metrics {
        let mut llm: Vec<Llm> = Vec::with_capacity(providers.len());
        for &provider in providers {
            if llm.iter().all(|series| series.provider != provider) {
                llm.push(Llm {
                    provider: provider.to_owned(),
                    requests: Counter::default(),
                    errors: Counter::default(),
                    tokens: Counter::default(),
                    first_chunk: Histogram::new(&LLM_BUCKETS),
                });
            }
        }
        Metrics {
            websockets: Gauge::default(),
            websocket_seconds: Histogram::new(&CONNECTION_BUCKETS),
            messages_received: Counter::default(),
            messages_sent: Counter::default(),
            slow_consumer_closes: Counter::default(),
            handler_panics: Counter::default(),
            loop_iteration: Histogram::new(&LOOP_BUCKETS),
            notify_failures: NotifyFailures::default(),
            redis: RedisMetrics::default(),
            message_errors: Counter::default(),
            sessions_created: Counter::default(),
            sessions_ended: Counter::default(),
            admin_takeovers: Counter::default(),
            sessions_at_start: AtomicU64::new(0),
            blocked: Default::default(),
            requests: RequestTimings::default(),
            llm,
            store: Arc::default(),
        }
    }

    /// The HTTP request grid: every `endpoint` and `method` label value a request may
    /// be recorded under. A [`RequestTimer`] names its cell by the positions of its
    /// values in these two lists; the endpoint values must be distinct.
    pub fn with_requests(
        self,
        endpoints: impl IntoIterator<Item = String>,
        methods: impl IntoIterator<Item = &'static str>,
    ) -> Metrics {
        Metrics {
            requests: RequestTimings::new(endpoints, methods),
            ..self
        }
    }

    /// The one family the store records into, for its timing decorator.
    pub fn store_timings(&self) -> &Arc<StoreTimings> {
        &self.store
    }

    pub fn record_chat(&self, counts: ChatCounts) {
        let pairs = [
            (&self.message_errors, counts.error_frames),
            (&self.sessions_created, counts.sessions_created),
            (&self.sessions_ended, counts.sessions_ended),
            (&self.admin_takeovers, counts.admin_takeovers),
            (
                &self.blocked[Limiter::Message as usize],
                counts.rate_limited,
            ),
        ];
        for (counter, n) in pairs {
            // Most events count nothing: skip the atomic add for them.
            if n > 0 {
                counter.add(n);
            }
        }
    }

    pub fn set_sessions_at_start(&self, active: u64) {
        self.sessions_at_start.store(active, Ordering::Relaxed);
    }

    pub fn blocked(&self, limiter: Limiter) {
        self.blocked[limiter as usize].inc();
    }

    /// The request was answered.
    pub fn answered(&self, timer: RequestTimer) {
        self.requests.answered(timer);
    }

    /// The series of this `provider` label value (`None` for one never given).
    pub fn llm(&self, provider: &str) -> Option<&Llm> {
        self.llm.iter().find(|llm| llm.provider == provider)
    }

    /// Never negative: ends of sessions that started before the count was taken can
    /// only bring it down to zero.
    fn active_sessions(&self) -> u64 {
        (self.sessions_at_start.load(Ordering::Relaxed) + self.sessions_created.get())
            .saturating_sub(self.sessions_ended.get())
    }

    /// The whole scrape, in the text format.
    pub fn render(&self, state: &State) -> String {
        let mut out = Exposition::default();
        self.render_sockets(&mut out);
        self.render_chat(&mut out);
        self.render_llm(&mut out);
        self.store.render(&mut out);
        self.notify_failures.render(&mut out);
        self.redis.render(&mut out);
        self.requests.render(&mut out);
        render_state(&mut out, state);
        histogram(
            &mut out,
            "chatbox_event_loop_iteration_seconds",
            "Time the event loop spent on one turn (not counting the wait for events).",
            &self.loop_iteration,
        );
        out.into_string()
    }

    fn render_sockets(&self, out: &mut Exposition) {
        single(
            out,
            "chatbox_websocket_connections_total",
            Kind::Gauge,
            "Open WebSocket connections.",
            Value::Signed(self.websockets.get()),
        );
        histogram(
            out,
            "chatbox_websocket_connection_duration_seconds",
            "How long WebSocket connections stayed open.",
            &self.websocket_seconds,
        );
        for (name, help, counter) in [
            (
                "chatbox_messages_received_total",
                "WebSocket messages received from clients.",
                &self.messages_received,
            ),
            (
                "chatbox_messages_sent_total",
                "WebSocket messages sent to clients.",
                &self.messages_sent,
            ),
            (
                "chatbox_message_errors_total",
                "Error frames sent to chat clients.",
                &self.message_errors,
            ),
            (
                "chatbox_ws_slow_consumer_closes_total",
                "WebSockets closed with 1013 because they did not read what was sent to them.",
                &self.slow_consumer_closes,
            ),
            (
                "chatbox_handler_panics_total",
                "Calls into the application that panicked; each cost one connection at most.",
                &self.handler_panics,
            ),
        ] {
            single(out, name, Kind::Counter, help, Value::Int(counter.get()));
        }
    }

    fn render_chat(&self, out: &mut Exposition) {
        single(
            out,
            "chatbox_active_sessions_total",
            Kind::Gauge,
            "Sessions not yet ended (counted in the store at start-up, then followed).",
            Value::Int(self.active_sessions()),
        );
        for (name, help, counter) in [
            (
                "chatbox_sessions_created_total",
                "Sessions stored for the first time.",
                &self.sessions_created,
            ),
            (
                "chatbox_sessions_ended_total",
                "Sessions ended, by their user or by the idle sweep.",
                &self.sessions_ended,
            ),
            (
                "chatbox_admin_takeovers_total",
                "Sessions taken over by an admin.",
                &self.admin_takeovers,
            ),
        ] {
            single(out, name, Kind::Counter, help, Value::Int(counter.get()));
        }
        out.family(
            "chatbox_ratelimit_blocked_total",
            Kind::Counter,
            "Requests refused by a rate limiter.",
        );
        for limiter in Limiter::ALL {
            out.sample(
                "chatbox_ratelimit_blocked_total",
                &[("limiter", limiter.label())],
                Value::Int(self.blocked[limiter as usize].get()),
            );
        }
    }

    fn render_llm(&self, out: &mut Exposition) {
        type Pick = fn(&Llm) -> &Counter;
        let counters: [(&str, &str, Pick); 3] = [
            (
                "chatbox_llm_requests_total",
                "Replies asked of an LLM provider.",
                |llm| &llm.requests,
            ),
            (
                "chatbox_llm_errors_total",
                "Replies that failed at the provider (not counting those stopped by the user).",
                |llm| &llm.errors,
            ),
            (
                "chatbox_tokens_used_total",
                "Tokens the provider reported as used.",
                |llm| &llm.tokens,
            ),
        ];
        for (name, help, pick) in counters {
            out.family(name, Kind::Counter, help);
            for llm in &self.llm {
                out.sample(
                    name,
                    &[("provider", &llm.provider)],
                    Value::Int(pick(llm).get()),
                );
            }
        }
        let name = "chatbox_llm_latency_seconds";
        out.family(
            name,
            Kind::Histogram,
            "Time from asking a provider to its first chunk.",
        );
        for llm in &self.llm {
            out.histogram(
                name,
                &[("provider", &llm.provider)],
                &llm.first_chunk.snapshot(),
            );
        }
    }
}

fn render_state(out: &mut Exposition, state: &State) {
    if let Some(process) = &state.process {
        render_process(out, process);
    }
    let name = "chatbox_connection_slots";
    out.family(
        name,
        Kind::Gauge,
        "Connection slots (MAX_CONNECTIONS) in use and free.",
    );
    let free = state.slots_total.saturating_sub(state.slots_used);
    for (label, n) in [("used", state.slots_used), ("free", free)] {
        out.sample(name, &[("state", label)], Value::Int(n as u64));
    }
    let name = "chatbox_lane_queue_depth";
    out.family(name, Kind::Gauge, "Jobs waiting for a worker, per lane.");
    for lane in &state.lanes {
        let depth = Value::Int(lane.queue_depth as u64);
        out.sample(name, &[("lane", lane.name)], depth);
    }
    let name = "chatbox_lane_rejected_total";
    out.family(
        name,
        Kind::Counter,
        "Jobs refused because their lane's queue was full.",
    );
    for lane in &state.lanes {
        out.sample(name, &[("lane", lane.name)], Value::Int(lane.rejected));
    }
    single(
        out,
        "chatbox_draining",
        Kind::Gauge,
        "1 from SIGTERM until exit, else 0.",
        Value::Int(u64::from(state.draining)),
    );
}

fn render_process(out: &mut Exposition, process: &Process) {
    let families = [
        (
            "process_resident_memory_bytes",
            Kind::Gauge,
            "Resident memory size in bytes.",
            Value::Int(process.resident_bytes),
        ),
        (
            "process_cpu_seconds_total",
            Kind::Counter,
            "Total user and system CPU time spent in seconds.",
            Value::Float(process.cpu_seconds),
        ),
        (
            "process_open_fds",
            Kind::Gauge,
            "Number of open file descriptors.",
            Value::Int(process.open_fds),
        ),
        (
            "process_start_time_seconds",
            Kind::Gauge,
            "Start time of the process since unix epoch in seconds.",
            Value::Float(process.start_time_seconds),
        ),
    ];
    for (name, kind, help, value) in families {
        single(out, name, kind, help, value);
    }
}

/// A family with one unlabelled sample.
fn single(out: &mut Exposition, name: &str, kind: Kind, help: &str, value: Value) {
    out.family(name, kind, help);
    out.sample(name, &[], value);
}

/// A family with one unlabelled histogram.
fn histogram(out: &mut Exposition, name: &str, help: &str, histogram: &Histogram) {
    out.family(name, Kind::Histogram, help);
    out.histogram(name, &[], &histogram.snapshot());
}

#[cfg(test)]
mod tests;
