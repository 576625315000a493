//! Settings from environment variables (`spec/config.md`), parsed and checked once at
//! start-up so a typo stops the pod at boot instead of failing under traffic.
//!
//! One table, `VARS`, holds every variable's name, default, accepted form and the reason
//! for its default. The parser takes defaults and range checks from it, errors take their
//! "expected …" text from it and `--help` prints it, so the three cannot drift apart.
//!
//! Choices made where the spec is silent (each also stated in the table):
//! - An empty value counts as unset, because ConfigMaps often carry `NAME: ""`. Exception:
//!   `TRUSTED_PROXIES` / `METRICS_ALLOWED_NETWORKS`, where an explicitly empty list means
//!   "trust no proxy" / "metrics open to all".
//! - Values are trimmed, except `JWT_SECRET` and `ENCRYPTION_KEY`: the old service used them
//!   byte for byte, and one changed byte is a different key.
//! - Any value containing `REPLACE_WITH` stops start-up: it is an unfilled template.
//! - Optional groups (Mongo, S3, SMTP, SMS) read their other variables only when the group
//!   is switched on; leftover values of a group that is off are ignored.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::fmt::{self, Write as _};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use log::LevelFilter;

/// Every setting, typed. Defaults and the reasons for them are in `VARS` (see `--help`).
/// Not `Debug`: `encryption_key` is bare key material that `{:?}` would print; the
/// sub-structs are `Debug` because their credentials are [`Secret`]s.
#[derive(Clone)]
pub struct Config {
    pub server_host: IpAddr,
    pub server_port: u16,
    /// `P`: starts with `/`, never ends with one, so routes are `format!("{P}/healthz")`.
    pub path_prefix: String,
    pub jwt_secret: Secret,
    pub require_exp: bool,
    /// `None` = messages are stored in plaintext; main should log a warning.
    pub encryption_key: Option<[u8; 32]>,
    pub encrypt_all_fields: bool,
    pub max_connections: usize,
    pub max_connections_per_user: usize,
    pub max_message_size: usize,
    pub rate_limit: u32,
    pub rate_limit_window: Duration,
    pub rate_limit_cleanup_interval: Duration,
    pub admin_rate_limit: u32,
    pub admin_rate_window: Duration,
    pub reconnect_timeout: Duration,
    pub session_ttl: Duration,
    pub session_cleanup_interval: Duration,
    pub max_messages_per_session: usize,
    pub llm_stream_timeout: Duration,
    /// At least 1: the new user message itself is one of them.
    pub llm_context_messages: usize,
    pub llm_max_concurrent: usize,
    /// Always the id of one of `providers`.
    pub default_model: String,
    /// Never empty: with no `LLM_PROVIDER_1_ID` it is the built-in echo provider.
    pub providers: Vec<ProviderConfig>,
    pub store_workers: usize,
    pub io_workers: usize,
    /// `None` = embedded store in `data_dir`.
    pub mongo: Option<MongoConfig>,
    pub data_dir: PathBuf,
    /// `None` = local uploads in `data_dir/uploads`.
    pub s3: Option<S3Config>,
    pub upload: UploadConfig,
    /// `None` = help requests are only logged (unless SMS is on).
    pub smtp: Option<SmtpConfig>,
    pub sms: Option<SmsConfig>,
    /// `None` = no escalation for sessions waiting on an admin.
    pub help_escalation_after: Option<Duration>,
    /// Without trailing `/`; the link is `{url}/{session_id}`.
    pub admin_panel_url: Option<String>,
    /// `None` = CORS off. Entries are lower-case `scheme://host[:port]`, never empty.
    pub cors_allowed_origins: Option<Vec<String>>,
    /// `None` = any origin. Same form as `cors_allowed_origins`.
    pub ws_allowed_origins: Option<Vec<String>>,
    /// Empty = no peer is trusted: `X-Forwarded-For` is never believed.
    pub trusted_proxies: Vec<Cidr>,
    /// Differs from `server_port` when set.
    pub metrics_port: Option<u16>,
    /// Empty = open to every address (the operator asked for it with an empty value).
    pub metrics_allowed_networks: Vec<Cidr>,
    /// Shorter than `ws_pong_wait`.
    pub ws_ping_period: Duration,
    pub ws_pong_wait: Duration,
    pub ws_write_wait: Duration,
    /// At least `max_message_size`, so one full-size message always fits.
    pub ws_max_outbound_bytes: usize,
    /// Shorter than `shutdown_timeout`: the drain delay is the first part of that total.
    pub shutdown_drain_delay: Duration,
    pub shutdown_timeout: Duration,
    /// `CHATBOX_ECHO`.
    pub echo_endpoint: bool,
    pub log_level: LevelFilter,
    /// May embed a password: do not log it.
    pub redis_url: Option<String>,
    /// Names of the old service's settings that were set and are ignored, sorted, for one
    /// info line; also `LLM_PROVIDER_<n>_*` beyond the first gap in the numbering.
    pub ignored_legacy: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct ProviderConfig {
    pub id: String,
    pub name: String,
    pub kind: ProviderKind,
    /// Without trailing `/`; `""` for echo.
    pub endpoint: String,
    /// `""` for a dify provider without `MODEL` (the Dify app picks the model).
    pub model: String,
    /// `None` for local models that need no key.
    pub api_key: Option<Secret>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderKind {
    OpenAi,
    Anthropic,
    Dify,
    Echo,
}

/// Spellings of `LLM_PROVIDER_<n>_TYPE`, used both to parse and to print.
const PROVIDER_KINDS: [(&str, ProviderKind); 4] = [
    ("openai", ProviderKind::OpenAi),
    ("anthropic", ProviderKind::Anthropic),
    ("dify", ProviderKind::Dify),
    ("echo", ProviderKind::Echo),
];

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        PROVIDER_KINDS
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("", |(n, _)| n)
    }
}

#[derive(Clone, Debug)]
pub struct MongoConfig {
    /// A secret because a URI usually carries the password.
    pub uri: Secret,
    pub database: String,
    pub collection: String,
    pub connect_timeout: Duration,
    pub retry_attempts: u32,
    pub retry_delay: Duration,
}

#[derive(Clone, Debug)]
pub struct S3Config {
    pub bucket: String,
    pub region: String,
    /// Custom endpoint (MinIO …), to be used path-style; `None` = AWS.
    pub endpoint: Option<String>,
    pub access_key_id: String,
    pub secret_access_key: Secret,
}

#[derive(Clone, Debug)]
pub struct UploadConfig {
    pub max_size: u64,
    /// No leading or trailing `/`: keys are `{prefix}/{user_id}/…`.
    pub prefix: String,
    pub url_ttl: Duration,
}

/// SMTP transport plus the addressing of help-request mails, which only matter with it.
#[derive(Clone, Debug)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// `user` and `pass` are both set or both `None`.
    pub user: Option<String>,
    pub pass: Option<Secret>,
    pub from: String,
    pub from_name: String,
    pub reply_to: Option<String>,
    /// Never empty.
    pub admin_emails: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    StartTls,
    Tls,
    Off,
}

const SMTP_TLS_MODES: [(&str, SmtpTls); 3] = [
    ("starttls", SmtpTls::StartTls),
    ("tls", SmtpTls::Tls),
    ("off", SmtpTls::Off),
];

#[derive(Clone, Debug)]
pub struct SmsConfig {
    pub account_sid: String,
    pub auth_token: Secret,
    pub from_number: String,
    /// Never empty.
    pub admin_phones: Vec<String>,
    /// Without trailing `/`.
    pub api_base: String,
}

/// A credential. Its `Debug` prints `Secret(***)` and errors never quote it, so it cannot
/// reach a log by accident.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Secret {
        Secret(bytes.into())
    }
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
    /// Secrets read from the environment are UTF-8; one built from other bytes gives `""`.
    pub fn expose_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A bad setting: which variable, what is wrong, what would be right. Displayed as one line
/// (`main` prints it and exits 2); secret values are never part of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: String,
    pub problem: String,
    pub expected: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}; expected {}",
            self.variable, self.problem, self.expected
        )
    }
}

impl std::error::Error for ConfigError {}

/// An IPv4 or IPv6 network. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, what a dual-stack
/// socket reports for IPv4 peers) are treated as the IPv4 address they carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// `10.0.0.0/8`, `fd00::/8`, or a bare address (= `/32` or `/128`). Host bits are
    /// cleared, as `net.ParseCIDR` of the old service did. Errors read as a predicate
    /// ("is not …") to follow the quoted input.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (ip, len) = match s.trim().split_once('/') {
            Some((ip, len)) => (ip, Some(len)),
            None => (s.trim(), None),
        };
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| "is not an IP address or CIDR".to_owned())?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match len {
            None => max,
            Some(l) => l.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| {
                format!("has a prefix length that is not a number from 0 to {max}")
            })?,
        };
        // `::ffff:10.0.0.0/104` and `10.0.0.0/8` are the same network.
        let (ip, prefix) = match ip.to_canonical() {
            IpAddr::V4(v4) if ip.is_ipv6() && prefix >= 96 => (IpAddr::V4(v4), prefix - 96),
            _ => (ip, prefix),
        };
        Ok(Cidr {
            net: mask(ip, prefix),
            prefix,
        })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.net.is_ipv4() && mask(ip, self.prefix) == self.net
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    let keep = |width: u32| (!0u128).checked_shl(width - u32::from(prefix)).unwrap_or(0);
    match ip {
        IpAddr::V4(a) => IpAddr::V4((u32::from(a) & keep(32) as u32).into()),
        IpAddr::V6(a) => IpAddr::V6((u128::from(a) & keep(128)).into()),
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

/// `90s`, `15m`, `1h`, `100ms`, `7d`, combinations like `1h30m`, fractions like `1.5h`
/// (Go's `time.ParseDuration` forms the old manifests use, plus `d`). A bare number is an
/// error: `30` could mean seconds or minutes. Errors read as a predicate ("has no unit").
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    const NS: u128 = 1_000_000_000;
    let s = s.trim();
    if s.is_empty() {
        return Err("is empty".into());
    }
    if s.starts_with('-') {
        return Err("is negative".into());
    }
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err("has no unit (write 90s, 15m, 1h or 100ms)".into());
    }
    let is_num = |c: char| c.is_ascii_digit() || c == '.';
    let (mut rest, mut total) = (s, 0u128);
    while !rest.is_empty() {
        let (num, tail) = rest.split_at(rest.find(|c: char| !is_num(c)).unwrap_or(rest.len()));
        let (unit, next) = tail.split_at(tail.find(is_num).unwrap_or(tail.len()));
        let per: u128 = match unit {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => NS,
            "m" => 60 * NS,
            "h" => 3_600 * NS,
            "d" => 86_400 * NS,
            "" => return Err("has a number without a unit".into()),
            _ => return Err(format!("has unknown unit {unit:?} (use ms, s, m, h or d)")),
        };
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
        if int.len() + frac.len() == 0 || !digits(int) || !digits(frac) || frac.len() > 18 {
            return Err(format!("has no valid number before {unit:?}"));
        }
        let int: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| "is too long")?
        };
        let frac_ns = if frac.is_empty() {
            0
        } else {
            frac.parse::<u128>().map_err(|_| "is too long")? * per / 10u128.pow(frac.len() as u32)
        };
        total = int
            .checked_mul(per)
            .and_then(|n| n.checked_add(frac_ns))
            .and_then(|n| n.checked_add(total))
            .ok_or("is too long")?;
        rest = next;
    }
    let secs = u64::try_from(total / NS).map_err(|_| "is too long")?;
    Ok(Duration::new(secs, (total % NS) as u32))
}

