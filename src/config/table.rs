//! The settings table: every variable's name, default, accepted form and the reason for
//! its default. The parser takes defaults and range checks from it, errors take their
//! "expected …" text from it and `--help` prints it, so the three cannot drift apart.

use std::time::Duration;

use super::parse::{fmt_dur, fmt_size};

pub(super) const KIB: u64 = 1024;
pub(super) const MIB: u64 = 1024 * KIB;
pub(super) const GIB: u64 = 1024 * MIB;
const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
pub(super) const DAY: u64 = 24 * HOUR;

pub(super) const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Settings of the old Go service that mean nothing here; accepted and reported once.
/// Go runtime knobs and file-logging settings are included: this binary logs to stdout.
pub(super) const LEGACY: &str = "WS_READ_BUFFER_SIZE WS_WRITE_BUFFER_SIZE WS_HANDSHAKE_TIMEOUT \
    WS_ENABLE_COMPRESSION LOG_DIR LOG_FILE LOG_FORMAT LOG_MAX_SIZE LOG_MAX_BACKUPS LOG_MAX_AGE \
    LOG_COMPRESS MONGO_VERBOSE GIN_MODE GOMAXPROCS GOGC GOMEMLIMIT";
pub(super) const LEGACY_PREFIX: &str = "K8S_";

/// Variables that are validated but that nothing in this version reads yet: Redis
/// fan-out arrives with a later issue. A set one is named in a warning at start-up, so
/// nobody believes it takes effect.
pub(super) const NOT_USED_YET: &[&str] = &["REDIS_URL"];

