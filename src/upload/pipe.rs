//! The bounded hand-over of one upload's body from the event loop to its job on the io
//! lane. The loop pushes chunks and never waits: when more than [`HIGH_WATER`] bytes
//! are queued, `push` says so and the loop stops reading the socket. The job pulls,
//! waiting when the queue is empty; once it has drained below [`LOW_WATER`] it is told
//! to ask the loop to read again. So one upload holds at most `HIGH_WATER` plus a chunk
//! here, whatever its size, and a slow disk or S3 slows the client down through TCP.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

pub const HIGH_WATER: usize = 512 * 1024;
pub const LOW_WATER: usize = 128 * 1024;

/// A job that hears nothing for this long gives up. The loop aborts a stalled body
/// long before (its body timeout), so this only guards against a lost abort.
const PULL_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Default)]
pub struct Pipe {
    inner: Mutex<Inner>,
    ready: Condvar,
}

#[derive(Default)]
struct Inner {
    chunks: VecDeque<Vec<u8>>,
    bytes: usize,
    /// The loop was told to stop reading and waits to hear it may go on.
    paused: bool,
    complete: bool,
    aborted: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Pulled {
    /// The next chunk; `resume` asks the job to tell the loop to read again.
    Chunk { data: Vec<u8>, resume: bool },
    /// The body is complete and everything was pulled.
    End,
    /// The client went away (or stalled) mid-body.
    Aborted,
}

impl Pipe {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The loop's side: queues a chunk (`last` ends the body). True when the job is
    /// behind: read nothing more until it asks to resume.
    pub fn push(&self, chunk: Vec<u8>, last: bool) -> bool {
        let mut inner = self.lock();
        inner.bytes += chunk.len();
        if !chunk.is_empty() {
            inner.chunks.push_back(chunk);
        }
        inner.complete |= last;
        inner.paused = !last && inner.bytes >= HIGH_WATER;
        self.ready.notify_one();
        inner.paused
    }

    /// The loop's side: the body will never be complete.
    pub fn abort(&self) {
        let mut inner = self.lock();
        inner.aborted = true;
        inner.chunks.clear();
        inner.bytes = 0;
        self.ready.notify_one();
    }

    /// The job's side: the next chunk, waiting for one while the body goes on.
    pub fn pull(&self) -> Pulled {
        let mut inner = self.lock();
        loop {
            if inner.aborted {
                return Pulled::Aborted;
            }
            if let Some(data) = inner.chunks.pop_front() {
                inner.bytes -= data.len();
                let resume = inner.paused && inner.bytes <= LOW_WATER;
                if resume {
                    inner.paused = false;
                }
                return Pulled::Chunk { data, resume };
            }
            if inner.complete {
                return Pulled::End;
            }
            let (next, waited) = self
                .ready
                .wait_timeout(inner, PULL_TIMEOUT)
                .unwrap_or_else(PoisonError::into_inner);
            inner = next;
            if waited.timed_out() && inner.chunks.is_empty() && !inner.complete {
                inner.aborted = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn pauses_above_high_water_and_resumes_below_low_water() {
        let pipe = Pipe::default();
        let chunk = 64 * 1024;
        let mut pushed = 0;
        while !pipe.push(vec![0; chunk], false) {
            pushed += 1;
        }
        assert_eq!((pushed + 1) * chunk, HIGH_WATER);
        let mut resumed_at = None;
        for i in 0..=pushed {
            let Pulled::Chunk { resume, .. } = pipe.pull() else {
                panic!("a chunk");
            };
            if resume {
                resumed_at = Some(i);
                break;
            }
        }
        assert_eq!(resumed_at, Some((HIGH_WATER - LOW_WATER) / chunk - 1));
    }

    #[test]
    fn the_job_waits_for_chunks_then_sees_the_end_or_an_abort() {
        let pipe = Arc::new(Pipe::default());
        let job = {
            let pipe = Arc::clone(&pipe);
            std::thread::spawn(move || {
                let mut got = Vec::new();
                while let Pulled::Chunk { data, .. } = pipe.pull() {
                    got.extend(data);
                }
                (got, pipe.pull())
            })
        };
        pipe.push(b"ab".to_vec(), false);
        pipe.push(b"c".to_vec(), true);
        assert_eq!(job.join().expect("job"), (b"abc".to_vec(), Pulled::End));

        let pipe = Arc::new(Pipe::default());
        pipe.push(b"ab".to_vec(), false);
        pipe.abort();
        assert_eq!(pipe.pull(), Pulled::Aborted);
    }
}
