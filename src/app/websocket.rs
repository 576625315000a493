//! WebSockets: admission in the spec's order (draining, handshake, token, the per-user
//! limit), and the socket events of an open one. This is where a frame becomes a chat
//! event; echo sockets (`CHATBOX_ECHO`) never reach the chat core.

use std::rc::Rc;

use super::socket::socket_of;
use super::App;
use crate::auth::Identity;
use crate::chat::engine::{Audience, Event};
use crate::chat::hub::{Resume, User};
use crate::chat::id::Id;
use crate::chat::protocol::{code, Kind, Outbound};
use crate::http::router::Route;
use crate::http::upgrade;
use crate::metrics::Limiter;
use crate::net::conn::ConnInfo;
use crate::net::handler::{Ctx, Reply};
use crate::net::http::{RequestHead, Response};
use crate::net::slab::ConnId;
use crate::net::ws::Incoming;
use crate::time;

/// A socket admitted by `request`, opened by the loop right after.
pub(super) enum Upgrading {
    Echo,
    Chat {
        user: User,
        session_id: Option<String>,
        resume: Resume,
    },
}

impl App {
    /// Checks a WebSocket request in the spec's order; the per-user limit counts only
    /// sockets that were actually opened, so a refused upgrade never uses it up, and
    /// with Redis those open on the other pods too (`presence.rs`).
    pub(super) fn admit_socket(
        &mut self,
        head: &RequestHead,
        conn: &ConnInfo,
        route: Route,
        ctx: &mut Ctx,
    ) -> Result<Reply, Response> {
        if ctx.draining {
            return Err(upgrade::unavailable());
        }
        let accept = upgrade::handshake(head, self.ws_allowed_origins.as_deref())?;
        if route == Route::Echo {
            self.upgrading = Some((conn.id, Upgrading::Echo));
            return Ok(Reply::Upgrade {
                accept,
                expires_at: None,
            });
        }
        let identity = upgrade::authenticate(head, &self.verifier, ctx.unix)?;
        let open = self.chat.sockets_of(&identity.user_id).len()
            + self.sockets_elsewhere(&identity.user_id, ctx.now);
        if open >= self.max_sockets_per_user {
            let notice = Outbound::system(Kind::Notification, time::unix_millis_now())
                .with_content("Connection limit reached: a new connection was refused")
                .to_json();
            // Every socket of the user hears it, on whichever pod it is.
            let to = Audience::User(identity.user_id.clone());
            self.fan_out(&to, notice, None, ctx);
            self.metrics.blocked(Limiter::Connection);
            return Err(upgrade::too_many_sockets());
        }
        let expires_at = upgrade::expiry(&identity, ctx.now, ctx.unix);
        let resume = Resume {
            message_id: head.query_param("message_id").filter(|id| !id.is_empty()),
            last_seq: head
                .query_param("last_seq")
                .and_then(|seq| seq.parse().ok()),
        };
        let upgrading = Upgrading::Chat {
            user: user_of(identity),
            session_id: head.query_param("session_id").filter(|id| !id.is_empty()),
            resume,
        };
        self.upgrading = Some((conn.id, upgrading));
        Ok(Reply::Upgrade { accept, expires_at })
    }

    /// A socket the loop has just upgraded: an echo socket, or a chat socket whose
    /// user and requested session `admit_socket` checked.
    pub(super) fn socket_opened(&mut self, conn: &ConnInfo, ctx: &mut Ctx) {
        let Some((_, upgrading)) = self.upgrading.take().filter(|(id, _)| *id == conn.id) else {
            log::error!(
                "connection {:?} opened a WebSocket it was not admitted for",
                conn.id
            );
            return;
        };
        match upgrading {
            Upgrading::Echo => {
                self.echo_sockets.insert(conn.id);
            }
            Upgrading::Chat {
                user,
                session_id,
                resume,
            } => {
                let counted = self.bus.is_some().then(|| user.id.clone());
                let event = Event::Connected {
                    socket: socket_of(conn.id),
                    user,
                    session_id,
                    resume,
                };
                self.chat_event(event, ctx);
                if let Some(user_id) = counted {
                    self.sockets_changed(&user_id);
                }
            }
        }
    }

    /// Where a frame becomes a chat event (echo sockets just echo; binary frames are
    /// not part of the chat protocol).
    pub(super) fn socket_message(&mut self, conn: &ConnInfo, message: Incoming, ctx: &mut Ctx) {
        if self.echo_sockets.contains(&conn.id) {
            match message {
                Incoming::Text(text) => ctx.send_text(conn.id, text),
                Incoming::Binary(data) => ctx.send_binary(conn.id, data),
            }
            return;
        }
        match message {
            Incoming::Text(text) => {
                let event = Event::Frame {
                    socket: socket_of(conn.id),
                    text: &text,
                };
                self.chat_event(event, ctx);
            }
            Incoming::Binary(_) => {
                let frame = Outbound::error(
                    code::INVALID_FORMAT,
                    "Invalid message format",
                    true,
                    time::unix_millis_now(),
                )
                .to_json();
                ctx.send_text(conn.id, frame);
            }
        }
    }

    pub(super) fn socket_closed(&mut self, conn: ConnId, ctx: &mut Ctx) {
        if !self.echo_sockets.remove(&conn) {
            let socket = socket_of(conn);
            let counted = self.counted_user(socket);
            self.chat_event(Event::Closed { socket }, ctx);
            if let Some(user_id) = counted {
                self.sockets_changed(&user_id);
            }
        }
    }

    pub(super) fn socket_flushed(&mut self, conn: ConnId, ctx: &mut Ctx) {
        let socket = socket_of(conn);
        self.chat_event(Event::Flushed { socket }, ctx);
    }
}

/// The user as the chat core keeps it: a name that is the id (no `name` claim) shares
/// its allocation.
fn user_of(identity: Identity) -> User {
    let admin = identity.is_admin();
    let id = Id::from(identity.user_id);
    let name = match identity.name == *id {
        true => Rc::clone(&id),
        false => identity.name.into(),
    };
    User { id, name, admin }
}
