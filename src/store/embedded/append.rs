//! Appends: the owner, cap and byte-budget checks against the session's latest record,
//! then one log write and sync for the whole batch. redb gets them at the next
//! checkpoint (`journal.rs`).

use redb::{ReadTransaction, ReadableDatabase};

use super::journal::{Journal, Shared};
use super::records::{MessageRecord, SessionRecord};
use super::runs;
use super::tables::load;
use super::wal::Entry;
use super::{db_err, SESSIONS};
use crate::hash::NameMap;
use crate::store::{byte_budget, Append, Result, Sender, StoreError};

/// Logs every append of `appends` that its session admits, with one sync; each
/// succeeds or fails on its own, and none is answered before the sync.
pub(super) fn append_batch(shared: &Shared, appends: &[Append]) -> Vec<Result<u64>> {
    let mut journal = match shared.journal() {
        Ok(journal) => journal,
        Err(error) => return appends.iter().map(|_| Err(error.clone())).collect(),
    };
    let mut staged = Staged {
        journal: &journal,
        shared,
        reader: None,
        logged: Vec::with_capacity(appends.len()),
        staged: NameMap::default(),
    };
    let results: Vec<Result<u64>> = appends.iter().map(|a| staged.append(a)).collect();
    let logged = staged.logged;
    if logged.is_empty() {
        return results;
    }
    // Numbers are never reused, not even those of a batch that failed to reach the disk.
    journal.next_lsn += logged.len() as u64;
    if let Err(error) = journal.wal.write(logged.iter().map(|(entry, _)| entry)) {
        let error = StoreError::Unavailable(format!("append log: {error}"));
        return results
            .into_iter()
            .map(|result| result.and(Err(error.clone())))
            .collect();
    }
    journal.pending.add(logged);
    shared.logged(&journal);
    results
}

/// One batch on its way to the log.
struct Staged<'a> {
    journal: &'a Journal,
    shared: &'a Shared,
    /// A snapshot for the sessions neither the batch nor the log has, opened once.
    reader: Option<ReadTransaction>,
    logged: Vec<(Entry, SessionRecord)>,
    /// Per session of the batch, its latest entry in `logged`: a batch of a few hundred
    /// appends looked for each one's session by comparing ids (`memcmp` was 4 % of the
    /// store lane).
    staged: NameMap<&'a str, usize>,
}

impl<'a> Staged<'a> {
    fn append(&mut self, append: &Append<'a>) -> Result<u64> {
        let id = append.session_id;
        let message = append.message;
        let mut new = match self.latest(id)? {
            Some(record) if record.uid != append.user_id => return Err(StoreError::NotOwner),
            Some(record) => record,
            None => SessionRecord::new(append, message.at),
        };
        if new.msg_count >= append.max_messages as u64 {
            return Err(StoreError::SessionFull);
        }
        let row = MessageRecord::json_of(message);
        let held = match new.msg_bytes {
            Some(bytes) => bytes,
            None => self.stored_bytes(id, new.msg_count)?,
        };
        let bytes = held.saturating_add(row.len() as u64);
        if bytes > byte_budget(message.sender) {
            return Err(StoreError::SessionFull);
        }
        let seq = new.msg_count;
        new.msg_bytes = Some(bytes);
        new.msg_count += 1;
        new.last_activity = message.at;
        new.modified_at = message.at;
        if let (Sender::Ai, Some(resp_ms)) = (message.sender, message.resp_ms) {
            // Saturating: a nonsense figure must not fail (or wrap) the append.
            new.total_tokens = new.total_tokens.saturating_add(message.tokens.unwrap_or(0));
            new.max_resp_ms = new.max_resp_ms.max(resp_ms);
            new.resp_sum = new.resp_sum.saturating_add(resp_ms);
            new.resp_count += 1;
        }
        let entry = Entry {
            lsn: self.journal.next_lsn + self.logged.len() as u64,
            session_id: id.to_owned(),
            seq,
            row,
            record: new.to_json(),
        };
        let count = new.msg_count;
        self.staged.insert(id, self.logged.len());
        self.logged.push((entry, new));
        Ok(count)
    }

    /// The session's latest record: this batch's, else the log's, else redb's.
    fn latest(&mut self, id: &str) -> Result<Option<SessionRecord>> {
        let staged = self.staged.get(id).and_then(|&at| self.logged.get(at));
        if let Some(record) = staged
            .map(|(_, record)| record)
            .or_else(|| self.journal.pending.latest(id))
        {
            return Ok(Some(record.clone()));
        }
        load(&self.reader()?.open_table(SESSIONS).map_err(db_err)?, id)
    }

    fn reader(&mut self) -> Result<&ReadTransaction> {
        let reader = match self.reader.take() {
            Some(reader) => reader,
            None => self.shared.db.begin_read().map_err(db_err)?,
        };
        Ok(self.reader.insert(reader))
    }

    /// The bytes of a session's message rows, summed: the one-time count for a session
    /// stored before records kept `msgBytes` (so all its rows are in redb).
    fn stored_bytes(&mut self, id: &str, count: u64) -> Result<u64> {
        let sessions = self.reader()?.open_table(SESSIONS).map_err(db_err)?;
        let mut bytes = 0_u64;
        runs::rows_in(&sessions, id, 0..count, |row| {
            bytes = bytes.saturating_add(row.len() as u64);
            Ok(())
        })?;
        Ok(bytes)
    }
}
