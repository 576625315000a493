//! One append as a single upsert: what the read before it must allow ([`refusal`]), and
//! the filter and update that restate it for any writer that came in between ([`Plan`]).

use mongodb::bson::{doc, Document};

use super::codec::{self, date, Header, MESSAGE_BYTES, REPLY_COUNT};
use super::to_i64;
use crate::store::{byte_budget, Append, Sender, StoreError};

/// Why `append`, of `size` bytes, may not go to the session as read (`None`: it does
/// not exist yet).
pub(super) fn refusal(
    header: Option<&Header>,
    append: &Append,
    size: u64,
) -> std::result::Result<(), StoreError> {
    let session = header.map(|h| &h.session);
    if session.is_some_and(|s| s.user_id != append.user_id) {
        return Err(StoreError::NotOwner);
    }
    if session.map_or(0, |s| s.message_count) >= append.max_messages as u64 {
        return Err(StoreError::SessionFull);
    }
    let held = header.and_then(|h| h.message_bytes).unwrap_or(0);
    if held.saturating_add(size) > byte_budget(append.message.sender) {
        return Err(StoreError::SessionFull);
    }
    Ok(())
}

/// One append as a single upsert, and the session's message count after it.
pub(super) struct Plan {
    pub(super) filter: Document,
    pub(super) update: Document,
    pub(super) message_count: u64,
}

impl Plan {
    /// `size`: the message's bytes, which [`refusal`] found to fit the budget.
    pub(super) fn new(append: &Append, header: Option<&Header>, size: u64) -> Plan {
        let message = append.message;
        let at = message.at;
        let mut filter = doc! {"_id": append.session_id, "uid": append.user_id};
        // The cap, restated for a writer that appended since our read: the message at
        // index cap-1 must not exist yet. (nx-27017, the tests' server, does not
        // evaluate array-index paths; the check before the write covers one writer.)
        filter.insert(
            format!("msgs.{}", append.max_messages.saturating_sub(1)),
            doc! {"$exists": false},
        );
        // The byte budget, restated the same way. A new session has no count yet: the
        // upsert inserts it, and `$inc` starts the count there.
        filter.insert(
            MESSAGE_BYTES,
            doc! {"$lte": to_i64(byte_budget(message.sender).saturating_sub(size))},
        );

        let message_count = header.map_or(0, |h| h.session.message_count) + 1;

        let mut set = doc! {"lastActivity": date(at), "_mt": date(at)};
        let mut inc = doc! {MESSAGE_BYTES: to_i64(size)};
        let mut max = Document::new();
        if let (Sender::Ai, Some(resp_ms)) = (message.sender, message.resp_ms) {
            let tokens = message.tokens.unwrap_or(0);
            let replies = header.map_or(0, |h| h.reply_count);
            // A running mean kept as an integer, like the old service's field.
            let average = header.map_or(0, |h| h.session.avg_resp_ms);
            let sum = i128::from(average) * i128::from(replies) + i128::from(resp_ms);
            let avg = i64::try_from(sum / i128::from(replies + 1)).unwrap_or(i64::MAX);
            inc.insert("totalTokens", tokens);
            inc.insert(REPLY_COUNT, 1_i64);
            max.insert("maxRespTime", resp_ms);
            set.insert("avgRespTime", avg);
        }

        // Fields a new session starts with; those the operators above already write are
        // left to them (MongoDB refuses two operators on one path).
        let mut on_insert = doc! {
            "nm": append.name,
            "modelId": append.model_id,
            "ts": date(at),
            "_ts": date(at),
            "adminAssisted": false,
            "helpRequested": false,
            "totalTokens": 0_i64,
            "maxRespTime": 0_i64,
            "avgRespTime": 0_i64,
        };
        for written in [&set, &inc, &max] {
            for key in written.keys() {
                on_insert.remove(key);
            }
        }

        let mut update = doc! {
            "$push": {"msgs": codec::message_doc(message)},
            "$set": set,
            "$setOnInsert": on_insert,
            "$inc": inc,
        };
        if !max.is_empty() {
            update.insert("$max", max);
        }
        Plan {
            filter,
            update,
            message_count,
        }
    }
}

#[cfg(test)]
mod tests {
    use mongodb::bson::Bson;

    use super::*;
    use crate::store::{Message, Session};

    fn reply() -> Message {
        let mut message = Message::new("m2", Sender::Ai, "Hello", 5_000);
        message.tokens = Some(10);
        message.resp_ms = Some(300);
        message
    }

    fn append(message: &Message) -> Append<'_> {
        Append {
            session_id: "s1",
            user_id: "u1",
            name: "Hi",
            model_id: "gpt",
            message,
            max_messages: 5000,
        }
    }

    /// The tests' server stores every integer alike, so the widths the old service
    /// reads (int64 counters) are checked here, on the update we send.
    #[test]
    fn a_new_session_starts_with_the_spec_fields_and_types() {
        let message = Message::new("m1", Sender::User, "Hi", 1_000);
        let plan = Plan::new(&append(&message), None, 60);
        assert_eq!(
            plan.filter,
            doc! {
                "_id": "s1", "uid": "u1", "msgs.4999": {"$exists": false},
                MESSAGE_BYTES: {"$lte": 12 * 1024 * 1024 - 60_i64},
            }
        );
        let on_insert = plan.update.get_document("$setOnInsert").unwrap();
        let names: Vec<&str> = on_insert.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "nm",
                "modelId",
                "ts",
                "_ts",
                "adminAssisted",
                "helpRequested",
                "totalTokens",
                "maxRespTime",
                "avgRespTime"
            ]
        );
        for counter in ["totalTokens", "maxRespTime", "avgRespTime"] {
            assert_eq!(on_insert.get(counter), Some(&Bson::Int64(0)), "{counter}");
        }
        assert_eq!(on_insert.get("ts"), Some(&date(1_000)));
        assert_eq!(
            plan.update.get_document("$inc").unwrap(),
            &doc! {MESSAGE_BYTES: 60_i64},
            "a user message counts its bytes only"
        );
        assert_eq!(plan.update.get("$max"), None);
        assert_eq!(plan.message_count, 1);
    }

    #[test]
    fn a_reply_moves_the_counters_atomically_and_the_average_by_its_weight() {
        let message = reply();
        let mut header = Header {
            session: Session::new("s1", "u1", "Hi", "gpt", 1_000),
            reply_count: 3,
            message_bytes: Some(1_000),
            last_message_id: None,
        };
        header.session.avg_resp_ms = 100;
        header.session.max_resp_ms = 200;
        header.session.message_count = 6;
        let plan = Plan::new(&append(&message), Some(&header), 90);
        assert_eq!(
            plan.update.get_document("$inc").unwrap(),
            &doc! {MESSAGE_BYTES: 90_i64, "totalTokens": 10_i64, REPLY_COUNT: 1_i64}
        );
        assert_eq!(
            plan.update.get_document("$max").unwrap(),
            &doc! {"maxRespTime": 300_i64}
        );
        let set = plan.update.get_document("$set").unwrap();
        assert_eq!(
            set.get("avgRespTime"),
            Some(&Bson::Int64(150)),
            "(3 × 100 + 300) / 4"
        );
        let on_insert = plan.update.get_document("$setOnInsert").unwrap();
        for taken in ["totalTokens", "maxRespTime", "avgRespTime"] {
            assert!(
                !on_insert.contains_key(taken),
                "{taken} is written by another operator"
            );
        }
        assert_eq!(set.get("lastActivity"), Some(&date(5_000)));
        assert_eq!(plan.message_count, 7);
    }
}
