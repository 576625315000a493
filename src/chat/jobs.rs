//! Work the chat domain asks for but cannot do itself: store reads and writes, LLM
//! streams. The domain emits a [`Job`]; the application runs it on a lane and feeds the
//! outcome back as a [`JobDone`] event. Store operations are plain data plus one
//! function, [`StoreOp::run`], called on the `store` lane.

use crate::llm::{Finish, LlmError, Turn};
use crate::store::{Append, Message, Millis, Store, StoreError, Transcript};

pub type JobId = u64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    pub id: JobId,
    pub work: Work,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Work {
    Store(StoreOp),
    Llm(LlmCall),
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
}

impl StoreOp {
    pub fn run(&self, store: &dyn Store) -> Result<StoreReply, StoreError> {
        match self {
            StoreOp::Resolve {
                user_id,
                requested: Some(id),
                history,
            } => {
                // Someone else's or an unknown id both mean a fresh session; the caller
                // cannot tell which.
                let found = store.transcript(id, Some(*history))?;
                Ok(StoreReply::Found(
                    found
                        .filter(|t| t.session.user_id == *user_id && t.session.is_active())
                        .map(Box::new),
                ))
            }
            StoreOp::Resolve {
                user_id,
                requested: None,
                history,
            } => match store.latest_active(user_id)? {
                Some(session) => Ok(StoreReply::Found(
                    store.transcript(&session.id, Some(*history))?.map(Box::new),
                )),
                None => Ok(StoreReply::Found(None)),
            },
            StoreOp::Load {
                session_id,
                history,
            } => Ok(StoreReply::Found(
                store.transcript(session_id, Some(*history))?.map(Box::new),
            )),
            StoreOp::SetModel {
                session_id,
                model_id,
                at,
            } => store
                .set_model(session_id, model_id, *at)
                .map(StoreReply::Updated),
            StoreOp::EndIdle { idle_before, at } => {
                store.end_idle(*idle_before, *at).map(StoreReply::Ended)
            }
            StoreOp::Append(op) => store
                .append(&op.as_append())
                .map(|session| StoreReply::Appended(session.message_count)),
        }
    }
}

/// A job's outcome, fed back to the domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobDone {
    Store {
        id: JobId,
        result: Result<StoreReply, StoreError>,
    },
    /// One piece of a streaming reply (possibly several chunks joined by the lane when
    /// the loop was behind).
    Chunk { id: JobId, text: String },
    Finished {
        id: JobId,
        result: Result<Finish, LlmError>,
    },
    /// The job never ran: its lane was full, closed, or the job panicked.
    Refused { id: JobId },
}

impl JobDone {
    pub fn id(&self) -> JobId {
        match self {
            JobDone::Store { id, .. }
            | JobDone::Chunk { id, .. }
            | JobDone::Finished { id, .. }
            | JobDone::Refused { id } => *id,
        }
    }
}
