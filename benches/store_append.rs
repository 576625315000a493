//! A store's appends alone, without the server: throughput and CPU per append for
//! `append_batch` at several batch sizes.
//!
//! ```text
//! cargo bench --bench store_append -- [--dir /dev/shm] [--sessions 1000] [--messages 4]
//!     [--batches 1,10,100] [--secs 3] [--size 120] [--mongo [--rtt-ms MS]]
//! ```
//!
//! Opens an `Embedded` store in a fresh directory under `--dir` (default: the system temp
//! dir; `/dev/shm` is tmpfs, where fsync returns at once and what remains is CPU), or with
//! `--mongo` the MongoDB backend on nx-27017 started here (`support::mongo`; `--rtt-ms`
//! puts it behind a relay that adds that round trip, as a network would), creates
//! `--sessions` sessions with `--messages` messages each, then for each batch size B runs
//! `append_batch` with B appends to B distinct sessions, taken round-robin over all of
//! them (in a fixed shuffled order, as random ids would be), for `--secs` seconds. Messages alternate user / AI (the AI ones carry tokens and
//! a response time, as in the chat), with `--size` bytes of content.
//!
//! `CPU µs/append` is this process's utime + stime (getrusage) over the run divided by the
//! appends: the store runs on the calling thread, so it is the store's CPU. On a real disk
//! most of the wall time is fsync, so there the `appends/s` column mostly measures the
//! device; compare CPU. With `--mongo` it is chatbox's side of an append (the driver and
//! its runtime threads included); the database's own CPU is the other process's.
mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chatbox::config::Config;
use chatbox::store::embedded::Embedded;
use chatbox::store::mongo::Mongo;
use chatbox::store::{Append, Message, Sender, Store};
use support::args::Flags;
use support::mongo::MongoUnderTest;
use support::system::{fs_type, JWT_SECRET};

const USAGE: &str = "cargo bench --bench store_append -- [--dir DIR] [--sessions 1000] \
                     [--messages 4] [--batches 1,10,100] [--secs 3] [--size 120] [--mongo [--rtt-ms MS]]";

struct Options {
    dir: PathBuf,
    sessions: usize,
    messages: usize,
    batches: Vec<usize>,
    secs: f64,
    size: usize,
    mongo: bool,
    rtt_ms: u64,
}

fn options() -> Options {
    let mut options = Options {
        dir: std::env::temp_dir(),
        sessions: 1000,
        messages: 4,
        batches: vec![1, 10, 100],
        secs: 3.0,
        size: 120,
        mongo: false,
        rtt_ms: 0,
    };
    let mut flags = Flags::new(USAGE);
    while let Some(flag) = flags.next_flag() {
        match flag.as_str() {
            "--dir" => options.dir = flags.text("--dir", "a directory").into(),
            "--sessions" => options.sessions = flags.number("--sessions"),
            "--messages" => options.messages = flags.number("--messages"),
            "--batches" => {
                options.batches = flags.list("--batches", "batch sizes", |s| s.parse().ok())
            }
            "--secs" => options.secs = flags.number("--secs"),
            "--size" => options.size = flags.number("--size"),
            "--mongo" => options.mongo = true,
            "--rtt-ms" => options.rtt_ms = flags.number("--rtt-ms"),
            _ => flags.unknown(&flag),
        }
    }
    assert!(
        options
            .batches
            .iter()
            .all(|&b| b >= 1 && b <= options.sessions),
        "a batch names distinct sessions: every batch size must be 1..=--sessions"
    );
    options
}

/// User and system CPU of this process so far.
fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; RUSAGE_SELF always exists.
    let usage = unsafe {
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()), 0);
        usage.assume_init()
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// Message `n` of a session: even ones from the user, odd ones AI replies.
fn message(n: u64, at: i64, content: &str) -> Message {
    let sender = if n.is_multiple_of(2) {
        Sender::User
    } else {
        Sender::Ai
    };
    let mut message = Message::new(format!("m-{at}-{n}"), sender, content, at);
    if sender == Sender::Ai {
        message.model = Some("echo".into());
        message.tokens = Some(42);
        message.resp_ms = Some(350);
    }
    message
}

