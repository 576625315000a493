//! The admin indexes of the embedded store and the queries they serve (the header of
//! `mod.rs` says why each table exists and what it costs the appends).
//!
//! Every sortable field has a table keyed (value, session id): a page in any order is
//! a range read in key order, forwards or backwards, and equal values come in id order
//! as [`AdminQuery::compare`] asks. Each entry's value carries the session's [`Filter`]
//! (active, assisted, start), so that the filters are checked on the index entry, not
//! on the session's record: records are read only for the page itself. The start index
//! carries every field the metrics sum instead ([`Facets`]), so an aggregate is one
//! range read too.

use redb::{ReadTransaction, ReadableTable, Table, TableDefinition, WriteTransaction};

use super::records::SessionRecord;
use super::{db_err, indexed, SESSIONS};
use crate::store::admin::{SessionFacts, Sums};
use crate::store::{AdminPage, AdminQuery, Aggregate, Millis, Order, Result, SortBy};

type ByValue = TableDefinition<'static, (Millis, &'static str), &'static [u8]>;

const BY_START: ByValue = TableDefinition::new("admin_start");
const BY_END: ByValue = TableDefinition::new("admin_end");
const BY_ACTIVITY: ByValue = TableDefinition::new("admin_activity");
const BY_MESSAGES: ByValue = TableDefinition::new("admin_messages");
const BY_TOKENS: ByValue = TableDefinition::new("admin_tokens");
const BY_USER: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("admin_user");
/// Sessions per [`Filter::flags`] value: the `total` of a listing without a time range.
const COUNTS: TableDefinition<u8, u64> = TableDefinition::new("admin_counts");

/// The end index's key of an active session: before every end, as MongoDB sorts a
/// missing field.
const NO_END: Millis = Millis::MIN;

const ACTIVE: u8 = 1;
const ASSISTED: u8 = 2;
const HELP: u8 = 4;

/// What the filters of a listing look at, as an index entry's value.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Filter {
    /// [`ACTIVE`] | [`ASSISTED`].
    flags: u8,
    started_at: Millis,
}

impl Filter {
    const LEN: usize = 9;

    fn of(record: &SessionRecord) -> Filter {
        let mut flags = 0;
        if record.end_ts.is_none() {
            flags |= ACTIVE;
        }
        if record.admin_assisted {
            flags |= ASSISTED;
        }
        Filter {
            flags,
            started_at: record.ts,
        }
    }

    fn bytes(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::LEN);
        out.push(self.flags);
        out.extend_from_slice(&self.started_at.to_le_bytes());
        out
    }

    /// `None` for a value of the wrong length: the file is not ours.
    fn read(bytes: &[u8]) -> Option<Filter> {
        let (&flags, rest) = bytes.split_first()?;
        Some(Filter {
            flags,
            started_at: Millis::from_le_bytes(rest.get(..8)?.try_into().ok()?),
        })
    }

    fn passes(self, query: &AdminQuery) -> bool {
        query.active.is_none_or(|a| a == (self.flags & ACTIVE != 0))
            && query
                .admin_assisted
                .is_none_or(|a| a == (self.flags & ASSISTED != 0))
            && query.started_from.is_none_or(|t| self.started_at >= t)
            && query.started_to.is_none_or(|t| self.started_at <= t)
    }
}

/// A start index entry's value: its [`Filter`] (with [`HELP`] among the flags), then
/// the fields an [`Aggregate`] sums, little-endian.
struct Facets;

impl Facets {
    fn bytes(record: &SessionRecord) -> Vec<u8> {
        let mut out = Filter::of(record).bytes();
        if record.help_requested {
            out[0] |= HELP;
        }
        for n in [
            i64::try_from(record.msg_count).unwrap_or(i64::MAX),
            record.total_tokens,
            record.max_resp_ms,
            record.resp_sum.checked_div(record.resp_count).unwrap_or(0),
            record.resp_count,
        ] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        out
    }

