//! The lanes' tests: a real `mio::Poll` woken by real worker threads.

use super::*;
use mio::{Events, Poll, Token};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

const WAKE: Token = Token(7);
/// Failure guard only: no test waits this long when it passes.
const GUARD: Duration = Duration::from_secs(10);

struct TestLoop {
    poll: Poll,
    events: Events,
    queue: CompletionQueue<i32>,
}

fn test_loop(capacity: usize) -> (TestLoop, Completions<i32>) {
    let poll = Poll::new().unwrap();
    let waker = Arc::new(mio::Waker::new(poll.registry(), WAKE).unwrap());
    let (completions, queue) = completion_channel(waker, capacity);
    let events = Events::with_capacity(8);
    (
        TestLoop {
            poll,
            events,
            queue,
        },
        completions,
    )
}

impl TestLoop {
    /// Polls like the real loop: drains only when the waker token fires, so a lost
    /// wake-up shows up as a timeout.
    fn collect(&mut self, n: usize) -> Vec<i32> {
        let deadline = Instant::now() + GUARD;
        let mut got = Vec::new();
        while got.len() < n {
            let left = deadline
                .checked_duration_since(Instant::now())
                .expect("timed out waiting for completions: lost wake-up?");
            self.poll.poll(&mut self.events, Some(left)).unwrap();
            if self.events.iter().any(|e| e.token() == WAKE) {
                self.queue.drain_into(&mut got);
            }
        }
        got
    }
}

/// Submits a job that completes 0 only once the returned sender is used (or
/// dropped), and waits until a worker has started it.
fn occupy_the_worker(lane: &Lane<i32>) -> mpsc::Sender<()> {
    let (started_tx, started) = mpsc::channel();
    let (release, gate) = mpsc::channel::<()>();
    lane.try_submit(
        move |ctx| {
            started_tx.send(()).unwrap();
            let _ = gate.recv();
            ctx.complete(0).unwrap();
        },
        -1,
    )
    .unwrap();
    started.recv_timeout(GUARD).unwrap();
    release
}

#[test]
fn full_lane_returns_busy() {
    let (mut test, completions) = test_loop(16);
    let mut lane = Lane::new("busy", 1, 2, Waking::AfterTheLoop, completions).unwrap();
    let release = occupy_the_worker(&lane);
    for i in 1..=2 {
        lane.try_submit(move |ctx| ctx.complete(i).unwrap(), -1)
            .unwrap();
    }
    assert_eq!(lane.queue_depth(), 2);
    assert_eq!(lane.busy_workers(), 1);
    for _ in 0..3 {
        let err = lane.try_submit(|_| unreachable!(), -1).unwrap_err();
        assert_eq!(err, LaneError::Busy);
    }
    assert_eq!(lane.rejected_total(), 3);
    release.send(()).unwrap();
    assert_eq!(test.collect(3), vec![0, 1, 2]);
    assert!(lane.shutdown(Instant::now() + GUARD));
    assert_eq!((lane.queue_depth(), lane.busy_workers()), (0, 0));
}

#[test]
fn completion_wakes_the_poll() {
    let (mut test, completions) = test_loop(4);
    let mut lane = Lane::new("wake", 2, 4, Waking::AfterTheLoop, completions).unwrap();
    assert_eq!(lane.name(), "wake");
    lane.try_submit(|ctx| ctx.complete(42).unwrap(), -1)
        .unwrap();
    test.poll.poll(&mut test.events, Some(GUARD)).unwrap();
    assert!(test.events.iter().any(|e| e.token() == WAKE));
    let mut got = Vec::new();
    test.queue.drain_into(&mut got);
    assert_eq!(got, vec![42]);
    assert!(lane.shutdown(Instant::now() + GUARD));
}

#[test]
fn burst_is_drained_after_one_wake() {
    let (mut test, completions) = test_loop(64);
    let mut lane = Lane::new("burst", 1, 1, Waking::AfterTheLoop, completions).unwrap();
    let (done_tx, done) = mpsc::channel();
    lane.try_submit(
        move |ctx| {
            (0..50).for_each(|i| ctx.complete(i).unwrap());
            done_tx.send(()).unwrap();
        },
        -1,
    )
    .unwrap();
    done.recv_timeout(GUARD).unwrap();
    test.poll.poll(&mut test.events, Some(GUARD)).unwrap();
    assert!(test.events.iter().any(|e| e.token() == WAKE));
    let mut got = Vec::new();
    test.queue.drain_into(&mut got);
    assert_eq!(got, (0..50).collect::<Vec<_>>());
    assert!(lane.shutdown(Instant::now() + GUARD));
}

