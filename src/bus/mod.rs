//! The bus between pods (`REDIS_URL`; the design is docs/SCALE-OUT.md): frames for an
//! audience published on Redis so that every pod holding sockets of that audience
//! delivers them. Two threads of its own, started only when `REDIS_URL` is set, each
//! with one connection through the `redis` crate's sync API: the publisher
//! (`publisher.rs`), fed through a bounded queue the loop never waits on, and the
//! subscriber (`subscriber.rs`), which hands what other pods published to the loop
//! through the callback given at start (the completion channel and its waker).
//! A third thread (`lease.rs`) takes, renews and releases the session leases that keep
//! one reply at a time per session across pods. Connecting and the back-off are in
//! `link.rs`, channel names and the envelope in `topic.rs`, the other pods' socket
//! counts in `presence.rs`, the takeover claims (run on the store lane) in `claim.rs`.
//! The bus knows nothing of the chat: the application maps its audiences to [`Topic`]s.

mod claim;
mod lease;
mod link;
mod presence;
mod publisher;
mod replay;
mod subscriber;
mod topic;

use std::fmt;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use crate::background::{self, Waking};
use crate::ids;
use crate::metrics::Metrics;
pub use claim::{Claim, Claims};
pub use lease::Lease;
use lease::{Ask, Leaser};
pub use presence::{Heard, Presence};
use publisher::{Outgoing, Publisher};
use replay::Record;
use subscriber::{Subscriber, Wanted};
use topic::Carried;
pub use topic::Topic;

/// Frames waiting for the publisher. Past this the loop drops frames for other pods
/// (counted) rather than wait: Redis is slow or gone.
const QUEUE: usize = 4096;
/// Lease requests waiting for their thread; past this a reply starts without one
/// (counted), as when Redis is gone.
const LEASE_QUEUE: usize = 1024;

/// What the subscriber hands to the loop.
#[derive(Debug, PartialEq, Eq)]
pub enum Inbound {
    /// A frame another pod published for a topic this pod subscribes to.
    Frame { topic: Topic, frame: String },
    /// News another pod published about a topic this pod subscribes to.
    News { topic: Topic, news: String },
    /// The reply stream of a session this pod just subscribed to: the news it holds,
    /// oldest first (empty when none), before anything the channel brings after.
    Replay {
        session_id: String,
        entries: Vec<String>,
    },
    /// The answer to [`Bus::take_lease`] for a session.
    Lease { session_id: String, answer: Lease },
    /// One of the connections came up (`true`) or lost Redis (`false`); see
    /// [`Bus::link`].
    Link(Side, bool),
}

/// Which of the bus's two connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Publisher,
    Subscriber,
}

/// How the bus threads reach the loop; false once the loop is gone.
type Report = Arc<dyn Fn(Inbound) -> bool + Send + Sync>;

#[derive(Debug)]
pub enum BusError {
    /// `REDIS_URL` is not a Redis URL the client accepts. The text names the problem,
    /// never the URL (it may hold a password).
    Url(String),
    /// A bus thread could not be started.
    Thread(std::io::Error),
}

impl fmt::Display for BusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BusError::Url(problem) => write!(f, "REDIS_URL is not usable: {problem}"),
            BusError::Thread(error) => write!(f, "cannot start a Redis thread: {error}"),
        }
    }
}

impl std::error::Error for BusError {}

/// The loop's handle on the bus.
pub struct Bus {
    pod: String,
    outgoing: SyncSender<Outgoing>,
    leases: SyncSender<Ask>,
    /// Answers a lease request the thread could not take, straight to the loop.
    report: Report,
    wanted: Arc<Wanted>,
    metrics: Arc<Metrics>,
    /// How long a reply stream outlives its last entry (`RECONNECT_TIMEOUT`).
    replay_ttl_ms: u64,
    /// Which connections are up, publisher then subscriber.
    up: [bool; 2],
    presence: Presence,
    claims: Arc<Claims>,
}

