//! Cross-pod delivery over Redis (docs/SCALE-OUT.md) next to same-pod delivery, in one run.
//!
//! ```text
//! cargo bench --bench scaleout -- [--exchanges 2000]
//! ```
//!
//! Starts nx-27017 (`CHATBOX_TEST_PYTHON`, see `support::mongo`), a `redis-server` on a
//! free loopback port, and the release binary three times, all on the same MongoDB: pod 1
//! and pod 2 with `REDIS_URL`, and a pod without it. One user has three sockets on one
//! session: A (which asks) and C on pod 1, B on pod 2. Exchanges run one at a time: A
//! sends a message, and the time from the send to each socket's `user_message` echo (the
//! fan-out; A gets none), first `ai_response` chunk and final frame is recorded, on its own
//! reader thread per socket; the next message goes once all three have the final frame.
//! The model is the offline `echo`.
//!
//! Rows: `same pod` is socket C (the fan-out seam's local delivery), `cross pod` is
//! socket B (published on Redis, delivered by pod 2: for the reply, the mirror of
//! `news.rs`), `cross − same` the difference per exchange: what Redis adds. Each time
//! includes storing the user message in nx-27017 (tens of ms), which the difference
//! cancels. First, the same exchanges with A and C on the pod without `REDIS_URL`.
//! `srv µs/frame` is the server processes' CPU (utime + stime of every pod involved, from
//! /proc) per frame the sockets received, with and without Redis, and their ratio.
//!
//! With two CPUs, nx-27017 runs on CPU 1 and everything else on CPU 0 (the bench
//! re-executes itself there): the Python server is busy for most of each exchange, and a
//! reader thread woken on its CPU waited for it to yield, milliseconds at a time, a delay
//! that fell on one socket of a pair and made up the whole p99 of `cross − same`.

#[path = "support/mod.rs"]
mod support;

use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::args::Flags;
use support::mongo::MongoUnderTest;
use support::report::{percentile_us, row};
use support::system::{
    cpu_count, on_server_cpu, reexec_if_needed, server_under_test, Launch, Server, JWT_SECRET,
    SERVER_CPU,
};
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

const USAGE: &str = "cargo bench --bench scaleout -- [--exchanges N]";
const WARMUP: usize = 50;

/// What a socket saw of one exchange, as times since the message was sent.
#[derive(Clone, Copy, Debug)]
enum Seen {
    Echo,
    First,
    Done,
}

struct Event {
    socket: usize,
    seen: Seen,
    at: Instant,
}

struct Pod {
    _server: Option<Server>,
    port: u16,
    pid: u32,
}

fn main() {
    let mut flags = Flags::new(USAGE);
    let mut exchanges = 2000;
    while let Some(flag) = flags.next_flag() {
        match flag.as_str() {
            "--exchanges" => exchanges = flags.number(&flag),
            "--bench" => {}
            other => flags.unknown(other),
        }
    }
    // With the pods, off nx-27017's CPU (see the header); 64 descriptors are plenty.
    reexec_if_needed((cpu_count() >= 2).then_some(SERVER_CPU), 64);
    let mongo = MongoUnderTest::start();
    let redis = RedisUnderTest::start();
    let with = |name, redis: Option<&str>| {
        let mut env = vec![("MONGO_URI", mongo.uri.clone())];
        env.extend(redis.map(|url| ("REDIS_URL", url.to_owned())));
        env.push(("RATE_LIMIT", "1000000".to_owned()));
        env.push(("MAX_MESSAGES_PER_SESSION", "100000".to_owned()));
        start_pod(name, env)
    };
    let first = with("scaleout-1", Some(&redis.url));
    let second = with("scaleout-2", Some(&redis.url));
    let alone = with("scaleout-alone", None);

    println!(
        "scaleout: {exchanges} exchanges one at a time (+{WARMUP} warm-up), offline echo \
         model, MongoDB = nx-27017 (its writes are most of each time), Redis {} on loopback",
        redis.version
    );
    let alone_run = run(&[&alone, &alone], exchanges, None);
    let redis_run = run(&[&first, &first, &second], exchanges, Some(&redis));
    let head = [("µs from send", 14), ("echo p50", 10), ("echo p99", 10)];
    let head = head
        .into_iter()
        .chain([("chunk p50", 10), ("chunk p99", 10)]);
    println!("{}", row(&head.collect::<Vec<_>>()));
    let rows = [
        ("same pod", &redis_run.same),
        ("cross pod", &redis_run.cross),
        ("cross − same", &redis_run.added),
    ];
    for (name, times) in rows {
        let cells = [
            (name.to_owned(), 14),
            (percentile_us(&times[0], 0.5), 10),
            (percentile_us(&times[0], 0.99), 10),
            (percentile_us(&times[1], 0.5), 10),
            (percentile_us(&times[1], 0.99), 10),
        ];
        println!("{}", row(&cells));
    }
    println!(
        "srv µs/frame: {:.1} with Redis (3 sockets, 2 pods), {:.1} without (2 sockets, 1 \
         pod, no REDIS_URL); ratio {:.2}",
        redis_run.cpu_us,
        alone_run.cpu_us,
        redis_run.cpu_us / alone_run.cpu_us
    );
}

