//! The per-user socket limit across pods (`REDIS_URL`; docs/SCALE-OUT.md, "Cluster-wide
//! socket counts"): this pod's count of each user's sockets goes to the others as it
//! changes and in a snapshot every heartbeat, theirs come back into the bus's
//! [`Presence`](crate::bus::Presence), and admitting a socket adds them to this pod's
//! own count without waiting for Redis. Without a bus none of this runs.

use std::time::Instant;

use super::App;
use crate::bus::Heard;
use crate::chat::socket::SocketId;

impl App {
    /// Sockets `user_id` has open on the other pods, as last heard: 0 without Redis,
    /// and while Redis is away (the limit is then this pod's alone, which is counted).
    pub(super) fn sockets_elsewhere(&self, user_id: &str, now: Instant) -> usize {
        let Some(bus) = &self.bus else {
            return 0;
        };
        if !bus.is_up() {
            self.metrics.redis.local_admissions.inc();
            return 0;
        }
        bus.presence().others(user_id, now)
    }

    /// The user of a socket whose count is about to change; `None` without a bus, so
    /// that one pod on its own copies nothing.
    pub(super) fn counted_user(&self, socket: SocketId) -> Option<String> {
        self.bus.as_ref()?;
        self.chat.user_of(socket).map(str::to_owned)
    }

    /// The user's count here changed: the other pods hear it.
    pub(super) fn sockets_changed(&self, user_id: &str) {
        if let Some(bus) = &self.bus {
            bus.publish_count(user_id, self.chat.sockets_of(user_id).len());
        }
    }

    /// Another pod's counts.
    pub(super) fn sockets_heard(&mut self, text: &str, now: Instant) {
        let Some(bus) = &mut self.bus else {
            return;
        };
        if bus.presence_mut().heard(text, now) == Heard::SnapshotAsked {
            self.publish_snapshot(false, now);
        }
    }

    /// The link came up: this pod tells its counts and asks for the others' (it knows
    /// none, or old ones). It went down: the others' counts are forgotten, since they
    /// can no longer be kept current.
    pub(super) fn presence_link(&mut self, up: bool, now: Instant) {
        let Some(bus) = &mut self.bus else {
            return;
        };
        if up {
            self.publish_snapshot(true, now);
        } else {
            bus.presence_mut().forget();
        }
    }

    /// The heartbeat: every count here, so that the other pods keep counting them.
    pub(super) fn presence_tick(&mut self, now: Instant) {
        let due = self
            .bus
            .as_ref()
            .and_then(|bus| bus.presence().heartbeat_due());
        if due.is_some_and(|due| due <= now) {
            self.publish_snapshot(false, now);
        }
    }

    fn publish_snapshot(&mut self, ask: bool, now: Instant) {
        if let Some(bus) = &mut self.bus {
            bus.publish_snapshot(self.chat.socket_counts(), ask, now);
        }
    }
}
