//! Help-request mail over SMTP with `lettre`: one message to every `ADMIN_EMAILS`
//! address, with a text and an HTML part (spec/integrations.md §Notifications).
//!
//! TLS is rustls with ring and the compiled-in web PKI roots (a `FROM scratch` image has
//! no CA files): `starttls` requires the upgrade (no silent fallback to plain text, which
//! would hand the password to anyone in between), `tls` is TLS from the first byte,
//! `off` is for a relay inside the node or cluster. No connection pool: help requests
//! are rare, and a pooled connection the server dropped meanwhile would fail the next.

use std::time::Duration;

use lettre::address::AddressError;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::Error as SmtpError;
use lettre::{Message, SmtpTransport, Transport};

use super::{Alert, NotifyError};
use crate::config::{SmtpConfig, SmtpTls};
use crate::time::rfc3339_millis;

pub struct Mailer {
    transport: SmtpTransport,
    from: Mailbox,
    reply_to: Option<Mailbox>,
    to: Vec<Mailbox>,
    /// `ADMIN_PANEL_URL`, without a trailing `/`.
    link_base: Option<String>,
}

impl Mailer {
    /// Fails on an address `lettre` cannot use (the settings are checked with the same
    /// parser, so only a config built by hand gets here) or a TLS set-up it refuses:
    /// either stops start-up rather than the first help request.
    pub fn new(
        smtp: &SmtpConfig,
        link_base: Option<&str>,
        timeout: Duration,
    ) -> Result<Mailer, NotifyError> {
        let tls = match smtp.tls {
            SmtpTls::Off => Tls::None,
            SmtpTls::StartTls => Tls::Required(tls_parameters(&smtp.host)?),
            SmtpTls::Tls => Tls::Wrapper(tls_parameters(&smtp.host)?),
        };
        let mut builder = SmtpTransport::builder_dangerous(&smtp.host)
            .port(smtp.port)
            .tls(tls)
            .timeout(Some(timeout));
        if let (Some(user), Some(pass)) = (&smtp.user, &smtp.pass) {
            builder =
                builder.credentials(Credentials::new(user.clone(), pass.expose_str().to_owned()));
        }
        let address = |text: &str| {
            text.parse()
                .map_err(|error: AddressError| NotifyError::Message(format!("{text}: {error}")))
        };
        Ok(Mailer {
            transport: builder.build(),
            from: Mailbox::new(Some(smtp.from_name.clone()), address(&smtp.from)?),
            reply_to: smtp
                .reply_to
                .as_deref()
                .map(|a| address(a).map(|a| Mailbox::new(None, a)))
                .transpose()?,
            to: smtp
                .admin_emails
                .iter()
                .map(|a| address(a).map(|a| Mailbox::new(None, a)))
                .collect::<Result<_, _>>()?,
            link_base: link_base.map(str::to_owned),
        })
    }

    pub fn send(&self, alert: &Alert) -> Result<(), NotifyError> {
        let message = self.message(alert)?;
        self.transport
            .send(&message)
            .map(drop)
            .map_err(|error| classify(&error))
    }

    fn message(&self, alert: &Alert) -> Result<Message, NotifyError> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(subject(alert));
        if let Some(reply_to) = &self.reply_to {
            builder = builder.reply_to(reply_to.clone());
        }
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        let body = Body::of(alert, self.link_base.as_deref());
        builder
            .multipart(MultiPart::alternative_plain_html(body.text(), body.html()))
            .map_err(|error| NotifyError::Message(error.to_string()))
    }
}

fn tls_parameters(host: &str) -> Result<TlsParameters, NotifyError> {
    TlsParameters::new(host.to_owned()).map_err(|error| NotifyError::Message(chain(&error)))
}

/// The server's refusals (it answered with an error code) apart from everything else:
/// a refusal is fixed in the configuration, a transport failure may pass.
fn classify(error: &SmtpError) -> NotifyError {
    if error.is_permanent() || error.is_transient() {
        NotifyError::Refused(chain(error))
    } else {
        NotifyError::Transport(chain(error))
    }
}

