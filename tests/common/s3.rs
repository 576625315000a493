//! A real S3-compatible server for the tests: `s3s-fs` (crates.io), which checks SigV4
//! signatures, so a wrong secret or a tampered presigned URL fails as it would on AWS.
//! `scripts/test` builds it into `.tools/s3s`; `CHATBOX_TEST_S3S` names another binary.
//! Each test starts its own on a free port, buckets being folders of a temporary root.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{on_free_port, HttpResponse, TempDir};

pub const ACCESS_KEY: &str = "chatbox-test-access";
pub const SECRET_KEY: &str = "chatbox-test-secret-7f3a9c";
pub const BUCKET: &str = "chat-uploads";

pub struct S3Server {
    child: Child,
    pub port: u16,
    root: TempDir,
}

fn binary() -> String {
    std::env::var("CHATBOX_TEST_S3S").unwrap_or_else(|_| {
        let tools = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/s3s/bin/s3s-fs");
        if tools.exists() {
            tools.to_string_lossy().into_owned()
        } else {
            "s3s-fs".into()
        }
    })
}

impl S3Server {
    /// Starts the server with one empty bucket, [`BUCKET`].
    pub fn start() -> S3Server {
        let root = TempDir::new();
        std::fs::create_dir_all(root.path().join(BUCKET)).expect("bucket folder");
        let started = on_free_port(
            |port| {
                let child = Command::new(binary())
                    .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                    .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
                    .arg(root.path())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap_or_else(|e| panic!("start {} ({e}); scripts/test builds it", binary()));
                let mut server = S3Server {
                    child,
                    port,
                    root: TempDir::new(),
                };
                let deadline = Instant::now() + Duration::from_secs(20);
                loop {
                    if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                        return Ok(server);
                    }
                    if let Ok(Some(_)) = server.child.try_wait() {
                        return Err(());
                    }
                    assert!(Instant::now() < deadline, "s3s-fs did not listen");
                    std::thread::sleep(Duration::from_millis(20));
                }
            },
            |_| true,
        );
        let mut server = started.expect("s3s-fs on a free port");
        server.root = root;
        server
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Where the server keeps an object.
    pub fn object_path(&self, key: &str) -> PathBuf {
        self.root.path().join(BUCKET).join(key)
    }

    /// The chatbox settings for this server (`secret` to try a wrong one).
    pub fn env(&self, secret: &str) -> Vec<(&'static str, String)> {
        vec![
            ("S3_BUCKET", BUCKET.into()),
            ("S3_REGION", "us-east-1".into()),
            ("S3_ENDPOINT", self.endpoint()),
            ("S3_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("S3_SECRET_ACCESS_KEY", secret.into()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 GET of an absolute `http://host:port/…` URL (a presigned one): no
/// S3 client, no signing of our own.
pub fn http_get(url: &str) -> HttpResponse {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest.split_at(rest.find('/').expect("a path"));
    let mut stream = TcpStream::connect(host).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut headers);
    parsed.parse(&raw[..split + 4]).expect("a response head");
    HttpResponse {
        status: parsed.code.expect("a status"),
        headers: super::owned_headers(parsed.headers),
        body: raw[split + 4..].to_vec(),
    }
}
