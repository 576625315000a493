//! `chat`: N users, one socket each, sending `user_message`s closed-loop (the next on
//! `done`) or paced (`--pace MS` of think time), timing `loading` (the message is
//! stored), the first `ai_response` chunk and `done`. Works with the `echo` provider and
//! with real ones (the reply's end is its `done` frame, whatever its length).

use std::time::Duration;

use serde::Serialize;

use super::{opt_text, per_item_us, secs, BenchError, Common, CpuReport};
use crate::bench::chat::Chat;
use crate::bench::cli::{bounded, unknown, CliError, Flags};
use crate::bench::client::{Client, Plan, OPEN_PARALLEL};
use crate::bench::hist::Percentiles;
use crate::bench::limits;
use crate::bench::meter::CpuMeter;
use crate::bench::pace::Load;
use crate::bench::progress::Progress;

pub const USAGE: &str = "chatbox-bench chat (--secret JWT_SECRET | --token-file FILE)
    [--url ws://HOST:PORT/chatbox/ws] [--users 100] [--secs 10] [--warmup 2] [--pace MS]
    [--pid SERVER_PID] [--json] [--allow-remote]";

const MAX_USERS: usize = 100_000;

struct Args {
    common: Common,
    users: usize,
    secs: Duration,
    warmup: Duration,
    load: Load,
}

fn parse(args: Vec<String>) -> Result<Args, BenchError> {
    let mut a = Args {
        common: Common::new("/ws"),
        users: 100,
        secs: Duration::from_secs(10),
        warmup: Duration::from_secs(2),
        load: Load::Closed,
    };
    let mut flags = Flags::new(args);
    while let Some(flag) = flags.next_flag() {
        if a.common.take(&flag, &mut flags)? {
            continue;
        }
        match flag.as_str() {
            "--users" => a.users = bounded(&flag, flags.number(&flag)?, 1..=MAX_USERS)?,
            "--secs" => a.secs = secs(&flag, &mut flags, 1..=3600)?,
            "--warmup" => a.warmup = secs(&flag, &mut flags, 0..=600)?,
            "--pace" => {
                let ms: u64 = bounded(&flag, flags.number(&flag)?, 1..=3_600_000)?;
                a.load = Load::Paced {
                    mean: Duration::from_millis(ms),
                };
            }
            other => return Err(unknown(other).into()),
        }
    }
    if a.common.tokens.is_none() {
        return Err(CliError("chat needs --secret or --token-file".into()).into());
    }
    Ok(a)
}

#[derive(Serialize)]
pub struct ChatReport {
    pub command: &'static str,
    pub url: String,
    pub users: usize,
    pub opened: usize,
    /// `null`: closed loop; else the mean think time between `done` and the next message.
    pub pace_ms: Option<u64>,
    pub warmup_s: f64,
    pub secs: f64,
    /// Complete exchanges (message → `done`) in the measured window.
    pub exchanges: u64,
    pub exchanges_per_s: f64,
    /// Send → `loading` (the message is stored).
    pub loading: Percentiles,
    /// Send → the first `ai_response` chunk.
    pub first_chunk: Percentiles,
    /// Send → the `done` frame.
    pub done: Percentiles,
    /// Server CPU per exchange (one user message and its reply, both stored), µs.
    pub server_us_per_exchange: Option<f64>,
    pub cpu: CpuReport,
    pub errors: usize,
    pub first_error: Option<String>,
    pub stalled: usize,
}

pub fn run(args: Vec<String>) -> Result<(), BenchError> {
    let mut a = parse(args)?;
    let target = a.common.target(a.users)?;
    let sources = limits::sources(target.addr, a.users)?;
    let tokens = a
        .common
        .tokens
        .take()
        .ok_or_else(|| CliError("chat needs --secret or --token-file".into()))?;
    let meter = CpuMeter::new(a.common.pid);
    let mut client = Client::new(target, Chat::new(tokens, false))?.with_sources(sources);
    client.progress = Progress::new(!a.common.json);
    let burst = client.open_plan(&Plan {
        total: a.users,
        parallel: OPEN_PARALLEL,
        keep: true,
        rate: None,
        limit: Duration::from_secs(60),
    });
    if burst.upgraded == 0 {
        return Err(BenchError::Unreachable(
            burst
                .first_error
                .unwrap_or_else(|| "no socket opened".into()),
        ));
    }
    let run = client.run(a.warmup, a.secs, a.secs, &meter, a.load);
    client.close_all();
    let report = ChatReport {
        command: "chat",
        url: a.common.url.clone(),
        users: a.users,
        opened: burst.upgraded,
        pace_ms: match a.load {
            Load::Closed => None,
            Load::Paced { mean } => Some(mean.as_millis() as u64),
        },
        warmup_s: a.warmup.as_secs_f64(),
        secs: a.secs.as_secs_f64(),
        exchanges: run.messages,
        exchanges_per_s: run.messages as f64 / run.cpu.wall.max(1e-9),
        loading: Percentiles::of_ns(&run.acks),
        first_chunk: Percentiles::of_ns(&run.first),
        done: Percentiles::of_ns(&run.latencies),
        server_us_per_exchange: per_item_us(run.cpu.server, run.messages),
        cpu: run.cpu.into(),
        errors: run.errors + burst.failed,
        first_error: burst.first_error.or(run.first_error),
        stalled: run.stalled,
    };
    a.common.print(&report, human);
    Ok(())
}

fn human(r: &ChatReport) {
    println!(
        "chat {}: {} users ({} opened), {}; {} s warm-up, {} s measured",
        r.url,
        r.users,
        r.opened,
        r.pace_ms.map_or("closed loop".into(), |ms| format!(
            "paced, {ms} ms think time"
        )),
        r.warmup_s,
        r.secs
    );
    println!(
        "  {} exchanges, {:.0}/s, server {} µs CPU per exchange; {} errors, {} stalled",
        r.exchanges,
        r.exchanges_per_s,
        opt_text(r.server_us_per_exchange, 1, ""),
        r.errors,
        r.stalled
    );
    println!("  loading      {}", r.loading.line());
    println!("  first chunk  {}", r.first_chunk.line());
    println!("  done         {}", r.done.line());
    if let Some(e) = &r.first_error {
        println!("  first error: {e}");
    }
}
