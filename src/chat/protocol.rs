//! The `/ws` message envelope (spec/websocket.md §Envelope): one JSON object per text
//! frame, both directions. Outbound frames always carry a real UTC `timestamp` and omit
//! empty optional fields.

use serde::Serialize;

use crate::time;

/// `error.code` values of the error frame (spec/websocket.md §Error frame).
pub mod code {
    pub const INVALID_FORMAT: &str = "INVALID_FORMAT";
    pub const SERVICE_ERROR: &str = "SERVICE_ERROR";
}

/// Every `type` the protocol knows.
pub const MESSAGE_TYPES: &[&str] = &[
    "user_message",
    "ai_response",
    "file_upload",
    "voice_message",
    "error",
    "connection_status",
    "typing_indicator",
    "help_request",
    "admin_join",
    "admin_leave",
    "model_select",
    "loading",
    "notification",
    "stop",
    "ping",
    "pong",
];

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ErrorBody {
    pub code: &'static str,
    pub message: String,
    pub recoverable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

/// A server → client frame.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Outbound {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    pub timestamp: String,
    pub sender: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

impl Outbound {
    pub fn system(kind: &'static str, unix: u64) -> Outbound {
        Outbound {
            kind,
            session_id: None,
            content: None,
            timestamp: time::rfc3339(unix),
            sender: "system",
            error: None,
        }
    }

    pub fn with_content(mut self, content: impl Into<String>) -> Outbound {
        self.content = Some(content.into());
        self
    }

    pub fn error(
        code: &'static str,
        message: impl Into<String>,
        recoverable: bool,
        unix: u64,
    ) -> Outbound {
        let mut frame = Outbound::system("error", unix);
        frame.error = Some(ErrorBody {
            code,
            message: message.into(),
            recoverable,
            retry_after: None,
        });
        frame
    }

    pub fn to_json(&self) -> String {
        // Plain strings and options only: serialisation cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The `type` of an inbound frame, or the `INVALID_FORMAT` message that answers it.
pub fn inbound_type(text: &str) -> Result<String, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|_| "Invalid message format".to_owned())?;
    let kind = value
        .get("type")
        .and_then(|t| t.as_str())
        .map(str::trim)
        .ok_or_else(|| "Invalid message format".to_owned())?;
    if !MESSAGE_TYPES.contains(&kind) {
        return Err(format!(
            "Invalid message format: unknown message type {kind}"
        ));
    }
    Ok(kind.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbound_omits_empty_fields() {
        let json = Outbound::system("pong", 0).to_json();
        assert_eq!(
            json,
            r#"{"type":"pong","timestamp":"1970-01-01T00:00:00Z","sender":"system"}"#
        );
    }

    #[test]
    fn inbound_type_is_checked() {
        assert_eq!(inbound_type(r#"{"type":"ping"}"#), Ok("ping".into()));
        assert_eq!(
            inbound_type(r#"{"type":"dance"}"#),
            Err("Invalid message format: unknown message type dance".into())
        );
        assert_eq!(
            inbound_type("not json"),
            Err("Invalid message format".into())
        );
    }
}
