//! The admin API's reads: `GET P/admin/sessions`, `P/admin/sessions/:id`,
//! `P/admin/users/:user_id/sessions` and `P/admin/metrics`. Who may call (a token with
//! an admin role, within the per-admin rate limit) is decided here on the loop; the
//! query runs on the `store` lane ([`crate::http::admin::Call`]).

use super::requests::too_many_requests;
use super::{App, Done, Waiting};
use crate::auth::Identity;
use crate::http::admin::Call;
use crate::http::error;
use crate::http::router::Route;
use crate::metrics::Limiter;
use crate::net::handler::{Ctx, Reply};
use crate::net::http::{Request, RequestHead, Response};
use crate::time;

impl App {
    /// The admin behind the request: 401 without a valid token, 403 without an admin
    /// role, 429 past `ADMIN_RATE_LIMIT` requests in `ADMIN_RATE_WINDOW` (per admin,
    /// so one busy admin panel does not lock the others out).
    pub(super) fn admin(&mut self, head: &RequestHead, ctx: &Ctx) -> Result<Identity, Response> {
        let identity = self.user(head)?;
        if !identity.is_admin() {
            return Err(error::json_error(403, "Insufficient permissions"));
        }
        if let Err(wait) = self.admin_limiter.check(&identity.user_id, ctx.now) {
            self.metrics.blocked(Limiter::Message);
            return Err(too_many_requests(wait));
        }
        Ok(identity)
    }

    pub(super) fn admin_route(
        &mut self,
        request: &Request,
        route: Route,
        waiting: Waiting,
        ctx: &Ctx,
    ) -> Result<Reply, Response> {
        let head = &request.head;
        self.admin(head, ctx)?;
        let param = route.param(&self.prefix, &head.path).unwrap_or_default();
        let call = match route {
            Route::AdminSessions => Call::list(head)?,
            Route::AdminSession => Call::get(head, param)?,
            Route::AdminUserSessions => Call::user_sessions(head, param)?,
            Route::AdminMetrics => Call::metrics(head, time::unix_millis_now())?,
            _ => return Err(error::not_found()),
        };
        self.on_rest_lane(waiting, move |store, waiting| {
            Done::Reply(waiting, call.run(store, time::unix_millis_now()))
        })
    }
}
