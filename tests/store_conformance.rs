//! The embedded store, plain and sealed, against the conformance suite; then what only a
//! file on disk can show: data survives a reopen and `kill -9`, and sealed values are not
//! plaintext.
mod common;
mod store_suite;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use base64::Engine as _;
use chatbox::config::Config;
use chatbox::crypto::Cipher;
use chatbox::metrics::{Metrics, State};
use chatbox::store::embedded::{Embedded, FILE_NAME};
use chatbox::store::sealed::Sealed;
use chatbox::store::{self, Append, Message, Sender, Store, StoreError, Window};
use common::TempDir;

const KEY: [u8; 32] = *b"0123456789abcdef0123456789abcdef";

/// A store in its own temporary directory, removed after the store is closed (fields
/// drop in order).
struct Scratch {
    store: Box<dyn Store>,
    _dir: TempDir,
}

impl Deref for Scratch {
    type Target = dyn Store;

    fn deref(&self) -> &Self::Target {
        &*self.store
    }
}

fn embedded() -> Scratch {
    let dir = TempDir::new();
    let store = Box::new(Embedded::open(dir.path()).expect("open embedded store"));
    Scratch { store, _dir: dir }
}

fn sealed() -> Scratch {
    let dir = TempDir::new();
    let inner = Embedded::open(dir.path()).expect("open embedded store");
    let store = Box::new(Sealed::new(inner, Cipher::new(&KEY), true));
    Scratch { store, _dir: dir }
}

mod embedded {
    crate::store_suite::conformance_tests!(super::embedded);
}

mod sealed {
    crate::store_suite::conformance_tests!(super::sealed);
}

fn append(store: &dyn Store, session: &str, message: &Message) -> chatbox::store::Session {
    store
        .append(&Append {
            session_id: session,
            user_id: "alice",
            name: "Secret plans",
            model_id: "model-a",
            message,
            max_messages: 100,
        })
        .expect("append");
    store.session(session).expect("read").expect("stored")
}

fn with_attachment(id: &str, content: &str, at: i64) -> Message {
    let mut message = Message::new(id, Sender::User, content, at);
    message.file_id = Some("file-1".into());
    message.file_url = Some("https://files.example/private/plan.pdf".into());
    message.meta = BTreeMap::from([("filename".to_owned(), "plan.pdf".to_owned())]);
    message
}

#[test]
fn data_survives_reopen() {
    let dir = TempDir::new();
    let before = {
        let store = Embedded::open(dir.path()).unwrap();
        append(&store, "s1", &with_attachment("m1", "first", 1_000));
        let mut reply = Message::new("m2", Sender::Ai, "second", 2_000);
        reply.tokens = Some(7);
        reply.resp_ms = Some(900);
        append(&store, "s1", &reply);
        append(
            &store,
            "s2",
            &Message::new("m3", Sender::User, "other", 3_000),
        );
        store.share("s1", "tok", 4_000).unwrap();
        store.end("s2", 5_000).unwrap();
        store.transcript("s1", None).unwrap().unwrap()
    };
    let store = Embedded::open(dir.path()).unwrap();
    assert_eq!(store.transcript("s1", None).unwrap().unwrap(), before);
    assert_eq!(store.shared("tok", Window::ALL).unwrap().unwrap(), before);
    assert_eq!(store.latest_active("alice").unwrap().unwrap().id, "s1");
    assert_eq!(store.count_active().unwrap(), 1);
    let listed = store.user_sessions("alice", 10).unwrap();
    assert_eq!(
        listed.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        ["s2", "s1"]
    );
    assert_eq!(listed[0].duration_secs, Some(2));
    let third = append(
        &store,
        "s1",
        &Message::new("m4", Sender::User, "third", 6_000),
    );
    assert_eq!(third.message_count, 3);
    assert_eq!(
        store.transcript("s1", Some(2)).unwrap().unwrap().messages[1].content,
        "third"
    );
}

/// Child half of `acknowledged_writes_survive_kill_9`: appends until killed, printing
/// each message's number once its append has returned.
#[test]
#[ignore = "run in a child process by acknowledged_writes_survive_kill_9"]
fn append_until_killed() {
    let Some(dir) = std::env::var_os(KILL_DIR) else {
        return;
    };
    let store = Embedded::open(Path::new(&dir)).unwrap();
    for n in 0_i64.. {
        let text = format!("message {n}");
        append(
            &store,
            "s1",
            &Message::new(format!("m{n}"), Sender::User, text, n),
        );
        println!("acked {n}");
    }
}

