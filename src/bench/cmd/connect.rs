//! `connect`: open N WebSocket sessions at a target rate with a bounded number of
//! handshakes in flight, and report the connect rate, handshake latency, failures by
//! cause and, with `--pid` of a local server, its RSS and CPU per connection.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{opt_text, per_item_us, secs, BenchError, Common, CpuReport};
use crate::bench::chat::Chat;
use crate::bench::cli::{bounded, unknown, Flags};
use crate::bench::client::{Client, Plan, Protocol};
use crate::bench::echo::Echo;
use crate::bench::hist::Percentiles;
use crate::bench::limits;
use crate::bench::meter::CpuMeter;
use crate::bench::probe;
use crate::bench::progress::Progress;

pub const USAGE: &str = "chatbox-bench connect [--url ws://HOST:PORT/PATH] [--conns 10000]
    [--parallel 256] [--rate CONNS_PER_S] [--settle 2] [--hold 0] [--limit 120]
    [--secret JWT_SECRET | --token-file FILE] [--pid SERVER_PID] [--json] [--allow-remote]";

/// The most connections one run opens.
const MAX_CONNS: usize = 200_000;

struct Args {
    common: Common,
    conns: usize,
    parallel: usize,
    rate: Option<f64>,
    settle: Duration,
    hold: Duration,
    limit: Duration,
}

fn parse(args: Vec<String>) -> Result<Args, BenchError> {
    let mut a = Args {
        common: Common::new("/echo"),
        conns: 1000,
        parallel: 256,
        rate: None,
        settle: Duration::from_secs(2),
        hold: Duration::ZERO,
        limit: Duration::from_secs(120),
    };
    let mut flags = Flags::new(args);
    while let Some(flag) = flags.next_flag() {
        if a.common.take(&flag, &mut flags)? {
            continue;
        }
        match flag.as_str() {
            "--conns" => a.conns = bounded(&flag, flags.number(&flag)?, 1..=MAX_CONNS)?,
            "--parallel" => a.parallel = bounded(&flag, flags.number(&flag)?, 1..=65_536)?,
            "--rate" => a.rate = Some(bounded(&flag, flags.number(&flag)?, 0.1..=1e6)?),
            "--settle" => a.settle = secs(&flag, &mut flags, 0..=600)?,
            "--hold" => a.hold = secs(&flag, &mut flags, 0..=3600)?,
            "--limit" => a.limit = secs(&flag, &mut flags, 1..=3600)?,
            other => return Err(unknown(other).into()),
        }
    }
    Ok(a)
}

#[derive(Serialize)]
pub struct ServerFigures {
    pub pid: u32,
    pub rss_before_bytes: Option<u64>,
    pub rss_open_bytes: Option<u64>,
    /// RSS growth per open socket, after `--settle`.
    pub rss_per_conn_bytes: Option<f64>,
    /// Server CPU per connection opened, µs (TCP accept, upgrade, and the greeting).
    pub cpu_per_conn_us: Option<f64>,
}

#[derive(Serialize)]
pub struct ConnectReport {
    pub command: &'static str,
    pub url: String,
    /// `chat` (a token per socket, open once greeted) or `raw` (open at the 101).
    pub kind: &'static str,
    pub conns: usize,
    pub parallel: usize,
    pub rate_target: Option<f64>,
    pub opened: usize,
    pub failed: usize,
    /// Failures by cause: the error text and how many sockets it ended.
    pub failures: BTreeMap<String, usize>,
    pub elapsed_s: f64,
    /// Sockets opened per second over the whole burst.
    pub connect_rate: f64,
    /// Connect start to open.
    pub handshake: Percentiles,
    /// CPU while opening.
    pub cpu: CpuReport,
    pub server: Option<ServerFigures>,
    /// Source addresses used (several on 127.0.0.x past one port range).
    pub sources: usize,
}

