//! Keeps `/readyz`'s store check current. The loop may not block on a ping, so it sends
//! one to the store lane every [`INTERVAL`] and records the answer; `/readyz` reports
//! the last answer. With MongoDB the same state is also shown as `checks.mongodb`
//! (spec/http.md), so probes and dashboards built for the old service keep working.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::lanes::{Done, Lanes};
use crate::http::health::{Check, Readiness};
use crate::store::{Store, StoreError};

/// How stale the store check may be: MongoDB going away turns `/readyz` 503 (and its
/// return turns it 200) within about this long.
const INTERVAL: Duration = Duration::from_secs(2);
/// The `/readyz` reason of a store that failed its ping.
const UNREACHABLE: &str = "store unreachable";

pub struct StoreProbe {
    names: &'static [&'static str],
    next_at: Instant,
    in_flight: bool,
    /// The last answer's outcome, to log changes rather than every ping.
    healthy: Option<bool>,
}

impl StoreProbe {
    /// A probe due at once. The embedded store opened at start-up, so it starts ready;
    /// MongoDB is not ready until it has answered.
    pub fn new(mongodb: bool, readiness: &mut Readiness, now: Instant) -> StoreProbe {
        let (names, check): (&'static [&'static str], _) = if mongodb {
            (
                &["store", "mongodb"],
                Check::not_ready("no answer from MongoDB yet"),
            )
        } else {
            (&["store"], Check::ready())
        };
        for name in names {
            readiness.set(name, check.clone());
        }
        StoreProbe {
            names,
            next_at: now,
            in_flight: false,
            healthy: None,
        }
    }

    /// When the next ping is due; `None` while one is out.
    pub fn due(&self) -> Option<Instant> {
        (!self.in_flight).then_some(self.next_at)
    }

    /// Sends a ping if one is due. A full lane skips this round: the work ahead of the
    /// ping answers for the store soon enough.
    pub fn run(&mut self, lanes: &Lanes, store: &Arc<dyn Store>, now: Instant) {
        if self.due().is_none_or(|at| at > now) {
            return;
        }
        self.next_at = now + INTERVAL;
        let store = Arc::clone(store);
        let submitted = lanes.store.try_submit(
            move |ctx| {
                let _ = ctx.complete(Done::StoreHealth(store.ping()));
            },
            Done::StoreHealth(Err(StoreError::Unavailable("the ping was lost".into()))),
        );
        self.in_flight = submitted.is_ok();
    }

    pub fn answered(
        &mut self,
        result: Result<(), StoreError>,
        readiness: &mut Readiness,
        now: Instant,
    ) {
        self.in_flight = false;
        self.next_at = now + INTERVAL;
        let healthy = result.is_ok();
        if self.healthy != Some(healthy) {
            match &result {
                Ok(()) => log::info!("store ready"),
                Err(error) => log::warn!("store not ready: {error}"),
            }
            self.healthy = Some(healthy);
        }
        // `/readyz` answers anyone: the error's text (hosts, ports, file paths) stays in
        // the log above, the probe gets a fixed reason.
        let check = match result {
            Ok(()) => Check::ready(),
            Err(_) => Check::not_ready(UNREACHABLE),
        };
        for name in self.names {
            readiness.set(name, check.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_ping_shows_a_fixed_reason_not_the_error() {
        let mut readiness = Readiness::default();
        let now = Instant::now();
        let mut probe = StoreProbe::new(true, &mut readiness, now);
        let error = StoreError::Unavailable("db.internal:27017 refused; /var/lib/x".into());
        probe.answered(Err(error), &mut readiness, now);
        let response = readiness.respond(false, 0);
        assert_eq!(response.status, 503);
        let body: serde_json::Value = serde_json::from_slice(&response.body).expect("json");
        for name in ["store", "mongodb"] {
            assert_eq!(body["checks"][name]["reason"], UNREACHABLE, "{body}");
        }
        let text = String::from_utf8_lossy(&response.body);
        assert!(
            !text.contains("db.internal") && !text.contains("/var/lib"),
            "{text}"
        );
    }
}
