//! The admin API's reads (spec/http.md §Routes, §GET P/admin/sessions, §GET
//! P/admin/metrics): each request becomes a [`Call`] on the loop, where its query is
//! checked (a bad value is a 400 naming the parameter and what it may be), and runs on
//! the `store` lane, where [`Call::run`] shapes the store's answer. Who may call is
//! decided before, in the app (`admin_routes.rs`).

use serde::Serialize;
use serde_json::json;

use super::error;
use super::sessions::{page, HistoryMessage, Metadata, Paging};
use crate::net::http::{RequestHead, Response};
use crate::store::{AdminQuery, Aggregate, Millis, Order, SortBy, Store, StoreError, Window};
use crate::time;

/// `limit` without one.
pub const LIST_DEFAULT: usize = 100;
/// The largest `limit`.
pub const LIST_MAX: usize = 1000;
/// The longest `user_id` filter.
pub const USER_ID_MAX: usize = 255;
/// The metrics' range without `start_time`: the last day.
pub const METRICS_DEFAULT_SPAN: Millis = 24 * 60 * 60 * 1000;

pub enum Call {
    /// `GET P/admin/sessions`, and `GET P/admin/users/:user_id/sessions` (the same
    /// query with the owner from the path).
    List(AdminQuery),
    /// `GET P/admin/sessions/:id`: any owner's session, a page of its messages.
    Get { session_id: String, page: Window },
    /// `GET P/admin/metrics`.
    Metrics { from: Millis, to: Millis },
}

impl Call {
    /// `GET P/admin/sessions`.
    pub fn list(head: &RequestHead) -> Result<Call, Response> {
        list_query(head).map(Call::List)
    }

    /// `GET P/admin/users/:user_id/sessions`: the owner is the path's, whatever the
    /// query says.
    pub fn user_sessions(head: &RequestHead, user_id: &str) -> Result<Call, Response> {
        let mut query = list_query(head)?;
        query.user_id = Some(user_id.to_owned());
        Ok(Call::List(query))
    }

    pub fn get(head: &RequestHead, session_id: &str) -> Result<Call, Response> {
        Ok(Call::Get {
            session_id: session_id.to_owned(),
            page: page(head)?,
        })
    }

    pub fn metrics(head: &RequestHead, now: Millis) -> Result<Call, Response> {
        let to = time_param(head, "end_time")?.unwrap_or(now);
        let from = time_param(head, "start_time")?
            .unwrap_or_else(|| to.saturating_sub(METRICS_DEFAULT_SPAN));
        if to < from {
            return Err(bad_parameter("end_time must not be before start_time"));
        }
        Ok(Call::Metrics { from, to })
    }

    pub fn run(self, store: &dyn Store, now: Millis) -> Response {
        self.answer(store, now).unwrap_or_else(|error| {
            log::warn!("admin API: store failed: {error}");
            error::json_error(500, "An internal error occurred")
        })
    }

    fn answer(self, store: &dyn Store, now: Millis) -> Result<Response, StoreError> {
        Ok(match self {
            Call::List(query) => {
                let found = store.admin_sessions(&query)?;
                let sessions: Vec<_> = found
                    .sessions
                    .iter()
                    .map(|s| Metadata::of(s, now))
                    .collect();
                error::json(
                    200,
                    &json!({
                        "sessions": sessions,
                        "count": sessions.len(),
                        "limit": query.limit,
                        "offset": query.offset,
                        "total": found.total,
                    }),
                )
            }
            Call::Get { session_id, page } => match store.transcript_page(&session_id, page)? {
                Some(t) => {
                    let paging = Paging::of(&t, page);
                    let messages: Vec<_> = t.messages.iter().map(HistoryMessage::of).collect();
                    error::json(
                        200,
                        &json!({
                            "session_id": t.session.id,
                            "user_id": t.session.user_id,
                            "name": t.session.name,
                            "model_id": t.session.model_id,
                            "session": Metadata::of(&t.session, now),
                            "messages": messages,
                            "has_more": paging.has_more,
                            "next_before": paging.next_before,
                        }),
                    )
                }
                None => error::json_error(404, "Session not found"),
            },
            Call::Metrics { from, to } => {
                let aggregate = store.session_metrics(from, to)?;
                error::json(200, &MetricsBody::of(&aggregate, from, to))
            }
        })
    }
}

