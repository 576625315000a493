//! Message rows as runs: the consecutive messages of one session that one checkpoint
//! carries into redb are stored as one row, keyed by the first one's position, their
//! JSON rows joined by `\n`.
//!
//! Why: a checkpoint used to insert each message as a row of its own, always just
//! before its session's record and so never at the end of the tree, where redb packs
//! leaves; a full leaf split in two and its left half stayed half empty. Those
//! inserts, their splits and the pages they dirtied were most of a checkpoint's cost
//! (`docs/PERFORMANCE.md`, *The fifth step*). A run is one insert however many
//! messages a session had in the checkpoint.
//!
//! A row of the earlier layout, one message per row, reads as a run of one. A JSON row
//! never holds a raw `\n`: every writer escapes control characters in strings and puts
//! no whitespace between tokens, so `\n` can only be a separator.

use std::ops::Range;

use redb::ReadableTable;

use super::wal::Entry;
use super::{db_err, Result};

/// A run is cut once it holds this many bytes of rows, so that reading a window of a
/// transcript decodes at most this much beyond the window at each end. Below redb's
/// 4 KiB page: a row never needs a page of its own, which redb would round up to a
/// power of two.
const RUN_BYTES: usize = 3_500;
const SEPARATOR: u8 = b'\n';

/// One run to store: `session_id`'s messages from `first` on.
pub(super) struct Run<'a> {
    pub(super) session_id: &'a str,
    pub(super) first: u64,
    pub(super) rows: Vec<u8>,
}

/// The runs that store `entries` (any order, any sessions), in key order.
pub(super) fn of(entries: &[Entry]) -> Vec<Run<'_>> {
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_unstable_by(|a, b| (&a.session_id, a.seq).cmp(&(&b.session_id, b.seq)));
    let mut runs: Vec<Run> = Vec::new();
    let mut next_seq = 0;
    for entry in sorted {
        let extends = runs.last().is_some_and(|run| {
            run.session_id == entry.session_id
                && next_seq == entry.seq
                && run.rows.len() + 1 + entry.row.len() <= RUN_BYTES
        });
        match runs.last_mut() {
            Some(run) if extends => {
                run.rows.push(SEPARATOR);
                run.rows.extend_from_slice(&entry.row);
            }
            _ => runs.push(Run {
                session_id: &entry.session_id,
                first: entry.seq,
                rows: entry.row.clone(),
            }),
        }
        next_seq = entry.seq + 1;
    }
    runs
}

/// Calls `each` with the row of every message of `session_id` at a position in
/// `positions`, in order.
pub(super) fn rows_in(
    sessions: &impl ReadableTable<(&'static str, u64), &'static [u8]>,
    session_id: &str,
    positions: Range<u64>,
    mut each: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    if positions.is_empty() {
        return Ok(());
    }
    // The run holding the window's first message starts at or before it.
    let first_run = sessions
        .range((session_id, 0)..=(session_id, positions.start))
        .map_err(db_err)?
        .next_back()
        .transpose()
        .map_err(db_err)?
        .map_or(positions.start, |(key, _)| key.value().1);
    let mut next = positions.start;
    for run in sessions
        .range((session_id, first_run)..(session_id, positions.end))
        .map_err(db_err)?
    {
        let (key, rows) = run.map_err(db_err)?;
        let first = key.value().1;
        for (seq, row) in (first..).zip(rows.value().split(|b| *b == SEPARATOR)) {
            // Below `next`: before the window, or a position an earlier run already gave.
            if seq < next {
                continue;
            }
            if seq >= positions.end {
                break;
            }
            each(row)?;
            next = seq + 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(session_id: &str, seq: u64, row: &str) -> Entry {
        Entry {
            lsn: 0,
            session_id: session_id.to_owned(),
            seq,
            row: row.as_bytes().to_vec(),
            record: Vec::new(),
        }
    }

    fn described(runs: &[Run]) -> Vec<(String, u64, String)> {
        let text = |rows: &[u8]| String::from_utf8(rows.to_vec()).unwrap();
        runs.iter()
            .map(|run| (run.session_id.to_owned(), run.first, text(&run.rows)))
            .collect()
    }

    #[test]
    fn a_sessions_consecutive_messages_make_one_run_whatever_the_log_order() {
        let entries = [
            entry("b", 0, "b0"),
            entry("a", 4, "a4"),
            entry("b", 1, "b1"),
            entry("a", 5, "a5"),
        ];
        let expected = vec![
            ("a".to_owned(), 4, "a4\na5".to_owned()),
            ("b".to_owned(), 0, "b0\nb1".to_owned()),
        ];
        assert_eq!(described(&of(&entries)), expected);
    }

    #[test]
    fn a_gap_or_the_size_cap_starts_a_new_run() {
        let big = "x".repeat(RUN_BYTES / 2);
        let entries = [
            entry("a", 0, &big),
            entry("a", 1, &big),
            entry("a", 3, "a3"),
        ];
        let firsts: Vec<u64> = of(&entries).iter().map(|run| run.first).collect();
        assert_eq!(firsts, [0, 1, 3]);
    }
}
