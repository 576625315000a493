//! Number formatting and the figures of one run, as table cells.

use chatbox::bench::client::{Burst, Run};
use chatbox::bench::meter::CpuDelta;

/// The `p` quantile of sorted nanoseconds, in µs with one decimal; `-` for no samples.
pub fn percentile_us(sorted_ns: &[u64], p: f64) -> String {
    if sorted_ns.is_empty() {
        return "-".into();
    }
    let ns = sorted_ns[((sorted_ns.len() - 1) as f64 * p).round() as usize];
    format!("{:.1}", ns as f64 / 1000.0)
}

/// The `p` quantile of sorted nanoseconds, in µs; `None` for no samples.
pub fn quantile_us(sorted_ns: &[u64], p: f64) -> Option<f64> {
    let last = sorted_ns.len().checked_sub(1)?;
    Some(sorted_ns[(last as f64 * p).round() as usize] as f64 / 1000.0)
}

pub fn grouped(n: f64) -> String {
    let digits = format!("{:.0}", n);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 && c.is_ascii_digit() {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn opt(value: Option<f64>, precision: usize, suffix: &str) -> String {
    value.map_or("-".into(), |v| format!("{v:.precision$}{suffix}"))
}

/// Right-aligned cells of the given widths, one space apart, after a two-space indent.
pub fn row<S: AsRef<str>>(cells: &[(S, usize)]) -> String {
    let mut line = String::from(" ");
    for (cell, width) in cells {
        line.push_str(&format!(" {:>width$}", cell.as_ref()));
    }
    line
}

/// Headings and widths of [`run_cells`].
pub const RUN_COLUMNS: [(&str, usize); 10] = [
    ("msg/s", 10),
    ("p50 µs", 9),
    ("p99 µs", 9),
    ("p999 µs", 9),
    ("srv CPU", 8),
    ("srv µs/msg", 11),
    ("cli CPU", 8),
    ("others", 7),
    ("stalled", 8),
    ("errors", 7),
];

/// A run's figures, with `sorted_ns` as its latencies, as cells under [`RUN_COLUMNS`].
pub fn run_cells(run: &Run, sorted_ns: &[u64]) -> Vec<(String, usize)> {
    let CpuDelta {
        wall,
        server: server_cpu,
        client: client_cpu,
        others,
    } = run.cpu;
    let cells = [
        grouped(run.messages as f64 / wall.max(f64::MIN_POSITIVE)),
        percentile_us(sorted_ns, 0.50),
        percentile_us(sorted_ns, 0.99),
        percentile_us(sorted_ns, 0.999),
        opt(server_cpu.map(|c| 100.0 * c / wall), 0, " %"),
        opt(
            server_cpu.map(|c| c * 1e6 / run.messages.max(1) as f64),
            2,
            "",
        ),
        opt(client_cpu.map(|c| 100.0 * c / wall), 0, " %"),
        opt(others.map(|c| 100.0 * c / wall), 0, " %"),
        run.stalled.to_string(),
        run.errors.to_string(),
    ];
    cells
        .into_iter()
        .zip(RUN_COLUMNS)
        .map(|(cell, (_, width))| (cell, width))
        .collect()
}

/// Says so when some of the `n` connections opened for a run failed.
pub fn print_open_failures(n: usize, burst: &Burst) {
    if burst.failed > 0 {
        println!(
            "  {n:>6}: {} of {n} connections failed to open (first: {})",
            burst.failed,
            burst.first_error.as_deref().unwrap_or_default()
        );
    }
}