#[test]
fn full_completion_channel_slows_the_job_and_loses_nothing() {
    let (mut test, completions) = test_loop(4);
    let mut lane = Lane::new("stream", 2, 2, Waking::AfterTheLoop, completions).unwrap();
    for base in [0, 1000] {
        lane.try_submit(
            move |ctx| (base..base + 500).for_each(|i| ctx.complete(i).unwrap()),
            -1,
        )
        .unwrap();
    }
    let mut got = test.collect(1000);
    got.sort_unstable();
    let want: Vec<i32> = (0..500).chain(1000..1500).collect();
    assert_eq!(got, want);
    assert!(lane.shutdown(Instant::now() + GUARD));
}

#[test]
fn panicking_job_delivers_if_lost_and_lane_keeps_working() {
    let (mut test, completions) = test_loop(4);
    let mut lane = Lane::new("panic", 1, 4, Waking::AfterTheLoop, completions).unwrap();
    lane.try_submit(|_| panic!("deliberate test panic"), -1)
        .unwrap();
    lane.try_submit(|ctx| ctx.complete(7).unwrap(), -2).unwrap();
    assert_eq!(test.collect(2), vec![-1, 7]);
    assert!(lane.shutdown(Instant::now() + GUARD));
}

#[test]
fn running_job_observes_cancel() {
    let (mut test, completions) = test_loop(4);
    let mut lane = Lane::new("cancel", 1, 1, Waking::AfterTheLoop, completions).unwrap();
    let (started_tx, started) = mpsc::channel();
    let (release, gate) = mpsc::channel::<()>();
    let token = lane
        .try_submit(
            move |ctx| {
                started_tx.send(ctx.is_cancelled()).unwrap();
                gate.recv().unwrap();
                ctx.complete(i32::from(ctx.cancel_token().is_cancelled()))
                    .unwrap();
            },
            -1,
        )
        .unwrap();
    assert!(!started.recv_timeout(GUARD).unwrap());
    token.cancel();
    release.send(()).unwrap();
    assert_eq!(test.collect(1), vec![1]);
    assert!(lane.shutdown(Instant::now() + GUARD));
}

#[test]
fn shutdown_runs_every_queued_job() {
    let (mut test, completions) = test_loop(16);
    let mut lane = Lane::new("drain", 1, 8, Waking::AfterTheLoop, completions).unwrap();
    let release = occupy_the_worker(&lane);
    for i in 1..=8 {
        lane.try_submit(move |ctx| ctx.complete(i).unwrap(), -1)
            .unwrap();
    }
    // The first job is still blocked: shutdown begins but cannot finish yet.
    assert!(!lane.shutdown(Instant::now()));
    assert_eq!(
        lane.try_submit(|_| unreachable!(), -1).unwrap_err(),
        LaneError::Closed
    );
    assert_eq!(lane.queue_depth(), 8);
    release.send(()).unwrap();
    assert!(lane.shutdown(Instant::now() + GUARD));
    assert_eq!(test.collect(9), (0..=8).collect::<Vec<_>>());
}

#[test]
fn complete_reports_loop_gone() {
    let (test, completions) = test_loop(4);
    let mut lane = Lane::new("gone", 1, 1, Waking::AfterTheLoop, completions).unwrap();
    drop(test);
    let (result_tx, result) = mpsc::channel();
    lane.try_submit(move |ctx| result_tx.send(ctx.complete(1)).unwrap(), -1)
        .unwrap();
    assert_eq!(result.recv_timeout(GUARD).unwrap(), Err(LoopGone));
    assert!(lane.shutdown(Instant::now() + GUARD));
}

/// Workers are woken one after the other, each by the one before when it leaves jobs
/// behind: jobs that block must still run side by side on every idle worker.
#[test]
fn a_burst_of_blocking_jobs_spreads_over_every_worker() {
    const WORKERS: usize = 4;
    let (mut test, completions) = test_loop(16);
    let mut lane = Lane::new("spread", WORKERS, 0, Waking::AfterTheLoop, completions).unwrap();
    // Let every worker reach its wait: only then does capacity 0 take four jobs.
    let deadline = Instant::now() + GUARD;
    while lane.queue.lock().idle < WORKERS {
        assert!(Instant::now() < deadline, "workers never went idle");
        thread::yield_now();
    }
    let barrier = Arc::new(std::sync::Barrier::new(WORKERS));
    for i in 0..WORKERS {
        let barrier = Arc::clone(&barrier);
        lane.try_submit(
            move |ctx| {
                // Returns only once all four jobs run at the same time.
                barrier.wait();
                ctx.complete(i32::try_from(i).unwrap()).unwrap();
            },
            -1,
        )
        .unwrap();
    }
    assert_eq!(
        lane.try_submit(|_| unreachable!(), -1).unwrap_err(),
        LaneError::Busy,
        "capacity 0: a job only for an idle worker"
    );
    let mut got = test.collect(WORKERS);
    got.sort_unstable();
    assert_eq!(got, vec![0, 1, 2, 3]);
    assert!(lane.shutdown(Instant::now() + GUARD));
}
