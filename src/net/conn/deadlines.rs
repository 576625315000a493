//! A connection's deadlines: the earliest moment something must happen if the peer
//! stays silent, what a passed deadline means in each phase, and the one timer-wheel
//! entry that stands for it.
//!
//! The wheel has no cancel (see `net::timers`): the connection remembers the entry it
//! armed last, and a fired entry that is not that one is stale and ignored.

use std::time::Instant;

use super::{Conn, Limits, Phase};
use crate::net::http::Response;
use crate::net::slab::ConnId;
use crate::net::timers::TimerWheel;
use crate::net::ws::{self, Wire};

/// The wheel entry this connection armed last.
#[derive(Clone, Copy, Debug)]
pub(super) struct ArmedTimer {
    /// The tick the wheel will report it with; entries with other ticks are stale.
    tick: u64,
    /// The deadline it stands for.
    at: Instant,
}

/// What a passed deadline means for the connection.
#[derive(Debug, PartialEq, Eq)]
pub(in crate::net) enum Expiry {
    /// Nothing was due (the deadline moved later).
    NotYet,
    /// Something was queued (a ping, a close frame, a 408): flush it.
    Flush,
    Close,
}

impl Conn {
    /// Keeps one wheel entry per connection at its earliest deadline. A deadline that
    /// moved later needs nothing: the earlier entry fires, finds nothing due and re-arms.
    pub fn arm_timer(&mut self, wheel: &mut TimerWheel<ConnId>, limits: &Limits) {
        let Some(deadline) = self.deadline(limits) else {
            return;
        };
        if self.timer.is_some_and(|armed| armed.at <= deadline) {
            return;
        }
        self.timer = Some(ArmedTimer {
            tick: wheel.schedule(deadline, self.info.id),
            at: deadline,
        });
    }

    /// True when the fired wheel entry of `tick` is the one this connection armed last
    /// (which is now gone); false for a stale one.
    pub fn timer_fired(&mut self, tick: u64) -> bool {
        if self.timer.is_some_and(|armed| armed.tick == tick) {
            self.timer = None;
            true
        } else {
            false
        }
    }

    /// The earliest moment something must happen to this connection if the peer stays
    /// silent.
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        let write = (self.outbound_len() > 0).then(|| self.last_progress + limits.write_timeout);
        let read = match &self.phase {
            Phase::Closing { linger_until } => *linger_until,
            Phase::Ws(ws) => [
                Some(ws.next_ping),
                Some(ws.last_heard + limits.pong_wait),
                ws.expires_at,
                ws.close_started.map(|t| t + ws::CLOSE_HANDSHAKE_TIMEOUT),
            ]
            .into_iter()
            .flatten()
            .min(),
            Phase::Http(state) if state.awaiting.is_some() => None,
            // Paused by its consumer: the peer is not the one who is late.
            Phase::Http(state) if state.stream.as_ref().is_some_and(|s| s.paused) => None,
            Phase::Http(state) if state.stream.is_some() => {
                Some(self.last_progress + limits.body_idle_timeout)
            }
            Phase::Http(state) => Some(match (&state.body, state.started) {
                (Some(_), _) => self.last_progress + limits.body_idle_timeout,
                (None, Some(started)) => started + limits.head_timeout,
                // A connection that has never sent a byte is held to the head timeout;
                // after a response, the keep-alive idle timeout applies.
                (None, None) if self.last_progress == self.info.accepted_at => {
                    self.info.accepted_at + limits.head_timeout
                }
                (None, None) => self.last_progress + limits.idle_timeout,
            }),
        };
        match (write, read) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Acts on whatever deadline has passed at `now`.
    pub fn expire(
        &mut self,
        now: Instant,
        limits: &Limits,
        error_408: impl FnOnce() -> Response,
        date: &str,
    ) -> Expiry {
        match self.deadline(limits) {
            None => return Expiry::NotYet,
            Some(deadline) if deadline > now => return Expiry::NotYet,
            Some(_) => {}
        }
        if self.outbound_len() > 0 && self.last_progress + limits.write_timeout <= now {
            return Expiry::Close;
        }
        let Phase::Ws(ws) = &mut self.phase else {
            if matches!(&self.phase, Phase::Http(s) if s.started.is_some()) {
                // Mid-request: tell a slow (not malicious) client why.
                self.reject(&error_408(), false, date, now);
                return Expiry::Flush;
            }
            return Expiry::Close;
        };
        if ws
            .close_started
            .is_some_and(|t| t + ws::CLOSE_HANDSHAKE_TIMEOUT <= now)
            || ws.last_heard + limits.pong_wait <= now
        {
            return Expiry::Close;
        }
        if ws.expires_at.is_some_and(|t| t <= now) {
            ws.expires_at = None;
            self.ws_close(ws::code::POLICY, "token expired", now);
            return Expiry::Flush;
        }
        if ws.next_ping <= now {
            ws.next_ping = now + limits.ping_period;
            if ws.socket.is_open() {
                let mut wire = Wire::new(&[], &mut self.out);
                ws.socket
                    .send(&mut wire, tungstenite::Message::Ping(Default::default()));
            }
            return Expiry::Flush;
        }
        Expiry::NotYet
    }
}
