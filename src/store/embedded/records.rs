//! What one row holds: a session's record and a message's, as JSON with the MongoDB
//! documents' field names, and their conversions to and from the store's types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::json;
use crate::store::{Append, AssistingAdmin, Message, Millis, Result, Sender, Session, StoreError};

pub(super) fn decode<'de, T: Deserialize<'de>>(bytes: &'de [u8], id: &str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|err| StoreError::Corrupt(format!("session {id}: {err}")))
}

/// A session as stored, without its id (in the key) and messages (their own rows).
#[derive(Clone, Serialize, Deserialize)]
pub(super) struct SessionRecord {
    pub(super) uid: String,
    pub(super) nm: String,
    #[serde(rename = "modelId")]
    pub(super) model_id: String,
    pub(super) ts: Millis,
    #[serde(rename = "endTs", default, skip_serializing_if = "Option::is_none")]
    pub(super) end_ts: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) dur: Option<i64>,
    #[serde(rename = "lastActivity")]
    pub(super) last_activity: Millis,
    #[serde(rename = "adminAssisted", default)]
    pub(super) admin_assisted: bool,
    #[serde(
        rename = "assistingAdminId",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub(super) assisting_admin_id: Option<String>,
    #[serde(
        rename = "assistingAdminName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub(super) assisting_admin_name: Option<String>,
    #[serde(rename = "helpRequested", default)]
    pub(super) help_requested: bool,
    #[serde(rename = "totalTokens", default)]
    pub(super) total_tokens: i64,
    #[serde(rename = "maxRespTime", default)]
    pub(super) max_resp_ms: i64,
    /// The sum and count behind `avgRespTime`, kept instead of the average itself so it
    /// never drifts by rounding.
    #[serde(rename = "respSum", default)]
    pub(super) resp_sum: i64,
    #[serde(rename = "respCount", default)]
    pub(super) resp_count: i64,
    #[serde(
        rename = "shareToken",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub(super) share_token: Option<String>,
    #[serde(rename = "_ts")]
    pub(super) created_at: Millis,
    #[serde(rename = "_mt")]
    pub(super) modified_at: Millis,
    /// Messages stored so far: the next message's sequence number.
    #[serde(rename = "msgCount", default)]
    pub(super) msg_count: u64,
    /// The bytes of the message rows, against [`SESSION_BYTES`]. Absent in records
    /// written before it was kept: the next append counts the rows once.
    #[serde(rename = "msgBytes", default, skip_serializing_if = "Option::is_none")]
    pub(super) msg_bytes: Option<u64>,
}

impl SessionRecord {
    pub(super) fn new(append: &Append, at: Millis) -> SessionRecord {
        SessionRecord {
            uid: append.user_id.to_owned(),
            nm: append.name.to_owned(),
            model_id: append.model_id.to_owned(),
            ts: at,
            end_ts: None,
            dur: None,
            last_activity: at,
            admin_assisted: false,
            assisting_admin_id: None,
            assisting_admin_name: None,
            help_requested: false,
            total_tokens: 0,
            max_resp_ms: 0,
            resp_sum: 0,
            resp_count: 0,
            share_token: None,
            created_at: at,
            modified_at: at,
            msg_count: 0,
            msg_bytes: Some(0),
        }
    }

    /// An admin takes over (`Some`) or hands back (`None`): "ever assisted" stays set,
    /// the admin's fields exist only while they assist.
    pub(super) fn assist(&mut self, admin: Option<&AssistingAdmin>) {
        self.admin_assisted |= admin.is_some();
        self.assisting_admin_id = admin.map(|a| a.id.clone());
        self.assisting_admin_name = admin.map(|a| a.name.clone());
    }

