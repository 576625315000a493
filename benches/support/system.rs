//! Process set-up: pinning, fd limits, the server under test, /proc readings.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chatbox::bench::frames::Target;
use chatbox::bench::meter::{self, nofile_limits};
pub use chatbox::bench::meter::{rss_kib, CpuMeter};
use chatbox::bench::probe;

pub const JWT_SECRET: &str = "q8Vn2xLr7TzKp4WmYc9HbEs6JdUf3GaN";
/// Set in the re-executed child (to the CPU count seen before pinning) so it does not
/// re-execute again.
const REEXEC_ENV: &str = "CHATBOX_WS_BENCH_CHILD";
/// Soft fd limit wanted for the client and for a server we start.
const NOFILE: u64 = 65536;

/// CPUs this bench may use before it pins itself (the re-executed child is pinned to one and
/// learns the count from its parent through REEXEC_ENV).
pub fn cpu_count() -> usize {
    std::env::var(REEXEC_ENV)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The soft fd limit to run with: 65536, or the hard limit if that is lower (raising the hard
/// limit needs CAP_SYS_RESOURCE, which a container's root may lack).
pub fn nofile_target(fds_needed: u64) -> u64 {
    let hard = proc_limits_nofile(std::process::id()).map_or(NOFILE, |(_, hard)| hard);
    assert!(
        hard >= fds_needed,
        "need {fds_needed} file descriptors but the hard limit is {hard}: raise it \
         (ulimit -Hn, or prlimit as root) or lower --idle/--conns"
    );
    NOFILE.min(hard)
}

/// Where a bench's own threads run when it starts the server itself: the other CPU.
pub const CLIENT_CPU: usize = 1;
pub const SERVER_CPU: usize = 0;

/// Re-executes this bench under `prlimit` (and `taskset -c CPU` when `pin_to` names one),
/// once. No new dependency, and nothing else inherits the limit.
pub fn reexec_if_needed(pin_to: Option<usize>, fds_needed: u64) {
    if std::env::var_os(REEXEC_ENV).is_some() {
        return;
    }
    let nofile = nofile_target(fds_needed);
    let low_fds = proc_limits_nofile(std::process::id()).is_some_and(|(soft, _)| soft < fds_needed);
    if pin_to.is_none() && !low_fds {
        return;
    }
    let exe = std::env::current_exe().expect("path of this bench executable");
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--nofile={nofile}:"));
    if let Some(cpu) = pin_to {
        cmd.args(["taskset", "-c", &cpu.to_string()]);
    }
    let err = cmd
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(REEXEC_ENV, cpu_count().to_string())
        .exec();
    panic!("re-executing under prlimit/taskset failed (util-linux installed?): {err}");
}

fn proc_limits_nofile(pid: u32) -> Option<(u64, u64)> {
    nofile_limits(pid)
}

fn nofile_text(pid: u32) -> String {
    proc_limits_nofile(pid).map_or("?".into(), |(soft, _)| soft.to_string())
}

fn cpus_allowed(pid: u32) -> String {
    meter::cpus_allowed(pid).unwrap_or_else(|| "?".into())
}

/// The type of the file system `path` is on (`ext4`, `tmpfs`…), from /proc/mounts.
pub fn fs_type(path: &Path) -> Option<String> {
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_, point, kind) = (fields.next()?, fields.next()?, fields.next()?);
            path.starts_with(point)
                .then(|| (point.len(), kind.to_owned()))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, kind)| kind)
}

/// The target of a `ws://` URL; a bench stops on a bad one.
pub fn parse_url(url: &str) -> Target {
    Target::parse(url).unwrap_or_else(|e| panic!("--url: {e}"))
}

/// A server we started: killed (and its data dir removed) when dropped, also on panic.
pub struct Server {
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

impl Server {
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

/// How to start the server under test.
pub struct Launch<'a> {
    /// Names the data directory: `<data_parent>/<name>-<pid>`.
    pub name: &'a str,
    pub data_parent: PathBuf,
    pub max_connections: usize,
    /// Settings on top of the base ones (secret, address, CHATBOX_ECHO=true, LOG_LEVEL=warn).
    pub env: Vec<(&'a str, String)>,
}

fn start_server(binary: &str, port: u16, nofile: u64, launch: &Launch) -> Server {
    assert!(
        Path::new(binary).is_file(),
        "server binary {binary} not found: cargo build --release, or set CHATBOX_BIN"
    );
    let data_dir = launch
        .data_parent
        .join(format!("{}-{}", launch.name, std::process::id()));
    std::fs::create_dir_all(&data_dir)
        .unwrap_or_else(|e| panic!("create the server's DATA_DIR {}: {e}", data_dir.display()));
    // prlimit and taskset exec the binary: the child's pid is the server's.
    let child = on_server_cpu("prlimit")
        .arg(format!("--nofile={nofile}:"))
        .arg(binary)
        .env("JWT_SECRET", JWT_SECRET)
        .env("SERVER_HOST", "127.0.0.1")
        .env("SERVER_PORT", port.to_string())
        .env("CHATBOX_ECHO", "true")
        .env("MAX_CONNECTIONS", launch.max_connections.to_string())
        // Every bench client is one address: it may use every slot.
        .env("MAX_CONNECTIONS_PER_IP", launch.max_connections.to_string())
        .env("DATA_DIR", &data_dir)
        .env("LOG_LEVEL", "warn")
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn the server under prlimit/taskset");
    Server { child, data_dir }
}

/// `program` on the server's CPU when there are two: see `on_cpu`.
pub fn on_server_cpu(program: &str) -> Command {
    on_cpu(SERVER_CPU, program)
}

/// `program` pinned to `cpu` when there are two CPUs (one CPU: unpinned), under
/// `taskset`, which execs it, so the child's pid is the program's.
pub fn on_cpu(cpu: usize, program: &str) -> Command {
    if cpu_count() < 2 {
        return Command::new(program);
    }
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", &cpu.to_string(), program]);
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Starts the server (unless `url` is given), waits until the echo URL upgrades.
/// Returns the server guard (if ours), the echo URL and the server pid (if known).
pub fn server_under_test(
    url: Option<&str>,
    pid: Option<u32>,
    launch: &Launch,
) -> (Option<Server>, String, Option<u32>) {
    let (mut server, url, pid) = match url {
        Some(url) => (None, url.to_owned(), pid),
        None => {
            let binary = std::env::var("CHATBOX_BIN")
                .unwrap_or_else(|_| env!("CARGO_BIN_EXE_chatbox").to_owned());
            let port = free_port();
            let nofile = nofile_target(launch.max_connections as u64);
            let server = start_server(&binary, port, nofile, launch);
            let pid = server.child.id();
            let url = format!("ws://127.0.0.1:{port}/chatbox/echo");
            (Some(server), url, Some(pid))
        }
    };
    let target = parse_url(&url);
    let started = Instant::now();
    loop {
        match probe::upgrade(&target, "") {
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

/// Prints `heading`, then where server and client run and how CPU is measured.
pub fn print_conditions(heading: &str, ours: Option<usize>, meter: &CpuMeter) {
    let me = std::process::id();
    println!("{heading}");
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
