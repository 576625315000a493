//! Threads beside the event loop: lane workers, the store's checkpoints, the Redis bus.
//!
//! Each is named (it shows in `top -H` and in panic messages), and most run under
//! `SCHED_BATCH` so that waking one never preempts the loop. chatbox runs on nodes of
//! one or two cores, where the loop and the workers it wakes share a core. Under the
//! default policy a worker woken by a job submission takes that core at once: the loop
//! stops in the middle of its turn, the worker runs its job, and the loop comes back
//! only to submit the next job of the same turn and be preempted again. `SCHED_BATCH`
//! keeps a normal thread's share of the CPU (same nice level, same fairness) and only
//! gives up wake-up preemption: the loop finishes its turn, then the woken workers run,
//! each taking what queued up meanwhile. A worker that finds an idle core runs there at
//! once, as before.
//!
//! The store lane keeps the default policy ([`Waking::Preempting`]): its appends are
//! what a client's `loading` waits for, and group commit wakes it once per batch, not
//! per message. Deferred behind the loop and the checkpoints, the acknowledgement's p99
//! rose from ~14 ms to ~38 ms on a saturated core, for no measurable CPU saved.

use std::io;
use std::thread::{self, JoinHandle};

/// What waking a background thread does to the loop on a shared core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Waking {
    /// `SCHED_BATCH`: the woken thread waits for the loop's turn (or time slice) to end.
    AfterTheLoop,
    /// The default policy: the woken thread may preempt the loop.
    Preempting,
}

/// Starts a named background thread, scheduled as `waking` says. A kernel or sandbox
/// that refuses `SCHED_BATCH` costs only the preemptions it saves, so that is logged,
/// not fatal.
pub fn spawn<F, T>(name: String, waking: Waking, work: F) -> io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    thread::Builder::new().name(name).spawn(move || {
        if waking == Waking::AfterTheLoop {
            if let Err(error) = yield_to_the_loop() {
                log::debug!(
                    "{}: SCHED_BATCH refused ({error}); wake-ups may preempt the event loop",
                    thread::current().name().unwrap_or("background thread")
                );
            }
        }
        work()
    })
}

/// Moves the calling thread to `SCHED_BATCH` (priority 0: the only one the policy has).
fn yield_to_the_loop() -> io::Result<()> {
    let param = zeroed_param();
    // SAFETY: `pthread_self()` is the calling thread, alive for the call, and `param`
    // is a valid `sched_param` for the call's duration.
    let error =
        unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_BATCH, &param) };
    match error {
        0 => Ok(()),
        error => Err(io::Error::from_raw_os_error(error)),
    }
}

/// A `sched_param` at priority 0. musl's has more members than glibc's (for
/// `SCHED_SPORADIC`, which Linux lacks), so it is zeroed rather than spelled out.
fn zeroed_param() -> libc::sched_param {
    // SAFETY: `sched_param` is a C struct of integers, for which all zeroes is valid.
    unsafe { std::mem::zeroed() }
}

#[cfg(test)]
mod tests {
    use super::{spawn, zeroed_param, Waking};

    #[test]
    fn threads_are_named_and_scheduled_as_asked() {
        for (waking, policy) in [
            (Waking::AfterTheLoop, libc::SCHED_BATCH),
            (Waking::Preempting, libc::SCHED_OTHER),
        ] {
            assert_eq!(policy_of(waking), (Some("bg-test".to_owned()), policy));
        }
    }

    fn policy_of(waking: Waking) -> (Option<String>, libc::c_int) {
        spawn("bg-test".into(), waking, || {
            let mut policy = -1;
            let mut param = zeroed_param();
            // SAFETY: the calling thread's own policy, into two locals that outlive the call.
            let error = unsafe {
                libc::pthread_getschedparam(libc::pthread_self(), &mut policy, &mut param)
            };
            assert_eq!(error, 0, "pthread_getschedparam");
            (thread_name(), policy)
        })
        .expect("spawned")
        .join()
        .expect("joined")
    }

    fn thread_name() -> Option<String> {
        std::thread::current().name().map(str::to_owned)
    }
}
