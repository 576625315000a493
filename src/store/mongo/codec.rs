//! Session documents ⇄ [`Session`] and [`Message`], field for field as `spec/storage.md`.
//!
//! Writing is strict: the spec's names and BSON types (dates as dates, counters as
//! int64), and a field that has no value is left out rather than written as null, as
//! the old service did. Reading is lenient, because production collections hold
//! documents the old service wrote: a field added later (message `id`, `model`,
//! `tokens`, `respMs`; `lastActivity`, `_ts`, `_mt` on the oldest documents) reads as
//! its natural default, and a number reads whether it was stored as int32, int64 or
//! double. Only what cannot be interpreted at all (a session without an owner, a
//! message from an unknown sender) is [`StoreError::Corrupt`].

use mongodb::bson::{doc, Bson, DateTime, Document};

use crate::store::{AssistingAdmin, Message, Millis, Sender, Session, StoreError};

/// The pipeline field that carries the size of `msgs`, so a session's header is read
/// without its messages. It exists only in query results, never in stored documents.
pub const MESSAGE_COUNT: &str = "msgCount";
/// Computed by header reads, never stored: the `id` of the session's last message, so
/// that an append can tell whether an earlier attempt of it was stored already.
pub const LAST_MESSAGE_ID: &str = "lastMsgId";

/// How many AI replies `avgRespTime` averages over. **[new]**: the old service kept
/// no such count, so for its documents it is inferred (see [`Header::reply_count`]).
pub const REPLY_COUNT: &str = "respCount";

/// The bytes of the messages in `msgs`, against [`crate::store::SESSION_BYTES`].
/// **[new]**: the old service kept no such count; its documents are counted on the
/// first append (see `Mongo::counted_header`).
pub const MESSAGE_BYTES: &str = "msgBytes";

/// The update for [`crate::store::Store::set_assist`]: `adminAssisted` is set once and
/// never cleared (it says "ever taken over"); the admin's fields exist only while they
/// assist, so a handed-back session has none rather than nulls.
pub fn assist_update(admin: Option<&AssistingAdmin>, at: Millis) -> Document {
    match admin {
        Some(admin) => doc! {"$set": {
            "adminAssisted": true,
            "assistingAdminId": &admin.id,
            "assistingAdminName": &admin.name,
            "_mt": date(at),
        }},
        None => doc! {
            "$unset": {"assistingAdminId": "", "assistingAdminName": ""},
            "$set": {"_mt": date(at)},
        },
    }
}

pub fn date(at: Millis) -> Bson {
    Bson::DateTime(DateTime::from_millis(at))
}

/// A message as stored in `msgs`.
pub fn message_doc(message: &Message) -> Document {
    let mut doc = Document::new();
    if let Some(id) = &message.id {
        doc.insert("id", id.as_str());
    }
    doc.insert("content", message.content.as_str());
    doc.insert("ts", date(message.at));
    doc.insert("sender", message.sender.as_str());
    if let Some(file_id) = &message.file_id {
        doc.insert("fileId", file_id.as_str());
    }
    if let Some(file_url) = &message.file_url {
        doc.insert("fileUrl", file_url.as_str());
    }
    if !message.meta.is_empty() {
        let meta: Document = message
            .meta
            .iter()
            .map(|(key, value)| (key.clone(), Bson::String(value.clone())))
            .collect();
        doc.insert("meta", meta);
    }
    if let Some(model) = &message.model {
        doc.insert("model", model.as_str());
    }
    if let Some(tokens) = message.tokens {
        doc.insert("tokens", tokens);
    }
    if let Some(resp_ms) = message.resp_ms {
        doc.insert("respMs", resp_ms);
    }
    doc
}

/// What `message` adds to a session document: its size as BSON.
pub fn message_size(message: &Message) -> Result<u64, StoreError> {
    let bytes = message_doc(message)
        .to_vec()
        .map_err(|err| StoreError::Unavailable(format!("encoding a message: {err}")))?;
    Ok(bytes.len() as u64)
}

