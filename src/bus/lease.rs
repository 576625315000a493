//! The session lease (docs/SCALE-OUT.md, "One reply at a time"): `chatbox:lease:{id}`
//! holds the id of the pod whose reply streams for that session, so that two devices on
//! two pods cannot start two replies. Its own thread and connection, fed through a
//! bounded queue the loop never waits on; each answer goes back to the loop like what
//! the subscriber hears. The thread renews every lease it holds until told to release
//! it, so the loop keeps no timers for it; a pod that dies stops renewing, and its
//! leases expire after `TTL_MS`.
//!
//! While Redis is unreachable every request is answered [`Lease::Unavailable`] at once
//! (after at most one connection attempt per back-off): the pod then behaves as a
//! single pod would, which is what it is for the length of the outage.

use std::collections::HashSet;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::link::{self, Backoff};
use super::Inbound;
use crate::metrics::Metrics;

/// How long a lease outlives its last renewal. Fixed rather than a setting: it only
/// bounds how long a session whose pod was killed mid-reply waits before another pod
/// answers it, and it must stay well above a renewal round trip under load; 10 s is
/// both, and no operator has a reason to tune it apart from `LLM_STREAM_TIMEOUT`.
const TTL_MS: u64 = 10_000;
/// Renewed three times per TTL: two renewals in a row may fail (an `IO_TIMEOUT` each)
/// before the lease lapses under a reply still streaming.
const RENEW_EVERY: Duration = Duration::from_millis(TTL_MS / 3);

const KEY: &str = "chatbox:lease:";

/// Takes the lease when it is free, keeps it (a new TTL) when this pod holds it already;
/// 1 then, 2 when it was released rather than lapsed, 0 when another pod holds it. One
/// script serves taking and renewing, so that a renewal after Redis lost the key
/// (restarted empty) takes it again.
const TAKE: &str = "local v = redis.call('GET', KEYS[1]) \
     if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end \
     if v and v ~= '-' then return 0 end \
     redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) \
     if v then return 2 end return 1";
/// Marks the lease released (`-`, for a TTL) only if this pod still holds it: one that
/// lapsed and was taken by another pod is theirs. The mark tells a pod that mirrored
/// the reply and missed its end that it ended, rather than its pod dying.
const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
     redis.call('SET', KEYS[1], '-', 'PX', ARGV[2]) return 1 end return 0";

/// The answer to a request for a session's lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lease {
    /// This pod holds it (renewed by the thread until released).
    Granted,
    /// Granted, and the pod before had released it (its reply ended) rather than let
    /// it lapse.
    Freed,
    /// Another pod holds it: its reply streams there.
    Held,
    /// Redis could not be asked: proceed as a single pod (counted).
    Unavailable,
}

pub enum Ask {
    Take(String),
    Release(String),
}

pub struct Leaser {
    pub client: redis::Client,
    pub pod: String,
    pub queue: Receiver<Ask>,
    pub metrics: Arc<Metrics>,
    pub report: super::Report,
}

/// The thread's connection, and when to try again after losing it.
struct Link {
    connection: Option<redis::Connection>,
    backoff: Backoff,
    retry_at: Instant,
}

impl Leaser {
    /// Runs until the loop drops its sender (or is gone).
    pub fn run(self) {
        let mut link = Link {
            connection: None,
            backoff: Backoff::default(),
            retry_at: Instant::now(),
        };
        let mut held = HashSet::new();
        let mut renew_at = Instant::now() + RENEW_EVERY;
        loop {
            // Connected between requests, never on one's time: while Redis is away a
            // request is answered at once.
            let mut next = renew_at;
            if link.connection.is_none() {
                if Instant::now() >= link.retry_at {
                    self.connect(&mut link);
                }
                if link.connection.is_none() {
                    next = next.min(link.retry_at);
                }
            }
            let wait = next.saturating_duration_since(Instant::now());
            match self.queue.recv_timeout(wait) {
                Ok(Ask::Take(session_id)) => {
                    let answer = match self.call(&mut link, TAKE, &session_id) {
                        Some(0) => Lease::Held,
                        Some(taken) => {
                            held.insert(session_id.clone());
                            if taken == 2 {
                                Lease::Freed
                            } else {
                                Lease::Granted
                            }
                        }
                        None => {
                            self.metrics.redis.unleased.inc();
                            Lease::Unavailable
                        }
                    };
                    let inbound = Inbound::Lease { session_id, answer };
                    if !(self.report)(inbound) {
                        return;
                    }
                }
                Ok(Ask::Release(session_id)) => {
                    if held.remove(&session_id) {
                        self.call(&mut link, RELEASE, &session_id);
                    }
                }
                Err(RecvTimeoutError::Timeout) if Instant::now() >= renew_at => {
                    renew_at = Instant::now() + RENEW_EVERY;
                    held.retain(|session_id| self.renew(&mut link, session_id));
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Keeps a held lease; false once another pod took it (it lapsed meanwhile). A
    /// renewal Redis could not answer keeps it: the next one may.
    fn renew(&self, link: &mut Link, session_id: &str) -> bool {
        let kept = self.call(link, TAKE, session_id) != Some(0);
        if !kept {
            log::warn!("session {session_id}: its lease lapsed and another pod took it");
        }
        kept
    }

    /// Runs one of the scripts on the session's key; `None` while Redis is away.
    fn call(&self, link: &mut Link, script: &str, session_id: &str) -> Option<i64> {
        let connection = link.connection.as_mut()?;
        let result = redis::cmd("EVAL")
            .arg(script)
            .arg(1)
            .arg(format!("{KEY}{session_id}"))
            .arg(&self.pod)
            .arg(TTL_MS)
            .query::<i64>(connection);
        match result {
            Ok(answer) => Some(answer),
            Err(error) => {
                link.connection = None;
                self.metrics.redis.reconnects.inc();
                self.lost(link, &error.to_string());
                None
            }
        }
    }

    fn connect(&self, link: &mut Link) {
        match link::connect(&self.client) {
            Ok(fresh) => {
                if !link.backoff.fresh() {
                    log::info!("redis: lease connection up again");
                }
                link.backoff.reset();
                link.connection = Some(fresh);
            }
            Err(error) => self.lost(link, &error.to_string()),
        }
    }

    /// Notes a failure: the next attempt waits for the back-off, and the first failure
    /// of an outage is logged.
    fn lost(&self, link: &mut Link, error: &str) {
        if link.backoff.fresh() {
            log::warn!(
                "redis: lease connection failed ({error}); replies start without a lease until it is back"
            );
        }
        link.retry_at = Instant::now() + link.backoff.next_wait();
    }
}
