//! One reply at a time per session across processes (several pods, `REDIS_URL`;
//! docs/SCALE-OUT.md): before a reply starts here the session's lease is asked for
//! ([`Effect::Lease`]), and the reply starts only once it is granted, or once the
//! lease could not be asked for at all (Redis away: the process then behaves as one
//! pod). Held by another process, the turn waits exactly as behind a reply streaming
//! here: for the mirror of that reply to end, or, when none is mirrored here, for a
//! retry.
//!
//! The lease also tells whether the process streaming a mirrored reply still lives:
//! it renews the lease while the reply streams. A mirror silent for [`PROBE_AFTER`]
//! has its lease asked for; granted, its process is gone (killed), and this one ends
//! the reply in its place, `stopped`, storing what the mirror holds.
//!
//! Asked for only once [`Chat::lease_replies`] was called.

use super::*;
use crate::chat::session::Leasing;

/// A turn the lease was refused for, with no mirror here to say when the other
/// process's reply ends, is asked for again after this long.
const RETRY: Duration = Duration::from_millis(100);
/// A mirrored reply silent this long has its lease asked for (again, while silent).
/// Short beside the lease's TTL: what it bounds is the wait past the TTL.
const PROBE_AFTER: Duration = Duration::from_secs(2);

/// The answer to [`Effect::Lease`] with `take`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseAnswer {
    /// Free (or lapsed): this process holds it now.
    Granted,
    /// This process holds it now, and the one before released it: that one's reply
    /// ended (the news of its end may have been lost).
    Freed,
    /// Another process holds it.
    Held,
    /// Nobody could say: go ahead as a single process.
    Unavailable,
}

impl Chat {
    /// Replies start only under the session's lease from now on (see the module).
    pub fn lease_replies(&mut self) {
        self.leased = true;
    }

    /// A reply is owed for a message from `origin`: it starts now, or once the lease
    /// is settled.
    pub(super) fn begin_turn(&mut self, session_id: &str, origin: SocketId, now: Now) {
        if !self.leased {
            self.start_reply(session_id, origin, now);
            return;
        }
        let Some(live) = self.sessions.get_mut(session_id) else {
            return;
        };
        live.rare_mut().turn_waiting = Some(origin);
        if live.rare().leasing != Some(Leasing::Asked) {
            live.rare_mut().leasing = Some(Leasing::Asked);
            self.ask_lease(session_id, true);
        }
    }

    pub(super) fn leased(&mut self, session_id: &str, answer: LeaseAnswer, now: Now) {
        let holds = matches!(answer, LeaseAnswer::Granted | LeaseAnswer::Freed);
        let Some(live) = self.sessions.get_mut(session_id) else {
            // Left memory meanwhile (ended): nothing will stream under it.
            if holds {
                self.ask_lease(session_id, false);
            }
            return;
        };
        if live.rare().leasing != Some(Leasing::Asked) {
            return;
        }
        if let Some(rare) = live.rare_held() {
            rare.leasing = None;
        }
        // A mirror still heard from streams without the lease (its process went ahead
        // while Redis was away for it): left to end there.
        let heard = live.reply.as_ref().and_then(|r| r.mirror);
        let silent = heard.is_some_and(|heard| heard + PROBE_AFTER <= now.at);
        if silent && answer == LeaseAnswer::Freed {
            // Its process released the lease: the reply ended there, and its end did
            // not reach this process. Stored there; nothing to do here but forget it.
            log::warn!("session {session_id}: the reply mirrored here ended unheard; dropped");
            live.reply = None;
        }
        let mirror = live.reply.is_some() && heard.is_some();
        let free = live.reply.is_none();
        match (holds, answer, live.rare().turn_waiting) {
            (true, _, _) if mirror && silent => self.adopt(session_id, now),
            (true, _, Some(origin)) | (false, LeaseAnswer::Unavailable, Some(origin)) if free => {
                live.rare_mut().turn_waiting = None;
                self.start_reply(session_id, origin, now);
            }
            // The turn is gone (an admin took over, the session ended) or a reply
            // streams here already: not needed.
            (true, _, _) => self.ask_lease(session_id, false),
            // Asked again while the mirror stays silent: its process lives (held), or
            // Redis cannot say (unavailable) yet.
            (false, _, _) if mirror => {
                live.rare_mut().leasing = Some(Leasing::RetryAt(now.at + PROBE_AFTER));
                self.out.push(Effect::Timer(now.at + PROBE_AFTER));
            }
            (false, LeaseAnswer::Held, Some(_)) if free => {
                live.rare_mut().leasing = Some(Leasing::RetryAt(now.at + RETRY));
                self.out.push(Effect::Timer(now.at + RETRY));
            }
            (false, _, _) => {}
        }
        self.evict_if_idle(session_id);
    }

