//! The static musl binary runs alone in an empty root, as the `FROM scratch` image does,
//! and serves `/healthz`. Needs the binary from `scripts/build-static` and root (chroot);
//! `scripts/test` runs it with `--ignored` after building.
mod common;

use std::process::Command;
use std::time::Duration;

use common::{Server, TempDir, JWT_SECRET};

#[test]
#[ignore = "needs scripts/build-static and root; run by scripts/test"]
fn static_binary_serves_healthz_from_an_empty_root() {
    let binary =
        std::env::var("CHATBOX_STATIC_BIN").expect("CHATBOX_STATIC_BIN names the static binary");
    let roots = TempDir::new();
    let roots_path = roots.path().to_path_buf();
    let for_port = |port: u16| {
        let mut command = Command::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/run-in-empty-root"
        ));
        command
            .env("TMPDIR", &roots_path)
            .arg(&binary)
            .arg("--")
            .arg(format!("JWT_SECRET={JWT_SECRET}"))
            .arg("SERVER_HOST=127.0.0.1")
            .arg(format!("SERVER_PORT={port}"))
            .arg("SHUTDOWN_DRAIN_DELAY=100ms")
            .arg("SHUTDOWN_TIMEOUT=2s");
        command
    };
    let mut server = Server::launch(for_port, roots);

    let health = server.get("/chatbox/healthz");
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "healthy");

    // What the image promises: not root, and nothing but the binary in its root.
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", server.pid())).expect("proc status");
    let uid_line = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .expect("Uid line");
    assert!(
        uid_line
            .split_whitespace()
            .skip(1)
            .all(|uid| uid == "65532"),
        "{uid_line}"
    );
    let mut root: Vec<_> = std::fs::read_dir(format!("/proc/{}/root", server.pid()))
        .expect("its root")
        .map(|entry| entry.expect("entry").file_name())
        .collect();
    root.sort();
    assert_eq!(
        root,
        ["chatbox", "data"],
        "the binary and its data volume, nothing else"
    );

    server.signal("TERM");
    assert_eq!(server.wait_exit(Duration::from_secs(10)).code(), Some(0));
}
