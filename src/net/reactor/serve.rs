//! Serving one connection: a pump reads, parses and hands complete input to the
//! handler, carries out what the handler asked for, writes, and decides the
//! connection's fate; then the handler hears of a WebSocket that ended or caught up.
//!
//! `carry_out` is the only place a handler's `Effect` touches a `Conn`, whether it
//! runs inline (answers to the socket being read, see `serve_input`) or from `apply`.

use std::io;
use std::time::Instant;

use super::Reactor;
use crate::metrics::Metrics;
use crate::net::conn::{Conn, Limits, Next, Parsed, Sent};
use crate::net::handler::{Ctx, Effect, Flow, Handler, Reply};
use crate::net::slab::ConnId;
use crate::net::ws::Event;

/// The largest list of effects kept for the next call into the handler.
const SPARE_EFFECTS: usize = 64;

/// What carrying out an effect needs from the loop, borrowed apart from the slab.
struct Turn<'a> {
    now: Instant,
    date: &'a str,
    limits: &'a Limits,
    /// False once the listeners are closed (draining): answers then end the connection.
    keep_alive_allowed: bool,
    metrics: &'a Metrics,
}

impl<H: Handler> Reactor<H> {
    /// Reads, parses and serves one connection, applies what the handler asked for,
    /// then writes and decides the connection's fate.
    pub(super) fn pump(&mut self, id: ConnId) {
        let mut ctx = self.ctx();
        let served = self
            .contained(format_args!("serving connection {id:?}"), |reactor| {
                reactor.serve_input(id, &mut ctx)
            })
            .unwrap_or_else(|| {
                self.fail(id);
                Ok(())
            });
        self.apply(ctx, Some(id));
        let now = self.clock.now;
        let limits = self.settings.limits;
        let Some(conn) = self.slab.get_mut(id) else {
            return;
        };
        let next = served
            .and_then(|()| conn.flush(now))
            .map(|()| conn.settle(now, &limits));
        match next {
            Ok(Next::Keep) => self.arm_timer(id),
            Ok(Next::Yield) => {
                self.queue(id);
                self.arm_timer(id);
            }
            Ok(Next::Close) => self.close(id),
            Err(error) => {
                log::debug!("connection {id:?}: {error}");
                self.close(id);
            }
        }
        self.notice_ws_end(id);
        self.notice_body_aborted(id);
        self.notice_flushed(id);
    }

    /// A streamed body that ended before its last chunk is reported to the handler
    /// once, so that its consumer (a lane job) lets go of it.
    fn notice_body_aborted(&mut self, id: ConnId) {
        let aborted = self
            .slab
            .get_mut(id)
            .is_some_and(|conn| conn.take_body_aborted());
        if aborted {
            let mut ctx = self.ctx();
            // The request is over anyway: a panic here has nothing left to fail.
            self.contained(format_args!("body_aborted({id:?})"), |reactor| {
                reactor.handler.body_aborted(id, &mut ctx)
            });
            self.apply(ctx, None);
        }
    }

    /// Tells the handler a watched socket caught up; what it sends in reply is written
    /// when the connection is pumped again on this turn.
    fn notice_flushed(&mut self, id: ConnId) {
        let flushed = self
            .slab
            .get_mut(id)
            .is_some_and(|conn| conn.take_flushed());
        if flushed {
            let mut ctx = self.ctx();
            let flushed = self.contained(format_args!("ws_flushed({id:?})"), |reactor| {
                reactor.handler.ws_flushed(id, &mut ctx)
            });
            if flushed.is_none() {
                self.fail(id);
                self.queue(id);
            }
            self.apply(ctx, None);
        }
    }

    /// A WebSocket that stopped being one (close handshake, failure, slow consumer) is
    /// reported to the handler once, as soon as it happens.
    fn notice_ws_end(&mut self, id: ConnId) {
        let opened = self.slab.get_mut(id).and_then(|conn| conn.take_ws_ended());
        if let Some(opened) = opened {
            self.metrics.websockets.dec();
            self.metrics
                .websocket_seconds
                .observe(self.clock.now.saturating_duration_since(opened));
            let mut ctx = self.ctx();
            // The socket is ending anyway: a panic here has nothing left to close.
            self.contained(format_args!("ws_closed({id:?})"), |reactor| {
                reactor.handler.ws_closed(id, &mut ctx)
            });
            self.apply(ctx, None);
        }
    }

