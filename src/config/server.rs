//! What `server.rs` and the reactor read: where to listen, how many connections, how
//! WebSockets are kept alive and bounded, and how long a shutdown takes.

use std::net::IpAddr;
use std::time::Duration;

use super::error::ConfigError;
use super::parse::{p_bool, p_dur, p_int, p_size, path_segments};
use super::read::Reader;
use super::table::Kind;

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub host: IpAddr,
    pub port: u16,
    /// `P`: starts with `/`, never ends with one, so routes are `format!("{P}/healthz")`.
    pub path_prefix: String,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// `CHATBOX_ECHO`.
    pub echo_endpoint: bool,
    /// Shorter than `shutdown_timeout`: the drain delay is the first part of that total.
    pub shutdown_drain_delay: Duration,
    pub shutdown_timeout: Duration,
}

impl ServerConfig {
    pub(super) fn read(r: &Reader) -> Result<ServerConfig, ConfigError> {
        Ok(ServerConfig {
            host: r.val("SERVER_HOST", |s, _| {
                s.parse().map_err(|_| "is not an IP address".into())
            })?,
            port: r.val("SERVER_PORT", p_int)?,
            path_prefix: r.val("CHATBOX_PATH_PREFIX", p_path_prefix)?,
            max_connections: r.val("MAX_CONNECTIONS", p_int)?,
            max_connections_per_ip: r.val("MAX_CONNECTIONS_PER_IP", p_int)?,
            echo_endpoint: r.val("CHATBOX_ECHO", p_bool)?,
            shutdown_drain_delay: r.val("SHUTDOWN_DRAIN_DELAY", p_dur)?,
            shutdown_timeout: r.val("SHUTDOWN_TIMEOUT", p_dur)?,
        })
    }
}

/// One WebSocket's limits and keep-alive timing.
#[derive(Clone, Debug)]
pub struct WsConfig {
    pub max_message_size: usize,
    /// Shorter than `pong_wait`.
    pub ping_period: Duration,
    pub pong_wait: Duration,
    pub write_wait: Duration,
    /// At least `max_message_size`, so one full-size message always fits.
    pub max_outbound_bytes: usize,
}

impl WsConfig {
    pub(super) fn read(r: &Reader) -> Result<WsConfig, ConfigError> {
        Ok(WsConfig {
            max_message_size: r.val("MAX_MESSAGE_SIZE", p_size)?,
            ping_period: r.val("WS_PING_PERIOD", p_dur)?,
            pong_wait: r.val("WS_PONG_WAIT", p_dur)?,
            write_wait: r.val("WS_WRITE_WAIT", p_dur)?,
            max_outbound_bytes: r.val("WS_MAX_OUTBOUND_BYTES", p_size)?,
        })
    }
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

#[cfg(test)]
mod tests {
    use crate::config::testing::*;

    #[test]
    fn path_prefix() {
        assert_eq!(
            ok(&[("CHATBOX_PATH_PREFIX", "/api/chat-v2")])
                .server
                .path_prefix,
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
}
