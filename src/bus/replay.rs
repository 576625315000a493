//! The reply stream (docs/SCALE-OUT.md, "Resume across pods"): what a pod publishes
//! about the reply streaming there (its start, each chunk, its end) is also appended
//! to `chatbox:reply:{session_id}`, a capped stream that expires `RECONNECT_TIMEOUT`
//! after its last entry. A pod that begins to hold the session reads it right after
//! subscribing to the session's channel, so that the reply so far plus what the
//! channel brings next is the whole reply: an entry is appended before it is published,
//! in one round trip, so none falls between the read and the subscription (one read
//! twice is told apart by its chunk number).

use super::link;

/// The stream keeps about this many entries (`MAXLEN ~`): a reply of more chunks loses
/// its start, and is then not resumed elsewhere (its text is stored all the same).
const STREAM_MAX: u64 = 8192;
/// The entry's one field: the news, as published.
const FIELD: &str = "n";

pub fn key(session_id: &str) -> String {
    format!("chatbox:reply:{session_id}")
}

/// An entry for a session's reply stream.
pub struct Record {
    pub key: String,
    /// A new reply: the previous one's entries go.
    pub fresh: bool,
    pub entry: String,
    pub ttl_ms: u64,
}

impl Record {
    /// Adds the commands that append it to `pipe`, answers ignored: a stream that
    /// misses an entry costs a resume elsewhere its text, never a frame here.
    pub fn append_to(&self, pipe: &mut redis::Pipeline) {
        if self.fresh {
            pipe.cmd("DEL").arg(&self.key).ignore();
        }
        pipe.cmd("XADD")
            .arg(&self.key)
            .arg("MAXLEN")
            .arg("~")
            .arg(STREAM_MAX)
            .arg("*")
            .arg(FIELD)
            .arg(&self.entry)
            .ignore();
        pipe.cmd("PEXPIRE").arg(&self.key).arg(self.ttl_ms).ignore();
    }
}

/// Reads reply streams on a connection of its own (the subscriber's is in pub/sub
/// mode), made when first needed and again after a failure.
pub struct Reader {
    client: redis::Client,
    connection: Option<redis::Connection>,
}

impl Reader {
    pub fn new(client: redis::Client) -> Reader {
        Reader {
            client,
            connection: None,
        }
    }

    /// The session's stream, oldest entry first; empty when there is none or Redis
    /// could not say. A connection idle since before a Redis restart fails its first
    /// command: one failure is tried again on a fresh one.
    pub fn read(&mut self, session_id: &str) -> Vec<String> {
        for _ in 0..2 {
            if self.connection.is_none() {
                self.connection = link::connect(&self.client).ok();
            }
            let Some(connection) = self.connection.as_mut() else {
                return Vec::new();
            };
            let entries = redis::cmd("XRANGE")
                .arg(key(session_id))
                .arg("-")
                .arg("+")
                .query::<Vec<(String, Vec<String>)>>(connection);
            match entries {
                Ok(entries) => return entries.into_iter().filter_map(entry).collect(),
                Err(error) => {
                    log::warn!(
                        "redis: reading session {session_id}'s reply stream failed ({error})"
                    );
                    self.connection = None;
                }
            }
        }
        Vec::new()
    }
}

/// The news an entry holds; `None` for one that is not ours.
fn entry((_, fields): (String, Vec<String>)) -> Option<String> {
    match <[String; 2]>::try_from(fields) {
        Ok([field, news]) if field == FIELD => Some(news),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_entries_of_one_news_field_are_read() {
        let of =
            |fields: &[&str]| entry(("1-0".into(), fields.iter().map(|f| f.to_string()).collect()));
        assert_eq!(of(&["n", "{}"]), Some("{}".to_owned()));
        assert_eq!(of(&["x", "{}"]), None);
        assert_eq!(of(&["n", "{}", "n", "{}"]), None);
        assert_eq!(key("s1"), "chatbox:reply:s1");
    }
}
