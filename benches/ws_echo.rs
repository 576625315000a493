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

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use mio::event::Event;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

const JWT_SECRET: &str = "q8Vn2xLr7TzKp4WmYc9HbEs6JdUf3GaN";
/// Set in the re-executed child (to the CPU count seen before pinning) so it does not
/// re-execute again.
const REEXEC_ENV: &str = "CHATBOX_WS_ECHO_BENCH_CHILD";
/// Soft fd limit wanted for the client and for a server we start.
const NOFILE: u64 = 65536;
/// Connects (TCP + upgrade) in flight while opening idle and echo connections: well under
/// the listen backlog, so no SYN is dropped and retried a second later.
const OPEN_PARALLEL: usize = 128;
/// Connects in flight in the parallel handshake row.
const HANDSHAKE_PARALLEL: usize = 64;
const WARMUP: Duration = Duration::from_secs(1);
const IDLE_SETTLE: Duration = Duration::from_secs(2);
/// Room for the 101 response headers (and any error response) before the first frame.
const MIN_READ_BUFFER: usize = 4096;

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
    fn value<T: std::str::FromStr>(flag: &str, v: Option<String>) -> T {
        v.and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{flag} needs a number\n{USAGE}"))
    }
    let mut args = Args {
        url: None,
        pid: None,
        conns: vec![1, 100, 1000],
        secs: 10,
        size: 64,
        idle: 10_000,
        handshakes: 2000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--bench" => {} // added by `cargo bench`
            "--url" => args.url = Some(it.next().expect("--url needs ws://host:port/path")),
            "--pid" => args.pid = Some(value("--pid", it.next())),
            "--conns" => {
                let list = it.next().expect("--conns needs a list like 1,100,1000");
                args.conns = list
                    .split(',')
                    .map(|n| {
                        n.trim()
                            .parse()
                            .expect("--conns: numbers separated by commas")
                    })
                    .collect();
            }
            "--secs" => args.secs = value("--secs", it.next()),
            "--size" => args.size = value("--size", it.next()),
            "--idle" => args.idle = value("--idle", it.next()),
            "--handshakes" => args.handshakes = value("--handshakes", it.next()),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => panic!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    assert!(args.secs > 0, "--secs must be at least 1");
    args
}

// ---------------------------------------------------------------------------------------
// Process set-up: pinning, fd limits, the server under test, /proc readings.

