//! The three instruments, each a handful of relaxed atomics: recording costs one
//! uncontended atomic add, on the loop or on a lane thread, and never takes a lock.
//! Relaxed is enough because nothing is synchronised through these values; a scrape
//! that races an update sees the update or not, and either is a true picture.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// A count that only goes up.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Durations sorted into fixed buckets (upper bounds in seconds, ascending).
///
/// Buckets are kept per range, not cumulative, so that an observation is one add; the
/// cumulative counts Prometheus wants are summed at scrape time. The sum is kept in
/// nanoseconds: an integer add instead of a compare-and-swap loop on float bits, and
/// 2^64 ns is 584 years of summed time.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// `bounds.len() + 1` ranges; the last one is above every bound (`+Inf`).
    ranges: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
}

/// A histogram as read at one moment, ready to be written out.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramSnapshot {
    /// `(upper bound, observations ≤ bound)`, ascending, without `+Inf`.
    pub buckets: Vec<(f64, u64)>,
    /// All observations: the `+Inf` bucket and `_count`.
    pub count: u64,
    pub sum_seconds: f64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]), "ascending bounds");
        Histogram {
            bounds,
            ranges: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        // `le` is inclusive: a value equal to a bound belongs to that bound's bucket.
        let range = self.bounds.partition_point(|&bound| bound < seconds);
        self.ranges[range].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(self.bounds.len());
        for (range, &bound) in self.ranges.iter().zip(self.bounds) {
            cumulative += range.load(Ordering::Relaxed);
            buckets.push((bound, cumulative));
        }
        let above = self.ranges[self.bounds.len()].load(Ordering::Relaxed);
        HistogramSnapshot {
            buckets,
            count: cumulative + above,
            sum_seconds: Duration::from_nanos(self.sum_nanos.load(Ordering::Relaxed)).as_secs_f64(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_bounds_inclusive() {
        static BOUNDS: [f64; 3] = [0.1, 1.0, 5.0];
        let histogram = Histogram::new(&BOUNDS);
        for millis in [50, 100, 700, 1000, 4000, 9000] {
            histogram.observe(Duration::from_millis(millis));
        }
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.buckets, vec![(0.1, 2), (1.0, 4), (5.0, 5)]);
        assert_eq!(snapshot.count, 6, "+Inf holds everything");
        assert!((snapshot.sum_seconds - 14.85).abs() < 1e-9);
    }

    #[test]
    fn counters_and_gauges_count() {
        let counter = Counter::default();
        counter.inc();
        counter.add(4);
        assert_eq!(counter.get(), 5);
        let gauge = Gauge::default();
        gauge.inc();
        gauge.inc();
        gauge.dec();
        assert_eq!(gauge.get(), 1);
    }
}
