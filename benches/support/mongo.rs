//! The MongoDB of `chat_rtt --stores mongo`: nx-27017, a MongoDB wire-protocol server on
//! SQLite, through `scripts/mongo-test-server` as in the tests (the Python of
//! `CHATBOX_TEST_PYTHON`, else `python3`; `scripts/test` installs it into `.venv-tools`).
//! It is not pinned: it is part of what the row measures, and its CPU shows under
//! `others`.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::system::{on_cpu, CLIENT_CPU};

pub struct MongoUnderTest {
    child: Child,
    pub uri: String,
    dir: PathBuf,
}

impl MongoUnderTest {
    pub fn start() -> MongoUnderTest {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let dir = std::env::temp_dir().join(format!("chatbox-bench-mongo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("the MongoDB data directory");
        let python = std::env::var("CHATBOX_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/mongo-test-server");
        // On the client's CPU, where the pinned benches ran it anyway by inheritance: a
        // bench that runs elsewhere (scaleout) keeps this CPU-hungry Python off its own.
        let child = on_cpu(CLIENT_CPU, &python)
            .arg(script)
            .arg("--db")
            .arg(dir.join("mongo.db"))
            .args(["-p", &port.to_string()])
            .arg("--pid-file")
            .arg(dir.join("pid"))
            .arg("--log-file")
            .arg(dir.join("log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("run {python} {script}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nx-27017 did not start: run scripts/test once (it installs it into .venv-tools) \
                 and set CHATBOX_TEST_PYTHON=$PWD/.venv-tools/bin/python"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        MongoUnderTest {
            child,
            uri: format!("mongodb://127.0.0.1:{port}"),
            dir,
        }
    }
}

impl Drop for MongoUnderTest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TCP relay to `upstream` that holds every chunk for `delay` in each direction: a
/// database `2 × delay` of round trip away, as over a network, where loopback has none.
/// Returns the relay's URI.
pub fn delayed(upstream: &str, delay: Duration) -> String {
    let upstream = upstream.trim_start_matches("mongodb://").to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").expect("a relay port");
    let port = listener.local_addr().expect("the relay's address").port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(&upstream) else {
                continue;
            };
            for (from, to) in [(&client, &server), (&server, &client)] {
                let (from, to) = (from.try_clone(), to.try_clone());
                let (Ok(mut from), Ok(mut to)) = (from, to) else {
                    continue;
                };
                std::thread::spawn(move || relay(&mut from, &mut to, delay));
            }
        }
    });
    format!("mongodb://127.0.0.1:{port}/?directConnection=true")
}

fn relay(from: &mut TcpStream, to: &mut TcpStream, delay: Duration) {
    use std::io::{Read, Write};
    let mut buf = vec![0; 64 * 1024];
    while let Ok(n @ 1..) = from.read(&mut buf) {
        std::thread::sleep(delay);
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}
