//! `chatbox-bench` against the real binary: each subcommand with a small N completes and
//! its JSON has the fields docs/BENCHMARKS.md documents; `drain` reports nothing lost on
//! a clean drain and finds a planted loss.
mod common;

use std::process::Command;
use std::time::Duration;

use common::{Server, TempDir, JWT_SECRET};
use serde_json::Value;

/// Runs `chatbox-bench ARGS --json`; it must succeed and print one JSON object.
fn bench(args: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_chatbox-bench"))
        .args(args)
        .arg("--json")
        .output()
        .expect("run chatbox-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{args:?}: {stderr}\n{stdout}");
    assert_eq!(stdout.lines().count(), 1, "one JSON object: {stdout}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("JSON: {e}: {stdout}"))
}

/// `fields` are all in `object` (a JSON object).
fn has_fields(object: &Value, fields: &[&str]) {
    for field in fields {
        assert!(object.get(field).is_some(), "no {field:?} in {object}");
    }
}

fn has_percentiles(object: &Value, name: &str) {
    has_fields(
        &object[name],
        &["count", "p50_us", "p90_us", "p99_us", "p999_us", "max_us"],
    );
}

fn echo_server() -> Server {
    Server::start(&[
        ("CHATBOX_ECHO", "true"),
        ("MAX_CONNECTIONS_PER_IP", "1000"),
        ("RATE_LIMIT", "100000"),
        ("RATE_LIMIT_WINDOW", "1s"),
    ])
}

fn url(server: &Server, path: &str) -> String {
    format!("ws://127.0.0.1:{}/chatbox{path}", server.port)
}

#[test]
fn connect_opens_raw_and_chat_sockets_and_measures_the_server() {
    let server = echo_server();
    let pid = server.pid().to_string();
    let raw = bench(&[
        "connect",
        "--url",
        &url(&server, "/echo"),
        "--conns",
        "50",
        "--parallel",
        "16",
        "--pid",
        &pid,
        "--settle",
        "0",
    ]);
    has_fields(
        &raw,
        &[
            "command",
            "url",
            "kind",
            "conns",
            "parallel",
            "rate_target",
            "opened",
            "failed",
            "failures",
            "elapsed_s",
            "connect_rate",
            "handshake",
            "cpu",
            "server",
            "sources",
        ],
    );
    has_percentiles(&raw, "handshake");
    assert_eq!(
        (raw["kind"].as_str(), raw["opened"].as_u64()),
        (Some("raw"), Some(50)),
        "{raw}"
    );
    assert_eq!(raw["handshake"]["count"], 50);
    has_fields(
        &raw["server"],
        &[
            "pid",
            "rss_before_bytes",
            "rss_open_bytes",
            "rss_per_conn_bytes",
            "cpu_per_conn_us",
        ],
    );
    assert!(
        raw["server"]["rss_open_bytes"].as_u64().unwrap_or(0) > 0,
        "{raw}"
    );

    let chat = bench(&[
        "connect",
        "--url",
        &url(&server, "/ws"),
        "--conns",
        "20",
        "--secret",
        JWT_SECRET,
        "--rate",
        "500",
        "--settle",
        "0",
    ]);
    assert_eq!(
        (chat["kind"].as_str(), chat["opened"].as_u64()),
        (Some("chat"), Some(20)),
        "{chat}"
    );
    assert_eq!(chat["failed"], 0);

    // A wrong secret: every socket fails, and the cause says why.
    let refused = bench(&[
        "connect",
        "--url",
        &url(&server, "/ws"),
        "--conns",
        "5",
        "--secret",
        "another-secret-of-enough-length-xyz",
        "--settle",
        "0",
    ]);
    assert_eq!(refused["opened"], 0);
    let causes = refused["failures"].as_object().expect("failures object");
    assert!(causes.keys().any(|k| k.contains("401")), "{refused}");
}

#[test]
fn echo_measures_each_connection_count() {
    let server = echo_server();
    let pid = server.pid().to_string();
    let report = bench(&[
        "echo",
        "--url",
        &url(&server, "/echo"),
        "--conns",
        "2,10",
        "--secs",
        "1",
        "--warmup",
        "0",
        "--size",
        "32",
        "--pid",
        &pid,
    ]);
    has_fields(
        &report,
        &["command", "url", "size", "warmup_s", "secs", "rows"],
    );
    let rows = report["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2);
    for row in rows {
        has_fields(
            row,
            &[
                "conns",
                "opened",
                "messages",
                "msg_per_s",
                "latency",
                "server_us_per_msg",
                "client_us_per_msg",
                "cpu",
                "errors",
                "first_error",
                "stalled",
            ],
        );
        has_percentiles(row, "latency");
        assert!(row["messages"].as_u64().unwrap_or(0) > 0, "{row}");
        assert_eq!(row["errors"], 0, "{row}");
        has_fields(&row["cpu"], &["wall_s", "server_s", "client_s", "others_s"]);
    }
}

#[test]
fn chat_times_loading_first_chunk_and_done() {
    let server = echo_server();
    let report = bench(&[
        "chat",
        "--url",
        &url(&server, "/ws"),
        "--secret",
        JWT_SECRET,
        "--users",
        "5",
        "--secs",
        "1",
        "--warmup",
        "0",
    ]);
    has_fields(
        &report,
        &[
            "command",
            "url",
            "users",
            "opened",
            "pace_ms",
            "warmup_s",
            "secs",
            "exchanges",
            "exchanges_per_s",
            "loading",
            "first_chunk",
            "done",
            "server_us_per_exchange",
            "cpu",
            "errors",
            "first_error",
            "stalled",
        ],
    );
    for name in ["loading", "first_chunk", "done"] {
        has_percentiles(&report, name);
        assert!(
            report[name]["count"].as_u64().unwrap_or(0) > 0,
            "{name}: {report}"
        );
    }
    assert_eq!(report["errors"], 0, "{report}");
}

fn drain_server() -> Server {
    Server::start(&[
        ("CHATBOX_ECHO", "true"),
        ("MAX_CONNECTIONS_PER_IP", "1000"),
        ("RATE_LIMIT", "100000"),
        ("RATE_LIMIT_WINDOW", "1s"),
        ("SHUTDOWN_DRAIN_DELAY", "300ms"),
        ("SHUTDOWN_TIMEOUT", "10s"),
    ])
}

fn drain(server: &Server, data_dir: &std::path::Path) -> Value {
    let pid = server.pid().to_string();
    let dir = data_dir.to_str().expect("utf-8 path");
    bench(&[
        "drain",
        "--url",
        &url(server, "/ws"),
        "--secret",
        JWT_SECRET,
        "--sessions",
        "20",
        "--warmup",
        "1",
        // Every session sends often enough that each has messages to lose.
        "--pace",
        "100",
        "--pid",
        &pid,
        "--data-dir",
        dir,
        "--drain-delay",
        "300ms",
        "--limit",
        "30",
    ])
}

#[test]
fn a_clean_drain_loses_nothing() {
    let mut server = drain_server();
    let data_dir = server.data_dir().to_path_buf();
    let report = drain(&server, &data_dir);
    assert_eq!(server.wait_exit(Duration::from_secs(15)).code(), Some(0));
    has_fields(
        &report,
        &[
            "command",
            "url",
            "sessions",
            "opened",
            "sigterm",
            "readyz_flipped_ms",
            "closed_1001",
            "closed_other",
            "other_closes",
            "dropped",
            "still_open",
            "close_1001",
            "first_1001_ms",
            "last_1001_ms",
            "last_1001_after_delay_ms",
            "replies_completed",
            "replies_before_sigterm",
            "replies_cut",
            "acked",
            "server_exit_ms",
            "store",
            "lost",
            "lost_examples",
            "first_error",
        ],
    );
    has_percentiles(&report, "close_1001");
    assert_eq!(report["opened"], 20, "{report}");
    assert_eq!(report["closed_1001"], 20, "{report}");
    assert!(report["readyz_flipped_ms"].is_number(), "{report}");
    assert!(report["server_exit_ms"].is_number(), "{report}");
    assert!(report["acked"].as_u64().unwrap_or(0) >= 20, "{report}");
    assert_eq!(report["store"], "embedded");
    assert_eq!(report["lost"], 0, "{report}");
}

#[test]
fn a_store_replaced_behind_the_servers_back_is_a_loss() {
    let mut server = drain_server();
    let data_dir = server.data_dir().to_path_buf();
    // Plant the loss: an empty store file takes the server's file's place. The server
    // keeps writing to the file it opened; what is left at DATA_DIR lacks all of it.
    let empty = TempDir::new();
    drop(chatbox::store::embedded::Embedded::open(empty.path()).expect("an empty store"));
    let file = chatbox::store::embedded::FILE_NAME;
    std::fs::rename(empty.path().join(file), data_dir.join(file)).expect("replace the file");
    let report = drain(&server, &data_dir);
    assert_eq!(server.wait_exit(Duration::from_secs(15)).code(), Some(0));
    let acked = report["acked"].as_u64().unwrap_or(0);
    assert!(acked >= 20, "{report}");
    assert_eq!(report["lost"].as_u64(), Some(acked), "{report}");
    assert!(
        !report["lost_examples"].as_array().expect("list").is_empty(),
        "{report}"
    );
}

#[test]
fn remote_addresses_need_allow_remote() {
    let output = Command::new(env!("CARGO_BIN_EXE_chatbox-bench"))
        .args(["echo", "--url", "ws://8.8.8.8:80/", "--secs", "1"])
        .output()
        .expect("run chatbox-bench");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--allow-remote"));
}
