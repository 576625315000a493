//! The file itself: a new one is stamped with its layout, and a file of another layout
//! (or none) is refused rather than misread, and the one older layout we can upgrade
//! is upgraded.

use super::*;

/// A fresh directory per test, removed afterwards.
struct Dir(std::path::PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let path =
            std::env::temp_dir().join(format!("chatbox-embedded-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Dir(path)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes a bare redb file with one table in it, as another layout would.
fn foreign_file(dir: &Path, stamp: Option<u64>) {
    let db = Database::create(dir.join(FILE_NAME)).unwrap();
    let txn = db.begin_write().unwrap();
    // The old layout's `active`: a multimap keyed by lastActivity.
    let old_active: MultimapTableDefinition<Millis, &str> = MultimapTableDefinition::new("active");
    txn.open_multimap_table(old_active)
        .unwrap()
        .insert(1_000, "s1")
        .unwrap();
    if let Some(version) = stamp {
        stamp_layout(&txn, version);
    }
    txn.commit().unwrap();
}

/// Writes `version` as the file's layout, as the build that wrote that layout did.
fn stamp_layout(txn: &redb::WriteTransaction, version: u64) {
    txn.open_table(META)
        .unwrap()
        .insert(FORMAT_KEY, version)
        .unwrap();
}

fn corrupt_detail(dir: &Path) -> String {
    match Embedded::open(dir) {
        Err(StoreError::Corrupt(detail)) => detail,
        Err(other) => panic!("expected Corrupt, got {other:?}"),
        Ok(_) => panic!("expected Corrupt, the file opened"),
    }
}

#[test]
fn a_new_file_is_stamped_and_reopens() {
    let dir = Dir::new("stamp");
    drop(Embedded::open(&dir.0).unwrap());
    let store = Embedded::open(&dir.0).unwrap();
    let txn = store.shared().db.begin_read().unwrap();
    let meta = txn.open_table(META).unwrap();
    assert_eq!(meta.get(FORMAT_KEY).unwrap().unwrap().value(), FORMAT);
}

#[test]
fn an_unversioned_file_is_refused() {
    let dir = Dir::new("unversioned");
    foreign_file(&dir.0, None);
    let detail = corrupt_detail(&dir.0);
    assert!(detail.contains("no table layout version"), "{detail}");
}

#[test]
fn another_version_is_refused() {
    let dir = Dir::new("version");
    foreign_file(&dir.0, Some(FORMAT + 1));
    let detail = corrupt_detail(&dir.0);
    assert!(
        detail.contains(&format!("version {}", FORMAT + 1)),
        "{detail}"
    );
}

#[test]
fn a_file_without_admin_indexes_gets_them_on_open() {
    let dir = Dir::new("upgrade");
    {
        let store = Embedded::open(&dir.0).unwrap();
        for (n, user) in ["alice", "bob", "alice"].into_iter().enumerate() {
            let at = 1_000 * (n as Millis + 1);
            let message =
                crate::store::Message::new(format!("m{n}"), crate::store::Sender::User, "hi", at);
            store
                .append(&Append {
                    session_id: &format!("s{n}"),
                    user_id: user,
                    name: "",
                    model_id: "",
                    message: &message,
                    max_messages: 10,
                })
                .unwrap();
        }
        assert!(store.end("s1", 5_000).unwrap());
        // Back to the layout before the admin indexes.
        let txn = store.shared().db.begin_write().unwrap();
        let admin: Vec<_> = txn
            .list_tables()
            .unwrap()
            .filter(|t| t.name().starts_with("admin_"))
            .collect();
        assert_eq!(admin.len(), 7, "the admin tables");
        for table in admin {
            assert!(txn.delete_table(table).unwrap());
        }
        stamp_layout(&txn, FORMAT_WITHOUT_ADMIN);
        txn.commit().unwrap();
    }
    let store = Embedded::open(&dir.0).unwrap();
    let query = AdminQuery {
        active: Some(true),
        ..AdminQuery::all(10)
    };
    let page = store.admin_sessions(&query).unwrap();
    let ids: Vec<_> = page.sessions.iter().map(|s| s.id.as_str()).collect();
    assert_eq!((ids, page.total), (vec!["s2", "s0"], 2));
    assert_eq!(store.session_metrics(0, 10_000).unwrap().sessions, 3);
    drop(store);
    let reopened = Embedded::open(&dir.0).unwrap();
    let txn = reopened.shared().db.begin_read().unwrap();
    let meta = txn.open_table(META).unwrap();
    assert_eq!(meta.get(FORMAT_KEY).unwrap().unwrap().value(), FORMAT);
}

#[test]
fn layout_4_and_5_files_are_upgraded_and_their_messages_read() {
    for old in [FORMAT_WITHOUT_LOG, FORMAT_WITHOUT_RUNS] {
        let dir = Dir::new(&format!("layout{old}"));
        {
            let store = Embedded::open(&dir.0).unwrap();
            log_appends(store.shared(), 0..1);
        }
        {
            // The older layouts' rows: one message each, beside the record.
            let db = Database::create(dir.0.join(FILE_NAME)).unwrap();
            let txn = db.begin_write().unwrap();
            let mut sessions = txn.open_table(SESSIONS).unwrap();
            let mut record: records::SessionRecord = load(&sessions, "s1").unwrap().unwrap();
            for n in 1..5 {
                let row = MessageRecord::json_of(&user_message(n));
                sessions.insert(("s1", n as u64), row.as_slice()).unwrap();
            }
            record.msg_count = 5;
            record.msg_bytes = None;
            let record = record.to_json();
            sessions.insert(("s1", RECORD), record.as_slice()).unwrap();
            drop(sessions);
            stamp_layout(&txn, old);
            txn.commit().unwrap();
        }
        let store = Embedded::open(&dir.0).unwrap();
        assert_eq!(stored_texts(&store), texts(0..5));
        // The byte budget of a session stored before `msgBytes` is summed from its rows.
        log_appends(store.shared(), 5..7);
        assert_eq!(stored_texts(&store), texts(0..7));
        let txn = store.shared().db.begin_read().unwrap();
        let meta = txn.open_table(META).unwrap();
        assert_eq!(meta.get(FORMAT_KEY).unwrap().unwrap().value(), FORMAT);
        let record = load(&txn.open_table(SESSIONS).unwrap(), "s1")
            .unwrap()
            .unwrap();
        let rows: u64 = (0..7)
            .map(|n| MessageRecord::json_of(&user_message(n)).len() as u64)
            .sum();
        assert_eq!(record.msg_bytes, Some(rows));
    }
}

#[test]
fn every_window_of_a_transcript_stored_in_runs_reads_back() {
    let dir = Dir::new("runs");
    // Three checkpoints, no background one between them: runs of 10, 1 and 29 messages.
    let shared = crashed_store(&dir.0);
    for range in [0..10, 10..11, 11..40] {
        log_appends(&shared, range);
        shared.settle().unwrap();
    }
    let txn = shared.db.begin_read().unwrap();
    let rows = txn.open_table(SESSIONS).unwrap().len().unwrap();
    assert_eq!(rows, 3 + 1, "three runs and the record");
    drop((txn, shared));
    let store = Embedded::open(&dir.0).unwrap();
    let all = texts(0..40);
    for before in [
        None,
        Some(0),
        Some(5),
        Some(10),
        Some(11),
        Some(25),
        Some(40),
        Some(99),
    ] {
        for limit in [0, 1, 3, 10, 29, 40, 1000] {
            let window = Window { before, limit };
            let page = store.transcript_page("s1", window).unwrap().unwrap();
            let got: Vec<String> = page.messages.into_iter().map(|m| m.content).collect();
            let range = window.range(40);
            let wanted = &all[range.start as usize..range.end as usize];
            assert_eq!(got, wanted, "before {before:?}, limit {limit}");
        }
    }
}

fn user_message(n: usize) -> crate::store::Message {
    let at = 1_000 * n as Millis;
    crate::store::Message::new(
        format!("m{n}"),
        crate::store::Sender::User,
        format!("text {n}"),
        at,
    )
}

/// Appends messages `range` to session `s1` through the log alone, as a server does
/// between checkpoints; each returned, so each was acknowledged.
fn log_appends(shared: &journal::Shared, range: std::ops::Range<usize>) {
    for n in range {
        let message = user_message(n);
        let append = Append {
            session_id: "s1",
            user_id: "alice",
            name: "",
            model_id: "",
            message: &message,
            max_messages: 100,
        };
        let mut results = append::append_batch(shared, &[append]);
        assert_eq!(results.pop().unwrap(), Ok(n as u64 + 1));
    }
}

/// The store as a process killed with -9 leaves it: the log synced, redb behind it,
/// no checkpoint thread and no last checkpoint.
fn crashed_store(dir: &Path) -> journal::Shared {
    let db = Database::create(dir.join(FILE_NAME)).unwrap();
    prepare(&db).unwrap();
    journal::Shared::recover(db, dir).unwrap()
}

fn newest_log(dir: &Path) -> std::path::PathBuf {
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
        .collect();
    logs.sort();
    logs.pop().expect("a log file")
}

fn stored_texts(store: &Embedded) -> Vec<String> {
    let transcript = store.transcript("s1", None).unwrap().unwrap();
    assert_eq!(
        transcript.session.message_count,
        transcript.messages.len() as u64
    );
    transcript.messages.into_iter().map(|m| m.content).collect()
}

fn texts(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|n| format!("text {n}")).collect()
}

#[test]
fn acknowledged_appends_are_replayed_from_the_log_and_a_torn_tail_is_ignored() {
    let dir = Dir::new("replay");
    let shared = crashed_store(&dir.0);
    log_appends(&shared, 0..5);
    drop(shared);
    // A record the crash cut short: its length promises more than the file holds.
    let log = newest_log(&dir.0);
    let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(&mut file, &[200, 0, 0, 0, 1, 2, 3]).unwrap();
    drop(file);

    let store = Embedded::open(&dir.0).unwrap();
    assert_eq!(stored_texts(&store), texts(0..5));
    assert!(!log.exists(), "the replayed log is deleted");
    let session = store.session("s1").unwrap().unwrap();
    assert_eq!(session.last_activity, 4_000);
}

#[test]
fn a_record_whose_crc_does_not_match_ends_the_replay() {
    let dir = Dir::new("crc");
    let shared = crashed_store(&dir.0);
    log_appends(&shared, 0..3);
    drop(shared);
    let log = newest_log(&dir.0);
    let mut bytes = std::fs::read(&log).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&log, bytes).unwrap();

    let store = Embedded::open(&dir.0).unwrap();
    assert_eq!(stored_texts(&store), texts(0..2));
}

#[test]
fn entries_a_checkpoint_applied_are_not_applied_again() {
    let dir = Dir::new("applied");
    let shared = crashed_store(&dir.0);
    log_appends(&shared, 0..3);
    // A crash between a checkpoint's commit and its deleting the log: the old file
    // comes back next to the new one.
    let log = newest_log(&dir.0);
    let copy = std::fs::read(&log).unwrap();
    shared.settle().unwrap();
    std::fs::write(&log, copy).unwrap();
    log_appends(&shared, 3..4);
    drop(shared);

    let store = Embedded::open(&dir.0).unwrap();
    assert_eq!(stored_texts(&store), texts(0..4));
    let more = user_message(4);
    let count = store.append(&Append {
        session_id: "s1",
        user_id: "alice",
        name: "",
        model_id: "",
        message: &more,
        max_messages: 100,
    });
    assert_eq!(count, Ok(5));
}

/// How many messages redb itself holds for `s1`, without carrying the log into it.
fn in_redb(store: &Embedded) -> u64 {
    let txn = store.shared().db.begin_read().unwrap();
    let sessions = txn.open_table(SESSIONS).unwrap();
    load(&sessions, "s1")
        .unwrap()
        .map_or(0, |record| record.msg_count)
}

#[test]
fn the_background_checkpoint_carries_the_log_into_redb_and_appends_go_on() {
    let dir = Dir::new("background");
    let store = Embedded::open(&dir.0).unwrap();
    for round in 0..2 {
        let end = round * 3 + 3;
        log_appends(store.shared(), round * 3..end);
        // Bounded, never a timing assertion: a checkpoint is due within a second.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while in_redb(&store) != end as u64 {
            assert!(std::time::Instant::now() < deadline, "no checkpoint came");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}
