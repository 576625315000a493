//! What the admin desk asks of a store (`spec/http.md` §GET P/admin/sessions and
//! §GET P/admin/metrics): a filtered, sorted page of every user's sessions with the
//! number of all matches, and the aggregate of the sessions started in a time range.
//! Both backends answer from their indexes; what the order and the filters mean is
//! defined here once, so that they answer alike.

use std::cmp::Ordering;

use super::{Millis, Session};

/// A filtered, sorted page of sessions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminQuery {
    /// Exactly this owner.
    pub user_id: Option<String>,
    /// `Some(true)`: active only; `Some(false)`: ended only.
    pub active: Option<bool>,
    pub admin_assisted: Option<bool>,
    /// Started at or after, at or before (both inclusive).
    pub started_from: Option<Millis>,
    pub started_to: Option<Millis>,
    pub sort: SortBy,
    pub order: Order,
    pub offset: u64,
    pub limit: usize,
}

impl AdminQuery {
    /// Every session, newest start first, one page of `limit`.
    pub fn all(limit: usize) -> AdminQuery {
        AdminQuery {
            user_id: None,
            active: None,
            admin_assisted: None,
            started_from: None,
            started_to: None,
            sort: SortBy::StartTime,
            order: Order::Desc,
            offset: 0,
            limit,
        }
    }

    /// Whether `session` passes the filters; the order and the page are not checked.
    pub fn matches(&self, session: &Session) -> bool {
        self.user_id.as_ref().is_none_or(|u| *u == session.user_id)
            && self.active.is_none_or(|a| a == session.is_active())
            && self
                .admin_assisted
                .is_none_or(|a| a == session.admin_assisted)
            && self.started_from.is_none_or(|t| session.started_at >= t)
            && self.started_to.is_none_or(|t| session.started_at <= t)
    }

    /// The order of the listing: the sort field in `order`, then the session id in the
    /// same direction, so that sessions with equal values (many have 0 tokens) come in
    /// one order on every backend and every page.
    pub fn compare(&self, a: &Session, b: &Session) -> Ordering {
        let ascending = self.sort.compare(a, b).then_with(|| a.id.cmp(&b.id));
        match self.order {
            Order::Asc => ascending,
            Order::Desc => ascending.reverse(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortBy {
    StartTime,
    /// Active sessions have no end: they come before every ended one in ascending
    /// order (MongoDB's order for a missing field), after them in descending order.
    EndTime,
    MessageCount,
    TotalTokens,
    UserId,
    LastActivity,
}

impl SortBy {
    pub const ALL: [SortBy; 6] = [
        SortBy::StartTime,
        SortBy::EndTime,
        SortBy::MessageCount,
        SortBy::TotalTokens,
        SortBy::UserId,
        SortBy::LastActivity,
    ];

    /// The `sort_by` value of the API.
    pub fn name(self) -> &'static str {
        match self {
            SortBy::StartTime => "start_time",
            SortBy::EndTime => "end_time",
            SortBy::MessageCount => "message_count",
            SortBy::TotalTokens => "total_tokens",
            SortBy::UserId => "user_id",
            SortBy::LastActivity => "last_activity",
        }
    }

    /// Ascending, without the id tie-break.
    fn compare(self, a: &Session, b: &Session) -> Ordering {
        match self {
            SortBy::StartTime => a.started_at.cmp(&b.started_at),
            SortBy::EndTime => a.ended_at.cmp(&b.ended_at),
            SortBy::MessageCount => a.message_count.cmp(&b.message_count),
            SortBy::TotalTokens => a.total_tokens.cmp(&b.total_tokens),
            SortBy::UserId => a.user_id.cmp(&b.user_id),
            SortBy::LastActivity => a.last_activity.cmp(&b.last_activity),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    Asc,
    Desc,
}

/// One page of an [`AdminQuery`] and the number of sessions matching its filters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminPage {
    pub sessions: Vec<Session>,
    pub total: u64,
}

/// The sessions started in a time range, summed (`GET P/admin/metrics`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Aggregate {
    pub sessions: u64,
    pub active: u64,
    pub total_tokens: i64,
    /// Over every reply of those sessions (not an average of averages: a session with
    /// one reply weighs as one reply). 0 without replies.
    pub avg_resp_ms: i64,
    pub max_resp_ms: i64,
    pub admin_assisted: u64,
    pub help_requested: u64,
    pub messages: u64,
}

/// What one session adds to an [`Aggregate`]; `replies` are those behind its average.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sums {
    pub aggregate: Aggregate,
    /// The summed reply times and their count, behind `avg_resp_ms`.
    pub resp_total: i64,
    pub replies: i64,
}

impl Sums {
    /// Adds one session: its average times its replies stands for its reply times
    /// (the stored average is all that MongoDB documents of the old service keep).
    pub fn add(&mut self, facts: SessionFacts) {
        let a = &mut self.aggregate;
        a.sessions += 1;
        a.active += u64::from(facts.active);
        a.total_tokens = a.total_tokens.saturating_add(facts.total_tokens);
        a.max_resp_ms = a.max_resp_ms.max(facts.max_resp_ms);
        a.admin_assisted += u64::from(facts.admin_assisted);
        a.help_requested += u64::from(facts.help_requested);
        a.messages = a.messages.saturating_add(facts.messages);
        self.resp_total = self
            .resp_total
            .saturating_add(facts.avg_resp_ms.saturating_mul(facts.replies));
        self.replies = self.replies.saturating_add(facts.replies);
    }

    pub fn finish(mut self) -> Aggregate {
        self.aggregate.avg_resp_ms = self.resp_total.checked_div(self.replies).unwrap_or(0);
        self.aggregate
    }
}

/// The fields of one session an [`Aggregate`] sums.
#[derive(Clone, Copy, Debug, Default)]
pub struct SessionFacts {
    pub active: bool,
    pub admin_assisted: bool,
    pub help_requested: bool,
    pub total_tokens: i64,
    pub max_resp_ms: i64,
    pub avg_resp_ms: i64,
    pub replies: i64,
    pub messages: u64,
}
