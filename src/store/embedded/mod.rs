//! The embedded backend: one redb file, `DATA_DIR/chatbox.redb`, and the append log
//! beside it (`DATA_DIR/wal-*.log`).
//!
//! **Appends** are checked against the session's latest record (owner, cap, byte budget)
//! and written to the log, one write and one `fdatasync` per batch (`append.rs`,
//! `wal.rs`); the batch is answered once the log is synced, so an acknowledged append
//! survives `kill -9` and a power cut. Every second, or after 4,096 appends, a
//! checkpoint carries what the log holds into redb in one transaction and deletes the
//! log files it covered, keeping one to write again in place (`journal.rs`, `wal.rs`): the message rows, and each session's record and
//! index entries once, however many of its appends the checkpoint holds. `open` replays
//! the log after a crash; `meta` keeps the last entry redb holds, so nothing is applied
//! twice, and a record cut short by the crash (or whose CRC does not match) ends the
//! replay, as it was never acknowledged.
//!
//! **Everything else** (reads, the other writes) first carries the log into redb, so it
//! sees every acknowledged append; a write then commits in that same transaction, with
//! redb's `Durability::Immediate` (fsync before `commit` returns). redb runs one writer
//! at a time and readers on snapshots; appends wait while a direct write commits, so
//! none checks against a record that write is changing.
//!
//! Layout: a session's record and its messages are rows of their own, and the messages one
//! checkpoint carries for a session are one row, a run (`runs.rs`), so a checkpoint
//! inserts one row per session and rewrites only the small session record, never the
//! transcript. Both live in one table, the record keyed after the messages: the run a
//! checkpoint adds and the record it rewrites are neighbours, usually in the same B-tree
//! leaf, so it copies one leaf on commit rather than one in each of two trees. The
//! chat's index tables hold only keys; the admin desk's carry a few bytes of the session:
//!
//! | table | key → value | serves |
//! |---|---|---|
//! | `meta` | `"format"` → layout version ([`FORMAT`]) | `open` refuses other layouts |
//! | `sessions` | (id, `RECORD` = u64::MAX) → session record | every lookup by id |
//! | `sessions` | (id, seq) → a run of message records from seq on ([`runs`]), seq from 0 | `transcript_page` (a window is a range of seqs) |
//! | `user_start` | (user id, start) ⇒ session ids | `user_sessions`, newest first |
//! | `user_active` | user id ⇒ ids of active sessions | `latest_active` |
//! | `active` | id of an active session → () | `end_idle`, `count_active` |
//! | `shares` | share token → session id | `shared` |
//! | `admin_start` | (start, id) → filter + summed fields | admin list by start; a time range's `total`; `session_metrics` |
//! | `admin_end` | (end or i64::MIN, id) → filter | admin list by end time |
//! | `admin_activity` | (lastActivity, id) → filter | admin list by last activity |
//! | `admin_messages` | (message count, id) → filter | admin list by message count |
//! | `admin_tokens` | (total tokens, id) → filter | admin list by tokens |
//! | `admin_user` | (user id, id) → filter | admin list by user, and filtered to one user |
//! | `admin_counts` | active/assisted flags → sessions | `total` of a listing without a time range |
//!
//! (⇒: a multimap; "filter": active, assisted and the start, 9 bytes.) Index entries
//! change only in `Tables::put`, which diffs a session's entries before and after a
//! change (`admin::AdminTables::put` for the admin tables).
//!
//! **The admin listing** walks the index of its sort field in either direction and
//! checks the filters on each entry's value, reading the records of the page only: a
//! page costs the entries it passes over, not the store. Its `total` comes from
//! `admin_counts` (four counters, one per combination of the status and assisted
//! filters) without a time range, from walking `admin_start` over the range with one
//! (the matches in that range, 9 bytes each), and from the user's own sessions with a
//! user filter. A sort other than the start with a selective filter walks far (a
//! filter that matches one session in 10,000 walks 10,000 entries); 100,000 entries
//! are a few milliseconds, so that is kept rather than an index per filter and sort.
//! The metrics of a time range are one range read of `admin_start`.
//!
//! **What the appends pay** (before the log; now per session per checkpoint):
//! `lastActivity` and the message count change on every append, the tokens on every reply, and the start entry holds the summed fields, so
//! an append to an existing session also rewrites its `admin_start` value and moves its
//! `admin_activity` and `admin_messages` entries (and `admin_tokens` for a reply): a
//! remove and an insert at another place in each of those B-trees, each a page copied
//! on commit. Before the admin desk the layout had no index keyed by `lastActivity`
//! for exactly that cost; the admin list needs the order, and a sort over every
//! record instead is a full scan per request. Measured with `cargo bench --bench
//! store_append -- --dir /dev/shm` (tmpfs, so CPU rather than fsync), CPU per append
//! before → after: 60 → 115 µs one append per commit, 23 → 40 µs ten per commit,
//! 18 → 26 µs a hundred (the chat's group commit batches under load). On a disk the
//! fsync per commit stays the larger cost. With the log (same bench, no LTO, a busy
//! machine): 16, 13 and 14 µs on tmpfs; on this VM's disk a sync costs ~200 µs of
//! CPU, so 228, 33 and 26 µs, and batching is what pays for it. In exchange for the
//! indexes, `cargo bench --bench admin_queries` at 100,000 sessions answers every
//! filtered page of 50 with a p99
//! under 16 ms and a month's metrics under 30 ms. `latest_active` and `end_idle`
//! still read records (a user's active sessions; every active session every few
//! minutes), which the activity index could serve but need not.
//!
//! Records are JSON (serde_json): it is in the binary already, it is self-describing, so a
//! field added later reads as its default from older files without a migration, and a
//! file can be inspected by hand. The field names are those of the MongoDB documents
//! (`spec/storage.md`), so both backends speak one vocabulary. Names cost a few dozen
//! bytes a row, small next to message content.