/// Sessions `ids[first..first + count]` (wrapping), one message each, as one batch.
fn batch(
    store: &dyn Store,
    ids: &[String],
    first: usize,
    count: usize,
    n: u64,
    at: i64,
    text: &str,
) {
    let messages: Vec<Message> = (0..count).map(|_| message(n, at, text)).collect();
    let appends: Vec<Append> = (0..count)
        .map(|i| {
            let id = &ids[(first + i) % ids.len()];
            Append {
                session_id: id,
                // Two sessions per user, as a user who came back would have.
                user_id: &id[..id.len() - 2],
                name: "bench session",
                model_id: "echo",
                message: &messages[i],
                max_messages: usize::MAX,
            }
        })
        .collect();
    for result in store.append_batch(&appends) {
        result.expect("append");
    }
}

fn main() {
    let options = options();
    let dir = options
        .dir
        .join(format!("chatbox-store-append-{}", std::process::id()));
    let mongo = options.mongo.then(MongoUnderTest::start);
    let uri = mongo.as_ref().map(|server| match options.rtt_ms {
        0 => server.uri.clone(),
        ms => support::mongo::delayed(&server.uri, Duration::from_micros(ms * 500)),
    });
    let store: Box<dyn Store> = match &uri {
        Some(uri) => {
            let vars = [("JWT_SECRET", JWT_SECRET), ("MONGO_URI", uri.as_str())]
                .map(|(k, v)| (k.to_owned(), v.to_owned()));
            let config = Config::from_vars(&vars.into_iter().collect()).expect("settings");
            let settings = config.store.mongo.as_ref().expect("MONGO_URI is set");
            Box::new(Mongo::connect(settings).expect("connect to MongoDB"))
        }
        None => Box::new(Embedded::open(&dir).expect("open the store")),
    };
    let store = &*store;
    let mut ids: Vec<String> = (0..options.sessions)
        .map(|i| format!("user-{:05}-{}", i / 2, i % 2))
        .collect();
    // Real session ids are random, so a batch's sessions lie scattered over the key
    // space: go round-robin in a fixed shuffled order, not in key order, where a batch
    // would touch only a few neighbouring pages.
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for i in (1..ids.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        ids.swap(i, (seed % (i as u64 + 1)) as usize);
    }
    let content = "x".repeat(options.size);
    let mut at = 1_700_000_000_000_i64;

    // Set-up: every session exists with a few messages, so appends update existing ones.
    for n in 0..options.messages as u64 {
        for first in (0..ids.len()).step_by(100) {
            at += 1;
            batch(
                store,
                &ids,
                first,
                100.min(ids.len() - first),
                n,
                at,
                &content,
            );
        }
    }

    let place = match &uri {
        Some(uri) => format!(
            "MongoDB {uri} (nx-27017, {} ms added round trip)",
            options.rtt_ms
        ),
        None => format!(
            "{} ({})",
            dir.display(),
            fs_type(&dir).unwrap_or_else(|| "file system unknown".into())
        ),
    };
    println!(
        "store_append: {place}, {} sessions × {} messages set up, {} B content, {} s per row",
        options.sessions, options.messages, options.size, options.secs,
    );
    println!(
        "{:>6} {:>9} {:>10} {:>14} {:>15}",
        "batch", "appends", "appends/s", "CPU µs/append", "wall µs/batch"
    );
    let mut next = 0;
    let mut n = options.messages as u64;
    for &size in &options.batches {
        let (cpu0, wall0) = (cpu_time(), Instant::now());
        let mut batches = 0_u64;
        while wall0.elapsed().as_secs_f64() < options.secs {
            at += 1;
            batch(store, &ids, next, size, n, at, &content);
            next += size;
            if next >= ids.len() {
                // A full round: every session got one more message.
                next %= ids.len();
                n += 1;
            }
            batches += 1;
        }
        let (cpu, wall) = (cpu_time() - cpu0, wall0.elapsed());
        let appends = batches * size as u64;
        println!(
            "{:>6} {:>9} {:>10.0} {:>14.1} {:>15.1}",
            size,
            appends,
            appends as f64 / wall.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / appends as f64,
            wall.as_secs_f64() * 1e6 / batches as f64,
        );
    }
    if mongo.is_none() {
        let size = std::fs::metadata(dir.join(chatbox::store::embedded::FILE_NAME))
            .map(|m| m.len())
            .unwrap_or(0);
        println!("file: {:.1} MiB", size as f64 / (1 << 20) as f64);
        std::fs::remove_dir_all(&dir).expect("remove the bench directory");
    }
}