/// How a variable's text becomes a value; also yields the "expected …" text.
#[derive(Clone, Copy)]
pub(super) enum Kind {
    /// Text with its own check; the string is the expected form.
    Text(&'static str),
    /// A credential: trimmed, never quoted in errors.
    Secret(&'static str),
    /// Key material: never quoted, and used byte for byte (not trimmed).
    Key(&'static str),
    Bool,
    Int(u64, u64),
    Dur(Duration, Duration),
    Size(u64, u64),
    /// Comma-separated CIDRs; explicitly empty is an empty list, not the default.
    Cidrs,
}

impl Kind {
    pub(super) fn secret(self) -> bool {
        matches!(self, Kind::Secret(_) | Kind::Key(_))
    }
    pub(super) fn int_bounds(self) -> (u64, u64) {
        match self {
            Kind::Int(lo, hi) | Kind::Size(lo, hi) => (lo, hi),
            _ => (0, u64::MAX),
        }
    }
    pub(super) fn expected(self) -> String {
        match self {
            Kind::Text(e) | Kind::Secret(e) | Kind::Key(e) => e.to_owned(),
            Kind::Bool => "true or false (also yes/no, 1/0)".into(),
            Kind::Int(lo, hi) => format!("a whole number from {lo} to {hi}"),
            Kind::Dur(lo, hi) => format!(
                "a duration from {} to {}, like 90s, 15m, 1h, 100ms or 1h30m",
                fmt_dur(lo),
                fmt_dur(hi)
            ),
            Kind::Size(lo, hi) => format!(
                "a size from {} to {}: bytes, or like 100MB or 1MiB",
                fmt_size(lo),
                fmt_size(hi)
            ),
            Kind::Cidrs => "comma-separated CIDRs or addresses, like 10.0.0.0/8,fd00::/8".into(),
        }
    }
}

#[derive(Clone, Copy)]
pub(super) enum Dflt {
    /// Used when the variable is unset or empty.
    Lit(&'static str),
    Required,
    /// Unset is meaningful; the text says what it means.
    Unset(&'static str),
}

/// One row of the settings table: the only place a variable is described.
pub(super) struct Var {
    pub(super) name: &'static str,
    pub(super) default: Dflt,
    pub(super) kind: Kind,
    /// Why the default is what it is / what the setting is for.
    pub(super) why: &'static str,
}

const fn var(name: &'static str, default: Dflt, kind: Kind, why: &'static str) -> Var {
    Var {
        name,
        default,
        kind,
        why,
    }
}

macro_rules! private_nets {
    () => {
        "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16"
    };
}

const SECURE_URL: &str = "an https:// URL, or http:// to a loopback or private IP, a dotless \
    host (ollama) or a .local/.internal/.svc/.cluster.local host";
const ORIGINS: &str = "comma-separated origins scheme://host[:port] without path, like \
    https://chat.example.org,https://app.example.org:8443";

use Dflt::{Lit, Required, Unset};
use Kind::{Bool, Cidrs, Dur, Int, Key, Size, Text};

/// Every variable the parser reads, in `--help` order. `<n>` stands for 1, 2, …
#[rustfmt::skip]
pub(super) const VARS: &[Var] = &[
    var("SERVER_HOST", Lit("0.0.0.0"), Text("an IP address such as 0.0.0.0 or ::"),
        "all interfaces, so the Service can reach the pod"),
    var("SERVER_PORT", Lit("8080"), Int(1, 65535),
        "unprivileged, so the container needs no root"),
    var("CHATBOX_PATH_PREFIX", Lit("/chatbox"),
        Text("a path like /chatbox: starts with /, no trailing /, only letters, digits and \
              - . _ ~ (\"/\" alone is refused: routes would become //healthz)"),
        "every route lives under it, so one ingress host can route several apps by path"),
    var("JWT_SECRET", Required,
        Key("at least 32 bytes of random text with no sample words such as secret, test, \
             admin or changeme (e.g. openssl rand -base64 48)"),
        "HMAC key shared with the token issuer; a short or sample key lets anyone mint tokens"),
    var("REQUIRE_EXP", Lit("true"), Bool, "a token without exp would stay valid forever if leaked"),
    var("ENCRYPTION_KEY", Unset("messages stored in plaintext (a warning is logged)"),
        Key("standard base64 of 32 bytes (openssl rand -base64 32) or a raw 32-byte string"),
        "AES-256-GCM key for message content; the raw form is what existing deployments use"),
    var("ENCRYPT_ALL_FIELDS", Lit("false"), Bool,
        "also encrypt session names, file URLs and metadata; off because the old service \
         cannot read them"),
    var("MAX_CONNECTIONS", Lit("10000"), Int(1, 1_000_000),
        "connection slab size (HTTP and WebSocket); memory is bounded and a full slab answers 503"),
    var("MAX_CONNECTIONS_PER_IP", Lit("256"), Int(1, 1_000_000),
        "open connections per client address (IPv6 per /64) on the public port: a browser \
         uses a handful, a NAT or a trusted proxy some hundred; one host cannot fill the slab"),
    var("MAX_CONNECTIONS_PER_USER", Lit("10"), Int(1, 10_000),
        "WebSocket sockets per user_id: several tabs and devices, yet one user cannot fill the \
         slab"),
    var("MAX_MESSAGE_SIZE", Lit("1048576"), Size(KIB, 64 * MIB),
        "largest WebSocket message; 1 MiB holds long pastes, more closes the socket with 1009"),
    var("RATE_LIMIT", Lit("100"), Int(1, u32::MAX as u64),
        "user messages per RATE_LIMIT_WINDOW per user; 0 would block everyone"),
    var("RATE_LIMIT_WINDOW", Lit("1m"), Dur(secs(1), secs(DAY)), "window of RATE_LIMIT"),
    var("RATE_LIMIT_CLEANUP_INTERVAL", Lit("5m"), Dur(secs(1), secs(DAY)),
        "how often idle rate-limit entries are dropped; only memory is at stake"),
    var("ADMIN_RATE_LIMIT", Lit("20"), Int(1, u32::MAX as u64),
        "admin HTTP requests per ADMIN_RATE_WINDOW per admin"),
    var("ADMIN_RATE_WINDOW", Lit("1m"), Dur(secs(1), secs(DAY)), "window of ADMIN_RATE_LIMIT"),
    var("RECONNECT_TIMEOUT", Lit("15m"), Dur(secs(1), secs(DAY)),
        "how long a streaming reply is kept for replay; covers a phone losing signal for a while"),
    var("SESSION_TTL", Lit("15m"), Dur(secs(MINUTE), secs(30 * DAY)),
        "idle time that ends a session; equal to RECONNECT_TIMEOUT, so a kept reply never \
         outlives its session"),
    var("SESSION_CLEANUP_INTERVAL", Lit("5m"), Dur(secs(1), secs(DAY)),
        "idle sweep period; a session ends at most this long after its TTL"),
    var("MAX_MESSAGES_PER_SESSION", Lit("5000"), Int(1, 100_000),
        "keeps a session document far below MongoDB's 16 MB limit"),
    var("LLM_STREAM_TIMEOUT", Lit("120s"), Dur(secs(1), secs(HOUR)),
        "limit for one whole reply; long answers from slow models take a minute or two"),
    var("LLM_CONTEXT_MESSAGES", Lit("20"), Int(1, 1000),
        "last messages sent to the model, the new one included (so at least 1); bounds prompt \
         cost"),
    var("LLM_MAX_CONCURRENT", Lit("64"), Int(1, 4096),
        "size of the llm lane = concurrent streams, one thread each"),
    var("DEFAULT_MODEL", Unset("the first provider"), Text("the ID of a configured provider"),
        "model of sessions that chose none"),
    var("LLM_PROVIDER_<n>_ID", Unset("no provider: the built-in echo provider (id echo)"),
        Text("a unique id of at most 64 bytes without spaces, quotes or commas; n = 1, 2, … \
              up to the first missing ID"),
        "the server runs without keys out of the box"),
    var("LLM_PROVIDER_<n>_NAME", Unset("the ID"), Text("a display name"),
        "shown in the model picker"),
    var("LLM_PROVIDER_<n>_TYPE", Unset("required with the ID"),
        Text("openai, anthropic, dify or echo"),
        "wire format; Ollama, llama.cpp and vLLM speak openai"),
    var("LLM_PROVIDER_<n>_ENDPOINT", Unset("required unless TYPE is echo"), Text(SECURE_URL),
        "plain http only inside the node or cluster, where no key or chat crosses the internet"),
    var("LLM_PROVIDER_<n>_MODEL", Unset("required for openai and anthropic"),
        Text("the upstream model name, like gpt-4o"), "dify apps choose their own model"),
    var("LLM_PROVIDER_<n>_API_KEY", Unset("no key"), Kind::Secret("the provider's API key"),
        "optional because local models need none"),
    var("STORE_WORKERS", Lit("4"), Int(1, 256),
        "store lane threads; store calls block, the event loop never does"),
    var("IO_WORKERS", Lit("4"), Int(1, 256), "io lane threads (uploads, email, SMS)"),
    var("MONGO_URI", Unset("embedded store in DATA_DIR"),
        Kind::Secret("a URI starting with mongodb:// or mongodb+srv://"),
        "treated as a secret because it usually holds the password"),
    var("MONGO_DATABASE", Lit("chat"), Text("a database name without spaces, / \\ \" or $"),
        "the old service's name, so existing data is found"),
    var("MONGO_COLLECTION", Lit("sessions"), Text("a collection name without spaces, / \\ \" or $"),
        "the old service's name, so existing data is found"),
    var("MONGO_CONNECT_TIMEOUT", Lit("10s"), Dur(secs(1), secs(5 * MINUTE)),
        "a wrong URI fails start-up quickly, yet a slow DNS or TLS handshake passes"),
    var("MONGO_RETRY_ATTEMPTS", Lit("3"), Int(1, 10),
        "attempts for transient errors; 1 = no retry"),
    var("MONGO_RETRY_DELAY", Lit("100ms"), Dur(Duration::from_millis(1), secs(2)),
        "first back-off, doubling up to 2s"),
    var("DATA_DIR", Lit("./data"), Text("a writable directory"),
        "embedded store and local uploads; only checked when one of them is used"),
    var("S3_BUCKET", Unset("local uploads in DATA_DIR/uploads"),
        Text("a bucket name: 3-63 lowercase letters, digits, . and -"), "switches uploads to S3"),
    var("S3_REGION", Unset("required with S3_BUCKET"), Text("a region such as eu-west-1"),
        "needed to sign requests, even for MinIO"),
    var("S3_ENDPOINT", Unset("AWS"), Text(SECURE_URL),
        "custom endpoint such as MinIO, addressed path-style"),
    var("S3_ACCESS_KEY_ID", Unset("required with S3_BUCKET"), Text("an access key id"),
        "static keys work the same with AWS, MinIO and other S3-compatible stores"),
    var("S3_SECRET_ACCESS_KEY", Unset("required with S3_BUCKET"),
        Kind::Secret("the secret access key"), "pairs with S3_ACCESS_KEY_ID"),
    var("UPLOAD_MAX_SIZE", Lit("100MB"), Size(1, 5_000_000_000),
        "fits documents and short videos; uploads are streamed, never held in memory"),
    var("UPLOAD_PREFIX", Lit("chat-files"),
        Text("a key prefix of letters, digits, - _ . ~ and inner /, without .. segments"),
        "the old key layout chat-files/<user_id>/<yyyy>/<mm>/<file_id>"),
    var("UPLOAD_URL_TTL", Lit("7d"), Dur(secs(1), secs(7 * DAY)),
        "lifetime of presigned file URLs; 7 days is the most S3 signatures allow"),
    var("UPLOAD_MAX_CONCURRENT", Lit("3"), Int(1, 100),
        "uploads in progress per user; each holds an io lane thread while it streams"),
    var("UPLOAD_RATE_LIMIT", Lit("20"), Int(1, 10_000),
        "uploads per user per minute; a file is a big write, a message a small one"),
    var("SMTP_HOST", Unset("no email; help requests are logged"), Text("a host name or IP address, without scheme or port"),
        "switches email notifications on"),
    var("SMTP_PORT", Lit("587"), Int(1, 65535), "the mail submission port"),
    var("SMTP_USER", Unset("no authentication"), Text("a user name"),
        "set together with SMTP_PASS"),
    var("SMTP_PASS", Unset("no authentication"), Kind::Secret("the SMTP password"),
        "set together with SMTP_USER"),
    var("SMTP_TLS", Unset("by port: 465 tls, 25 and 1025 off, any other starttls"),
        Text("starttls, tls or off"),
        "follows the port's convention; other ports get starttls so a password never goes out \
         in clear"),
    var("EMAIL_FROM", Unset("required with SMTP_HOST"), Text("an address like help@example.org"),
        "sender of help-request mails"),
    var("EMAIL_FROM_NAME", Lit("Chatbox"), Text("a display name"),
        "the product name, recognisable in an inbox"),
    var("EMAIL_REPLY_TO", Unset("none"), Text("an address like team@example.org"),
        "where replies to help-request mails go"),
    var("ADMIN_EMAILS", Unset("required with SMTP_HOST"),
        Text("comma-separated addresses like a@example.org,b@example.org"),
        "recipients of help requests"),
    var("SMS_ACCOUNT_SID", Unset("no SMS"), Text("a Twilio account SID"),
        "set together with SMS_AUTH_TOKEN to switch SMS on"),
    var("SMS_AUTH_TOKEN", Unset("no SMS"), Kind::Secret("the Twilio auth token"),
        "set together with SMS_ACCOUNT_SID"),
    var("SMS_FROM_NUMBER", Unset("required with SMS"),
        Text("a sender such as +15551234567"), "sender of help-request texts"),
    var("ADMIN_PHONES", Unset("required with SMS"),
        Text("comma-separated E.164 numbers like +15551234567,+442071234567"),
        "recipients of help-request texts"),
    var("SMS_API_BASE", Lit("https://api.twilio.com"), Text(SECURE_URL),
        "Twilio; overridable for Twilio-compatible gateways and tests"),
    var("HELP_ESCALATION_AFTER", Unset("off"), Dur(secs(MINUTE), secs(7 * DAY)),
        "re-notify when a session waits this long for an admin"),
    var("ADMIN_PANEL_URL", Unset("no link in mails"), Text("an http(s) URL"),
        "mails link to <ADMIN_PANEL_URL>/<session_id>"),
    var("NOTIFY_TIMEOUT", Lit("10s"), Dur(secs(1), secs(5 * MINUTE)),
        "limit for each step (connect, each read and write) of a help-request mail or SMS; \
         a dead mail server holds an io lane thread no longer than this"),
    var("CORS_ALLOWED_ORIGINS", Unset("CORS off"), Text(ORIGINS),
        "only pages on these origins may call the API from a browser"),
    var("WS_ALLOWED_ORIGINS", Unset("any origin"), Text(ORIGINS),
        "mobile clients send no Origin, so open by default"),
    var("TRUSTED_PROXIES", Lit(private_nets!()), Cidrs,
        "peers whose X-Forwarded-For is believed; the private ranges cover an in-cluster \
         ingress. Empty = trust none"),
    var("METRICS_PORT", Unset("no second listener"), Int(1, 65535),
        "/metrics, /healthz, /readyz without the prefix for scrapers and probes; not SERVER_PORT"),
    var("METRICS_ALLOWED_NETWORKS", Lit(concat!(private_nets!(), ",127.0.0.0/8,::1/128")), Cidrs,
        "in-cluster scrapers and the node itself. Empty = open to all"),
    var("WS_PING_PERIOD", Lit("54s"), Dur(secs(1), secs(HOUR)),
        "9/10 of WS_PONG_WAIT (the gorilla/websocket convention), under nginx's 60s proxy \
         timeout"),
    var("WS_PONG_WAIT", Lit("60s"), Dur(secs(1), secs(HOUR)),
        "a socket silent this long after a ping is dead"),
    var("WS_WRITE_WAIT", Lit("10s"), Dur(secs(1), secs(5 * MINUTE)),
        "a peer that accepts no bytes for this long is dropped"),
    var("WS_MAX_OUTBOUND_BYTES", Lit("1MiB"), Size(64 * KIB, GIB),
        "per-socket queue before close 1013; at least MAX_MESSAGE_SIZE so one message fits"),
    var("SHUTDOWN_DRAIN_DELAY", Lit("5s"), Dur(Duration::ZERO, secs(5 * MINUTE)),
        "time for the endpoints controller to remove the pod; the first part of SHUTDOWN_TIMEOUT, \
         so shorter than it"),
    var("SHUTDOWN_TIMEOUT", Lit("25s"), Dur(secs(1), secs(HOUR)),
        "total from SIGTERM to exit; under Kubernetes' default 30s grace period"),
    var("CHATBOX_ECHO", Lit("false"), Bool,
        "unauthenticated echo at P/echo for conformance suites and benchmarks; never in \
         production"),
    var("LOG_LEVEL", Lit("info"),
        Text("error, warn, info, debug, trace or off (Go's warning, fatal and panic are accepted)"),
        "logs go to stdout for the container runtime"),
    var("REDIS_URL", Unset("single pod"), Kind::Secret("a URL starting with redis:// or rediss://"),
        "multi-pod fan-out (later); secret because it may hold a password"),
];

/// The table row for `name`; `LLM_PROVIDER_3_ID` finds `LLM_PROVIDER_<n>_ID`.
pub(super) fn spec(name: &str) -> Option<&'static Var> {
    let generic = name
        .strip_prefix("LLM_PROVIDER_")
        .and_then(|rest| rest.split_once('_'))
        .filter(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .map(|(_, field)| format!("LLM_PROVIDER_<n>_{field}"));
    let key = generic.as_deref().unwrap_or(name);
    VARS.iter().find(|v| v.name == key)
}