mod admin;
mod append;
mod journal;
mod pending;
mod records;
mod runs;
mod tables;
mod wal;

use std::path::Path;
use std::sync::Arc;

use redb::{
    Database, MultimapTableDefinition, ReadTransaction, ReadableDatabase, ReadableTable,
    ReadableTableMetadata, TableDefinition, TableHandle,
};

use super::{
    AdminPage, AdminQuery, Aggregate, Append, AssistingAdmin, Millis, Result, Session, Store,
    StoreError, Transcript, Window,
};

use journal::{Checkpoints, Shared};
use records::{decode, MessageRecord, SessionRecord};
use tables::{indexed, load, Tables};

/// The file's name inside `DATA_DIR`.
pub const FILE_NAME: &str = "chatbox.redb";

/// The table layout this build reads and writes, stored in `meta`. Bump it when a table
/// changes its key or value type or its meaning; `open` refuses a file with another.
/// (1 was the unversioned pre-release layout with `lastActivity`-keyed indexes, 2 kept
/// messages in a table of their own, 3 had no admin tables: `open` builds them from the
/// session records, once; 4 had no append log; 5 stored each message as a row of its
/// own.)
pub const FORMAT: u64 = 6;
/// The older layouts `open` upgrades in place. 6 reads 5's rows as runs of one message,
/// but a build of 5 would misread 6's runs, so it refuses 6. 5 has the same tables as 4,
/// but appends that may be in the log only (which a build of 4 would not see, so it
/// refuses 5); 4 only added tables to 3.
const FORMAT_WITHOUT_RUNS: u64 = 5;
const FORMAT_WITHOUT_LOG: u64 = 4;
const FORMAT_WITHOUT_ADMIN: u64 = 3;
const FORMAT_KEY: &str = "format";

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// A session's record and its messages, side by side (see the header).
const SESSIONS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("sessions");
/// The sequence number under which a session's record is kept: after every message.
const RECORD: u64 = u64::MAX;
const USER_START: MultimapTableDefinition<(&str, Millis), &str> =
    MultimapTableDefinition::new("user_start");
const USER_ACTIVE: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("user_active");
const ACTIVE: TableDefinition<&str, ()> = TableDefinition::new("active");
const SHARES: TableDefinition<&str, &str> = TableDefinition::new("shares");

pub struct Embedded {
    checkpoints: Checkpoints,
}

impl Embedded {
    /// Opens `dir/chatbox.redb`, creating the directory, the file and its tables when
    /// missing, and replays the append log into it. Fails while another process (or
    /// another `Embedded`) has the file open.
    pub fn open(dir: &Path) -> Result<Embedded> {
        let path = dir.join(FILE_NAME);
        let opened = std::fs::create_dir_all(dir)
            .map_err(|err| StoreError::Unavailable(err.to_string()))
            .and_then(|()| Database::create(&path).map_err(db_err))
            .and_then(|db| prepare(&db).map(|()| db))
            .and_then(|db| Shared::recover(db, dir))
            .and_then(|shared| Checkpoints::start(Arc::new(shared)))
            .map(|checkpoints| Embedded { checkpoints });
        let in_file = |detail| format!("{}: {detail}", path.display());
        opened.map_err(|err| match err {
            StoreError::Corrupt(detail) => StoreError::Corrupt(in_file(detail)),
            StoreError::Unavailable(detail) => StoreError::Unavailable(in_file(detail)),
            other => other,
        })
    }

    fn shared(&self) -> &Shared {
        self.checkpoints.shared()
    }

    /// A snapshot that holds every acknowledged append.
    fn read(&self) -> Result<ReadTransaction> {
        let shared = self.shared();
        shared.settle()?;
        shared.db.begin_read().map_err(db_err)
    }