/// CPUs this bench may use before it pins itself (the re-executed child is pinned to one and
/// learns the count from its parent through REEXEC_ENV).
fn cpu_count() -> usize {
    std::env::var(REEXEC_ENV)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The soft fd limit to run with: 65536, or the hard limit if that is lower (raising the hard
/// limit needs CAP_SYS_RESOURCE, which a container's root may lack).
fn nofile_target(fds_needed: u64) -> u64 {
    let hard = proc_limits_nofile(std::process::id()).map_or(NOFILE, |(_, hard)| hard);
    assert!(
        hard >= fds_needed,
        "need {fds_needed} file descriptors but the hard limit is {hard}: raise it \
         (ulimit -Hn, or prlimit as root) or lower --idle/--conns"
    );
    NOFILE.min(hard)
}

/// Re-executes this bench under `prlimit` (and `taskset -c 1` when it will start the server
/// itself on CPU 0), once. No new dependency, and nothing else inherits the limit.
fn reexec_if_needed(pin: bool, fds_needed: u64) {
    if std::env::var_os(REEXEC_ENV).is_some() {
        return;
    }
    let nofile = nofile_target(fds_needed);
    let low_fds = proc_limits_nofile(std::process::id()).is_some_and(|(soft, _)| soft < fds_needed);
    if !pin && !low_fds {
        return;
    }
    let exe = std::env::current_exe().expect("path of this bench executable");
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--nofile={nofile}:"));
    if pin {
        cmd.args(["taskset", "-c", "1"]);
    }
    let err = cmd
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(REEXEC_ENV, cpu_count().to_string())
        .exec();
    panic!("re-executing under prlimit/taskset failed (util-linux installed?): {err}");
}

fn proc_field(pid: u32, file: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    Some(line[key.len()..].trim().to_owned())
}

/// (soft, hard) RLIMIT_NOFILE of a process.
fn proc_limits_nofile(pid: u32) -> Option<(u64, u64)> {
    let line = proc_field(pid, "limits", "Max open files")?;
    let mut limits = line
        .split_whitespace()
        .map(|n| n.parse().unwrap_or(u64::MAX));
    Some((limits.next()?, limits.next()?))
}

fn nofile_text(pid: u32) -> String {
    proc_limits_nofile(pid).map_or("?".into(), |(soft, _)| soft.to_string())
}

fn cpus_allowed(pid: u32) -> String {
    proc_field(pid, "status", "Cpus_allowed_list:").unwrap_or_else(|| "?".into())
}

fn rss_kib(pid: u32) -> Option<u64> {
    proc_field(pid, "status", "VmRSS:")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// utime + stime of all threads, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after "(comm) ": state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Busy time of all CPUs (everything but idle and iowait), in clock ticks.
fn machine_busy_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|n| n.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    Some(cpu.iter().take(8).sum::<u64>() - cpu.get(3)? - cpu.get(4)?)
}

fn clock_ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU time of the server and of this process, sampled together.
#[derive(Clone, Copy)]
struct CpuSample {
    at: Instant,
    server_ticks: Option<u64>,
    client_ticks: Option<u64>,
    machine_ticks: Option<u64>,
}

/// CPU seconds used between two samples.
#[derive(Clone, Copy, Default)]
struct CpuDelta {
    wall: f64,
    server: Option<f64>,
    client: Option<f64>,
    /// Every other process on the machine, and time stolen by the hypervisor (noise).
    others: Option<f64>,
}

struct CpuMeter {
    server_pid: Option<u32>,
    ticks_per_sec: f64,
}

impl CpuMeter {
    fn sample(&self) -> CpuSample {
        CpuSample {
            at: Instant::now(),
            server_ticks: self.server_pid.and_then(cpu_ticks),
            client_ticks: cpu_ticks(std::process::id()),
            machine_ticks: machine_busy_ticks(),
        }
    }

    fn delta(&self, a: CpuSample, b: CpuSample) -> CpuDelta {
        let ticks = |x: Option<u64>, y: Option<u64>| Some((y? - x?) as f64 / self.ticks_per_sec);
        let server = ticks(a.server_ticks, b.server_ticks);
        let client = ticks(a.client_ticks, b.client_ticks);
        let machine = ticks(a.machine_ticks, b.machine_ticks);
        CpuDelta {
            wall: (b.at - a.at).as_secs_f64(),
            server,
            client,
            others: machine.map(|m| (m - server.unwrap_or(0.0) - client.unwrap_or(0.0)).max(0.0)),
        }
    }

    /// Waits until the server's CPU time stops moving (it has finished closing the last
    /// phase's connections), at most 5 s; without a pid, just 1 s.
    fn settle(&self) {
        let Some(pid) = self.server_pid else {
            std::thread::sleep(Duration::from_secs(1));
            return;
        };
        let start = Instant::now();
        let mut last = cpu_ticks(pid);
        while start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(200));
            let now = cpu_ticks(pid);
            if now == last {
                return;
            }
            last = now;
        }
    }
}