    fn read(bytes: &[u8]) -> Option<SessionFacts> {
        let flags = Filter::read(bytes)?.flags;
        let rest = bytes.get(Filter::LEN..)?;
        let n = |i: usize| -> Option<i64> {
            Some(i64::from_le_bytes(
                rest.get(i * 8..i * 8 + 8)?.try_into().ok()?,
            ))
        };
        Some(SessionFacts {
            active: flags & ACTIVE != 0,
            admin_assisted: flags & ASSISTED != 0,
            help_requested: flags & HELP != 0,
            messages: u64::try_from(n(0)?).unwrap_or(0),
            total_tokens: n(1)?,
            max_resp_ms: n(2)?,
            avg_resp_ms: n(3)?,
            replies: n(4)?,
        })
    }
}

/// An index keyed by a number: its table, its key and its value for a session.
struct ValueIndex {
    table: ByValue,
    key: fn(&SessionRecord) -> Millis,
    value: fn(&SessionRecord) -> Vec<u8>,
}

fn filter_bytes(record: &SessionRecord) -> Vec<u8> {
    Filter::of(record).bytes()
}

const VALUE_INDEXES: [ValueIndex; 5] = [
    ValueIndex {
        table: BY_START,
        key: |r| r.ts,
        value: Facets::bytes,
    },
    ValueIndex {
        table: BY_END,
        key: |r| r.end_ts.unwrap_or(NO_END),
        value: filter_bytes,
    },
    ValueIndex {
        table: BY_ACTIVITY,
        key: |r| r.last_activity,
        value: filter_bytes,
    },
    ValueIndex {
        table: BY_MESSAGES,
        key: |r| i64::try_from(r.msg_count).unwrap_or(i64::MAX),
        value: filter_bytes,
    },
    ValueIndex {
        table: BY_TOKENS,
        key: |r| r.total_tokens,
        value: filter_bytes,
    },
];

/// The admin tables of one write transaction.
pub(super) struct AdminTables<'txn> {
    /// In the order of [`VALUE_INDEXES`].
    by_value: Vec<Table<'txn, (Millis, &'static str), &'static [u8]>>,
    by_user: Table<'txn, (&'static str, &'static str), &'static [u8]>,
    counts: Table<'txn, u8, u64>,
}

