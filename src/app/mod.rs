//! The application behind the loop: routes requests, turns WebSocket frames into chat
//! events, runs the chat core's jobs on the worker lanes and applies its effects.
//! Everything here runs on the loop thread and must not block; blocking work is
//! submitted to a lane.

mod jobs;
mod lanes;
mod probe;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::auth::{self, Identity, Verifier};
use crate::chat::engine::{Chat, Effect, Event, Now, Settings};
use crate::chat::hub::{Resume, User};
use crate::chat::jobs::{JobDone, JobId};
use crate::chat::protocol::{Kind, ModelInfo, Outbound};
use crate::chat::ratelimit::{retry_after_ms, RateLimiter};
use crate::config::{Cidr, Config};
use crate::http::client_ip::client_ip;
use crate::http::cors::{Cors, Verdict};
use crate::http::error;
use crate::http::health::{self, Check, Readiness};
use crate::http::metrics::scrape;
use crate::http::router::Route;
use crate::http::sessions::Call;
use crate::http::upgrade;
use crate::ids;
use crate::llm::Catalog;
use crate::metrics::process::Process;
use crate::metrics::{Limiter, Metrics, RequestTimer, State};
use crate::net::conn::{ConnInfo, ListenerKind};
use crate::net::http::{Request, RequestHead, Response};
use crate::net::reactor::{Ctx, Handler, Reply};
use crate::net::slab::ConnId;
use crate::net::ws::Incoming;
use crate::store::{Store, StoreError};
use crate::time;

use jobs::Runner;
pub use lanes::{Done, Lanes, Waiting};
use probe::StoreProbe;

/// `P/shared/:token` is public: each client IP gets this many reads per minute.
const PUBLIC_LIMIT: u32 = 60;
const PUBLIC_WINDOW: Duration = Duration::from_secs(60);

/// A socket admitted by `request`, opened by the loop right after.
enum Upgrading {
    Echo,
    Chat {
        user: User,
        session_id: Option<String>,
        resume: Resume,
    },
}

pub struct App {
    prefix: String,
    echo_enabled: bool,
    cors: Cors,
    ws_allowed_origins: Option<Vec<String>>,
    max_sockets_per_user: usize,
    verifier: Verifier,
    readiness: Readiness,
    store_probe: StoreProbe,
    lanes: Lanes,
    chat: Chat,
    runner: Runner,
    store: Arc<dyn Store>,
    models: Vec<ModelInfo>,
    default_model: String,
    echo_sockets: HashSet<ConnId>,
    upgrading: Option<(ConnId, Upgrading)>,
    public_limiter: RateLimiter,
    trusted_proxies: Vec<Cidr>,
    metrics: Arc<Metrics>,
    metrics_allowed: Vec<Cidr>,
    wake_at: Option<Instant>,
    shut_down: bool,
}