pub fn message_of(doc: &Document, session_id: &str) -> Result<Message, StoreError> {
    let sender = text(doc, "sender").unwrap_or_default();
    let sender = Sender::parse(sender).ok_or_else(|| {
        StoreError::Corrupt(format!("session {session_id}: unknown sender {sender:?}"))
    })?;
    let meta = doc
        .get("meta")
        .and_then(Bson::as_document)
        .map(|meta| {
            meta.iter()
                .map(|(key, value)| {
                    // The old service wrote strings; anything else is shown, not dropped.
                    let value = value
                        .as_str()
                        .map_or_else(|| value.to_string(), str::to_owned);
                    (key.clone(), value)
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Message {
        id: owned(doc, "id"),
        content: owned(doc, "content").unwrap_or_default(),
        at: millis(doc, "ts").unwrap_or(0),
        sender,
        file_id: owned(doc, "fileId"),
        file_url: owned(doc, "fileUrl"),
        meta,
        model: owned(doc, "model"),
        tokens: integer(doc, "tokens"),
        resp_ms: integer(doc, "respMs"),
    })
}

/// The messages of a session document (or of a pipeline result that sliced them).
pub fn messages_of(doc: &Document, session_id: &str) -> Result<Vec<Message>, StoreError> {
    let Some(msgs) = doc.get("msgs") else {
        return Ok(Vec::new());
    };
    let msgs = msgs.as_array().ok_or_else(|| {
        StoreError::Corrupt(format!("session {session_id}: msgs is not an array"))
    })?;
    msgs.iter()
        .map(|entry| {
            entry
                .as_document()
                .ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "session {session_id}: a message is not a document"
                    ))
                })
                .and_then(|doc| message_of(doc, session_id))
        })
        .collect()
}

/// A session read without its messages: the document's fields plus [`MESSAGE_COUNT`].
#[derive(Clone, Debug)]
pub struct Header {
    pub session: Session,
    /// The replies behind `avgRespTime`.
    pub reply_count: i64,
    /// [`MESSAGE_BYTES`]; `None` on a document of the old service, not counted yet.
    pub message_bytes: Option<u64>,
    /// [`LAST_MESSAGE_ID`].
    pub last_message_id: Option<String>,
}

impl Header {
    pub fn of(doc: &Document) -> Result<Header, StoreError> {
        let id = match doc.get("_id") {
            Some(Bson::String(id)) => id.clone(),
            other => {
                return Err(StoreError::Corrupt(format!(
                    "a session's _id is not a string: {other:?}"
                )))
            }
        };
        let user_id = owned(doc, "uid")
            .ok_or_else(|| StoreError::Corrupt(format!("session {id} has no uid")))?;
        let started_at = millis(doc, "ts")
            .or_else(|| millis(doc, "_ts"))
            .unwrap_or(0);
        let modified_at = millis(doc, "_mt").unwrap_or(started_at);
        let assisting_admin = owned(doc, "assistingAdminId").map(|admin_id| AssistingAdmin {
            id: admin_id,
            name: owned(doc, "assistingAdminName").unwrap_or_default(),
        });
        let avg_resp_ms = integer(doc, "avgRespTime").unwrap_or(0);
        let reply_count = integer(doc, REPLY_COUNT)
            // The old service's average: count it as one reply, so the next reply moves
            // the average halfway instead of replacing it.
            .unwrap_or(i64::from(avg_resp_ms > 0));
        let message_count = integer(doc, MESSAGE_COUNT).unwrap_or(0);
        Ok(Header {
            session: Session {
                name: owned(doc, "nm").unwrap_or_default(),
                model_id: owned(doc, "modelId").unwrap_or_default(),
                started_at,
                ended_at: millis(doc, "endTs"),
                duration_secs: integer(doc, "dur"),
                last_activity: millis(doc, "lastActivity").unwrap_or(modified_at),
                admin_assisted: flag(doc, "adminAssisted"),
                assisting_admin,
                help_requested: flag(doc, "helpRequested"),
                total_tokens: integer(doc, "totalTokens").unwrap_or(0),
                max_resp_ms: integer(doc, "maxRespTime").unwrap_or(0),
                avg_resp_ms,
                share_token: owned(doc, "shareToken"),
                created_at: millis(doc, "_ts").unwrap_or(started_at),
                modified_at,
                message_count: u64::try_from(message_count).unwrap_or(0),
                id,
                user_id,
            },
            reply_count,
            message_bytes: integer(doc, MESSAGE_BYTES).and_then(|n| u64::try_from(n).ok()),
            last_message_id: owned(doc, LAST_MESSAGE_ID),
        })
    }
}

