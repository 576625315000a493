//! Where sessions and messages live. [`Store`] is a small synchronous interface: it is
//! only ever called on the `store` lane, never on the event loop. Two backends implement
//! it and pass the same conformance suite (`tests/store_suite/`): the embedded redb
//! file (the default) and MongoDB (production).
//!
//! Values cross this interface in plaintext; [`sealed::Sealed`] wraps any backend and
//! encrypts message content (and, optionally, the other free-text fields) on the way in.
//! [`timed::Timed`] wraps every backend and times its calls.

pub mod admin;
pub mod embedded;
pub mod mongo;
pub mod sealed;
pub mod timed;

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use crate::config::StoreConfig;
use crate::crypto::Cipher;
use crate::metrics::StoreTimings;

pub use admin::{AdminPage, AdminQuery, Aggregate, Order, SortBy};

/// The store the settings ask for: MongoDB when `MONGO_URI` is set, else the embedded
/// file in `DATA_DIR`; timed by [`timed::Timed`] and wrapped in [`sealed::Sealed`] when
/// `ENCRYPTION_KEY` is set.
pub fn open(config: &StoreConfig, timings: &Arc<StoreTimings>) -> Result<Arc<dyn Store>> {
    if let Some(settings) = &config.mongo {
        let store = mongo::Mongo::connect(settings)?;
        log::info!(
            "store: mongodb, collection {}.{}",
            settings.database,
            settings.collection
        );
        return Ok(wrap(store, config, timings));
    }
    let store = embedded::Embedded::open(&config.data_dir)?;
    log::info!(
        "store: embedded, {}",
        config.data_dir.join(embedded::FILE_NAME).display()
    );
    Ok(wrap(store, config, timings))
}

/// Generic so that every backend is wrapped the same way. The timing goes inside the
/// seal: it measures the backend, not the encryption.
fn wrap<S: Store + 'static>(
    store: S,
    config: &StoreConfig,
    timings: &Arc<StoreTimings>,
) -> Arc<dyn Store> {
    let store = timed::Timed::new(store, Arc::clone(timings));
    match &config.encryption_key {
        Some(key) => Arc::new(sealed::Sealed::new(
            store,
            Cipher::new(key),
            config.encrypt_all_fields,
        )),
        None => {
            log::warn!("ENCRYPTION_KEY is not set: message content is stored unencrypted");
            Arc::new(store)
        }
    }
}

/// Milliseconds since the Unix epoch: the resolution of a BSON date.
pub type Millis = i64;

/// The most message bytes one session may hold, as each backend stores them (BSON for
/// MongoDB, the JSON row for redb; sealed content counts at its sealed size). MongoDB
/// refuses a document over 16 MiB, and the message cap alone does not keep a session
/// under it (5,000 messages of 10 KB are 50 MB): 12 MiB leaves room for the session's
/// own fields and the per-message BSON framing of 5,000 messages. The embedded store
/// keeps the same budget, so that its sessions fit MongoDB too and both answer alike.
pub const SESSION_BYTES: u64 = 12 * 1024 * 1024;

/// How far past [`SESSION_BYTES`] an assistant's reply may go. A reply is owed to a user
/// message the budget admitted and has been read by the time it is stored, so it is
/// stored even when it does not fit; the budget refuses the user's next message
/// instead. Two replies at most can be owed at once (one streaming, one waiting behind
/// it), and the chat core ends a reply at [`REPLY_BYTES_MAX`], so 12 + 2 × 1 MiB of
/// messages still leave MongoDB's 16 MiB with room for the document's framing.
pub const REPLY_BYTES_HEADROOM: u64 = 2 * REPLY_BYTES_MAX;

/// The longest reply the chat core stores, in bytes of text.
pub const REPLY_BYTES_MAX: u64 = 1024 * 1024;

/// The bytes a session may hold after appending a message from `sender`.
pub fn byte_budget(sender: Sender) -> u64 {
    match sender {
        Sender::Ai => SESSION_BYTES + REPLY_BYTES_HEADROOM,
        Sender::User | Sender::Admin | Sender::System => SESSION_BYTES,
    }
}

/// Which messages of a session a read returns: the `limit` newest of those before
/// position `before` (a message's position is its index in the session, from 0, and
/// never changes: messages are only ever appended). `None` means before the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub before: Option<u64>,
    pub limit: usize,
}

impl Window {
    /// Every message.
    pub const ALL: Window = Window::last(None);

    /// The last `n` messages (all with `None`).
    pub const fn last(n: Option<usize>) -> Window {
        Window {
            before: None,
            limit: match n {
                Some(n) => n,
                None => usize::MAX,
            },
        }
    }