/// One run's times in ns, sorted: `[echo, first chunk]` of the socket on the asker's pod
/// (`same`), of the last socket (`cross`: on another pod when there is one), and the
/// second minus the first per exchange (`added`, floored at 0); and the servers' CPU µs
/// per frame the sockets received.
struct Measured {
    same: [Vec<u64>; 2],
    cross: [Vec<u64>; 2],
    added: [Vec<u64>; 2],
    cpu_us: f64,
}

/// Runs the exchanges with a socket on each of `pods` (the first one asks).
fn run(pods: &[&Pod], exchanges: usize, redis: Option<&RedisUnderTest>) -> Measured {
    let (events, heard) = channel();
    let mut asker = open(pods[0].port, "scaleout", None);
    let status = read_json(&mut asker);
    let session = status["session_id"]
        .as_str()
        .expect("session id")
        .to_owned();
    // Stored, so the other pods can find it.
    say(&mut asker, &session, "hello");
    wait_done(&mut asker);
    let mut frames = vec![];
    for (i, pod) in pods.iter().enumerate().skip(1) {
        let mut socket = open(pod.port, "scaleout", Some(&session));
        read_json(&mut socket);
        frames.push(watch(socket, i, events.clone()));
    }
    if let Some(redis) = redis {
        redis.wait_subscribers(&format!("chatbox:s:{session}"), 2);
    }
    let pids: Vec<u32> = pods.iter().map(|p| p.pid).collect();
    let listeners = pods.len() - 1;
    let mut measured = Measured {
        same: Default::default(),
        cross: Default::default(),
        added: Default::default(),
        cpu_us: 0.0,
    };
    let (mut cpu_start, mut frames_start, mut asker_frames) = (0, 0, 0);
    for n in 0..WARMUP + exchanges {
        if n == WARMUP {
            cpu_start = cpu_ticks(&pids);
            frames_start = asker_frames + counted(&frames);
        }
        let sent = Instant::now();
        say(&mut asker, &session, &format!("message {n}"));
        asker_frames += wait_done(&mut asker);
        // [socket][echo, first chunk]: ns since the send.
        let mut at = vec![[0u64; 2]; pods.len()];
        let mut done = 0;
        while done < listeners {
            let event: Event = heard
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("exchange {n}: {done} of {listeners} sockets done"));
            let took = event.at.saturating_duration_since(sent).as_nanos() as u64;
            match event.seen {
                Seen::Echo => at[event.socket][0] = took,
                Seen::First => at[event.socket][1] = took,
                Seen::Done => done += 1,
            }
        }
        if n >= WARMUP {
            let (same, cross) = (at[1], at[pods.len() - 1]);
            for k in 0..2 {
                measured.same[k].push(same[k]);
                measured.cross[k].push(cross[k]);
                measured.added[k].push(cross[k].saturating_sub(same[k]));
            }
        }
    }
    let ticks = cpu_ticks(&pids) - cpu_start;
    let delivered = asker_frames + counted(&frames) - frames_start;
    measured.cpu_us = ticks as f64 * 1e6 / clock_ticks() / delivered as f64;
    for times in measured
        .same
        .iter_mut()
        .chain(&mut measured.cross)
        .chain(&mut measured.added)
    {
        times.sort_unstable();
    }
    measured
}

fn counted(counters: &[Arc<AtomicU64>]) -> u64 {
    counters.iter().map(|c| c.load(Ordering::Relaxed)).sum()
}

fn open(port: u16, user: &str, session: Option<&str>) -> WebSocket<TcpStream> {
    let now = chatbox::time::unix_now();
    let token = chatbox::auth::mint(JWT_SECRET.as_bytes(), user, None, &[], now, Some(3600))
        .expect("a token");
    let query = session
        .map(|s| format!("?session_id={s}"))
        .unwrap_or_default();
    let url = format!("ws://127.0.0.1:{port}/chatbox/ws{query}");
    let mut request = url.into_client_request().expect("a request");
    let bearer = format!("Bearer {token}").parse().expect("a header value");
    request.headers_mut().insert("Authorization", bearer);
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (socket, _) = tungstenite::client(request, stream).expect("handshake");
    socket
}

