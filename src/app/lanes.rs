//! The application's worker lanes and what they send back to the loop.

use std::time::Instant;

use crate::background::Waking::{AfterTheLoop, Preempting};
use crate::bus::Inbound;
use crate::chat::jobs::{self, JobId};
use crate::config::{LlmConfig, StoreConfig};
use crate::http::sessions::Outcome;
use crate::metrics::{LaneState, RequestTimer};
use crate::net::http::Response;
use crate::net::lanes::{Completions, Lane};
use crate::net::slab::ConnId;
use crate::store::{self, StoreError};

/// Each lane's queue holds this many jobs before `try_submit` answers busy (spec/config.md).
const LANE_QUEUE: usize = 1024;
/// Threads of the `rest` lane. The sessions API is a page load now and then, not a
/// stream of work; two threads keep one slow read from holding up the next.
const REST_WORKERS: usize = 2;

/// An HTTP request handed to a lane: the connection waiting for the answer, the CORS
/// origin the answer must carry, and the request's timer.
#[derive(Clone, Debug)]
pub struct Waiting {
    pub conn: ConnId,
    pub origin: Option<String>,
    pub timer: RequestTimer,
}

/// What lanes send back to the loop.
pub enum Done {
    /// The answer to an HTTP request that was handed to a lane.
    Reply(Waiting, Response),
    /// A sessions API call; it may have ended a session the chat core must hear about.
    Sessions(Waiting, Outcome),
    /// A chat job's outcome (store operation, LLM chunk or end, or the job lost); the
    /// executor pairs it with the job's continuation.
    Job(JobId, jobs::Outcome),
    /// A batch of appends has been answered (or lost with these jobs, if its job died):
    /// the next batch may go.
    AppendBatch { lost: Vec<JobId> },
    /// The store's answer to a readiness ping.
    StoreHealth(Result<(), StoreError>),
    /// The active sessions in the store at start-up, where the gauge starts.
    ActiveSessions(store::Result<u64>),
    /// An upload's job ended (stored, refused or abandoned): its answer, and the
    /// connection whose slot it frees.
    Upload(Waiting, Response),
    /// An upload's job drained its pipe: the loop may read that connection again.
    UploadResume(ConnId),
    /// What the Redis bus's subscriber received (`REDIS_URL` only).
    Bus(Inbound),
}

/// Separate lanes so one kind of blocking work cannot starve another.
pub struct Lanes {
    /// The chat's store work: its writes (appends, model changes, the idle sweep) are
    /// acknowledged to users, so nothing else queues here.
    pub store: Lane<Done>,
    /// The store calls of the HTTP sessions API, shared transcripts and the admin API's
    /// reads: a client looping on them fills this queue (and gets 503), never the chat's.
    pub rest: Lane<Done>,
    pub llm: Lane<Done>,
    /// Uploads (a job per upload in progress, for as long as its body streams), file
    /// downloads and deletions, email and SMS. Always started: the local upload
    /// backend is the default.
    pub io: Lane<Done>,
}

impl Lanes {
    pub fn start(
        store: &StoreConfig,
        llm: &LlmConfig,
        io_workers: usize,
        completions: &Completions<Done>,
    ) -> std::io::Result<Lanes> {
        let lane = |name, threads, waking| {
            Lane::new(name, threads, LANE_QUEUE, waking, completions.clone())
        };
        Ok(Lanes {
            // What a client's `loading` waits for, woken once per group commit: it may
            // preempt the loop (`crate::background`); the others wait for its turn.
            store: lane("store", store.workers, Preempting)?,
            rest: lane("rest", REST_WORKERS, AfterTheLoop)?,
            llm: lane("llm", llm.max_concurrent, AfterTheLoop)?,
            io: lane("io", io_workers, AfterTheLoop)?,
        })
    }

    fn all(&self) -> impl Iterator<Item = &Lane<Done>> {
        [&self.store, &self.rest, &self.llm, &self.io].into_iter()
    }

    /// What `/metrics` shows of each lane.
    pub fn states(&self) -> Vec<LaneState> {
        self.all()
            .map(|lane| LaneState {
                name: lane.name(),
                queue_depth: lane.queue_depth(),
                rejected: lane.rejected_total(),
            })
            .collect()
    }

    pub fn is_idle(&self) -> bool {
        self.all()
            .all(|lane| lane.queue_depth() == 0 && lane.busy_workers() == 0)
    }

    /// Lets queued work (store writes above all) finish, up to `deadline`.
    pub fn shutdown(&mut self, deadline: Instant) -> bool {
        // Every lane is asked, even after one fails to finish in time.
        let joined: Vec<bool> = [&mut self.store, &mut self.rest, &mut self.llm, &mut self.io]
            .into_iter()
            .map(|lane| lane.shutdown(deadline))
            .collect();
        joined.iter().all(|&done| done)
    }
}
