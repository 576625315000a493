//! A real Redis for the tests: Debian's `redis-server` (`scripts/test` installs it),
//! started on 127.0.0.1 on a free port with nothing persisted, so a test can kill it
//! and start it again empty, as a restarted Redis pod would be.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{on_free_port, TempDir};

pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: TempDir,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let mut server = RedisServer {
            child: None,
            port: 0,
            dir: TempDir::new(),
        };
        let started = on_free_port(
            |port| {
                server.port = port;
                server.launch()
            },
            |log| log.contains("Address already in use"),
        );
        if let Err(log) = started {
            panic!("redis-server did not start (scripts/test installs it); its log:\n{log}");
        }
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: as abrupt as a crashed Redis pod.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub fn resume(&mut self) {
        if let Err(log) = self.launch() {
            panic!("redis-server did not start again; its log:\n{log}");
        }
    }

    /// A connection of the test's own, to look at what the pods did.
    pub fn connection(&self) -> redis::Connection {
        let client = redis::Client::open(self.url()).expect("a Redis URL");
        client
            .get_connection_with_timeout(Duration::from_secs(5))
            .expect("a connection to the test Redis")
    }

    /// Waits until `channel` has `count` subscribers (one per pod that needs it).
    pub fn wait_subscribers(&self, channel: &str, count: usize) {
        self.wait_for(&format!("{count} subscribers of {channel}"), |connection| {
            let found: Vec<(String, usize)> = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(channel)
                .query(connection)
                .expect("PUBSUB NUMSUB");
            found.first().map(|(_, n)| *n) == Some(count)
        });
    }

    /// Waits until the stream `key` holds at least `count` entries.
    pub fn wait_stream(&self, key: &str, count: usize) {
        self.wait_for(&format!("{count} entries in {key}"), |connection| {
            let len: usize = redis::cmd("XLEN").arg(key).query(connection).expect("XLEN");
            len >= count
        });
    }

    /// Asks `done` every 10 ms for up to 20 s; fails the test naming `what` after that.
    fn wait_for(&self, what: &str, mut done: impl FnMut(&mut redis::Connection) -> bool) {
        let mut connection = self.connection();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done(&mut connection) {
            assert!(Instant::now() < deadline, "no {what} after 20 s");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Spawns the server and waits until it answers `PING`; `Err` carries its log.
    fn launch(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "the server is running");
        let log = self.dir.path().join("redis.log");
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!("cannot run redis-server (scripts/test installs it): {err}")
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.answers_ping() {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                self.stop();
                return Err(std::fs::read_to_string(&log).unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn answers_ping(&self) -> bool {
        let Ok(client) = redis::Client::open(self.url()) else {
            return false;
        };
        let Ok(mut connection) = client.get_connection_with_timeout(Duration::from_secs(1)) else {
            return false;
        };
        redis::cmd("PING").query::<String>(&mut connection).is_ok()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
