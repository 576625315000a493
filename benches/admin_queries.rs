//! The admin API's reads on a large embedded store: latency of `GET P/admin/sessions`
//! pages and of `GET P/admin/metrics`, from the store call to the response body.
//!
//! ```text
//! cargo bench --bench admin_queries -- [--dir /dev/shm] [--sessions 100000] [--runs 200]
//! ```
//!
//! Seeds `--sessions` sessions into a fresh `Embedded` store under `--dir` (default
//! `/dev/shm` when it exists: seeding commits once per batch, and the figures are about
//! reads): four sessions per user, starts spread over 30 days, two messages each (a
//! user message and a reply with tokens), every 10th ended, every 20th taken over, every
//! 50th with a help request. Then runs each query `--runs` times and prints p50, p99 and
//! the maximum in milliseconds. Each run is what the `store` lane does for one request:
//! `http::admin::Call::run`, the store query and the JSON body; not the socket, nor the
//! query string's parsing (microseconds).
//!
//! The target (issue 14): p99 under 50 ms for a filtered page of 50 at 100,000 sessions.

mod support;

use std::path::PathBuf;
use std::time::Instant;

use chatbox::http::admin::Call;
use chatbox::store::embedded::Embedded;
use chatbox::store::{
    AdminQuery, Append, AssistingAdmin, Message, Millis, Order, Sender, SortBy, Store,
};
use support::args::Flags;
use support::report::quantile_us;

const USAGE: &str =
    "cargo bench --bench admin_queries -- [--dir DIR] [--sessions 100000] [--runs 200]";

const DAY: Millis = 24 * 60 * 60 * 1000;
/// Sessions seeded per write transaction.
const SEED_BATCH: usize = 1000;
const PAGE: usize = 50;

struct Options {
    dir: PathBuf,
    sessions: usize,
    runs: usize,
}

fn options() -> Options {
    let shm = PathBuf::from("/dev/shm");
    let mut options = Options {
        dir: if shm.is_dir() {
            shm
        } else {
            std::env::temp_dir()
        },
        sessions: 100_000,
        runs: 200,
    };
    let mut flags = Flags::new(USAGE);
    while let Some(flag) = flags.next_flag() {
        match flag.as_str() {
            "--dir" => options.dir = flags.text("--dir", "a directory").into(),
            "--sessions" => options.sessions = flags.number("--sessions"),
            "--runs" => options.runs = flags.number("--runs"),
            _ => flags.unknown(&flag),
        }
    }
    assert!(options.sessions >= 1 && options.runs >= 1);
    options
}

/// Session `n`: its id, owner and start.
fn session(n: usize, sessions: usize, now: Millis) -> (String, String, Millis) {
    let spread = 30 * DAY / sessions as Millis;
    (
        format!("s{n:08}"),
        format!("user-{:06}", n / 4),
        now - 30 * DAY + n as Millis * spread,
    )
}