    /// The input half of `pump`: everything that turns bytes into handler calls.
    fn serve_input(&mut self, id: ConnId, ctx: &mut Ctx) -> io::Result<()> {
        let keep_alive_allowed = !self.lifecycle.listeners_closed();
        let Reactor {
            slab,
            handler,
            scratch,
            settings,
            clock,
            metrics,
            ..
        } = self;
        let Some(conn) = slab.get_mut(id) else {
            return Ok(());
        };
        let (now, date, limits) = (clock.now, clock.http_date.as_str(), &settings.limits);
        let turn = Turn {
            now,
            date,
            limits,
            keep_alive_allowed,
            metrics,
        };
        conn.flush(now)?;
        conn.fill(scratch, now, limits)?;
        loop {
            let info = conn.info();
            if conn.is_websocket() {
                match conn.ws_event() {
                    Event::Message(message) => {
                        metrics.messages_received.inc();
                        handler.ws_message(&info, message, ctx);
                        // Answers to this socket go out before its next frame is read: if
                        // that frame is bad, its close frame must follow them, not drop them.
                        // The rest waits for `apply`, in the order asked.
                        let mut asked = std::mem::take(&mut ctx.effects);
                        for effect in asked.drain(..) {
                            if matches!(&effect, Effect::Send(to, _) if *to == id) {
                                carry_out(conn, effect, &turn);
                            } else {
                                ctx.effects.push(effect);
                            }
                        }
                        // Nothing waits: the emptied list (and its allocation) goes back.
                        if ctx.effects.is_empty() {
                            ctx.effects = asked;
                        }
                    }
                    Event::Control => {}
                    Event::NeedInput | Event::Finished | Event::Failed(_) => return Ok(()),
                }
                continue;
            }
            match conn.parse(now, |head| handler.body_limit(head, &info, ctx)) {
                Parsed::Nothing => return Ok(()),
                // A refusal of a streamed request comes before its body: answered, the
                // connection closes, and the handler hears the body was abandoned.
                Parsed::Request(request) | Parsed::BodyStart(request) => match handler
                    .request(request, &info, ctx)
                {
                    Reply::Now(response) => conn.respond(&response, keep_alive_allowed, date, now),
                    // A complete request's answer is awaited (nothing more parses); a
                    // streamed one's body comes next.
                    Reply::Later => {}
                    Reply::Upgrade { accept, expires_at } => {
                        if conn.upgrade(&accept, expires_at, limits, now) {
                            metrics.websockets.inc();
                        }
                        handler.ws_opened(&info, ctx);
                    }
                },
                Parsed::Chunk(chunk, last) => {
                    if handler.body_chunk(info.id, chunk, last, ctx) == Flow::Pause {
                        conn.pause_body();
                    }
                }
                Parsed::Answer(response) => conn.respond(&response, keep_alive_allowed, date, now),
                Parsed::TooLarge(head_only) => {
                    let response = handler.error_response(413, "Request body too large");
                    conn.reject(&response, head_only, date, now);
                    return Ok(());
                }
                Parsed::Refused(response, head_only) => {
                    conn.reject(&response, head_only, date, now);
                    return Ok(());
                }
                Parsed::Invalid(error) => {
                    let response = handler.error_response(error.status(), error.message());
                    conn.reject(&response, false, date, now);
                    return Ok(());
                }
            }
            if conn.outbound_len() > limits.max_outbound {
                return Ok(());
            }
        }
    }

    /// Schedules a pump on this loop turn; a connection is queued at most once.
    pub(super) fn queue(&mut self, id: ConnId) {
        if let Some(conn) = self.slab.get_mut(id) {
            if conn.enqueue() {
                self.pending.push_back(id);
            }
        }
    }

    /// Carries out the handler's requests. Connections other than `current` (which its
    /// caller flushes) are queued to be pumped on this loop turn.
    pub(super) fn apply(&mut self, ctx: Ctx, current: Option<ConnId>) {
        let keep_alive_allowed = !self.lifecycle.listeners_closed();
        let Reactor {
            slab,
            pending,
            clock,
            settings,
            metrics,
            effects: spare,
            ..
        } = self;
        let turn = Turn {
            now: clock.now,
            date: &clock.http_date,
            limits: &settings.limits,
            keep_alive_allowed,
            metrics,
        };
        let mut effects = ctx.effects;
        for effect in effects.drain(..) {
            let id = effect.conn();
            // An effect for a connection that is gone (or whose slot was reused) is dropped.
            let Some(conn) = slab.get_mut(id) else {
                continue;
            };
            carry_out(conn, effect, &turn);
            if Some(id) != current && conn.enqueue() {
                pending.push_back(id);
            }
        }
        // A broadcast's list is not kept: one to every socket would pin its size.
        if effects.capacity() <= SPARE_EFFECTS {
            *spare = effects;
        }
    }

    /// Removes a connection, telling the handler first if it was a WebSocket.
    pub(super) fn close(&mut self, id: ConnId) {
        if let Some(conn) = self.slab.get_mut(id) {
            conn.start_closing();
        }
        self.notice_ws_end(id);
        self.notice_body_aborted(id);
        if let Some(mut conn) = self.slab.remove(id) {
            let _ = self.poll.registry().deregister(conn.socket_mut());
            let info = conn.info();
            self.forget(info.listener, info.peer.ip());
        }
    }
}

/// Does what one effect asks to its connection: the only place a handler's request
/// touches a `Conn`. A send is counted, or the slow consumer it closes.
fn carry_out(conn: &mut Conn, effect: Effect, turn: &Turn) {
    match effect {
        Effect::Reply(_, response) => {
            conn.respond(&response, turn.keep_alive_allowed, turn.date, turn.now)
        }
        Effect::Send(_, message) => match conn.ws_send(message, turn.limits, turn.now) {
            Sent::Queued => turn.metrics.messages_sent.inc(),
            Sent::SlowConsumer => {
                turn.metrics.slow_consumer_closes.inc();
                log::info!(
                    "connection {:?}: slow consumer, closed with 1013 (over {} queued bytes)",
                    conn.info().id,
                    turn.limits.max_outbound
                );
            }
            Sent::NotOpen => {}
        },
        Effect::Close(_, code, reason) => conn.ws_close(code, &reason, turn.now),
        Effect::WatchFlush(_) => conn.watch_flush(),
        Effect::ResumeBody(_) => conn.resume_body(turn.now),
    }
}
