//! The publisher thread: frames the loop handed over, published in the order they came,
//! several to a round trip when they queue up. While Redis is unreachable the frames are
//! dropped (the origin pod has delivered them to its own sockets; pub/sub keeps nothing
//! for later anyway), and a connection is tried again after the back-off, whether or
//! not frames are waiting, so that it is up again as soon as Redis is.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Instant;

use super::link::{self, Backoff};
use super::replay::Record;
use super::{Inbound, Side};
use crate::metrics::Metrics;

/// The most frames sent in one pipeline: bounds the round trip a burst waits for.
const BATCH_MAX: usize = 64;

pub struct Outgoing {
    pub channel: String,
    pub payload: Vec<u8>,
    /// Also appended to a reply stream, in the same round trip and before the
    /// publish (`replay.rs`).
    pub record: Option<Record>,
}

pub struct Publisher {
    pub client: redis::Client,
    pub queue: Receiver<Outgoing>,
    pub metrics: Arc<Metrics>,
    pub report: super::Report,
}

impl Publisher {
    /// Runs until the loop drops its sender (or is gone).
    pub fn run(self) {
        let mut connection: Option<redis::Connection> = None;
        let mut backoff = Backoff::default();
        let mut retry_at = Instant::now();
        // The state last reported: one log line and one report per change.
        let mut up = None;
        loop {
            if connection.is_none() && Instant::now() >= retry_at {
                match link::connect(&self.client) {
                    Ok(fresh) => {
                        backoff.reset();
                        connection = Some(fresh);
                        if !self.changed(&mut up, true, "connected") {
                            return;
                        }
                    }
                    Err(error) => {
                        retry_at = Instant::now() + backoff.next_wait();
                        let problem = format!("cannot connect ({error})");
                        if !self.changed(&mut up, false, &problem) {
                            return;
                        }
                    }
                }
            }
            let first = if connection.is_some() {
                match self.queue.recv() {
                    Ok(first) => first,
                    Err(_) => return,
                }
            } else {
                let wait = retry_at.saturating_duration_since(Instant::now());
                match self.queue.recv_timeout(wait) {
                    Ok(first) => first,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            };
            let mut batch = vec![first];
            batch.extend(self.queue.try_iter().take(BATCH_MAX - 1));
            let count = batch.len() as u64;
            let Some(open) = connection.as_mut() else {
                self.metrics.redis.dropped.add(count);
                continue;
            };
            let mut pipe = redis::pipe();
            for frame in &batch {
                if let Some(record) = &frame.record {
                    record.append_to(&mut pipe);
                }
                pipe.cmd("PUBLISH")
                    .arg(&frame.channel)
                    .arg(&frame.payload)
                    .ignore();
            }
            if let Err(error) = pipe.exec(open) {
                self.metrics.redis.dropped.add(count);
                self.metrics.redis.reconnects.inc();
                connection = None;
                // At once: a restarted Redis may be back already; the back-off follows.
                retry_at = Instant::now();
                if !self.changed(&mut up, false, &format!("publishing failed ({error})")) {
                    return;
                }
            } else {
                self.metrics.redis.published.add(count);
            }
        }
    }

    /// Logs and reports a change of state; false once the loop is gone.
    fn changed(&self, up: &mut Option<bool>, now: bool, what: &str) -> bool {
        if *up == Some(now) {
            return true;
        }
        match (now, *up) {
            (true, Some(false)) => log::info!("redis: publisher connected again"),
            (true, _) => {}
            (false, _) => log::warn!(
                "redis: publisher {what}; frames for other pods are dropped until it reconnects"
            ),
        }
        *up = Some(now);
        (self.report)(Inbound::Link(Side::Publisher, now))
    }
}
