//! After a drain: is every message the server acknowledged (`loading`) in its store?
//! The store is read with chatbox's own store code, the embedded redb file once the
//! server has let go of it, or MongoDB.

use std::time::Duration;

use serde::Serialize;

use super::chat::Acked;
use crate::config::{MongoConfig, Secret};
use crate::store::embedded::{Embedded, FILE_NAME};
use crate::store::mongo::Mongo;
use crate::store::{Store, StoreError};

/// Where the store of the server under test is.
pub enum StoreAt {
    /// `DATA_DIR`: the embedded file, readable once the server has exited.
    Dir(std::path::PathBuf),
    Mongo {
        uri: String,
        database: String,
        collection: String,
    },
}

impl StoreAt {
    pub fn kind(&self) -> &'static str {
        match self {
            StoreAt::Dir(_) => "embedded",
            StoreAt::Mongo { .. } => "mongo",
        }
    }

    /// Opens it; the embedded file must exist (opening would create an empty one).
    pub fn open(&self) -> Result<Box<dyn Store>, StoreError> {
        match self {
            StoreAt::Dir(dir) => {
                if !dir.join(FILE_NAME).is_file() {
                    return Err(StoreError::Unavailable(format!(
                        "no {FILE_NAME} in {}",
                        dir.display()
                    )));
                }
                Ok(Box::new(Embedded::open(dir)?))
            }
            StoreAt::Mongo {
                uri,
                database,
                collection,
            } => Ok(Box::new(Mongo::connect(&MongoConfig {
                uri: Secret::new(uri.as_bytes()),
                database: database.clone(),
                collection: collection.clone(),
                connect_timeout: Duration::from_secs(10),
                retry_attempts: 3,
                retry_delay: Duration::from_millis(100),
            })?)),
        }
    }
}

/// Opens the embedded store as soon as the server has let go of it (its lock), within
/// `limit`; MongoDB at once.
pub fn open_when_free(at: &StoreAt, limit: Duration) -> Result<Box<dyn Store>, StoreError> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        match at.open() {
            // Still locked by the exiting server (or not yet written): try again.
            Err(_) if std::time::Instant::now() < deadline && matches!(at, StoreAt::Dir(_)) => {
                std::thread::sleep(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

#[derive(Serialize, Debug, Default)]
pub struct Verdict {
    pub checked: usize,
    pub lost: usize,
    /// Up to ten of the lost ones.
    pub lost_examples: Vec<LostMessage>,
}

#[derive(Serialize, Debug)]
pub struct LostMessage {
    pub session: String,
    pub message_id: Option<String>,
    pub content: String,
}

/// Every acknowledged message, looked up by its id (or, without one, its content) in
/// its session's stored transcript.
pub fn check(store: &dyn Store, acked: &[Acked]) -> Result<Verdict, StoreError> {
    let mut verdict = Verdict::default();
    let mut sessions = std::collections::BTreeMap::<&str, Vec<&Acked>>::new();
    for a in acked {
        sessions.entry(&a.session).or_default().push(a);
    }
    for (session, messages) in sessions {
        let stored = store
            .transcript(session, None)?
            .map(|t| t.messages)
            .unwrap_or_default();
        for a in messages {
            verdict.checked += 1;
            let found = stored.iter().any(|m| match &a.message_id {
                Some(id) => m.id.as_deref() == Some(id),
                None => m.content == a.content,
            });
            if !found {
                verdict.lost += 1;
                if verdict.lost_examples.len() < 10 {
                    verdict.lost_examples.push(LostMessage {
                        session: a.session.clone(),
                        message_id: a.message_id.clone(),
                        content: a.content.clone(),
                    });
                }
            }
        }
    }
    Ok(verdict)
}
