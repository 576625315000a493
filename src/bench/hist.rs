//! Latency percentiles from an HDR histogram (`hdrhistogram`): p50, p90, p99, p99.9 and
//! max, in microseconds, for the human summary and the JSON object alike.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Three significant figures: 0.1 % resolution at any latency.
const SIGFIG: u8 = 3;

/// Percentiles of one set of latencies, µs. All zero (and `count` 0) without samples.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

impl Percentiles {
    /// From nanoseconds in any order.
    pub fn of_ns(samples: &[u64]) -> Percentiles {
        // Auto-resizing from 1 ns: no bound to pick, and a sample cannot be out of range.
        let mut hist = match Histogram::<u64>::new(SIGFIG) {
            Ok(hist) => hist,
            Err(_) => return Percentiles::default(),
        };
        for &ns in samples {
            // An auto-resizing histogram takes any u64; a failure would only drop a sample.
            let _ = hist.record(ns.max(1));
        }
        if hist.is_empty() {
            return Percentiles::default();
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Percentiles {
            count: hist.len(),
            p50_us: us(hist.value_at_quantile(0.50)),
            p90_us: us(hist.value_at_quantile(0.90)),
            p99_us: us(hist.value_at_quantile(0.99)),
            p999_us: us(hist.value_at_quantile(0.999)),
            max_us: us(hist.max()),
        }
    }

    /// One line: `p50 1.2 ms  p90 …  max …`.
    pub fn line(&self) -> String {
        if self.count == 0 {
            return "no samples".into();
        }
        format!(
            "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            human_us(self.p50_us),
            human_us(self.p90_us),
            human_us(self.p99_us),
            human_us(self.p999_us),
            human_us(self.max_us)
        )
    }
}

/// µs, ms or s, three significant figures or so.
pub fn human_us(us: f64) -> String {
    match us {
        us if us < 1_000.0 => format!("{us:.1} µs"),
        us if us < 1_000_000.0 => format!("{:.2} ms", us / 1_000.0),
        us => format!("{:.3} s", us / 1_000_000.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_follow_the_samples() {
        let samples: Vec<u64> = (1..=1000).map(|i| i * 1000).collect(); // 1..1000 µs
        let p = Percentiles::of_ns(&samples);
        assert_eq!(p.count, 1000);
        assert!((p.p50_us - 500.0).abs() < 1.0, "{p:?}");
        assert!((p.p99_us - 990.0).abs() < 1.0, "{p:?}");
        assert!((p.max_us - 1000.0).abs() < 1.0, "{p:?}");
        assert_eq!(Percentiles::of_ns(&[]), Percentiles::default());
    }
}
