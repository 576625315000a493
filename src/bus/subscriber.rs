//! The subscriber thread: one connection in pub/sub mode, subscribed to the channels this
//! pod's sockets need (kept in [`Wanted`] by the loop), each frame from another pod
//! handed to the loop. A lost connection is reported, then made again after the
//! back-off, and every wanted channel subscribed anew. A session's channel newly
//! subscribed to is followed by its reply stream (`replay.rs`), read once Redis
//! confirmed the subscription and handed over before anything the channel brings.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use super::link::{self, Backoff};
use super::replay::Reader;
use super::topic::{open_envelope, Carried, Topic};
use super::{Inbound, Side};
use crate::metrics::Metrics;

/// How long a read waits before the thread looks at the subscription changes: the
/// delay before a new socket's channel is subscribed, and the idle wake-up rate.
const POLL: Duration = Duration::from_millis(20);
/// Subscribing to a pod's channels after a reconnect goes this many to a command.
const SUBSCRIBE_CHUNK: usize = 256;

/// The channels the loop wants, and what changed since the thread last looked.
#[derive(Default)]
pub struct Wanted {
    inner: Mutex<WantedInner>,
}

#[derive(Default)]
struct WantedInner {
    all: HashSet<String>,
    /// The latest wish per channel since the last look: flapping costs nothing.
    changed: HashMap<String, bool>,
}

impl Wanted {
    pub fn set(&self, channel: String, on: bool) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let changed = if on {
            inner.all.insert(channel.clone())
        } else {
            inner.all.remove(&channel)
        };
        if changed {
            inner.changed.insert(channel, on);
        }
    }

    fn take_changes(&self) -> HashMap<String, bool> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::take(&mut inner.changed)
    }

    /// Everything wanted now; the changes so far are part of it.
    fn take_all(&self) -> Vec<String> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.changed.clear();
        inner.all.iter().cloned().collect()
    }
}

/// Why a connection's turn ended.
enum Ended {
    LoopGone,
    Lost(redis::RedisError),
}

pub struct Subscriber {
    pub client: redis::Client,
    pub wanted: Arc<Wanted>,
    pub pod: String,
    pub metrics: Arc<Metrics>,
    pub deliver: super::Report,
}

impl Subscriber {
    /// Runs until the loop is gone.
    pub fn run(self) {
        let mut backoff = Backoff::default();
        let mut reader = Reader::new(self.client.clone());
        // Reported once per outage: the first failure, then the recovery.
        let mut up = None;
        loop {
            let ended = match link::connect(&self.client) {
                Ok(mut connection) => {
                    self.serve(&mut connection, &mut reader, &mut backoff, &mut up)
                }
                Err(error) => Ended::Lost(error),
            };
            let Ended::Lost(error) = ended else {
                return;
            };
            if up != Some(false) {
                log::warn!(
                    "redis: unreachable ({error}); serving this pod's sockets only, reconnecting"
                );
                if up.is_some() {
                    self.metrics.redis.reconnects.inc();
                }
                up = Some(false);
                if !(self.deliver)(Inbound::Link(Side::Subscriber, false)) {
                    return;
                }
            }
            thread::sleep(backoff.next_wait());
        }
    }

    fn serve(
        &self,
        connection: &mut redis::Connection,
        reader: &mut Reader,
        backoff: &mut Backoff,
        up: &mut Option<bool>,
    ) -> Ended {
        let mut pubsub = connection.as_pubsub();
        let mut subscribed = HashSet::new();
        let all = self.wanted.take_all();
        for chunk in all.chunks(SUBSCRIBE_CHUNK) {
            if let Err(error) = pubsub.subscribe(chunk) {
                return Ended::Lost(error);
            }
        }
        subscribed.extend(all);
        if let Err(error) = pubsub.set_read_timeout(Some(POLL)) {
            return Ended::Lost(error);
        }
        backoff.reset();
        if *up == Some(false) {
            log::info!("redis: connected again; cross-pod delivery resumes");
        }
        *up = Some(true);
        if !(self.deliver)(Inbound::Link(Side::Subscriber, true)) {
            return Ended::LoopGone;
        }
        loop {
            let changes = self.wanted.take_changes();
            if !changes.is_empty() {
                let fresh = match apply(&mut pubsub, &mut subscribed, changes) {
                    Ok(fresh) => fresh,
                    Err(error) => return Ended::Lost(error),
                };
                // Read after subscribing: see `replay.rs`.
                for session_id in fresh {
                    let entries = reader.read(&session_id);
                    if !(self.deliver)(Inbound::Replay {
                        session_id,
                        entries,
                    }) {
                        return Ended::LoopGone;
                    }
                }
            }
            let message = match pubsub.get_message() {
                Ok(message) => message,
                Err(error) if error.is_timeout() => continue,
                Err(error) => return Ended::Lost(error),
            };
            let Some(topic) = Topic::from_channel(message.get_channel_name()) else {
                continue;
            };
            let Some((from, carried, text)) = open_envelope(message.get_payload_bytes()) else {
                continue;
            };
            if from == self.pod {
                continue;
            }
            self.metrics.redis.received.inc();
            let text = text.to_owned();
            let inbound = match carried {
                Carried::Frame => Inbound::Frame { topic, frame: text },
                Carried::News => Inbound::News { topic, news: text },
            };
            if !(self.deliver)(inbound) {
                return Ended::LoopGone;
            }
        }
    }
}

/// Subscribes and unsubscribes as `changes` say; returns the sessions newly subscribed
/// to. A subscription's answer may take longer than a poll: the changes get the full
/// command timeout, and the poll's comes back after.
fn apply(
    pubsub: &mut redis::PubSub<'_>,
    subscribed: &mut HashSet<String>,
    changes: HashMap<String, bool>,
) -> redis::RedisResult<Vec<String>> {
    pubsub.set_read_timeout(Some(link::IO_TIMEOUT))?;
    let mut fresh = Vec::new();
    for (channel, on) in changes {
        match (on, subscribed.contains(&channel)) {
            (true, false) => {
                pubsub.subscribe(&channel)?;
                if let Some(Topic::Session(id)) = Topic::from_channel(&channel) {
                    fresh.push(id);
                }
                subscribed.insert(channel);
            }
            (false, true) => {
                pubsub.unsubscribe(&channel)?;
                subscribed.remove(&channel);
            }
            _ => {}
        }
    }
    pubsub.set_read_timeout(Some(POLL))?;
    Ok(fresh)
}
