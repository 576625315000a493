//! Start-up and footprint: exec → first `/readyz` 200, idle RSS, binary size.
//!
//! `cargo bench --bench startup` (uses the release binary; override with CHATBOX_BIN).
//! Each run starts a fresh process on a fresh port and polls `/readyz` in a tight loop.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 20;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn ready(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let request = b"GET /chatbox/readyz HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n";
    let mut response = Vec::new();
    stream.write_all(request).is_ok()
        && stream.read_to_end(&mut response).is_ok()
        && response.starts_with(b"HTTP/1.1 200")
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let binary = std::env::var("CHATBOX_BIN").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/chatbox").to_owned()
    });
    let data = std::env::temp_dir().join(format!("chatbox-bench-{}", std::process::id()));
    let mut ready_ms = Vec::new();
    let mut rss = Vec::new();
    for _ in 0..RUNS {
        let port = free_port();
        let started = Instant::now();
        let mut child = Command::new(&binary)
            .env("JWT_SECRET", "q8Vn2xLr7TzKp4WmYc9HbEs6JdUf3GaN")
            .env("SERVER_HOST", "127.0.0.1")
            .env("SERVER_PORT", port.to_string())
            .env("DATA_DIR", &data)
            .env("LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn");
        while !ready(port) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "never became ready"
            );
        }
        ready_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        std::thread::sleep(Duration::from_millis(300));
        rss.push(rss_kib(child.id()) as f64);
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = std::fs::remove_dir_all(&data);
    ready_ms.sort_by(f64::total_cmp);
    rss.sort_by(f64::total_cmp);
    let size = std::fs::metadata(&binary).map(|m| m.len()).unwrap_or(0);
    println!(
        "binary           {binary}: {:.2} MiB",
        size as f64 / 1048576.0
    );
    println!(
        "exec → ready     p50 {:.1} ms  p90 {:.1} ms  max {:.1} ms  ({RUNS} runs)",
        percentile(&ready_ms, 0.5),
        percentile(&ready_ms, 0.9),
        ready_ms[ready_ms.len() - 1]
    );
    println!(
        "idle RSS         p50 {:.1} MiB  max {:.1} MiB",
        percentile(&rss, 0.5) / 1024.0,
        rss[rss.len() - 1] / 1024.0
    );
}
