//! The standard `process_*` metrics, read from `/proc/self` when scraped, as the official
//! clients do. Each read is a few small procfs files (and one directory listing for the
//! descriptor count): cheap enough for the loop at scrape intervals.

use std::fs;
use std::io;

/// What `/proc` says about this process right now.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Process {
    pub resident_bytes: u64,
    pub cpu_seconds: f64,
    pub open_fds: u64,
    /// Unix time the process started.
    pub start_time_seconds: f64,
}

/// The fields of `/proc/self/stat` the metrics need, in kernel units.
#[derive(Debug, PartialEq, Eq)]
struct Stat {
    /// utime + stime, in clock ticks.
    cpu_ticks: u64,
    /// Clock ticks after boot.
    start_ticks: u64,
    rss_pages: u64,
}

impl Process {
    pub fn read() -> io::Result<Process> {
        let stat = parse_stat(&fs::read_to_string("/proc/self/stat")?)?;
        let boot = parse_btime(&fs::read_to_string("/proc/stat")?)?;
        let open_fds = fs::read_dir("/proc/self/fd")?.count() as u64;
        let ticks = sysconf(libc::_SC_CLK_TCK)? as f64;
        let page = sysconf(libc::_SC_PAGESIZE)?;
        Ok(Process {
            resident_bytes: stat.rss_pages.saturating_mul(page),
            cpu_seconds: stat.cpu_ticks as f64 / ticks,
            open_fds,
            start_time_seconds: boot as f64 + stat.start_ticks as f64 / ticks,
        })
    }
}

fn sysconf(name: libc::c_int) -> io::Result<u64> {
    // SAFETY: sysconf only reads a constant of the running system.
    let value = unsafe { libc::sysconf(name) };
    u64::try_from(value)
        .ok()
        .filter(|&v| v > 0)
        .ok_or_else(io::Error::last_os_error)
}

fn malformed(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("unexpected {what}"))
}

/// `pid (comm) state ppid …`: the command name may hold spaces and parentheses, so the
/// fields are counted from the last `)`.
fn parse_stat(text: &str) -> io::Result<Stat> {
    let (_, rest) = text
        .rsplit_once(')')
        .ok_or_else(|| malformed("/proc/self/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // proc(5) numbers fields from 1 and `rest` starts at field 3 (state).
    let field = |n: usize| -> io::Result<u64> {
        fields
            .get(n - 3)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| malformed("/proc/self/stat"))
    };
    Ok(Stat {
        cpu_ticks: field(14)? + field(15)?,
        start_ticks: field(22)?,
        rss_pages: field(24)?,
    })
}

fn parse_btime(text: &str) -> io::Result<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|value| value.trim().parse().ok())
        .ok_or_else(|| malformed("/proc/stat"))
}

#[cfg(test)]
mod tests {
    use std::time::{SystemTime, UNIX_EPOCH};

    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let line = "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    250 150 0 0 20 0 5 0 98765 123456789 2048 18446744073709551615";
        assert_eq!(
            parse_stat(line).expect("parses"),
            Stat {
                cpu_ticks: 400,
                start_ticks: 98765,
                rss_pages: 2048,
            }
        );
        assert!(parse_stat("4242 no parenthesis").is_err());
        assert!(parse_stat("4242 (short) S 1 2").is_err());
    }

    #[test]
    fn boot_time_comes_from_proc_stat() {
        let text = "cpu  1 2 3\nintr 5\nbtime 1700000000\nprocesses 9\n";
        assert_eq!(parse_btime(text).expect("btime"), 1_700_000_000);
        assert!(parse_btime("cpu 1\n").is_err());
    }

    #[test]
    fn this_process_reads_sensibly() {
        let process = Process::read().expect("/proc is mounted");
        assert!(process.resident_bytes > 0);
        assert!(process.open_fds >= 3, "at least stdin, stdout, stderr");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("the clock is past 1970")
            .as_secs() as f64;
        assert!(process.start_time_seconds > 1e9 && process.start_time_seconds <= now + 1.0);
    }
}