/// Bytes (`1048576`) or a whole number with a unit: `KB`/`MB`/`GB`/`TB` are powers of 1000,
/// `KiB`/`MiB`/`GiB`/`TiB` (and Kubernetes' `Ki`/`Mi`/`Gi`) powers of 1024; case-insensitive.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    if num.is_empty() {
        return Err("does not start with a whole number".into());
    }
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "ki" | "kib" => KIB,
        "mi" | "mib" => MIB,
        "gi" | "gib" => GIB,
        "ti" | "tib" => GIB * KIB,
        _ => {
            return Err(format!(
                "has unknown unit {unit:?} (use B, KB, KiB, MB or MiB)"
            ))
        }
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| "is too large".into())
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;
const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Substrings that mark a JWT secret as copied from a sample rather than generated.
const WEAK_WORDS: &str =
    "secret test password admin changeme default example demo 12345 placeholder replace_with \
     change-me change_me your-";

/// Settings of the old Go service that mean nothing here; accepted and reported once.
/// Go runtime knobs and file-logging settings are included: this binary logs to stdout.
const LEGACY: &str = "WS_READ_BUFFER_SIZE WS_WRITE_BUFFER_SIZE WS_HANDSHAKE_TIMEOUT \
    WS_ENABLE_COMPRESSION LOG_DIR LOG_FILE LOG_FORMAT LOG_MAX_SIZE LOG_MAX_BACKUPS LOG_MAX_AGE \
    LOG_COMPRESS MONGO_VERBOSE GIN_MODE GOMAXPROCS GOGC GOMEMLIMIT";
const LEGACY_PREFIX: &str = "K8S_";

/// How a variable's text becomes a value; also yields the "expected …" text.
#[derive(Clone, Copy)]
enum Kind {
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
    fn secret(self) -> bool {
        matches!(self, Kind::Secret(_) | Kind::Key(_))
    }
    fn int_bounds(self) -> (u64, u64) {
        match self {
            Kind::Int(lo, hi) | Kind::Size(lo, hi) => (lo, hi),
            _ => (0, u64::MAX),
        }
    }
    fn expected(self) -> String {
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
enum Dflt {
    /// Used when the variable is unset or empty.
    Lit(&'static str),
    Required,
    /// Unset is meaningful; the text says what it means.
    Unset(&'static str),
}

/// One row of the settings table: the only place a variable is described.
struct Var {
    name: &'static str,
    default: Dflt,
    kind: Kind,
    /// Why the default is what it is / what the setting is for.
    why: &'static str,
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
const VARS: &[Var] = &[
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
fn spec(name: &str) -> Option<&'static Var> {
    let generic = name
        .strip_prefix("LLM_PROVIDER_")
        .and_then(|rest| rest.split_once('_'))
        .filter(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .map(|(_, field)| format!("LLM_PROVIDER_<n>_{field}"));
    let key = generic.as_deref().unwrap_or(name);
    VARS.iter().find(|v| v.name == key)
}

/// The value quoted for an error message, cut short so the message stays readable.
fn quote(value: &str) -> String {
    const MAX: usize = 60;
    match value.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}…", &value[..cut]),
        None => format!("{value:?}"),
    }
}

/// An error about `value` of `name`; secrets are called "the value" instead of quoted.
fn bad(name: &str, value: &str, problem: impl fmt::Display) -> ConfigError {
    let var = spec(name);
    let subject = match var {
        Some(v) if !v.kind.secret() => quote(value),
        _ => "the value".to_owned(),
    };
    ConfigError {
        variable: name.to_owned(),
        problem: format!("{subject} {problem}"),
        expected: var.map_or_else(String::new, |v| v.kind.expected()),
    }
}

/// `why` completes "is not set", e.g. `" but S3_BUCKET is"`.
fn missing(name: &str, why: &str) -> ConfigError {
    ConfigError {
        variable: name.to_owned(),
        problem: format!("is not set{why}"),
        expected: spec(name).map_or_else(String::new, |v| v.kind.expected()),
    }
}

/// Reads variables through the table and remembers which names were read.
struct Reader<'a> {
    vars: &'a HashMap<String, String>,
    used: RefCell<BTreeSet<String>>,
}

impl Reader<'_> {
    /// The parsed value, the table default when unset/empty, or `None` when neither.
    fn opt<T>(
        &self,
        name: &str,
        parse: impl FnOnce(&str, Kind) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        let Some(var) = spec(name) else {
            return Err(ConfigError {
                variable: name.to_owned(),
                problem: "is read but has no row in the settings table".into(),
                expected: "a fix in config.rs".into(),
            });
        };
        self.used.borrow_mut().insert(name.to_owned());
        let verbatim = matches!(var.kind, Key(_));
        let set = self
            .vars
            .get(name)
            .map(|v| if verbatim { v.as_str() } else { v.trim() });
        let value = match (set, var.default) {
            (Some(v), _) if !v.is_empty() || matches!(var.kind, Cidrs) => v,
            (_, Lit(d)) => d,
            _ => return Ok(None),
        };
        if value.to_ascii_lowercase().contains("replace_with") {
            return Err(bad(name, value, "is an unfilled REPLACE_WITH… placeholder"));
        }
        if !verbatim && value.chars().any(char::is_control) {
            return Err(bad(name, value, "contains control characters"));
        }
        parse(value, var.kind)
            .map(Some)
            .map_err(|p| bad(name, value, p))
    }

    fn need<T>(
        &self,
        name: &str,
        why: &str,
        parse: impl FnOnce(&str, Kind) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        self.opt(name, parse)?.ok_or_else(|| missing(name, why))
    }

    fn val<T>(
        &self,
        name: &str,
        parse: impl FnOnce(&str, Kind) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        self.need(name, "", parse)
    }

    /// Two variables that only make sense together: both or neither.
    fn pair<A, B>(
        &self,
        (na, pa): (&str, impl FnOnce(&str, Kind) -> Result<A, String>),
        (nb, pb): (&str, impl FnOnce(&str, Kind) -> Result<B, String>),
    ) -> Result<Option<(A, B)>, ConfigError> {
        match (self.opt(na, pa)?, self.opt(nb, pb)?) {
            (Some(a), Some(b)) => Ok(Some((a, b))),
            (None, None) => Ok(None),
            (Some(_), None) => Err(missing(nb, &format!(" but {na} is"))),
            (None, Some(_)) => Err(missing(na, &format!(" but {nb} is"))),
        }
    }
}

impl Config {
    /// Parse and validate. `vars` is the whole environment: unknown names are ignored, the
    /// old service's names are listed in `ignored_legacy`.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let r = Reader {
            vars,
            used: RefCell::default(),
        };
        let mut config = Self::read(&r)?;
        let used = r.used.borrow();
        config.ignored_legacy = vars
            .keys()
            .filter(|k| {
                LEGACY.split(' ').any(|l| l == k.as_str())
                    || k.starts_with(LEGACY_PREFIX)
                    || (k.starts_with("LLM_PROVIDER_") && !used.contains(*k))
            })
            .cloned()
            .collect();
        config.ignored_legacy.sort();
        Ok(config)
    }

    /// [`Config::from_vars`] on `vars` (usually [`environment`]), then
    /// [`Config::check_data_dir`].
    pub fn load(vars: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let config = Self::from_vars(vars)?;
        config.check_data_dir()?;
        Ok(config)
    }

    /// Creates `DATA_DIR` and proves it writable, when the embedded store or local uploads
    /// will use it; kept apart from `from_vars` so parsing stays free of side effects.
    pub fn check_data_dir(&self) -> Result<(), ConfigError> {
        if self.mongo.is_some() && self.s3.is_some() {
            return Ok(());
        }
        let probe = self
            .data_dir
            .join(format!(".chatbox-write-check-{}", std::process::id()));
        std::fs::create_dir_all(&self.data_dir)
            .and_then(|()| std::fs::write(&probe, b"ok"))
            .and_then(|()| std::fs::remove_file(&probe))
            .map_err(|e| {
                bad(
                    "DATA_DIR",
                    &self.data_dir.to_string_lossy(),
                    format!("is not writable ({e})"),
                )
            })
    }

