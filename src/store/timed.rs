//! Times every call into a backend, as a wrapper like [`super::sealed::Sealed`]: each
//! backend gets the same `chatbox_mongodb_operation_seconds{operation}` histogram (the
//! old service's name, kept for its dashboards, also for the embedded store) without
//! knowing about metrics. Runs on the `store` lane, where a clock read per call is
//! nothing next to the call. It holds that one family ([`StoreTimings`]), not the
//! registry.

use std::sync::Arc;
use std::time::Instant;

use super::{
    AdminPage, AdminQuery, Aggregate, Append, AssistingAdmin, Millis, Result, Session, Store,
    Transcript, Window,
};
use crate::metrics::StoreTimings;

/// The `operation` label: one value per [`Store`] method (a [`Store::transcript_page`]
/// is a `transcript`, which is one of its windows). A method that is an operation of
/// the old service keeps that service's name, which its dashboards select on (`end` is
/// its `end_session`; the admin list and aggregate are its
/// `list_all_sessions_with_options` and `get_session_metrics`); the rest are named
/// after the method. Its `create_session` has no counterpart: a session is created by
/// its first append, in the same call (and batch) as the message, so that name would
/// time something else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Append,
    AppendBatch,
    Session,
    Transcript,
    LatestActive,
    UserSessions,
    SetModel,
    SetAssist,
    SetHelpRequested,
    End,
    Share,
    Unshare,
    Shared,
    EndIdle,
    CountActive,
    Ping,
    AdminSessions,
    SessionMetrics,
}

impl Operation {
    /// Every operation, in declaration order (`op as usize` indexes it).
    pub const ALL: [Operation; 18] = [
        Operation::Append,
        Operation::AppendBatch,
        Operation::Session,
        Operation::Transcript,
        Operation::LatestActive,
        Operation::UserSessions,
        Operation::SetModel,
        Operation::SetAssist,
        Operation::SetHelpRequested,
        Operation::End,
        Operation::Share,
        Operation::Unshare,
        Operation::Shared,
        Operation::EndIdle,
        Operation::CountActive,
        Operation::Ping,
        Operation::AdminSessions,
        Operation::SessionMetrics,
    ];

    /// The `operation` label value; one of [`StoreTimings::OPERATIONS`], which lists
    /// the values the family shows before anything was timed.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Append => "append",
            Operation::AppendBatch => "append_batch",
            Operation::Session => "session",
            Operation::Transcript => "transcript",
            Operation::LatestActive => "latest_active",
            Operation::UserSessions => "user_sessions",
            Operation::SetModel => "set_model",
            Operation::SetAssist => "set_assist",
            Operation::SetHelpRequested => "set_help_requested",
            Operation::End => "end_session",
            Operation::Share => "share",
            Operation::Unshare => "unshare",
            Operation::Shared => "shared",
            Operation::EndIdle => "end_idle",
            Operation::CountActive => "count_active",
            Operation::Ping => "ping",
            Operation::AdminSessions => "list_all_sessions_with_options",
            Operation::SessionMetrics => "get_session_metrics",
        }
    }
}

pub struct Timed<S> {
    inner: S,
    timings: Arc<StoreTimings>,
}

impl<S: Store> Timed<S> {
    pub fn new(inner: S, timings: Arc<StoreTimings>) -> Timed<S> {
        Timed { inner, timings }
    }

    /// Failed calls are timed too: a backend that fails slowly is what the histogram
    /// is for.
    fn time<T>(&self, operation: Operation, call: impl FnOnce(&S) -> T) -> T {
        let started = Instant::now();
        let result = call(&self.inner);
        self.timings.observe(operation.name(), started.elapsed());
        result
    }
}

impl<S: Store> Store for Timed<S> {
    fn append(&self, append: &Append) -> Result<u64> {
        self.time(Operation::Append, |s| s.append(append))
    }

    fn append_batch(&self, appends: &[Append]) -> Vec<Result<u64>> {
        self.time(Operation::AppendBatch, |s| s.append_batch(appends))
    }

    fn session(&self, id: &str) -> Result<Option<Session>> {
        self.time(Operation::Session, |s| s.session(id))
    }

    fn transcript_page(&self, id: &str, window: Window) -> Result<Option<Transcript>> {
        self.time(Operation::Transcript, |s| s.transcript_page(id, window))
    }

    fn latest_active(&self, user_id: &str) -> Result<Option<Session>> {
        self.time(Operation::LatestActive, |s| s.latest_active(user_id))
    }

    fn user_sessions(&self, user_id: &str, limit: usize) -> Result<Vec<Session>> {
        self.time(Operation::UserSessions, |s| s.user_sessions(user_id, limit))
    }

    fn set_model(&self, id: &str, model_id: &str, at: Millis) -> Result<bool> {
        self.time(Operation::SetModel, |s| s.set_model(id, model_id, at))
    }

    fn set_assist(&self, id: &str, admin: Option<&AssistingAdmin>, at: Millis) -> Result<bool> {
        self.time(Operation::SetAssist, |s| s.set_assist(id, admin, at))
    }

