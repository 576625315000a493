//! The store's shared state and the order of its writes: appends go to the log
//! ([`super::wal`]) and are acknowledged once it is synced; checkpoints carry them into
//! redb, in the background or before anything reads or writes redb directly.
//!
//! Two locks, always taken in this order: `writer` serialises redb write transactions
//! (checkpoints and direct writes); `journal` guards the log and what it holds beyond
//! redb. An append holds `journal` only, across its log write and sync. A background
//! checkpoint holds `journal` just long enough to move on to a new log file and take the
//! entries, so appends continue while it commits; a direct write holds both for its
//! whole transaction, so that no append computes from a record it is changing.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use redb::{Database, ReadableDatabase};

use super::pending::Pending;
use super::records::decode;
use super::runs;
use super::tables::{load, Tables};
use super::wal::{self, Entry, Wal};
use super::{db_err, META};
use crate::background::Waking;
use crate::hash::NameSet;
use crate::store::{Result, StoreError};

/// Pending appends that start a checkpoint before its interval is up: they bound the
/// memory the log's entries hold (a few hundred bytes each) and a checkpoint's length.
const CHECKPOINT_AT: usize = 4096;
/// How long an append waits at most in the log alone. Longer merges more of a
/// session's appends into one record update; shorter replays less after a crash.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// `meta` key: the last log entry redb holds.
const APPLIED_KEY: &str = "log_applied";

pub(super) struct Journal {
    pub(super) wal: Wal,
    pub(super) pending: Pending,
    /// The next entry's log sequence number.
    pub(super) next_lsn: u64,
    closing: bool,
}

pub(super) struct Shared {
    pub(super) db: Database,
    dir: PathBuf,
    writer: Mutex<()>,
    journal: Mutex<Journal>,
    wake: Condvar,
}

impl Shared {
    /// Replays what the log in `dir` holds beyond `db` into it, deletes the log and
    /// starts a new one.
    pub(super) fn recover(db: Database, dir: &Path) -> Result<Shared> {
        let found = wal::read_all(dir).map_err(log_err)?;
        let applied = {
            let txn = db.begin_read().map_err(db_err)?;
            let meta = txn.open_table(META).map_err(db_err)?;
            let applied = meta.get(APPLIED_KEY).map_err(db_err)?;
            applied.map_or(0, |v| v.value())
        };
        let replay: Vec<Entry> = found
            .entries
            .into_iter()
            .filter(|entry| entry.lsn > applied)
            .collect();
        let last = replay.last().map_or(applied, |entry| entry.lsn);
        let journal = Journal {
            wal: Wal::create(dir, found.newest + 1).map_err(log_err)?,
            pending: Pending::default(),
            next_lsn: last + 1,
            closing: false,
        };
        let shared = Shared {
            db,
            dir: dir.to_owned(),
            writer: Mutex::new(()),
            journal: Mutex::new(journal),
            wake: Condvar::new(),
        };
        if !replay.is_empty() {
            shared.commit(&replay, |_| Ok(()))?;
            log::info!("store: {} append(s) replayed from the log", replay.len());
        }
        wal::remove_through(dir, found.newest).map_err(log_err)?;
        Ok(shared)
    }

