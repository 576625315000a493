//! Readings from /proc: a process's CPU time and RSS, the machine's busy time, so that
//! server CPU per message or per connection can be told from what the client costs and
//! from whatever else ran meanwhile.

use std::time::{Duration, Instant};

fn proc_field(pid: u32, file: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    Some(line[key.len()..].trim().to_owned())
}

/// (soft, hard) RLIMIT_NOFILE of a process.
pub fn nofile_limits(pid: u32) -> Option<(u64, u64)> {
    let line = proc_field(pid, "limits", "Max open files")?;
    let mut limits = line
        .split_whitespace()
        .map(|n| n.parse().unwrap_or(u64::MAX));
    Some((limits.next()?, limits.next()?))
}

pub fn cpus_allowed(pid: u32) -> Option<String> {
    proc_field(pid, "status", "Cpus_allowed_list:")
}

pub fn rss_kib(pid: u32) -> Option<u64> {
    proc_field(pid, "status", "VmRSS:")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Whether `pid` is still running: gone, or a zombie waiting for its parent, is not.
pub fn is_running(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rfind(')')
        .and_then(|at| stat[at + 1..].split_whitespace().next());
    !matches!(state, None | Some("Z" | "X"))
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
    // SAFETY: sysconf reads a constant of the system; it has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// CPU time of the server and of this process, sampled together.
#[derive(Clone, Copy)]
pub struct CpuSample {
    pub at: Instant,
    server_ticks: Option<u64>,
    client_ticks: Option<u64>,
    machine_ticks: Option<u64>,
}

/// CPU seconds used between two samples.
#[derive(Clone, Copy, Default, Debug)]
pub struct CpuDelta {
    pub wall: f64,
    pub server: Option<f64>,
    pub client: Option<f64>,
    /// Every other process on the machine, and time stolen by the hypervisor (noise).
    pub others: Option<f64>,
}

pub struct CpuMeter {
    pub server_pid: Option<u32>,
    pub ticks_per_sec: f64,
}

impl CpuMeter {
    pub fn new(server_pid: Option<u32>) -> CpuMeter {
        CpuMeter {
            server_pid,
            ticks_per_sec: clock_ticks_per_sec(),
        }
    }

    pub fn sample(&self) -> CpuSample {
        CpuSample {
            at: Instant::now(),
            server_ticks: self.server_pid.and_then(cpu_ticks),
            client_ticks: cpu_ticks(std::process::id()),
            machine_ticks: machine_busy_ticks(),
        }
    }

    pub fn delta(&self, a: CpuSample, b: CpuSample) -> CpuDelta {
        let ticks = |x: Option<u64>, y: Option<u64>| {
            Some(y?.saturating_sub(x?) as f64 / self.ticks_per_sec)
        };
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

    /// The server's RSS now, in bytes.
    pub fn server_rss(&self) -> Option<u64> {
        self.server_pid.and_then(rss_kib).map(|kib| kib * 1024)
    }

    /// Waits until the server's CPU time stops moving (it has finished closing the last
    /// phase's connections), at most 5 s; without a pid, just 1 s.
    pub fn settle(&self) {
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
