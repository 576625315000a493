//! Who may reach what: browser origins, the proxies whose `X-Forwarded-For` is believed,
//! sockets per user, and the networks allowed to scrape metrics.

use super::cidr::Cidr;
use super::error::ConfigError;
use super::parse::{p_cidrs, p_int};
use super::read::Reader;
use super::url::p_origins;

#[derive(Clone, Debug)]
pub struct AccessConfig {
    /// `None` = CORS off. Entries are lower-case `scheme://host[:port]`, never empty.
    pub cors_allowed_origins: Option<Vec<String>>,
    /// `None` = any origin. Same form as `cors_allowed_origins`.
    pub ws_allowed_origins: Option<Vec<String>>,
    /// Empty = no peer is trusted: `X-Forwarded-For` is never believed.
    pub trusted_proxies: Vec<Cidr>,
    pub max_connections_per_user: usize,
}

impl AccessConfig {
    pub(super) fn read(r: &Reader) -> Result<AccessConfig, ConfigError> {
        Ok(AccessConfig {
            cors_allowed_origins: r.opt("CORS_ALLOWED_ORIGINS", p_origins)?.flatten(),
            ws_allowed_origins: r.opt("WS_ALLOWED_ORIGINS", p_origins)?.flatten(),
            trusted_proxies: r.val("TRUSTED_PROXIES", p_cidrs)?,
            max_connections_per_user: r.val("MAX_CONNECTIONS_PER_USER", p_int)?,
        })
    }
}

/// The Prometheus endpoint: its own listener, and who may scrape it.
#[derive(Clone, Debug)]
pub struct MetricsConfig {
    /// Differs from the server's port when set.
    pub port: Option<u16>,
    /// Empty = open to every address (the operator asked for it with an empty value).
    pub allowed_networks: Vec<Cidr>,
}

impl MetricsConfig {
    pub(super) fn read(r: &Reader) -> Result<MetricsConfig, ConfigError> {
        Ok(MetricsConfig {
            port: r.opt("METRICS_PORT", p_int)?,
            allowed_networks: r.val("METRICS_ALLOWED_NETWORKS", p_cidrs)?,
        })
    }
}