    /// The positions this window selects in a session of `count` messages. A `before`
    /// past the end is the end.
    pub fn range(self, count: u64) -> Range<u64> {
        let end = self.before.map_or(count, |before| before.min(count));
        let limit = u64::try_from(self.limit).unwrap_or(u64::MAX);
        end.saturating_sub(limit)..end
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Sender {
    User,
    Ai,
    Admin,
    System,
}

impl Sender {
    pub fn as_str(self) -> &'static str {
        match self {
            Sender::User => "user",
            Sender::Ai => "ai",
            Sender::Admin => "admin",
            Sender::System => "system",
        }
    }

    pub fn parse(text: &str) -> Option<Sender> {
        match text {
            "user" => Some(Sender::User),
            "ai" => Some(Sender::Ai),
            "admin" => Some(Sender::Admin),
            "system" => Some(Sender::System),
            _ => None,
        }
    }
}

/// One message of a session, as stored (`spec/storage.md` §Message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Absent on messages written by the old service.
    pub id: Option<String>,
    pub content: String,
    pub at: Millis,
    pub sender: Sender,
    pub file_id: Option<String>,
    pub file_url: Option<String>,
    pub meta: BTreeMap<String, String>,
    /// AI replies only: the model that wrote it, its token usage and the time to the
    /// full reply.
    pub model: Option<String>,
    pub tokens: Option<i64>,
    pub resp_ms: Option<i64>,
}

impl Message {
    pub fn new(
        id: impl Into<String>,
        sender: Sender,
        content: impl Into<String>,
        at: Millis,
    ) -> Message {
        Message {
            id: Some(id.into()),
            content: content.into(),
            at,
            sender,
            file_id: None,
            file_url: None,
            meta: BTreeMap::new(),
            model: None,
            tokens: None,
            resp_ms: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssistingAdmin {
    pub id: String,
    pub name: String,
}

/// A session without its messages (`spec/storage.md` §Session document).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub user_id: String,
    pub name: String,
    /// `""` when none was chosen.
    pub model_id: String,
    pub started_at: Millis,
    pub ended_at: Option<Millis>,
    /// Seconds from start to end, set when the session ends.
    pub duration_secs: Option<i64>,
    pub last_activity: Millis,
    pub admin_assisted: bool,
    pub assisting_admin: Option<AssistingAdmin>,
    pub help_requested: bool,
    pub total_tokens: i64,
    pub max_resp_ms: i64,
    pub avg_resp_ms: i64,
    pub share_token: Option<String>,
    pub created_at: Millis,
    pub modified_at: Millis,
    pub message_count: u64,
}

impl Session {
    /// A session as its first message, at `at`, creates it: active, nothing counted yet.
    pub fn new(id: &str, user_id: &str, name: &str, model_id: &str, at: Millis) -> Session {
        Session {
            id: id.to_owned(),
            user_id: user_id.to_owned(),
            name: name.to_owned(),
            model_id: model_id.to_owned(),
            started_at: at,
            ended_at: None,
            duration_secs: None,
            last_activity: at,
            admin_assisted: false,
            assisting_admin: None,
            help_requested: false,
            total_tokens: 0,
            max_resp_ms: 0,
            avg_resp_ms: 0,
            share_token: None,
            created_at: at,
            modified_at: at,
            message_count: 0,
        }
    }

    pub fn is_active(&self) -> bool {
        self.ended_at.is_none()
    }
}

/// A session with (some of) its messages, oldest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transcript {
    pub session: Session,
    pub messages: Vec<Message>,
}

/// Adds one message to a session, creating the session if it does not exist yet
/// (a fresh session is stored on its first message).
#[derive(Clone, Copy, Debug)]
pub struct Append<'a> {
    pub session_id: &'a str,
    /// The session's owner. Appending to a session owned by someone else fails with
    /// [`StoreError::NotOwner`].
    pub user_id: &'a str,
    /// Name and model of a session created by this append; ignored otherwise.
    pub name: &'a str,
    pub model_id: &'a str,
    pub message: &'a Message,
    /// The session's cap (`MAX_MESSAGES_PER_SESSION`): an append that would exceed it,
    /// or [`SESSION_BYTES`], fails with [`StoreError::SessionFull`] and stores nothing.
    pub max_messages: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    NotOwner,
    /// The session holds `MAX_MESSAGES_PER_SESSION` messages or [`SESSION_BYTES`]:
    /// final, the user must start a new chat.
    SessionFull,
    /// The backend cannot be reached or failed; the text is for logs only.
    Unavailable(String),
    /// Stored data that cannot be read back; the text is for logs only.
    Corrupt(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::NotOwner => f.write_str("session belongs to another user"),
            StoreError::SessionFull => f.write_str("session is full"),
            StoreError::Unavailable(detail) => write!(f, "store unavailable: {detail}"),
            StoreError::Corrupt(detail) => write!(f, "stored data unreadable: {detail}"),
        }
    }
}

