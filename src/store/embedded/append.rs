//! One append inside a write transaction: the owner, cap and byte-budget checks, the
//! message row, and the session record's counters.

use redb::ReadableTable;

use super::records::{encode, MessageRecord, SessionRecord};
use super::{db_err, load, Tables};
use crate::store::{byte_budget, Append, Result, Sender, Session, StoreError};

/// One append inside a write transaction. The outer `Result` is a storage failure that
/// must abort the transaction; the inner one is this append's own refusal, which
/// writes nothing.
pub(super) fn append_in(tables: &mut Tables, append: &Append) -> Result<Result<Session>> {
    let id = append.session_id;
    let message = append.message;
    let old = load(&tables.sessions, id)?;
    let mut new = match &old {
        Some(record) if record.uid != append.user_id => return Ok(Err(StoreError::NotOwner)),
        Some(record) => record.clone(),
        None => SessionRecord::new(append, message.at),
    };
    if new.msg_count >= append.max_messages as u64 {
        return Ok(Err(StoreError::SessionFull));
    }
    let row = encode(&MessageRecord::from_message(message))?;
    let held = match new.msg_bytes {
        Some(bytes) => bytes,
        None => stored_bytes(&tables.sessions, id, new.msg_count)?,
    };
    let bytes = held.saturating_add(row.len() as u64);
    if bytes > byte_budget(message.sender) {
        return Ok(Err(StoreError::SessionFull));
    }
    new.msg_bytes = Some(bytes);
    tables
        .sessions
        .insert((id, new.msg_count), row.as_slice())
        .map_err(db_err)?;
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
    tables.put(id, old.as_ref(), &new)?;
    Ok(Ok(new.into_session(id)))
}

/// The bytes of a session's message rows, summed: the one-time count for a session
/// stored before records kept `msgBytes`.
fn stored_bytes(
    sessions: &impl ReadableTable<(&'static str, u64), &'static [u8]>,
    id: &str,
    count: u64,
) -> Result<u64> {
    let mut bytes = 0_u64;
    for row in sessions.range((id, 0)..(id, count)).map_err(db_err)? {
        let (_, value) = row.map_err(db_err)?;
        bytes = bytes.saturating_add(value.value().len() as u64);
    }
    Ok(bytes)
}
