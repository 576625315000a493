//! The end of a store job, as something a lane thread can wait for. At shutdown a
//! session's last writes go to the lane as one job that must not start before the
//! session's write in flight has ended, and no loop is left to say when that is: the
//! job waits for it on its own thread.

use std::sync::{Arc, Condvar, Mutex, PoisonError};

type Flag = Arc<(Mutex<State>, Condvar)>;

#[derive(Default)]
struct State {
    ended: bool,
    /// Threads in `Ended::wait`. Nearly every job ends with nobody waiting (waiting is for
    /// shutdown), and a notification costs a system call even then: two per chat exchange.
    waiters: usize,
}

/// Waits for a job's end; cheap to clone.
#[derive(Clone)]
pub struct Ended(Flag);

/// Held by the job (in its closure, or with its append in a batch). Dropping it marks
/// the end, however the job ends: it ran, it panicked, its lane refused it, or its
/// batch was never sent. So a waiter is never left waiting for a job that is gone.
pub struct Ending(Flag);

pub fn pair() -> (Ended, Ending) {
    let flag = Arc::new((Mutex::new(State::default()), Condvar::new()));
    (Ended(Arc::clone(&flag)), Ending(flag))
}

impl Ended {
    pub fn wait(&self) {
        let (state, changed) = &*self.0;
        let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
        state.waiters += 1;
        while !state.ended {
            state = changed.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        state.waiters -= 1;
    }
}

impl Drop for Ending {
    fn drop(&mut self) {
        let (state, changed) = &*self.0;
        let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
        state.ended = true;
        let waited = state.waiters > 0;
        drop(state);
        if waited {
            changed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::thread;

    #[test]
    fn a_waiter_goes_on_once_the_job_is_gone() {
        let (ended, ending) = pair();
        let went_on = Arc::new(AtomicBool::new(false));
        let waiter = {
            let went_on = Arc::clone(&went_on);
            thread::spawn(move || {
                ended.wait();
                went_on.store(true, Ordering::SeqCst);
            })
        };
        assert!(!went_on.load(Ordering::SeqCst), "the job still runs");
        drop(ending);
        waiter.join().expect("the waiter ends");
        assert!(went_on.load(Ordering::SeqCst));
    }

    #[test]
    fn a_job_that_ended_before_the_wait_does_not_block_it() {
        let (ended, ending) = pair();
        drop(ending);
        ended.wait();
    }
}