    /// From the tick: asks again for the leases refused a while ago, and for those of
    /// mirrored replies gone silent.
    pub(super) fn lease_due(&mut self, now: Now) {
        if !self.leased {
            return;
        }
        let mut turns = Vec::new();
        let mut probes = Vec::new();
        for live in self.sessions.values_mut() {
            let due = match live.rare().leasing {
                Some(Leasing::Asked) => false,
                Some(Leasing::RetryAt(at)) => at <= now.at,
                None => true,
            };
            if !due {
                continue;
            }
            let heard = live.reply.as_ref().and_then(|r| r.mirror);
            if heard.is_some_and(|heard| heard + PROBE_AFTER <= now.at) {
                live.rare_mut().leasing = Some(Leasing::Asked);
                probes.push(live.id.clone());
                continue;
            }
            if live
                .rare_held()
                .and_then(|rare| rare.leasing.take())
                .is_none()
            {
                continue;
            }
            // A turn that now waits behind a mirror is asked for when the mirror ends.
            match live.rare().turn_waiting {
                Some(origin) if live.reply.is_none() => turns.push((live.id.clone(), origin)),
                _ => {}
            }
        }
        for session_id in probes {
            self.ask_lease(&session_id, true);
        }
        for (session_id, origin) in turns {
            self.begin_turn(&session_id, origin, now);
        }
    }

    /// When [`Chat::lease_due`] has something to do next.
    pub(super) fn lease_deadline(&self) -> Option<Instant> {
        if !self.leased {
            return None;
        }
        self.sessions
            .values()
            .filter_map(|live| match live.rare().leasing {
                Some(Leasing::RetryAt(at)) => Some(at),
                Some(Leasing::Asked) => None,
                None => live.reply.as_ref()?.mirror.map(|heard| heard + PROBE_AFTER),
            })
            .min()
    }

    /// A mirror began here: the tick looks at it once it could have gone silent (and
    /// from then on at the deadlines `lease_deadline` gives).
    pub(super) fn watch_mirror(&mut self, now: Now) {
        if self.leased {
            self.out.push(Effect::Timer(now.at + PROBE_AFTER));
        }
    }

    /// A reply of this process ended: its lease goes back.
    pub(super) fn end_lease(&mut self, session_id: &str) {
        if self.leased {
            self.ask_lease(session_id, false);
        }
    }

    /// The process streaming the mirrored reply no longer renews its lease (it was
    /// killed): this one, holding the lease now, ends the reply as stopped in its
    /// place — the final frame to the sockets here, the end to the other mirrors, what
    /// was streamed stored — and answers a message that waited for it.
    fn adopt(&mut self, session_id: &str, now: Now) {
        let Some(reply) = self
            .sessions
            .get_mut(session_id)
            .and_then(|live| live.reply.take_if(|r| r.mirror.is_some()))
        else {
            return;
        };
        log::warn!(
            "session {session_id}: the pod streaming its reply is gone; storing what it streamed, stopped"
        );
        self.tell_ended(session_id, &reply, Some("stopped"));
        self.conclude(session_id, reply, Some("stopped"), None, now);
        self.next_turn(session_id, now);
    }

    fn ask_lease(&mut self, session_id: &str, take: bool) {
        self.out.push(Effect::Lease {
            session_id: session_id.to_owned(),
            take,
        });
    }
}
