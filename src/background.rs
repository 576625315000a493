//! Threads beside the event loop: lane workers, the store's checkpoints, the Redis bus.
//!
//! Each is named (it shows in `top -H` and in panic messages) and runs under
//! `SCHED_BATCH`, so that waking one never preempts the loop. chatbox runs on nodes of
//! one or two cores, where the loop and the workers it wakes share a core. Under the
//! default policy a worker woken by a job submission takes that core at once: the loop
//! stops in the middle of its turn, the worker runs its job, and the loop comes back
//! only to submit the next job of the same turn and be preempted again (issue 18 measured
//! 0.84× the server CPU per chat exchange without those switches). `SCHED_BATCH` keeps a
//! normal thread's share of the CPU (same nice level, same fairness) and only gives up
//! wake-up preemption: the loop finishes its turn, then the woken workers run, each
//! taking what queued up meanwhile. A worker that finds an idle core runs there at once,
//! as before.

use std::io;
use std::thread::{self, JoinHandle};

/// Starts a named background thread under `SCHED_BATCH`. A kernel or sandbox that
/// refuses the policy costs only the preemptions it saves, so that is logged, not fatal.
pub fn spawn<F, T>(name: String, work: F) -> io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    thread::Builder::new().name(name).spawn(move || {
        if let Err(error) = yield_to_the_loop() {
            log::debug!(
                "{}: SCHED_BATCH refused ({error}); wake-ups may preempt the event loop",
                thread::current().name().unwrap_or("background thread")
            );
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
    use super::{spawn, zeroed_param};

    #[test]
    fn threads_are_named_and_batch_scheduled() {
        let seen = spawn("bg-test".into(), || {
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
        .expect("joined");
        assert_eq!(seen, (Some("bg-test".to_owned()), libc::SCHED_BATCH));
    }

    fn thread_name() -> Option<String> {
        std::thread::current().name().map(str::to_owned)
    }
}