    /// The record as serde_json writes it (the tests hold the two equal), by hand: it is
    /// written with every append, and serde_json's escaping of its twenty keys was half
    /// of an append's instructions on the store lane (callgrind).
    pub(super) fn to_json(&self) -> Vec<u8> {
        let mut out = String::with_capacity(320);
        out.push_str("{\"uid\":");
        json::string(&mut out, &self.uid);
        let texts = [
            (json::member!("nm"), &self.nm),
            (json::member!("modelId"), &self.model_id),
        ];
        let numbers = [
            (json::member!("ts"), Some(self.ts)),
            (json::member!("endTs"), self.end_ts),
            (json::member!("dur"), self.dur),
            (json::member!("lastActivity"), Some(self.last_activity)),
        ];
        for (name, value) in texts {
            out.push_str(name);
            json::string(&mut out, value);
        }
        json::optional_ints(&mut out, numbers);
        out.push_str(json::member!("adminAssisted"));
        json::boolean(&mut out, self.admin_assisted);
        let admin = [
            (
                json::member!("assistingAdminId"),
                self.assisting_admin_id.as_deref(),
            ),
            (
                json::member!("assistingAdminName"),
                self.assisting_admin_name.as_deref(),
            ),
        ];
        json::optional_strings(&mut out, admin);
        out.push_str(json::member!("helpRequested"));
        json::boolean(&mut out, self.help_requested);
        let sums = [
            (json::member!("totalTokens"), self.total_tokens),
            (json::member!("maxRespTime"), self.max_resp_ms),
            (json::member!("respSum"), self.resp_sum),
            (json::member!("respCount"), self.resp_count),
        ];
        for (name, value) in sums {
            out.push_str(name);
            json::int(&mut out, value);
        }
        if let Some(token) = &self.share_token {
            out.push_str(json::member!("shareToken"));
            json::string(&mut out, token);
        }
        for (name, value) in [
            (json::member!("_ts"), self.created_at),
            (json::member!("_mt"), self.modified_at),
        ] {
            out.push_str(name);
            json::int(&mut out, value);
        }
        out.push_str(json::member!("msgCount"));
        json::uint(&mut out, self.msg_count);
        if let Some(bytes) = self.msg_bytes {
            out.push_str(json::member!("msgBytes"));
            json::uint(&mut out, bytes);
        }
        out.push('}');
        out.into_bytes()
    }

    pub(super) fn into_session(self, id: &str) -> Session {
        let assisting_admin = match (self.assisting_admin_id, self.assisting_admin_name) {
            (Some(id), name) => Some(AssistingAdmin {
                id,
                name: name.unwrap_or_default(),
            }),
            (None, _) => None,
        };
        Session {
            id: id.to_owned(),
            user_id: self.uid,
            name: self.nm,
            model_id: self.model_id,
            started_at: self.ts,
            ended_at: self.end_ts,
            duration_secs: self.dur,
            last_activity: self.last_activity,
            admin_assisted: self.admin_assisted,
            assisting_admin,
            help_requested: self.help_requested,
            total_tokens: self.total_tokens,
            max_resp_ms: self.max_resp_ms,
            avg_resp_ms: self.resp_sum.checked_div(self.resp_count).unwrap_or(0),
            share_token: self.share_token,
            created_at: self.created_at,
            modified_at: self.modified_at,
            message_count: self.msg_count,
        }
    }
}

#[derive(Serialize, Deserialize)]
pub(super) struct MessageRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) id: Option<String>,
    pub(super) content: String,
    pub(super) ts: Millis,
    pub(super) sender: String,
    #[serde(rename = "fileId", default, skip_serializing_if = "Option::is_none")]
    pub(super) file_id: Option<String>,
    #[serde(rename = "fileUrl", default, skip_serializing_if = "Option::is_none")]
    pub(super) file_url: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(super) meta: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) tokens: Option<i64>,
    #[serde(rename = "respMs", default, skip_serializing_if = "Option::is_none")]
    pub(super) resp_ms: Option<i64>,
}