/// `lettre` keeps the cause (the I/O error, the server's text) as the source.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `Help Request - User <user_id>`, as the spec says; an escalation says so after it,
/// so that filters on the spec's text still match.
pub fn subject(alert: &Alert) -> String {
    let escalated = if alert.escalated {
        " (escalated: no admin has joined yet)"
    } else {
        ""
    };
    format!("Help Request - User {}{escalated}", alert.user_id)
}

/// What both parts say.
struct Body<'a> {
    alert: &'a Alert<'a>,
    time: String,
    link: Option<String>,
}

impl<'a> Body<'a> {
    fn of(alert: &'a Alert<'a>, link_base: Option<&str>) -> Body<'a> {
        Body {
            alert,
            time: rfc3339_millis(alert.at_ms),
            link: link_base.map(|base| format!("{base}/{}", alert.session_id)),
        }
    }

    fn lead(&self) -> &'static str {
        if self.alert.escalated {
            "is still waiting for an admin: nobody has joined the session yet."
        } else {
            "needs assistance."
        }
    }

    fn text(&self) -> String {
        let Alert {
            user_id,
            session_id,
            ..
        } = self.alert;
        let mut text = format!(
            "User {user_id} {}\n\nUser: {user_id}\nSession: {session_id}\nTime: {}\n",
            self.lead(),
            self.time
        );
        if let Some(link) = &self.link {
            text.push_str(&format!("\nOpen the session: {link}\n"));
        }
        text
    }

    fn html(&self) -> String {
        let user = escape(self.alert.user_id);
        let session = escape(self.alert.session_id);
        let mut html = format!(
            "<!DOCTYPE html>\n<html><body>\n<p>User <strong>{user}</strong> {}</p>\n\
             <ul>\n<li>User: {user}</li>\n<li>Session: {session}</li>\n<li>Time: {}</li>\n</ul>\n",
            self.lead(),
            self.time
        );
        if let Some(link) = &self.link {
            html.push_str(&format!(
                "<p><a href=\"{link}\">Open the session</a></p>\n",
                link = escape(link)
            ));
        }
        html.push_str("</body></html>\n");
        html
    }
}

/// Ids come from clients: in HTML they are text, never markup.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALERT: Alert = Alert {
        session_id: "s<1>&\"x\"",
        user_id: "u-7",
        at_ms: 1_700_000_000_123,
        escalated: false,
    };

    #[test]
    fn subject_is_the_spec_s_and_says_escalated() {
        assert_eq!(subject(&ALERT), "Help Request - User u-7");
        let escalated = subject(&Alert {
            escalated: true,
            ..ALERT
        });
        assert!(escalated.starts_with("Help Request - User u-7 (escalated"));
    }

    #[test]
    fn both_parts_name_user_session_time_and_link() {
        let body = Body::of(&ALERT, Some("https://admin.example.org/s"));
        let text = body.text();
        for part in [
            "User: u-7",
            "Session: s<1>&\"x\"",
            "Time: 2023-11-14T22:13:20.123Z",
            "https://admin.example.org/s/s<1>&\"x\"",
        ] {
            assert!(text.contains(part), "{part} in {text}");
        }
        let html = body.html();
        assert!(
            html.contains("Session: s&lt;1&gt;&amp;&quot;x&quot;"),
            "{html}"
        );
        assert!(
            html.contains("<a href=\"https://admin.example.org/s/s&lt;1&gt;&amp;&quot;x&quot;\">"),
            "{html}"
        );
        assert!(!html.contains("<1>"), "{html}");
    }

    #[test]
    fn without_a_panel_url_there_is_no_link() {
        let body = Body::of(&ALERT, None);
        assert!(!body.text().contains("Open the session"));
        assert!(!body.html().contains("<a "));
    }

    #[test]
    fn escalation_changes_the_lead() {
        let alert = Alert {
            escalated: true,
            ..ALERT
        };
        assert!(Body::of(&alert, None).text().contains("still waiting"));
        assert!(Body::of(&ALERT, None).text().contains("needs assistance"));
    }
}
