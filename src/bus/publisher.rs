//! The publisher thread: frames the loop handed over, published in the order they came,
//! several to a round trip when they queue up. While Redis is unreachable the frames are
//! dropped (the origin pod has delivered them to its own sockets; pub/sub keeps nothing
//! for later anyway), and a connection is tried again after the back-off.

use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Instant;

use super::link::{self, Backoff};
use crate::metrics::Metrics;

/// The most frames sent in one pipeline: bounds the round trip a burst waits for.
const BATCH_MAX: usize = 64;

pub struct Outgoing {
    pub channel: String,
    pub payload: Vec<u8>,
}

/// Runs until the loop drops its sender.
pub fn run(client: &redis::Client, queue: &Receiver<Outgoing>, metrics: &Arc<Metrics>) {
    let mut connection: Option<redis::Connection> = None;
    let mut backoff = Backoff::default();
    let mut retry_at = Instant::now();
    let mut down = false;
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        batch.extend(queue.try_iter().take(BATCH_MAX - 1));
        let count = batch.len() as u64;
        if connection.is_none() && Instant::now() >= retry_at {
            match link::connect(client) {
                Ok(fresh) => {
                    if down {
                        log::info!("redis: publisher connected again");
                        down = false;
                    }
                    backoff.reset();
                    connection = Some(fresh);
                }
                Err(error) => {
                    retry_at = Instant::now() + backoff.next_wait();
                    if !down {
                        log::warn!("redis: publisher cannot connect ({error}); frames for other pods are dropped until it can");
                        down = true;
                    }
                }
            }
        }
        let Some(open) = connection.as_mut() else {
            metrics.redis.dropped.add(count);
            continue;
        };
        let mut pipe = redis::pipe();
        for frame in &batch {
            pipe.cmd("PUBLISH")
                .arg(&frame.channel)
                .arg(&frame.payload)
                .ignore();
        }
        match pipe.exec(open) {
            Ok(()) => metrics.redis.published.add(count),
            Err(error) => {
                metrics.redis.dropped.add(count);
                metrics.redis.reconnects.inc();
                connection = None;
                retry_at = Instant::now() + backoff.next_wait();
                if !down {
                    log::warn!("redis: publishing failed ({error}); reconnecting");
                    down = true;
                }
            }
        }
    }
}