/// The listing's query, each parameter checked on its own.
fn list_query(head: &RequestHead) -> Result<AdminQuery, Response> {
    let user_id = match head.query_param("user_id") {
        Some(id) if id.chars().count() > USER_ID_MAX => {
            return Err(bad_parameter(&format!(
                "user_id must be at most {USER_ID_MAX} characters"
            )))
        }
        // An empty value is no filter, as the old service read it.
        Some(id) if id.is_empty() => None,
        other => other,
    };
    let active = choice(head, "status", &[("active", true), ("ended", false)])?;
    let admin_assisted = choice(head, "admin_assisted", &[("true", true), ("false", false)])?;
    let sorts = SortBy::ALL.map(|sort| (sort.name(), sort));
    let sort = choice(head, "sort_by", &sorts)?.unwrap_or(SortBy::StartTime);
    let order = choice(
        head,
        "sort_order",
        &[("asc", Order::Asc), ("desc", Order::Desc)],
    )?
    .unwrap_or(Order::Desc);
    let limit = match head.query_param("limit") {
        None => LIST_DEFAULT,
        Some(text) => text
            .parse()
            .ok()
            .filter(|limit| (1..=LIST_MAX).contains(limit))
            .ok_or_else(|| {
                bad_parameter(&format!("limit must be a number from 1 to {LIST_MAX}"))
            })?,
    };
    let offset = match head.query_param("offset") {
        None => 0,
        Some(text) => text
            .parse()
            .map_err(|_| bad_parameter("offset must be a number, 0 or more"))?,
    };
    let started_from = time_param(head, "start_time_from")?;
    let started_to = time_param(head, "start_time_to")?;
    Ok(AdminQuery {
        user_id,
        active,
        admin_assisted,
        started_from,
        started_to,
        sort,
        order,
        offset,
        limit,
    })
}

/// A parameter that is one of `allowed`; the 400 lists them.
fn choice<T: Copy>(
    head: &RequestHead,
    name: &str,
    allowed: &[(&str, T)],
) -> Result<Option<T>, Response> {
    let Some(text) = head.query_param(name) else {
        return Ok(None);
    };
    match allowed.iter().find(|(value, _)| *value == text) {
        Some((_, chosen)) => Ok(Some(*chosen)),
        None => {
            let names: Vec<&str> = allowed.iter().map(|(value, _)| *value).collect();
            Err(bad_parameter(&format!(
                "Invalid {name}, expected one of: {}",
                names.join(", ")
            )))
        }
    }
}

fn time_param(head: &RequestHead, name: &str) -> Result<Option<Millis>, Response> {
    let Some(text) = head.query_param(name) else {
        return Ok(None);
    };
    // A `+hh:mm` offset sent unescaped arrives as a space (form decoding). Past the
    // date (where a space may stand for the `T`) a space can only have been a `+`.
    let text: String = text
        .char_indices()
        .map(|(at, c)| if c == ' ' && at > 10 { '+' } else { c })
        .collect();
    time::parse_rfc3339(&text).map(Some).ok_or_else(|| {
        bad_parameter(&format!(
            "Invalid {name} format, expected RFC3339 (e.g. 2024-01-31T12:00:00Z)"
        ))
    })
}

fn bad_parameter(message: &str) -> Response {
    error::json_error(400, message)
}

/// spec/http.md §GET P/admin/metrics: the old service's nested shape, which its
/// clients read, and the flat one beside it.
#[derive(Serialize)]
struct MetricsBody {
    metrics: OldMetrics,
    time_range: TimeRange,
    total_sessions: u64,
    active_sessions: u64,
    total_tokens: i64,
    avg_response_time: i64,
    max_response_time: i64,
    admin_assisted_count: u64,
    help_requests: u64,
    messages: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct OldMetrics {
    total_sessions: u64,
    active_sessions: u64,
    total_tokens: i64,
    avg_response_time: i64,
    max_response_time: i64,
    admin_assisted_count: u64,
}

#[derive(Serialize)]
struct TimeRange {
    start: String,
    end: String,
}

impl MetricsBody {
    fn of(a: &Aggregate, from: Millis, to: Millis) -> MetricsBody {
        MetricsBody {
            metrics: OldMetrics {
                total_sessions: a.sessions,
                active_sessions: a.active,
                total_tokens: a.total_tokens,
                avg_response_time: a.avg_resp_ms,
                max_response_time: a.max_resp_ms,
                admin_assisted_count: a.admin_assisted,
            },
            time_range: TimeRange {
                start: time::rfc3339_millis(from),
                end: time::rfc3339_millis(to),
            },
            total_sessions: a.sessions,
            active_sessions: a.active,
            total_tokens: a.total_tokens,
            avg_response_time: a.avg_resp_ms,
            max_response_time: a.max_resp_ms,
            admin_assisted_count: a.admin_assisted,
            help_requests: a.help_requested,
            messages: a.messages,
        }
    }
}

#[cfg(test)]
mod tests;