    fn read(r: &Reader) -> Result<Config, ConfigError> {
        let providers = providers(r)?;
        let default_model = match r.opt("DEFAULT_MODEL", p_text)? {
            None => providers[0].id.clone(),
            Some(m) if providers.iter().any(|p| p.id == m) => m,
            Some(m) => {
                let ids: Vec<&str> = providers.iter().map(|p| p.id.as_str()).collect();
                return Err(ConfigError {
                    expected: format!("one of the configured provider IDs: {}", ids.join(", ")),
                    ..bad("DEFAULT_MODEL", &m, "is not a configured provider ID")
                });
            }
        };
        let mongo = r
            .opt("MONGO_URI", p_mongo_uri)?
            .map(|uri| -> Result<_, ConfigError> {
                Ok(MongoConfig {
                    uri,
                    database: r.val("MONGO_DATABASE", p_db_name)?,
                    collection: r.val("MONGO_COLLECTION", p_db_name)?,
                    connect_timeout: r.val("MONGO_CONNECT_TIMEOUT", p_dur)?,
                    retry_attempts: r.val("MONGO_RETRY_ATTEMPTS", p_int)?,
                    retry_delay: r.val("MONGO_RETRY_DELAY", p_dur)?,
                })
            })
            .transpose()?;
        let s3 = r
            .opt("S3_BUCKET", p_bucket)?
            .map(|bucket| -> Result<_, ConfigError> {
                const WHY: &str = " but S3_BUCKET is";
                Ok(S3Config {
                    bucket,
                    region: r.need("S3_REGION", WHY, p_text)?,
                    endpoint: r.opt("S3_ENDPOINT", p_secure_url)?,
                    access_key_id: r.need("S3_ACCESS_KEY_ID", WHY, p_text)?,
                    secret_access_key: r.need("S3_SECRET_ACCESS_KEY", WHY, p_secret)?,
                })
            })
            .transpose()?;
        let smtp = r
            .opt("SMTP_HOST", p_host)?
            .map(|host| -> Result<_, ConfigError> {
                const WHY: &str = " but SMTP_HOST is";
                let port = r.val("SMTP_PORT", p_int)?;
                let (user, pass) = r
                    .pair(("SMTP_USER", p_text), ("SMTP_PASS", p_secret))?
                    .unzip();
                let tls = r.opt("SMTP_TLS", |s, _| choice(s, &SMTP_TLS_MODES))?;
                Ok(SmtpConfig {
                    host,
                    port,
                    tls: tls.unwrap_or(match port {
                        465 => SmtpTls::Tls,
                        25 | 1025 => SmtpTls::Off,
                        _ => SmtpTls::StartTls,
                    }),
                    user,
                    pass,
                    from: r.need("EMAIL_FROM", WHY, |s, _| p_email(s))?,
                    from_name: r.val("EMAIL_FROM_NAME", p_text)?,
                    reply_to: r.opt("EMAIL_REPLY_TO", |s, _| p_email(s))?,
                    admin_emails: r
                        .need("ADMIN_EMAILS", WHY, |s, _| non_empty(list(s, p_email)?))?,
                })
            })
            .transpose()?;
        let sms = r
            .pair(("SMS_ACCOUNT_SID", p_text), ("SMS_AUTH_TOKEN", p_secret))?
            .map(|(account_sid, auth_token)| -> Result<_, ConfigError> {
                const WHY: &str = " but SMS_ACCOUNT_SID is";
                Ok(SmsConfig {
                    account_sid,
                    auth_token,
                    from_number: r.need("SMS_FROM_NUMBER", WHY, p_text)?,
                    admin_phones: r
                        .need("ADMIN_PHONES", WHY, |s, _| non_empty(list(s, p_phone)?))?,
                    api_base: r.val("SMS_API_BASE", p_secure_url)?,
                })
            })
            .transpose()?;

        let c = Config {
            server_host: r.val("SERVER_HOST", |s, _| {
                s.parse().map_err(|_| "is not an IP address".into())
            })?,
            server_port: r.val("SERVER_PORT", p_int)?,
            path_prefix: r.val("CHATBOX_PATH_PREFIX", p_path_prefix)?,
            jwt_secret: r.val("JWT_SECRET", p_jwt_secret)?,
            require_exp: r.val("REQUIRE_EXP", p_bool)?,
            encryption_key: r.opt("ENCRYPTION_KEY", p_encryption_key)?,
            encrypt_all_fields: r.val("ENCRYPT_ALL_FIELDS", p_bool)?,
            max_connections: r.val("MAX_CONNECTIONS", p_int)?,
            max_connections_per_user: r.val("MAX_CONNECTIONS_PER_USER", p_int)?,
            max_message_size: r.val("MAX_MESSAGE_SIZE", p_size)?,
            rate_limit: r.val("RATE_LIMIT", p_int)?,
            rate_limit_window: r.val("RATE_LIMIT_WINDOW", p_dur)?,
            rate_limit_cleanup_interval: r.val("RATE_LIMIT_CLEANUP_INTERVAL", p_dur)?,
            admin_rate_limit: r.val("ADMIN_RATE_LIMIT", p_int)?,
            admin_rate_window: r.val("ADMIN_RATE_WINDOW", p_dur)?,
            reconnect_timeout: r.val("RECONNECT_TIMEOUT", p_dur)?,
            session_ttl: r.val("SESSION_TTL", p_dur)?,
            session_cleanup_interval: r.val("SESSION_CLEANUP_INTERVAL", p_dur)?,
            max_messages_per_session: r.val("MAX_MESSAGES_PER_SESSION", p_int)?,
            llm_stream_timeout: r.val("LLM_STREAM_TIMEOUT", p_dur)?,
            llm_context_messages: r.val("LLM_CONTEXT_MESSAGES", p_int)?,
            llm_max_concurrent: r.val("LLM_MAX_CONCURRENT", p_int)?,
            default_model,
            providers,
            store_workers: r.val("STORE_WORKERS", p_int)?,
            io_workers: r.val("IO_WORKERS", p_int)?,
            mongo,
            data_dir: r.val("DATA_DIR", |s, _| Ok(PathBuf::from(s)))?,
            s3,
            upload: UploadConfig {
                max_size: r.val("UPLOAD_MAX_SIZE", p_size)?,
                prefix: r.val("UPLOAD_PREFIX", |s, _| {
                    path_segments(s).map(|()| s.to_owned())
                })?,
                url_ttl: r.val("UPLOAD_URL_TTL", p_dur)?,
            },
            smtp,
            sms,
            help_escalation_after: r.opt("HELP_ESCALATION_AFTER", p_dur)?,
            admin_panel_url: r.opt("ADMIN_PANEL_URL", |s, _| web_url(s, false))?,
            cors_allowed_origins: r.opt("CORS_ALLOWED_ORIGINS", p_origins)?.flatten(),
            ws_allowed_origins: r.opt("WS_ALLOWED_ORIGINS", p_origins)?.flatten(),
            trusted_proxies: r.val("TRUSTED_PROXIES", p_cidrs)?,
            metrics_port: r.opt("METRICS_PORT", p_int)?,
            metrics_allowed_networks: r.val("METRICS_ALLOWED_NETWORKS", p_cidrs)?,
            ws_ping_period: r.val("WS_PING_PERIOD", p_dur)?,
            ws_pong_wait: r.val("WS_PONG_WAIT", p_dur)?,
            ws_write_wait: r.val("WS_WRITE_WAIT", p_dur)?,
            ws_max_outbound_bytes: r.val("WS_MAX_OUTBOUND_BYTES", p_size)?,
            shutdown_drain_delay: r.val("SHUTDOWN_DRAIN_DELAY", p_dur)?,
            shutdown_timeout: r.val("SHUTDOWN_TIMEOUT", p_dur)?,
            echo_endpoint: r.val("CHATBOX_ECHO", p_bool)?,
            log_level: r.val("LOG_LEVEL", p_log_level)?,
            redis_url: r.opt("REDIS_URL", |s, _| {
                scheme_in(s, &["redis://", "rediss://"]).map(|()| s.to_owned())
            })?,
            ignored_legacy: Vec::new(),
        };

        // Settings valid only relative to another: (holds, variable, value, problem, expected).
        let rules = [
            (
                c.metrics_port != Some(c.server_port),
                "METRICS_PORT",
                c.server_port.to_string(),
                "is also SERVER_PORT".to_owned(),
                "a port other than SERVER_PORT",
            ),
            (
                c.ws_ping_period < c.ws_pong_wait,
                "WS_PING_PERIOD",
                fmt_dur(c.ws_ping_period),
                format!(
                    "is not shorter than WS_PONG_WAIT ({})",
                    fmt_dur(c.ws_pong_wait)
                ),
                "a period shorter than WS_PONG_WAIT, so a pong can arrive in time",
            ),
            (
                c.shutdown_drain_delay < c.shutdown_timeout,
                "SHUTDOWN_DRAIN_DELAY",
                fmt_dur(c.shutdown_drain_delay),
                format!(
                    "is not shorter than SHUTDOWN_TIMEOUT ({})",
                    fmt_dur(c.shutdown_timeout)
                ),
                "a delay shorter than SHUTDOWN_TIMEOUT, which includes it",
            ),
            (
                c.ws_max_outbound_bytes >= c.max_message_size,
                "WS_MAX_OUTBOUND_BYTES",
                c.ws_max_outbound_bytes.to_string(),
                format!("is less than MAX_MESSAGE_SIZE ({})", c.max_message_size),
                "at least MAX_MESSAGE_SIZE, so one full-size message fits",
            ),
        ];
        match rules.into_iter().find(|rule| !rule.0) {
            Some((_, name, value, problem, expected)) => Err(ConfigError {
                expected: expected.into(),
                ..bad(name, &value, problem)
            }),
            None => Ok(c),
        }
    }
}

/// `LLM_PROVIDER_1_*`, `LLM_PROVIDER_2_*`, … up to the first missing ID; the echo provider
/// when there is none.
fn providers(r: &Reader) -> Result<Vec<ProviderConfig>, ConfigError> {
    let mut out: Vec<ProviderConfig> = Vec::new();
    for n in 1usize.. {
        let name = |field: &str| format!("LLM_PROVIDER_{n}_{field}");
        let Some(id) = r.opt(&name("ID"), p_provider_id)? else {
            break;
        };
        if out.iter().any(|p| p.id == id) {
            return Err(bad(
                &name("ID"),
                &id,
                "repeats the ID of an earlier provider",
            ));
        }
        let why = format!(" but {} is", name("ID"));
        let kind = r.need(&name("TYPE"), &why, |s, _| choice(s, &PROVIDER_KINDS))?;
        let echo = kind == ProviderKind::Echo;
        let endpoint = match r.opt(&name("ENDPOINT"), p_secure_url)? {
            Some(e) if !echo => e,
            None if !echo => {
                return Err(missing(
                    &name("ENDPOINT"),
                    &format!("{why} and TYPE is not echo"),
                ))
            }
            _ => String::new(),
        };
        let model = match (r.opt(&name("MODEL"), p_text)?, kind) {
            (Some(m), _) => m,
            (None, ProviderKind::Echo) => "echo".into(),
            (None, ProviderKind::Dify) => String::new(),
            (None, _) => {
                return Err(missing(
                    &name("MODEL"),
                    &format!(" but TYPE is {}", kind.as_str()),
                ))
            }
        };
        out.push(ProviderConfig {
            name: r.opt(&name("NAME"), p_text)?.unwrap_or_else(|| id.clone()),
            api_key: r.opt(&name("API_KEY"), p_secret)?,
            id,
            kind,
            endpoint,
            model,
        });
    }
    if out.is_empty() {
        out.push(ProviderConfig {
            id: "echo".into(),
            name: "Echo (offline)".into(),
            kind: ProviderKind::Echo,
            endpoint: String::new(),
            model: "echo".into(),
            api_key: None,
        });
    }
    Ok(out)
}

// Value parsers. Each gets the trimmed text and the table kind and returns a problem that
// reads as a predicate of the quoted value ("is out of range").

