//! The application behind the loop: routes requests, turns WebSocket frames into chat
//! events, runs the chat core's jobs on the worker lanes and applies its effects.
//! Everything here runs on the loop thread and must not block; blocking work is
//! submitted to a lane.
//!
//! `handler.rs` is the door the loop calls; `requests.rs` admits and answers HTTP,
//! `chat_routes.rs` serves the chat's HTTP routes, `admin_routes.rs` the admin API's
//! reads, `takeover_routes.rs` the admins' takeover, `websocket.rs` admits sockets and
//! turns their frames into chat events, `chat.rs` carries out the chat core's effects,
//! `fanout.rs` delivers the frames addressed to an audience, `presence.rs` counts a
//! user's sockets across pods, `upload_routes.rs` streams
//! uploads to the io lane and serves the stored files, and `executor/` runs its jobs on
//! the lanes (`lanes.rs`).

mod admin_routes;
mod chat;
mod chat_routes;
mod executor;
mod fanout;
mod handler;
mod lanes;
mod measure;
mod presence;
mod probe;
mod requests;
mod socket;
mod takeover_routes;
mod upload_routes;
mod websocket;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::auth::Verifier;
use crate::bus::{Bus, Topic};
use crate::chat::engine::{Chat, Settings};
use crate::chat::protocol::ModelInfo;
use crate::chat::ratelimit::RateLimiter;
use crate::config::{Cidr, Config};
use crate::hash::{IdMap, IdSet};
use crate::http::cors::Cors;
use crate::http::health::{Check, Healthz, Readiness};
use crate::http::web::Web;
use crate::llm::Catalog;
use crate::metrics::Metrics;
use crate::net::slab::ConnId;
use crate::notify::Notifier;
use crate::store::{Store, StoreError};
use crate::upload::signed::Signer;
use crate::upload::Blobs;

use executor::Executor;
pub use lanes::{Done, Lanes, Waiting};
pub use measure::metrics_registry;
use probe::StoreProbe;
use takeover_routes::Pending;
use upload_routes::Uploads;
use websocket::Upgrading;

/// `P/shared/:token` is public: each client IP gets this many reads per minute.
const PUBLIC_LIMIT: u32 = 60;
const PUBLIC_WINDOW: Duration = Duration::from_secs(60);

pub struct App {
    prefix: String,
    echo_enabled: bool,
    cors: Cors,
    ws_allowed_origins: Option<Vec<String>>,
    max_sockets_per_user: usize,
    verifier: Verifier,
    readiness: Readiness,
    healthz: Healthz,
    store_probe: StoreProbe,
    lanes: Lanes,
    chat: Chat,
    executor: Executor,
    store: Arc<dyn Store>,
    models: Vec<ModelInfo>,
    default_model: String,
    echo_sockets: IdSet<ConnId>,
    /// Takeover requests waiting for the chat core's answer, by request number.
    takeovers: IdMap<u64, Pending>,
    next_takeover: u64,
    upgrading: Option<(ConnId, Upgrading)>,
    public_limiter: RateLimiter,
    /// Sessions API calls per user.
    rest_limiter: RateLimiter,
    /// Keyed by the admin's user id: `ADMIN_RATE_LIMIT` per `ADMIN_RATE_WINDOW`.
    admin_limiter: RateLimiter,
    trusted_proxies: Vec<Cidr>,
    metrics: Arc<Metrics>,
    metrics_allowed: Vec<Cidr>,
    uploads: Uploads,
    /// `REDIS_URL`: frames for audiences also go to, and come from, the other pods.
    bus: Option<Bus>,
    wake_at: Option<Instant>,
    shut_down: bool,
    web: Web,
}

/// What the application drives, built by the server at start-up.
pub struct Backends {
    pub lanes: Lanes,
    pub store: Arc<dyn Store>,
    pub catalog: Catalog,
    pub notifier: Notifier,
    /// Where uploaded files live.
    pub blobs: Arc<dyn Blobs>,
    /// Signs and checks the links to them.
    pub signer: Signer,
    /// `REDIS_URL`: the other pods.
    pub bus: Option<Bus>,
}

impl App {
    pub fn new(config: &Config, backends: Backends, metrics: Arc<Metrics>) -> App {
        let Backends {
            lanes,
            store,
            catalog,
            notifier,
            blobs,
            signer,
            bus,
        } = backends;
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
        let store_probe =
            StoreProbe::new(config.store.mongo.is_some(), &mut readiness, Instant::now());
        if bus.is_some() {
            let waiting = Check::not_ready("no answer from Redis yet").advisory();
            readiness.set("redis", waiting);
        }
        if config.server.echo_endpoint {
            log::warn!(
                "CHATBOX_ECHO=true: unauthenticated WebSocket echo at {}/echo (for conformance tests and benchmarks, never production)",
                config.server.path_prefix
            );
        }
        let now = Instant::now();
        let counting = count_active_sessions(&lanes, &store);
        let settings = Settings {
            models: models.clone(),
            default_model: default_model.clone(),
            stream_timeout: config.llm.stream_timeout,
            chat: config.chat.clone(),
            help_escalation_after: config.notify.help_escalation_after,
            files_path: format!("{}/files/", config.server.path_prefix),
        };
        let mut chat = Chat::new(settings, now);
        if let Some(bus) = &bus {
            chat.share_sessions();
            chat.lease_replies();
            bus.listen(&Topic::Sockets, true);
        }
        App {
            prefix: config.server.path_prefix.clone(),
            echo_enabled: config.server.echo_endpoint,
            cors: Cors::new(config.access.cors_allowed_origins.clone()),
            ws_allowed_origins: config.access.ws_allowed_origins.clone(),
            max_sockets_per_user: config.access.max_connections_per_user,
            verifier: Verifier::new(config.auth.jwt_secret.expose(), config.auth.require_exp),
            readiness,
            healthz: Healthz::default(),
            store_probe,
            lanes,
            chat,
            executor: Executor::new(
                Arc::clone(&store),
                bus.as_ref().map(Bus::claims),
                Arc::new(catalog),
                config.llm.stream_timeout,
                Arc::new(notifier),
                Arc::clone(&metrics),
            ),
            store,
            models,
            default_model,
            echo_sockets: IdSet::default(),
            takeovers: IdMap::default(),
            next_takeover: 0,
            upgrading: None,
            public_limiter: RateLimiter::new(PUBLIC_LIMIT, PUBLIC_WINDOW),
            rest_limiter: RateLimiter::new(config.chat.rate_limit, config.chat.rate_window),
            admin_limiter: RateLimiter::new(config.admin.rate_limit, config.admin.rate_window),
            trusted_proxies: config.access.trusted_proxies.clone(),
            metrics,
            metrics_allowed: config.metrics.allowed_networks.clone(),
            uploads: Uploads::new(&config.uploads, blobs, signer),
            bus,
            // The first tick runs the idle sweep at once: sessions left idle while the
            // server was down end now. It waits for the count of active sessions, so
            // that the sessions it ends are counted out after they were counted in.
            wake_at: if counting { None } else { Some(now) },
            shut_down: false,
            web: Web::new(
                &config.server.path_prefix,
                config.access.cors_allowed_origins.as_deref(),
                config.uploads.s3.as_ref(),
            ),
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
