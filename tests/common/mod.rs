//! Shared by the integration tests: start the real `chatbox` binary on a free port and
//! talk to it over real sockets.
#![allow(dead_code)] // each test binary uses a different part of this module

pub mod chat;
pub mod llm_mock;
pub mod mongo;
pub mod s3;
pub mod smtp;
pub mod twilio;
pub mod upload;
pub mod ws;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A signing secret that passes the weak-secret rules.
pub const JWT_SECRET: &str = "q8Vn2xLr7TzKp4WmYc9HbEs6JdUf3GaN";

/// How often a test server is started on a fresh port when the last one was taken.
const BIND_ATTEMPTS: usize = 5;
/// How much of a server's log a failing test prints.
const FAILURE_LOG_LINES: usize = 200;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Starts a server with `start(port)` on a port from `free_port`, and again on a fresh
/// port while `port_taken` says it could not bind: the listener `free_port` dropped can
/// live on for a moment in a child another test thread is forking, until that child's
/// exec closes it.
pub fn on_free_port<T, E>(
    mut start: impl FnMut(u16) -> Result<T, E>,
    port_taken: impl Fn(&E) -> bool,
) -> Result<T, E> {
    let mut attempt = 1;
    loop {
        match start(free_port()) {
            Err(error) if port_taken(&error) && attempt < BIND_ATTEMPTS => attempt += 1,
            result => return result,
        }
    }
}

/// The Python the tests run helpers with: `CHATBOX_TEST_PYTHON` (`scripts/test` points
/// it at `.venv-tools`, which has `cryptography`, `pymongo`, nx-27017 and aiosmtpd),
/// else `python3`.
pub fn python() -> String {
    std::env::var("CHATBOX_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_chatbox")
}

pub struct Server {
    child: Child,
    pub port: u16,
    logs: Arc<Mutex<Vec<String>>>,
    /// `DATA_DIR`; `None` only while starting and after `kill` handed it out.
    data: Option<TempDir>,
}

impl Server {
    /// Starts the server with a valid base configuration plus `env`, and waits until it
    /// accepts connections.
    pub fn start(env: &[(&str, &str)]) -> Server {
        Self::start_with(binary(), env)
    }

    pub fn start_with(program: &str, env: &[(&str, &str)]) -> Server {
        Self::start_in(program, TempDir::new(), env)
    }

    /// Starts the server on an existing `DATA_DIR` (a restart after `kill`).
    pub fn start_in(program: &str, data: TempDir, env: &[(&str, &str)]) -> Server {
        let data_path = data.path().to_path_buf();
        Server::launch(
            |port| {
                let mut command = Command::new(program);
                command
                    .env_clear()
                    .env("JWT_SECRET", JWT_SECRET)
                    .env("SERVER_HOST", "127.0.0.1")
                    .env("SERVER_PORT", port.to_string())
                    .env("DATA_DIR", &data_path)
                    .env("LOG_LEVEL", "debug");
                for (key, value) in env {
                    command.env(key, value);
                }
                command
            },
            data,
        )
    }

    /// Spawns the command `for_port` builds (it must make the server listen on
    /// 127.0.0.1:`port` and log at info or finer), and waits until the server says it
    /// listens there.
    pub fn launch(mut for_port: impl FnMut(u16) -> Command, data: TempDir) -> Server {
        let started = on_free_port(
            |port| {
                let mut server = Server::spawn(for_port(port), port);
                server.wait_until_listening().map(|()| server)
            },
            |logs| logs.iter().any(|line| line.contains("cannot listen on")),
        );
        match started {
            Ok(mut server) => {
                server.data = Some(data);
                server
            }
            Err(logs) => panic!("chatbox did not start:\n{}", logs.join("\n")),
        }
    }