fn seed(store: &Embedded, sessions: usize, now: Millis) {
    let started = Instant::now();
    for first in (0..sessions).step_by(SEED_BATCH) {
        let chunk: Vec<_> = (first..sessions.min(first + SEED_BATCH))
            .map(|n| session(n, sessions, now))
            .collect();
        for reply in [false, true] {
            let messages: Vec<Message> = chunk
                .iter()
                .enumerate()
                .map(|(i, (id, _, start))| {
                    let at = start + if reply { 2_000 } else { 0 };
                    let sender = if reply { Sender::Ai } else { Sender::User };
                    let mut message = Message::new(format!("{id}-{reply}"), sender, "text", at);
                    if reply {
                        message.tokens = Some(((first + i) % 997) as i64);
                        message.resp_ms = Some(((first + i) % 1_500) as i64 + 100);
                    }
                    message
                })
                .collect();
            let appends: Vec<Append> = chunk
                .iter()
                .zip(&messages)
                .map(|((id, user, _), message)| Append {
                    session_id: id,
                    user_id: user,
                    name: "bench session",
                    model_id: "echo",
                    message,
                    max_messages: 100,
                })
                .collect();
            for result in store.append_batch(&appends) {
                result.expect("seed append");
            }
        }
    }
    let admin = AssistingAdmin {
        id: "adm".into(),
        name: "Ada".into(),
    };
    for n in 0..sessions {
        let (id, _, start) = session(n, sessions, now);
        if n % 20 == 0 {
            store
                .set_assist(&id, Some(&admin), start + 3_000)
                .expect("assist");
        }
        if n % 50 == 0 {
            store.set_help_requested(&id, start + 3_000).expect("help");
        }
        if n % 10 == 0 {
            store.end(&id, start + 60_000).expect("end");
        }
    }
    println!(
        "seeded {sessions} sessions in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// One request of a case; a [`Call`] is used up by its run.
enum Work {
    List(AdminQuery),
    Metrics(Millis, Millis),
}

impl Work {
    fn call(&self) -> Call {
        match self {
            Work::List(query) => Call::List(query.clone()),
            Work::Metrics(from, to) => Call::Metrics {
                from: *from,
                to: *to,
            },
        }
    }
}

fn main() {
    let options = options();
    let dir = options
        .dir
        .join(format!("chatbox-admin-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Embedded::open(&dir).expect("open the store");
    let now = chatbox::time::unix_millis_now();
    seed(&store, options.sessions, now);

    let page = |f: &dyn Fn(&mut AdminQuery)| {
        let mut query = AdminQuery::all(PAGE);
        f(&mut query);
        Work::List(query)
    };
    let cases = [
        ("list: newest 50", page(&|_| {})),
        (
            "list: active, by last activity",
            page(&|q| {
                q.active = Some(true);
                q.sort = SortBy::LastActivity;
            }),
        ),
        (
            "list: assisted, by tokens",
            page(&|q| {
                q.admin_assisted = Some(true);
                q.sort = SortBy::TotalTokens;
            }),
        ),
        (
            "list: ended, by end time asc",
            page(&|q| {
                q.active = Some(false);
                q.sort = SortBy::EndTime;
                q.order = Order::Asc;
            }),
        ),
        (
            "list: last 7 days, by messages",
            page(&|q| {
                q.started_from = Some(now - 7 * DAY);
                q.sort = SortBy::MessageCount;
            }),
        ),
        (
            "list: last 7 days, assisted",
            page(&|q| {
                q.started_from = Some(now - 7 * DAY);
                q.admin_assisted = Some(true);
            }),
        ),
        (
            "list: one user",
            page(&|q| q.user_id = Some("user-012345".into())),
        ),
        (
            "list: by user id, offset 10000",
            page(&|q| {
                q.sort = SortBy::UserId;
                q.offset = 10_000;
            }),
        ),
        ("metrics: last 24 h", Work::Metrics(now - DAY, now)),
        ("metrics: all 30 days", Work::Metrics(now - 31 * DAY, now)),
    ];
    println!(
        "{} sessions, {} runs each, ms per request (store query + JSON body)",
        options.sessions, options.runs
    );
    println!("{:<34} {:>9} {:>9} {:>9}", "query", "p50", "p99", "max");
    for (name, work) in &cases {
        let mut took: Vec<u64> = (0..options.runs)
            .map(|_| {
                let call = work.call();
                let started = Instant::now();
                let response = call.run(&store, now);
                let elapsed = started.elapsed();
                assert_eq!(response.status, 200, "{name}");
                elapsed.as_nanos() as u64
            })
            .collect();
        took.sort_unstable();
        let ms = |p: f64| quantile_us(&took, p).map_or(f64::NAN, |us| us / 1000.0);
        println!(
            "{:<34} {:>9.2} {:>9.2} {:>9.2}",
            name,
            ms(0.50),
            ms(0.99),
            ms(1.0)
        );
    }
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
