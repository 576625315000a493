//! The application's side of the loop's door ([`crate::net::handler::Handler`]): each
//! call the reactor makes, routed to the file that owns it. Runs on the loop thread.

use std::time::Instant;

use super::measure;
use super::{App, Done, Waiting};
use crate::chat::engine::{Effect, Event, Now};
use crate::chat::jobs::Outcome;
use crate::http::error;
use crate::net::conn::ConnInfo;
use crate::net::handler::{Body, Ctx, Flow, Handler, Reply};
use crate::net::http::{Request, RequestHead, Response};
use crate::net::slab::ConnId;
use crate::net::ws::Incoming;
use crate::time;

impl Handler for App {
    type Completion = Done;

    fn body_limit(
        &mut self,
        head: &RequestHead,
        conn: &ConnInfo,
        _ctx: &Ctx,
    ) -> Result<Body, Response> {
        let route = self.route(head, conn);
        let admitted = self.admit(head, conn, route).map(|_| self.body_of(route));
        // A refusal here (no route, a wrong method, CORS) is the request's answer, so
        // it is timed like one from `request`: else the empty endpoint never shows.
        if admitted.is_err() {
            let timer = measure::request_timer(conn.listener, route, head.method);
            self.metrics.answered(timer);
        }
        admitted
    }

    fn request(&mut self, request: Request, conn: &ConnInfo, ctx: &mut Ctx) -> Reply {
        let route = self.route(&request.head, conn);
        let timer = measure::request_timer(conn.listener, route, request.head.method);
        let reply = match self.admit(&request.head, conn, route) {
            Ok(origin) => {
                let waiting = Waiting {
                    conn: conn.id,
                    origin,
                    timer,
                };
                self.serve(&request, conn, route, waiting, ctx)
            }
            Err(response) => Reply::Now(response),
        };
        // A deferred answer is timed when it comes back from its lane.
        if !matches!(reply, Reply::Later) {
            self.metrics.answered(timer);
        }
        reply
    }

    fn body_chunk(&mut self, conn: ConnId, chunk: Vec<u8>, last: bool, _ctx: &mut Ctx) -> Flow {
        self.upload_chunk(conn, chunk, last)
    }

    fn body_aborted(&mut self, conn: ConnId, _ctx: &mut Ctx) {
        self.upload_aborted(conn);
    }

    fn ws_opened(&mut self, conn: &ConnInfo, ctx: &mut Ctx) {
        self.socket_opened(conn, ctx);
    }

    fn ws_message(&mut self, conn: &ConnInfo, message: Incoming, ctx: &mut Ctx) {
        self.socket_message(conn, message, ctx);
    }

    fn ws_closed(&mut self, conn: ConnId, ctx: &mut Ctx) {
        self.socket_closed(conn, ctx);
    }

    fn ws_flushed(&mut self, conn: ConnId, ctx: &mut Ctx) {
        self.socket_flushed(conn, ctx);
    }

    fn wake_at(&self) -> Option<Instant> {
        let heartbeat = self.bus.as_ref().and_then(|b| b.presence().heartbeat_due());
        [self.wake_at, self.store_probe.due(), heartbeat]
            .into_iter()
            .flatten()
            .min()
    }

    fn tick(&mut self, ctx: &mut Ctx) {
        self.store_probe.run(&self.lanes, &self.store, ctx.now);
        self.presence_tick(ctx.now);
        if self.wake_at.is_some_and(|at| at <= ctx.now) {
            self.wake_at = None;
            self.public_limiter.cleanup(ctx.now);
            self.rest_limiter.cleanup(ctx.now);
            self.admin_limiter.cleanup(ctx.now);
            self.uploads.cleanup(ctx.now);
            self.chat_event(Event::Tick, ctx);
        }
    }

    fn completion(&mut self, done: Done, ctx: &mut Ctx) {
        match done {
            Done::Reply(waiting, response) => self.answer(waiting, response, ctx),
            Done::Sessions(waiting, outcome) => {
                self.answer(waiting, outcome.response, ctx);
                if let Some(session_id) = outcome.ended {
                    self.chat_event(Event::SessionEnded { session_id }, ctx);
                }
            }
            Done::Job(id, outcome) => {
                if let Some(done) = self.executor.completed(id, outcome) {
                    self.chat_event(Event::JobDone(done), ctx);
                }
            }
            Done::StoreHealth(result) => {
                self.store_probe
                    .answered(result, &mut self.readiness, ctx.now)
            }
            Done::AppendBatch { lost } => {
                self.executor.appends_committed(&self.lanes, lost);
                self.hand_back_answered(ctx);
            }
            Done::Upload(waiting, response) => self.upload_done(waiting, response, ctx),
            Done::UploadResume(conn) => self.upload_resume(conn, ctx),
            Done::ActiveSessions(counted) => {
                match counted {
                    Ok(active) => self.metrics.set_sessions_at_start(active),
                    Err(error) => log::warn!(
                        "cannot count the active sessions ({error}); the gauge starts at zero"
                    ),
                }
                self.wake_at = Some(ctx.now);
            }
            Done::Bus(inbound) => self.bus_brought(inbound, ctx),
        }
    }

    fn error_response(&self, status: u16, message: &str) -> Response {
        error::json_error(status, message)
    }

    fn is_quiet(&self) -> bool {
        self.lanes.is_idle()
    }

    fn finish(&mut self, until: Instant) -> bool {
        if !self.shut_down {
            self.shut_down = true;
            // The loop is gone: effects on sockets have nowhere to go, but the store
            // writes of replies that were stopped must still reach the lane.
            let now = Now {
                at: Instant::now(),
                ms: time::unix_millis_now(),
            };
            let effects = self.chat.handle(Event::Shutdown, now);
            // The other pods' mirrors of the replies stopped here end with them.
            self.tell_other_pods();
            for effect in effects {
                match effect {
                    Effect::Spawn(job) => self.executor.submit(&self.lanes, job),
                    Effect::Cancel(id) => self.executor.cancel(id),
                    // Released now rather than left to expire: another pod may answer
                    // the session at once.
                    Effect::Lease { session_id, take } => self.lease(&session_id, take),
                    _ => {}
                }
            }
            // No completion will start the next batch now: send what waits at once.
            self.executor.flush_appends(&self.lanes);
            // Nobody is left to tell about a refusal but the log.
            let refused = self
                .executor
                .take_answered()
                .into_iter()
                .filter(|done| done.outcome == Outcome::Refused)
                .count();
            if refused > 0 {
                log::error!("shutdown: {refused} store write(s) could not be queued");
            }
        }
        self.lanes.shutdown(until)
    }
}
