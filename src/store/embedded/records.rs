//! What one row holds: a session's record and a message's, as JSON with the MongoDB
//! documents' field names, and their conversions to and from the store's types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::store::{Append, AssistingAdmin, Message, Millis, Result, Sender, Session, StoreError};

pub(super) fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>> {
    // Serialising these plain structs only fails on a bug, but a write can report it.
    serde_json::to_vec(record).map_err(|err| StoreError::Unavailable(format!("encoding: {err}")))
}

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
    pub(super) fn from_message(message: &Message) -> MessageRecord {
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
