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
        txn.open_table(META)
            .unwrap()
            .insert(FORMAT_KEY, version)
            .unwrap();
    }
    txn.commit().unwrap();
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
    let txn = store.db.begin_read().unwrap();
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
        let txn = store.db.begin_write().unwrap();
        let admin: Vec<_> = txn
            .list_tables()
            .unwrap()
            .filter(|t| t.name().starts_with("admin_"))
            .collect();
        assert_eq!(admin.len(), 7, "the admin tables");
        for table in admin {
            assert!(txn.delete_table(table).unwrap());
        }
        txn.open_table(META)
            .unwrap()
            .insert(FORMAT_KEY, FORMAT_WITHOUT_ADMIN)
            .unwrap();
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
    let txn = reopened.db.begin_read().unwrap();
    let meta = txn.open_table(META).unwrap();
    assert_eq!(meta.get(FORMAT_KEY).unwrap().unwrap().value(), FORMAT);
}