impl<'txn> AdminTables<'txn> {
    pub(super) fn open(txn: &'txn WriteTransaction) -> Result<AdminTables<'txn>> {
        let by_value = VALUE_INDEXES
            .iter()
            .map(|index| txn.open_table(index.table).map_err(db_err))
            .collect::<Result<_>>()?;
        Ok(AdminTables {
            by_value,
            by_user: txn.open_table(BY_USER).map_err(db_err)?,
            counts: txn.open_table(COUNTS).map_err(db_err)?,
        })
    }

    /// Moves session `id`'s entries from where `old` had them to where `new` has
    /// them; an entry whose key and value stay is not touched (an append to a session
    /// moves its activity and message-count entries and rewrites its start entry).
    pub(super) fn put(
        &mut self,
        id: &str,
        old: Option<&SessionRecord>,
        new: &SessionRecord,
    ) -> Result<()> {
        for (table, index) in self.by_value.iter_mut().zip(&VALUE_INDEXES) {
            let after = ((index.key)(new), (index.value)(new));
            let before = old.map(|old| ((index.key)(old), (index.value)(old)));
            if before.as_ref() == Some(&after) {
                continue;
            }
            if let Some((old_key, _)) = before {
                table.remove((old_key, id)).map_err(db_err)?;
            }
            table
                .insert((after.0, id), after.1.as_slice())
                .map_err(db_err)?;
        }
        let filter = Filter::of(new);
        let before = old.map(Filter::of);
        if before == Some(filter) {
            return Ok(());
        }
        self.by_user
            .insert((new.uid.as_str(), id), filter.bytes().as_slice())
            .map_err(db_err)?;
        if let Some(before) = before {
            self.count(before.flags, |n| n.saturating_sub(1))?;
        }
        self.count(filter.flags, |n| n + 1)
    }

    fn count(&mut self, flags: u8, change: impl FnOnce(u64) -> u64) -> Result<()> {
        let now = self
            .counts
            .get(flags)
            .map_err(db_err)?
            .map_or(0, |n| n.value());
        self.counts.insert(flags, change(now)).map_err(db_err)?;
        Ok(())
    }
}

/// One index entry as a listing walks it: the session id and its filter.
type Entry = Result<(String, Filter)>;
type Entries = Box<dyn DoubleEndedIterator<Item = Entry>>;

/// The index entries of sessions in `sort`'s order, ascending; for the start index only
/// those in the query's time range.
fn entries(txn: &ReadTransaction, query: &AdminQuery) -> Result<Entries> {
    let table = match query.sort {
        SortBy::StartTime => BY_START,
        SortBy::EndTime => BY_END,
        SortBy::LastActivity => BY_ACTIVITY,
        SortBy::MessageCount => BY_MESSAGES,
        SortBy::TotalTokens => BY_TOKENS,
        SortBy::UserId => return by_user(txn),
    };
    let table = txn.open_table(table).map_err(db_err)?;
    let rows = match (query.sort, query.active) {
        (SortBy::StartTime, _) => started_between(&table, query),
        // Active sessions are keyed at the end index's very start: a status filter
        // is a bound of the range, not a walk past nine active sessions in ten.
        (SortBy::EndTime, Some(true)) => table.range((NO_END, "")..(NO_END + 1, "")),
        (SortBy::EndTime, Some(false)) => table.range((NO_END + 1, "")..),
        _ => table.range::<(Millis, &str)>(..),
    }
    .map_err(db_err)?;
    Ok(Box::new(rows.map(|row| {
        let (key, value) = row.map_err(db_err)?;
        read_entry(key.value().1, value.value())
    })))
}

fn by_user(txn: &ReadTransaction) -> Result<Entries> {
    let table = txn.open_table(BY_USER).map_err(db_err)?;
    let rows = table.range::<(&str, &str)>(..).map_err(db_err)?;
    Ok(Box::new(rows.map(|row| {
        let (key, value) = row.map_err(db_err)?;
        read_entry(key.value().1, value.value())
    })))
}

fn read_entry(id: &str, value: &[u8]) -> Entry {
    let filter = Filter::read(value).ok_or_else(|| corrupt_entry(id))?;
    Ok((id.to_owned(), filter))
}

/// The start index entries of sessions started in the query's range.
fn started_between(
    table: &redb::ReadOnlyTable<(Millis, &'static str), &'static [u8]>,
    query: &AdminQuery,
) -> std::result::Result<
    redb::Range<'static, (Millis, &'static str), &'static [u8]>,
    redb::StorageError,
> {
    let from = query.started_from.unwrap_or(Millis::MIN);
    match query.started_to.and_then(|to| to.checked_add(1)) {
        Some(until) => table.range((from, "")..(until, "")),
        None => table.range((from, "")..),
    }
}

fn corrupt_entry(id: &str) -> crate::store::StoreError {
    crate::store::StoreError::Corrupt(format!("admin index entry of session {id} unreadable"))
}

/// `Store::admin_sessions` of the embedded store.
pub(super) fn admin_sessions(txn: &ReadTransaction, query: &AdminQuery) -> Result<AdminPage> {
    let sessions = txn.open_table(SESSIONS).map_err(db_err)?;
    let offset = usize::try_from(query.offset).unwrap_or(usize::MAX);
    if let Some(user_id) = &query.user_id {
        // One user's sessions are few: read them all, then sort and page here.
        let table = txn.open_table(BY_USER).map_err(db_err)?;
        let mut found = Vec::new();
        for row in table.range((user_id.as_str(), "")..).map_err(db_err)? {
            let (key, value) = row.map_err(db_err)?;
            let (uid, id) = key.value();
            if uid != user_id {
                break;
            }
            let filter = Filter::read(value.value()).ok_or_else(|| corrupt_entry(id))?;
            if filter.passes(query) {
                found.push(indexed(&sessions, id)?.into_session(id));
            }
        }
        found.sort_by(|a, b| query.compare(a, b));
        let total = found.len() as u64;
        let sessions = found.into_iter().skip(offset).take(query.limit).collect();
        return Ok(AdminPage { sessions, total });
    }
    let ranged = query.started_from.is_some() || query.started_to.is_some();
    // Without a time range the counts give the total, and the walk stops at the end of
    // the page; with one, the matches in the range are counted by walking the start
    // index over it (the walk that finds the page, when that is the order).
    let known_total = if ranged {
        None
    } else {
        Some(counted(txn, query)?)
    };
    let walk_all = known_total.is_none() && query.sort == SortBy::StartTime;
    let mut entries = entries(txn, query)?;
    let mut next = || match query.order {
        Order::Asc => entries.next(),
        Order::Desc => entries.next_back(),
    };
    let (mut matched, mut page) = (0_usize, Vec::new());
    while let Some(entry) = next() {
        let (id, filter) = entry?;
        if !filter.passes(query) {
            continue;
        }
        if matched >= offset && page.len() < query.limit {
            page.push(indexed(&sessions, &id)?.into_session(&id));
        }
        matched += 1;
        if page.len() == query.limit && !walk_all {
            break;
        }
    }
    let total = match known_total {
        Some(total) => total,
        None if walk_all => matched as u64,
        None => counted_in_range(txn, query)?,
    };
    Ok(AdminPage {
        sessions: page,
        total,
    })
}

/// Sessions passing the status and assisted filters, from the counts.
fn counted(txn: &ReadTransaction, query: &AdminQuery) -> Result<u64> {
    let counts = txn.open_table(COUNTS).map_err(db_err)?;
    let mut total = 0;
    for flags in 0..=(ACTIVE | ASSISTED) {
        let filter = Filter {
            flags,
            started_at: 0,
        };
        if filter.passes(query) {
            total += counts.get(flags).map_err(db_err)?.map_or(0, |n| n.value());
        }
    }
    Ok(total)
}

/// Sessions passing every filter but the owner, by walking the start index over the
/// query's time range.
fn counted_in_range(txn: &ReadTransaction, query: &AdminQuery) -> Result<u64> {
    let by_start = AdminQuery {
        sort: SortBy::StartTime,
        ..query.clone()
    };
    let mut total = 0;
    for entry in entries(txn, &by_start)? {
        total += u64::from(entry?.1.passes(query));
    }
    Ok(total)
}

/// `Store::session_metrics` of the embedded store: one range read of the start index.
pub(super) fn session_metrics(
    txn: &ReadTransaction,
    from: Millis,
    to: Millis,
) -> Result<Aggregate> {
    let table = txn.open_table(BY_START).map_err(db_err)?;
    let query = AdminQuery {
        started_from: Some(from),
        started_to: Some(to),
        ..AdminQuery::all(0)
    };
    let mut sums = Sums::default();
    for row in started_between(&table, &query).map_err(db_err)? {
        let (key, value) = row.map_err(db_err)?;
        let facts = Facets::read(value.value()).ok_or_else(|| corrupt_entry(key.value().1))?;
        sums.add(facts);
    }
    Ok(sums.finish())
}

/// Fills the admin tables from the session records: a file of the layout before them
/// (format 3) gets them once, when this build opens it.
pub(super) fn build(txn: &WriteTransaction) -> Result<u64> {
    let mut admin = AdminTables::open(txn)?;
    let sessions = txn.open_table(SESSIONS).map_err(db_err)?;
    let mut indexed_sessions = 0;
    for row in sessions.iter().map_err(db_err)? {
        let (key, value) = row.map_err(db_err)?;
        let (id, seq) = key.value();
        if seq != super::RECORD {
            continue;
        }
        let record: SessionRecord = super::records::decode(value.value(), id)?;
        admin.put(id, None, &record)?;
        indexed_sessions += 1;
    }
    Ok(indexed_sessions)
}
