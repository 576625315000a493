//! The user's sessions over HTTP (spec/http.md §Routes): list, read, end, share. Each
//! request becomes a [`Call`] on the loop (auth, parameters) and runs on the `store`
//! lane, where [`Call::run`] turns the store's answer into the response.
//!
//! A transcript (`GET P/sessions/:id`, and the public `GET P/shared/:token`) comes a
//! page at a time, so that what one request costs the store, the lane and the
//! connection is bounded whatever the session's length: the newest [`PAGE_DEFAULT`]
//! messages unless `?limit=` asks for up to [`PAGE_MAX`], and `?before=` pages back
//! from the `next_before` of the page before.

use serde::Serialize;

use super::error;
use crate::net::http::{RequestHead, Response};
use crate::store::{Message, Millis, Session, Store, StoreError, Transcript, Window};
use crate::time;

/// `GET P/sessions` answers at most this many, newest first.
pub const LIST_LIMIT: usize = 100;

/// Messages in a transcript page without `?limit=`: a session this short still comes
/// whole, as before paging.
pub const PAGE_DEFAULT: usize = 100;

/// The most `?limit=` may ask for.
pub const PAGE_MAX: usize = 500;

/// The page a transcript request asks for: `?limit=` (1 to [`PAGE_MAX`], default
/// [`PAGE_DEFAULT`]) messages before position `?before=` (default: the newest). A
/// value that is not one of those is refused with a 400 that names the parameter.
pub fn page(head: &RequestHead) -> Result<Window, Response> {
    let limit = match head.query_param("limit") {
        None => PAGE_DEFAULT,
        Some(text) => text
            .parse()
            .ok()
            .filter(|limit| (1..=PAGE_MAX).contains(limit))
            .ok_or_else(|| {
                bad_parameter(&format!("limit must be a number from 1 to {PAGE_MAX}"))
            })?,
    };
    let before = match head.query_param("before") {
        None => None,
        Some(text) => Some(text.parse().map_err(|_| {
            bad_parameter("before must be the next_before of a page: a message position")
        })?),
    };
    Ok(Window { before, limit })
}

fn bad_parameter(message: &str) -> Response {
    error::json_error(400, message)
}

pub enum Call {
    List {
        user_id: String,
    },
    Get {
        user_id: String,
        session_id: String,
        page: Window,
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
        page: Window,
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
                page,
            } => match store.transcript_page(&session_id, page)? {
                Some(t) if t.session.user_id == user_id => {
                    let paging = Paging::of(&t, page);
                    let messages: Vec<_> = t.messages.iter().map(HistoryMessage::of).collect();
                    error::json(
                        200,
                        &serde_json::json!({
                            "session_id": t.session.id,
                            "name": t.session.name,
                            "model_id": t.session.model_id,
                            "messages": messages,
                            "has_more": paging.has_more,
                            "next_before": paging.next_before,
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
            Call::Shared { token, page } => match store.shared(&token, page)? {
                Some(t) => {
                    let paging = Paging::of(&t, page);
                    let messages: Vec<_> = t.messages.iter().map(HistoryMessage::of).collect();
                    error::json(
                        200,
                        &serde_json::json!({
                            "session_id": t.session.id,
                            "name": t.session.name,
                            "messages": messages,
                            "has_more": paging.has_more,
                            "next_before": paging.next_before,
                        }),
                    )
                    .into()
                }
                None => error::json_error(404, "Shared session not found").into(),
            },
        })
    }
}

/// Where a transcript page sits in its session: whether older messages remain, and the
/// `?before=` that asks for them.
pub struct Paging {
    pub has_more: bool,
    pub next_before: Option<u64>,
}

impl Paging {
    pub fn of(transcript: &Transcript, page: Window) -> Paging {
        let first = page.range(transcript.session.message_count).start;
        Paging {
            has_more: first > 0,
            next_before: (first > 0).then_some(first),
        }
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
