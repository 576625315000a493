//! Outbound frames written as JSON by hand ([`crate::json`]), byte for byte what
//! serde_json writes for [`Outbound`]'s derived `Serialize` (the tests hold the two side
//! by side). Every exchange sends four frames of a dozen strings each.

use super::Outbound;
use crate::json::{member, optional_strings, serialized, string, string_map};
use crate::time;

impl Outbound<'_> {
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(256);
        out.push_str("{\"type\":");
        string(&mut out, self.kind);
        let texts = [
            (member!("session_id"), self.session_id),
            (member!("content"), self.content),
            (member!("file_id"), self.file_id),
            (member!("file_url"), self.file_url),
            (member!("model_id"), self.model_id),
        ];
        optional_strings(&mut out, texts);
        if let Some(models) = self.models {
            out.push_str(member!("models"));
            serialized(&mut out, models);
        }
        if let Some(user_id) = self.user_id {
            out.push_str(member!("user_id"));
            string(&mut out, user_id);
        }
        out.push_str(member!("timestamp"));
        out.push('"');
        time::push_rfc3339_millis(&mut out, self.at);
        out.push('"');
        out.push_str(member!("sender"));
        string(&mut out, self.sender);
        if !self.metadata.is_empty() {
            out.push_str(member!("metadata"));
            string_map(&mut out, self.metadata.iter());
        }
        if let Some(error) = &self.error {
            out.push_str(member!("error"));
            serialized(&mut out, error);
        }
        out.push('}');
        out
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
