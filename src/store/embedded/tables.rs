//! The tables of one write transaction, and the one place that keeps a session's index
//! entries in step with its record.

use redb::{MultimapTable, ReadableTable, Table, WriteTransaction};

use super::admin::AdminTables;
use super::records::{decode, SessionRecord};
use super::{db_err, ACTIVE, RECORD, SESSIONS, SHARES, USER_ACTIVE, USER_START};
use crate::store::{Millis, Result, StoreError};

/// The tables of one write transaction.
pub(super) struct Tables<'txn> {
    pub(super) sessions: Table<'txn, (&'static str, u64), &'static [u8]>,
    pub(super) user_start: MultimapTable<'txn, (&'static str, Millis), &'static str>,
    pub(super) user_active: MultimapTable<'txn, &'static str, &'static str>,
    pub(super) active: Table<'txn, &'static str, ()>,
    pub(super) shares: Table<'txn, &'static str, &'static str>,
    pub(super) admin: AdminTables<'txn>,
}

impl<'txn> Tables<'txn> {
    pub(super) fn open(txn: &'txn WriteTransaction) -> Result<Tables<'txn>> {
        Ok(Tables {
            sessions: txn.open_table(SESSIONS).map_err(db_err)?,
            user_start: txn.open_multimap_table(USER_START).map_err(db_err)?,
            user_active: txn.open_multimap_table(USER_ACTIVE).map_err(db_err)?,
            active: txn.open_table(ACTIVE).map_err(db_err)?,
            shares: txn.open_table(SHARES).map_err(db_err)?,
            admin: AdminTables::open(txn)?,
        })
    }

    /// Applies `change` to an existing session; false when there is none.
    /// Changes session `id` as of `at`: false when there is no such session.
    pub(super) fn update(
        &mut self,
        id: &str,
        at: Millis,
        change: impl FnOnce(&mut SessionRecord),
    ) -> Result<bool> {
        let Some(old) = load(&self.sessions, id)? else {
            return Ok(false);
        };
        let mut new = old.clone();
        change(&mut new);
        new.modified_at = at;
        self.put(id, Some(&old), &new)?;
        Ok(true)
    }

    pub(super) fn end(&mut self, id: &str, at: Millis) -> Result<bool> {
        let Some(old) = load(&self.sessions, id)? else {
            return Ok(false);
        };
        if old.end_ts.is_some() {
            return Ok(false);
        }
        let mut new = old.clone();
        new.end_ts = Some(at);
        new.dur = Some((at.saturating_sub(new.ts) / 1000).max(0));
        new.modified_at = at;
        self.put(id, Some(&old), &new)?;
        Ok(true)
    }

    /// Stores `new` as session `id` (previously `old`) and moves its index entries.
    pub(super) fn put(
        &mut self,
        id: &str,
        old: Option<&SessionRecord>,
        new: &SessionRecord,
    ) -> Result<()> {
        let before = old.map(IndexKeys::of);
        let after = IndexKeys::of(new);
        let before = before.as_ref();
        if before.map(|k| k.user_start) != Some(after.user_start) {
            if let Some(k) = before {
                self.user_start.remove(k.user_start, id).map_err(db_err)?;
            }
            self.user_start
                .insert(after.user_start, id)
                .map_err(db_err)?;
        }
        let (old_active, new_active) = (before.and_then(|k| k.active), after.active);
        if old_active != new_active {
            if let Some(user) = old_active {
                self.user_active.remove(user, id).map_err(db_err)?;
                self.active.remove(id).map_err(db_err)?;
            }
            if let Some(user) = new_active {
                self.user_active.insert(user, id).map_err(db_err)?;
                self.active.insert(id, ()).map_err(db_err)?;
            }
        }
        let (old_share, new_share) = (before.and_then(|k| k.share), after.share);
        if old_share != new_share {
            if let Some(token) = old_share {
                self.shares.remove(token).map_err(db_err)?;
            }
            if let Some(token) = new_share {
                self.shares.insert(token, id).map_err(db_err)?;
            }
        }
        self.admin.put(id, old, new)?;
        let row = new.to_json();
        self.sessions
            .insert((id, RECORD), row.as_slice())
            .map_err(db_err)?;
        Ok(())
    }
}

/// Where one session appears in the index tables.
struct IndexKeys<'a> {
    user_start: (&'a str, Millis),
    /// The owner while the session is active. Not `lastActivity`: then every append
    /// would move the session's index entries (see the header).
    active: Option<&'a str>,
    share: Option<&'a str>,
}

impl IndexKeys<'_> {
    fn of(record: &SessionRecord) -> IndexKeys<'_> {
        IndexKeys {
            user_start: (record.uid.as_str(), record.ts),
            active: record.end_ts.is_none().then_some(record.uid.as_str()),
            share: record.share_token.as_deref(),
        }
    }
}

/// The record of a session an index entry points to: it must exist.
pub(super) fn indexed(
    sessions: &impl ReadableTable<(&'static str, u64), &'static [u8]>,
    id: &str,
) -> Result<SessionRecord> {
    load(sessions, id)?
        .ok_or_else(|| StoreError::Corrupt(format!("an index names missing session {id}")))
}

pub(super) fn load(
    sessions: &impl ReadableTable<(&'static str, u64), &'static [u8]>,
    id: &str,
) -> Result<Option<SessionRecord>> {
    match sessions.get((id, RECORD)).map_err(db_err)? {
        Some(row) => decode(row.value(), id).map(Some),
        None => Ok(None),
    }
}
