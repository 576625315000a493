//! An HTTP request from head to answer: its route, CORS and method checks (everything
//! decidable from the head alone, so a refused request never has its body read), the
//! routes answered on the loop (probes, the scrape), and the answers that come back
//! from a lane. The chat's own routes are in `chat_routes.rs`, WebSocket admission in
//! `websocket.rs`.

use std::time::Duration;

use serde_json::json;

use super::{App, Waiting};
use crate::auth::{self, Identity};
use crate::chat::ratelimit::retry_after_ms;
use crate::http::cors::{Cors, Verdict};
use crate::http::error;
use crate::http::metrics::{public_scrape, scrape};
use crate::http::router::Route;
use crate::metrics::process::Process;
use crate::metrics::State;
use crate::net::conn::{ConnInfo, ListenerKind};
use crate::net::handler::{Body, Ctx, Reply};
use crate::net::http::{Request, RequestHead, Response};
use crate::time;

impl App {
    /// How `route` takes its body: uploads stream, everything else is read whole.
    pub(super) fn body_of(&self, route: Route) -> Body {
        match route {
            Route::Upload => Body::Stream(self.uploads.body_limit()),
            route => Body::Whole(route.body_limit()),
        }
    }

    pub(super) fn route(&self, head: &RequestHead, conn: &ConnInfo) -> Route {
        Route::resolve(conn.listener, &self.prefix, &head.path, self.echo_enabled)
    }

    /// CORS applies to browser-facing HTTP routes; WebSockets have their own origin
    /// list, and the internal probe port has none.
    pub(super) fn cors(&self, head: &RequestHead, conn: &ConnInfo, route: Route) -> Verdict {
        match conn.listener {
            ListenerKind::Public if !route.is_websocket() => self.cors.check(head),
            ListenerKind::Public | ListenerKind::Internal => Verdict::Pass,
        }
    }

    /// Everything that can be decided from the head alone; the CORS origin to answer
    /// with when it passes.
    pub(super) fn admit(
        &self,
        head: &RequestHead,
        conn: &ConnInfo,
        route: Route,
    ) -> Result<Option<String>, Response> {
        let origin = match self.cors(head, conn, route) {
            Verdict::Pass => None,
            Verdict::Allowed(origin) => Some(origin),
            Verdict::Preflight(response) => return Err(response),
            Verdict::Forbidden => return Err(Cors::forbidden()),
        };
        let refusal = match (route, route.allows(head.method)) {
            (Route::NotFound, _) => Some(error::not_found()),
            (_, Err(allow)) => Some(error::method_not_allowed(allow)),
            (_, Ok(())) => None,
        };
        match refusal {
            Some(response) => Err(with_origin(response, origin.as_deref())),
            None => Ok(origin),
        }
    }

    /// Serves a request whose route passed [`App::admit`].
    pub(super) fn serve(
        &mut self,
        request: &Request,
        conn: &ConnInfo,
        route: Route,
        waiting: Waiting,
        ctx: &mut Ctx,
    ) -> Reply {
        let origin = waiting.origin.clone();
        let response = match route {
            Route::Healthz => self.healthz.respond(ctx.unix),
            Route::Readyz => self.readiness.respond(ctx.draining, ctx.unix),
            Route::Metrics => match conn.listener {
                ListenerKind::Internal => {
                    scrape(&self.metrics, &self.metrics_allowed, conn.peer.ip(), || {
                        self.state(ctx)
                    })
                }
                ListenerKind::Public => public_scrape(
                    &self.metrics,
                    &self.metrics_allowed,
                    &self.trusted_proxies,
                    conn.peer.ip(),
                    &request.head,
                    || self.state(ctx),
                ),
            },
            Route::Ws | Route::Echo => {
                return match self.admit_socket(&request.head, conn, route, ctx) {
                    Ok(reply) => reply,
                    Err(response) => Reply::Now(response),
                }
            }
            Route::NotFound => error::not_found(),
            Route::Upload => match self.upload_route(request, waiting, ctx) {
                Ok(reply) => return reply,
                Err(response) => response,
            },
            Route::File => {
                let file_id = route
                    .param(&self.prefix, &request.head.path)
                    .unwrap_or_default();
                match self.file_route(request, file_id, waiting, ctx) {
                    Ok(reply) => return reply,
                    Err(response) => response,
                }
            }
            Route::Web => self.web.serve(&request.head),
            Route::AdminTakeover => match self.takeover_route(request, route, waiting, ctx) {
                Ok(reply) => return reply,
                Err(response) => response,
            },
            Route::AdminSessions
            | Route::AdminSession
            | Route::AdminUserSessions
            | Route::AdminMetrics => match self.admin_route(request, route, waiting, ctx) {
                Ok(reply) => return reply,
                Err(response) => response,
            },
            _ => match self.chat_route(request, conn, route, waiting, ctx) {
                Ok(Reply::Now(response)) => response,
                Ok(reply) => return reply,
                Err(response) => response,
            },
        };
        Reply::Now(with_origin(response, origin.as_deref()))
    }

    /// Answers a request that waited for a lane.
    pub(super) fn answer(&self, waiting: Waiting, response: Response, ctx: &mut Ctx) {
        ctx.reply(
            waiting.conn,
            with_origin(response, waiting.origin.as_deref()),
        );
        self.metrics.answered(waiting.timer);
    }

    /// What a scrape shows besides the counters: the loop's state right now.
    pub(super) fn state(&self, ctx: &Ctx) -> State {
        State {
            slots_used: ctx.slots_used,
            slots_total: ctx.slots_total,
            draining: ctx.draining,
            lanes: self.lanes.states(),
            process: Process::read()
                .map_err(|error| log::warn!("cannot read /proc for metrics: {error}"))
                .ok(),
        }
    }

    /// The user behind `Authorization: Bearer`, or the 401 that answers the request.
    pub(super) fn user(&self, head: &RequestHead) -> Result<Identity, Response> {
        let unauthorized =
            |e: auth::AuthError| error::json_error_with_code(401, e.http_code(), e.http_message());
        let header = head
            .header("authorization")
            .ok_or(auth::AuthError::MalformedHeader)
            .map_err(unauthorized)?;
        let token = auth::bearer_token(header).map_err(unauthorized)?;
        self.verifier
            .verify(token, time::unix_now())
            .map_err(|error| {
                log::debug!("HTTP token refused: {error}");
                unauthorized(error)
            })
    }
}

/// spec/http.md: the 429 body of rate-limited HTTP routes.
pub(super) fn too_many_requests(wait: Duration) -> Response {
    let millis = retry_after_ms(wait);
    error::json(
        429,
        &json!({
            "error": "rate_limit_exceeded",
            "message": "Too many requests. Please try again later.",
            "retry_after_ms": millis,
        }),
    )
    .with_header("Retry-After", millis.div_ceil(1000).max(1).to_string())
}

pub(super) fn lane_busy() -> Response {
    error::json_error(503, "Server busy, please retry").with_header("Retry-After", "1")
}

pub(super) fn with_origin(response: Response, origin: Option<&str>) -> Response {
    match origin {
        Some(origin) => Cors::decorate(response, origin),
        None => response,
    }
}
