//! Bounded worker lanes: where blocking work (database, LLM streams, S3, SMTP) runs.
//!
//! The event loop must never block, so every blocking call is a job on a lane: a fixed
//! set of threads behind a bounded queue. Kinds of work get separate lanes so that slow
//! LLM streams cannot starve short store writes. A full queue is answered at once with
//! [`LaneError::Busy`] (the client gets a clear error, not a hang) instead of spawning
//! more threads or queueing without bound.
//!
//! Results travel back through one bounded completion channel shared by all lanes, and
//! one `mio::Waker` tells the loop to look at it. The channel being bounded is the
//! back-pressure: a job streaming faster than the loop drains blocks on its own thread,
//! and so stops reading its upstream.

use std::any::Any;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::background::{self, Waking};

/// The sending half of the completion channel; every lane worker holds a clone.
///
/// The waker is shared and guarded by a "wake pending" flag because a streaming job can
/// send thousands of chunks per second: only the first completion after the loop's last
/// drain writes to the eventfd, the rest ride on that wake-up since the loop drains
/// everything that is there.
pub struct Completions<T> {
    tx: SyncSender<T>,
    waker: Arc<mio::Waker>,
    wake_pending: Arc<AtomicBool>,
}

// Manual impl: cloning the sender must not require `T: Clone`.
impl<T> Clone for Completions<T> {
    fn clone(&self) -> Self {
        Completions {
            tx: self.tx.clone(),
            waker: Arc::clone(&self.waker),
            wake_pending: Arc::clone(&self.wake_pending),
        }
    }
}

impl<T> Completions<T> {
    /// Queues `value` for the loop, blocking the calling thread while the channel is full.
    /// Must never be called from the loop thread itself: it would wait on its own drain.
    pub fn send(&self, value: T) -> Result<(), LoopGone> {
        self.tx.send(value).map_err(|_| LoopGone)?;
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            wake(&self.waker, &self.wake_pending);
        }
        Ok(())
    }
}

/// Wakes the loop. On failure the pending flag is cleared again so that the next
/// completion retries; a flag stuck at `true` would silence the loop for good.
fn wake(waker: &mio::Waker, wake_pending: &AtomicBool) {
    if let Err(err) = waker.wake() {
        wake_pending.store(false, Ordering::Release);
        log::error!("lanes: waking the event loop failed: {err}");
    }
}

/// The loop's end of the completion channel.
pub struct CompletionQueue<T> {
    rx: Receiver<T>,
    waker: Arc<mio::Waker>,
    wake_pending: Arc<AtomicBool>,
    capacity: usize,
}

/// Creates the completion channel. `waker` must be registered with the loop's `Poll`;
/// `capacity` bounds the completions in flight (0 is treated as 1).
pub fn completion_channel<T>(
    waker: Arc<mio::Waker>,
    capacity: usize,
) -> (Completions<T>, CompletionQueue<T>) {
    let capacity = capacity.max(1);
    let (tx, rx) = sync_channel(capacity);
    let wake_pending = Arc::new(AtomicBool::new(false));
    let completions = Completions {
        tx,
        waker: Arc::clone(&waker),
        wake_pending: Arc::clone(&wake_pending),
    };
    let queue = CompletionQueue {
        rx,
        waker,
        wake_pending,
        capacity,
    };
    (completions, queue)
}

impl<T> CompletionQueue<T> {
    /// Moves waiting completions into `out`; call it whenever the waker's token fires.
    ///
    /// The pending flag is cleared *before* receiving: a completion sent after that point
    /// either is received below or sets the flag again and wakes the loop, so none can
    /// be stranded. At most `capacity` completions are taken per call so that producers
    /// refilling as fast as the loop drains cannot starve the sockets; if the limit is
    /// reached the waker is re-armed and the rest arrive on the next poll.
    pub fn drain_into(&self, out: &mut Vec<T>) {
        self.wake_pending.swap(false, Ordering::AcqRel);
        for _ in 0..self.capacity {
            match self.rx.try_recv() {
                Ok(value) => out.push(value),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return,
            }
        }
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            wake(&self.waker, &self.wake_pending);
        }
    }
}

/// A job's cancel flag, shared between the requester (the loop) and the running job.
/// Cancelling is advisory: jobs check it between upstream reads and stop early.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// What a running job sees: its cancel flag and the way back to the loop.
pub struct JobContext<T> {
    completions: Completions<T>,
    cancel: CancelToken,
}

impl<T> JobContext<T> {
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Sends one completion (a job may send many, e.g. one per LLM chunk). Blocks this
    /// worker, never the loop, while the completion channel is full: that is what slows
    /// a stream down to the pace the loop can deliver it.
    pub fn complete(&self, value: T) -> Result<(), LoopGone> {
        self.completions.send(value)
    }

    pub fn cancel_token(&self) -> &CancelToken {
        &self.cancel
    }
}