/// A server we started: killed (and its data dir removed) when dropped, also on panic.
struct Server {
    child: Child,
    data_dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

fn start_server(binary: &str, port: u16, max_connections: usize, nofile: u64) -> Server {
    assert!(
        std::path::Path::new(binary).is_file(),
        "server binary {binary} not found: cargo build --release, or set CHATBOX_BIN"
    );
    let data_dir = std::env::temp_dir().join(format!("chatbox-ws-echo-{}", std::process::id()));
    std::fs::create_dir_all(&data_dir).expect("create the server's DATA_DIR");
    // prlimit and taskset exec the binary: the child's pid is the server's.
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--nofile={nofile}:"));
    if cpu_count() >= 2 {
        cmd.args(["taskset", "-c", "0"]);
    }
    let child = cmd
        .arg(binary)
        .env("JWT_SECRET", JWT_SECRET)
        .env("SERVER_HOST", "127.0.0.1")
        .env("SERVER_PORT", port.to_string())
        .env("CHATBOX_ECHO", "true")
        .env("MAX_CONNECTIONS", max_connections.to_string())
        .env("DATA_DIR", &data_dir)
        .env("LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn the server under prlimit/taskset");
    Server { child, data_dir }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

// ---------------------------------------------------------------------------------------
// The WebSocket client: handshake and frames by hand.

struct Target {
    addr: SocketAddr,
    authority: String,
    path: String,
}

fn parse_url(url: &str) -> Target {
    let rest = url
        .strip_prefix("ws://")
        .unwrap_or_else(|| panic!("--url must be ws://host:port/path, got {url:?}"));
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let with_port = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| panic!("cannot resolve {authority:?}"));
    Target {
        addr,
        authority: authority.to_owned(),
        path: if path.is_empty() { "/" } else { path }.to_owned(),
    }
}

fn new_key() -> String {
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).expect("getrandom");
    base64::engine::general_purpose::STANDARD.encode(nonce)
}

fn upgrade_request(target: &Target, key: &str) -> Vec<u8> {
    format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n",
        target.path, target.authority
    )
    .into_bytes()
}

/// `Ok(None)`: incomplete; `Ok(Some(len))`: a valid 101 whose headers are `len` bytes.
fn parse_upgrade_response(data: &[u8], key: &str) -> Result<Option<usize>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(data) {
        Ok(httparse::Status::Partial) => return Ok(None),
        Ok(httparse::Status::Complete(len)) => len,
        Err(e) => return Err(format!("bad HTTP response: {e}")),
    };
    if response.code != Some(101) {
        return Err(format!(
            "upgrade refused: HTTP {} {}",
            response.code.unwrap_or(0),
            response.reason.unwrap_or("")
        ));
    }
    let expected = tungstenite::handshake::derive_accept_key(key.as_bytes());
    match response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept"))
    {
        Some(h) if h.value == expected.as_bytes() => Ok(Some(len)),
        Some(_) => Err("wrong Sec-WebSocket-Accept".into()),
        None => Err("101 without Sec-WebSocket-Accept".into()),
    }
}