fn text<'a>(doc: &'a Document, key: &str) -> Option<&'a str> {
    doc.get(key).and_then(Bson::as_str)
}

fn owned(doc: &Document, key: &str) -> Option<String> {
    text(doc, key).map(str::to_owned)
}

fn flag(doc: &Document, key: &str) -> bool {
    doc.get(key).and_then(Bson::as_bool).unwrap_or(false)
}

fn millis(doc: &Document, key: &str) -> Option<Millis> {
    doc.get(key)
        .and_then(Bson::as_datetime)
        .map(|at| at.timestamp_millis())
}

/// Drivers differ in how they store a Go `int` or a JavaScript number.
pub fn integer(doc: &Document, key: &str) -> Option<i64> {
    match doc.get(key)? {
        Bson::Int32(n) => Some(i64::from(*n)),
        Bson::Int64(n) => Some(*n),
        // Saturating float-to-int conversion; these counters are never fractional.
        Bson::Double(n) => Some(*n as i64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use mongodb::bson::doc;

    use super::*;

    #[test]
    fn a_message_round_trips_with_the_spec_names() {
        let mut message = Message::new("m1", Sender::Ai, "hello", 1_700_000_000_123);
        message.file_id = Some("f1".into());
        message.file_url = Some("https://files.example/f1".into());
        message.meta.insert("filename".into(), "a.txt".into());
        message.model = Some("gpt".into());
        message.tokens = Some(12);
        message.resp_ms = Some(340);
        let doc = message_doc(&message);
        let names: Vec<&str> = doc.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "id", "content", "ts", "sender", "fileId", "fileUrl", "meta", "model", "tokens",
                "respMs"
            ]
        );
        assert!(matches!(doc.get("ts"), Some(Bson::DateTime(_))));
        assert!(matches!(doc.get("tokens"), Some(Bson::Int64(12))));
        assert_eq!(message_of(&doc, "s1").unwrap(), message);
    }

    #[test]
    fn absent_values_are_left_out_not_null() {
        let doc = message_doc(&Message::new("m1", Sender::User, "hi", 5));
        let names: Vec<&str> = doc.keys().map(String::as_str).collect();
        assert_eq!(names, ["id", "content", "ts", "sender"]);
    }

    #[test]
    fn an_old_message_reads_with_defaults() {
        let doc = doc! {
            "content": "old", "ts": DateTime::from_millis(9), "sender": "admin",
            "meta": {"n": 3_i32, "s": "x"},
        };
        let message = message_of(&doc, "s1").unwrap();
        assert_eq!(message.id, None);
        assert_eq!((message.sender, message.at), (Sender::Admin, 9));
        assert_eq!(message.meta["s"], "x");
        assert_eq!(message.meta["n"], "3");
        assert_eq!(
            (message.model, message.tokens, message.resp_ms),
            (None, None, None)
        );
    }

    #[test]
    fn an_unknown_sender_is_corrupt() {
        let doc = doc! {"content": "?", "sender": "robot"};
        assert!(matches!(
            message_of(&doc, "s1"),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn an_old_header_reads_numbers_of_any_width() {
        let doc = doc! {
            "_id": "s1", "uid": "u1", "nm": "Hi", "ts": DateTime::from_millis(1_000),
            "totalTokens": 7_i32, "maxRespTime": 900.0_f64, "avgRespTime": 450_i64,
            "msgCount": 4_i32,
        };
        let header = Header::of(&doc).unwrap();
        let session = &header.session;
        assert_eq!(session.model_id, "");
        assert_eq!(
            (
                session.total_tokens,
                session.max_resp_ms,
                session.avg_resp_ms
            ),
            (7, 900, 450)
        );
        assert_eq!(session.message_count, 4);
        assert_eq!((session.last_activity, session.created_at), (1_000, 1_000));
        assert_eq!(header.reply_count, 1, "an old average weighs as one reply");
        assert!(session.is_active());
    }

    #[test]
    fn a_header_without_owner_is_corrupt() {
        assert!(matches!(
            Header::of(&doc! {"_id": "s1"}),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            Header::of(&doc! {"_id": 1, "uid": "u"}),
            Err(StoreError::Corrupt(_))
        ));
    }
}