/// Why a job could not be submitted.
#[derive(Debug, PartialEq, Eq)]
pub enum LaneError {
    /// The queue is full: shed the request now rather than let the client hang.
    Busy,
    /// The lane is shutting down and takes no new work.
    Closed,
}

impl fmt::Display for LaneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LaneError::Busy => "lane busy: its queue is full",
            LaneError::Closed => "lane closed: shutting down",
        })
    }
}

impl std::error::Error for LaneError {}

/// The completion queue was dropped: the loop has exited and nobody awaits results.
#[derive(Debug, PartialEq, Eq)]
pub struct LoopGone;

impl fmt::Display for LoopGone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("event loop gone: completion queue dropped")
    }
}

impl std::error::Error for LoopGone {}

type Work<T> = Box<dyn FnOnce(&JobContext<T>) + Send>;

struct Job<T> {
    work: Work<T>,
    if_lost: T,
    cancel: CancelToken,
}

#[derive(Default)]
struct Stats {
    queued: AtomicUsize,
    busy: AtomicUsize,
    rejected: AtomicU64,
}

/// A lane's jobs and the workers waiting for them, under one lock.
///
/// Idle workers wait on one condition variable and are woken one at a time: a
/// submission wakes a worker only when no wake-up is already on its way, and a woken
/// worker that leaves jobs behind wakes the next. A burst of jobs submitted in one loop
/// turn so costs one wake-up when one worker can run them all (a quick job, or a core
/// taken by the loop), and still spreads over as many workers as are free when each
/// job blocks. Every wake-up is a system call and, on a busy core, a context switch;
/// waking a worker per job (or sharing a receiver behind a mutex, which wakes the next
/// waiter each time one takes a job) costs those for workers that find nothing to do.
struct Queue<T> {
    state: Mutex<Waiting<T>>,
    work: Condvar,
}

struct Waiting<T> {
    jobs: VecDeque<Job<T>>,
    /// Workers blocked on `work`, the woken ones until they run. Each may take a job
    /// beyond the queue's capacity.
    idle: usize,
    /// Of those, woken and not yet running: at most one, so that a burst wakes workers
    /// one after the other, each only if the one before left work behind.
    woken: usize,
    /// False once shutdown began: nothing more is taken, the queue is run to its end.
    open: bool,
}

impl<T> Queue<T> {
    fn lock(&self) -> MutexGuard<'_, Waiting<T>> {
        // Nothing panics while holding the lock, so a poisoned one still guards a sound queue.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Unlocks, waking a sleeping worker if the jobs queued need one: some are, nobody
    /// is on the way, and somebody is asleep. The wake-up is counted under the lock and
    /// sent after it, so the woken worker does not block on it at once.
    fn unlock_and_wake(&self, mut waiting: MutexGuard<'_, Waiting<T>>) {
        let wake = !waiting.jobs.is_empty() && waiting.woken == 0 && waiting.idle > 0;
        waiting.woken += usize::from(wake);
        drop(waiting);
        if wake {
            self.work.notify_one();
        }
    }

    /// Stops taking jobs and wakes every idle worker to run the rest and exit.
    fn close(&self) {
        self.lock().open = false;
        self.work.notify_all();
    }
}

/// N worker threads behind a bounded queue.
///
/// Dropping a lane without [`Lane::shutdown`] still lets its workers finish the queued
/// jobs, but nobody waits for them.
pub struct Lane<T> {
    name: &'static str,
    queue: Arc<Queue<T>>,
    /// Jobs that may wait for a worker.
    capacity: usize,
    workers: Vec<JoinHandle<()>>,
    /// Never carries a message: every worker holds a sender and drops it on exit, so
    /// "disconnected" means all workers are done. This gives shutdown a join with a
    /// deadline, which `JoinHandle` lacks.
    exited: Receiver<Infallible>,
    stats: Arc<Stats>,
}

