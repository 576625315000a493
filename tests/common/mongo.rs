//! A real MongoDB wire-protocol server for the tests: nx-27017, started through
//! `scripts/mongo-test-server` by the Python of `CHATBOX_TEST_PYTHON` (`scripts/test`
//! installs both into `.venv-tools`). Each test starts its own, on a free port and a
//! data file in a temporary directory, so it can stop and resume it at will.
//!
//! Documents in the old service's shape are written with `pymongo`, the way that
//! service wrote them: see [`MongoServer::python`].

use std::io::Write;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, python, TempDir};

pub struct MongoServer {
    child: Option<Child>,
    pub port: u16,
    dir: TempDir,
}

impl MongoServer {
    pub fn start() -> MongoServer {
        let mut server = MongoServer {
            child: None,
            port: free_port(),
            dir: TempDir::new(),
        };
        server.resume();
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

    /// Starts the server (again) on the same port and data file.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "the server is running");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/mongo-test-server");
        let file = |name: &str| self.dir.path().join(name);
        let stderr = std::fs::File::create(file("stderr")).expect("stderr file");
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
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                panic!(
                    "the MongoDB test server did not start ({exited:?}); run scripts/test, which \
                     installs nx-27017 into .venv-tools, or set CHATBOX_TEST_PYTHON to a Python \
                     that has it. Its stderr:\n{}",
                    std::fs::read_to_string(file("stderr")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
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

impl Drop for MongoServer {
    fn drop(&mut self) {
        self.stop();
    }
}
