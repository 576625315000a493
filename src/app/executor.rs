//! The one executor of the chat core's jobs: store operations on the `store` lane, LLM
//! streams on the `llm` lane, admin notices on the `io` lane. It is the only owner of
//! jobs in flight: it keeps each job's continuation until the job ends and hands it
//! back with the outcome, so the chat core keeps no table of its own. Chunks travel
//! back as completions the moment they arrive; the cancel token and the upstream abort
//! of each stream are kept here so that `stop` reaches the lane and frees its thread
//! even while the upstream is silent.
//! A job that cannot run is not answered at once: it waits, refused, until the
//! loop takes it ([`Executor::take_answered`]) and hands it to the chat core as its own
//! event, so the core is never re-entered while its effects are being applied. A notice
//! with no channel but the log waits there too, done: a log line neither blocks nor
//! needs a lane, so it is written on the loop thread.
//!
//! Appends are group-committed: one batch is in flight at a time, and the appends that
//! arrive while it commits wait and go next, together, as one transaction. An idle
//! server commits a message alone and at once; a busy one pays one commit (and one
//! fsync) per batch instead of per message. The chat core keeps at most one write per
//! session in flight, so a batch never holds two appends of one session.
//!
//! At shutdown the loop is gone and cannot start a session's next write when one ends:
//! the core hands each session's last writes over as one job ([`Work::After`]) that
//! waits, on its lane thread, for the session's write in flight to end, then runs them
//! in order. So the one-at-a-time order of a session's writes holds to the end.

mod order;
mod store_op;

use std::sync::Arc;
use std::time::{Duration, Instant};

use order::{Ended, Ending};

use super::lanes::{Done, Lanes};
use crate::bus::Claims;
use crate::chat::jobs::{
    AppendOp, Continuation, Job, JobDone, JobId, LlmCall, Notice, Outcome, StoreOp, StoreReply,
    Work,
};
use crate::hash::IdMap;
use crate::llm::{self, Abort, Catalog, LlmError, Request, Sink};
use crate::metrics::instruments::Histogram;
use crate::metrics::Metrics;
use crate::net::lanes::{CancelToken, JobContext};
use crate::notify::{Alert, Notifier};
use crate::store::{Store, StoreError};
use crate::upload::url_check;

/// Appends that may wait for the batch in flight; past this the store is not keeping
/// up and new ones are refused (busy) rather than queued without bound.
const APPENDS_WAITING_MAX: usize = 8192;

pub struct Executor {
    store: Arc<dyn Store>,
    /// `REDIS_URL`: takeovers are claimed cluster-wide on the store lane.
    claims: Option<Arc<Claims>>,
    catalog: Arc<Catalog>,
    stream_timeout: Duration,
    notifier: Arc<Notifier>,
    metrics: Arc<Metrics>,
    /// Every job submitted and not ended, queued appends included: what the chat core
    /// does with its outcome.
    jobs: IdMap<JobId, Continuation>,
    streams: IdMap<JobId, (CancelToken, Abort)>,
    /// The end of every store job in flight, for a job handed over at shutdown to wait on.
    store_jobs: IdMap<JobId, Ended>,
    appends_waiting: Vec<(JobId, AppendOp, Ending)>,
    appends_committing: bool,
    /// Jobs answered on the loop thread, in order, until the loop takes them: those that
    /// will not run, and notices that were only logged.
    answered: Vec<JobDone>,
}

impl Executor {
    pub fn new(
        store: Arc<dyn Store>,
        claims: Option<Arc<Claims>>,
        catalog: Arc<Catalog>,
        stream_timeout: Duration,
        notifier: Arc<Notifier>,
        metrics: Arc<Metrics>,
    ) -> Executor {
        Executor {
            store,
            claims,
            catalog,
            stream_timeout,
            notifier,
            metrics,
            jobs: IdMap::default(),
            streams: IdMap::default(),
            store_jobs: IdMap::default(),
            appends_waiting: Vec::new(),
            appends_committing: false,
            answered: Vec::new(),
        }
    }