/// A single-frame text message: masked (client to server) or not (server to client).
fn text_frame(payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut frame = vec![0x81]; // FIN + text
    match payload.len() {
        n if n < 126 => frame.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            frame.push(mask_bit | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(mask_bit | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(mask) => {
            frame.extend_from_slice(&mask);
            frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        }
        None => frame.extend_from_slice(payload),
    }
    frame
}

/// What the server sent instead of the echo, for the error message.
fn describe_unexpected(got: &[u8]) -> String {
    match got {
        [0x88, len, rest @ ..] if len & 0x7f >= 2 && rest.len() >= 2 => {
            let code = u16::from_be_bytes([rest[0], rest[1]]);
            let end = rest.len().min(2 + (len & 0x7f) as usize);
            let reason = String::from_utf8_lossy(&rest[2..end]);
            format!("server sent close {code} {reason:?} instead of the echo")
        }
        [0x88, ..] => "server sent close instead of the echo".into(),
        [b0, b1, ..] => format!(
            "echo differs from what was sent (frame starts {b0:#04x} {b1:#04x}, {} bytes read)",
            got.len()
        ),
        _ => "echo differs from what was sent".into(),
    }
}

/// Blocking check that the URL upgrades; used to wait for a server and to fail early with
/// the server's answer (e.g. 404 when the echo endpoint is not enabled).
fn probe(target: &Target) -> Result<(), String> {
    let mut stream = std::net::TcpStream::connect_timeout(&target.addr, Duration::from_secs(1))
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let key = new_key();
    stream
        .write_all(&upgrade_request(target, &key))
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = vec![0; MIN_READ_BUFFER];
    let mut filled = 0;
    loop {
        match stream.read(&mut buf[filled..]) {
            Ok(0) => return Err("server closed the connection during the upgrade".into()),
            Ok(n) => filled += n,
            Err(e) => return Err(format!("read: {e}")),
        }
        if parse_upgrade_response(&buf[..filled], &key)?.is_some() {
            return Ok(());
        }
        if filled == buf.len() {
            return Err("upgrade response too long".into());
        }
    }
}

#[derive(PartialEq)]
enum Phase {
    Connecting,
    Upgrading,
    Open,
}

enum Progress {
    Pending,
    Upgraded,
    Echoed,
}

struct Conn {
    stream: TcpStream,
    phase: Phase,
    key: String,
    request: Vec<u8>,
    /// Bytes of the request (while upgrading) or of the frame in flight already written.
    written: usize,
    buf: Box<[u8]>,
    filled: usize,
    /// Connect start, then the send time of the message in flight.
    since: Instant,
    in_flight: bool,
}

/// Writes `data[*written..]` until done or WouldBlock; `Ok(true)` when all is written.
fn write_pending(stream: &mut TcpStream, data: &[u8], written: &mut usize) -> io::Result<bool> {
    while *written < data.len() {
        match stream.write(&data[*written..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => *written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

impl Conn {
    fn connect(target: &Target, buf_len: usize) -> io::Result<Conn> {
        let key = new_key();
        Ok(Conn {
            stream: TcpStream::connect(target.addr)?,
            phase: Phase::Connecting,
            request: upgrade_request(target, &key),
            key,
            written: 0,
            buf: vec![0; buf_len].into_boxed_slice(),
            filled: 0,
            since: Instant::now(),
            in_flight: false,
        })
    }

    /// Reads what has arrived. Returns true at end of stream.
    ///
    /// Edge-triggered readiness normally means "read until WouldBlock"; a short read on a
    /// TCP socket already proves the receive queue is empty, so it stops there and saves a
    /// read() that would fail with EAGAIN on every message (as nginx does).
    fn read_available(&mut self) -> io::Result<bool> {
        loop {
            if self.filled == self.buf.len() {
                return Ok(false); // the caller finds the data too long
            }
            match self.stream.read(&mut self.buf[self.filled..]) {
                Ok(0) => return Ok(true),
                Ok(n) => {
                    self.filled += n;
                    if self.filled < self.buf.len() {
                        return Ok(false);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn send(&mut self, frame: &[u8]) -> Result<(), String> {
        self.since = Instant::now();
        self.in_flight = true;
        self.written = 0;
        write_pending(&mut self.stream, frame, &mut self.written)
            .map(|_| ())
            .map_err(|e| format!("write: {e}"))
    }

    /// Drives the connection on a readiness event.
    fn on_event(&mut self, event: &Event, frame: &[u8], echo: &[u8]) -> Result<Progress, String> {
        if self.phase == Phase::Connecting {
            if let Ok(Some(e)) | Err(e) = self.stream.take_error() {
                return Err(format!("connect: {e}"));
            }
            match self.stream.peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(Progress::Pending),
                Err(e) => return Err(format!("connect: {e}")),
            }
            let _ = self.stream.set_nodelay(true);
            self.phase = Phase::Upgrading;
            self.written = 0;
        }
        if self.phase == Phase::Upgrading {
            write_pending(&mut self.stream, &self.request, &mut self.written)
                .map_err(|e| format!("write upgrade request: {e}"))?;
            let eof = self.read_available().map_err(|e| format!("read: {e}"))?;
            return match parse_upgrade_response(&self.buf[..self.filled], &self.key)? {
                Some(len) if len < self.filled => Err("data after the 101 response".into()),
                Some(_) => {
                    self.phase = Phase::Open;
                    self.filled = 0;
                    Ok(Progress::Upgraded)
                }
                None if eof => Err("server closed the connection during the upgrade".into()),
                None if self.filled == self.buf.len() => Err("upgrade response too long".into()),
                None => Ok(Progress::Pending),
            };
        }
        // Open.
        if self.in_flight && event.is_writable() {
            write_pending(&mut self.stream, frame, &mut self.written)
                .map_err(|e| format!("write: {e}"))?;
        }
        if !(event.is_readable() || event.is_read_closed()) {
            return Ok(Progress::Pending);
        }
        let eof = self.read_available().map_err(|e| format!("read: {e}"))?;
        let got = &self.buf[..self.filled];
        if !self.in_flight && !got.is_empty() {
            return Err(format!("unsolicited data: {}", describe_unexpected(got)));
        }
        if got.len() > echo.len() || got != &echo[..got.len()] {
            return Err(describe_unexpected(got));
        }
        if got.len() == echo.len() {
            self.filled = 0;
            self.in_flight = false;
            return Ok(Progress::Echoed);
        }
        if eof {
            return Err("server closed the connection".into());
        }
        Ok(Progress::Pending)
    }
}

/// Connections in a slab; the token carries slot and generation, so an event still queued
/// for a closed connection cannot reach the one that reuses its slot.
struct Client {
    poll: Poll,
    events: Events,
    slots: Vec<Option<Conn>>,
    generations: Vec<u32>,
    free: Vec<usize>,
    open: usize,
    target: Target,
    buf_len: usize,
    frame: Vec<u8>,
    echo: Vec<u8>,
}

fn token(slot: usize, generation: u32) -> Token {
    Token(((generation as usize) << 32) | slot)
}

struct Burst {
    upgraded: usize,
    failed: usize,
    first_error: Option<String>,
    /// Connect start to 101 received, ns.
    latencies: Vec<u32>,
    elapsed: Duration,
}

struct EchoRun {
    messages: u64,
    latencies: Vec<u32>,
    errors: usize,
    first_error: Option<String>,
    stalled: usize,
    cpu: CpuDelta,
}

impl Client {
    fn new(target: Target, size: usize) -> Client {
        let payload: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
        let mut mask = [0u8; 4];
        getrandom::fill(&mut mask).expect("getrandom");
        let frame = text_frame(&payload, Some(mask));
        let echo = text_frame(&payload, None);
        Client {
            poll: Poll::new().expect("epoll"),
            events: Events::with_capacity(1024),
            slots: Vec::new(),
            generations: Vec::new(),
            free: Vec::new(),
            open: 0,
            target,
            buf_len: echo.len().max(MIN_READ_BUFFER),
            frame,
            echo,
        }
    }

    fn insert(&mut self, mut conn: Conn) -> io::Result<()> {
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.generations.push(0);
            self.slots.len() - 1
        });
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self.poll.registry().register(
            &mut conn.stream,
            token(slot, self.generations[slot]),
            interest,
        ) {
            self.free.push(slot);
            return Err(e);
        }
        self.slots[slot] = Some(conn);
        Ok(())
    }

    fn remove(&mut self, slot: usize) {
        if let Some(mut conn) = self.slots[slot].take() {
            let _ = self.poll.registry().deregister(&mut conn.stream);
            if conn.phase == Phase::Open {
                self.open -= 1;
            }
            self.generations[slot] = self.generations[slot].wrapping_add(1);
            self.free.push(slot);
        }
    }

    fn close_all(&mut self) {
        for slot in 0..self.slots.len() {
            self.remove(slot);
        }
    }

    /// Polls once; yields (slot, result) for each event of a live connection.
    fn poll_once(&mut self, timeout: Duration) -> Vec<(usize, Phase, Result<Progress, String>)> {
        if let Err(e) = self.poll.poll(&mut self.events, Some(timeout)) {
            assert!(e.kind() == io::ErrorKind::Interrupted, "epoll_wait: {e}");
        }
        let mut out = Vec::with_capacity(self.events.iter().count());
        for event in self.events.iter() {
            let slot = event.token().0 & 0xffff_ffff;
            let generation = (event.token().0 >> 32) as u32;
            if self.generations.get(slot) != Some(&generation) {
                continue;
            }
            let Some(conn) = self.slots[slot].as_mut() else {
                continue;
            };
            let before = if conn.phase == Phase::Open {
                Phase::Open
            } else {
                Phase::Upgrading
            };
            let result = conn.on_event(event, &self.frame, &self.echo);
            out.push((slot, before, result));
        }
        out
    }

    /// Opens `total` connections with at most `parallel` connecting or upgrading at once.
    /// With `keep`, they stay open (idle); without, each is closed once upgraded.
    fn burst(&mut self, total: usize, parallel: usize, keep: bool) -> Burst {
        let start = Instant::now();
        let deadline = start + Duration::from_secs(30 + total as u64 / 200);
        let (mut started, mut pending, mut upgraded, mut failed) = (0, 0, 0, 0);
        let mut first_error = None;
        let mut latencies = Vec::with_capacity(total);
        while upgraded + failed < total {
            while started < total && pending < parallel {
                started += 1;
                match Conn::connect(&self.target, self.buf_len).and_then(|c| self.insert(c)) {
                    Ok(()) => pending += 1,
                    Err(e) => {
                        failed += 1;
                        first_error.get_or_insert(format!("connect: {e}"));
                    }
                }
            }
            for (slot, before, result) in self.poll_once(Duration::from_millis(100)) {
                match (before, result) {
                    (_, Ok(Progress::Pending)) => {}
                    (Phase::Open, Ok(_)) => {}
                    (Phase::Open, Err(e)) => {
                        // A kept connection closed by the server while others open.
                        first_error.get_or_insert(format!("open connection lost: {e}"));
                        self.remove(slot);
                    }
                    (_, Ok(_)) => {
                        let since = self.slots[slot].as_ref().map(|c| c.since);
                        if let Some(since) = since {
                            latencies.push(since.elapsed().as_nanos().min(u32::MAX as u128) as u32);
                        }
                        upgraded += 1;
                        pending -= 1;
                        self.open += 1;
                        if !keep {
                            self.remove(slot);
                        }
                    }
                    (_, Err(e)) => {
                        failed += 1;
                        pending -= 1;
                        first_error.get_or_insert(e);
                        self.remove(slot);
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "connections stuck: {upgraded} upgraded, {failed} failed, {pending} pending \
                 after {:?} (first error: {first_error:?})",
                start.elapsed()
            );
        }
        Burst {
            upgraded,
            failed,
            first_error,
            latencies,
            elapsed: start.elapsed(),
        }
    }

    /// Every open connection keeps one message in flight for WARMUP + `measured`.
    fn echo_run(&mut self, measured: Duration, meter: &CpuMeter) -> EchoRun {
        let mut run = EchoRun {
            messages: 0,
            latencies: Vec::new(),
            errors: 0,
            first_error: None,
            stalled: 0,
            cpu: CpuDelta::default(),
        };
        let mut last_echo = vec![Instant::now(); self.slots.len()];
        let mut failed_slots = Vec::new();
        for slot in 0..self.slots.len() {
            if let Some(conn) = self.slots[slot].as_mut() {
                if let Err(e) = conn.send(&self.frame) {
                    failed_slots.push((slot, e));
                }
            }
        }
        let warm_until = Instant::now() + WARMUP;
        let mut window_start: Option<CpuSample> = None;
        loop {
            for (slot, e) in failed_slots.drain(..) {
                run.errors += 1;
                run.first_error.get_or_insert(e);
                self.remove(slot);
            }
            if self.open == 0 {
                break;
            }
            let now = Instant::now();
            if let Some(w) = window_start {
                if now - w.at >= measured {
                    break;
                }
            } else if now >= warm_until {
                window_start = Some(meter.sample());
            }
            for (slot, _, result) in self.poll_once(Duration::from_millis(10)) {
                match result {
                    Ok(Progress::Echoed) => {
                        let conn = self.slots[slot].as_mut().expect("live slot");
                        let now = Instant::now();
                        last_echo[slot] = now;
                        if window_start.is_some() {
                            run.messages += 1;
                            let ns = (now - conn.since).as_nanos().min(u32::MAX as u128);
                            run.latencies.push(ns as u32);
                        }
                        if let Err(e) = conn.send(&self.frame) {
                            failed_slots.push((slot, e));
                        }
                    }
                    Ok(_) => {}
                    Err(e) => failed_slots.push((slot, e)),
                }
            }
        }
        let end = meter.sample();
        for (slot, e) in failed_slots.drain(..) {
            run.errors += 1;
            run.first_error.get_or_insert(e);
            self.remove(slot);
        }
        if let Some(start) = window_start {
            run.cpu = meter.delta(start, end);
        }
        run.stalled = (0..self.slots.len())
            .filter(|&s| self.slots[s].is_some() && end.at - last_echo[s] > Duration::from_secs(1))
            .count();
        run
    }
}

// ---------------------------------------------------------------------------------------
// Reporting.

fn percentile_us(sorted_ns: &[u32], p: f64) -> String {
    if sorted_ns.is_empty() {
        return "-".into();
    }
    let ns = sorted_ns[((sorted_ns.len() - 1) as f64 * p).round() as usize];
    format!("{:.1}", ns as f64 / 1000.0)
}

fn grouped(n: f64) -> String {
    let digits = format!("{:.0}", n);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 && c.is_ascii_digit() {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn opt(value: Option<f64>, precision: usize, suffix: &str) -> String {
    value.map_or("-".into(), |v| format!("{v:.precision$}{suffix}"))
}

/// Starts the server (unless `--url`), waits until the echo URL upgrades.
/// Returns the server guard (if ours), the URL and the server pid (if known).
fn server_under_test(args: &Args, max_connections: usize) -> (Option<Server>, String, Option<u32>) {
    let (mut server, url, pid) = match &args.url {
        Some(url) => (None, url.clone(), args.pid),
        None => {
            let binary = std::env::var("CHATBOX_BIN")
                .unwrap_or_else(|_| env!("CARGO_BIN_EXE_chatbox").to_owned());
            let port = free_port();
            let nofile = nofile_target(max_connections as u64);
            let server = start_server(&binary, port, max_connections, nofile);
            let pid = server.child.id();
            let url = format!("ws://127.0.0.1:{port}/chatbox/echo");
            (Some(server), url, Some(pid))
        }
    };
    let target = parse_url(&url);
    let started = Instant::now();
    loop {
        match probe(&target) {
            Ok(()) => return (server, url, pid),
            Err(e) if e.starts_with("connect") && started.elapsed() < Duration::from_secs(10) => {
                if let Some(Ok(Some(status))) = server.as_mut().map(|s| s.child.try_wait()) {
                    panic!("server exited during start-up: {status}");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("no WebSocket echo at {url}: {e}"),
        }
    }
}

fn print_conditions(url: &str, ours: Option<usize>, meter: &CpuMeter) {
    let me = std::process::id();
    println!("ws_echo  {url}");
    match meter.server_pid {
        Some(pid) => println!(
            "  server   pid {pid}{}, CPUs allowed {}, nofile {}",
            ours.map_or(String::new(), |max| format!(
                " (started here: taskset -c 0, MAX_CONNECTIONS={max})"
            )),
            cpus_allowed(pid),
            nofile_text(pid),
        ),
        None => println!("  server   pid unknown (pass --pid): no CPU or RSS figures"),
    }
    println!(
        "  client   pid {me}, CPUs allowed {}, one thread, mio/epoll, nofile {}",
        cpus_allowed(me),
        nofile_text(me),
    );
    println!(
        "  machine  {} CPUs; CPU time from /proc/PID/stat and /proc/stat in 1/{} s ticks",
        cpu_count(),
        meter.ticks_per_sec
    );
    println!(
        "  others   CPU of every other process, plus steal: should be ~0 %, more disturbs a row"
    );
}

/// Server RSS growth per idle, upgraded connection.
fn idle_phase(client: &mut Client, meter: &CpuMeter, idle: usize) {
    println!(
        "\nidle connections ({idle}, at most {OPEN_PARALLEL} connecting at once, then {} s idle)",
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

/// Connect + upgrade + close, one at a time and HANDSHAKE_PARALLEL at once.
fn handshake_phase(client: &mut Client, meter: &CpuMeter, count: usize) {
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
fn echo_phase(client: &mut Client, meter: &CpuMeter, args: &Args) {
    println!(
        "\necho round trip ({}-byte text messages, one in flight per connection; \
         {} s warm-up, {} s measured per row)",
        args.size,
        WARMUP.as_secs(),
        args.secs
    );
    println!(
        "  {:>6} {:>10} {:>9} {:>9} {:>9} {:>8} {:>11} {:>8} {:>7} {:>8} {:>7}",
        "conns",
        "msg/s",
        "p50 µs",
        "p99 µs",
        "p999 µs",
        "srv CPU",
        "srv µs/msg",
        "cli CPU",
        "others",
        "stalled",
        "errors"
    );
    for &n in &args.conns {
        meter.settle();
        let burst = client.burst(n, OPEN_PARALLEL.min(n.max(1)), true);
        if burst.failed > 0 {
            println!(
                "  {n:>6}: {} of {n} connections failed to open (first: {})",
                burst.failed,
                burst.first_error.unwrap_or_default()
            );
        }
        let mut run = client.echo_run(Duration::from_secs(args.secs), meter);
        client.close_all();
        run.latencies.sort_unstable();
        let CpuDelta {
            wall,
            server: server_cpu,
            client: client_cpu,
            others,
        } = run.cpu;
        println!(
            "  {:>6} {:>10} {:>9} {:>9} {:>9} {:>8} {:>11} {:>8} {:>7} {:>8} {:>7}",
            n,
            grouped(run.messages as f64 / wall.max(f64::MIN_POSITIVE)),
            percentile_us(&run.latencies, 0.50),
            percentile_us(&run.latencies, 0.99),
            percentile_us(&run.latencies, 0.999),
            opt(server_cpu.map(|c| 100.0 * c / wall), 0, " %"),
            opt(
                server_cpu.map(|c| c * 1e6 / run.messages.max(1) as f64),
                2,
                ""
            ),
            opt(client_cpu.map(|c| 100.0 * c / wall), 0, " %"),
            opt(others.map(|c| 100.0 * c / wall), 0, " %"),
            run.stalled,
            run.errors,
        );
        if let Some(e) = run.first_error {
            println!("    first error: {e}");
        }
    }
}

fn main() {
    let args = parse_args();
    let max_conns = args.conns.iter().copied().max().unwrap_or(0);
    let peak_conns = args.idle.max(max_conns).max(HANDSHAKE_PARALLEL);
    let own_server = args.url.is_none();
    reexec_if_needed(own_server && cpu_count() >= 2, peak_conns as u64 + 256);

    // Dropping `_server` at the end (or on a panic) kills a server we started.
    let max_connections = peak_conns + 1000;
    let (_server, url, server_pid) = server_under_test(&args, max_connections);
    let meter = CpuMeter {
        server_pid,
        ticks_per_sec: clock_ticks_per_sec(),
    };
    print_conditions(&url, own_server.then_some(max_connections), &meter);

    let mut client = Client::new(parse_url(&url), args.size);
    // Idle first: its RSS baseline is a server that has served nothing else yet.
    if args.idle > 0 {
        idle_phase(&mut client, &meter, args.idle);
    }
    if args.handshakes > 0 {
        handshake_phase(&mut client, &meter, args.handshakes);
    }
    echo_phase(&mut client, &meter, &args);
}
