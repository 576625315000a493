//! `chatbox_notification_failures_total{channel}`: help-request mails and texts that did
//! not go out. They are never shown to the user who asked for help, so this counter
//! (and the log line beside each) is how an operator learns that SMTP or SMS is broken.

use super::instruments::Counter;
use super::text::{Exposition, Kind, Value};

const NAME: &str = "chatbox_notification_failures_total";

/// The `channel` label: a way of reaching admins that can fail (the log fallback cannot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotifyChannel {
    Email,
    Sms,
}

impl NotifyChannel {
    const ALL: [NotifyChannel; 2] = [NotifyChannel::Email, NotifyChannel::Sms];

    fn label(self) -> &'static str {
        match self {
            NotifyChannel::Email => "email",
            NotifyChannel::Sms => "sms",
        }
    }
}

/// One counter per channel, each shown from the first scrape.
#[derive(Debug, Default)]
pub struct NotifyFailures {
    counters: [Counter; NotifyChannel::ALL.len()],
}

impl NotifyFailures {
    pub fn failed(&self, channel: NotifyChannel) {
        self.counters[channel as usize].inc();
    }

    pub(super) fn render(&self, out: &mut Exposition) {
        out.family(
            NAME,
            Kind::Counter,
            "Help-request notifications that a channel failed to send.",
        );
        for channel in NotifyChannel::ALL {
            let value = Value::Int(self.counters[channel as usize].get());
            out.sample(NAME, &[("channel", channel.label())], value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_channel_is_a_series_from_the_start() {
        let failures = NotifyFailures::default();
        failures.failed(NotifyChannel::Sms);
        failures.failed(NotifyChannel::Sms);
        let mut out = Exposition::default();
        failures.render(&mut out);
        let text = out.into_string();
        assert!(text.contains("# TYPE chatbox_notification_failures_total counter"));
        assert!(text.contains("chatbox_notification_failures_total{channel=\"email\"} 0\n"));
        assert!(text.contains("chatbox_notification_failures_total{channel=\"sms\"} 2\n"));
    }
}
