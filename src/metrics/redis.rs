//! The Redis bus (`REDIS_URL`, docs/SCALE-OUT.md): whether it is connected, how often it
//! had to reconnect, and what crossed it. Without `REDIS_URL` every series stays at zero;
//! `chatbox_redis_up` 0 then means "not used", which `checks.redis` in `/readyz` tells
//! apart from "unreachable".

use std::sync::atomic::{AtomicBool, Ordering};

use super::instruments::Counter;
use super::text::{Exposition, Kind, Value};

#[derive(Debug, Default)]
pub struct RedisMetrics {
    /// While the subscriber connection is up.
    up: AtomicBool,
    /// Connections (publisher or subscriber) lost and tried again.
    pub reconnects: Counter,
    /// Frames published for other pods.
    pub published: Counter,
    /// Frames from other pods delivered to this pod's sockets' audiences.
    pub received: Counter,
    /// Frames for other pods dropped: the publisher's queue was full or Redis was down.
    pub dropped: Counter,
    /// Replies started without the session lease: Redis could not be asked.
    pub unleased: Counter,
    /// WebSocket admissions that counted this pod's sockets only, Redis being away.
    pub local_admissions: Counter,
}

impl RedisMetrics {
    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Relaxed);
    }

    pub(super) fn render(&self, out: &mut Exposition) {
        out.family(
            "chatbox_redis_up",
            Kind::Gauge,
            "1 while this pod's Redis subscriber is connected (0 without REDIS_URL).",
        );
        let up = u64::from(self.up.load(Ordering::Relaxed));
        out.sample("chatbox_redis_up", &[], Value::Int(up));
        for (name, help, counter) in [
            (
                "chatbox_redis_reconnects_total",
                "Redis connections lost and tried again.",
                &self.reconnects,
            ),
            (
                "chatbox_redis_published_total",
                "Frames published on Redis for the sockets of other pods.",
                &self.published,
            ),
            (
                "chatbox_redis_received_total",
                "Frames from other pods received over Redis.",
                &self.received,
            ),
            (
                "chatbox_redis_dropped_total",
                "Frames for other pods dropped (publisher queue full or Redis down).",
                &self.dropped,
            ),
            (
                "chatbox_redis_unleased_replies_total",
                "Replies started without the session lease because Redis could not be asked.",
                &self.unleased,
            ),
            (
                "chatbox_redis_local_admissions_total",
                "WebSocket admissions that counted the user's sockets on this pod only, Redis being away.",
                &self.local_admissions,
            ),
        ] {
            out.family(name, Kind::Counter, help);
            out.sample(name, &[], Value::Int(counter.get()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_follows_the_link_and_every_series_starts_at_zero() {
        let redis = RedisMetrics::default();
        redis.set_up(true);
        redis.set_up(true);
        let mut out = Exposition::default();
        redis.render(&mut out);
        assert!(out.into_string().contains("chatbox_redis_up 1\n"));
        redis.set_up(false);
        redis.set_up(false);
        let mut out = Exposition::default();
        redis.render(&mut out);
        let text = out.into_string();
        assert!(text.contains("chatbox_redis_up 0\n"), "{text}");
        assert!(text.contains("chatbox_redis_dropped_total 0\n"), "{text}");
    }
}
