//! Channel names and the envelope of a frame on them (docs/SCALE-OUT.md, "Channels and
//! the envelope").

/// Who a frame on the bus is for: the bus's own words for the chat core's audiences, so
/// that the bus knows nothing of the chat.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Topic {
    Session(String),
    User(String),
    Admins,
    /// Every pod's open sockets per user (`presence.rs`), heard by every pod.
    Sockets,
}

const SESSION: &str = "chatbox:s:";
const USER: &str = "chatbox:u:";
const ADMINS: &str = "chatbox:admins";
const SOCKETS: &str = "chatbox:sockets";

impl Topic {
    pub fn channel(&self) -> String {
        match self {
            Topic::Session(id) => format!("{SESSION}{id}"),
            Topic::User(id) => format!("{USER}{id}"),
            Topic::Admins => ADMINS.to_owned(),
            Topic::Sockets => SOCKETS.to_owned(),
        }
    }

    pub fn from_channel(channel: &str) -> Option<Topic> {
        if channel == ADMINS {
            return Some(Topic::Admins);
        }
        if channel == SOCKETS {
            return Some(Topic::Sockets);
        }
        if let Some(id) = channel.strip_prefix(SESSION) {
            return Some(Topic::Session(id.to_owned()));
        }
        channel
            .strip_prefix(USER)
            .map(|id| Topic::User(id.to_owned()))
    }
}

/// What a message on a channel carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Carried {
    /// A frame, exactly as the sockets of the topic get it.
    Frame,
    /// News for the other pods' copy of a session (the application's own format).
    News,
}

impl Carried {
    fn mark(self) -> u8 {
        match self {
            Carried::Frame => b'f',
            Carried::News => b'n',
        }
    }
}

/// `{pod} {f|n}\n{text}`: the pod that published it (which has delivered a frame to its
/// own sockets already and skips its echo), what it carries, and the text.
pub fn envelope(pod: &str, carried: Carried, text: &str) -> Vec<u8> {
    let mut payload = Vec::with_capacity(pod.len() + 3 + text.len());
    payload.extend_from_slice(pod.as_bytes());
    payload.extend_from_slice(&[b' ', carried.mark(), b'\n']);
    payload.extend_from_slice(text.as_bytes());
    payload
}

/// The publishing pod, what it carries and the text; `None` for a payload that is not
/// an envelope or not UTF-8 (nothing of ours publishes one: it is dropped).
pub fn open_envelope(payload: &[u8]) -> Option<(&str, Carried, &str)> {
    let text = std::str::from_utf8(payload).ok()?;
    let (head, text) = text.split_once('\n')?;
    let (pod, mark) = head.split_once(' ')?;
    let carried = [Carried::Frame, Carried::News]
        .into_iter()
        .find(|c| mark.as_bytes() == [c.mark()])?;
    Some((pod, carried, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_name_their_topic_and_back() {
        for topic in [
            Topic::Session("a1".into()),
            Topic::User("u:with:colons".into()),
            Topic::Admins,
            Topic::Sockets,
        ] {
            assert_eq!(Topic::from_channel(&topic.channel()), Some(topic));
        }
        assert_eq!(Topic::from_channel("other:thing"), None);
    }

    #[test]
    fn an_envelope_keeps_its_text_whole() {
        let frame = "{\"content\":\"two\\nlines\"}\nraw";
        for carried in [Carried::Frame, Carried::News] {
            let payload = envelope("pod1", carried, frame);
            assert_eq!(open_envelope(&payload), Some(("pod1", carried, frame)));
        }
        assert_eq!(open_envelope(b"no newline"), None);
        assert_eq!(open_envelope(b"pod1 x\n{}"), None);
        assert_eq!(open_envelope(b"pod1\n{}"), None);
        assert_eq!(open_envelope(b"\xff f\n{}"), None);
    }
}
