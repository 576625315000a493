//! Work the chat domain asks for but cannot do itself: store reads and writes, LLM
//! streams, notices to admins. Descriptions only: the domain emits a [`Job`] saying
//! what to do and what it will do with the outcome (its [`Continuation`]); the
//! application runs it and hands the continuation back with the outcome, as a
//! [`JobDone`]. So the domain keeps no table of jobs in flight, and nothing here calls
//! a store, a provider or a mail server.

use super::protocol::{Inbound, Kind};
use super::socket::SocketId;
use crate::llm::{Finish, LlmError, Turn};
use crate::store::{Append, AssistingAdmin, Message, Millis, StoreError, Transcript};

pub type JobId = u64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    pub id: JobId,
    pub work: Work,
    pub then: Continuation,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Work {
    Store(StoreOp),
    Llm(LlmCall),
    /// Store writes to run in this order, one at a time, once job `job` (a store write)
    /// has ended: a session's last writes, handed over at shutdown, when no loop is left
    /// to start each one after the one before.
    After {
        job: JobId,
        ops: Vec<StoreOp>,
    },
    Notify(Notice),
    /// Is this external `file_url` https to public addresses only? Answered like a
    /// store update: `Updated(true)` when it is.
    CheckUrl(String),
}

/// Admins to tell about a session that needs one (spec: integrations.md §Notifications).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub session_id: String,
    pub user_id: String,
    pub at: Millis,
    /// `false`: the user asked for help; `true`: nobody joined within `HELP_ESCALATION_AFTER`.
    pub escalated: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LlmCall {
    pub provider_id: String,
    pub turns: Vec<Turn>,
    pub user_id: String,
    pub conversation_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreOp {
    /// The session a new socket starts on: `requested` if given, else the user's latest
    /// active one; with its last `history` messages.
    Resolve {
        user_id: String,
        requested: Option<String>,
        history: usize,
    },
    /// A session a frame named that is not in memory.
    Load {
        session_id: String,
        history: usize,
    },
    Append(AppendOp),
    SetModel {
        session_id: String,
        model_id: String,
        at: Millis,
    },
    EndIdle {
        idle_before: Millis,
        at: Millis,
    },
    /// An admin takes the session over (`Some`) or hands it back (`None`).
    SetAssist {
        session_id: String,
        admin: Option<AssistingAdmin>,
        at: Millis,
    },
    SetHelpRequested {
        session_id: String,
        at: Millis,
    },
}

/// [`crate::store::Append`] with owned fields, to travel to a lane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendOp {
    pub session_id: String,
    pub user_id: String,
    pub name: String,
    pub model_id: String,
    pub message: Box<Message>,
    pub max_messages: usize,
}

impl AppendOp {
    pub fn as_append(&self) -> Append<'_> {
        Append {
            session_id: &self.session_id,
            user_id: &self.user_id,
            name: &self.name,
            model_id: &self.model_id,
            message: &self.message,
            max_messages: self.max_messages,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreReply {
    Found(Option<Box<Transcript>>),
    /// The session's message count after the append.
    Appended(u64),
    Updated(bool),
    Ended(Vec<String>),
    /// A takeover not stored: another admin claimed the session moments ago, on
    /// another process (`bus/claim.rs`).
    Held(AssistingAdmin),
}

/// What the domain does with a job's outcome: the part of its state that waits for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Continuation {
    /// The session a new socket starts on.
    Resolve { socket: SocketId },
    /// A session a frame of `socket` named.
    Load {
        socket: SocketId,
        session_id: String,
    },
    /// One of the session's writes, which run one at a time.
    Write {
        session_id: String,
        then: AfterWrite,
        /// A reply's write, to park if the store fails it (boxed: most writes have none).
        retry: Option<Box<StoreOp>>,
    },
    /// The session's streaming reply.
    Reply { session_id: String },
    /// A session an admin asked to take over or hand back, not in memory.
    Takeover(Box<Takeover>),
    /// A file frame whose external link is being checked.
    FileUrl {
        socket: SocketId,
        session_id: String,
        frame: Box<Inbound>,
    },
    /// The idle sweep.
    Sweep,
    /// A write handed over at shutdown: nothing is left to act on its outcome.
    Nothing,
}

/// What to do once a store write of a session has finished.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AfterWrite {
    /// A user message is stored: acknowledge it and ask the assistant. (Boxed: every
    /// job carries its continuation, and most are small.)
    UserMessage {
        socket: SocketId,
        message: Box<Message>,
        /// The frame it came as, and goes out as.
        kind: Kind,
    },
    /// A reply (complete, stopped or failed) is stored: nothing more to do.
    Reply,
    /// The model choice is stored: tell the session's sockets.
    Model { socket: SocketId, model_id: String },
    /// A takeover or hand-back is stored: tell the session and whoever asked.
    Assist(Box<Takeover>),
    /// The help flag is stored: tell the user and the admins.
    HelpRequested { socket: SocketId },
}

/// An admin taking a session over (`join`) or handing it back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Takeover {
    pub by: Asker,
    pub admin: AssistingAdmin,
    pub session_id: String,
    pub join: bool,
}

/// Who waits for the answer to an admin's request: a socket gets frames, an HTTP
/// request its `Effect::Answer` under the number the application gave it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Asker {
    Socket(SocketId),
    Request(u64),
}

/// A job's outcome, fed back to the domain with the job's continuation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobDone {
    pub id: JobId,
    pub then: Continuation,
    pub outcome: Outcome,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Store(Result<StoreReply, StoreError>),
    /// One piece of a streaming reply (possibly several chunks joined by the lane when
    /// the loop was behind); the job goes on.
    Chunk(String),
    Finished(Result<Finish, LlmError>),
    /// The job never ran or never finished: its lane was full or closed, its batch was
    /// lost, or it panicked.
    Refused,
}
