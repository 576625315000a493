//! Settings from environment variables (`spec/config.md`), parsed and checked once at
//! start-up so a typo stops the pod at boot instead of failing under traffic.
//!
//! One table, `VARS` (`table.rs`), holds every variable's name, default, accepted form and
//! the reason for its default. The parser takes defaults and range checks from it, errors
//! take their "expected …" text from it and `--help` prints it, so the three cannot drift
//! apart. The result is one typed section per consumer (`config.chat`, `config.store`,
//! `config.llm`, …), so each consumer takes its section whole and a new feature adds
//! its own.
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
//!
//! A leaf: nothing here imports from the rest of the crate.

mod access;
mod auth;
mod chat;
mod cidr;
mod error;
mod help;
mod llm;
mod notify;
mod parse;
mod read;
mod server;
mod store;
mod table;
mod uploads;
mod url;

#[cfg(test)]
mod testing;

use std::collections::HashMap;

use log::LevelFilter;

pub use access::{AccessConfig, MetricsConfig};
pub use auth::AuthConfig;
pub use chat::{AdminConfig, ChatConfig};
pub use cidr::Cidr;
pub use error::{ConfigError, Secret};
pub use help::help_text;
pub use llm::{LlmConfig, ProviderConfig, ProviderKind};
pub use notify::{NotifyConfig, SmsConfig, SmtpConfig, SmtpTls};
pub use parse::{parse_duration, parse_size};
pub use server::{ServerConfig, WsConfig};
pub use store::{MongoConfig, StoreConfig};
pub use uploads::{S3Config, UploadsConfig};

use error::bad;
use parse::{fmt_dur, p_int, p_log_level, scheme_in};
use read::Reader;
use table::{spec, LEGACY, LEGACY_PREFIX, NOT_USED_YET};

/// Every setting, typed, one section per consumer. Defaults and the reasons for them are
/// in `VARS` (see `--help`). Not `Debug`, because `store` is not (it holds key material).
#[derive(Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub ws: WsConfig,
    pub auth: AuthConfig,
    pub access: AccessConfig,
    pub chat: ChatConfig,
    pub admin: AdminConfig,
    pub store: StoreConfig,
    pub llm: LlmConfig,
    pub metrics: MetricsConfig,
    pub uploads: UploadsConfig,
    pub notify: NotifyConfig,
    /// Threads of the io lane (uploads, email, SMS), which starts with its first user.
    pub io_workers: usize,
    pub log_level: LevelFilter,
    /// May embed a password: do not log it.
    pub redis_url: Option<String>,
    /// Names of the old service's settings that were set and are ignored, sorted, for one
    /// info line; also `LLM_PROVIDER_<n>_*` beyond the first gap in the numbering.
    pub ignored_legacy: Vec<String>,
    /// Names of set variables that this version validates but does not use yet, in table
    /// order, for one warning each.
    pub not_used_yet: Vec<String>,
}

