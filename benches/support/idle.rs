//! The idle footprint: server RSS growth per open, upgraded, silent connection.

use std::time::Duration;

use super::report::grouped;
use super::system::{rss_kib, CpuMeter};
use chatbox::bench::client::{Client, Protocol, OPEN_PARALLEL};

/// How long the connections stay open before RSS is read, so that the server's
/// allocator has settled after the burst.
const IDLE_SETTLE: Duration = Duration::from_secs(2);

/// Opens `idle` connections, waits, prints the server's RSS per connection, and closes
/// them again.
pub fn idle_phase<P: Protocol>(client: &mut Client<P>, meter: &CpuMeter, idle: usize, what: &str) {
    println!(
        "\nidle {what} ({idle}, at most {OPEN_PARALLEL} connecting at once, then {} s idle)",
        IDLE_SETTLE.as_secs()
    );
    meter.settle();
    let rss_before = meter.server_pid.and_then(rss_kib);
    let burst = client.burst(idle, OPEN_PARALLEL, true);
    std::thread::sleep(IDLE_SETTLE);
    let rss_with = meter.server_pid.and_then(rss_kib);
    println!(
        "  {} upgraded in {:.2} s, {} failed{}",
        burst.upgraded,
        burst.elapsed.as_secs_f64(),
        burst.failed,
        burst
            .first_error
            .map_or(String::new(), |e| format!(" (first: {e})")),
    );
    match (rss_before, rss_with) {
        (Some(before), Some(with)) if client.open > 0 => println!(
            "  server RSS {:.1} MiB before, {:.1} MiB with {} idle: {} bytes per connection",
            before as f64 / 1024.0,
            with as f64 / 1024.0,
            client.open,
            grouped((with as f64 - before as f64) * 1024.0 / client.open as f64),
        ),
        _ => println!("  server RSS: -"),
    }
    client.close_all();
}
