//! Open sockets per user on the other pods, for the cluster-wide per-user socket limit
//! (docs/SCALE-OUT.md, "Cluster-wide socket counts"). Each pod publishes on one channel
//! every change of a user's count here, and a snapshot of all of them every
//! [`HEARTBEAT`]; each pod keeps the others' counts in memory, so that admitting a
//! socket reads a map on the loop and never waits for Redis. A pod not heard from for
//! [`STALE`] (killed, or cut off from Redis) no longer counts.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Bus, Topic};

/// How often a pod publishes all its counts: what keeps them alive elsewhere, and
/// what rebuilds them after Redis lost messages.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// Three heartbeats missed: the pod is gone, its sockets with it.
const STALE: Duration = Duration::from_secs(15);

/// What a pod publishes on the sockets channel.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Counts {
    pod: String,
    /// All of the pod's users with a socket (`true`), or only those that changed, a 0
    /// for one who has none left.
    full: bool,
    /// The pod has just (re)joined and knows nobody's counts: every pod answers with
    /// its own snapshot at once rather than at its next heartbeat.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    ask: bool,
    counts: HashMap<String, usize>,
}

struct Pod {
    heard: Instant,
    counts: HashMap<String, usize>,
}

/// The other pods' counts, as last heard.
#[derive(Default)]
pub struct Presence {
    pods: HashMap<String, Pod>,
    next_heartbeat: Option<Instant>,
}

/// What the loop must do after hearing another pod.
#[derive(Debug, PartialEq, Eq)]
pub enum Heard {
    Nothing,
    /// The other pod asked: publish this pod's snapshot now.
    SnapshotAsked,
}

impl Presence {
    /// Sockets `user_id` has open on the other pods heard from lately.
    pub fn others(&self, user_id: &str, now: Instant) -> usize {
        self.pods
            .values()
            .filter(|pod| pod.heard + STALE > now)
            .filter_map(|pod| pod.counts.get(user_id))
            .sum()
    }

    /// Takes in what another pod published; a message this version cannot read is
    /// ignored (the next snapshot repairs what it would have said).
    pub fn heard(&mut self, text: &str, now: Instant) -> Heard {
        let Ok(message) = serde_json::from_str::<Counts>(text) else {
            log::warn!("redis: socket counts this version cannot read; ignored");
            return Heard::Nothing;
        };
        let pod = self.pods.entry(message.pod).or_insert_with(|| Pod {
            heard: now,
            counts: HashMap::new(),
        });
        pod.heard = now;
        if message.full {
            pod.counts.clear();
        }
        for (user, count) in message.counts {
            if count == 0 {
                pod.counts.remove(&user);
            } else {
                pod.counts.insert(user, count);
            }
        }
        self.pods.retain(|_, pod| pod.heard + STALE > now);
        match message.ask {
            true => Heard::SnapshotAsked,
            false => Heard::Nothing,
        }
    }

    /// Redis is away: what was heard ages without news, and the limit falls back to
    /// this pod's own count until the pods have spoken again. No heartbeat until then
    /// either: it would only be dropped; the link's return sends a snapshot.
    pub fn forget(&mut self) {
        self.pods.clear();
        self.next_heartbeat = None;
    }

    /// When this pod's next snapshot is due.
    pub fn heartbeat_due(&self) -> Option<Instant> {
        self.next_heartbeat
    }
}

impl Bus {
    /// The other pods' socket counts.
    pub fn presence(&self) -> &Presence {
        &self.presence
    }

    pub fn presence_mut(&mut self) -> &mut Presence {
        &mut self.presence
    }

    /// Tells the other pods that `user_id` now has `count` sockets here.
    pub fn publish_count(&self, user_id: &str, count: usize) {
        let counts = HashMap::from([(user_id.to_owned(), count)]);
        self.publish_counts(false, false, counts);
    }

    /// Tells the other pods every count here (`ask`: and asks for theirs), and sets
    /// the next heartbeat.
    pub fn publish_snapshot<'a>(
        &mut self,
        counts: impl Iterator<Item = (&'a str, usize)>,
        ask: bool,
        now: Instant,
    ) {
        let counts = counts.map(|(user, n)| (user.to_owned(), n)).collect();
        self.publish_counts(true, ask, counts);
        self.presence.next_heartbeat = Some(now + HEARTBEAT);
    }

    fn publish_counts(&self, full: bool, ask: bool, counts: HashMap<String, usize>) {
        let message = Counts {
            pod: self.pod.clone(),
            full,
            ask,
            counts,
        };
        // A map of strings to numbers always serializes.
        let text = serde_json::to_string(&message).unwrap_or_default();
        self.publish(&Topic::Sockets, &text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pod: &str, full: bool, ask: bool, of: &[(&str, usize)]) -> String {
        let counts = of.iter().map(|&(u, n)| (u.to_owned(), n)).collect();
        let message = Counts {
            pod: pod.into(),
            full,
            ask,
            counts,
        };
        serde_json::to_string(&message).unwrap_or_default()
    }

    #[test]
    fn counts_add_up_over_pods_and_changes_replace_them() {
        let mut presence = Presence::default();
        let now = Instant::now();
        presence.heard(&counts("a", true, false, &[("ann", 2), ("bob", 1)]), now);
        presence.heard(&counts("b", false, false, &[("ann", 1)]), now);
        assert_eq!(presence.others("ann", now), 3);
        presence.heard(&counts("a", false, false, &[("ann", 0)]), now);
        assert_eq!(presence.others("ann", now), 1);
        assert_eq!(presence.others("bob", now), 1);
        // A snapshot replaces everything the pod said before.
        presence.heard(&counts("a", true, false, &[("cy", 1)]), now);
        assert_eq!(presence.others("bob", now), 0);
        assert_eq!(presence.others("cy", now), 1);
    }

    #[test]
    fn a_silent_pod_stops_counting_and_forget_drops_all() {
        let mut presence = Presence::default();
        let start = Instant::now();
        presence.heard(&counts("a", true, false, &[("ann", 2)]), start);
        presence.heard(&counts("b", true, false, &[("ann", 1)]), start + HEARTBEAT);
        assert_eq!(presence.others("ann", start + STALE), 1, "a is silent");
        presence.forget();
        assert_eq!(presence.others("ann", start + HEARTBEAT), 0);
    }

    #[test]
    fn an_ask_is_answered_and_garbage_ignored() {
        let mut presence = Presence::default();
        let now = Instant::now();
        let asked = presence.heard(&counts("a", true, true, &[]), now);
        assert_eq!(asked, Heard::SnapshotAsked);
        assert_eq!(presence.heard("{not counts", now), Heard::Nothing);
        assert_eq!(
            presence.heard(&counts("a", false, false, &[]), now),
            Heard::Nothing
        );
    }
}
