//! The reactor's side of connection deadlines: each connection keeps one entry in the
//! loop's timer wheel (see `Conn::arm_timer`), re-armed after every pump; a fired entry
//! is acted on, or ignored when stale.

use super::Reactor;
use crate::net::conn::Expiry;
use crate::net::handler::Handler;
use crate::net::slab::ConnId;

impl<H: Handler> Reactor<H> {
    pub(super) fn arm_timer(&mut self, id: ConnId) {
        if let Some(conn) = self.slab.get_mut(id) {
            conn.arm_timer(&mut self.wheel, &self.settings.limits);
        }
    }

    pub(super) fn expire_timers(&mut self) {
        let mut expired = std::mem::take(&mut self.expired);
        self.wheel.expire(self.clock.now, &mut expired);
        for (tick, id) in expired.drain(..) {
            let Some(conn) = self.slab.get_mut(id) else {
                continue;
            };
            if !conn.timer_fired(tick) {
                continue;
            }
            let handler = &self.handler;
            let error_408 = || handler.error_response(408, "Request timed out");
            match conn.expire(
                self.clock.now,
                &self.settings.limits,
                error_408,
                &self.clock.http_date,
            ) {
                Expiry::NotYet => self.arm_timer(id),
                Expiry::Flush => self.pump(id),
                Expiry::Close => {
                    log::debug!("connection {id:?}: timed out");
                    self.close(id);
                }
            }
        }
        self.expired = expired;
    }
}