    /// Starts a job; one that cannot run (its lane is full) is kept as refused, for
    /// [`Executor::take_answered`].
    pub fn submit(&mut self, lanes: &Lanes, job: Job) {
        let Job { id, work, then } = job;
        self.jobs.insert(id, then);
        let lost = Done::Job(id, Outcome::Refused);
        let submitted = match work {
            Work::Store(op) => {
                let (ended, ending) = order::pair();
                self.store_jobs.insert(id, ended);
                if let StoreOp::Append(op) = op {
                    return self.queue_append(lanes, id, op, ending);
                }
                let store = Arc::clone(&self.store);
                let claims = self.claims.clone();
                lanes
                    .store
                    .try_submit(
                        move |ctx| {
                            let result = store_op::run(&op, store.as_ref(), claims.as_deref());
                            let _ = ctx.complete(Done::Job(id, Outcome::Store(result)));
                            drop(ending);
                        },
                        lost,
                    )
                    .map(drop)
            }
            Work::After { job, ops } => {
                // The write it follows may still wait for its batch: sent now, it is ahead
                // in the lane's queue, so waiting for it cannot hold up its own worker.
                self.flush_appends(lanes);
                let after = self.store_jobs.get(&job).cloned();
                let store = Arc::clone(&self.store);
                let claims = self.claims.clone();
                lanes
                    .store
                    .try_submit(
                        move |ctx| {
                            if let Some(after) = after {
                                after.wait();
                            }
                            let claims = claims.as_deref();
                            let result = store_op::run_in_order(&ops, store.as_ref(), claims);
                            let _ = ctx.complete(Done::Job(id, Outcome::Store(result)));
                        },
                        lost,
                    )
                    .map(drop)
            }
            Work::Llm(call) => {
                let catalog = Arc::clone(&self.catalog);
                let metrics = Arc::clone(&self.metrics);
                let timeout = self.stream_timeout;
                let abort = Abort::default();
                let upstream = abort.clone();
                lanes
                    .llm
                    .try_submit(
                        move |ctx| {
                            let result =
                                stream(&catalog, &metrics, &call, timeout, &upstream, id, ctx);
                            let _ = ctx.complete(Done::Job(id, Outcome::Finished(result)));
                        },
                        lost,
                    )
                    .map(|cancel| {
                        self.streams.insert(id, (cancel, abort));
                    })
            }
            Work::CheckUrl(url) => lanes
                .io
                .try_submit(
                    move |ctx| {
                        let public = url_check::check_public_https(&url)
                            .map_err(|refused| log::info!("file_url refused: {refused}"))
                            .is_ok();
                        let reply = Outcome::Store(Ok(StoreReply::Updated(public)));
                        let _ = ctx.complete(Done::Job(id, reply));
                    },
                    lost,
                )
                .map(drop),
            Work::Notify(notice) if !self.notifier.has_channels() => {
                self.notifier.send(&alert(&notice));
                self.answer(id, Outcome::Store(Ok(StoreReply::Updated(true))));
                return;
            }
            Work::Notify(notice) => {
                let notifier = Arc::clone(&self.notifier);
                let metrics = Arc::clone(&self.metrics);
                lanes
                    .io
                    .try_submit(
                        move |ctx| {
                            let sent = notify(&notifier, &metrics, &notice);
                            let reply = Outcome::Store(Ok(StoreReply::Updated(sent)));
                            let _ = ctx.complete(Done::Job(id, reply));
                        },
                        lost,
                    )
                    .map(drop)
            }
        };
        if let Err(error) = submitted {
            log::warn!("job {id}: {error}");
            self.refuse(id);
        }
    }

    fn queue_append(&mut self, lanes: &Lanes, id: JobId, op: AppendOp, ending: Ending) {
        if self.appends_waiting.len() >= APPENDS_WAITING_MAX {
            log::warn!("job {id}: {APPENDS_WAITING_MAX} appends already wait for the store");
            self.refuse(id);
            return;
        }
        self.appends_waiting.push((id, op, ending));
        if !self.appends_committing {
            self.flush_appends(lanes);
        }
    }

    /// The batch in flight is done (its appends answered, or `lost` with its job): the
    /// appends that queued meanwhile go next.
    pub fn appends_committed(&mut self, lanes: &Lanes, lost: Vec<JobId>) {
        for id in lost {
            self.refuse(id);
        }
        self.appends_committing = false;
        self.flush_appends(lanes);
    }

    /// Sends every waiting append to the store lane as one batch. The loop calls it
    /// only when no batch is in flight, except at shutdown (directly, and before a
    /// [`Work::After`]), when no completion will come back to send them.
    pub fn flush_appends(&mut self, lanes: &Lanes) {
        if self.appends_waiting.is_empty() {
            return;
        }
        // The next batch is likely as large: one allocation of that size rather than a
        // list doubled from nothing, each step copying every waiting append (9.5k
        // instructions a step, 1.2k per chat exchange under load, callgrind).
        let next = Vec::with_capacity(self.appends_waiting.len());
        let batch = std::mem::replace(&mut self.appends_waiting, next);
        let ids: Vec<JobId> = batch.iter().map(|(id, _, _)| *id).collect();
        let store = Arc::clone(&self.store);
        let lost = Done::AppendBatch { lost: ids.clone() };
        let submitted = lanes.store.try_submit(
            move |ctx| {
                let appends: Vec<_> = batch.iter().map(|(_, op, _)| op.as_append()).collect();
                let mut results = store.append_batch(&appends).into_iter();
                for (id, _, _) in &batch {
                    let result = results
                        .next()
                        .unwrap_or_else(|| {
                            Err(StoreError::Unavailable(
                                "the store skipped an append".into(),
                            ))
                        })
                        .map(StoreReply::Appended);
                    let _ = ctx.complete(Done::Job(*id, Outcome::Store(result)));
                }
                let _ = ctx.complete(Done::AppendBatch { lost: Vec::new() });
            },
            lost,
        );
        match submitted {
            Ok(_) => self.appends_committing = true,
            Err(error) => {
                log::warn!("{} append(s): {error}", ids.len());
                for id in ids {
                    self.refuse(id);
                }
            }
        }
    }

