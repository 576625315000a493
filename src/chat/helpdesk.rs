//! Help requests waiting for an admin: how many notices each session sent lately (at
//! most [`NOTICES_MAX`] per [`NOTICE_WINDOW`], so a user pressing the button cannot
//! flood the admins' mail and phones) and since when it waits (for
//! `HELP_ESCALATION_AFTER`). Kept apart from the sessions in memory: a session is
//! dropped from memory when idle, but its wait for an admin goes on.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Notices per session per [`NOTICE_WINDOW`] (spec/websocket.md, help request).
pub const NOTICES_MAX: usize = 5;
pub const NOTICE_WINDOW: Duration = Duration::from_secs(5 * 60);

struct Asked {
    owner: String,
    /// When the last notices went out, oldest first; at most [`NOTICES_MAX`].
    sent: VecDeque<Instant>,
    /// Since when the session waits for an admin; `None` once one joined or it escalated.
    waiting_since: Option<Instant>,
}

#[derive(Default)]
pub struct HelpDesk {
    asked: HashMap<String, Asked>,
    /// `HELP_ESCALATION_AFTER`: `None`, never escalate.
    escalate_after: Option<Duration>,
}

impl HelpDesk {
    pub fn new(escalate_after: Option<Duration>) -> HelpDesk {
        HelpDesk {
            asked: HashMap::new(),
            escalate_after,
        }
    }

    /// The user of `session_id` asked for help: true when the admins may be notified
    /// (the session is under its cap).
    pub fn asked(&mut self, session_id: &str, owner: &str, now: Instant) -> bool {
        let asked = self
            .asked
            .entry(session_id.to_owned())
            .or_insert_with(|| Asked {
                owner: owner.to_owned(),
                sent: VecDeque::new(),
                waiting_since: None,
            });
        asked.waiting_since.get_or_insert(now);
        while asked
            .sent
            .front()
            .is_some_and(|&at| at + NOTICE_WINDOW <= now)
        {
            asked.sent.pop_front();
        }
        if asked.sent.len() >= NOTICES_MAX {
            return false;
        }
        asked.sent.push_back(now);
        true
    }

    /// An admin joined: the session no longer waits.
    pub fn answered(&mut self, session_id: &str) {
        if let Some(asked) = self.asked.get_mut(session_id) {
            asked.waiting_since = None;
        }
    }

    /// The sessions (and their owners) that have waited `HELP_ESCALATION_AFTER`, each
    /// once; forgets sessions with nothing left to count or wait for.
    pub fn due(&mut self, now: Instant) -> Vec<(String, String)> {
        let mut due = Vec::new();
        let after = self.escalate_after;
        self.asked.retain(|session_id, asked| {
            if let (Some(after), Some(since)) = (after, asked.waiting_since) {
                if since + after <= now {
                    asked.waiting_since = None;
                    due.push((session_id.clone(), asked.owner.clone()));
                }
            }
            let counting = asked
                .sent
                .back()
                .is_some_and(|&at| now < at + NOTICE_WINDOW);
            counting || (after.is_some() && asked.waiting_since.is_some())
        });
        due
    }

    /// When [`HelpDesk::due`] next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let after = self.escalate_after?;
        let waits = self.asked.values().filter_map(|a| a.waiting_since);
        waits.map(|since| since + after).min()
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.asked.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_notices_per_five_minutes() {
        let start = Instant::now();
        let mut desk = HelpDesk::new(None);
        for _ in 0..NOTICES_MAX {
            assert!(desk.asked("s", "ann", start));
        }
        assert!(!desk.asked("s", "ann", start + Duration::from_secs(299)));
        assert!(desk.asked("other", "bob", start), "per session");
        assert!(desk.asked("s", "ann", start + NOTICE_WINDOW));
        assert!(desk.due(start + NOTICE_WINDOW).is_empty(), "no escalation");
        assert_eq!(
            desk.tracked(),
            1,
            "`other` is forgotten once its window passed"
        );
        desk.due(start + NOTICE_WINDOW * 2);
        assert_eq!(desk.tracked(), 0);
    }

    #[test]
    fn escalates_once_unless_an_admin_joined() {
        let start = Instant::now();
        let after = Duration::from_secs(600);
        let mut desk = HelpDesk::new(Some(after));
        desk.asked("s", "ann", start);
        desk.asked("s", "ann", start + Duration::from_secs(60));
        desk.asked("t", "bob", start);
        desk.answered("t");
        assert_eq!(
            desk.next_deadline(),
            Some(start + after),
            "the first ask counts"
        );
        assert!(desk.due(start + after - Duration::from_secs(1)).is_empty());
        let due = desk.due(start + after);
        assert_eq!(due, [("s".to_owned(), "ann".to_owned())]);
        assert!(desk.due(start + after * 2).is_empty(), "once");
        assert_eq!(desk.next_deadline(), None);
    }
}