impl MessageRecord {
    /// A message's row: this record as serde_json writes it (the tests hold the two
    /// equal), by hand and straight from the message, without a copy of its fields.
    /// Two are written per exchange, on the store lane, and serde_json's escaping of
    /// every key was the larger part of them.
    pub(super) fn json_of(message: &Message) -> Vec<u8> {
        let mut out = String::with_capacity(160 + message.content.len());
        out.push('{');
        if let Some(id) = &message.id {
            out.push_str("\"id\":");
            json::string(&mut out, id);
            out.push(',');
        }
        out.push_str("\"content\":");
        json::string(&mut out, &message.content);
        out.push_str(json::member!("ts"));
        json::int(&mut out, message.at);
        out.push_str(json::member!("sender"));
        json::string(&mut out, message.sender.as_str());
        let files = [
            (json::member!("fileId"), message.file_id.as_deref()),
            (json::member!("fileUrl"), message.file_url.as_deref()),
        ];
        json::optional_strings(&mut out, files);
        if !message.meta.is_empty() {
            out.push_str(json::member!("meta"));
            let pairs = message.meta.iter().map(|(k, v)| (k.as_str(), v.as_str()));
            json::string_map(&mut out, pairs);
        }
        if let Some(model) = &message.model {
            out.push_str(json::member!("model"));
            json::string(&mut out, model);
        }
        let numbers = [
            (json::member!("tokens"), message.tokens),
            (json::member!("respMs"), message.resp_ms),
        ];
        json::optional_ints(&mut out, numbers);
        out.push('}');
        out.into_bytes()
    }

    pub(super) fn into_message(self, session_id: &str) -> Result<Message> {
        let sender = Sender::parse(&self.sender).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "session {session_id}: unknown sender {:?}",
                self.sender
            ))
        })?;
        Ok(Message {
            id: self.id,
            content: self.content,
            at: self.ts,
            sender,
            file_id: self.file_id,
            file_url: self.file_url,
            meta: self.meta,
            model: self.model,
            tokens: self.tokens,
            resp_ms: self.resp_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_records_are_written_as_serde_json_writes_them() {
        let message = Message {
            id: None,
            ..Message::new("", Sender::User, "", 5)
        };
        let append = Append {
            session_id: "s",
            user_id: "alice \"the\" \\ user\n",
            name: "Grüße 🚀",
            model_id: "echo",
            message: &message,
            max_messages: 10,
        };
        let fresh = SessionRecord::new(&append, 1_795_642_840_123);
        let mut full = fresh.clone();
        full.end_ts = Some(-3);
        full.dur = Some(i64::MAX);
        full.assist(Some(&AssistingAdmin {
            id: "a\u{1}".into(),
            name: "Ádmin".into(),
        }));
        full.help_requested = true;
        full.total_tokens = i64::MIN;
        full.resp_count = 12;
        full.share_token = Some("tok".into());
        full.msg_count = u64::MAX;
        full.msg_bytes = None;
        for record in [&fresh, &full] {
            assert_eq!(record.to_json(), serde_json::to_vec(record).unwrap());
        }
    }

    /// The record serde_json wrote rows from, before they were written by hand.
    fn derived(message: &Message) -> MessageRecord {
        MessageRecord {
            id: message.id.clone(),
            content: message.content.clone(),
            ts: message.at,
            sender: message.sender.as_str().to_owned(),
            file_id: message.file_id.clone(),
            file_url: message.file_url.clone(),
            meta: message.meta.clone(),
            model: message.model.clone(),
            tokens: message.tokens,
            resp_ms: message.resp_ms,
        }
    }

    #[test]
    fn message_rows_are_written_as_serde_json_writes_them() {
        let awkward = "quote \" back\\slash\ttab\nline\u{1}\u{7f} ünï 🚀 </script>";
        let plain = Message::new("fedcba9876543210", Sender::User, "hello", 1_795_642_840_123);
        let old = Message {
            id: None,
            ..Message::new("", Sender::Admin, "", -5)
        };
        let full = Message {
            file_id: Some("f\"1".into()),
            file_url: Some("https://x.test/a b?c=\"d\"".into()),
            meta: BTreeMap::from([
                ("streaming".into(), "true".into()),
                (awkward.into(), awkward.into()),
            ]),
            model: Some("gpt \"4\"".into()),
            tokens: Some(i64::MIN),
            resp_ms: Some(i64::MAX),
            ..Message::new(awkward, Sender::Ai, awkward, 0)
        };
        for message in [&plain, &old, &full] {
            let row = MessageRecord::json_of(message);
            assert_eq!(row, serde_json::to_vec(&derived(message)).unwrap());
        }
    }
}