impl<T: Send + 'static> Lane<T> {
    /// Starts `threads` workers named `lane-{name}-{i}`, scheduled as `waking` says
    /// (see [`crate::background`]). `queue_capacity` counts jobs waiting for a worker
    /// (0 means a job is accepted only when a worker is idle).
    pub fn new(
        name: &'static str,
        threads: usize,
        queue_capacity: usize,
        waking: Waking,
        completions: Completions<T>,
    ) -> io::Result<Lane<T>> {
        if threads == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("lane {name}: needs at least one thread"),
            ));
        }
        let queue = Arc::new(Queue {
            state: Mutex::new(Waiting {
                jobs: VecDeque::new(),
                idle: 0,
                woken: 0,
                open: true,
            }),
            work: Condvar::new(),
        });
        let (exit_tx, exited) = sync_channel(0);
        let stats = Arc::new(Stats::default());
        let mut lane = Lane {
            name,
            queue,
            capacity: queue_capacity,
            workers: Vec::with_capacity(threads),
            exited,
            stats,
        };
        // On a spawn error `lane` is dropped on return, which closes the queue, so the
        // workers already started exit.
        for i in 0..threads {
            let worker = Worker {
                lane: name,
                queue: Arc::clone(&lane.queue),
                ctx: JobContext {
                    completions: completions.clone(),
                    cancel: CancelToken::default(),
                },
                stats: Arc::clone(&lane.stats),
                _alive: exit_tx.clone(),
            };
            let thread =
                background::spawn(format!("lane-{name}-{i}"), waking, move || worker.run())?;
            lane.workers.push(thread);
        }
        Ok(lane)
    }

    /// Queues `work` without ever blocking.
    ///
    /// `if_lost` is delivered as the job's completion if the job panics, so that the
    /// requester (a client waiting for an answer, a stream waiting for its end) is
    /// always told something and never waits forever.
    pub fn try_submit<F>(&self, work: F, if_lost: T) -> Result<CancelToken, LaneError>
    where
        F: FnOnce(&JobContext<T>) + Send + 'static,
    {
        let cancel = CancelToken::default();
        let mut waiting = self.queue.lock();
        if !waiting.open {
            return Err(LaneError::Closed);
        }
        if waiting.jobs.len() >= self.capacity + waiting.idle {
            drop(waiting);
            self.stats.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(LaneError::Busy);
        }
        waiting.jobs.push_back(Job {
            work: Box::new(work),
            if_lost,
            cancel: cancel.clone(),
        });
        // Counted under the lock: a worker decrements it only after taking the job.
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        self.queue.unlock_and_wake(waiting);
        Ok(cancel)
    }

    /// Jobs accepted but not yet started; with the two below, what `/metrics` shows.
    pub fn queue_depth(&self) -> usize {
        self.stats.queued.load(Ordering::Relaxed)
    }

    pub fn busy_workers(&self) -> usize {
        self.stats.busy.load(Ordering::Relaxed)
    }

    pub fn rejected_total(&self) -> u64 {
        self.stats.rejected.load(Ordering::Relaxed)
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Stops taking jobs; the workers run every job already queued, then exit. Returns
    /// true once all workers have exited, false if `deadline` passed first.
    ///
    /// Workers may be blocked in [`JobContext::complete`] until the loop drains the
    /// completion queue, so the loop should call this with short deadlines and drain
    /// between calls rather than block here for the whole drain period. Calling it again
    /// after `false` keeps waiting.
    pub fn shutdown(&mut self, deadline: Instant) -> bool {
        self.queue.close();
        let wait = deadline.saturating_duration_since(Instant::now());
        if let Err(RecvTimeoutError::Timeout) = self.exited.recv_timeout(wait) {
            return false;
        }
        for worker in self.workers.drain(..) {
            // Every worker has dropped its exit sender, so these joins return at once.
            if worker.join().is_err() {
                log::error!("lane {}: a worker thread panicked outside a job", self.name);
            }
        }
        true
    }
}

impl<T> Drop for Lane<T> {
    fn drop(&mut self) {
        self.queue.close();
    }
}

struct Worker<T> {
    lane: &'static str,
    queue: Arc<Queue<T>>,
    /// One context per worker, re-pointed at each job's cancel token.
    ctx: JobContext<T>,
    stats: Arc<Stats>,
    /// Dropped when the thread ends, however it ends; see `Lane::exited`.
    _alive: SyncSender<Infallible>,
}

impl<T> Worker<T> {
    fn run(mut self) {
        while let Some(Job {
            work,
            if_lost,
            cancel,
        }) = self.next()
        {
            self.stats.queued.fetch_sub(1, Ordering::Relaxed);
            self.stats.busy.fetch_add(1, Ordering::Relaxed);
            self.ctx.cancel = cancel;
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| work(&self.ctx))) {
                log::error!(
                    "lane {}: job panicked: {}",
                    self.lane,
                    panic_message(&*panic)
                );
                // If the loop is gone nobody is waiting for this answer anyway.
                let _ = self.ctx.complete(if_lost);
            }
            self.stats.busy.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The next job, sleeping while there is none; `None` once the lane is shut down
    /// and its queue is empty.
    fn next(&self) -> Option<Job<T>> {
        let mut waiting = self.queue.lock();
        loop {
            if let Some(job) = waiting.jobs.pop_front() {
                // Jobs left behind go to a sleeping worker: this one may block on its job.
                self.queue.unlock_and_wake(waiting);
                return Some(job);
            }
            if !waiting.open {
                return None;
            }
            waiting.idle += 1;
            waiting = self
                .queue
                .work
                .wait(waiting)
                .unwrap_or_else(PoisonError::into_inner);
            waiting.idle -= 1;
            // A spurious wake-up may come first and take the count: the notified worker
            // then wakes anyway and finds it at zero, which costs at most one extra wake.
            waiting.woken = waiting.woken.saturating_sub(1);
        }
    }
}

/// The text a panic was raised with, for the log.
pub(in crate::net) fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("non-string panic payload")
}

#[cfg(test)]
mod tests;