impl Bus {
    /// Starts both threads; Redis need not be reachable yet (they keep trying).
    /// `deliver` runs on the subscriber thread and returns false once the loop is gone.
    pub fn start(
        url: &str,
        replay_ttl: Duration,
        metrics: Arc<Metrics>,
        deliver: impl Fn(Inbound) -> bool + Send + Sync + 'static,
    ) -> Result<Bus, BusError> {
        if url.starts_with("rediss://") {
            // One TLS provider for the process (ring, as for the other clients); an
            // earlier install by another client is as good.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let client = redis::Client::open(url).map_err(|error| BusError::Url(error.to_string()))?;
        let pod = ids::random_id()[..16].to_owned();
        let (outgoing, queue) = sync_channel(QUEUE);
        let wanted = Arc::new(Wanted::default());
        let report: Report = Arc::new(deliver);
        let publisher = Publisher {
            client: client.clone(),
            queue,
            metrics: Arc::clone(&metrics),
            report: Arc::clone(&report),
        };
        background::spawn("redis-pub".into(), Waking::AfterTheLoop, move || {
            publisher.run()
        })
        .map_err(BusError::Thread)?;
        let (leases, queue) = sync_channel(LEASE_QUEUE);
        let leaser = Leaser {
            client: client.clone(),
            pod: pod.clone(),
            queue,
            metrics: Arc::clone(&metrics),
            report: Arc::clone(&report),
        };
        background::spawn("redis-lease".into(), Waking::AfterTheLoop, move || {
            leaser.run()
        })
        .map_err(BusError::Thread)?;
        let claims = Arc::new(Claims::new(client.clone()));
        let subscriber = Subscriber {
            client,
            wanted: Arc::clone(&wanted),
            pod: pod.clone(),
            metrics: Arc::clone(&metrics),
            deliver: Arc::clone(&report),
        };
        background::spawn("redis-sub".into(), Waking::AfterTheLoop, move || {
            subscriber.run()
        })
        .map_err(BusError::Thread)?;
        log::info!("redis: cross-pod delivery on, this pod is {pod}");
        Ok(Bus {
            pod,
            outgoing,
            leases,
            report,
            wanted,
            metrics,
            replay_ttl_ms: u64::try_from(replay_ttl.as_millis()).unwrap_or(u64::MAX),
            up: [false; 2],
            presence: Presence::default(),
            claims,
        })
    }

    /// Notes a connection's state; returns whether both are up, which is when frames
    /// cross pods both ways (`chatbox_redis_up`).
    pub fn link(&mut self, side: Side, up: bool) -> bool {
        self.up[side as usize] = up;
        let both = self.is_up();
        self.metrics.redis.set_up(both);
        both
    }

    /// The takeover claims, for the store lane.
    pub fn claims(&self) -> Arc<Claims> {
        Arc::clone(&self.claims)
    }

    /// Whether both connections are up: what other pods publish reaches this one.
    pub fn is_up(&self) -> bool {
        self.up.iter().all(|&up| up)
    }

    /// Hands a frame to the publisher for the other pods' sockets of `topic`; never
    /// waits. A full queue drops it (counted).
    pub fn publish(&self, topic: &Topic, frame: &str) {
        self.send(topic, Carried::Frame, frame);
    }

    /// Hands news about `topic` to the publisher for the other pods, like a frame.
    pub fn publish_news(&self, topic: &Topic, news: &str) {
        self.send(topic, Carried::News, news);
    }

    /// Hands news of the reply streaming here for `session_id` to the publisher, and
    /// to the session's reply stream with it (`fresh`: the reply starts, the previous
    /// one's entries go).
    pub fn publish_reply_news(&self, session_id: &str, news: &str, fresh: bool) {
        let record = Record {
            key: replay::key(session_id),
            fresh,
            entry: news.to_owned(),
            ttl_ms: self.replay_ttl_ms,
        };
        let topic = Topic::Session(session_id.to_owned());
        self.enqueue(&topic, Carried::News, news, Some(record));
    }

    fn send(&self, topic: &Topic, carried: Carried, text: &str) {
        self.enqueue(topic, carried, text, None);
    }

    fn enqueue(&self, topic: &Topic, carried: Carried, text: &str, record: Option<Record>) {
        let outgoing = Outgoing {
            channel: topic.channel(),
            payload: topic::envelope(&self.pod, carried, text),
            record,
        };
        match self.outgoing.try_send(outgoing) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.metrics.redis.dropped.inc();
            }
        }
    }

    /// Asks for the session's lease before a reply starts here; the answer comes back
    /// as [`Inbound::Lease`], never at once. A full queue answers `Unavailable`.
    pub fn take_lease(&self, session_id: &str) {
        if self
            .leases
            .try_send(Ask::Take(session_id.to_owned()))
            .is_err()
        {
            self.metrics.redis.unleased.inc();
            let answer = Lease::Unavailable;
            (self.report)(Inbound::Lease {
                session_id: session_id.to_owned(),
                answer,
            });
        }
    }

    /// The reply ended: the lease is released (if this pod still holds it). Lost with a
    /// full queue, it expires by itself.
    pub fn release_lease(&self, session_id: &str) {
        let _ = self.leases.try_send(Ask::Release(session_id.to_owned()));
    }

    /// This pod now holds (`true`) or no longer holds sockets of `topic`: its channel is
    /// subscribed or unsubscribed within the subscriber's poll (20 ms).
    pub fn listen(&self, topic: &Topic, on: bool) {
        self.wanted.set(topic.channel(), on);
    }
}
