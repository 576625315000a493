//! `drain`: hold N chat sessions with replies streaming (closed loop), send SIGTERM to
//! `--pid` (or wait for someone else's, seen as `/readyz` turning), and report when
//! `/readyz` flipped, when each socket got its 1001, how many replies completed and —
//! with the store reachable — whether any acknowledged message is missing afterwards.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{opt_text, secs, BenchError, Common, CpuReport};
use crate::bench::chat::Chat;
use crate::bench::cli::{bounded, unknown, CliError, Flags};
use crate::bench::client::{nanos, Client, Outcome, Plan, Step, OPEN_PARALLEL};
use crate::bench::frames::Target;
use crate::bench::hist::{human_us, Percentiles};
use crate::bench::limits;
use crate::bench::meter::{is_running, CpuMeter, CpuSample};
use crate::bench::pace::{Load, Pacer};
use crate::bench::probe;
use crate::bench::progress::Progress;
use crate::bench::verify::{self, StoreAt, Verdict};
use crate::config::parse_duration;

pub const USAGE: &str = "chatbox-bench drain (--secret JWT_SECRET | --token-file FILE)
    [--url ws://HOST:PORT/chatbox/ws] [--sessions 100] [--pace 2000 | --closed] [--warmup 1] [--limit 60]
    [--pid SERVER_PID] [--readyz http://HOST:PORT/chatbox/readyz] [--drain-delay 5s]
    [--data-dir DIR | --mongo-uri URI [--mongo-database chat] [--mongo-collection sessions]]
    [--json] [--allow-remote]";

const MAX_SESSIONS: usize = 100_000;
/// Think time between a reply's `done` and the session's next message, by default: a
/// drain under a load the server keeps up with (a saturated server answers `busy`).
const DEFAULT_PACE: Duration = Duration::from_millis(2000);
/// How often `/readyz` is asked while waiting for it to turn.
const READYZ_EVERY: Duration = Duration::from_millis(10);

struct Args {
    common: Common,
    sessions: usize,
    load: Load,
    warmup: Duration,
    limit: Duration,
    readyz: Option<String>,
    drain_delay: Option<Duration>,
    store: Option<StoreAt>,
}

fn parse(args: Vec<String>) -> Result<Args, BenchError> {
    let mut a = Args {
        common: Common::new("/ws"),
        sessions: 100,
        load: Load::Paced { mean: DEFAULT_PACE },
        warmup: Duration::from_secs(1),
        limit: Duration::from_secs(60),
        readyz: None,
        drain_delay: None,
        store: None,
    };
    let (mut database, mut collection) = ("chat".to_owned(), "sessions".to_owned());
    let mut mongo_uri = None;
    let mut flags = Flags::new(args);
    while let Some(flag) = flags.next_flag() {
        if a.common.take(&flag, &mut flags)? {
            continue;
        }
        match flag.as_str() {
            "--sessions" => a.sessions = bounded(&flag, flags.number(&flag)?, 1..=MAX_SESSIONS)?,
            "--warmup" => a.warmup = secs(&flag, &mut flags, 0..=600)?,
            "--pace" => {
                let ms: u64 = bounded(&flag, flags.number(&flag)?, 1..=3_600_000)?;
                a.load = Load::Paced {
                    mean: Duration::from_millis(ms),
                };
            }
            "--closed" => a.load = Load::Closed,
            "--limit" => a.limit = secs(&flag, &mut flags, 1..=3600)?,
            "--readyz" => a.readyz = Some(flags.text(&flag)?),
            "--drain-delay" => {
                let text = flags.text(&flag)?;
                let delay = parse_duration(&text)
                    .map_err(|e| CliError(format!("--drain-delay {text:?}: {e}")))?;
                a.drain_delay = Some(delay);
            }
            "--data-dir" => a.store = Some(StoreAt::Dir(flags.text(&flag)?.into())),
            "--mongo-uri" => mongo_uri = Some(flags.text(&flag)?),
            "--mongo-database" => database = flags.text(&flag)?,
            "--mongo-collection" => collection = flags.text(&flag)?,
            other => return Err(unknown(other).into()),
        }
    }
    if let Some(uri) = mongo_uri {
        a.store = Some(StoreAt::Mongo {
            uri,
            database,
            collection,
        });
    }
    if a.common.tokens.is_none() {
        return Err(CliError("drain needs --secret or --token-file".into()).into());
    }
    Ok(a)
}

#[derive(Serialize, Default)]
pub struct DrainReport {
    pub command: &'static str,
    pub url: String,
    pub sessions: usize,
    pub opened: usize,
    /// Think time between a `done` and the next message; `null`: closed loop.
    pub pace_ms: Option<u64>,
    /// `sent` (to `--pid`) or `external` (its time is when `/readyz` turned).
    pub sigterm: &'static str,
    /// SIGTERM → the first `/readyz` answer other than 200 (or a refused connection).
    pub readyz_flipped_ms: Option<f64>,
    /// Sockets that got a close frame with 1001.
    pub closed_1001: usize,
    /// Sockets closed with another code, and those codes.
    pub closed_other: usize,
    pub other_closes: Vec<Option<u16>>,
    /// Sockets that ended without a close frame (reset, EOF, an error frame).
    pub dropped: usize,
    /// Sockets still open when `--limit` ran out.
    pub still_open: usize,
    /// SIGTERM → each socket's 1001.
    pub close_1001: Percentiles,
    pub first_1001_ms: Option<f64>,
    pub last_1001_ms: Option<f64>,
    /// With `--drain-delay`: the last 1001 this long after the delay ended (target ≤ 1 s).
    pub last_1001_after_delay_ms: Option<f64>,
    /// Replies that ended with `done` after SIGTERM, and before it.
    pub replies_completed: u64,
    pub replies_before_sigterm: u64,
    /// Messages the server refused with a recoverable `error` (busy): not acknowledged.
    pub refused: u64,
    /// Sockets closed while their message had no `done` yet.
    pub replies_cut: usize,
    /// User messages the server acknowledged with `loading`.
    pub acked: usize,
    /// CPU from SIGTERM until every socket was closed (`others_s`: noise).
    pub cpu: CpuReport,
    /// SIGTERM → the server's process gone (`--pid` only).
    pub server_exit_ms: Option<f64>,
    /// `embedded`, `mongo`, or `null` without a store to check.
    pub store: Option<&'static str>,
    /// Acknowledged messages missing from the store (`null`: not checked).
    pub lost: Option<usize>,
    pub lost_examples: Vec<verify::LostMessage>,
    pub first_error: Option<String>,
}

/// Asks `/readyz` until it is not 200 (or `stop`); returns when it turned.
fn watch_readyz(
    target: Target,
    path: String,
    stop: Arc<AtomicBool>,
) -> JoinHandle<Option<Instant>> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match probe::get_status(target.addr, &target.authority, &path) {
                Ok(200) => std::thread::sleep(READYZ_EVERY),
                _ => return Some(Instant::now()),
            }
        }
        None
    })
}