    pub fn cancel(&mut self, id: JobId) {
        if let Some((token, abort)) = self.streams.remove(&id) {
            token.cancel();
            abort.fire();
        }
    }

    /// Pairs a lane's outcome with its job's continuation. A chunk leaves the job in
    /// flight; any other outcome ends it. `None` for a job that already ended.
    pub fn completed(&mut self, id: JobId, outcome: Outcome) -> Option<JobDone> {
        let then = match outcome {
            Outcome::Chunk(_) => self.jobs.get(&id).cloned(),
            _ => {
                self.streams.remove(&id);
                self.store_jobs.remove(&id);
                self.jobs.remove(&id)
            }
        }?;
        Some(JobDone { id, then, outcome })
    }

    /// The jobs answered on the loop thread since the last call (refused, or notices
    /// only logged), in the order they were answered.
    pub fn take_answered(&mut self) -> Vec<JobDone> {
        std::mem::take(&mut self.answered)
    }

    fn refuse(&mut self, id: JobId) {
        self.answer(id, Outcome::Refused);
    }

    fn answer(&mut self, id: JobId, outcome: Outcome) {
        if let Some(done) = self.completed(id, outcome) {
            self.answered.push(done);
        }
    }
}

/// The notice in the notifier's own terms: it knows no chat types.
fn alert(notice: &Notice) -> Alert<'_> {
    Alert {
        session_id: &notice.session_id,
        user_id: &notice.user_id,
        at_ms: notice.at,
        escalated: notice.escalated,
    }
}

/// Runs on the `io` lane: every channel is tried; each failure is logged and counted,
/// and never reaches the user who asked for help. `false` when any channel failed.
fn notify(notifier: &Notifier, metrics: &Metrics, notice: &Notice) -> bool {
    let failed = notifier.send(&alert(notice));
    for (channel, error) in &failed {
        log::warn!(
            "help request of session {}: {} not sent: {error}",
            notice.session_id,
            channel.name()
        );
        metrics
            .notify_failures
            .failed(super::measure::notify_channel(*channel));
    }
    failed.is_empty()
}

/// Runs on the `llm` lane, counting the request, its outcome and its first chunk's
/// latency under the provider's id.
fn stream(
    catalog: &Catalog,
    metrics: &Metrics,
    call: &LlmCall,
    timeout: Duration,
    abort: &Abort,
    id: JobId,
    ctx: &JobContext<Done>,
) -> Result<llm::Finish, LlmError> {
    let Some((provider_config, provider)) = catalog.get(&call.provider_id) else {
        return Err(LlmError::Unavailable {
            retryable: false,
            detail: format!("no provider with id {}", call.provider_id),
        });
    };
    let request = Request {
        model: &provider_config.model,
        turns: &call.turns,
        user_id: &call.user_id,
        conversation_id: call.conversation_id.as_deref(),
        abort,
    };
    let series = super::measure::llm_series(metrics, provider_config);
    if let Some(series) = series {
        series.requests.inc();
    }
    let mut sink = LaneSink {
        id,
        ctx,
        first_chunk: series.map(|s| (&s.first_chunk, Instant::now())),
    };
    let result = llm::run(provider.as_ref(), &request, timeout, &mut sink);
    if let Some(series) = series {
        match &result {
            Ok(finish) => series.tokens.add(finish.total_tokens.unwrap_or(0)),
            // A stop is the user's choice, not a failure of the provider.
            Err(LlmError::Cancelled) => {}
            Err(_) => series.errors.inc(),
        }
    }
    result
}

/// Passes each chunk to the loop as it arrives. The completion channel is bounded, so
/// a loop that falls behind slows the upstream read instead of buffering without limit.
struct LaneSink<'a> {
    id: JobId,
    ctx: &'a JobContext<Done>,
    /// Where the time to the first chunk goes, and since when; `None` once recorded.
    first_chunk: Option<(&'a Histogram, Instant)>,
}

impl Sink for LaneSink<'_> {
    fn chunk(&mut self, text: &str) -> bool {
        if let Some((latency, asked)) = self.first_chunk.take() {
            latency.observe(asked.elapsed());
        }
        let chunk = Done::Job(self.id, Outcome::Chunk(text.to_owned()));
        self.ctx.complete(chunk).is_ok() && !self.ctx.is_cancelled()
    }

    fn cancelled(&self) -> bool {
        self.ctx.is_cancelled()
    }
}