fn read_json(socket: &mut WebSocket<TcpStream>) -> Value {
    loop {
        match socket.read().expect("a frame") {
            Message::Text(text) => return serde_json::from_str(&text).expect("json"),
            _ => continue,
        }
    }
}

fn say(socket: &mut WebSocket<TcpStream>, session: &str, text: &str) {
    let frame = json!({"type": "user_message", "session_id": session, "content": text});
    socket.send(Message::text(frame.to_string())).expect("send");
}

/// Reads up to the reply's final frame; returns the frames read.
fn wait_done(socket: &mut WebSocket<TcpStream>) -> u64 {
    let mut frames = 0;
    loop {
        let frame = read_json(socket);
        frames += 1;
        if frame["type"] == "ai_response" && frame["metadata"]["done"] == "true" {
            return frames;
        }
    }
}

/// A reader thread for a socket that only listens: each echo, first chunk and end goes to
/// `events` with the time it was read; the frames it read are counted.
fn watch(mut socket: WebSocket<TcpStream>, index: usize, events: Sender<Event>) -> Arc<AtomicU64> {
    let count = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&count);
    thread::spawn(move || {
        let mut chunk_seen = false;
        loop {
            let text = match socket.read() {
                Ok(Message::Text(text)) => text,
                Ok(_) => continue,
                Err(_) => return,
            };
            let at = Instant::now();
            counted.fetch_add(1, Ordering::Relaxed);
            let frame: Value = serde_json::from_str(&text).unwrap_or_default();
            let seen = match frame["type"].as_str() {
                Some("user_message") => Some(Seen::Echo),
                Some("ai_response") if frame["metadata"]["done"] == "true" => {
                    chunk_seen = false;
                    Some(Seen::Done)
                }
                Some("ai_response") if !chunk_seen => {
                    chunk_seen = true;
                    Some(Seen::First)
                }
                _ => None,
            };
            if let Some(seen) = seen {
                let event = Event {
                    socket: index,
                    seen,
                    at,
                };
                if events.send(event).is_err() {
                    return;
                }
            }
        }
    });
    count
}

fn start_pod(name: &str, env: Vec<(&'static str, String)>) -> Pod {
    let launch = Launch {
        name,
        data_parent: std::env::temp_dir(),
        max_connections: 64,
        env,
    };
    let (server, url, pid) = server_under_test(None, None, &launch);
    let port = url
        .trim_start_matches("ws://127.0.0.1:")
        .split('/')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("the server's port");
    Pod {
        _server: server,
        port,
        pid: pid.expect("our server's pid"),
    }
}

/// utime + stime of `pids`, in clock ticks.
fn cpu_ticks(pids: &[u32]) -> u64 {
    let mut unique = pids.to_vec();
    unique.dedup();
    unique
        .iter()
        .map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Fields after the parenthesised command name; utime and stime are 14 and 15.
            let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
            let fields: Vec<&str> = after.split_whitespace().collect();
            let field = |i: usize| {
                fields
                    .get(i)
                    .and_then(|f| f.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            field(11) + field(12)
        })
        .sum()
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

struct RedisUnderTest {
    child: Child,
    url: String,
    version: String,
}

impl RedisUnderTest {
    fn start() -> RedisUnderTest {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        // Beside the pods, not on the bench's CPU: nx-27017 (Python) keeps that one busy
        // for most of each exchange, and a Redis waiting there for a time slice put
        // milliseconds into the cross-pod p99 that a Redis of its own never shows.
        let child = on_server_cpu("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/test installs it)");
        let url = format!("redis://127.0.0.1:{port}");
        let client = redis::Client::open(url.as_str()).expect("a Redis URL");
        let deadline = Instant::now() + Duration::from_secs(10);
        let version = loop {
            if let Ok(mut connection) = client.get_connection() {
                let info: String = redis::cmd("INFO")
                    .arg("server")
                    .query(&mut connection)
                    .unwrap_or_default();
                break info
                    .lines()
                    .find_map(|l| l.strip_prefix("redis_version:"))
                    .unwrap_or("?")
                    .trim()
                    .to_owned();
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            thread::sleep(Duration::from_millis(20));
        };
        RedisUnderTest {
            child,
            url,
            version,
        }
    }
}

impl RedisUnderTest {
    /// Waits until `count` pods subscribe to `channel`.
    fn wait_subscribers(&self, channel: &str, count: usize) {
        let client = redis::Client::open(self.url.as_str()).expect("a Redis URL");
        let mut connection = client.get_connection().expect("a connection");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found: Vec<(String, usize)> = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(channel)
                .query(&mut connection)
                .expect("PUBSUB NUMSUB");
            if found.first().map(|(_, n)| *n) == Some(count) {
                return;
            }
            assert!(Instant::now() < deadline, "{channel}: {found:?}");
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RedisUnderTest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
