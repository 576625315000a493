//! What the chat engine keeps: its limits and timing, held as they are in its `Settings`.

use std::time::Duration;

use super::error::ConfigError;
use super::parse::{p_dur, p_int};
use super::read::Reader;

#[derive(Clone, Debug)]
pub struct ChatConfig {
    /// At least 1: the new user message itself is one of them.
    pub context_messages: usize,
    pub max_messages: usize,
    /// User messages per `rate_window` per user.
    pub rate_limit: u32,
    pub rate_window: Duration,
    /// How often idle rate-limit entries are dropped.
    pub rate_cleanup: Duration,
    /// How long a streaming reply is kept for replay.
    pub reconnect_timeout: Duration,
    pub session_ttl: Duration,
    /// How often idle sessions are swept.
    pub sweep_interval: Duration,
}

impl ChatConfig {
    pub(super) fn read(r: &Reader) -> Result<ChatConfig, ConfigError> {
        Ok(ChatConfig {
            context_messages: r.val("LLM_CONTEXT_MESSAGES", p_int)?,
            max_messages: r.val("MAX_MESSAGES_PER_SESSION", p_int)?,
            rate_limit: r.val("RATE_LIMIT", p_int)?,
            rate_window: r.val("RATE_LIMIT_WINDOW", p_dur)?,
            rate_cleanup: r.val("RATE_LIMIT_CLEANUP_INTERVAL", p_dur)?,
            reconnect_timeout: r.val("RECONNECT_TIMEOUT", p_dur)?,
            session_ttl: r.val("SESSION_TTL", p_dur)?,
            sweep_interval: r.val("SESSION_CLEANUP_INTERVAL", p_dur)?,
        })
    }
}

/// The admin API's rate limit.
#[derive(Clone, Debug)]
pub struct AdminConfig {
    /// Admin HTTP requests per `rate_window` per admin.
    pub rate_limit: u32,
    pub rate_window: Duration,
}

impl AdminConfig {
    pub(super) fn read(r: &Reader) -> Result<AdminConfig, ConfigError> {
        Ok(AdminConfig {
            rate_limit: r.val("ADMIN_RATE_LIMIT", p_int)?,
            rate_window: r.val("ADMIN_RATE_WINDOW", p_dur)?,
        })
    }
}