fn p_text(s: &str, _: Kind) -> Result<String, String> {
    Ok(s.to_owned())
}

fn p_secret(s: &str, _: Kind) -> Result<Secret, String> {
    Ok(Secret::new(s))
}

fn p_bool(s: &str, _: Kind) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err("is not a boolean".into()),
    }
}

fn within<N: PartialOrd>(n: N, (lo, hi): (N, N)) -> Result<N, String> {
    if n < lo || n > hi {
        Err("is out of range".into())
    } else {
        Ok(n)
    }
}

fn p_int<T: TryFrom<u64>>(s: &str, k: Kind) -> Result<T, String> {
    let n = s
        .parse::<u64>()
        .map_err(|_| "is not a whole number".to_owned())?;
    T::try_from(within(n, k.int_bounds())?).map_err(|_| "is too large for this platform".into())
}

fn p_size<T: TryFrom<u64>>(s: &str, k: Kind) -> Result<T, String> {
    T::try_from(within(parse_size(s)?, k.int_bounds())?)
        .map_err(|_| "is too large for this platform".into())
}

fn p_dur(s: &str, k: Kind) -> Result<Duration, String> {
    let bounds = match k {
        Dur(lo, hi) => (lo, hi),
        _ => (Duration::ZERO, Duration::MAX),
    };
    within(parse_duration(s)?, bounds)
}

fn p_cidrs(s: &str, _: Kind) -> Result<Vec<Cidr>, String> {
    list(s, Cidr::parse)
}

fn choice<T: Copy>(s: &str, options: &[(&str, T)]) -> Result<T, String> {
    options
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(s))
        .map(|(_, v)| *v)
        .ok_or_else(|| "is not one of the accepted words".into())
}

/// Comma list, entries trimmed, empty entries skipped; a bad entry is named.
fn list<T>(s: &str, f: impl Fn(&str) -> Result<T, String>) -> Result<Vec<T>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| f(e).map_err(|p| format!("has an entry {e:?} that {p}")))
        .collect()
}

fn non_empty<T>(v: Vec<T>) -> Result<Vec<T>, String> {
    if v.is_empty() {
        Err("lists nothing".into())
    } else {
        Ok(v)
    }
}

fn p_log_level(s: &str, _: Kind) -> Result<LevelFilter, String> {
    let s = s.to_ascii_lowercase();
    let s = match s.as_str() {
        "warning" => "warn",
        "fatal" | "panic" | "dpanic" => "error",
        other => other,
    };
    s.parse().map_err(|_| "is not a log level".into())
}

/// `/a/b`: letters, digits, `- . _ ~`, no empty, `.` or `..` segment. `/` alone is refused
/// because routes are `P/healthz`, which would become `//healthz`.
fn p_path_prefix(s: &str, _: Kind) -> Result<String, String> {
    let Some(body) = s.strip_prefix('/') else {
        return Err("does not start with /".into());
    };
    if body.is_empty() {
        return Err("is / alone, which would make routes like //healthz".into());
    }
    if body.ends_with('/') {
        return Err("ends with /".into());
    }
    path_segments(body)?;
    Ok(s.to_owned())
}

/// Checks `/`-separated segments of URL-safe characters; `..` would escape the prefix.
fn path_segments(s: &str) -> Result<(), String> {
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-._~/".contains(*c)))
    {
        return Err(format!("contains {c:?}"));
    }
    if s.split('/').any(|seg| matches!(seg, "" | "." | "..")) {
        return Err("has an empty (// or a leading or trailing /), . or .. segment".into());
    }
    Ok(())
}

fn p_jwt_secret(s: &str, _: Kind) -> Result<Secret, String> {
    if s.len() < 32 {
        return Err(format!("is {} bytes long, fewer than 32", s.len()));
    }
    let lower = s.to_lowercase();
    match WEAK_WORDS.split(' ').find(|w| lower.contains(w)) {
        Some(w) => Err(format!("contains the sample word {w:?}")),
        None => Ok(Secret::new(s)),
    }
}

/// Base64 first (the documented form), then the raw 32 bytes existing deployments use.
fn p_encryption_key(s: &str, _: Kind) -> Result<[u8; 32], String> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok();
    let bytes = match &decoded {
        Some(d) if d.len() == 32 => d.as_slice(),
        _ => s.as_bytes(),
    };
    <[u8; 32]>::try_from(bytes).map_err(|_| match decoded {
        Some(d) => format!(
            "decodes from base64 to {} bytes and is {} bytes as text, not 32",
            d.len(),
            s.len()
        ),
        None => format!("is not base64 and is {} bytes as text, not 32", s.len()),
    })
}

fn p_provider_id(s: &str, _: Kind) -> Result<String, String> {
    if s.len() > 64 || s.contains(|c: char| c.is_whitespace() || c == '"' || c == ',') {
        return Err("is longer than 64 bytes or contains spaces, quotes or commas".into());
    }
    Ok(s.to_owned())
}

fn p_mongo_uri(s: &str, _: Kind) -> Result<Secret, String> {
    scheme_in(s, &["mongodb://", "mongodb+srv://"]).map(|()| Secret::new(s))
}

/// `s` starts with one of `schemes` and has something after it.
fn scheme_in(s: &str, schemes: &[&str]) -> Result<(), String> {
    match schemes.iter().find_map(|p| s.strip_prefix(p)) {
        Some(rest) if !rest.is_empty() => Ok(()),
        Some(_) => Err("has no host".into()),
        None => Err(format!("does not start with {}", schemes.join(" or "))),
    }
}

/// A bare host: a URL or `host:port` here would only fail later, when a mail is sent.
fn p_host(s: &str, _: Kind) -> Result<String, String> {
    if s.contains(|c: char| c.is_whitespace() || "/@".contains(c)) || s.matches(':').count() == 1 {
        return Err("is not a bare host name or IP (the port goes in SMTP_PORT)".into());
    }
    Ok(s.to_owned())
}

fn p_db_name(s: &str, _: Kind) -> Result<String, String> {
    match s
        .chars()
        .find(|c| c.is_whitespace() || "/\\\"$".contains(*c))
    {
        Some(c) => Err(format!("contains {c:?}")),
        None => Ok(s.to_owned()),
    }
}

fn p_bucket(s: &str, _: Kind) -> Result<String, String> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let ok = (3..=63).contains(&s.len())
        && s.chars().all(|c| ok_char(c) || c == '.' || c == '-')
        && s.starts_with(ok_char)
        && s.ends_with(ok_char);
    if ok {
        Ok(s.to_owned())
    } else {
        Err("is not a valid S3 bucket name".into())
    }
}

fn p_email(s: &str) -> Result<String, String> {
    match s.split_once('@') {
        Some((user, domain))
            if !user.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !s.contains(char::is_whitespace) =>
        {
            Ok(s.to_owned())
        }
        _ => Err("is not an address like name@example.org".into()),
    }
}

fn p_phone(s: &str) -> Result<String, String> {
    match s.strip_prefix('+') {
        Some(d) if (6..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(s.to_owned())
        }
        _ => Err("is not an E.164 number like +15551234567".into()),
    }
}

fn p_secure_url(s: &str, _: Kind) -> Result<String, String> {
    web_url(s, true)
}

/// An http(s) URL without trailing `/`. With `secure`, plain http is allowed only to hosts
/// that cannot be on the public internet, since keys and chats travel in it.
fn web_url(s: &str, secure: bool) -> Result<String, String> {
    let s = s.trim_end_matches('/');
    let url = split_url(s)?;
    match url.scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(s.to_owned()),
        "http" if !secure || is_local_host(url.host) => Ok(s.to_owned()),
        "http" => Err(
            "uses plain http:// to a public host, so keys and chats would travel unencrypted"
                .into(),
        ),
        _ => Err("is not an http:// or https:// URL".into()),
    }
}

struct Url<'a> {
    scheme: &'a str,
    host: &'a str,
    path: &'a str,
}

/// `scheme://host[:port][/path]`; user info, query and fragment are refused.
fn split_url(s: &str) -> Result<Url<'_>, String> {
    let (scheme, rest) = s.split_once("://").ok_or("is not a URL (scheme://host…)")?;
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return Err("has an invalid scheme".into());
    }
    if rest.contains(['?', '#']) {
        return Err("has a query or fragment".into());
    }
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.contains('@') {
        return Err("contains user info (user@); credentials have their own variables".into());
    }
    // `port` is "" or ":<port>".
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']').ok_or("has an unclosed [ in the host")?,
        None => authority.split_at(authority.find(':').unwrap_or(authority.len())),
    };
    let port_ok = port.is_empty()
        || (port.strip_prefix(':').and_then(|p| p.parse::<u16>().ok())).is_some_and(|p| p > 0);
    if !port_ok {
        return Err("has an invalid port".into());
    }
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._:".contains(c))
    {
        return Err("has an invalid host".into());
    }
    Ok(Url { scheme, host, path })
}

/// Loopback or private IPs, dotless names (a container or compose service) and names only
/// resolvable inside a cluster or LAN.
fn is_local_host(host: &str) -> bool {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return match ip.to_canonical() {
            IpAddr::V4(a) => a.is_loopback() || a.is_private(),
            IpAddr::V6(a) => a.is_loopback() || a.is_unique_local(),
        };
    }
    let host = host.to_ascii_lowercase();
    !host.contains('.')
        || [".local", ".internal", ".svc", ".cluster.local"]
            .iter()
            .any(|s| host.ends_with(s))
}

/// Origins as browsers send them. A single trailing `/` is dropped (a common copy-paste
/// that could never match); letters are lower-cased, as browsers send them.
fn p_origins(s: &str, _: Kind) -> Result<Option<Vec<String>>, String> {
    let origins = list(s, |e| {
        if e == "*" {
            return Err(
                "is a wildcard; list the origins (browsers refuse * with credentials)".into(),
            );
        }
        let origin = e.strip_suffix('/').unwrap_or(e);
        if !split_url(origin)?.path.is_empty() {
            return Err("has a path".into());
        }
        Ok(origin.to_ascii_lowercase())
    })?;
    Ok(Some(origins).filter(|o| !o.is_empty()))
}

fn fmt_dur(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ]
    .iter()
    .find(|(_, n)| ms >= *n && ms.is_multiple_of(*n))
    .map_or_else(
        || format!("{ms}ms"),
        |(unit, n)| format!("{}{unit}", ms / n),
    )
}

fn fmt_size(b: u64) -> String {
    [
        ("GiB", GIB),
        ("MiB", MIB),
        ("KiB", KIB),
        ("GB", 1_000_000_000),
        ("MB", 1_000_000),
        ("KB", 1_000),
    ]
    .iter()
    .find(|(_, n)| b >= *n && b.is_multiple_of(*n))
    .map_or_else(|| format!("{b}B"), |(unit, n)| format!("{}{unit}", b / n))
}

