//! A real MongoDB wire-protocol server for the tests: nx-27017, started through
//! `scripts/mongo-test-server` by the Python of `CHATBOX_TEST_PYTHON` (`scripts/test`
//! installs both into `.venv-tools`). Each test starts its own, on a free port and a
//! data file in a temporary directory, so it can stop and resume it at will.
//!
//! Documents in the old service's shape are written with `pymongo`, the way that
//! service wrote them: see [`MongoServer::python`].

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{on_free_port, python, TempDir};

pub struct MongoServer {
    child: Option<Child>,
    pub port: u16,
    dir: TempDir,
}

impl MongoServer {
    pub fn start() -> MongoServer {
        let mut server = MongoServer {
            child: None,
            port: 0,
            dir: TempDir::new(),
        };
        let started = on_free_port(
            |port| {
                server.port = port;
                server.launch()
            },
            |stderr| stderr.to_lowercase().contains("address already in use"),
        );
        if let Err(stderr) = started {
            panic!("{}", not_started(&stderr));
        }
        server
    }

    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: as abrupt as a crashed database or a pulled cable.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and data file.
    pub fn resume(&mut self) {
        if let Err(stderr) = self.launch() {
            panic!("{}", not_started(&stderr));
        }
    }

    /// Spawns the server and waits until it answers a `ping`; `Err` carries its stderr.
    fn launch(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "the server is running");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/mongo-test-server");
        let file = |name: &str| self.dir.path().join(name);
        let stderr_path = file("stderr");
        let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
        let child = Command::new(python())
            .arg(script)
            .arg("--db")
            .arg(file("mongo.db"))
            .args(["-p", &self.port.to_string()])
            .arg("--pid-file")
            .arg(file("pid"))
            .arg("--log-file")
            .arg(file("log"))
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot run {}: {err}", python()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !answers_ping(self.port) {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                self.stop();
                return Err(std::fs::read_to_string(&stderr_path).unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Runs `script` with pymongo: `URI` is the server's URI, `DB` the `chat` database,
    /// and `sys.stdin` carries `input`. Returns what it printed; panics if it failed.
    pub fn python(&self, script: &str, input: &str) -> String {
        let prelude = format!(
            "import sys, json, datetime, base64, os\n\
             import pymongo, bson\n\
             URI = {uri:?}\n\
             DB = pymongo.MongoClient(URI, serverSelectionTimeoutMS=5000).chat\n",
            uri = self.uri()
        );
        let mut child = Command::new(python())
            .args(["-c", &format!("{prelude}{script}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("script input");
        let out = child.wait_with_output().expect("python output");
        assert!(
            out.status.success(),
            "python failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }
}

fn not_started(stderr: &str) -> String {
    format!(
        "the MongoDB test server did not start; run scripts/test, which installs nx-27017 \
         into .venv-tools, or set CHATBOX_TEST_PYTHON to a Python that has it. Its \
         stderr:\n{stderr}"
    )
}

/// Whether a MongoDB server answers an `OP_MSG` `ping` on `port`. An accepted connection
/// alone proves nothing: a listener that is about to close accepts too.
fn answers_ping(port: u16) -> bool {
    const OP_MSG: i32 = 2013;
    const REQUEST_ID: i32 = 1;
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let Ok(body) = mongodb::bson::doc! { "ping": 1, "$db": "admin" }.to_vec() else {
        return false;
    };
    // Header (length, request id, response to, op code), flag bits, one body section.
    let length = 16 + 4 + 1 + body.len();
    let mut message = Vec::with_capacity(length);
    for field in [length as i32, REQUEST_ID, 0, OP_MSG, 0] {
        message.extend_from_slice(&field.to_le_bytes());
    }
    message.push(0);
    message.extend_from_slice(&body);
    let mut header = [0u8; 16];
    if stream.write_all(&message).is_err() || stream.read_exact(&mut header).is_err() {
        return false;
    }
    let field = |at: usize| {
        i32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    field(8) == REQUEST_ID && field(12) == OP_MSG
}

impl Drop for MongoServer {
    fn drop(&mut self) {
        self.stop();
    }
}
