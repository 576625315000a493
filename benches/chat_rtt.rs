//! Chat round trip with the offline `echo` model under N concurrent users, next to the raw
//! echo endpoint's round trip on the same server in the same run.
//!
//! ```text
//! cargo bench --bench chat_rtt -- [--conns 100,1000] [--secs 10] [--warmup 2] [--size 64]
//!     [--stores disk,shm,mongo] [--pace MS]
//! ```
//!
//! The bench starts the release binary (CHATBOX_BIN, else the one cargo just built) once per
//! store, pinned to CPU 0 with `taskset -c 0` under `prlimit --nofile`, and re-executes
//! itself pinned to CPU 1 (as `ws_echo` does; the client is the same one-thread mio loop with
//! hand-built frames, `chatbox::bench`). The server runs with CHATBOX_ECHO=true,
//! RATE_LIMIT=1000000 per 1s and MAX_MESSAGES_PER_SESSION=100000, so neither limit is
//! reached, and the built-in `echo` model, which streams the user's text back word by word.
//!
//! For each N in `--conns`, two rows, each with a warm-up and then `--secs` measured:
//! - `echo`: N sockets on `/chatbox/echo`, each with one `--size`-byte message in flight:
//!   the round trip through the event loop alone;
//! - `chat`: N sockets on `/chatbox/ws`, each its own user (`bench-<i>`, a fresh token and
//!   so a fresh session per row). A socket waits for `connection_status`, then sends
//!   `{"type":"user_message",…,"content":"b<i>m<n>"}` (one word), takes the time of the first
//!   `ai_response` frame (p50/p99/p999 columns: the first chunk), of the one with
//!   `"done":"true"` (the `done` columns: the whole reply) and of `loading` (the `ack`
//!   columns: sent once the user message is stored), and sends the next message.
//!   One message = one exchange: `srv µs/msg` is server CPU per user message and reply,
//!   and two messages stored (the summary's `stored/s`).
//!
//! The summary holds the issue's target: chat first-chunk p99 at most 2× the raw echo p99.
//!
//! What the chat path adds to the raw echo: frame parsing and validation, the rate limiter,
//! two store writes per message on the `store` lane (the user message, stored before
//! `loading` and the first chunk, and the reply, stored when it ends), the `llm` lane
//! thread that runs the model, the completion channel back to the loop, and three or
//! four frames out instead of one. The embedded store writes appends to its log with
//! one `fdatasync` per batch (one batch in flight, the next one holding every append
//! that arrived meanwhile) and carries them into redb in a background checkpoint every
//! second, so under load the sync is paid per batch and redb's commit per checkpoint;
//! what remains is the store's CPU per append. `--stores disk,shm` runs the whole table again on a
//! second server with DATA_DIR on /dev/shm (tmpfs, where fsync returns at once): the
//! difference between the two `chat` rows is what the disk costs. `disk` is the system
//! temp dir; its file system is printed with the conditions. `mongo` runs the table on a
//! server whose store is MongoDB: nx-27017 (Python on SQLite, the tests' server; see
//! `support::mongo`), so its rows say what chatbox's side of MongoDB costs and how an
//! outside store's round trips show in the latency, not how fast a real `mongod` is.
//!
//! By default every socket always has a message in flight (closed loop), so the server is
//! saturated and a row's latency is mostly queueing: it grows with N and with the server
//! CPU per message. Comparing `srv µs/msg` of the two phases says where a latency ratio
//! comes from.
//!
//! `--pace MS` paces both phases as users who read and type: each socket sends its next
//! message MS ms (uniformly jittered by ±50 %, from a fixed-seed PRNG, so the sockets do
//! not fall into step) after its previous answer (echo: the echo; chat: the `done` frame),
//! its first one at a uniform point of the first MS ms. The offered load is then about
//! N × 1000 / MS messages per second (printed with the table), well under saturation for
//! a large MS, and a row's latency is the service time plus what queueing remains; it is
//! still measured from the send to the echo or first chunk. Sends wait in a min-heap of
//! due times and the poll sleeps until the earliest one (epoll rounds up to 1 ms).
//!
//! Reading a row: `others` is the CPU every other process used meanwhile, plus steal; far
//! from 0 % means a build or test ran next to the bench, and that row's latencies are not
//! to be trusted. A `chat` row whose `srv CPU` stays well under 100 % while latency grows
//! with N is waiting on the disk, not on the CPU. `stalled` counts sockets whose message
//! in flight has waited for its answer 1 s (echo) or the whole measured window (chat,
//! where replies may take seconds under load) at the end of the row; `errors` are
//! sockets lost to a server error frame or close, the first one printed under the row.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use chatbox::bench::chat::{Chat, Tokens};
use chatbox::bench::client::{Client, Run};
use chatbox::bench::echo::Echo;
use chatbox::bench::pace::Load;
use support::args::Flags;
use support::idle::idle_phase;
use support::mongo::MongoUnderTest;
use support::report::{grouped, print_open_failures, quantile_us, row, run_cells, RUN_COLUMNS};
use support::system::{
    cpu_count, fs_type, parse_url, print_conditions, reexec_if_needed, server_under_test, CpuMeter,
    Launch, CLIENT_CPU, JWT_SECRET,
};

