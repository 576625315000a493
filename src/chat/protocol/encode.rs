//! Outbound frames written as JSON by hand, byte for byte what serde_json writes for
//! [`Outbound`]'s derived `Serialize` (the tests hold the two side by side). Every
//! exchange sends four frames of a dozen strings each; through serde_json every key and
//! value went through its escaper, a third of the loop thread's instructions per
//! exchange (callgrind). Keys are constants here, and a value is copied as it is
//! unless it holds one of the characters JSON escapes.

use serde::Serialize;

use super::Outbound;

impl Outbound<'_> {
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(256);
        out.push_str("{\"type\":");
        string(&mut out, self.kind);
        let texts = [
            ("session_id", self.session_id),
            ("content", self.content),
            ("file_id", self.file_id),
            ("file_url", self.file_url),
            ("model_id", self.model_id),
        ];
        for (key, value) in texts {
            if let Some(value) = value {
                key_of(&mut out, key);
                string(&mut out, value);
            }
        }
        if let Some(models) = self.models {
            key_of(&mut out, "models");
            serialized(&mut out, models);
        }
        if let Some(user_id) = self.user_id {
            key_of(&mut out, "user_id");
            string(&mut out, user_id);
        }
        key_of(&mut out, "timestamp");
        string(&mut out, &self.timestamp);
        key_of(&mut out, "sender");
        string(&mut out, self.sender);
        if !self.metadata.is_empty() {
            key_of(&mut out, "metadata");
            let mut separator = '{';
            for (key, value) in &self.metadata {
                out.push(separator);
                separator = ',';
                string(&mut out, key);
                out.push(':');
                string(&mut out, value);
            }
            out.push('}');
        }
        if let Some(error) = &self.error {
            key_of(&mut out, "error");
            serialized(&mut out, error);
        }
        out.push('}');
        out
    }
}

fn key_of(out: &mut String, key: &str) {
    out.push_str(",\"");
    out.push_str(key);
    out.push_str("\":");
}

/// A JSON string: copied between quotes when nothing in it needs escaping (serde_json
/// escapes only `"`, `\` and control characters), else serde_json's own escaping.
fn string(out: &mut String, value: &str) {
    if value.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(value);
        out.push('"');
    } else {
        serialized(out, value);
    }
}

/// The rare parts (models, error bodies, strings to escape) as serde_json writes them.
fn serialized<T: Serialize + ?Sized>(out: &mut String, value: &T) {
    // Strings, maps, numbers and booleans only: serialisation cannot fail.
    if let Ok(json) = serde_json::to_string(value) {
        out.push_str(&json);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{code, Kind, ModelInfo};
    use super::*;
    use crate::store::Sender;

    /// What the derived `Serialize` writes: the shape clients have always been sent.
    fn by_serde(frame: &Outbound) -> String {
        serde_json::to_string(frame).expect("serialisable")
    }

    #[test]
    fn writes_what_serde_json_writes() {
        let models = [
            ModelInfo {
                id: "gpt \"4\"".into(),
                name: "GPT\n4".into(),
            },
            ModelInfo {
                id: "echo".into(),
                name: "Écho".into(),
            },
        ];
        let awkward = "quote \" back\\slash\ttab\nline\r\u{1}\u{1f}\u{7f} ünï 🚀 </script>";
        let frames = [
            Outbound::system(Kind::Pong, 0),
            Outbound::system(Kind::Loading, 1_795_642_840_123)
                .with_session("0123456789abcdef0123456789abcdef")
                .with_meta("message_id", "fedcba9876543210fedcba9876543210"),
            Outbound::new(Kind::AiResponse, Sender::Ai, 1)
                .with_session("s")
                .with_content(awkward)
                .with_model("echo")
                .with_meta("streaming", "true")
                .with_meta("done", "false")
                .with_meta("seq", "12")
                .with_meta(awkward, awkward),
            Outbound::new(Kind::UserMessage, Sender::User, 2)
                .with_session("s")
                .with_user("alice")
                .with_content("")
                .with_files(Some("f\"1"), Some("https://x.test/a b?c=\"d\""))
                .with_models(&models),
            Outbound::new(Kind::ConnectionStatus, Sender::System, 3).with_models(&[]),
            Outbound::error(code::TOO_MANY_REQUESTS, "slow \"down\"", true, 4)
                .with_session("s1")
                .with_retry_after(1500),
            Outbound::error(code::INVALID_FORMAT, "bad\u{0}", false, 5),
        ];
        for frame in &frames {
            assert_eq!(frame.to_json(), by_serde(frame));
        }
    }
}
