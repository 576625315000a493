//! Help requests: the flag stored on the session, the user told, every admin socket
//! alerted, and the admins notified by mail and SMS (a [`Work::Notify`] job), within
//! the help desk's cap; and the escalation of a request nobody answered in time.

use super::frames::Budget;
use super::*;
use crate::chat::jobs::Notice;

const HELP_SENT: &str = "Help request sent. An administrator will join your session shortly.";

impl Chat {
    pub(super) fn help_request(&mut self, socket: SocketId, session_id: &str, now: Now) {
        if !self.within_budget(socket, Some(session_id), Budget::Controls, now) {
            return;
        }
        let Some(live) = self.sessions.get(session_id) else {
            return;
        };
        if !live.stored && live.rare().writing.is_none() {
            // Nothing stored yet to flag; the request still reaches the admins.
            self.help_recorded(socket, session_id, now);
            return;
        }
        let op = StoreOp::SetHelpRequested {
            session_id: session_id.to_owned(),
            at: now.ms,
        };
        let then = AfterWrite::HelpRequested { socket };
        self.write(session_id, Write { op, then }, now);
    }

    /// The flag is stored: the user hears so, the admins are alerted.
    pub(super) fn help_recorded(&mut self, socket: SocketId, session_id: &str, now: Now) {
        let Some(live) = self.sessions.get(session_id) else {
            return;
        };
        let owner = live.owner.clone();
        let assisted = live.rare().assisting.is_some();
        let sent = Outbound::system(Kind::ConnectionStatus, now.ms)
            .with_session(session_id)
            .with_content(HELP_SENT)
            .to_json();
        self.send(socket, sent);
        self.alert(session_id, &owner, false, now);
        if self.help.asked(session_id, &owner, now.at) {
            self.notify(session_id, &owner, false, now);
        }
        if assisted {
            self.help.answered(session_id);
        } else if let Some(after) = self.settings.help_escalation_after {
            self.out.push(Effect::Timer(now.at + after));
        }
    }

    /// Escalates the requests that waited `HELP_ESCALATION_AFTER` (called on tick).
    pub(super) fn escalate(&mut self, now: Now) {
        for (session_id, owner) in self.help.due(now.at) {
            let assisted = self
                .sessions
                .get(session_id.as_str())
                .and_then(|l| l.rare().assisting.as_ref());
            if assisted.is_none() {
                self.alert(&session_id, &owner, true, now);
                self.notify(&session_id, &owner, true, now);
            }
        }
    }

    /// When the help desk next needs a tick.
    pub(super) fn help_deadline(&self) -> Option<Instant> {
        self.help.next_deadline()
    }

    /// A `notification` frame to every admin socket.
    fn alert(&mut self, session_id: &str, owner: &str, escalated: bool, now: Now) {
        let (event, content) = if escalated {
            let content = format!("User {owner} is still waiting for an administrator");
            ("help_escalation", content)
        } else {
            ("help_request", format!("User {owner} requested help"))
        };
        let frame = Outbound::system(Kind::Notification, now.ms)
            .with_session(session_id)
            .with_user(owner)
            .with_content(&content)
            .with_meta("event", event)
            .to_json();
        self.broadcast(Audience::Admins, frame, None);
    }

    /// Mail and SMS to the admins, on the `io` lane; its outcome changes nothing here.
    fn notify(&mut self, session_id: &str, owner: &str, escalated: bool, now: Now) {
        let notice = Notice {
            session_id: session_id.to_owned(),
            user_id: owner.to_owned(),
            at: now.ms,
            escalated,
        };
        self.spawn(Work::Notify(notice), Continuation::Nothing);
    }
}