/// An echo socket whose message waits this long at the end of a row counts as stalled.
const ECHO_STALL: Duration = Duration::from_secs(1);
const TOKEN_TTL_SECS: u64 = 3600;
/// The issue's target: chat first-chunk p99 at most this many times the raw echo p99.
const TARGET_RATIO: f64 = 2.0;

const USAGE: &str = "usage: cargo bench --bench chat_rtt -- [--conns 100,1000] [--secs 10] \
                     [--warmup 2] [--size 64] [--stores disk,shm,mongo] [--pace MS] [--idle N]";

#[derive(Clone, Copy, PartialEq)]
enum Store {
    /// DATA_DIR in the system temp dir: the disk, fsync per commit.
    Disk,
    /// DATA_DIR on /dev/shm (tmpfs): fsync returns at once.
    Shm,
    /// MONGO_URI: nx-27017 on 127.0.0.1 (`support::mongo`), its file in the temp dir.
    Mongo,
}

impl Store {
    fn name(self) -> &'static str {
        match self {
            Store::Disk => "disk",
            Store::Shm => "shm",
            Store::Mongo => "mongo",
        }
    }

    fn data_parent(self) -> PathBuf {
        match self {
            Store::Disk | Store::Mongo => std::env::temp_dir(),
            Store::Shm => PathBuf::from("/dev/shm"),
        }
    }
}

struct Args {
    conns: Vec<usize>,
    secs: u64,
    warmup: u64,
    size: usize,
    stores: Vec<Store>,
    load: Load,
    /// Chat sockets to hold open, silent, for the idle footprint (0: skip).
    idle: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        conns: vec![100, 1000],
        secs: 10,
        warmup: 2,
        size: 64,
        stores: vec![Store::Disk],
        load: Load::Closed,
        idle: 0,
    };
    let mut flags = Flags::new(USAGE);
    while let Some(flag) = flags.next_flag() {
        match flag.as_str() {
            "--conns" => {
                args.conns = flags.list("--conns", "numbers above 0 like 100,1000", |n| {
                    n.parse().ok().filter(|&n| n > 0)
                })
            }
            "--secs" => args.secs = flags.number("--secs"),
            "--warmup" => args.warmup = flags.number("--warmup"),
            "--size" => args.size = flags.number("--size"),
            "--stores" => {
                args.stores =
                    flags.list(
                        "--stores",
                        "disk, shm or mongo, like disk,mongo",
                        |s| match s {
                            "disk" => Some(Store::Disk),
                            "shm" => Some(Store::Shm),
                            "mongo" => Some(Store::Mongo),
                            _ => None,
                        },
                    )
            }
            "--pace" => {
                let ms: u64 = flags.number("--pace");
                assert!(ms > 0, "--pace must be at least 1 ms");
                args.load = Load::Paced {
                    mean: Duration::from_millis(ms),
                };
            }
            "--idle" => args.idle = flags.number("--idle"),
            other => flags.unknown(other),
        }
    }
    assert!(args.secs > 0, "--secs must be at least 1");
    args
}

/// Every socket its own user, `bench-<i>`, with a token minted from the server's secret.
fn chat_protocol() -> Chat {
    let tokens = Tokens::Mint {
        secret: JWT_SECRET.as_bytes().to_vec(),
        prefix: "bench-".into(),
        ttl_secs: TOKEN_TTL_SECS,
    };
    Chat::new(tokens, false)
}

// ---------------------------------------------------------------------------------------
// Rows and the summary.

/// Latencies (µs) of one N on one store, for the summary.
struct Compared {
    store: Store,
    conns: usize,
    echo_p99: Option<f64>,
    chat_p50: Option<f64>,
    chat_p99: Option<f64>,
    /// Appends per second: each exchange stores the user message and the reply.
    stored_per_sec: f64,
    ack_p50: Option<f64>,
    ack_p99: Option<f64>,
}