impl Config {
    /// Parse and validate. `vars` is the whole environment: unknown names are ignored, the
    /// old service's names are listed in `ignored_legacy`.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let r = Reader {
            vars,
            used: Default::default(),
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
        // Set means what it means everywhere here: present and not empty.
        config.not_used_yet = NOT_USED_YET
            .iter()
            .filter(|name| vars.get(**name).is_some_and(|v| !v.trim().is_empty()))
            .map(|name| (*name).to_owned())
            .collect();
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
        if self.store.mongo.is_some() && self.uploads.s3.is_some() {
            return Ok(());
        }
        let data_dir = &self.store.data_dir;
        let probe = data_dir.join(format!(".chatbox-write-check-{}", std::process::id()));
        std::fs::create_dir_all(data_dir)
            .and_then(|()| std::fs::write(&probe, b"ok"))
            .and_then(|()| std::fs::remove_file(&probe))
            .map_err(|e| {
                bad(
                    "DATA_DIR",
                    &data_dir.to_string_lossy(),
                    format!("is not writable ({e})"),
                )
            })
    }

    fn read(r: &Reader) -> Result<Config, ConfigError> {
        let c = Config {
            llm: LlmConfig::read(r)?,
            store: StoreConfig::read(r)?,
            uploads: UploadsConfig::read(r)?,
            notify: NotifyConfig::read(r)?,
            server: ServerConfig::read(r)?,
            auth: AuthConfig::read(r)?,
            ws: WsConfig::read(r)?,
            access: AccessConfig::read(r)?,
            chat: ChatConfig::read(r)?,
            admin: AdminConfig::read(r)?,
            metrics: MetricsConfig::read(r)?,
            io_workers: r.val("IO_WORKERS", p_int)?,
            log_level: r.val("LOG_LEVEL", p_log_level)?,
            redis_url: r.opt("REDIS_URL", |s, _| {
                scheme_in(s, &["redis://", "rediss://"]).map(|()| s.to_owned())
            })?,
            ignored_legacy: Vec::new(),
            not_used_yet: Vec::new(),
        };

        // Settings valid only relative to another: (holds, variable, value, problem, expected).
        let (server, ws) = (&c.server, &c.ws);
        let rules = [
            (
                c.metrics.port != Some(server.port),
                "METRICS_PORT",
                server.port.to_string(),
                "is also SERVER_PORT".to_owned(),
                "a port other than SERVER_PORT",
            ),
            (
                ws.ping_period < ws.pong_wait,
                "WS_PING_PERIOD",
                fmt_dur(ws.ping_period),
                format!(
                    "is not shorter than WS_PONG_WAIT ({})",
                    fmt_dur(ws.pong_wait)
                ),
                "a period shorter than WS_PONG_WAIT, so a pong can arrive in time",
            ),
            (
                server.shutdown_drain_delay < server.shutdown_timeout,
                "SHUTDOWN_DRAIN_DELAY",
                fmt_dur(server.shutdown_drain_delay),
                format!(
                    "is not shorter than SHUTDOWN_TIMEOUT ({})",
                    fmt_dur(server.shutdown_timeout)
                ),
                "a delay shorter than SHUTDOWN_TIMEOUT, which includes it",
            ),
            (
                ws.max_outbound_bytes >= ws.max_message_size,
                "WS_MAX_OUTBOUND_BYTES",
                ws.max_outbound_bytes.to_string(),
                format!("is less than MAX_MESSAGE_SIZE ({})", ws.max_message_size),
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

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeSet;
    use std::net::IpAddr;
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::config::table::{secs, DAY, VARS};
    use crate::config::testing::*;

    #[test]
    fn defaults_with_only_jwt_secret() {
        let c = ok(&[]);
        assert_eq!(c.server.host, IpAddr::from([0, 0, 0, 0]));
        assert_eq!(
            (c.server.port, c.server.path_prefix.as_str()),
            (8080, "/chatbox")
        );
        assert_eq!(c.auth.jwt_secret.expose(), GOOD_SECRET.as_bytes());
        assert!(c.auth.require_exp && !c.store.encrypt_all_fields && !c.server.echo_endpoint);
        assert_eq!(c.store.encryption_key, None);
        assert_eq!(
            (c.server.max_connections, c.access.max_connections_per_user),
            (10_000, 10)
        );
        assert_eq!(c.ws.max_message_size, 1_048_576);
        assert_eq!((c.chat.rate_limit, c.chat.rate_window), (100, secs(60)));
        assert_eq!(c.chat.rate_cleanup, secs(300));
        assert_eq!((c.admin.rate_limit, c.admin.rate_window), (20, secs(60)));
        assert_eq!(
            (c.chat.reconnect_timeout, c.chat.session_ttl),
            (secs(900), secs(900))
        );
        assert_eq!(c.chat.sweep_interval, secs(300));
        assert_eq!(c.chat.max_messages, 5000);
        assert_eq!(c.llm.stream_timeout, secs(120));
        assert_eq!((c.chat.context_messages, c.llm.max_concurrent), (20, 64));
        assert_eq!((c.store.workers, c.io_workers), (4, 4));
        assert_eq!(c.llm.providers.len(), 1);
        let echo = &c.llm.providers[0];
        assert_eq!(
            (echo.id.as_str(), echo.name.as_str()),
            ("echo", "Echo (offline)")
        );
        assert_eq!(
            (echo.kind, echo.endpoint.as_str(), echo.model.as_str()),
            (ProviderKind::Echo, "", "echo")
        );
        assert!(echo.api_key.is_none());
        assert_eq!(c.llm.default_model, "echo");
        assert!(
            c.store.mongo.is_none()
                && c.uploads.s3.is_none()
                && c.notify.smtp.is_none()
                && c.notify.sms.is_none()
        );
        assert_eq!(c.store.data_dir, PathBuf::from("./data"));
        assert_eq!(c.uploads.max_size, 100_000_000);
        assert_eq!(
            (c.uploads.prefix.as_str(), c.uploads.url_ttl),
            ("chat-files", secs(7 * DAY))
        );
        assert!(c.notify.help_escalation_after.is_none() && c.notify.admin_panel_url.is_none());
        assert!(c.access.cors_allowed_origins.is_none() && c.access.ws_allowed_origins.is_none());
        assert_eq!(c.access.trusted_proxies.len(), 3);
        assert!(c
            .access
            .trusted_proxies
            .iter()
            .any(|n| n.contains([172, 31, 255, 1].into())));
        assert_eq!(c.metrics.port, None);
        let open_to = |ip: IpAddr| c.metrics.allowed_networks.iter().any(|n| n.contains(ip));
        assert!(open_to([127, 0, 0, 1].into()) && open_to("::1".parse().unwrap()));
        assert!(open_to([10, 2, 3, 4].into()) && !open_to([8, 8, 8, 8].into()));
        assert_eq!(
            (c.ws.ping_period, c.ws.pong_wait, c.ws.write_wait),
            (secs(54), secs(60), secs(10))
        );
        assert_eq!(c.ws.max_outbound_bytes, 1 << 20);
        assert_eq!(
            (c.server.shutdown_drain_delay, c.server.shutdown_timeout),
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

        assert_eq!(c.server.host, "::".parse::<IpAddr>().unwrap());
        assert_eq!(
            c.store.encryption_key,
            Some(std::array::from_fn(|i| i as u8))
        );
        assert_eq!(
            (c.ws.max_message_size, c.llm.stream_timeout),
            (65_536, secs(90))
        );
        assert_eq!(c.llm.default_model, "claude");
        let (p1, p2) = (&c.llm.providers[0], &c.llm.providers[1]);
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
        let mongo = c.store.mongo.as_ref().unwrap();
        assert_eq!(
            (mongo.database.as_str(), mongo.collection.as_str()),
            ("chatdb", "chat.sessions")
        );
        assert_eq!(
            (mongo.retry_attempts, mongo.retry_delay),
            (5, Duration::from_millis(50))
        );
        let s3 = c.uploads.s3.as_ref().unwrap();
        assert_eq!(
            s3.endpoint.as_deref(),
            Some("http://minio.storage.svc:9000")
        );
        let smtp = c.notify.smtp.as_ref().unwrap();
        assert_eq!((smtp.port, smtp.tls), (465, SmtpTls::StartTls));
        assert_eq!(smtp.admin_emails, ["a@example.org", "b@example.org"]);
        assert_eq!(
            c.notify.sms.as_ref().unwrap().api_base,
            "http://twilio-mock:8080"
        );
        assert_eq!(
            c.notify.admin_panel_url.as_deref(),
            Some("https://admin.example.org/sessions")
        );
        let ws = c.access.ws_allowed_origins.as_deref().unwrap();
        assert_eq!(ws, ["https://chat.example.org", "capacitor://localhost"]);
        assert_eq!(c.metrics.allowed_networks.len(), 2);
        assert_eq!(c.log_level, LevelFilter::Debug);
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
    fn redis_url() {
        fails(&[("REDIS_URL", "http://redis")], "REDIS_URL");
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

    #[test]
    fn unused_settings_are_named_when_set() {
        for name in NOT_USED_YET {
            assert!(spec(name).is_some(), "{name} is not in VARS");
        }
        let c = ok(&[
            ("REDIS_URL", "redis://redis:6379"),
            ("SMTP_PORT", " "),
            ("IO_WORKERS", "4"),
            ("S3_REGION", "eu-west-1"),
        ]);
        assert_eq!(c.not_used_yet, ["REDIS_URL"]);
        assert!(ok(&[]).not_used_yet.is_empty());
    }
}