impl std::error::Error for StoreError {}

pub type Result<T> = std::result::Result<T, StoreError>;

/// The operations chatbox needs from a backend. Every method is blocking and is called
/// from lane threads only; implementations must be safe to call from several at once.
/// Writes to one session arrive in order (the chat core serialises them).
pub trait Store: Send + Sync {
    /// Appends `append.message`, creating the session when it is new. Updates
    /// `lastActivity`, and for an AI message with `resp_ms` the token and response-time
    /// totals (`totalTokens += tokens`, `maxRespTime`, running `avgRespTime` over the
    /// AI messages that carry `resp_ms`). Returns the session's message count after the
    /// append: all the chat core needs, and no session to build (or decrypt) per message.
    fn append(&self, append: &Append) -> Result<u64>;

    /// Appends to several sessions at once, one result per append, in order; the
    /// appends name distinct sessions. A backend that can commit them together (one
    /// transaction, one fsync) should: under load, the chat core sends every append
    /// that queued up while the previous batch committed, so the cost of durability is
    /// paid once per batch instead of once per message. Each append succeeds or fails
    /// on its own, exactly as [`Store::append`] would.
    fn append_batch(&self, appends: &[Append]) -> Vec<Result<u64>> {
        appends.iter().map(|append| self.append(append)).collect()
    }

    fn session(&self, id: &str) -> Result<Option<Session>>;

    /// The session with its last `last` messages (all with `None`).
    fn transcript(&self, id: &str, last: Option<usize>) -> Result<Option<Transcript>> {
        self.transcript_page(id, Window::last(last))
    }

    /// The session with the messages `window` selects, oldest first. The backend reads
    /// only those: what one request costs is bounded by its window, not by the session.
    fn transcript_page(&self, id: &str, window: Window) -> Result<Option<Transcript>>;

    /// The user's active session with the latest `lastActivity`.
    fn latest_active(&self, user_id: &str) -> Result<Option<Session>>;

    /// The user's sessions, newest start first, at most `limit`.
    fn user_sessions(&self, user_id: &str, limit: usize) -> Result<Vec<Session>>;

    /// Stores the session's model; false when the session does not exist.
    fn set_model(&self, id: &str, model_id: &str, at: Millis) -> Result<bool>;

    /// An admin takes the session over (`Some`) or hands it back (`None`).
    /// `adminAssisted` stays true once set; the admin's id and name are kept only while
    /// they assist. False when there is no such session.
    fn set_assist(&self, id: &str, admin: Option<&AssistingAdmin>, at: Millis) -> Result<bool>;

    /// Flags the session as having asked for an admin; false when there is no such session.
    fn set_help_requested(&self, id: &str, at: Millis) -> Result<bool>;

    /// Ends an active session (`endTs`, `dur`); false when unknown or already ended.
    fn end(&self, id: &str, at: Millis) -> Result<bool>;

    /// The session's share token, setting `candidate` when it has none yet; `None`
    /// when the session does not exist.
    fn share(&self, id: &str, candidate: &str, at: Millis) -> Result<Option<String>>;

    /// Removes the share token; false when the session does not exist.
    fn unshare(&self, id: &str, at: Millis) -> Result<bool>;

    /// The shared session with the messages `window` selects, as [`Store::transcript_page`].
    fn shared(&self, token: &str, window: Window) -> Result<Option<Transcript>>;

    /// Ends every active session whose `lastActivity` is before `idle_before`; returns
    /// their ids.
    fn end_idle(&self, idle_before: Millis, at: Millis) -> Result<Vec<String>>;

    fn count_active(&self) -> Result<u64>;

    /// Every user's sessions that pass `query`'s filters: the page it asks for, in its
    /// order ([`AdminQuery::compare`]), and how many match in all. Answered from the
    /// backend's indexes (the admin desk lists a store of any size).
    fn admin_sessions(&self, query: &AdminQuery) -> Result<AdminPage>;

    /// The sessions started from `from` to `to` (both inclusive), summed.
    fn session_metrics(&self, from: Millis, to: Millis) -> Result<Aggregate>;

    /// Cheap liveness check for `/readyz`.
    fn ping(&self) -> Result<()>;
}
