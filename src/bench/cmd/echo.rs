//! `echo`: the raw frame round trip against `P/echo` (or any echo server): for each
//! connection count, every socket keeps one message in flight for a warm-up and a
//! measured window; the server's CPU per message is the robust figure when the client
//! saturates first.

use std::time::Duration;

use serde::Serialize;

use super::{opt_text, per_item_us, secs, BenchError, Common, CpuReport};
use crate::bench::cli::{bounded, unknown, CliError, Flags};
use crate::bench::client::{Client, Plan, OPEN_PARALLEL};
use crate::bench::echo::Echo;
use crate::bench::hist::Percentiles;
use crate::bench::limits;
use crate::bench::meter::CpuMeter;
use crate::bench::pace::Load;
use crate::bench::probe;
use crate::bench::progress::Progress;

pub const USAGE: &str = "chatbox-bench echo [--url ws://HOST:PORT/PATH] [--conns 100,1000]
    [--size 64] [--secs 10] [--warmup 1] [--pid SERVER_PID] [--json] [--allow-remote]";

const MAX_CONNS: usize = 100_000;
/// A socket whose echo is this late at the end of a row is stalled.
const STALL: Duration = Duration::from_secs(1);

struct Args {
    common: Common,
    conns: Vec<usize>,
    size: usize,
    secs: Duration,
    warmup: Duration,
}

fn parse(args: Vec<String>) -> Result<Args, BenchError> {
    let mut a = Args {
        common: Common::new("/echo"),
        conns: vec![100, 1000],
        size: 64,
        secs: Duration::from_secs(10),
        warmup: Duration::from_secs(1),
    };
    let mut flags = Flags::new(args);
    while let Some(flag) = flags.next_flag() {
        if a.common.take(&flag, &mut flags)? {
            continue;
        }
        match flag.as_str() {
            "--conns" => {
                a.conns = flags.numbers(&flag)?;
                if a.conns.iter().any(|&n| n == 0 || n > MAX_CONNS) {
                    return Err(CliError(format!("--conns: each from 1 to {MAX_CONNS}")).into());
                }
            }
            "--size" => a.size = bounded(&flag, flags.number(&flag)?, 1..=1 << 20)?,
            "--secs" => a.secs = secs(&flag, &mut flags, 1..=3600)?,
            "--warmup" => a.warmup = secs(&flag, &mut flags, 0..=600)?,
            other => return Err(unknown(other).into()),
        }
    }
    Ok(a)
}

#[derive(Serialize)]
pub struct EchoRow {
    pub conns: usize,
    pub opened: usize,
    pub messages: u64,
    pub msg_per_s: f64,
    pub latency: Percentiles,
    /// Server CPU per message, µs (`null` without `--pid`).
    pub server_us_per_msg: Option<f64>,
    pub client_us_per_msg: Option<f64>,
    pub cpu: CpuReport,
    pub errors: usize,
    pub first_error: Option<String>,
    pub stalled: usize,
}

#[derive(Serialize)]
pub struct EchoReport {
    pub command: &'static str,
    pub url: String,
    pub size: usize,
    pub warmup_s: f64,
    pub secs: f64,
    pub rows: Vec<EchoRow>,
}

pub fn run(args: Vec<String>) -> Result<(), BenchError> {
    let a = parse(args)?;
    let most = a.conns.iter().copied().max().unwrap_or(1);
    let target = a.common.target(most)?;
    probe::upgrade(&target, "").map_err(BenchError::Unreachable)?;
    let meter = CpuMeter::new(a.common.pid);
    let mut client = Client::new(target.clone(), Echo::new(a.size))?
        .with_sources(limits::sources(target.addr, most)?);
    client.progress = Progress::new(!a.common.json);
    let mut rows = Vec::new();
    for &n in &a.conns {
        meter.settle();
        let burst = client.open_plan(&Plan {
            total: n,
            parallel: OPEN_PARALLEL,
            keep: true,
            rate: None,
            limit: Duration::from_secs(60),
        });
        let run = client.run(a.warmup, a.secs, STALL, &meter, Load::Closed);
        client.close_all();
        rows.push(EchoRow {
            conns: n,
            opened: burst.upgraded,
            messages: run.messages,
            msg_per_s: run.messages as f64 / run.cpu.wall.max(1e-9),
            latency: Percentiles::of_ns(&run.latencies),
            server_us_per_msg: per_item_us(run.cpu.server, run.messages),
            client_us_per_msg: per_item_us(run.cpu.client, run.messages),
            cpu: run.cpu.into(),
            errors: run.errors + burst.failed,
            first_error: burst.first_error.or(run.first_error),
            stalled: run.stalled,
        });
    }
    let report = EchoReport {
        command: "echo",
        url: a.common.url.clone(),
        size: a.size,
        warmup_s: a.warmup.as_secs_f64(),
        secs: a.secs.as_secs_f64(),
        rows,
    };
    a.common.print(&report, human);
    Ok(())
}

fn human(r: &EchoReport) {
    println!(
        "echo {} ({}-byte text messages, one in flight per socket; {} s warm-up, {} s measured)",
        r.url, r.size, r.warmup_s, r.secs
    );
    for row in &r.rows {
        println!(
            "  {:>6} sockets: {:>9.0} msg/s, server {} µs/msg, client {} µs/msg, others {} s; {} errors, {} stalled",
            row.conns,
            row.msg_per_s,
            opt_text(row.server_us_per_msg, 2, ""),
            opt_text(row.client_us_per_msg, 2, ""),
            opt_text(row.cpu.others_s, 2, ""),
            row.errors,
            row.stalled,
        );
        println!("          round trip {}", row.latency.line());
        if let Some(e) = &row.first_error {
            println!("          first error: {e}");
        }
    }
}