/// `/readyz` next to the WebSocket URL: `…/ws` or `…/echo` becomes `…/readyz`.
fn readyz_path(target: &Target, given: Option<&str>) -> Result<(Target, String), BenchError> {
    if let Some(url) = given {
        let ws = url.replacen("http://", "ws://", 1);
        let t = Target::parse(&ws)?;
        let path = t.path.clone();
        return Ok((t, path));
    }
    let base = target.path.split('?').next().unwrap_or("/");
    let prefix = base.rsplit_once('/').map_or("", |(p, _)| p);
    Ok((target.clone(), format!("{prefix}/readyz")))
}

fn send_sigterm(pid: u32) -> Result<(), BenchError> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| CliError(format!("--pid {pid} is not a process id")))?;
    // SAFETY: kill has no memory effects; a wrong pid is an error return.
    if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
        return Err(BenchError::Io(std::io::Error::last_os_error()));
    }
    Ok(())
}

pub fn run(args: Vec<String>) -> Result<(), BenchError> {
    let mut a = parse(args)?;
    let target = a.common.target(a.sessions)?;
    let (readyz_target, readyz) = readyz_path(&target, a.readyz.as_deref())?;
    limits::check_target(readyz_target.addr, a.common.allow_remote)?;
    let tokens = a
        .common
        .tokens
        .take()
        .ok_or_else(|| CliError("drain needs --secret or --token-file".into()))?;
    let sources = limits::sources(target.addr, a.sessions)?;
    let mut client = Client::new(target.clone(), Chat::new(tokens, true))?.with_sources(sources);
    client.progress = Progress::new(!a.common.json);
    let burst = client.open_plan(&Plan {
        total: a.sessions,
        parallel: OPEN_PARALLEL,
        keep: true,
        rate: None,
        limit: a.limit,
    });
    if burst.upgraded == 0 {
        return Err(BenchError::Unreachable(
            burst
                .first_error
                .unwrap_or_else(|| "no session opened".into()),
        ));
    }
    let mut report = DrainReport {
        command: "drain",
        url: a.common.url.clone(),
        sessions: a.sessions,
        opened: burst.upgraded,
        pace_ms: match a.load {
            Load::Closed => None,
            Load::Paced { mean } => Some(mean.as_millis() as u64),
        },
        sigterm: if a.common.pid.is_some() {
            "sent"
        } else {
            "external"
        },
        store: a.store.as_ref().map(StoreAt::kind),
        first_error: burst.first_error,
        ..DrainReport::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_readyz(readyz_target, readyz, Arc::clone(&stop));
    let sigterm = drive(&mut client, &a, &mut report, &watcher)?;
    stop.store(true, Ordering::Relaxed);
    // The watcher ends within one probe once told to stop.
    let flipped = watcher.join().ok().flatten();
    report.readyz_flipped_ms = flipped.zip(sigterm).map(|(f, s)| ms(s, f));
    report.acked = client.proto.acked.borrow().len();
    if let (Some(pid), Some(at)) = (a.common.pid, sigterm) {
        let deadline = at + a.limit;
        while is_running(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        report.server_exit_ms = (!is_running(pid)).then(|| ms(at, Instant::now()));
    }
    if let Some(store_at) = &a.store {
        let verdict = verify::open_when_free(store_at, a.limit)
            .and_then(|store| verify::check(store.as_ref(), &client.proto.acked.borrow()))
            .map_err(|e| BenchError::Store(e.to_string()))?;
        let Verdict {
            lost,
            lost_examples,
            ..
        } = verdict;
        report.lost = Some(lost);
        report.lost_examples = lost_examples;
    }
    a.common.print(&report, human);
    Ok(())
}

fn ms(from: Instant, to: Instant) -> f64 {
    nanos(from, to) as f64 / 1e6
}

/// The closed loop through SIGTERM until every socket is closed (or `--limit`); fills
/// the report's socket figures and returns when SIGTERM was sent or seen.
fn drive(
    client: &mut Client<Chat>,
    a: &Args,
    report: &mut DrainReport,
    watcher: &JoinHandle<Option<Instant>>,
) -> Result<Option<Instant>, BenchError> {
    let start = Instant::now();
    let meter = CpuMeter::new(a.common.pid);
    let mut sigterm: Option<Instant> = None;
    let mut at_sigterm: Option<CpuSample> = None;
    let mut closes_1001 = Vec::new();
    let mut pacer = match a.load {
        Load::Closed => None,
        Load::Paced { mean } => Some(Pacer::new(mean)),
    };
    let mut due = Vec::new();
    for slot in client.live() {
        match pacer.as_mut() {
            Some(pacer) => pacer.start(slot, start),
            None => due.push(slot),
        }
    }
    loop {
        let now = Instant::now();
        if let Some(pacer) = pacer.as_mut() {
            due.extend(std::iter::from_fn(|| pacer.pop_due(now)));
        }
        for slot in due.drain(..) {
            // A socket closed meanwhile has nothing to send.
            if !client.is_live(slot) || client.waiting_since(slot).is_some() {
                continue;
            }
            if let Err(e) = client.send(slot) {
                report.first_error.get_or_insert(e);
                report.dropped += 1;
                client.remove(slot);
            }
        }
        if sigterm.is_none() {
            match a.common.pid {
                Some(pid) if now >= start + a.warmup => {
                    at_sigterm = Some(meter.sample());
                    send_sigterm(pid)?;
                    sigterm = Some(Instant::now());
                }
                // Someone else's SIGTERM: `/readyz` turning is the first sign of it.
                None if watcher.is_finished() => {
                    at_sigterm = Some(meter.sample());
                    sigterm = Some(now);
                }
                _ => {}
            }
        }
        let deadline = sigterm.unwrap_or(start + a.warmup) + a.limit;
        if client.open == 0 || now >= deadline {
            break;
        }
        for Outcome { slot, result, .. } in client.poll_once(Duration::from_millis(10))? {
            let cut = client.waiting_since(slot).is_some();
            match result {
                Ok(Step::Reply { .. }) => {
                    if sigterm.is_some() {
                        report.replies_completed += 1;
                    } else {
                        report.replies_before_sigterm += 1;
                    }
                    match pacer.as_mut() {
                        Some(pacer) => pacer.after_answer(slot, Instant::now()),
                        None => due.push(slot),
                    }
                    continue;
                }
                Ok(Step::Refused(e)) => {
                    report.refused += 1;
                    report.first_error.get_or_insert(e);
                    match pacer.as_mut() {
                        Some(pacer) => pacer.after_answer(slot, Instant::now()),
                        None => due.push(slot),
                    }
                    continue;
                }
                Ok(Step::Closed { code }) => {
                    if code == Some(1001) {
                        closes_1001.push(Instant::now());
                    } else {
                        report.closed_other += 1;
                        report.other_closes.push(code);
                    }
                    report.replies_cut += usize::from(cut);
                    client.answer_close(slot, code);
                    continue;
                }
                Ok(_) => continue,
                Err(e) => {
                    report.dropped += 1;
                    report.first_error.get_or_insert(e);
                }
            }
            report.replies_cut += usize::from(cut);
            client.remove(slot);
        }
        let (open, closed) = (client.open, closes_1001.len());
        client
            .progress
            .show(|| format!("{open} sockets open, {closed} got 1001"));
    }
    client.progress.clear();
    if let Some(at) = at_sigterm {
        report.cpu = meter.delta(at, meter.sample()).into();
    }
    report.still_open = client.open;
    client.close_all();
    report.closed_1001 = closes_1001.len();
    if let Some(at) = sigterm {
        let after: Vec<u64> = closes_1001.iter().map(|&c| nanos(at, c)).collect();
        report.close_1001 = Percentiles::of_ns(&after);
        report.first_1001_ms = closes_1001.first().map(|&c| ms(at, c));
        report.last_1001_ms = closes_1001.last().map(|&c| ms(at, c));
        report.last_1001_after_delay_ms = report
            .last_1001_ms
            .zip(a.drain_delay)
            .map(|(last, delay)| last - delay.as_secs_f64() * 1000.0);
    }
    Ok(sigterm)
}

fn human(r: &DrainReport) {
    let ms = |v: Option<f64>| v.map_or("-".into(), |v| human_us(v * 1000.0));
    println!(
        "drain {}: {} sessions ({} opened), SIGTERM {}",
        r.url, r.sessions, r.opened, r.sigterm
    );
    println!(
        "  /readyz not ready  {} after SIGTERM",
        ms(r.readyz_flipped_ms)
    );
    println!(
        "  1001               {} sockets: first {}, last {} after SIGTERM{}",
        r.closed_1001,
        ms(r.first_1001_ms),
        ms(r.last_1001_ms),
        r.last_1001_after_delay_ms
            .map_or(String::new(), |v| format!(
                " ({} after the drain delay)",
                human_us(v * 1000.0)
            ))
    );
    println!(
        "  other              {} other closes {:?}, {} dropped, {} still open",
        r.closed_other, r.other_closes, r.dropped, r.still_open
    );
    println!(
        "  replies            {} completed after SIGTERM ({} before), {} cut, {} refused (busy)",
        r.replies_completed, r.replies_before_sigterm, r.replies_cut, r.refused
    );
    println!(
        "  server exit        {} after SIGTERM; CPU until the last close: server {} s, \
         client {} s, others {} s",
        ms(r.server_exit_ms),
        opt_text(r.cpu.server_s, 2, ""),
        opt_text(r.cpu.client_s, 2, ""),
        opt_text(r.cpu.others_s, 2, "")
    );
    match (r.store, r.lost) {
        (Some(store), Some(lost)) => println!(
            "  store ({store})     {} acknowledged, {lost} missing{}",
            r.acked,
            r.lost_examples.first().map_or(String::new(), |m| format!(
                " (e.g. {:?} in {})",
                m.content, m.session
            ))
        ),
        _ => println!(
            "  store              not checked ({} acknowledged)",
            r.acked
        ),
    }
    if let Some(e) = &r.first_error {
        println!("  first error: {e}");
    }
}
