//! The `/ws` message envelope (spec/websocket.md §Envelope): one JSON object per text
//! frame, both directions. Inbound frames are sanitised and validated here, once, so the
//! rest of the domain only ever sees well-formed values; outbound frames always carry a
//! real UTC `timestamp` and omit empty optional fields.

use std::borrow::Cow;
use std::collections::BTreeMap;

use members::{Member, Members};
use meta::Meta;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::store::{Millis, Sender};
use crate::time;

mod encode;
mod members;
mod meta;

/// `error.code` values of the error frame (spec/websocket.md §Error frame).
pub mod code {
    pub const INVALID_FORMAT: &str = "INVALID_FORMAT";
    pub const MISSING_FIELD: &str = "MISSING_FIELD";
    pub const UNAUTHORIZED: &str = "UNAUTHORIZED";
    pub const NOT_FOUND: &str = "NOT_FOUND";
    pub const TOO_MANY_REQUESTS: &str = "TOO_MANY_REQUESTS";
    pub const LLM_UNAVAILABLE: &str = "LLM_UNAVAILABLE";
    pub const LLM_TIMEOUT: &str = "LLM_TIMEOUT";
    pub const DATABASE_ERROR: &str = "DATABASE_ERROR";
    pub const SERVICE_ERROR: &str = "SERVICE_ERROR";
}

/// Every `type` the protocol knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    UserMessage,
    AiResponse,
    FileUpload,
    VoiceMessage,
    Error,
    ConnectionStatus,
    TypingIndicator,
    HelpRequest,
    AdminJoin,
    AdminLeave,
    ModelSelect,
    Loading,
    Notification,
    Stop,
    Ping,
    Pong,
}

const KINDS: [(Kind, &str); 16] = [
    (Kind::UserMessage, "user_message"),
    (Kind::AiResponse, "ai_response"),
    (Kind::FileUpload, "file_upload"),
    (Kind::VoiceMessage, "voice_message"),
    (Kind::Error, "error"),
    (Kind::ConnectionStatus, "connection_status"),
    (Kind::TypingIndicator, "typing_indicator"),
    (Kind::HelpRequest, "help_request"),
    (Kind::AdminJoin, "admin_join"),
    (Kind::AdminLeave, "admin_leave"),
    (Kind::ModelSelect, "model_select"),
    (Kind::Loading, "loading"),
    (Kind::Notification, "notification"),
    (Kind::Stop, "stop"),
    (Kind::Ping, "ping"),
    (Kind::Pong, "pong"),
];

impl Kind {
    pub fn as_str(self) -> &'static str {
        KINDS
            .iter()
            .find(|(kind, _)| *kind == self)
            .map_or("error", |(_, name)| name)
    }

    pub fn parse(name: &str) -> Option<Kind> {
        KINDS
            .iter()
            .find(|(_, known)| *known == name)
            .map(|(kind, _)| *kind)
    }
}

/// Byte limits of inbound fields, after sanitising.
const MAX_SESSION_ID: usize = 128;
const MAX_CONTENT: usize = 10_000;
const MAX_FILE_ID: usize = 255;
const MAX_FILE_URL: usize = 2048;
const MAX_MODEL_ID: usize = 100;
const MAX_METADATA_VALUE: usize = 1000;
/// Metadata is stored with the message, so its whole size is bounded, not only each
/// value: without these one frame could store its full size (1 MiB) on every message.
const MAX_METADATA_KEYS: usize = 16;
const MAX_METADATA_KEY: usize = 64;
/// Keys and values together.
const MAX_METADATA_TOTAL: usize = 4096;
/// A client clock may run a little ahead; further is a bad `timestamp`.
const MAX_CLOCK_SKEW_MS: Millis = 60_000;

/// A client → server frame, sanitised: NUL bytes stripped, fields trimmed, empty
/// strings read as absent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inbound {
    pub kind: Kind,
    pub session_id: Option<String>,
    pub content: Option<String>,
    pub file_id: Option<String>,
    pub file_url: Option<String>,
    pub model_id: Option<String>,
    /// The client's `timestamp`, or the time it arrived.
    pub at: Millis,
    pub sender: Sender,
    pub metadata: BTreeMap<String, String>,
}

/// Why an inbound frame was refused: the body of the error frame that answers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub code: &'static str,
    pub message: String,
}

impl Rejection {
    fn invalid(message: impl Into<String>) -> Rejection {
        Rejection {
            code: code::INVALID_FORMAT,
            message: message.into(),
        }
    }

    pub fn missing(field: &str) -> Rejection {
        Rejection {
            code: code::MISSING_FIELD,
            message: format!("Required field missing: {field}"),
        }
    }
}

fn validation_failed() -> Rejection {
    Rejection::invalid("Message validation failed")
}

