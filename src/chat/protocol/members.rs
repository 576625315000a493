//! An inbound frame's members as the JSON holds them, before validation, borrowed from
//! the frame's text unless an escape forces a copy. Read into a `serde_json::Value`, a
//! frame cost a map and a string per member (~10k instructions of a chat exchange).
//!
//! What a `Value` accepted is accepted, and what it refused is refused: the frame must
//! be an object; a member may hold any JSON value, its kind judged afterwards and in
//! the same order as before; a repeated member counts once, the last; and the whole text
//! is read as JSON (the nesting limit, numbers, escapes), ignored members included, which
//! serde's `IgnoredAny` would only skim.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

/// One member, as far as validation tells kinds apart.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) enum Member<'a> {
    /// Not there, or `null`.
    #[default]
    Absent,
    Text(Cow<'a, str>),
    /// A number, a boolean, a list or an object.
    Other,
}

/// The members validation reads; the rest are read and dropped.
#[derive(Debug, Default)]
pub(super) struct Members<'a> {
    pub(super) kind: Member<'a>,
    pub(super) session_id: Member<'a>,
    pub(super) content: Member<'a>,
    pub(super) file_id: Member<'a>,
    pub(super) file_url: Member<'a>,
    pub(super) model_id: Member<'a>,
    pub(super) timestamp: Member<'a>,
    pub(super) sender: Member<'a>,
    /// `Null` when absent. Rarely sent, and its values of every kind are kept (as their
    /// JSON), so it stays a `Value`.
    pub(super) metadata: Value,
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum Key {
    #[serde(rename = "type")]
    Kind,
    SessionId,
    Content,
    FileId,
    FileUrl,
    ModelId,
    Timestamp,
    Sender,
    Metadata,
    #[serde(other)]
    Unknown,
}

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(MembersVisitor)
    }
}

struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Members<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
        let mut members = Members::default();
        while let Some(key) = map.next_key()? {
            let slot = match key {
                Key::Kind => &mut members.kind,
                Key::SessionId => &mut members.session_id,
                Key::Content => &mut members.content,
                Key::FileId => &mut members.file_id,
                Key::FileUrl => &mut members.file_url,
                Key::ModelId => &mut members.model_id,
                Key::Timestamp => &mut members.timestamp,
                Key::Sender => &mut members.sender,
                Key::Metadata => {
                    members.metadata = map.next_value()?;
                    continue;
                }
                Key::Unknown => {
                    map.next_value::<Member>()?;
                    continue;
                }
            };
            *slot = map.next_value()?;
        }
        Ok(members)
    }
}

impl<'de> Deserialize<'de> for Member<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(MemberVisitor)
    }
}

struct MemberVisitor;

impl<'de> Visitor<'de> for MemberVisitor {
    type Value = Member<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Member<'de>, E> {
        Ok(Member::Text(Cow::Borrowed(text)))
    }

    fn visit_str<E>(self, text: &str) -> Result<Member<'de>, E> {
        Ok(Member::Text(Cow::Owned(text.to_owned())))
    }

    fn visit_unit<E>(self) -> Result<Member<'de>, E> {
        Ok(Member::Absent)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Member<'de>, E> {
        Ok(Member::Other)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Member<'de>, E> {
        Ok(Member::Other)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Member<'de>, E> {
        Ok(Member::Other)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Member<'de>, E> {
        Ok(Member::Other)
    }

    /// Read to the end, every element as JSON, and dropped.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Member<'de>, A::Error> {
        while seq.next_element::<Member>()?.is_some() {}
        Ok(Member::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Member<'de>, A::Error> {
        while map.next_entry::<Member, Member>()?.is_some() {}
        Ok(Member::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Option<Members<'_>> {
        serde_json::from_str(text).ok()
    }

    #[test]
    fn text_is_borrowed_unless_escaped_and_the_last_repeat_counts() {
        let members = read(r#"{"type":"ping","content":"a\"b","content":"c","x":[{"y":1}]}"#)
            .expect("an object");
        assert_eq!(members.kind, Member::Text(Cow::Borrowed("ping")));
        assert!(matches!(members.content, Member::Text(Cow::Borrowed("c"))));
        let escaped = read(r#"{"sender":"a\"b"}"#).expect("an object");
        assert!(matches!(escaped.sender, Member::Text(Cow::Owned(ref t)) if t == "a\"b"));
    }

    #[test]
    fn kinds_are_told_apart() {
        let members =
            read(r#"{"type":null,"content":5,"file_id":true,"file_url":[],"model_id":{}}"#)
                .expect("an object");
        assert_eq!(members.kind, Member::Absent);
        for other in [
            members.content,
            members.file_id,
            members.file_url,
            members.model_id,
        ] {
            assert_eq!(other, Member::Other);
        }
        assert_eq!(members.session_id, Member::Absent);
        assert_eq!(members.metadata, Value::Null);
    }

    /// What a `Value` refused, even in a member nobody reads.
    #[test]
    fn what_a_value_refused_is_refused() {
        let deep = format!(r#"{{"x":{}1{}}}"#, "[".repeat(200), "]".repeat(200));
        for text in [
            deep.as_str(),
            r#"{"x":1e999}"#,
            r#"{"x":"\ud800"}"#,
            r#"{"x":[1,]}"#,
            "[1,2]",
            r#"["ping"]"#,
            "null",
            r#"{"type":"ping"} x"#,
        ] {
            let value = serde_json::from_str::<Value>(text);
            assert!(
                !matches!(value, Ok(Value::Object(_))),
                "{text}: a Value took it"
            );
            assert!(read(text).is_none(), "{text} accepted");
        }
        let shallow = format!(r#"{{"x":{}1{}}}"#, "[".repeat(100), "]".repeat(100));
        assert!(read(&shallow).is_some());
    }
}
