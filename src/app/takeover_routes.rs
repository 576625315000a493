//! `POST` and `DELETE P/admin/takeover/:id`: an admin takes a session over or hands it
//! back. The chat core decides (it knows who assists what) and answers with
//! [`Effect::Answer`](crate::chat::engine::Effect::Answer) under the number the request
//! was given here; the answer may come at once or after a store write.

use serde_json::json;

use super::{App, Waiting};
use crate::chat::engine::{Answer, Event};
use crate::chat::jobs::{Asker, Takeover};
use crate::http::error;
use crate::http::router::Route;
use crate::net::handler::{Ctx, Reply};
use crate::net::http::{Method, Request, Response};
use crate::store::AssistingAdmin;

/// A takeover request waiting for the chat core.
pub struct Pending {
    waiting: Waiting,
    session_id: String,
    admin_id: String,
    join: bool,
}

impl App {
    pub(super) fn takeover_route(
        &mut self,
        request: &Request,
        route: Route,
        waiting: Waiting,
        ctx: &mut Ctx,
    ) -> Result<Reply, Response> {
        let head = &request.head;
        // The same door as the admin API's reads: 401, 403, then the admin's own limit.
        let identity = self.admin(head, ctx)?;
        let session_id = route.param(&self.prefix, &head.path).unwrap_or_default();
        let join = head.method == Method::Post;
        let number = self.next_takeover;
        self.next_takeover += 1;
        let pending = Pending {
            waiting,
            session_id: session_id.to_owned(),
            admin_id: identity.user_id.clone(),
            join,
        };
        self.takeovers.insert(number, pending);
        let takeover = Takeover {
            by: Asker::Request(number),
            admin: AssistingAdmin {
                id: identity.user_id,
                name: identity.name,
            },
            session_id: session_id.to_owned(),
            join,
        };
        // An answer given at once is queued on `ctx` like a later one: the loop sends
        // it after this request returns `Later`.
        self.chat_event(Event::Takeover(takeover), ctx);
        Ok(Reply::Later)
    }

    pub(super) fn takeover_answered(&mut self, number: u64, answer: Answer, ctx: &mut Ctx) {
        let Some(pending) = self.takeovers.remove(&number) else {
            return;
        };
        let Pending {
            waiting,
            session_id,
            admin_id,
            join,
        } = pending;
        let response = match answer {
            Answer::Done if join => error::json(
                200,
                &json!({
                    "message": "Takeover initiated successfully",
                    "session_id": session_id,
                    "admin_id": admin_id,
                }),
            ),
            Answer::Done => error::json(
                200,
                &json!({"message": "Session released", "session_id": session_id}),
            ),
            Answer::NotFound => error::json_error(404, "Session not found"),
            Answer::Ended => error::json_error(409, "Session has ended"),
            Answer::Held(name) => error::json_error(
                409,
                &format!("Session is already assisted by administrator {name}"),
            ),
            Answer::Failed => {
                error::json_error(503, "Database operation failed").with_header("Retry-After", "1")
            }
        };
        self.answer(waiting, response, ctx);
    }
}