    fn spawn(mut command: Command, port: u16) -> Server {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn chatbox");
        let logs = Arc::new(Mutex::new(Vec::new()));
        for pipe in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let logs = Arc::clone(&logs);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    logs.lock().expect("log lock").push(line);
                }
            });
        }
        Server {
            child,
            port,
            logs,
            data: None,
        }
    }

    /// Waits for the server's own "listening on" line rather than for the port to
    /// accept: that forked copy of `free_port`'s listener accepts too, then resets
    /// what it queued when it closes. `Err` carries the logs of a server that exited
    /// or never got there.
    fn wait_until_listening(&mut self) -> Result<(), Vec<String>> {
        let announcement = format!("listening on http://127.0.0.1:{}", self.port);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.logs().iter().any(|line| line.contains(&announcement)) {
                return Ok(());
            }
            let exited = matches!(self.child.try_wait(), Ok(Some(_)));
            if exited || Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                // The pipes close with the process; give the readers their last lines.
                std::thread::sleep(Duration::from_millis(50));
                return Err(self.logs());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr()).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .expect("timeout");
        stream
    }

    /// One request on a fresh connection.
    pub fn get(&self, path: &str) -> HttpResponse {
        let mut stream = self.connect();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        )
        .expect("send");
        read_response(&mut stream).expect("a response")
    }

    /// One request with `method`, extra header lines and a body, on a fresh connection.
    pub fn request(&self, method: &str, path: &str, headers: &str, body: &str) -> HttpResponse {
        let mut stream = self.connect();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("send");
        read_response(&mut stream).expect("a response")
    }

    /// SIGKILL, then the data directory, for a restart on the same store.
    pub fn kill(mut self) -> TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.data.take().expect("the data directory")
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self.data.as_ref().expect("the data directory").path()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "chatbox still running after {limit:?}:\n{}",
                self.logs().join("\n")
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().expect("log lock").clone()
    }

    /// Waits until a log line satisfies `wanted` (the log is read on another thread, so
    /// a line written before an answer may show up after it); false after `limit`.
    pub fn wait_for_log(&self, limit: Duration, wanted: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if self.logs().iter().any(|line| wanted(line)) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A failing test shows what the server saw (cargo prints a failed test's output).
        if std::thread::panicking() {
            let logs = self.logs();
            let tail = &logs[logs.len().saturating_sub(FAILURE_LOG_LINES)..];
            eprintln!("--- chatbox on port {} ---\n{}", self.port, tail.join("\n"));
        }
    }
}

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Reads one response (head + `Content-Length` body; none for HEAD-like `no_body`).
pub fn read_response(stream: &mut TcpStream) -> Option<HttpResponse> {
    read_response_inner(stream, false)
}

pub fn read_head_only_response(stream: &mut TcpStream) -> Option<HttpResponse> {
    read_response_inner(stream, true)
}

fn read_response_inner(stream: &mut TcpStream, no_body: bool) -> Option<HttpResponse> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    // Byte by byte so that nothing of a following pipelined response is consumed.
    while !buf.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => return None,
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut headers);
    parsed.parse(&buf).ok()?;
    let status = parsed.code?;
    let headers = owned_headers(parsed.headers);
    let length = content_length(&headers).unwrap_or(0);
    let mut body = vec![0; if no_body { 0 } else { length }];
    stream.read_exact(&mut body).ok()?;
    Some(HttpResponse {
        status,
        headers,
        body,
    })
}

/// True when the peer has closed the connection (EOF or reset) within `limit`.
pub fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    stream.set_read_timeout(Some(limit)).expect("timeout");
    let mut sink = [0u8; 4096];
    loop {
        match stream.read(&mut sink) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// Runs the binary to completion with a base environment plus `env` (`None` removes a
/// variable), returning exit code and stderr.
pub fn run_once(args: &[&str], env: &[(&str, Option<&str>)]) -> (Option<i32>, String, String) {
    let data = TempDir::new();
    let mut command = Command::new(binary());
    command
        .args(args)
        .env_clear()
        .env("JWT_SECRET", JWT_SECRET)
        .env("DATA_DIR", data.path());
    for (key, value) in env {
        match value {
            Some(value) => command.env(key, value),
            None => command.env_remove(key),
        };
    }
    let output = command.output().expect("run chatbox");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// httparse's borrowed headers as owned `(name, value)` pairs.
pub fn owned_headers(headers: &[httparse::Header]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|h| {
            (
                h.name.to_owned(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect()
}

pub fn content_length(headers: &[(String, String)]) -> Option<usize> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
}

/// A directory removed on drop (no tempfile crate needed for this).
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("chatbox-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
