//! Telling admins that a session needs one (spec/integrations.md §Notifications): a mail
//! over SMTP (`email.rs`), a text per admin phone in Twilio's REST wire format
//! (`sms.rs`), or, with neither configured, a log line (`log.rs`).
//!
//! Sending blocks on the network, so it runs on the `io` lane, never on the loop. This
//! module takes plain values (an [`Alert`]), not the chat core's types: the application
//! converts a notice. A failed channel is reported back, never to the user; the caller
//! logs and counts it.

pub mod email;
mod log;
pub mod sms;

use std::fmt;

use crate::config::NotifyConfig;

use email::Mailer;
use sms::Texter;

/// One session that needs an admin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Alert<'a> {
    pub session_id: &'a str,
    pub user_id: &'a str,
    /// When it was asked for, Unix milliseconds.
    pub at_ms: i64,
    /// Nobody joined within `HELP_ESCALATION_AFTER` of the user's request.
    pub escalated: bool,
}

/// A way of reaching admins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    Email,
    Sms,
}

impl Channel {
    /// The word in logs.
    pub fn name(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
        }
    }
}

/// Why one channel did not deliver an alert.
#[derive(Debug, PartialEq, Eq)]
pub enum NotifyError {
    /// The message could not be built from the configured addresses.
    Message(String),
    /// The server could not be reached, or the connection broke or timed out.
    Transport(String),
    /// The server answered and refused (authentication, a recipient, the request).
    Refused(String),
}

impl fmt::Display for NotifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotifyError::Message(detail) => write!(f, "cannot build the message: {detail}"),
            NotifyError::Transport(detail) => write!(f, "transport failed: {detail}"),
            NotifyError::Refused(detail) => write!(f, "refused: {detail}"),
        }
    }
}

impl std::error::Error for NotifyError {}

/// Every configured channel, built once at start-up; shared by the io lane's threads.
pub struct Notifier {
    mailer: Option<Mailer>,
    texter: Option<Texter>,
}

impl Notifier {
    /// Fails where the mailer cannot be set up (see [`Mailer::new`]).
    pub fn new(config: &NotifyConfig) -> Result<Notifier, NotifyError> {
        let link_base = config.admin_panel_url.as_deref();
        Ok(Notifier {
            mailer: config
                .smtp
                .as_ref()
                .map(|smtp| Mailer::new(smtp, link_base, config.timeout))
                .transpose()?,
            texter: config
                .sms
                .as_ref()
                .map(|sms| Texter::new(sms, config.timeout)),
        })
    }

    /// Whether sending goes over the network (then it belongs on the io lane); `false`
    /// means alerts are only logged.
    pub fn has_channels(&self) -> bool {
        self.mailer.is_some() || self.texter.is_some()
    }

    /// Sends `alert` on every configured channel, each whatever the others did, and
    /// returns the ones that failed with why. With no channel, logs it.
    pub fn send(&self, alert: &Alert) -> Vec<(Channel, NotifyError)> {
        if !self.has_channels() {
            log::logged(alert);
            return Vec::new();
        }
        let mail = self
            .mailer
            .as_ref()
            .map(|m| (Channel::Email, m.send(alert)));
        let texts = self.texter.as_ref().map(|t| (Channel::Sms, t.send(alert)));
        mail.into_iter()
            .chain(texts)
            .filter_map(|(channel, sent)| sent.err().map(|error| (channel, error)))
            .collect()
    }
}