/// Parses and validates one inbound text frame.
pub fn parse_inbound(text: &str, now: Millis) -> Result<Inbound, Rejection> {
    let Ok(members) = serde_json::from_str::<Members>(text) else {
        return Err(Rejection::invalid("Invalid message format"));
    };
    let kind = match &members.kind {
        Member::Text(name) => {
            let name = sanitize(name);
            Kind::parse(&name).ok_or_else(|| {
                Rejection::invalid(format!(
                    "Invalid message format: unknown message type {name}"
                ))
            })?
        }
        Member::Absent => return Err(Rejection::missing("type")),
        Member::Other => return Err(Rejection::invalid("Invalid message format")),
    };
    let text_field = |member: &Member, limit: usize| -> Result<Option<String>, Rejection> {
        match member {
            Member::Absent => Ok(None),
            Member::Text(raw) => {
                let clean = sanitize(raw);
                if clean.len() > limit {
                    Err(validation_failed())
                } else {
                    Ok((!clean.is_empty()).then(|| clean.into_owned()))
                }
            }
            Member::Other => Err(validation_failed()),
        }
    };
    let session_id = text_field(&members.session_id, MAX_SESSION_ID)?;
    let content = text_field(&members.content, MAX_CONTENT)?;
    let file_id = text_field(&members.file_id, MAX_FILE_ID)?;
    let file_url = text_field(&members.file_url, MAX_FILE_URL)?;
    let model_id = text_field(&members.model_id, MAX_MODEL_ID)?;
    let timestamp = text_field(&members.timestamp, 64)?;
    let sender = text_field(&members.sender, 16)?;
    let at = match timestamp {
        None => now,
        Some(stamp) => match time::parse_rfc3339(&stamp) {
            Some(at) if at <= now + MAX_CLOCK_SKEW_MS => at,
            _ => return Err(validation_failed()),
        },
    };
    let sender = match sender {
        None => Sender::User,
        Some(name) => Sender::parse(&name).ok_or_else(validation_failed)?,
    };
    let metadata = match members.metadata {
        Value::Null => BTreeMap::new(),
        Value::Object(map) => metadata(map)?,
        _ => return Err(validation_failed()),
    };
    Ok(Inbound {
        kind,
        session_id,
        content,
        file_id,
        file_url,
        model_id,
        at,
        sender,
        metadata,
    })
}

/// Metadata values are strings; other JSON values are converted rather than failing
/// the whole frame (spec: [fix]).
fn metadata(map: Map<String, Value>) -> Result<BTreeMap<String, String>, Rejection> {
    // Counted as sent, `null`s included: a frame is refused before any of it is read.
    if map.len() > MAX_METADATA_KEYS {
        return Err(validation_failed());
    }
    let mut out = BTreeMap::new();
    let mut total = 0;
    for (key, value) in map {
        let value = match value {
            Value::Null => continue,
            Value::String(text) => sanitize(&text).into_owned(),
            other => sanitize(&other.to_string()).into_owned(),
        };
        let key = sanitize(&key).into_owned();
        total += key.len() + value.len();
        if value.len() > MAX_METADATA_VALUE
            || key.is_empty()
            || key.len() > MAX_METADATA_KEY
            || total > MAX_METADATA_TOTAL
        {
            return Err(validation_failed());
        }
        out.insert(key, value);
    }
    Ok(out)
}

/// Trimmed, NUL bytes stripped; a copy only when there are NUL bytes to strip.
fn sanitize(raw: &str) -> Cow<'_, str> {
    let trimmed = raw.trim();
    if trimmed.contains('\0') {
        Cow::Owned(trimmed.replace('\0', "").trim().to_owned())
    } else {
        Cow::Borrowed(trimmed)
    }
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ModelInfo {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ErrorBody {
    pub code: &'static str,
    pub message: String,
    pub recoverable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

/// A server → client frame, built with the `with_*` methods and written by
/// [`Outbound::to_json`] (`encode.rs`); the derived `Serialize` is the shape that
/// writer is tested against.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Outbound<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    models: Option<&'a [ModelInfo]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
    /// Written as RFC 3339 straight into the frame (`encode.rs`), not kept as a string.
    #[serde(rename = "timestamp", serialize_with = "rfc3339")]
    at: Millis,
    sender: &'static str,
    #[serde(skip_serializing_if = "Meta::is_empty")]
    metadata: Meta<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorBody>,
}

impl<'a> Outbound<'a> {
    pub fn new(kind: Kind, sender: Sender, at: Millis) -> Outbound<'a> {
        Outbound {
            kind: kind.as_str(),
            session_id: None,
            content: None,
            file_id: None,
            file_url: None,
            model_id: None,
            models: None,
            user_id: None,
            at,
            sender: sender.as_str(),
            metadata: Meta::default(),
            error: None,
        }
    }

    pub fn system(kind: Kind, at: Millis) -> Outbound<'a> {
        Outbound::new(kind, Sender::System, at)
    }

    /// An error frame; `recoverable` tells the client whether retrying can help.
    pub fn error(
        code: &'static str,
        message: impl Into<String>,
        recoverable: bool,
        at: Millis,
    ) -> Outbound<'a> {
        let mut frame = Outbound::system(Kind::Error, at);
        frame.error = Some(ErrorBody {
            code,
            message: message.into(),
            recoverable,
            retry_after: None,
        });
        frame
    }

    pub fn with_session(mut self, session_id: &'a str) -> Self {
        self.session_id = Some(session_id);
        self
    }

    pub fn with_content(mut self, content: &'a str) -> Self {
        self.content = (!content.is_empty()).then_some(content);
        self
    }

    pub fn with_files(mut self, file_id: Option<&'a str>, file_url: Option<&'a str>) -> Self {
        self.file_id = file_id;
        self.file_url = file_url;
        self
    }

    pub fn with_model(mut self, model_id: &'a str) -> Self {
        self.model_id = (!model_id.is_empty()).then_some(model_id);
        self
    }

    pub fn with_models(mut self, models: &'a [ModelInfo]) -> Self {
        self.models = Some(models);
        self
    }

    pub fn with_user(mut self, user_id: &'a str) -> Self {
        self.user_id = Some(user_id);
        self
    }

    pub fn with_meta(mut self, key: &'a str, value: &'a str) -> Self {
        self.metadata.insert(key, value);
        self
    }

    pub fn with_retry_after(mut self, millis: u64) -> Self {
        if let Some(error) = &mut self.error {
            error.retry_after = Some(millis);
        }
        self
    }
}

#[cfg(test)]
mod tests;

fn rfc3339<S: serde::Serializer>(at: &Millis, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&time::rfc3339_millis(*at))
}
