//! The chat's HTTP routes: the model list (answered on the loop), and the sessions
//! API and shared transcripts, whose store calls run on the `rest` lane (never ahead
//! of the chat's writes on the `store` lane) and come back as [`Done::Sessions`]. Each
//! user's sessions calls are rate limited (`RATE_LIMIT` per `RATE_LIMIT_WINDOW`, an
//! allowance of their own beside the chat messages'), shared transcripts per client IP.

use std::sync::Arc;

use serde_json::json;

use super::requests::{lane_busy, too_many_requests};
use super::{App, Done, Waiting};
use crate::http::client_ip::{client_ip, rate_key};
use crate::http::error;
use crate::http::router::Route;
use crate::http::sessions::Call;
use crate::ids;
use crate::metrics::Limiter;
use crate::net::conn::ConnInfo;
use crate::net::handler::{Ctx, Reply};
use crate::net::http::{Method, Request, Response};
use crate::store::Store;
use crate::time;

impl App {
    /// The HTTP routes of the chat: models, sessions, shared transcripts.
    pub(super) fn chat_route(
        &mut self,
        request: &Request,
        conn: &ConnInfo,
        route: Route,
        waiting: Waiting,
        ctx: &Ctx,
    ) -> Result<Reply, Response> {
        let head = &request.head;
        let param = route.param(&self.prefix, &head.path).map(str::to_owned);
        let call = match route {
            Route::Models => {
                self.user(head)?;
                return Ok(Reply::Now(error::json(
                    200,
                    &json!({"models": self.models, "default": self.default_model}),
                )));
            }
            Route::Shared => {
                let ip = client_ip(
                    conn.peer.ip(),
                    head.header_values("x-forwarded-for"),
                    &self.trusted_proxies,
                );
                if let Err(wait) = self.public_limiter.check(&rate_key(ip), ctx.now) {
                    self.metrics.blocked(Limiter::Message);
                    return Err(too_many_requests(wait));
                }
                Call::Shared {
                    token: param.unwrap_or_default(),
                    page: crate::http::sessions::page(head)?,
                }
            }
            _ => {
                let user_id = self.user(head)?.user_id;
                if let Err(wait) = self.rest_limiter.check(&user_id, ctx.now) {
                    self.metrics.blocked(Limiter::Message);
                    return Err(too_many_requests(wait));
                }
                let session_id = param.unwrap_or_default();
                match (route, head.method) {
                    (Route::Sessions, _) => Call::List { user_id },
                    (Route::Session, _) => Call::Get {
                        user_id,
                        session_id,
                        page: crate::http::sessions::page(head)?,
                    },
                    (Route::SessionEnd, _) => Call::End {
                        user_id,
                        session_id,
                    },
                    (Route::SessionShare, Method::Delete) => Call::Unshare {
                        user_id,
                        session_id,
                    },
                    (Route::SessionShare, _) => Call::Share {
                        user_id,
                        session_id,
                        candidate: ids::random_id(),
                    },
                    _ => return Err(error::not_found()),
                }
            }
        };
        self.on_rest_lane(waiting, move |store, waiting| {
            Done::Sessions(waiting, call.run(store, time::unix_millis_now()))
        })
    }

    /// Runs an HTTP route's store call on the `rest` lane, never the chat's `store` lane:
    /// a client looping on these routes fills its own queue (and gets 503), and a long
    /// admin query holds up no chat write. What `call` returns answers the request.
    pub(super) fn on_rest_lane(
        &self,
        waiting: Waiting,
        call: impl FnOnce(&dyn Store, Waiting) -> Done + Send + 'static,
    ) -> Result<Reply, Response> {
        let store = Arc::clone(&self.store);
        let lost = Done::Reply(
            waiting.clone(),
            error::json_error(500, "An internal error occurred"),
        );
        self.lanes
            .rest
            .try_submit(
                move |job| {
                    let _ = job.complete(call(store.as_ref(), waiting));
                },
                lost,
            )
            .map_err(|_| lane_busy())?;
        Ok(Reply::Later)
    }
}
