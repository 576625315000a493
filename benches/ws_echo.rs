//! WebSocket echo load: round trip under N connections, server CPU per message, handshake
//! rate, idle footprint.
//!
//! ```text
//! cargo bench --bench ws_echo -- [--url ws://127.0.0.1:PORT/chatbox/echo] [--pid SERVER_PID]
//!     [--conns 1,100,1000] [--secs 10] [--size 64] [--idle 10000] [--handshakes 2000]
//! ```
//!
//! Without `--url` the bench starts the release binary (CHATBOX_BIN, else the one cargo just
//! built) with CHATBOX_ECHO=true, pinned to CPU 0 with `taskset -c 0` under
//! `prlimit --nofile=65536:` (or the hard limit, if lower), and re-executes itself pinned to
//! CPU 1, so server and client each own one core. With `--url` nothing is pinned; pass
//! `--pid` for CPU and RSS figures.
//!
//! The client is one thread on a mio (epoll, edge-triggered) loop; frames are built by hand
//! (one precomputed masked text frame, the expected echo compared byte for byte), so the
//! client does one write and one read per message. Server CPU comes from utime+stime in
//! /proc/PID/stat: when the client saturates first, msg/s says little about the server,
//! but µs of server CPU per message still does. The `others` column is the CPU that every
//! other process used meanwhile, plus steal (from /proc/stat): a build or a fuzzer running
//! next to the bench shows there, and then the row is not to be trusted.
//!
//! On a VM, a lone connection's round trip is mostly the wake-up of an idle vCPU: compare
//! rows with many connections, and µs of CPU per message, rather than the 1-connection row.
//!
//! Phases, in this order so that the idle footprint is measured on a fresh server:
//! 1. idle: open `--idle` connections, wait until all are upgraded, sleep 2 s, read VmRSS;
//! 2. handshakes: `--handshakes` connect + upgrade + close, one at a time, then 64 at once;
//! 3. echo: for each N in `--conns`, N connections each with exactly one message in flight
//!    (send, wait for the echo, send again), 1 s warm-up then `--secs` measured.

mod support;

use std::time::Duration;

use chatbox::bench::client::{Client, Run};
use chatbox::bench::echo::Echo;
use chatbox::bench::pace::Load;
use support::args::Flags;
use support::idle::idle_phase;
use support::report::{
    grouped, opt, percentile_us, print_open_failures, row, run_cells, RUN_COLUMNS,
};
use support::system::{
    cpu_count, parse_url, print_conditions, reexec_if_needed, server_under_test, CpuMeter, Launch,
    CLIENT_CPU,
};

/// Connects in flight in the parallel handshake row.
const HANDSHAKE_PARALLEL: usize = 64;
const WARMUP: Duration = Duration::from_secs(1);
/// A connection whose message waits this long for its echo at the end of a row is stalled.
const STALL: Duration = Duration::from_secs(1);

const USAGE: &str =
    "usage: cargo bench --bench ws_echo -- [--url ws://HOST:PORT/PATH] [--pid SERVER_PID]
       [--conns 1,100,1000] [--secs 10] [--size 64] [--idle 10000] [--handshakes 2000]";

struct Args {
    url: Option<String>,
    pid: Option<u32>,
    conns: Vec<usize>,
    secs: u64,
    size: usize,
    idle: usize,
    handshakes: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        url: None,
        pid: None,
        conns: vec![1, 100, 1000],
        secs: 10,
        size: 64,
        idle: 10_000,
        handshakes: 2000,
    };
    let mut flags = Flags::new(USAGE);
    while let Some(flag) = flags.next_flag() {
        match flag.as_str() {
            "--url" => args.url = Some(flags.text("--url", "ws://host:port/path")),
            "--pid" => args.pid = Some(flags.number("--pid")),
            "--conns" => {
                args.conns = flags.list("--conns", "numbers like 1,100,1000", |n| n.parse().ok())
            }
            "--secs" => args.secs = flags.number("--secs"),
            "--size" => args.size = flags.number("--size"),
            "--idle" => args.idle = flags.number("--idle"),
            "--handshakes" => args.handshakes = flags.number("--handshakes"),
            other => flags.unknown(other),
        }
    }
    assert!(args.secs > 0, "--secs must be at least 1");
    args
}

