//! The application behind the loop: routes requests, owns the worker lanes, and turns
//! lane completions into answers. Everything here runs on the loop thread and must not
//! block; blocking work is submitted to a lane.

use std::collections::HashMap;
use std::time::Instant;

use crate::auth::Verifier;
use crate::chat::hub::Hub;
use crate::chat::protocol::{self, Outbound};
use crate::config::Config;
use crate::http::cors::{Cors, Verdict};
use crate::http::error;
use crate::http::health::{self, Check, Readiness};
use crate::http::router::Route;
use crate::http::upgrade;
use crate::net::conn::{ConnInfo, ListenerKind};
use crate::net::http::{Request, RequestHead, Response};
use crate::net::lanes::{Completions, Lane};
use crate::net::reactor::{Ctx, Handler, Reply};
use crate::net::slab::ConnId;
use crate::net::ws::Incoming;

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

/// What an open WebSocket is for.
enum Socket {
    Echo,
    /// A chat socket of this user.
    Chat,
}

pub struct App {
    prefix: String,
    echo_enabled: bool,
    cors: Cors,
    ws_allowed_origins: Option<Vec<String>>,
    max_sockets_per_user: usize,
    verifier: Verifier,
    readiness: Readiness,
    lanes: Lanes,
    hub: Hub,
    sockets: HashMap<ConnId, Socket>,
    /// Admitted by `request`, opened by the loop right after: who it will belong to.
    upgrading: Option<(ConnId, Option<String>)>,
}

impl App {
    pub fn new(config: &Config, lanes: Lanes) -> App {
        let mut readiness = Readiness::default();
        readiness.set(
            "llm",
            Check::ready().with("providers_count", config.providers.len()),
        );
        if config.echo_endpoint {
            log::warn!(
                "CHATBOX_ECHO=true: unauthenticated WebSocket echo at {}/echo (for conformance tests and benchmarks, never production)",
                config.path_prefix
            );
        }
        App {
            prefix: config.path_prefix.clone(),
            echo_enabled: config.echo_endpoint,
            cors: Cors::new(config.cors_allowed_origins.clone()),
            ws_allowed_origins: config.ws_allowed_origins.clone(),
            max_sockets_per_user: config.max_connections_per_user,
            verifier: Verifier::new(config.jwt_secret.expose(), config.require_exp),
            readiness,
            lanes,
            hub: Hub::default(),
            sockets: HashMap::new(),
            upgrading: None,
        }
    }

    fn route(&self, head: &RequestHead, conn: &ConnInfo) -> Route {
        Route::resolve(conn.listener, &self.prefix, &head.path, self.echo_enabled)
    }

    /// CORS applies to browser-facing HTTP routes; WebSockets have their own origin
    /// list, and the internal probe port has none.
    fn cors(&self, head: &RequestHead, conn: &ConnInfo, route: Route) -> Verdict {
        match conn.listener {
            ListenerKind::Public if !route.is_websocket() => self.cors.check(head),
            ListenerKind::Public | ListenerKind::Internal => Verdict::Pass,
        }
    }

    /// Everything that can be decided from the head alone.
    fn admit(
        &self,
        head: &RequestHead,
        conn: &ConnInfo,
    ) -> Result<(Route, Option<String>), Response> {
        let route = self.route(head, conn);
        let origin = match self.cors(head, conn, route) {
            Verdict::Pass => None,
            Verdict::Allowed(origin) => Some(origin),
            Verdict::Preflight(response) => return Err(response),
            Verdict::Forbidden => return Err(error::json_error(403, "Origin not allowed")),
        };
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

impl App {
    /// Checks a WebSocket request in the spec's order; the per-user limit counts only
    /// sockets that were actually opened, so a refused upgrade never uses it up.
    fn admit_socket(
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
        let (user, expires_at) = match route {
            Route::Echo => (None, None),
            _ => {
                let identity = upgrade::authenticate(head, &self.verifier, ctx.unix)?;
                let open = self.hub.sockets_of(&identity.user_id);
                if open.len() >= self.max_sockets_per_user {
                    let notice = Outbound::system("notification", ctx.unix)
                        .with_content("Connection limit reached: a new connection was refused")
                        .to_json();
                    for &socket in open {
                        ctx.send_text(socket, notice.clone());
                    }
                    return Err(upgrade::too_many_sockets());
                }
                let expires_at = upgrade::expiry(&identity, ctx.now, ctx.unix);
                (Some(identity.user_id), expires_at)
            }
        };
        self.upgrading = Some((conn.id, user));
        Ok(Reply::Upgrade { accept, expires_at })
    }
}

/// A frame on a chat socket. Only the transport-level `ping` is served at this layer;
/// the conversation types are answered by the chat core.
fn chat_frame(conn: ConnId, message: Incoming, ctx: &mut Ctx) {
    let kind = match message {
        Incoming::Binary(_) => Err("Invalid message format".to_owned()),
        Incoming::Text(text) => protocol::inbound_type(&text),
    };
    let reply = match kind {
        Ok(kind) if kind == "ping" => Outbound::system("pong", ctx.unix),
        Ok(_) => Outbound::error(
            protocol::code::SERVICE_ERROR,
            "Chat is not available on this server yet",
            false,
            ctx.unix,
        ),
        Err(message) => Outbound::error(protocol::code::INVALID_FORMAT, message, true, ctx.unix),
    };
    ctx.send_text(conn, reply.to_json());
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
            Route::Ws | Route::Echo => {
                return match self.admit_socket(&request.head, conn, route, ctx) {
                    Ok(reply) => reply,
                    Err(response) => Reply::Now(response),
                }
            }
            Route::NotFound => error::not_found(),
        };
        Reply::Now(match origin {
            Some(origin) => Cors::decorate(response, &origin),
            None => response,
        })
    }

    fn ws_opened(&mut self, conn: &ConnInfo, _ctx: &mut Ctx) {
        let Some((id, user)) = self.upgrading.take().filter(|(id, _)| *id == conn.id) else {
            log::error!(
                "connection {:?} opened a WebSocket it was not admitted for",
                conn.id
            );
            return;
        };
        let socket = match user {
            Some(user_id) => {
                self.hub.connect(id, &user_id);
                Socket::Chat
            }
            None => Socket::Echo,
        };
        self.sockets.insert(id, socket);
    }

    fn ws_message(&mut self, conn: &ConnInfo, message: Incoming, ctx: &mut Ctx) {
        match self.sockets.get(&conn.id) {
            Some(Socket::Echo) => match message {
                Incoming::Text(text) => ctx.send_text(conn.id, text),
                Incoming::Binary(data) => ctx.send_binary(conn.id, data),
            },
            Some(Socket::Chat) => chat_frame(conn.id, message, ctx),
            None => {}
        }
    }

    fn ws_closed(&mut self, conn: ConnId, _ctx: &mut Ctx) {
        self.sockets.remove(&conn);
        self.hub.disconnect(conn);
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