    fn write<T>(&self, change: impl FnOnce(&mut Tables) -> Result<T>) -> Result<T> {
        self.shared().write(change)
    }
}

/// Checks the file's layout version (stamping a new file with ours, upgrading an older
/// one we can), then creates the tables: readers open tables that must exist.
fn prepare(db: &Database) -> Result<()> {
    let txn = db.begin_write().map_err(db_err)?;
    {
        let mut meta = txn.open_table(META).map_err(db_err)?;
        let found = meta.get(FORMAT_KEY).map_err(db_err)?.map(|v| v.value());
        match found {
            Some(FORMAT) => {}
            Some(old @ (FORMAT_WITHOUT_RUNS | FORMAT_WITHOUT_LOG)) => {
                meta.insert(FORMAT_KEY, FORMAT).map_err(db_err)?;
                log::info!("store: layout {old} stamped {FORMAT}, nothing rewritten");
            }
            Some(FORMAT_WITHOUT_ADMIN) => {
                let indexed = admin::build(&txn)?;
                meta.insert(FORMAT_KEY, FORMAT).map_err(db_err)?;
                log::info!(
                    "store: admin indexes built for {indexed} sessions (layout 3 to {FORMAT})"
                );
            }
            Some(other) => {
                return Err(StoreError::Corrupt(format!(
                    "table layout version {other}, but this build reads version {FORMAT}"
                )))
            }
            None => {
                // Only a new file may be stamped: one that already has tables and
                // no version predates versioning, and its indexes differ from ours.
                let old = txn
                    .list_tables()
                    .map_err(db_err)?
                    .any(|t| t.name() != META.name())
                    || txn.list_multimap_tables().map_err(db_err)?.next().is_some();
                if old {
                    return Err(StoreError::Corrupt(format!(
                        "no table layout version: written by a pre-release chatbox whose \
                         layout this build ({FORMAT}) cannot read; move the file away"
                    )));
                }
                meta.insert(FORMAT_KEY, FORMAT).map_err(db_err)?;
            }
        }
    }
    Tables::open(&txn)?;
    txn.commit().map_err(db_err)?;
    Ok(())
}

impl Store for Embedded {
    fn append(&self, append: &Append) -> Result<u64> {
        let mut results = append::append_batch(self.shared(), std::slice::from_ref(append));
        results
            .pop()
            .unwrap_or_else(|| Err(StoreError::Unavailable("the append went missing".into())))
    }

    /// One log write and one sync for the whole batch (see the header).
    fn append_batch(&self, appends: &[Append]) -> Vec<Result<u64>> {
        append::append_batch(self.shared(), appends)
    }

    fn session(&self, id: &str) -> Result<Option<Session>> {
        let txn = self.read()?;
        let sessions = txn.open_table(SESSIONS).map_err(db_err)?;
        Ok(load(&sessions, id)?.map(|record| record.into_session(id)))
    }

    fn transcript_page(&self, id: &str, window: Window) -> Result<Option<Transcript>> {
        let txn = self.read()?;
        read_transcript(&txn, id, window)
    }

    fn latest_active(&self, user_id: &str) -> Result<Option<Session>> {
        let txn = self.read()?;
        let index = txn.open_multimap_table(USER_ACTIVE).map_err(db_err)?;
        let sessions = txn.open_table(SESSIONS).map_err(db_err)?;
        // A user has a handful of active sessions: read them all and keep the latest.
        // Ids come in order, so on a tie the greatest id wins, as it always has.
        let mut latest: Option<(String, SessionRecord)> = None;
        for id in index.get(user_id).map_err(db_err)? {
            let id = id.map_err(db_err)?;
            let record = indexed(&sessions, id.value())?;
            if latest
                .as_ref()
                .is_none_or(|(_, best)| record.last_activity >= best.last_activity)
            {
                latest = Some((id.value().to_owned(), record));
            }
        }
        Ok(latest.map(|(id, record)| record.into_session(&id)))
    }

    fn user_sessions(&self, user_id: &str, limit: usize) -> Result<Vec<Session>> {
        let txn = self.read()?;
        let index = txn.open_multimap_table(USER_START).map_err(db_err)?;
        let sessions = txn.open_table(SESSIONS).map_err(db_err)?;
        let mut out = Vec::new();
        let keys = index
            .range((user_id, Millis::MIN)..=(user_id, Millis::MAX))
            .map_err(db_err)?;
        for row in keys.rev() {
            let (_, ids) = row.map_err(db_err)?;
            for id in ids.rev() {
                if out.len() == limit {
                    return Ok(out);
                }
                let id = id.map_err(db_err)?;
                out.push(indexed(&sessions, id.value())?.into_session(id.value()));
            }
        }
        Ok(out)
    }

