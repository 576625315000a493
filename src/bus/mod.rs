//! The bus between pods (`REDIS_URL`; the design is docs/SCALE-OUT.md): frames for an
//! audience published on Redis so that every pod holding sockets of that audience
//! delivers them. Two threads of its own, started only when `REDIS_URL` is set, each
//! with one connection through the `redis` crate's sync API: the publisher
//! (`publisher.rs`), fed through a bounded queue the loop never waits on, and the
//! subscriber (`subscriber.rs`), which hands what other pods published to the loop
//! through the callback given at start (the completion channel and its waker).
//! Connecting and the back-off are in `link.rs`, channel names and the envelope in
//! `topic.rs`. The bus knows nothing of the chat: the application maps its audiences
//! to [`Topic`]s.

mod link;
mod publisher;
mod subscriber;
mod topic;

use std::fmt;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread;

use crate::ids;
use crate::metrics::Metrics;
use publisher::Outgoing;
use subscriber::{Subscriber, Wanted};
pub use topic::Topic;

/// Frames waiting for the publisher. Past this the loop drops frames for other pods
/// (counted) rather than wait: Redis is slow or gone.
const QUEUE: usize = 4096;

/// What the subscriber hands to the loop.
#[derive(Debug, PartialEq, Eq)]
pub enum Inbound {
    /// A frame another pod published for a topic this pod subscribes to.
    Frame { topic: Topic, frame: String },
    /// The subscriber connected (`true`) or lost Redis (`false`).
    Link(bool),
}

#[derive(Debug)]
pub enum BusError {
    /// `REDIS_URL` is not a Redis URL the client accepts. The text names the problem,
    /// never the URL (it may hold a password).
    Url(String),
    /// A bus thread could not be started.
    Thread(std::io::Error),
    /// The OS random source failed: no pod id.
    Random,
}

impl fmt::Display for BusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BusError::Url(problem) => write!(f, "REDIS_URL is not usable: {problem}"),
            BusError::Thread(error) => write!(f, "cannot start a Redis thread: {error}"),
            BusError::Random => f.write_str("the OS random source failed"),
        }
    }
}

impl std::error::Error for BusError {}

/// The loop's handle on the bus.
pub struct Bus {
    pod: String,
    outgoing: SyncSender<Outgoing>,
    wanted: Arc<Wanted>,
    metrics: Arc<Metrics>,
}

impl Bus {
    /// Starts both threads; Redis need not be reachable yet (they keep trying).
    /// `deliver` runs on the subscriber thread and returns false once the loop is gone.
    pub fn start(
        url: &str,
        metrics: Arc<Metrics>,
        deliver: impl Fn(Inbound) -> bool + Send + 'static,
    ) -> Result<Bus, BusError> {
        if url.starts_with("rediss://") {
            // One TLS provider for the process (ring, as for the other clients); an
            // earlier install by another client is as good.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let client = redis::Client::open(url).map_err(|error| BusError::Url(error.to_string()))?;
        let pod = ids::random_id().map_err(|_| BusError::Random)?[..16].to_owned();
        let (outgoing, queue) = sync_channel(QUEUE);
        let wanted = Arc::new(Wanted::default());
        let publishing = client.clone();
        let published = Arc::clone(&metrics);
        thread::Builder::new()
            .name("redis-pub".into())
            .spawn(move || publisher::run(&publishing, &queue, &published))
            .map_err(BusError::Thread)?;
        let subscriber = Subscriber {
            client,
            wanted: Arc::clone(&wanted),
            pod: pod.clone(),
            metrics: Arc::clone(&metrics),
            deliver: Box::new(deliver),
        };
        thread::Builder::new()
            .name("redis-sub".into())
            .spawn(move || subscriber.run())
            .map_err(BusError::Thread)?;
        log::info!("redis: cross-pod delivery on, this pod is {pod}");
        Ok(Bus {
            pod,
            outgoing,
            wanted,
            metrics,
        })
    }

    /// Hands a frame to the publisher for the other pods' sockets of `topic`; never
    /// waits. A full queue drops it (counted).
    pub fn publish(&self, topic: &Topic, frame: &str) {
        let outgoing = Outgoing {
            channel: topic.channel(),
            payload: topic::envelope(&self.pod, frame),
        };
        match self.outgoing.try_send(outgoing) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.metrics.redis.dropped.inc();
            }
        }
    }

    /// This pod now holds (`true`) or no longer holds sockets of `topic`: its channel is
    /// subscribed or unsubscribed within the subscriber's poll (20 ms).
    pub fn listen(&self, topic: &Topic, on: bool) {
        self.wanted.set(topic.channel(), on);
    }
}