const KILL_DIR: &str = "CHATBOX_TEST_KILL_DIR";

/// Runs `append_until_killed` in a child process on a fresh directory and kills it with
/// SIGKILL (no destructor, no last checkpoint, no clean close of the file) once it has
/// acknowledged 31 appends; returns the directory and the last acknowledged number.
fn appends_then_kill_9() -> (TempDir, u64) {
    let dir = TempDir::new();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["append_until_killed", "--exact", "--ignored", "--nocapture"])
        .env(KILL_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acked = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        // libtest may print its "test … ..." prefix on the same line.
        if let Some(at) = line.find("acked ") {
            acked = Some(line[at + 6..].parse::<u64>().unwrap());
            if acked >= Some(30) {
                break;
            }
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    (dir, acked.expect("the child acknowledged appends"))
}

/// Every acknowledged message is in the reopened store, in order.
fn assert_all_acknowledged_stored(dir: &Path, acked: u64) {
    let store = Embedded::open(dir).unwrap();
    let transcript = store.transcript("s1", None).unwrap().unwrap();
    let count = transcript.session.message_count;
    assert!(
        count > acked,
        "{count} messages stored, {} acknowledged",
        acked + 1
    );
    assert_eq!(transcript.messages.len() as u64, count);
    for (n, message) in transcript.messages.iter().enumerate() {
        assert_eq!(message.content, format!("message {n}"));
    }
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let (dir, acked) = appends_then_kill_9();
    assert_all_acknowledged_stored(dir.path(), acked);
}

/// The append log's newest file in `dir`: appends go there until the next checkpoint.
fn newest_log(dir: &Path) -> PathBuf {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
        .collect();
    logs.sort();
    logs.pop().expect("the store keeps an append log")
}

/// A crash mid-write leaves a record cut short at the log's end (it was never
/// acknowledged); the replay stops there and keeps everything before it.
#[test]
fn a_torn_record_at_the_end_of_the_log_is_ignored_after_kill_9() {
    let (dir, acked) = appends_then_kill_9();
    let log = newest_log(dir.path());
    let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    // A length and CRC promising 4 KiB, then only the payload's first bytes.
    file.write_all(&[0, 16, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 0, 0])
        .unwrap();
    drop(file);
    assert_all_acknowledged_stored(dir.path(), acked);
    assert!(!log.exists(), "the replayed log is deleted");
}

#[test]
fn a_second_open_of_the_same_file_is_refused() {
    let dir = TempDir::new();
    let _first = Embedded::open(dir.path()).unwrap();
    assert!(matches!(
        Embedded::open(dir.path()),
        Err(StoreError::Unavailable(_))
    ));
}

#[test]
fn sealed_store_writes_no_plaintext() {
    let dir = TempDir::new();
    let plain = with_attachment("m1", "the launch code is 0000", 1_000);
    {
        let store = Sealed::new(Embedded::open(dir.path()).unwrap(), Cipher::new(&KEY), true);
        let session = append(&store, "s1", &plain);
        assert_eq!(session.name, "Secret plans");
        assert_eq!(
            store.transcript("s1", None).unwrap().unwrap().messages,
            std::slice::from_ref(&plain)
        );
    }
    let file = std::fs::read(dir.path().join(FILE_NAME)).unwrap();
    for secret in ["launch code", "Secret plans", "files.example", "plan.pdf"] {
        assert!(
            !contains(&file, secret.as_bytes()),
            "{secret:?} is in the file"
        );
    }

    let raw = Embedded::open(dir.path()).unwrap();
    let cipher = Cipher::new(&KEY);
    let transcript = raw.transcript("s1", None).unwrap().unwrap();
    let stored = &transcript.messages[0];
    assert_ne!(stored.content, plain.content);
    assert!(base64::engine::general_purpose::STANDARD
        .decode(&stored.content)
        .is_ok());
    assert_eq!(cipher.open(&stored.content), plain.content);
    let url = stored.file_url.as_deref().unwrap();
    assert_eq!(cipher.open(url), plain.file_url.clone().unwrap());
    assert_ne!(Some(url), plain.file_url.as_deref());
    assert_eq!(cipher.open(&stored.meta["filename"]), "plan.pdf");
    assert_ne!(transcript.session.name, "Secret plans");
    assert_eq!(cipher.open(&transcript.session.name), "Secret plans");
    assert_eq!(stored.file_id, plain.file_id, "ids are not secret");
}

#[test]
fn sealed_store_by_default_encrypts_content_only() {
    let dir = TempDir::new();
    let plain = with_attachment("m1", "private words", 1_000);
    {
        let store = Sealed::new(
            Embedded::open(dir.path()).unwrap(),
            Cipher::new(&KEY),
            false,
        );
        append(&store, "s1", &plain);
    }
    let raw = Embedded::open(dir.path()).unwrap();
    let transcript = raw.transcript("s1", None).unwrap().unwrap();
    let stored = &transcript.messages[0];
    assert_eq!(Cipher::new(&KEY).open(&stored.content), "private words");
    assert_ne!(stored.content, "private words");
    assert_eq!(
        (stored.file_url.as_deref(), &stored.meta),
        (plain.file_url.as_deref(), &plain.meta)
    );
    assert_eq!(transcript.session.name, "Secret plans");
}

#[test]
fn turning_all_fields_off_still_opens_sealed_fields() {
    let dir = TempDir::new();
    let plain = with_attachment("m1", "words", 1_000);
    let sealed = |all_fields| {
        let store = Embedded::open(dir.path()).unwrap();
        Sealed::new(store, Cipher::new(&KEY), all_fields)
    };
    append(&sealed(true), "s1", &plain);
    let transcript = sealed(false).transcript("s1", None).unwrap().unwrap();
    assert_eq!(transcript.messages, [plain]);
    assert_eq!(transcript.session.name, "Secret plans");
}

#[test]
fn sealed_store_reads_plaintext_written_before_encryption() {
    let dir = TempDir::new();
    let old = with_attachment("m1", "written in the clear", 1_000);
    append(&Embedded::open(dir.path()).unwrap(), "s1", &old);
    let store = Sealed::new(Embedded::open(dir.path()).unwrap(), Cipher::new(&KEY), true);
    let new = Message::new("m2", Sender::User, "written sealed", 2_000);
    append(&store, "s1", &new);
    let transcript = store.transcript("s1", None).unwrap().unwrap();
    assert_eq!(transcript.messages, [old, new]);
    assert_eq!(transcript.session.name, "Secret plans");
}

#[test]
fn open_follows_the_settings() {
    let dir = TempDir::new();
    let key = base64::engine::general_purpose::STANDARD.encode(KEY);
    let data_dir = dir.path().to_str().unwrap();
    let config = |extra: &[(&str, &str)]| {
        let vars: HashMap<String, String> =
            [("JWT_SECRET", common::JWT_SECRET), ("DATA_DIR", data_dir)]
                .iter()
                .chain(extra)
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        Config::load(&vars).expect("valid settings").store
    };
    let metrics = Arc::new(Metrics::new(&[]));
    {
        let sealed = store::open(
            &config(&[("ENCRYPTION_KEY", &key)]),
            metrics.store_timings(),
        )
        .unwrap();
        append(
            &*sealed,
            "s1",
            &Message::new("m1", Sender::User, "hush", 1_000),
        );
        assert_eq!(
            sealed.transcript("s1", None).unwrap().unwrap().messages[0].content,
            "hush"
        );
    }
    {
        let plain = store::open(&config(&[]), metrics.store_timings()).unwrap();
        let stored = plain.transcript("s1", None).unwrap().unwrap().messages[0]
            .content
            .clone();
        assert_eq!(Cipher::new(&KEY).open(&stored), "hush");
        assert_ne!(stored, "hush");
    }
    let scrape = metrics.render(&State::default());
    for timed in [
        r#"chatbox_mongodb_operation_seconds_count{operation="append"} 1"#,
        r#"chatbox_mongodb_operation_seconds_count{operation="transcript"} 2"#,
    ] {
        assert!(scrape.contains(timed), "{timed} in:\n{scrape}");
    }
    // A MongoDB that does not answer yet does not stop start-up: `/readyz` reports it.
    let unreachable = [
        ("MONGO_URI", "mongodb://127.0.0.1:1"),
        ("MONGO_CONNECT_TIMEOUT", "1s"),
    ];
    let mongo =
        store::open(&config(&unreachable), metrics.store_timings()).expect("a MongoDB store");
    assert!(matches!(mongo.ping(), Err(StoreError::Unavailable(_))));
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