impl App {
    pub fn new(
        config: &Config,
        lanes: Lanes,
        store: Arc<dyn Store>,
        catalog: Catalog,
        metrics: Arc<Metrics>,
    ) -> App {
        let models: Vec<ModelInfo> = catalog
            .models()
            .into_iter()
            .map(|(id, name)| ModelInfo {
                id: id.to_owned(),
                name: name.to_owned(),
            })
            .collect();
        let default_model = catalog.default_id().to_owned();
        let mut readiness = Readiness::default();
        readiness.set("llm", Check::ready().with("providers_count", models.len()));
        let store_probe = StoreProbe::new(config.mongo.is_some(), &mut readiness, Instant::now());
        if config.echo_endpoint {
            log::warn!(
                "CHATBOX_ECHO=true: unauthenticated WebSocket echo at {}/echo (for conformance tests and benchmarks, never production)",
                config.path_prefix
            );
        }
        let now = Instant::now();
        let counting = count_active_sessions(&lanes, &store);
        let settings = Settings {
            models: models.clone(),
            default_model: default_model.clone(),
            context_messages: config.llm_context_messages,
            max_messages: config.max_messages_per_session,
            rate_limit: config.rate_limit,
            rate_window: config.rate_limit_window,
            rate_cleanup: config.rate_limit_cleanup_interval,
            reconnect_timeout: config.reconnect_timeout,
            session_ttl: config.session_ttl,
            sweep_interval: config.session_cleanup_interval,
            stream_timeout: config.llm_stream_timeout,
        };
        App {
            prefix: config.path_prefix.clone(),
            echo_enabled: config.echo_endpoint,
            cors: Cors::new(config.cors_allowed_origins.clone()),
            ws_allowed_origins: config.ws_allowed_origins.clone(),
            max_sockets_per_user: config.max_connections_per_user,
            verifier: Verifier::new(config.jwt_secret.expose(), config.require_exp),
            readiness,
            store_probe,
            lanes,
            chat: Chat::new(settings, now),
            runner: Runner::new(
                Arc::clone(&store),
                Arc::new(catalog),
                config.llm_stream_timeout,
                Arc::clone(&metrics),
            ),
            store,
            models,
            default_model,
            echo_sockets: HashSet::new(),
            upgrading: None,
            public_limiter: RateLimiter::new(PUBLIC_LIMIT, PUBLIC_WINDOW),
            trusted_proxies: config.trusted_proxies.clone(),
            metrics,
            metrics_allowed: config.metrics_allowed_networks.clone(),
            // The first tick runs the idle sweep at once: sessions left idle while the
            // server was down end now. It waits for the count of active sessions, so
            // that the sessions it ends are counted out after they were counted in.
            wake_at: if counting { None } else { Some(now) },
            shut_down: false,
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

    /// Everything that can be decided from the head alone; the CORS origin to answer
    /// with when it passes.
    fn admit(
        &self,
        head: &RequestHead,
        conn: &ConnInfo,
        route: Route,
    ) -> Result<Option<String>, Response> {
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
        match refusal {
            Some(response) => Err(with_origin(response, origin.as_deref())),
            None => Ok(origin),
        }
    }

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
        if route == Route::Echo {
            self.upgrading = Some((conn.id, Upgrading::Echo));
            return Ok(Reply::Upgrade {
                accept,
                expires_at: None,
            });
        }
        let identity = upgrade::authenticate(head, &self.verifier, ctx.unix)?;
        let open = self.chat.sockets_of(&identity.user_id);
        if open.len() >= self.max_sockets_per_user {
            let notice = Outbound::system(Kind::Notification, time::unix_millis_now())
                .with_content("Connection limit reached: a new connection was refused")
                .to_json();
            for &socket in open {
                ctx.send_text(socket, notice.clone());
            }
            self.metrics.blocked(Limiter::UserSockets);
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

    /// The HTTP routes of the chat: models, sessions, shared transcripts.
    fn chat_route(
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
                    head.header("x-forwarded-for"),
                    &self.trusted_proxies,
                );
                if let Err(wait) = self.public_limiter.check(&ip.to_string(), ctx.now) {
                    self.metrics.blocked(Limiter::PublicIp);
                    return Err(too_many_requests(wait));
                }
                Call::Shared {
                    token: param.unwrap_or_default(),
                    page: crate::http::sessions::page(head)?,
                }
            }
            _ => {
                let user_id = self.user(head)?.user_id;
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
                    (Route::SessionShare, crate::net::http::Method::Delete) => Call::Unshare {
                        user_id,
                        session_id,
                    },
                    (Route::SessionShare, _) => Call::Share {
                        user_id,
                        session_id,
                        candidate: ids::random_id().map_err(|error| {
                            log::error!("the OS random source failed: {error}");
                            error::json_error(500, "An internal error occurred")
                        })?,
                    },
                    _ => return Err(error::not_found()),
                }
            }
        };
        let store = Arc::clone(&self.store);
        let lost = Done::Reply(
            waiting.clone(),
            error::json_error(500, "An internal error occurred"),
        );
        self.lanes
            .store
            .try_submit(
                move |job| {
                    let outcome = call.run(store.as_ref(), time::unix_millis_now());
                    let _ = job.complete(Done::Sessions(waiting, outcome));
                },
                lost,
            )
            .map_err(|_| lane_busy())?;
        Ok(Reply::Later)
    }

    /// Answers a request that waited for a lane.
    fn answer(&self, waiting: Waiting, response: Response, ctx: &mut Ctx) {
        ctx.reply(
            waiting.conn,
            with_origin(response, waiting.origin.as_deref()),
        );
        self.metrics.answered(waiting.timer);
    }

    /// What a scrape shows besides the counters: the loop's state right now.
    fn state(&self, ctx: &Ctx) -> State {
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

    /// Serves a request whose route passed [`App::admit`].
    fn serve(
        &mut self,
        request: &Request,
        conn: &ConnInfo,
        route: Route,
        waiting: Waiting,
        ctx: &mut Ctx,
    ) -> Reply {
        let origin = waiting.origin.clone();
        let response = match route {
            Route::Healthz => health::healthz(ctx.unix),
            Route::Readyz => self.readiness.respond(ctx.draining, ctx.unix),
            Route::Metrics => scrape(&self.metrics, &self.metrics_allowed, conn.peer.ip(), || {
                self.state(ctx)
            }),
            Route::Ws | Route::Echo => {
                return match self.admit_socket(&request.head, conn, route, ctx) {
                    Ok(reply) => reply,
                    Err(response) => Reply::Now(response),
                }
            }
            Route::NotFound => error::not_found(),
            _ => match self.chat_route(request, conn, route, waiting, ctx) {
                Ok(Reply::Now(response)) => response,
                Ok(reply) => return reply,
                Err(response) => response,
            },
        };
        Reply::Now(with_origin(response, origin.as_deref()))
    }

    /// The user behind `Authorization: Bearer`, or the 401 that answers the request.
    fn user(&self, head: &RequestHead) -> Result<Identity, Response> {
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

    /// Hands an event to the chat core and carries out what it asks for.
    fn chat_event(&mut self, event: Event, ctx: &mut Ctx) {
        let now = Now {
            at: ctx.now,
            ms: time::unix_millis_now(),
        };
        let effects = self.chat.handle(event, now);
        self.metrics.record_chat(self.chat.take_tally());
        self.apply(effects, ctx);
    }

    fn apply(&mut self, effects: Vec<Effect>, ctx: &mut Ctx) {
        let mut refused = Vec::new();
        for effect in effects {
            match effect {
                Effect::Send(socket, text) => ctx.send_text(socket, text),
                Effect::WatchFlush(socket) => ctx.watch_flush(socket),
                Effect::Close(socket, code, reason) => ctx.close(socket, code, reason),
                Effect::Spawn(job) => refused.extend(self.runner.submit(&self.lanes, job)),
                Effect::Cancel(id) => self.runner.cancel(id),
                Effect::Timer(at) => {
                    self.wake_at = Some(self.wake_at.map_or(at, |current| current.min(at)))
                }
            }
        }
        self.refuse(refused, ctx);
    }

    fn refuse(&mut self, jobs: Vec<JobId>, ctx: &mut Ctx) {
        for id in jobs {
            self.chat_event(Event::JobDone(JobDone::Refused { id }), ctx);
        }
    }
}

/// Asks the store lane for the active sessions, where the gauge starts; false when the
/// job could not be queued (the gauge then starts at zero).
fn count_active_sessions(lanes: &Lanes, store: &Arc<dyn Store>) -> bool {
    let store = Arc::clone(store);
    let lost = Done::ActiveSessions(Err(StoreError::Unavailable(
        "the count of active sessions died".into(),
    )));
    let submitted = lanes.store.try_submit(
        move |job| {
            let _ = job.complete(Done::ActiveSessions(store.count_active()));
        },
        lost,
    );
    if let Err(error) = &submitted {
        log::warn!("cannot count the active sessions: {error}");
    }
    submitted.is_ok()
}

fn user_of(identity: Identity) -> User {
    User {
        admin: identity.is_admin(),
        id: identity.user_id,
        name: identity.name,
    }
}

/// spec/http.md: the 429 body of rate-limited HTTP routes.
fn too_many_requests(wait: Duration) -> Response {
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

fn lane_busy() -> Response {
    error::json_error(503, "Server busy, please retry").with_header("Retry-After", "1")
}

fn with_origin(response: Response, origin: Option<&str>) -> Response {
    match origin {
        Some(origin) => Cors::decorate(response, origin),
        None => response,
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
        let route = self.route(head, conn);
        self.admit(head, conn, route).map(|_| route.body_limit())
    }

    fn request(&mut self, request: Request, conn: &ConnInfo, ctx: &mut Ctx) -> Reply {
        let route = self.route(&request.head, conn);
        let timer = RequestTimer::start(route, request.head.method);
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

    fn ws_opened(&mut self, conn: &ConnInfo, ctx: &mut Ctx) {
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
                let event = Event::Connected {
                    socket: conn.id,
                    user,
                    session_id,
                    resume,
                };
                self.chat_event(event, ctx);
            }
        }
    }

    fn ws_message(&mut self, conn: &ConnInfo, message: Incoming, ctx: &mut Ctx) {
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
                    socket: conn.id,
                    text: &text,
                };
                self.chat_event(event, ctx);
            }
            Incoming::Binary(_) => {
                let frame = Outbound::error(
                    crate::chat::protocol::code::INVALID_FORMAT,
                    "Invalid message format",
                    true,
                    time::unix_millis_now(),
                )
                .to_json();
                ctx.send_text(conn.id, frame);
            }
        }
    }

    fn ws_closed(&mut self, conn: ConnId, ctx: &mut Ctx) {
        if !self.echo_sockets.remove(&conn) {
            self.chat_event(Event::Closed { socket: conn }, ctx);
        }
    }

    fn ws_flushed(&mut self, conn: ConnId, ctx: &mut Ctx) {
        self.chat_event(Event::Flushed { socket: conn }, ctx);
    }

    fn wake_at(&self) -> Option<Instant> {
        [self.wake_at, self.store_probe.due()]
            .into_iter()
            .flatten()
            .min()
    }

    fn tick(&mut self, ctx: &mut Ctx) {
        self.store_probe.run(&self.lanes, &self.store, ctx.now);
        if self.wake_at.is_some_and(|at| at <= ctx.now) {
            self.wake_at = None;
            self.public_limiter.cleanup(ctx.now);
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
            Done::Chat(done) => {
                self.runner.ended(&done);
                self.chat_event(Event::JobDone(done), ctx);
            }
            Done::StoreHealth(result) => {
                self.store_probe
                    .answered(result, &mut self.readiness, ctx.now)
            }
            Done::AppendBatch { lost } => {
                let refused = self.runner.appends_committed(&self.lanes);
                self.refuse(lost, ctx);
                self.refuse(refused, ctx);
            }
            Done::ActiveSessions(counted) => {
                match counted {
                    Ok(active) => self.metrics.set_sessions_at_start(active),
                    Err(error) => log::warn!(
                        "cannot count the active sessions ({error}); the gauge starts at zero"
                    ),
                }
                self.wake_at = Some(ctx.now);
            }
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
            let mut refused = Vec::new();
            for effect in self.chat.handle(Event::Shutdown, now) {
                match effect {
                    Effect::Spawn(job) => refused.extend(self.runner.submit(&self.lanes, job)),
                    Effect::Cancel(id) => self.runner.cancel(id),
                    _ => {}
                }
            }
            // No completion will start the next batch now: send what waits at once.
            refused.extend(self.runner.flush_appends(&self.lanes));
            if !refused.is_empty() {
                log::error!(
                    "shutdown: {} store write(s) could not be queued",
                    refused.len()
                );
            }
        }
        self.lanes.shutdown(until)
    }
}