const USAGE: &str = "\
chatbox: WebSocket chat server with a streaming LLM assistant and admin takeover

Usage:
  chatbox [--dev | --check-config | --help]
  chatbox token --user ID [--name N] [--role admin] [--ttl 1h]

  (no flag)       serve, configured by the environment variables below
  --dev           try it out: bind 127.0.0.1, make a throw-away JWT_SECRET, use the
                  embedded store and the echo provider unless configured, and print links
                  to the chat, sessions and admin pages with fresh user and admin tokens
                  (24 h); refused (exit 2) when JWT_SECRET is set: its tokens would be real
  --dev-with-real-secret
                  --dev, but signing those tokens with the JWT_SECRET that is set
  --check-config  validate the environment and exit (0 valid, 2 a bad value)
  --help          print this text
  token           print a token signed with JWT_SECRET for user ID, optionally with a
                  display name, the admin role and a lifetime (a duration)

A bad value stops start-up with one line naming the variable (exit code 2). An empty
value counts as unset. Durations: 90s, 15m, 1h, 100ms, 7d, 1h30m. Sizes: bytes, 100MB
(10^6 bytes), 1MiB (2^20 bytes).

Environment variables:
";

/// Appends `label` and `text` word-wrapped to 92 columns, continuation lines aligned.
fn wrap(out: &mut String, label: &str, text: &str) {
    const INDENT: usize = 6;
    let mut line = format!("{:INDENT$}{label}", "");
    for word in text.split(' ') {
        if line.len() + word.len() > 92 && line.trim_end().len() > INDENT + label.len() {
            out.push_str(line.trim_end());
            out.push('\n');
            line = " ".repeat(INDENT + label.len());
        }
        line.push_str(word);
        line.push(' ');
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

/// The process environment as text. A non-UTF-8 value of one of our variables is an
/// error naming it; other variables' values are nobody's business here.
pub fn environment() -> Result<HashMap<String, String>, ConfigError> {
    let mut vars = HashMap::new();
    for (k, v) in std::env::vars_os() {
        let Ok(k) = k.into_string() else { continue };
        match v.into_string() {
            Ok(v) => {
                vars.insert(k, v);
            }
            Err(_) if spec(&k).is_some() => {
                return Err(ConfigError {
                    variable: k,
                    problem: "is not valid UTF-8".into(),
                    expected: "UTF-8 text".into(),
                })
            }
            Err(_) => {}
        }
    }
    Ok(vars)
}

/// `chatbox --help`: usage, then every variable of `VARS` with its default and rule.
pub fn help_text() -> String {
    let mut out = String::from(USAGE);
    for v in VARS {
        let default = match v.default {
            Lit(d) => format!("default {d}"),
            Required => "required".to_owned(),
            Unset(meaning) => format!("unset: {meaning}"),
        };
        let _ = writeln!(out, "  {}  ({default})", v.name);
        wrap(&mut out, "value: ", &v.kind.expected());
        wrap(&mut out, "note:  ", v.why);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    type Pairs<'a> = &'a [(&'a str, &'a str)];

    const GOOD_SECRET: &str = "Zq8vN3xW0pLr7Kc2Hm5Tj9Yb4Fg6Ds1QuE";
    /// Base64 of the bytes 0, 1, …, 31.
    const KEY_B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    /// Every variable set to a valid, non-default value.
    const FULL: &[(&str, &str)] = &[
        ("SERVER_HOST", "::"),
        ("SERVER_PORT", "9000"),
        ("CHATBOX_PATH_PREFIX", "/api/chat"),
        ("REQUIRE_EXP", "no"),
        ("ENCRYPTION_KEY", KEY_B64),
        ("ENCRYPT_ALL_FIELDS", "yes"),
        ("MAX_CONNECTIONS", "500"),
        ("MAX_CONNECTIONS_PER_USER", "3"),
        ("MAX_MESSAGE_SIZE", "64KiB"),
        ("RATE_LIMIT", "5"),
        ("RATE_LIMIT_WINDOW", "30s"),
        ("RATE_LIMIT_CLEANUP_INTERVAL", "1m"),
        ("ADMIN_RATE_LIMIT", "7"),
        ("ADMIN_RATE_WINDOW", "2m"),
        ("RECONNECT_TIMEOUT", "5m"),
        ("SESSION_TTL", "1h"),
        ("SESSION_CLEANUP_INTERVAL", "30s"),
        ("MAX_MESSAGES_PER_SESSION", "100"),
        ("LLM_STREAM_TIMEOUT", "1m30s"),
        ("LLM_CONTEXT_MESSAGES", "1"),
        ("LLM_MAX_CONCURRENT", "8"),
        ("DEFAULT_MODEL", "claude"),
        ("LLM_PROVIDER_1_ID", "local"),
        ("LLM_PROVIDER_1_NAME", "Local Llama"),
        ("LLM_PROVIDER_1_TYPE", "openai"),
        ("LLM_PROVIDER_1_ENDPOINT", "http://ollama:11434/v1/"),
        ("LLM_PROVIDER_1_MODEL", "llama3:8b"),
        ("LLM_PROVIDER_1_API_KEY", ""),
        ("LLM_PROVIDER_2_ID", "claude"),
        ("LLM_PROVIDER_2_TYPE", "Anthropic"),
        ("LLM_PROVIDER_2_ENDPOINT", "https://api.anthropic.com/v1"),
        ("LLM_PROVIDER_2_MODEL", "claude-sonnet-4"),
        ("LLM_PROVIDER_2_API_KEY", "sk-ant-key-123"),
        ("STORE_WORKERS", "2"),
        ("IO_WORKERS", "3"),
        ("MONGO_URI", "mongodb+srv://u:pw@cluster0.mongo.net"),
        ("MONGO_DATABASE", "chatdb"),
        ("MONGO_COLLECTION", "chat.sessions"),
        ("MONGO_CONNECT_TIMEOUT", "5s"),
        ("MONGO_RETRY_ATTEMPTS", "5"),
        ("MONGO_RETRY_DELAY", "50ms"),
        ("DATA_DIR", "/var/lib/chatbox"),
        ("S3_BUCKET", "chat-uploads"),
        ("S3_REGION", "eu-west-1"),
        ("S3_ENDPOINT", "http://minio.storage.svc:9000/"),
        ("S3_ACCESS_KEY_ID", "AKIAEXAMPLE"),
        ("S3_SECRET_ACCESS_KEY", "s3-secret-value"),
        ("UPLOAD_MAX_SIZE", "10MiB"),
        ("UPLOAD_PREFIX", "files/chat"),
        ("UPLOAD_URL_TTL", "1h"),
        ("SMTP_HOST", "smtp.example.org"),
        ("SMTP_PORT", "465"),
        ("SMTP_USER", "mailer"),
        ("SMTP_PASS", "mail-pass"),
        ("SMTP_TLS", "starttls"),
        ("EMAIL_FROM", "help@example.org"),
        ("EMAIL_FROM_NAME", "Help Desk"),
        ("EMAIL_REPLY_TO", "team@example.org"),
        ("ADMIN_EMAILS", "a@example.org, b@example.org"),
        ("SMS_ACCOUNT_SID", "AC123"),
        ("SMS_AUTH_TOKEN", "sms-token"),
        ("SMS_FROM_NUMBER", "+15550001111"),
        ("ADMIN_PHONES", "+15551234567,+442071234567"),
        ("SMS_API_BASE", "http://twilio-mock:8080/"),
        ("HELP_ESCALATION_AFTER", "10m"),
        ("ADMIN_PANEL_URL", "https://admin.example.org/sessions/"),
        ("CORS_ALLOWED_ORIGINS", "https://chat.example.org"),
        (
            "WS_ALLOWED_ORIGINS",
            "https://Chat.example.org/, capacitor://localhost",
        ),
        ("TRUSTED_PROXIES", "10.0.0.0/8"),
        ("METRICS_PORT", "9090"),
        ("METRICS_ALLOWED_NETWORKS", "10.0.0.0/8,fd00::/8"),
        ("WS_PING_PERIOD", "20s"),
        ("WS_PONG_WAIT", "30s"),
        ("WS_WRITE_WAIT", "5s"),
        ("WS_MAX_OUTBOUND_BYTES", "256KiB"),
        ("SHUTDOWN_DRAIN_DELAY", "0s"),
        ("SHUTDOWN_TIMEOUT", "10s"),
        ("CHATBOX_ECHO", "true"),
        ("LOG_LEVEL", "debug"),
        ("REDIS_URL", "redis://redis:6379"),
    ];

    /// A valid JWT_SECRET plus `pairs` (later pairs win).
    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        [("JWT_SECRET", GOOD_SECRET)]
            .iter()
            .chain(pairs)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn ok(pairs: &[(&str, &str)]) -> Config {
        Config::from_vars(&env(pairs)).unwrap_or_else(|e| panic!("{pairs:?}: {e}"))
    }

    /// Asserts that `pairs` fail naming `variable`; returns the message.
    fn fails(pairs: &[(&str, &str)], variable: &str) -> String {
        match Config::from_vars(&env(pairs)) {
            Ok(_) => panic!("{pairs:?} should fail naming {variable}"),
            Err(e) => {
                assert_eq!(e.variable, variable, "{pairs:?}: {e}");
                let msg = e.to_string();
                assert!(!msg.contains('\n') && msg.contains("; expected "), "{msg}");
                msg
            }
        }
    }

    #[test]
    fn defaults_with_only_jwt_secret() {
        let c = ok(&[]);
        assert_eq!(c.server_host, IpAddr::from([0, 0, 0, 0]));
        assert_eq!((c.server_port, c.path_prefix.as_str()), (8080, "/chatbox"));
        assert_eq!(c.jwt_secret.expose(), GOOD_SECRET.as_bytes());
        assert!(c.require_exp && !c.encrypt_all_fields && !c.echo_endpoint);
        assert_eq!(c.encryption_key, None);
        assert_eq!(
            (c.max_connections, c.max_connections_per_user),
            (10_000, 10)
        );
        assert_eq!(c.max_message_size, 1_048_576);
        assert_eq!((c.rate_limit, c.rate_limit_window), (100, secs(60)));
        assert_eq!(c.rate_limit_cleanup_interval, secs(300));
        assert_eq!((c.admin_rate_limit, c.admin_rate_window), (20, secs(60)));
        assert_eq!((c.reconnect_timeout, c.session_ttl), (secs(900), secs(900)));
        assert_eq!(c.session_cleanup_interval, secs(300));
        assert_eq!(c.max_messages_per_session, 5000);
        assert_eq!(c.llm_stream_timeout, secs(120));
        assert_eq!((c.llm_context_messages, c.llm_max_concurrent), (20, 64));
        assert_eq!((c.store_workers, c.io_workers), (4, 4));
        assert_eq!(c.providers.len(), 1);
        let echo = &c.providers[0];
        assert_eq!(
            (echo.id.as_str(), echo.name.as_str()),
            ("echo", "Echo (offline)")
        );
        assert_eq!(
            (echo.kind, echo.endpoint.as_str(), echo.model.as_str()),
            (ProviderKind::Echo, "", "echo")
        );
        assert!(echo.api_key.is_none());
        assert_eq!(c.default_model, "echo");
        assert!(c.mongo.is_none() && c.s3.is_none() && c.smtp.is_none() && c.sms.is_none());
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.upload.max_size, 100_000_000);
        assert_eq!(
            (c.upload.prefix.as_str(), c.upload.url_ttl),
            ("chat-files", secs(7 * DAY))
        );
        assert!(c.help_escalation_after.is_none() && c.admin_panel_url.is_none());
        assert!(c.cors_allowed_origins.is_none() && c.ws_allowed_origins.is_none());
        assert_eq!(c.trusted_proxies.len(), 3);
        assert!(c
            .trusted_proxies
            .iter()
            .any(|n| n.contains([172, 31, 255, 1].into())));
        assert_eq!(c.metrics_port, None);
        let open_to = |ip: IpAddr| c.metrics_allowed_networks.iter().any(|n| n.contains(ip));
        assert!(open_to([127, 0, 0, 1].into()) && open_to("::1".parse().unwrap()));
        assert!(open_to([10, 2, 3, 4].into()) && !open_to([8, 8, 8, 8].into()));
        assert_eq!(
            (c.ws_ping_period, c.ws_pong_wait, c.ws_write_wait),
            (secs(54), secs(60), secs(10))
        );
        assert_eq!(c.ws_max_outbound_bytes, 1 << 20);
        assert_eq!(
            (c.shutdown_drain_delay, c.shutdown_timeout),
            (secs(5), secs(25))
        );
        assert_eq!(c.log_level, LevelFilter::Info);
        assert!(c.redis_url.is_none() && c.ignored_legacy.is_empty());
    }

    #[test]
    fn every_variable_set_parses_and_help_covers_every_name_read() {
        let vars = env(FULL);
        let r = Reader {
            vars: &vars,
            used: RefCell::default(),
        };
        let c = Config::read(&r).unwrap_or_else(|e| panic!("{e}"));
        let help = help_text();
        let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut rows = BTreeSet::new();
        for name in r.used.borrow().iter() {
            let row = spec(name).unwrap_or_else(|| panic!("{name} is read but not in VARS"));
            assert!(help.contains(row.name), "--help lacks {}", row.name);
            rows.insert(row.name);
        }
        for v in VARS {
            assert!(
                rows.contains(v.name),
                "{} is in VARS but never read",
                v.name
            );
            assert!(flat.contains(&format!("{} ", v.name)) && flat.contains(&v.kind.expected()));
        }
        assert!(help.contains("chatbox [--dev | --check-config | --help]"));
        assert!(help.contains("chatbox token --user ID [--name N] [--role admin] [--ttl 1h]"));

        assert_eq!(c.server_host, "::".parse::<IpAddr>().unwrap());
        assert_eq!(c.encryption_key, Some(std::array::from_fn(|i| i as u8)));
        assert_eq!(
            (c.max_message_size, c.llm_stream_timeout),
            (65_536, secs(90))
        );
        assert_eq!(c.default_model, "claude");
        let (p1, p2) = (&c.providers[0], &c.providers[1]);
        assert_eq!(
            (p1.name.as_str(), p1.endpoint.as_str()),
            ("Local Llama", "http://ollama:11434/v1")
        );
        assert!(p1.api_key.is_none());
        assert_eq!(
            (p2.kind, p2.name.as_str()),
            (ProviderKind::Anthropic, "claude")
        );
        assert_eq!(
            p2.api_key.as_ref().map(Secret::expose_str),
            Some("sk-ant-key-123")
        );
        let mongo = c.mongo.as_ref().unwrap();
        assert_eq!(
            (mongo.database.as_str(), mongo.collection.as_str()),
            ("chatdb", "chat.sessions")
        );
        assert_eq!(
            (mongo.retry_attempts, mongo.retry_delay),
            (5, Duration::from_millis(50))
        );
        let s3 = c.s3.as_ref().unwrap();
        assert_eq!(
            s3.endpoint.as_deref(),
            Some("http://minio.storage.svc:9000")
        );
        let smtp = c.smtp.as_ref().unwrap();
        assert_eq!((smtp.port, smtp.tls), (465, SmtpTls::StartTls));
        assert_eq!(smtp.admin_emails, ["a@example.org", "b@example.org"]);
        assert_eq!(c.sms.as_ref().unwrap().api_base, "http://twilio-mock:8080");
        assert_eq!(
            c.admin_panel_url.as_deref(),
            Some("https://admin.example.org/sessions")
        );
        let ws = c.ws_allowed_origins.as_deref().unwrap();
        assert_eq!(ws, ["https://chat.example.org", "capacitor://localhost"]);
        assert_eq!(c.metrics_allowed_networks.len(), 2);
        assert_eq!(c.log_level, LevelFilter::Debug);
    }

    #[test]
    fn jwt_secret_missing_short_or_weak() {
        let mut vars = env(&[]);
        vars.remove("JWT_SECRET");
        let e = Config::from_vars(&vars).err().unwrap();
        assert_eq!(
            (e.variable.as_str(), e.problem.as_str()),
            ("JWT_SECRET", "is not set")
        );
        assert!(fails(&[("JWT_SECRET", "")], "JWT_SECRET").contains("is not set"));
        let short = &GOOD_SECRET[..31];
        let msg = fails(&[("JWT_SECRET", short)], "JWT_SECRET");
        assert!(msg.contains("31 bytes") && !msg.contains(short), "{msg}");
        for word in WEAK_WORDS.split(' ') {
            let secret = format!("Qx7{}Zp9vN3xW0pLr7Kc2Hm5Tj9Yb4Fg", word.to_uppercase());
            let msg = fails(&[("JWT_SECRET", &secret)], "JWT_SECRET");
            assert!(
                msg.to_lowercase().contains(word) && !msg.contains(&secret),
                "{msg}"
            );
        }
    }

    #[test]
    fn durations() {
        for (s, want) in [
            ("90s", secs(90)),
            ("15m", secs(900)),
            ("1h", secs(3600)),
            ("100ms", Duration::from_millis(100)),
            ("7d", secs(7 * DAY)),
            ("1h30m", secs(5400)),
            ("1.5h", secs(5400)),
            (" 2m5s ", secs(125)),
            ("250us", Duration::from_micros(250)),
            ("0s", Duration::ZERO),
        ] {
            assert_eq!(parse_duration(s), Ok(want), "{s}");
        }
        for s in [
            "90",
            "",
            "5x",
            "-5s",
            "s",
            "1..5s",
            "1 h",
            "99999999999999999999999d",
        ] {
            assert!(parse_duration(s).is_err(), "{s}");
        }
        assert!(parse_duration("90").unwrap_err().contains("unit"));
        let msg = fails(&[("RATE_LIMIT_WINDOW", "90")], "RATE_LIMIT_WINDOW");
        assert!(
            msg.contains("\"90\" has no unit") && msg.contains("like 90s, 15m, 1h, 100ms"),
            "{msg}"
        );
        assert!(fails(&[("SESSION_TTL", "10s")], "SESSION_TTL").contains("out of range"));
        fails(&[("UPLOAD_URL_TTL", "8d")], "UPLOAD_URL_TTL");
        assert_eq!(
            ok(&[("SHUTDOWN_DRAIN_DELAY", "0s")]).shutdown_drain_delay,
            Duration::ZERO
        );
    }

    #[test]
    fn sizes() {
        for (s, want) in [
            ("1048576", 1_048_576),
            ("100MB", 100_000_000),
            ("1MiB", 1 << 20),
            ("1mib", 1 << 20),
            ("2KB", 2000),
            ("3KiB", 3072),
            ("1GB", 1_000_000_000),
            ("1GiB", 1 << 30),
            ("64 MiB", 64 << 20),
            ("10Mi", 10 << 20),
        ] {
            assert_eq!(parse_size(s), Ok(want), "{s}");
        }
        for s in [
            "",
            "1.5MB",
            "MB",
            "12XB",
            "-1",
            "99999999999999999999",
            "99999999999TiB",
        ] {
            assert!(parse_size(s).is_err(), "{s}");
        }
        fails(&[("MAX_MESSAGE_SIZE", "512")], "MAX_MESSAGE_SIZE");
        fails(&[("MAX_MESSAGE_SIZE", "65MiB")], "MAX_MESSAGE_SIZE");
        assert!(fails(&[("UPLOAD_MAX_SIZE", "lots")], "UPLOAD_MAX_SIZE").contains("\"lots\""));
        assert_eq!(
            ok(&[("UPLOAD_MAX_SIZE", "1GB")]).upload.max_size,
            1_000_000_000
        );
    }

    #[test]
    fn path_prefix() {
        assert_eq!(
            ok(&[("CHATBOX_PATH_PREFIX", "/api/chat-v2")]).path_prefix,
            "/api/chat-v2"
        );
        for bad in [
            "/chatbox/",
            "chatbox",
            "/chat box",
            "/",
            "/chat?x",
            "/chat#x",
            "/a//b",
            "/a/../b",
        ] {
            fails(&[("CHATBOX_PATH_PREFIX", bad)], "CHATBOX_PATH_PREFIX");
        }
        assert!(
            fails(&[("CHATBOX_PATH_PREFIX", "/")], "CHATBOX_PATH_PREFIX").contains("//healthz")
        );
    }

    #[test]
    fn ports_and_counts() {
        for bad in ["0", "65536", "http", "-1", "80.5"] {
            fails(&[("SERVER_PORT", bad)], "SERVER_PORT");
            fails(&[("METRICS_PORT", bad)], "METRICS_PORT");
        }
        fails(&[("METRICS_PORT", "8080")], "METRICS_PORT");
        fails(
            &[("SERVER_PORT", "9090"), ("METRICS_PORT", "9090")],
            "METRICS_PORT",
        );
        assert_eq!(ok(&[("METRICS_PORT", "9090")]).metrics_port, Some(9090));
        for name in [
            "MAX_CONNECTIONS",
            "STORE_WORKERS",
            "RATE_LIMIT",
            "LLM_CONTEXT_MESSAGES",
        ] {
            fails(&[(name, "0")], name);
        }
        fails(&[("MAX_CONNECTIONS", "1000001")], "MAX_CONNECTIONS");
        assert_eq!(
            ok(&[("MAX_CONNECTIONS", "1000000")]).max_connections,
            1_000_000
        );
        fails(&[("SERVER_HOST", "localhost")], "SERVER_HOST");
    }

    #[test]
    fn booleans_and_log_level() {
        for (s, want) in [
            ("true", true),
            ("1", true),
            ("YES", true),
            ("False", false),
            ("0", false),
            ("no", false),
        ] {
            assert_eq!(ok(&[("REQUIRE_EXP", s)]).require_exp, want, "{s}");
        }
        for bad in ["maybe", "on", "2"] {
            fails(&[("CHATBOX_ECHO", bad)], "CHATBOX_ECHO");
        }
        for (s, want) in [
            ("debug", LevelFilter::Debug),
            ("WARNING", LevelFilter::Warn),
            ("off", LevelFilter::Off),
            ("fatal", LevelFilter::Error),
        ] {
            assert_eq!(ok(&[("LOG_LEVEL", s)]).log_level, want, "{s}");
        }
        fails(&[("LOG_LEVEL", "verbose")], "LOG_LEVEL");
    }

    #[test]
    fn encryption_key_forms() {
        let raw = "0123456789abcdefghijklmnopqrstuv";
        assert_eq!(
            ok(&[("ENCRYPTION_KEY", raw)]).encryption_key,
            raw.as_bytes().try_into().ok()
        );
        let key = ok(&[("ENCRYPTION_KEY", KEY_B64)]).encryption_key.unwrap();
        assert_eq!(key[31], 31);
        for bad in [
            "AAECAwQFBgcICQoLDA0ODw==",
            &raw[..31],
            "0123456789abcdefghijklmnopqrstuvw",
        ] {
            let msg = fails(&[("ENCRYPTION_KEY", bad)], "ENCRYPTION_KEY");
            assert!(!msg.contains(bad), "{msg}");
        }
    }

    #[test]
    fn origins() {
        let c = ok(&[(
            "CORS_ALLOWED_ORIGINS",
            " https://a.example.org , https://B.example.org:8443/ ,",
        )]);
        let want = ["https://a.example.org", "https://b.example.org:8443"];
        assert_eq!(c.cors_allowed_origins.unwrap(), want);
        assert!(ok(&[("WS_ALLOWED_ORIGINS", "")])
            .ws_allowed_origins
            .is_none());
        for name in ["CORS_ALLOWED_ORIGINS", "WS_ALLOWED_ORIGINS"] {
            let msg = fails(&[(name, "https://REPLACE_WITH_YOUR_DOMAIN")], name);
            assert!(msg.contains("placeholder"), "{msg}");
            for bad in [
                "https://x.org/app",
                "*",
                "x.org",
                "https://x.org?a=1",
                "https://:80",
            ] {
                fails(&[(name, bad)], name);
            }
        }
        fails(
            &[("ADMIN_PANEL_URL", "https://replace_with.panel")],
            "ADMIN_PANEL_URL",
        );
    }

    #[test]
    fn s3_needs_region_and_keys() {
        let mut pairs = vec![("S3_BUCKET", "chat-files")];
        for next in [
            ("S3_REGION", "eu-west-1"),
            ("S3_ACCESS_KEY_ID", "AKIA1"),
            ("S3_SECRET_ACCESS_KEY", "k"),
        ] {
            assert!(fails(&pairs, next.0).contains("but S3_BUCKET is"));
            pairs.push(next);
        }
        let s3 = ok(&pairs).s3.unwrap();
        assert_eq!((s3.bucket.as_str(), s3.endpoint), ("chat-files", None));
        for (name, bad) in [
            ("S3_BUCKET", "My_Bucket"),
            ("S3_ENDPOINT", "ftp://minio"),
            ("S3_ENDPOINT", "http://s3.amazonaws.com"),
        ] {
            fails(&[pairs.as_slice(), &[(name, bad)]].concat(), name);
        }
        assert!(
            ok(&[("S3_REGION", "eu-west-1")]).s3.is_none(),
            "no bucket, no S3"
        );
    }

    #[test]
    fn provider_endpoints() {
        let openai = |endpoint: &'static str| {
            vec![
                ("LLM_PROVIDER_1_ID", "gpt"),
                ("LLM_PROVIDER_1_TYPE", "openai"),
                ("LLM_PROVIDER_1_MODEL", "gpt-4o"),
                ("LLM_PROVIDER_1_ENDPOINT", endpoint),
            ]
        };
        for good in [
            "https://api.openai.com/v1",
            "http://127.0.0.1:11434/v1",
            "http://[::1]:8000",
            "http://10.1.2.3",
            "http://192.168.1.5:8080",
            "http://172.20.0.3",
            "http://ollama:11434",
            "http://localhost:8000/v1",
            "http://llm.internal",
            "http://vllm.ai.svc:8000",
            "http://vllm.ai.svc.cluster.local",
            "http://box.local",
            "http://[fd00::1]:80",
            "http://[::ffff:10.0.0.1]",
        ] {
            let c = ok(&openai(good));
            assert_eq!(c.providers[0].endpoint, good, "{good}");
            assert_eq!(c.default_model, "gpt");
        }
        assert_eq!(
            ok(&openai("https://api.openai.com/v1/")).providers[0].endpoint,
            "https://api.openai.com/v1"
        );
        for bad in [
            "http://api.openai.com",
            "http://8.8.8.8",
            "http://172.32.0.1",
            "http://[2001:db8::1]",
            "ftp://ollama",
            "api.openai.com",
            "https://",
            "https://user:pw@host",
            "https://host/v1?q=1",
            "https://host:0",
            "https://host:99999",
        ] {
            fails(&openai(bad), "LLM_PROVIDER_1_ENDPOINT");
        }
    }

    #[test]
    fn provider_rules() {
        let one = [("LLM_PROVIDER_1_ID", "a"), ("LLM_PROVIDER_1_TYPE", "echo")];
        fails(&one[..1], "LLM_PROVIDER_1_TYPE");
        let two = |pairs: &[(&'static str, &'static str)]| {
            [&one[..], &[("LLM_PROVIDER_2_ID", "b")], pairs].concat()
        };
        fails(
            &two(&[("LLM_PROVIDER_2_TYPE", "gemini")]),
            "LLM_PROVIDER_2_TYPE",
        );
        fails(
            &two(&[
                ("LLM_PROVIDER_2_TYPE", "openai"),
                ("LLM_PROVIDER_2_MODEL", "m"),
            ]),
            "LLM_PROVIDER_2_ENDPOINT",
        );
        let anthropic = [
            ("LLM_PROVIDER_2_TYPE", "anthropic"),
            ("LLM_PROVIDER_2_ENDPOINT", "https://x.ai"),
        ];
        assert!(fails(&two(&anthropic), "LLM_PROVIDER_2_MODEL").contains("TYPE is anthropic"));
        let dify = ok(&two(&[
            ("LLM_PROVIDER_2_TYPE", "DIFY"),
            ("LLM_PROVIDER_2_ENDPOINT", "https://d.ai/v1"),
        ]));
        let p = &dify.providers[1];
        assert_eq!(
            (p.kind, p.model.as_str(), p.name.as_str()),
            (ProviderKind::Dify, "", "b")
        );
        let echo = &dify.providers[0];
        assert_eq!(
            (echo.kind, echo.model.as_str(), echo.endpoint.as_str()),
            (ProviderKind::Echo, "echo", "")
        );
        assert_eq!(dify.default_model, "a");
        fails(
            &two(&[("LLM_PROVIDER_2_ID", "a"), ("LLM_PROVIDER_2_TYPE", "echo")]),
            "LLM_PROVIDER_2_ID",
        );
        fails(
            &[
                ("LLM_PROVIDER_1_ID", "has space"),
                ("LLM_PROVIDER_1_TYPE", "echo"),
            ],
            "LLM_PROVIDER_1_ID",
        );

        // Numbering stops at the first gap; what lies beyond is reported, not used.
        let gap = ok(&[
            &one[..],
            &[("LLM_PROVIDER_3_ID", "c"), ("LLM_PROVIDER_3_TYPE", "echo")],
        ]
        .concat());
        assert_eq!(gap.providers.len(), 1);
        assert_eq!(
            gap.ignored_legacy,
            ["LLM_PROVIDER_3_ID", "LLM_PROVIDER_3_TYPE"]
        );

        let chosen = two(&[("LLM_PROVIDER_2_TYPE", "echo"), ("DEFAULT_MODEL", "b")]);
        assert_eq!(ok(&chosen).default_model, "b");
        let unknown = two(&[("LLM_PROVIDER_2_TYPE", "echo"), ("DEFAULT_MODEL", "gpt-5")]);
        let msg = fails(&unknown, "DEFAULT_MODEL");
        assert!(
            msg.contains("\"gpt-5\"") && msg.ends_with("IDs: a, b"),
            "{msg}"
        );
        fails(&[("DEFAULT_MODEL", "gpt-5")], "DEFAULT_MODEL");
        assert_eq!(ProviderKind::Anthropic.as_str(), "anthropic");
    }

    #[test]
    fn relative_rules() {
        for ping in ["60s", "70s"] {
            fails(&[("WS_PING_PERIOD", ping)], "WS_PING_PERIOD");
        }
        let msg = fails(&[("SHUTDOWN_DRAIN_DELAY", "25s")], "SHUTDOWN_DRAIN_DELAY");
        assert!(msg.contains("SHUTDOWN_TIMEOUT (25s)"), "{msg}");
        fails(
            &[("WS_MAX_OUTBOUND_BYTES", "512KiB")],
            "WS_MAX_OUTBOUND_BYTES",
        );
        ok(&[
            ("WS_MAX_OUTBOUND_BYTES", "512KiB"),
            ("MAX_MESSAGE_SIZE", "512KiB"),
        ]);
    }

    #[test]
    fn email_and_sms() {
        assert!(fails(&[("SMTP_HOST", "mail")], "EMAIL_FROM").contains("but SMTP_HOST is"));
        for bad in ["smtp://mail", "mail:587", "a b"] {
            fails(&[("SMTP_HOST", bad)], "SMTP_HOST");
        }
        let mail = [
            ("SMTP_HOST", "mail"),
            ("EMAIL_FROM", "bot@x.org"),
            ("ADMIN_EMAILS", "a@x.org"),
        ];
        for (port, tls) in [
            ("587", SmtpTls::StartTls),
            ("465", SmtpTls::Tls),
            ("25", SmtpTls::Off),
            ("1025", SmtpTls::Off),
            ("2525", SmtpTls::StartTls),
        ] {
            let c = ok(&[&mail[..], &[("SMTP_PORT", port)]].concat());
            assert_eq!(c.smtp.unwrap().tls, tls, "{port}");
        }
        let smtp = ok(&[&mail[..], &[("SMTP_TLS", "TLS")]].concat())
            .smtp
            .unwrap();
        assert_eq!(
            (smtp.port, smtp.tls, smtp.from_name.as_str()),
            (587, SmtpTls::Tls, "Chatbox")
        );
        for (pairs, var) in [
            (vec![("SMTP_TLS", "ssl")], "SMTP_TLS"),
            (vec![("SMTP_USER", "u")], "SMTP_PASS"),
            (vec![("SMTP_PASS", "p")], "SMTP_USER"),
            (vec![("ADMIN_EMAILS", "a@x.org, nobody")], "ADMIN_EMAILS"),
            (vec![("ADMIN_EMAILS", " , ")], "ADMIN_EMAILS"),
            (vec![("EMAIL_REPLY_TO", "@x.org")], "EMAIL_REPLY_TO"),
        ] {
            fails(&[&mail[..], &pairs].concat(), var);
        }

        fails(&[("SMS_ACCOUNT_SID", "AC1")], "SMS_AUTH_TOKEN");
        fails(&[("SMS_AUTH_TOKEN", "t")], "SMS_ACCOUNT_SID");
        let sms = [("SMS_ACCOUNT_SID", "AC1"), ("SMS_AUTH_TOKEN", "t")];
        fails(&sms, "SMS_FROM_NUMBER");
        let sms = [
            &sms[..],
            &[
                ("SMS_FROM_NUMBER", "+15550001111"),
                ("ADMIN_PHONES", "+15551234567"),
            ],
        ]
        .concat();
        assert_eq!(ok(&sms).sms.unwrap().api_base, "https://api.twilio.com");
        fails(
            &[&sms[..], &[("ADMIN_PHONES", "+1555, 5551234567")]].concat(),
            "ADMIN_PHONES",
        );
        fails(
            &[&sms[..], &[("SMS_API_BASE", "http://api.twilio.com")]].concat(),
            "SMS_API_BASE",
        );
        assert_eq!(
            ok(&[("HELP_ESCALATION_AFTER", "10m")]).help_escalation_after,
            Some(secs(600))
        );
    }

    #[test]
    fn storage_settings() {
        let mongo = ok(&[("MONGO_URI", "mongodb://db:27017")]).mongo.unwrap();
        assert_eq!(
            (mongo.database.as_str(), mongo.collection.as_str()),
            ("chat", "sessions")
        );
        assert_eq!((mongo.connect_timeout, mongo.retry_attempts), (secs(10), 3));
        assert_eq!(
            (mongo.retry_delay, mongo.uri.expose_str()),
            (Duration::from_millis(100), "mongodb://db:27017")
        );
        for bad in ["postgres://db", "mongodb://", "db:27017"] {
            fails(&[("MONGO_URI", bad)], "MONGO_URI");
        }
        fails(
            &[("MONGO_URI", "mongodb://db"), ("MONGO_DATABASE", "my db")],
            "MONGO_DATABASE",
        );
        for bad in ["/files", "files/", "a/../b", "a b"] {
            fails(&[("UPLOAD_PREFIX", bad)], "UPLOAD_PREFIX");
        }
        assert_eq!(
            ok(&[("UPLOAD_PREFIX", "files/chat")]).upload.prefix,
            "files/chat"
        );
        fails(&[("REDIS_URL", "http://redis")], "REDIS_URL");
    }

    #[test]
    fn secrets_never_appear_in_errors_or_debug() {
        let mail = [
            ("SMTP_HOST", "mail"),
            ("EMAIL_FROM", "bot@x.org"),
            ("ADMIN_EMAILS", "a@x.org"),
        ];
        let provider = [("LLM_PROVIDER_1_ID", "p"), ("LLM_PROVIDER_1_TYPE", "echo")];
        let cases: &[(&str, &str, Pairs)] = &[
            ("JWT_SECRET", "tooShortSecretValue1", &[]),
            (
                "JWT_SECRET",
                "myVeryLongAdminKeyThatIsLongEnough1234567",
                &[],
            ),
            ("ENCRYPTION_KEY", "notAValidKeyQq8vN3", &[]),
            ("SMTP_PASS", "pw-REPLACE_WITH-zz91", &mail),
            ("LLM_PROVIDER_1_API_KEY", "sk-replace_with-abc", &provider),
            (
                "SMS_AUTH_TOKEN",
                "tok\u{1}en-zz92",
                &[("SMS_ACCOUNT_SID", "AC1")],
            ),
            (
                "S3_SECRET_ACCESS_KEY",
                "REPLACE_WITH_s3secret",
                &[
                    ("S3_BUCKET", "b01"),
                    ("S3_REGION", "r"),
                    ("S3_ACCESS_KEY_ID", "k"),
                ],
            ),
            ("MONGO_URI", "postgres://user:hunter2@db", &[]),
            ("REDIS_URL", "http://:hunter2@redis", &[]),
        ];
        for (name, value, extra) in cases {
            let msg = fails(&[*extra, &[(*name, *value)]].concat(), name);
            assert!(
                !msg.contains(value) && !msg.contains("hunter2") && !msg.contains("zz9"),
                "{msg}"
            );
        }
        // Credentials, and URIs that usually embed one, are secret kinds in the table.
        const CREDENTIALS: &str =
            "JWT_SECRET ENCRYPTION_KEY S3_SECRET_ACCESS_KEY MONGO_URI REDIS_URL";
        for v in VARS {
            let by_suffix = ["_PASS", "_API_KEY", "_AUTH_TOKEN"]
                .iter()
                .any(|s| v.name.ends_with(s));
            let secret = by_suffix || CREDENTIALS.split(' ').any(|n| n == v.name);
            assert_eq!(v.kind.secret(), secret, "{}", v.name);
        }
        let c = ok(FULL);
        let debug = format!(
            "{:?}",
            (
                &c.jwt_secret,
                &c.providers,
                &c.mongo,
                &c.s3,
                &c.smtp,
                &c.sms
            )
        );
        for (name, value) in FULL {
            if spec(name).is_some_and(|v| v.kind.secret()) && !value.is_empty() {
                assert!(!debug.contains(value), "{name}");
            }
        }
        assert!(!debug.contains(GOOD_SECRET) && debug.contains("Secret(***)"));
    }

    #[test]
    fn cidrs() {
        let net = |s: &str| Cidr::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let ten = net("10.0.0.0/8");
        assert!(ten.contains(ip("10.1.2.3")) && !ten.contains(ip("11.0.0.1")));
        assert!(ten.contains(ip("::ffff:10.1.2.3")) && !ten.contains(ip("::ffff:11.0.0.1")));
        assert!(
            !ten.contains(ip("::a01:203")),
            "IPv4-compatible is not mapped"
        );
        let host = net("192.168.1.5");
        assert!(host.contains(ip("192.168.1.5")) && !host.contains(ip("192.168.1.6")));
        let ula = net("fd00::/8");
        assert!(
            ula.contains(ip("fd12::1"))
                && !ula.contains(ip("fe80::1"))
                && !ula.contains(ip("10.0.0.1"))
        );
        let lo6 = net("::1");
        assert!(lo6.contains(ip("::1")) && !lo6.contains(ip("::2")));
        let all4 = net("0.0.0.0/0");
        assert!(
            all4.contains(ip("8.8.8.8"))
                && all4.contains(ip("::ffff:1.2.3.4"))
                && !all4.contains(ip("::2"))
        );
        assert!(net("::/0").contains(ip("2001:db8::1")));
        assert_eq!(net("::ffff:10.0.0.0/104"), ten);
        assert_eq!(net("10.1.2.3/8"), ten);
        assert_eq!(ten.to_string(), "10.0.0.0/8");
        for bad in [
            "10.0.0.0/33",
            "fd00::/129",
            "abc",
            "10.0.0.0/x",
            "",
            "10.0.0.0/",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
        assert!(ok(&[("TRUSTED_PROXIES", "")]).trusted_proxies.is_empty());
        assert!(ok(&[("METRICS_ALLOWED_NETWORKS", " ")])
            .metrics_allowed_networks
            .is_empty());
        let msg = fails(
            &[("TRUSTED_PROXIES", "10.0.0.0/8, bogus")],
            "TRUSTED_PROXIES",
        );
        assert!(msg.contains("entry \"bogus\""), "{msg}");
    }

    #[test]
    fn legacy_names_are_collected() {
        let c = ok(&[
            ("WS_READ_BUFFER_SIZE", "4096"),
            ("LOG_DIR", "/var/log"),
            ("K8S_NAMESPACE", "chat"),
            ("MONGO_VERBOSE", "true"),
            ("PATH", "/bin"),
            ("CHATBOX_SERVICE_HOST", "10.0.0.9"),
        ]);
        assert_eq!(
            c.ignored_legacy,
            [
                "K8S_NAMESPACE",
                "LOG_DIR",
                "MONGO_VERBOSE",
                "WS_READ_BUFFER_SIZE"
            ]
        );
    }

    #[test]
    fn messages_are_one_line_and_quote_values() {
        let msg = fails(&[("SERVER_HOST", "1.2.3.4\nx")], "SERVER_HOST");
        assert!(
            msg.starts_with("SERVER_HOST: \"1.2.3.4\\nx\" contains control characters; expected "),
            "{msg}"
        );
        let long = "x".repeat(500);
        assert!(fails(&[("LOG_LEVEL", &long)], "LOG_LEVEL").len() < 200);
        assert_eq!(format!("{:?}", Secret::new("pw")), "Secret(***)");
    }

    #[test]
    fn data_dir_is_created_and_checked() {
        let root = std::env::temp_dir().join(format!("chatbox-config-test-{}", std::process::id()));
        let dir = root.join("nested/data");
        let c = ok(&[("DATA_DIR", dir.to_str().unwrap())]);
        assert_eq!(c.check_data_dir(), Ok(()));
        assert!(dir.is_dir());
        let file = root.join("plain-file");
        std::fs::write(&file, b"x").unwrap();
        let c = ok(&[("DATA_DIR", file.join("sub").to_str().unwrap())]);
        assert_eq!(c.check_data_dir().unwrap_err().variable, "DATA_DIR");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