/// Prints one row: `first` are the latencies of the p50/p99/p999 columns; chat only: `done`
/// those of the whole reply and `ack` those of `loading` (the user message stored).
fn print_row(
    n: usize,
    phase: &str,
    run: &Run,
    first: &[u64],
    done: Option<&[u64]>,
    ack: Option<&[u64]>,
) {
    let us = |sorted: Option<&[u64]>, p| {
        sorted
            .and_then(|s| quantile_us(s, p))
            .map_or("-".into(), |v| format!("{v:.1}"))
    };
    let mut cells = vec![(n.to_string(), 6), (phase.to_owned(), 5)];
    cells.extend(run_cells(run, first));
    cells.push((us(done, 0.50), 10));
    cells.push((us(done, 0.99), 10));
    cells.push((us(ack, 0.50), 9));
    cells.push((us(ack, 0.99), 9));
    println!("{}", row(&cells));
    if let Some(e) = &run.first_error {
        println!("    first error: {e}");
    }
}

/// One server with DATA_DIR on `store`: an echo and a chat row for each N.
fn run_store(args: &Args, store: Store) -> Vec<Compared> {
    let max_conns = args.conns.iter().copied().max().unwrap_or(0).max(args.idle);
    let max_connections = max_conns + 1000;
    let mut launch = Launch {
        name: "chatbox-chat-rtt",
        data_parent: store.data_parent(),
        max_connections,
        env: vec![
            ("RATE_LIMIT", "1000000".into()),
            ("RATE_LIMIT_WINDOW", "1s".into()),
            ("MAX_MESSAGES_PER_SESSION", "100000".into()),
        ],
    };
    // Started first and dropped last: chatbox must not outlive its database.
    let mongo = (store == Store::Mongo).then(MongoUnderTest::start);
    if let Some(mongo) = &mongo {
        launch.env.push(("MONGO_URI", mongo.uri.clone()));
    }
    // Dropping `server` at the end (or on a panic) kills it and removes its DATA_DIR.
    let (server, echo_url, server_pid) = server_under_test(None, None, &launch);
    let server = server.expect("a server started here");
    let meter = CpuMeter::new(server_pid);
    let echo_target = parse_url(&echo_url);
    let chat_target = echo_target.with_path("/chatbox/ws");
    println!();
    print_conditions(
        &format!(
            "chat_rtt  {echo_url} and /chatbox/ws, store on {}",
            store.name()
        ),
        Some(max_connections),
        &meter,
    );
    match &mongo {
        Some(mongo) => println!(
            "  store    MongoDB {} (nx-27017 on SQLite, unpinned: its CPU is in `others`)",
            mongo.uri
        ),
        None => println!(
            "  store    DATA_DIR {} ({}), embedded redb, fsync per commit",
            server.data_dir().display(),
            fs_type(server.data_dir()).unwrap_or_else(|| "file system unknown".into()),
        ),
    }
    println!(
        "  chat     model echo, one-word contents, RATE_LIMIT=1000000/1s, \
         MAX_MESSAGES_PER_SESSION=100000, one user per socket"
    );
    let mut chat = Client::new(chat_target, chat_protocol()).expect("epoll");
    if args.idle > 0 {
        idle_phase(&mut chat, &meter, args.idle, "chat sockets (one user each)");
    }
    println!(
        "\nround trip ({} s warm-up, {} s measured per row; echo: {}-byte messages; \
         chat: p50/p99/p999 to the first ai_response, done p50/p99 to the done frame)",
        args.warmup, args.secs, args.size
    );
    if let Load::Paced { .. } = args.load {
        let offered: Vec<String> = args
            .conns
            .iter()
            .filter_map(|&n| Some(format!("{} msg/s at {n}", grouped(args.load.offered(n)?))))
            .collect();
        println!(
            "{}: offered load about {} conns",
            args.load.describe(),
            offered.join(", ")
        );
    }
    let mut headings = vec![("conns", 6), ("phase", 5)];
    headings.extend(RUN_COLUMNS);
    headings.extend([
        ("done p50", 10),
        ("done p99", 10),
        ("ack p50", 9),
        ("ack p99", 9),
    ]);
    println!("{}", row(&headings));

    let warmup = Duration::from_secs(args.warmup);
    let measured = Duration::from_secs(args.secs);
    let mut echo = Client::new(echo_target, Echo::new(args.size)).expect("epoll");
    let mut compared = Vec::new();
    for &n in &args.conns {
        meter.settle();
        print_open_failures(n, &echo.open_for_run(n));
        let echo_run = echo.run(warmup, measured, ECHO_STALL, &meter, args.load);
        echo.close_all();
        print_row(n, "echo", &echo_run, &echo_run.latencies, None, None);

        meter.settle();
        print_open_failures(n, &chat.open_for_run(n));
        let chat_run = chat.run(warmup, measured, measured, &meter, args.load);
        chat.close_all();
        print_row(
            n,
            "chat",
            &chat_run,
            &chat_run.first,
            Some(&chat_run.latencies),
            Some(&chat_run.acks),
        );
        compared.push(Compared {
            store,
            conns: n,
            echo_p99: quantile_us(&echo_run.latencies, 0.99),
            chat_p50: quantile_us(&chat_run.first, 0.50),
            chat_p99: quantile_us(&chat_run.first, 0.99),
            stored_per_sec: 2.0 * chat_run.messages as f64
                / chat_run.cpu.wall.max(f64::MIN_POSITIVE),
            ack_p50: quantile_us(&chat_run.acks, 0.50),
            ack_p99: quantile_us(&chat_run.acks, 0.99),
        });
    }
    compared
}