/// Connect + upgrade + close, one at a time and HANDSHAKE_PARALLEL at once.
fn handshake_phase(client: &mut Client<Echo>, meter: &CpuMeter, count: usize) {
    println!("\nhandshakes ({count} per row: TCP connect + upgrade to 101, then close)");
    println!(
        "  {:<11} {:>8} {:>9} {:>9} {:>9} {:>8} {:>12} {:>7} {:>7}",
        "mode",
        "parallel",
        "conn/s",
        "p50 µs",
        "p99 µs",
        "srv CPU",
        "srv µs/conn",
        "others",
        "failed"
    );
    for (mode, parallel) in [("sequential", 1), ("parallel", HANDSHAKE_PARALLEL)] {
        meter.settle();
        let before = meter.sample();
        let mut burst = client.burst(count, parallel, false);
        let cpu = meter.delta(before, meter.sample());
        let (wall, server_cpu, others) = (cpu.wall, cpu.server, cpu.others);
        burst.latencies.sort_unstable();
        println!(
            "  {:<11} {:>8} {:>9} {:>9} {:>9} {:>8} {:>12} {:>7} {:>7}",
            mode,
            parallel,
            grouped(burst.upgraded as f64 / burst.elapsed.as_secs_f64()),
            percentile_us(&burst.latencies, 0.50),
            percentile_us(&burst.latencies, 0.99),
            opt(server_cpu.map(|c| 100.0 * c / wall), 0, " %"),
            opt(
                server_cpu.map(|c| c * 1e6 / burst.upgraded.max(1) as f64),
                1,
                ""
            ),
            opt(others.map(|c| 100.0 * c / wall), 0, " %"),
            burst.failed,
        );
        if let Some(e) = burst.first_error {
            println!("    first error: {e}");
        }
    }
}

/// One row per N: N connections, each with one message in flight.
fn echo_phase(client: &mut Client<Echo>, meter: &CpuMeter, args: &Args) {
    println!(
        "\necho round trip ({}-byte text messages, one in flight per connection; \
         {} s warm-up, {} s measured per row)",
        args.size,
        WARMUP.as_secs(),
        args.secs
    );
    let mut headings = vec![("conns", 6)];
    headings.extend(RUN_COLUMNS);
    println!("{}", row(&headings));
    for &n in &args.conns {
        meter.settle();
        print_open_failures(n, &client.open_for_run(n));
        let secs = Duration::from_secs(args.secs);
        let run = client.run(WARMUP, secs, STALL, meter, Load::Closed);
        client.close_all();
        print_run(n, &run);
    }
}

fn print_run(n: usize, run: &Run) {
    let cells = [vec![(n.to_string(), 6)], run_cells(run, &run.latencies)].concat();
    println!("{}", row(&cells));
    if let Some(e) = &run.first_error {
        println!("    first error: {e}");
    }
}

fn main() {
    let args = parse_args();
    let max_conns = args.conns.iter().copied().max().unwrap_or(0);
    let peak_conns = args.idle.max(max_conns).max(HANDSHAKE_PARALLEL);
    let own_server = args.url.is_none();
    reexec_if_needed(
        (own_server && cpu_count() >= 2).then_some(CLIENT_CPU),
        peak_conns as u64 + 256,
    );

    // Dropping `_server` at the end (or on a panic) kills a server we started.
    let max_connections = peak_conns + 1000;
    let launch = Launch {
        name: "chatbox-ws-echo",
        data_parent: std::env::temp_dir(),
        max_connections,
        env: Vec::new(),
    };
    let (_server, url, server_pid) = server_under_test(args.url.as_deref(), args.pid, &launch);
    let meter = CpuMeter::new(server_pid);
    print_conditions(
        &format!("ws_echo  {url}"),
        own_server.then_some(max_connections),
        &meter,
    );

    let mut client = Client::new(parse_url(&url), Echo::new(args.size)).expect("epoll");
    // Idle first: its RSS baseline is a server that has served nothing else yet.
    if args.idle > 0 {
        idle_phase(&mut client, &meter, args.idle, "connections");
    }
    if args.handshakes > 0 {
        handshake_phase(&mut client, &meter, args.handshakes);
    }
    echo_phase(&mut client, &meter, &args);
}