    fn set_model(&self, id: &str, model_id: &str, at: Millis) -> Result<bool> {
        self.write(|tables| tables.update(id, at, |r| r.model_id = model_id.to_owned()))
    }

    fn set_assist(&self, id: &str, admin: Option<&AssistingAdmin>, at: Millis) -> Result<bool> {
        self.write(|tables| tables.update(id, at, |r| r.assist(admin)))
    }

    fn set_help_requested(&self, id: &str, at: Millis) -> Result<bool> {
        self.write(|tables| tables.update(id, at, |r| r.help_requested = true))
    }

    fn end(&self, id: &str, at: Millis) -> Result<bool> {
        self.write(|tables| tables.end(id, at))
    }

    fn share(&self, id: &str, candidate: &str, at: Millis) -> Result<Option<String>> {
        self.write(|tables| {
            let Some(old) = load(&tables.sessions, id)? else {
                return Ok(None);
            };
            if let Some(token) = &old.share_token {
                return Ok(Some(token.clone()));
            }
            if tables.shares.get(candidate).map_err(db_err)?.is_some() {
                // Tokens are random; a clash means the caller reused one. Mongo's unique
                // index refuses it the same way.
                return Err(StoreError::Unavailable(
                    "share token already belongs to another session".into(),
                ));
            }
            let mut new = old.clone();
            new.share_token = Some(candidate.to_owned());
            new.modified_at = at;
            tables.put(id, Some(&old), &new)?;
            Ok(Some(candidate.to_owned()))
        })
    }

    fn unshare(&self, id: &str, at: Millis) -> Result<bool> {
        self.write(|tables| tables.update(id, at, |r| r.share_token = None))
    }

    fn shared(&self, token: &str, window: Window) -> Result<Option<Transcript>> {
        let txn = self.read()?;
        let shares = txn.open_table(SHARES).map_err(db_err)?;
        let Some(id) = shares.get(token).map_err(db_err)? else {
            return Ok(None);
        };
        read_transcript(&txn, id.value(), window)
    }

    fn end_idle(&self, idle_before: Millis, at: Millis) -> Result<Vec<String>> {
        self.write(|tables| {
            // `active` holds no times (see the header): read each active record.
            let mut idle = Vec::new();
            for row in tables.active.iter().map_err(db_err)? {
                let (id, _) = row.map_err(db_err)?;
                let id = id.value();
                if indexed(&tables.sessions, id)?.last_activity < idle_before {
                    idle.push(id.to_owned());
                }
            }
            for id in &idle {
                tables.end(id, at)?;
            }
            Ok(idle)
        })
    }

    fn count_active(&self) -> Result<u64> {
        let txn = self.read()?;
        let active = txn.open_table(ACTIVE).map_err(db_err)?;
        active.len().map_err(db_err)
    }

    fn admin_sessions(&self, query: &AdminQuery) -> Result<AdminPage> {
        let txn = self.read()?;
        admin::admin_sessions(&txn, query)
    }

    fn session_metrics(&self, from: Millis, to: Millis) -> Result<Aggregate> {
        let txn = self.read()?;
        admin::session_metrics(&txn, from, to)
    }

    /// Whether redb answers; it does not wait for a checkpoint.
    fn ping(&self) -> Result<()> {
        let txn = self.shared().db.begin_read().map_err(db_err)?;
        txn.open_table(SESSIONS).map_err(db_err)?;
        Ok(())
    }
}

/// The session with the messages `window` selects: a range of rows, so only those are
/// read.
fn read_transcript(txn: &ReadTransaction, id: &str, window: Window) -> Result<Option<Transcript>> {
    let sessions = txn.open_table(SESSIONS).map_err(db_err)?;
    let Some(record) = load(&sessions, id)? else {
        return Ok(None);
    };
    let positions = window.range(record.msg_count);
    let mut messages =
        Vec::with_capacity(usize::try_from(positions.end - positions.start).unwrap_or(0));
    runs::rows_in(&sessions, id, positions, |row| {
        messages.push(decode::<MessageRecord>(row, id)?.into_message(id)?);
        Ok(())
    })?;
    Ok(Some(Transcript {
        session: record.into_session(id),
        messages,
    }))
}

/// A file that redb cannot read, or tables of the wrong shape (written by something else),
/// is `Corrupt`: retrying will not help. Everything else (I/O, locks, a closed database)
/// is `Unavailable`.
fn db_err(err: impl Into<redb::Error>) -> StoreError {
    use redb::Error as E;
    match err.into() {
        err @ (E::Corrupted(_)
        | E::UpgradeRequired(_)
        | E::TableTypeMismatch { .. }
        | E::TypeDefinitionChanged { .. }
        | E::TableIsMultimap(_)
        | E::TableIsNotMultimap(_)) => StoreError::Corrupt(err.to_string()),
        err => StoreError::Unavailable(err.to_string()),
    }
}

#[cfg(test)]
mod tests;