fn print_summary(rows: &[Compared], load: Load) {
    let us = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}"));
    println!(
        "\nchat first-chunk p99 against the raw echo p99 of the same server \
         (target: at most {TARGET_RATIO}×), {}",
        load.describe()
    );
    let headings = [
        ("store", 5),
        ("conns", 6),
        ("echo p99 µs", 12),
        ("chat p50 µs", 12),
        ("chat p99 µs", 12),
        ("ratio", 8),
        ("target", 7),
    ];
    println!("{}", row(&headings));
    for r in rows {
        let ratio = r.chat_p99.zip(r.echo_p99).map(|(chat, echo)| chat / echo);
        let cells = [
            r.store.name().to_owned(),
            r.conns.to_string(),
            us(r.echo_p99),
            us(r.chat_p50),
            us(r.chat_p99),
            ratio.map_or("-".into(), |v| format!("{v:.1}×")),
            match ratio {
                Some(v) if v <= TARGET_RATIO => "holds".into(),
                Some(_) => "missed".into(),
                None => "-".into(),
            },
        ];
        let cells: Vec<_> = cells.into_iter().zip(headings.map(|h| h.1)).collect();
        println!("{}", row(&cells));
    }
    println!(
        "\nstore writes through the store lane: messages stored per second (two per \
         exchange: the user message and the reply) and user_message to `loading` (sent once \
         the message is stored)"
    );
    let headings = [
        ("store", 5),
        ("conns", 6),
        ("stored/s", 10),
        ("ack p50 µs", 11),
        ("ack p99 µs", 11),
    ];
    println!("{}", row(&headings));
    for r in rows {
        let cells = [
            r.store.name().to_owned(),
            r.conns.to_string(),
            grouped(r.stored_per_sec),
            us(r.ack_p50),
            us(r.ack_p99),
        ];
        let cells: Vec<_> = cells.into_iter().zip(headings.map(|h| h.1)).collect();
        println!("{}", row(&cells));
    }
    // With both stores: how much of the chat first chunk the durable commits explain.
    for disk in rows.iter().filter(|r| r.store == Store::Disk) {
        let shm = rows
            .iter()
            .find(|r| r.store == Store::Shm && r.conns == disk.conns);
        if let Some((disk_p99, shm_p99)) = disk.chat_p99.zip(shm.and_then(|s| s.chat_p99)) {
            println!(
                "  {} conns: DATA_DIR on tmpfs takes chat first-chunk p99 from {disk_p99:.1} to \
                 {shm_p99:.1} µs: the disk (fsync per commit) accounts for {:.0} % of it",
                disk.conns,
                100.0 * (disk_p99 - shm_p99) / disk_p99
            );
        }
    }
}

fn main() {
    let args = parse_args();
    let max_conns = args.conns.iter().copied().max().unwrap_or(0).max(args.idle);
    reexec_if_needed(
        (cpu_count() >= 2).then_some(CLIENT_CPU),
        max_conns as u64 + 256,
    );
    let mut compared = Vec::new();
    for &store in &args.stores {
        compared.extend(run_store(&args, store));
    }
    print_summary(&compared, args.load);
}
