//! The application behind the loop: routes requests, owns the worker lanes, and turns
//! lane completions into answers. Everything here runs on the loop thread and must not
//! block; blocking work is submitted to a lane.

use std::time::Instant;

use crate::config::Config;
use crate::http::cors::{Cors, Verdict};
use crate::http::error;
use crate::http::health::{self, Check, Readiness};
use crate::http::router::Route;
use crate::net::conn::{ConnInfo, ListenerKind};
use crate::net::http::{Request, RequestHead, Response};
use crate::net::lanes::{Completions, Lane};
use crate::net::reactor::{Ctx, Handler, Reply};
use crate::net::slab::ConnId;

/// Each lane's queue holds this many jobs before `try_submit` answers busy (spec/config.md).
const LANE_QUEUE: usize = 1024;

/// What lanes send back to the loop.
pub enum Done {
    /// The answer to an HTTP request that was handed to a lane.
    Reply(ConnId, Response),
}

/// Separate lanes so one kind of blocking work cannot starve another.
pub struct Lanes {
    pub store: Lane<Done>,
    pub llm: Lane<Done>,
    pub io: Lane<Done>,
}

impl Lanes {
    pub fn start(config: &Config, completions: &Completions<Done>) -> std::io::Result<Lanes> {
        Ok(Lanes {
            store: Lane::new(
                "store",
                config.store_workers,
                LANE_QUEUE,
                completions.clone(),
            )?,
            llm: Lane::new(
                "llm",
                config.llm_max_concurrent,
                LANE_QUEUE,
                completions.clone(),
            )?,
            io: Lane::new("io", config.io_workers, LANE_QUEUE, completions.clone())?,
        })
    }

    fn all(&self) -> [&Lane<Done>; 3] {
        [&self.store, &self.llm, &self.io]
    }

    pub fn is_idle(&self) -> bool {
        self.all()
            .iter()
            .all(|lane| lane.queue_depth() == 0 && lane.busy_workers() == 0)
    }

    /// Lets queued work (store writes above all) finish, up to `deadline`.
    pub fn shutdown(&mut self, deadline: Instant) -> bool {
        // Every lane is asked, even after one fails to finish in time.
        let joined =
            [&mut self.store, &mut self.llm, &mut self.io].map(|lane| lane.shutdown(deadline));
        joined.iter().all(|&done| done)
    }
}

pub struct App {
    prefix: String,
    cors: Cors,
    readiness: Readiness,
    lanes: Lanes,
}

impl App {
    pub fn new(config: &Config, lanes: Lanes) -> App {
        let mut readiness = Readiness::default();
        readiness.set(
            "llm",
            Check::ready().with("providers_count", config.providers.len()),
        );
        App {
            prefix: config.path_prefix.clone(),
            cors: Cors::new(config.cors_allowed_origins.clone()),
            readiness,
            lanes,
        }
    }

    /// CORS applies to browser-facing routes, not to the internal probe port.
    fn cors(&self, head: &RequestHead, conn: &ConnInfo) -> Verdict {
        match conn.listener {
            ListenerKind::Public => self.cors.check(head),
            ListenerKind::Internal => Verdict::Pass,
        }
    }

    /// Everything that can be decided from the head alone.
    fn admit(
        &self,
        head: &RequestHead,
        conn: &ConnInfo,
    ) -> Result<(Route, Option<String>), Response> {
        let origin = match self.cors(head, conn) {
            Verdict::Pass => None,
            Verdict::Allowed(origin) => Some(origin),
            Verdict::Preflight(response) => return Err(response),
            Verdict::Forbidden => return Err(error::json_error(403, "Origin not allowed")),
        };
        let route = Route::resolve(conn.listener, &self.prefix, &head.path);
        let refusal = match (route, route.allows(head.method)) {
            (Route::NotFound, _) => Some(error::not_found()),
            (_, Err(allow)) => Some(error::method_not_allowed(allow)),
            (_, Ok(())) => None,
        };
        match (refusal, origin) {
            (Some(response), Some(origin)) => Err(Cors::decorate(response, &origin)),
            (Some(response), None) => Err(response),
            (None, origin) => Ok((route, origin)),
        }
    }
}

impl Handler for App {
    type Completion = Done;

    fn body_limit(
        &mut self,
        head: &RequestHead,
        conn: &ConnInfo,
        _ctx: &Ctx,
    ) -> Result<usize, Response> {
        self.admit(head, conn).map(|(route, _)| route.body_limit())
    }

    fn request(&mut self, request: Request, conn: &ConnInfo, ctx: &mut Ctx) -> Reply {
        let (route, origin) = match self.admit(&request.head, conn) {
            Ok(admitted) => admitted,
            Err(response) => return Reply::Now(response),
        };
        let response = match route {
            Route::Healthz => health::healthz(ctx.unix),
            Route::Readyz => self.readiness.respond(ctx.draining, ctx.unix),
            Route::NotFound => error::not_found(),
        };
        Reply::Now(match origin {
            Some(origin) => Cors::decorate(response, &origin),
            None => response,
        })
    }

    fn completion(&mut self, done: Done, ctx: &mut Ctx) {
        match done {
            Done::Reply(conn, response) => ctx.reply(conn, response),
        }
    }

    fn error_response(&self, status: u16, message: &str) -> Response {
        error::json_error(status, message)
    }

    fn is_quiet(&self) -> bool {
        self.lanes.is_idle()
    }

    fn finish(&mut self, until: Instant) -> bool {
        self.lanes.shutdown(until)
    }
}
