//! The assisting admin, claimed cluster-wide (docs/SCALE-OUT.md, "The assisting admin"):
//! a takeover sets `chatbox:assist:{session_id}` with `SET NX` before it is stored, so
//! that two admins asking on two pods at the same moment cannot both get it. The key
//! only has to outlive that moment: once the first takeover is stored and its news
//! heard, every pod refuses a second admin from memory or from the store, as on one
//! pod. It runs on the store lane (a blocking round trip), never on the loop.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::link;

/// Longer than a takeover takes to be stored and heard by the other pods (the store's
/// write budget included), short enough that a claim left by a pod that died before
/// storing it does not keep the session from other admins for long.
const CLAIM_TTL: Duration = Duration::from_secs(30);
const PREFIX: &str = "chatbox:assist:";

/// What Redis says of a takeover.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// Nobody else claimed the session: go on and store it.
    Granted,
    /// Another admin did, moments ago: their id and name.
    Held { id: String, name: String },
    /// Redis did not answer: memory and the store decide, as on one pod.
    Unknown,
}

/// One connection for the claims, made when first needed and again after a failure.
pub struct Claims {
    client: redis::Client,
    connection: Mutex<Option<redis::Connection>>,
}

impl Claims {
    pub(super) fn new(client: redis::Client) -> Claims {
        Claims {
            client,
            connection: Mutex::new(None),
        }
    }

    /// Claims `session_id` for the admin `id` (named `name`); the same admin again is
    /// granted, and the claim renewed.
    pub fn claim(&self, session_id: &str, id: &str, name: &str) -> Claim {
        let key = format!("{PREFIX}{session_id}");
        let value = format!("{id}\n{name}");
        let ttl = u64::try_from(CLAIM_TTL.as_millis()).unwrap_or(u64::MAX);
        let answer = self.run(|connection| {
            // NX with GET (Redis 7): the holder's value when it is someone's already.
            let held: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(&value)
                .arg("NX")
                .arg("GET")
                .arg("PX")
                .arg(ttl)
                .query(connection)?;
            if held.as_deref().is_some_and(|held| held_by(held).0 == id) {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(&value)
                    .arg("PX")
                    .arg(ttl)
                    .exec(connection)?;
            }
            Ok(held)
        });
        match answer {
            Some(None) => Claim::Granted,
            Some(Some(held)) => match held_by(&held) {
                (holder, _) if holder == id => Claim::Granted,
                (holder, name) => Claim::Held {
                    id: holder.to_owned(),
                    name: name.to_owned(),
                },
            },
            None => Claim::Unknown,
        }
    }

    /// The admin left: the next may claim it at once. A failure only delays the next
    /// admin by the claim's time to live, when Redis is the only one to say so.
    pub fn release(&self, session_id: &str) {
        let key = format!("{PREFIX}{session_id}");
        self.run(|connection| redis::cmd("DEL").arg(&key).exec(connection));
    }

    /// Runs `command` on the connection, made first if needed; `None` when Redis
    /// failed, and the connection is made anew next time.
    fn run<T>(
        &self,
        command: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Option<T> {
        let mut slot = self
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            match link::connect(&self.client) {
                Ok(connection) => *slot = Some(connection),
                Err(error) => {
                    log::debug!("redis: no claim connection ({error})");
                    return None;
                }
            }
        }
        let connection = slot.as_mut()?;
        match command(connection) {
            Ok(answer) => Some(answer),
            Err(error) => {
                log::warn!("redis: a takeover claim failed ({error}); memory and the store decide");
                *slot = None;
                None
            }
        }
    }
}

/// The holder's id and name in a claim's value.
fn held_by(value: &str) -> (&str, &str) {
    value.split_once('\n').unwrap_or((value, ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claims_value_names_its_holder() {
        assert_eq!(held_by("ada\nAdmin Ada"), ("ada", "Admin Ada"));
        assert_eq!(held_by("ada\nline\nbreak"), ("ada", "line\nbreak"));
        assert_eq!(held_by("ada"), ("ada", ""));
    }
}
