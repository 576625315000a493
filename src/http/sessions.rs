//! The user's sessions over HTTP (spec/http.md §Routes): list, read, end, share. Each
//! request becomes a [`Call`] on the loop (auth, parameters) and runs on the `store`
//! lane, where [`Call::run`] turns the store's answer into the response.

use serde::Serialize;

use super::error;
use crate::net::http::Response;
use crate::store::{Message, Millis, Session, Store, StoreError, Transcript};
use crate::time;

/// `GET P/sessions` answers at most this many, newest first.
pub const LIST_LIMIT: usize = 100;

pub enum Call {
    List {
        user_id: String,
    },
    Get {
        user_id: String,
        session_id: String,
    },
    End {
        user_id: String,
        session_id: String,
    },
    Share {
        user_id: String,
        session_id: String,
        /// Used when the session has no token yet; made on the loop so that the lane
        /// job needs no randomness of its own.
        candidate: String,
    },
    Unshare {
        user_id: String,
        session_id: String,
    },
    Shared {
        token: String,
    },
}

/// A lane's answer: the response, and the session the call ended, which the chat core
/// must hear about so that its sockets are told.
pub struct Outcome {
    pub response: Response,
    pub ended: Option<String>,
}

impl From<Response> for Outcome {
    fn from(response: Response) -> Outcome {
        Outcome {
            response,
            ended: None,
        }
    }
}

impl Call {
    pub fn run(self, store: &dyn Store, now: Millis) -> Outcome {
        self.answer(store, now).unwrap_or_else(|error| {
            log::warn!("sessions API: store failed: {error}");
            error::json_error(500, "An internal error occurred").into()
        })
    }

    fn answer(self, store: &dyn Store, now: Millis) -> Result<Outcome, StoreError> {
        Ok(match self {
            Call::List { user_id } => {
                let mut sessions = store.user_sessions(&user_id, LIST_LIMIT + 1)?;
                let truncated = sessions.len() > LIST_LIMIT;
                sessions.truncate(LIST_LIMIT);
                let list: Vec<_> = sessions.iter().map(|s| Metadata::of(s, now)).collect();
                error::json(
                    200,
                    &serde_json::json!({
                        "sessions": list,
                        "user_id": user_id,
                        "count": list.len(),
                        "limit": LIST_LIMIT,
                        "truncated": truncated,
                    }),
                )
                .into()
            }
            Call::Get {
                user_id,
                session_id,
            } => match store.transcript(&session_id, None)? {
                Some(t) if t.session.user_id == user_id => {
                    let messages: Vec<_> = t.messages.iter().map(HistoryMessage::of).collect();
                    error::json(
                        200,
                        &serde_json::json!({
                            "session_id": t.session.id,
                            "name": t.session.name,
                            "model_id": t.session.model_id,
                            "messages": messages,
                        }),
                    )
                    .into()
                }
                _ => session_not_found().into(),
            },
            Call::End {
                user_id,
                session_id,
            } => {
                if !owns(store, &session_id, &user_id)? {
                    return Ok(session_not_found().into());
                }
                let ended = store.end(&session_id, now)?;
                Outcome {
                    response: error::json(200, &serde_json::json!({"status": "ended"})),
                    ended: ended.then_some(session_id),
                }
            }
            Call::Share {
                user_id,
                session_id,
                candidate,
            } => {
                if !owns(store, &session_id, &user_id)? {
                    return Ok(session_not_found().into());
                }
                match store.share(&session_id, &candidate, now)? {
                    Some(token) => {
                        error::json(200, &serde_json::json!({"share_token": token})).into()
                    }
                    None => session_not_found().into(),
                }
            }
            Call::Unshare {
                user_id,
                session_id,
            } => {
                if !owns(store, &session_id, &user_id)? {
                    return Ok(session_not_found().into());
                }
                store.unshare(&session_id, now)?;
                Response::empty(204).into()
            }
            Call::Shared { token } => match store.shared(&token)? {
                Some(Transcript { session, messages }) => {
                    let messages: Vec<_> = messages.iter().map(HistoryMessage::of).collect();
                    error::json(
                        200,
                        &serde_json::json!({
                            "session_id": session.id,
                            "name": session.name,
                            "messages": messages,
                        }),
                    )
                    .into()
                }
                None => error::json_error(404, "Shared session not found").into(),
            },
        })
    }
}

/// Someone else's session answers exactly like a missing one.
fn owns(store: &dyn Store, session_id: &str, user_id: &str) -> Result<bool, StoreError> {
    Ok(store
        .session(session_id)?
        .is_some_and(|s| s.user_id == user_id))
}

fn session_not_found() -> Response {
    error::json_error(404, "Session not found")
}

/// `SessionMetadata` of spec/http.md.
#[derive(Serialize)]
pub struct Metadata<'a> {
    id: &'a str,
    user_id: &'a str,
    name: &'a str,
    last_activity: String,
    message_count: u64,
    admin_assisted: bool,
    start_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_time: Option<String>,
    is_active: bool,
    /// Seconds; for an active session, so far.
    duration: i64,
    total_tokens: i64,
    max_response_time: i64,
    avg_response_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    assisting_admin_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    share_token: Option<&'a str>,
    help_requested: bool,
}

impl<'a> Metadata<'a> {
    pub fn of(session: &'a Session, now: Millis) -> Metadata<'a> {
        let duration = session
            .duration_secs
            .unwrap_or_else(|| (session.ended_at.unwrap_or(now) - session.started_at) / 1000)
            .max(0);
        Metadata {
            id: &session.id,
            user_id: &session.user_id,
            name: &session.name,
            last_activity: time::rfc3339_millis(session.last_activity),
            message_count: session.message_count,
            admin_assisted: session.admin_assisted,
            start_time: time::rfc3339_millis(session.started_at),
            end_time: session.ended_at.map(time::rfc3339_millis),
            is_active: session.is_active(),
            duration,
            total_tokens: session.total_tokens,
            max_response_time: session.max_resp_ms,
            avg_response_time: session.avg_resp_ms,
            assisting_admin_name: session.assisting_admin.as_ref().map(|a| a.name.as_str()),
            share_token: session.share_token.as_deref(),
            help_requested: session.help_requested,
        }
    }
}

/// `Message (history)` of spec/http.md.
#[derive(Serialize)]
pub struct HistoryMessage<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    content: &'a str,
    timestamp: String,
    sender: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_url: Option<&'a str>,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    metadata: &'a std::collections::BTreeMap<String, String>,
}

impl<'a> HistoryMessage<'a> {
    pub fn of(message: &'a Message) -> HistoryMessage<'a> {
        HistoryMessage {
            id: message.id.as_deref(),
            content: &message.content,
            timestamp: time::rfc3339_millis(message.at),
            sender: message.sender.as_str(),
            file_id: message.file_id.as_deref(),
            file_url: message.file_url.as_deref(),
            metadata: &message.meta,
        }
    }
}