    pub(super) fn journal(&self) -> Result<MutexGuard<'_, Journal>> {
        lock(&self.journal)
    }

    /// Appends just logged: a checkpoint starts early when enough are waiting.
    pub(super) fn logged(&self, journal: &Journal) {
        if journal.pending.len() >= CHECKPOINT_AT {
            self.wake.notify_one();
        }
    }

    /// Carries everything logged so far into redb. Reads call it first, so they see
    /// every acknowledged append: it waits for a checkpoint already committing (which
    /// has taken its entries out of `pending`, but redb does not have them yet).
    pub(super) fn settle(&self) -> Result<()> {
        let _writer = lock(&self.writer)?;
        let (entries, left) = {
            let mut journal = self.journal()?;
            if journal.pending.is_empty() {
                return Ok(());
            }
            let left = journal.wal.rotate().map_err(log_err)?;
            (journal.pending.take(), left)
        };
        if let Err(error) = self.commit(&entries, |_| Ok(())) {
            self.journal()?.pending.restore(entries);
            return Err(error);
        }
        if let Some(last) = entries.last() {
            self.journal()?.pending.forget_through(last.lsn);
        }
        wal::remove_through(&self.dir, left).map_err(log_err)
    }

    /// A write straight to redb (everything but appends), after whatever the log holds
    /// and in the same transaction. Appends wait until it has committed.
    pub(super) fn write<T>(&self, change: impl FnOnce(&mut Tables) -> Result<T>) -> Result<T> {
        let _writer = lock(&self.writer)?;
        let mut journal = self.journal()?;
        let out = self.commit(journal.pending.entries(), change)?;
        if let Some(last) = journal.pending.take().last() {
            journal.pending.forget_through(last.lsn);
            // redb holds every entry now; a log file left behind is only replayed as
            // entries it already has, so a failure here costs disk space, not data.
            let rotated = journal.wal.rotate();
            if let Err(error) = rotated.and_then(|left| wal::remove_through(&self.dir, left)) {
                log::warn!("store: the log's old files stay: {error}");
            }
        }
        Ok(out)
    }

    /// One redb transaction: `entries`, then `change`; committed durably, with the last
    /// entry's number, so a replay knows where redb stands.
    fn commit<T>(
        &self,
        entries: &[Entry],
        change: impl FnOnce(&mut Tables) -> Result<T>,
    ) -> Result<T> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let out = {
            let mut tables = Tables::open(&txn)?;
            apply(&mut tables, entries)?;
            change(&mut tables)?
        };
        if let Some(last) = entries.last() {
            let mut meta = txn.open_table(META).map_err(db_err)?;
            meta.insert(APPLIED_KEY, last.lsn).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        Ok(out)
    }
}

/// Writes the entries' message rows, a run per session ([`runs`]), and, once per
/// session, the last record they carry: the indexes move once per checkpoint, not once
/// per append.
fn apply(tables: &mut Tables, entries: &[Entry]) -> Result<()> {
    for run in runs::of(entries) {
        tables
            .sessions
            .insert((run.session_id, run.first), run.rows.as_slice())
            .map_err(db_err)?;
    }
    let mut done = NameSet::default();
    for entry in entries.iter().rev() {
        let id = entry.session_id.as_str();
        if done.insert(id) {
            let new = decode(&entry.record, id)?;
            let old = load(&tables.sessions, id)?;
            tables.put(id, old.as_ref(), &new)?;
        }
    }
    Ok(())
}

/// The background checkpoints: started by `open`, stopped (after a last checkpoint) when
/// the store is dropped.
pub(super) struct Checkpoints {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpoints {
    pub(super) fn start(shared: Arc<Shared>) -> Result<Checkpoints> {
        let worker = Arc::clone(&shared);
        let thread =
            crate::background::spawn("store-checkpoint".into(), Waking::AfterTheLoop, move || {
                run(&worker)
            })
            .map_err(|err| StoreError::Unavailable(format!("checkpoint thread: {err}")))?;
        Ok(Checkpoints {
            shared,
            thread: Some(thread),
        })
    }

    pub(super) fn shared(&self) -> &Shared {
        &self.shared
    }
}

impl Drop for Checkpoints {
    fn drop(&mut self) {
        if let Ok(mut journal) = self.shared.journal() {
            journal.closing = true;
        }
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        // Not needed for durability (a reopen replays the log); it leaves the file whole.
        if let Err(error) = self.shared.settle() {
            log::warn!("store: last checkpoint failed; the next start replays the log: {error}");
        }
    }
}

fn run(shared: &Shared) {
    while let Ok(true) = wait_for_work(shared) {
        if let Err(error) = shared.settle() {
            log::warn!("store: checkpoint failed, the log keeps the appends: {error}");
        }
    }
}

/// Waits until a checkpoint is due: false when the store is closing. The journal is
/// unlocked again on return, as the checkpoint takes it.
fn wait_for_work(shared: &Shared) -> Result<bool> {
    let journal = shared.journal()?;
    let (journal, _) = shared
        .wake
        .wait_timeout_while(journal, CHECKPOINT_EVERY, |journal| {
            !journal.closing && journal.pending.len() < CHECKPOINT_AT
        })
        .map_err(poisoned)?;
    Ok(!journal.closing)
}

fn lock<T>(mutex: &Mutex<T>) -> Result<MutexGuard<'_, T>> {
    mutex.lock().map_err(poisoned)
}

fn poisoned<T>(_: T) -> StoreError {
    StoreError::Unavailable("a store thread panicked mid-write".into())
}

fn log_err(err: io::Error) -> StoreError {
    StoreError::Unavailable(format!("append log: {err}"))
}
