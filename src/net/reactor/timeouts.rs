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
            let fired = self
                .slab
                .get_mut(id)
                .is_some_and(|conn| conn.timer_fired(tick));
            if !fired {
                continue;
            }
            let expiry = self.contained(format_args!("deadline of {id:?}"), |reactor| {
                let Reactor {
                    slab,
                    handler,
                    clock,
                    settings,
                    ..
                } = reactor;
                let error_408 = || handler.error_response(408, "Request timed out");
                slab.get_mut(id).map(|conn| {
                    conn.expire(clock.now, &settings.limits, error_408, &clock.http_date)
                })
            });
            match expiry {
                Some(None) => {}
                Some(Some(Expiry::NotYet)) => self.arm_timer(id),
                Some(Some(Expiry::Flush)) => self.pump(id),
                // A deadline whose handling panicked closes its connection as well.
                Some(Some(Expiry::Close)) | None => {
                    log::debug!("connection {id:?}: timed out");
                    self.close(id);
                }
            }
        }
        self.expired = expired;
    }
}