pub fn run(args: Vec<String>) -> Result<(), BenchError> {
    let mut a = parse(args)?;
    let target = a.common.target(a.conns)?;
    let sources = limits::sources(target.addr, a.conns)?;
    let meter = CpuMeter::new(a.common.pid);
    let progress = Progress::new(!a.common.json);
    let report = match a.common.tokens.take() {
        Some(tokens) => {
            let client = Client::new(target, Chat::new(tokens, false))?;
            measure(&a, client.with_sources(sources), &meter, progress, "chat")?
        }
        None => {
            probe::upgrade(&target, "").map_err(BenchError::Unreachable)?;
            let client = Client::new(target, Echo::new(0))?;
            measure(&a, client.with_sources(sources), &meter, progress, "raw")?
        }
    };
    a.common.print(&report, human);
    Ok(())
}

fn measure<P: Protocol>(
    a: &Args,
    mut client: Client<P>,
    meter: &CpuMeter,
    progress: Progress,
    kind: &'static str,
) -> Result<ConnectReport, BenchError> {
    client.progress = progress;
    let sources = client.sources().len();
    let rss_before = meter.server_rss();
    let before = meter.sample();
    let burst = client.open_plan(&Plan {
        total: a.conns,
        parallel: a.parallel,
        keep: true,
        rate: a.rate,
        limit: a.limit,
    });
    let cpu = meter.delta(before, meter.sample());
    std::thread::sleep(a.settle);
    let rss_open = meter.server_rss();
    let open = client.open;
    let server = a.common.pid.map(|pid| ServerFigures {
        pid,
        rss_before_bytes: rss_before,
        rss_open_bytes: rss_open,
        rss_per_conn_bytes: rss_before
            .zip(rss_open)
            .filter(|_| open > 0)
            .map(|(b, o)| (o as f64 - b as f64) / open as f64),
        cpu_per_conn_us: per_item_us(cpu.server, burst.upgraded as u64),
    });
    let hold_until = Instant::now() + a.hold;
    while Instant::now() < hold_until {
        // Held sockets stay silent; the poll only notices the server closing them.
        let _ = client.poll_once(Duration::from_millis(200))?;
    }
    client.close_all();
    Ok(ConnectReport {
        command: "connect",
        url: a.common.url.clone(),
        kind,
        conns: a.conns,
        parallel: a.parallel,
        rate_target: a.rate,
        opened: burst.upgraded,
        failed: burst.failed,
        failures: burst.causes,
        elapsed_s: burst.elapsed.as_secs_f64(),
        connect_rate: burst.upgraded as f64 / burst.elapsed.as_secs_f64().max(1e-9),
        handshake: Percentiles::of_ns(&burst.latencies),
        cpu: cpu.into(),
        server,
        sources,
    })
}

fn human(r: &ConnectReport) {
    println!(
        "connect {} ({} sockets): {} of {} opened in {:.2} s, {:.0}/s, {} handshakes in flight{}",
        r.url,
        r.kind,
        r.opened,
        r.conns,
        r.elapsed_s,
        r.connect_rate,
        r.parallel,
        r.rate_target
            .map_or(String::new(), |t| format!(", target {t}/s")),
    );
    println!("  handshake  {}", r.handshake.line());
    for (cause, n) in &r.failures {
        println!("  failed     {n} × {cause}");
    }
    if let Some(s) = &r.server {
        println!(
            "  server     pid {}: RSS {} → {} KiB, {} B per open socket; {} µs CPU per connection",
            s.pid,
            s.rss_before_bytes
                .map_or("-".into(), |b| (b / 1024).to_string()),
            s.rss_open_bytes
                .map_or("-".into(), |b| (b / 1024).to_string()),
            opt_text(s.rss_per_conn_bytes, 0, ""),
            opt_text(s.cpu_per_conn_us, 1, ""),
        );
    }
    println!(
        "  client     {} CPU s; others {} s (noise)",
        opt_text(r.cpu.client_s, 2, ""),
        opt_text(r.cpu.others_s, 2, "")
    );
}
