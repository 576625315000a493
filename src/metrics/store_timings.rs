//! `chatbox_mongodb_operation_seconds{operation}` (the old service's name, kept for its
//! dashboards, also for the embedded store): the one family the store's timing
//! decorator records into. It is a handle of its own so that the store holds this
//! family, not the whole registry.

use std::time::Duration;

use super::instruments::Histogram;
use super::text::{Exposition, Kind};

const NAME: &str = "chatbox_mongodb_operation_seconds";

/// An embedded read takes microseconds, a synced write or a MongoDB round trip
/// milliseconds; past a second the store is in trouble.
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// One histogram per `operation` label value.
#[derive(Debug)]
pub struct StoreTimings {
    /// Indexed like [`StoreTimings::OPERATIONS`].
    histograms: [Histogram; StoreTimings::OPERATIONS.len()],
}

impl StoreTimings {
    /// The `operation` label values, in the order they are shown. They are declared
    /// here rather than handed in by the store so that a registry shows every series,
    /// with a zero, from its first scrape, store or no store. The store maps each of
    /// its operations to one of them; its tests check that the two lists agree.
    pub const OPERATIONS: [&'static str; 18] = [
        "append",
        "append_batch",
        "session",
        "transcript",
        "latest_active",
        "user_sessions",
        "set_model",
        "set_assist",
        "set_help_requested",
        "end_session",
        "share",
        "unshare",
        "shared",
        "end_idle",
        "count_active",
        "ping",
        "list_all_sessions_with_options",
        "get_session_metrics",
    ];

    /// A value outside [`StoreTimings::OPERATIONS`] is not recorded. The lookup is a
    /// few short comparisons, nothing next to the store call it times.
    pub fn observe(&self, operation: &str, took: Duration) {
        if let Some(i) = Self::OPERATIONS.iter().position(|&op| op == operation) {
            self.histograms[i].observe(took);
        }
    }

    pub(super) fn render(&self, out: &mut Exposition) {
        out.family(
            NAME,
            Kind::Histogram,
            "Time of each store operation (MongoDB or the embedded store).",
        );
        for (operation, timing) in Self::OPERATIONS.iter().zip(&self.histograms) {
            out.histogram(NAME, &[("operation", operation)], &timing.snapshot());
        }
    }
}

impl Default for StoreTimings {
    fn default() -> StoreTimings {
        StoreTimings {
            histograms: std::array::from_fn(|_| Histogram::new(&BUCKETS)),
        }
    }
}
