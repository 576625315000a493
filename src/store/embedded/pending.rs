//! What the log holds and redb does not yet: the entries a checkpoint will apply, and
//! each of their sessions' latest record, which the next append to that session starts
//! from (redb's copy is older).

use super::records::SessionRecord;
use super::wal::Entry;
use crate::hash::NameMap;

#[derive(Default)]
pub(super) struct Pending {
    entries: Vec<Entry>,
    /// Per session with an entry here or in a checkpoint still committing: its latest
    /// record and the entry that wrote it.
    latest: NameMap<String, (SessionRecord, u64)>,
}

impl Pending {
    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(super) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The session's record as of its last logged append, when redb may lag behind it.
    pub(super) fn latest(&self, session_id: &str) -> Option<&SessionRecord> {
        self.latest.get(session_id).map(|(record, _)| record)
    }

    /// Entries now on the disk, each with the record it wrote, in log order.
    pub(super) fn add(&mut self, logged: Vec<(Entry, SessionRecord)>) {
        for (entry, record) in logged {
            let latest = (record, entry.lsn);
            // Most appends are to a session already here: no copy of its id for those.
            match self.latest.get_mut(&entry.session_id) {
                Some(slot) => *slot = latest,
                None => {
                    self.latest.insert(entry.session_id.clone(), latest);
                }
            }
            self.entries.push(entry);
        }
    }

    /// Hands the entries to a checkpoint. The records stay until it has committed
    /// ([`Pending::forget_through`]): until then redb's copies are older.
    pub(super) fn take(&mut self) -> Vec<Entry> {
        std::mem::take(&mut self.entries)
    }

    /// A checkpoint that failed gives its entries back, ahead of any logged since.
    pub(super) fn restore(&mut self, mut entries: Vec<Entry>) {
        entries.append(&mut self.entries);
        self.entries = entries;
    }

    /// redb now holds every entry up to `lsn`: a record no later entry rewrote can be
    /// read from there again.
    pub(super) fn forget_through(&mut self, lsn: u64) {
        self.latest.retain(|_, (_, written_by)| *written_by > lsn);
    }
}