    fn set_help_requested(&self, id: &str, at: Millis) -> Result<bool> {
        self.time(Operation::SetHelpRequested, |s| {
            s.set_help_requested(id, at)
        })
    }

    fn end(&self, id: &str, at: Millis) -> Result<bool> {
        self.time(Operation::End, |s| s.end(id, at))
    }

    fn share(&self, id: &str, candidate: &str, at: Millis) -> Result<Option<String>> {
        self.time(Operation::Share, |s| s.share(id, candidate, at))
    }

    fn unshare(&self, id: &str, at: Millis) -> Result<bool> {
        self.time(Operation::Unshare, |s| s.unshare(id, at))
    }

    fn shared(&self, token: &str, window: Window) -> Result<Option<Transcript>> {
        self.time(Operation::Shared, |s| s.shared(token, window))
    }

    fn end_idle(&self, idle_before: Millis, at: Millis) -> Result<Vec<String>> {
        self.time(Operation::EndIdle, |s| s.end_idle(idle_before, at))
    }

    fn count_active(&self) -> Result<u64> {
        self.time(Operation::CountActive, |s| s.count_active())
    }

    fn ping(&self) -> Result<()> {
        self.time(Operation::Ping, |s| s.ping())
    }

    fn admin_sessions(&self, query: &AdminQuery) -> Result<AdminPage> {
        self.time(Operation::AdminSessions, |s| s.admin_sessions(query))
    }

    fn session_metrics(&self, from: Millis, to: Millis) -> Result<Aggregate> {
        self.time(Operation::SessionMetrics, |s| s.session_metrics(from, to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Metrics, State};
    use crate::store::StoreError;

    /// Answers every call at once; only `count_active` says anything.
    struct Stub;

    impl Store for Stub {
        fn append(&self, _: &Append) -> Result<u64> {
            Err(StoreError::Unavailable("stub".into()))
        }
        fn session(&self, _: &str) -> Result<Option<Session>> {
            Ok(None)
        }
        fn transcript_page(&self, _: &str, _: Window) -> Result<Option<Transcript>> {
            Ok(None)
        }
        fn latest_active(&self, _: &str) -> Result<Option<Session>> {
            Ok(None)
        }
        fn user_sessions(&self, _: &str, _: usize) -> Result<Vec<Session>> {
            Ok(Vec::new())
        }
        fn set_model(&self, _: &str, _: &str, _: Millis) -> Result<bool> {
            Ok(false)
        }
        fn set_assist(&self, _: &str, _: Option<&AssistingAdmin>, _: Millis) -> Result<bool> {
            Ok(false)
        }
        fn set_help_requested(&self, _: &str, _: Millis) -> Result<bool> {
            Ok(false)
        }
        fn end(&self, _: &str, _: Millis) -> Result<bool> {
            Ok(false)
        }
        fn share(&self, _: &str, _: &str, _: Millis) -> Result<Option<String>> {
            Ok(None)
        }
        fn unshare(&self, _: &str, _: Millis) -> Result<bool> {
            Ok(false)
        }
        fn shared(&self, _: &str, _: Window) -> Result<Option<Transcript>> {
            Ok(None)
        }
        fn end_idle(&self, _: Millis, _: Millis) -> Result<Vec<String>> {
            Ok(Vec::new())
        }
        fn count_active(&self) -> Result<u64> {
            Ok(7)
        }
        fn ping(&self) -> Result<()> {
            Ok(())
        }
        fn admin_sessions(&self, _: &AdminQuery) -> Result<AdminPage> {
            Ok(AdminPage {
                sessions: Vec::new(),
                total: 0,
            })
        }
        fn session_metrics(&self, _: Millis, _: Millis) -> Result<Aggregate> {
            Ok(Aggregate::default())
        }
    }

    #[test]
    fn every_call_is_timed_under_its_own_name_and_passed_through() {
        let metrics = Arc::new(Metrics::new(&[]));
        let store = Timed::new(Stub, Arc::clone(metrics.store_timings()));
        assert_eq!(store.count_active(), Ok(7));
        assert_eq!(store.count_active(), Ok(7));
        assert!(store.end("s", 0).is_ok());
        assert!(store.append_batch(&[]).is_empty());

        let scrape = metrics.render(&State::default());
        let count = |op: &str| {
            let line = format!("chatbox_mongodb_operation_seconds_count{{operation=\"{op}\"}} ");
            scrape
                .lines()
                .find_map(|l| l.strip_prefix(&line))
                .unwrap_or_else(|| panic!("{op} is exported:\n{scrape}"))
                .to_owned()
        };
        assert_eq!(count("count_active"), "2");
        assert_eq!(count("end_session"), "1", "the old service's name");
        assert_eq!(count("append_batch"), "1");
        assert_eq!(count("append"), "0", "a batch is one operation");
        for (i, op) in Operation::ALL.iter().enumerate() {
            assert_eq!(*op as usize, i, "ALL is in declaration order");
        }
    }

    #[test]
    fn every_operation_has_a_series_of_its_own() {
        let names = Operation::ALL.map(Operation::name);
        assert_eq!(
            names,
            StoreTimings::OPERATIONS,
            "the store's operations are exactly the family's label values: none goes unrecorded"
        );
    }
}
