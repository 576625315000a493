//! Settings of help-request notifications: SMTP, SMS, escalation and the admin link in
//! them; checked so a deployment fails at boot, not at the first help request.

use std::time::Duration;

use super::error::{ConfigError, Secret};
use super::parse::{choice, list, non_empty, p_dur, p_int, p_secret, p_text};
use super::read::Reader;
use super::table::Kind;
use super::url::{p_secure_url, web_url};

#[derive(Clone, Debug)]
pub struct NotifyConfig {
    /// `None` = help requests are only logged (unless SMS is on).
    pub smtp: Option<SmtpConfig>,
    pub sms: Option<SmsConfig>,
    /// `None` = no escalation for sessions waiting on an admin.
    pub help_escalation_after: Option<Duration>,
    /// Without trailing `/`; the link is `{url}/{session_id}`.
    pub admin_panel_url: Option<String>,
    /// Each step of one mail or SMS request: connect, and every read and write.
    pub timeout: Duration,
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

impl NotifyConfig {
    pub(super) fn read(r: &Reader) -> Result<NotifyConfig, ConfigError> {
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
        Ok(NotifyConfig {
            smtp,
            sms,
            help_escalation_after: r.opt("HELP_ESCALATION_AFTER", p_dur)?,
            admin_panel_url: r.opt("ADMIN_PANEL_URL", |s, _| web_url(s, false))?,
            timeout: r.val("NOTIFY_TIMEOUT", p_dur)?,
        })
    }
}

/// A bare host: a URL or `host:port` here would only fail later, when a mail is sent.
fn p_host(s: &str, _: Kind) -> Result<String, String> {
    if s.contains(|c: char| c.is_whitespace() || "/@".contains(c)) || s.matches(':').count() == 1 {
        return Err("is not a bare host name or IP (the port goes in SMTP_PORT)".into());
    }
    Ok(s.to_owned())
}

/// Checked by the parser the mailer uses, so that what passes here is what it sends to.
fn p_email(s: &str) -> Result<String, String> {
    match s.parse::<lettre::Address>() {
        Ok(_) => Ok(s.to_owned()),
        Err(_) => Err("is not an address like name@example.org".into()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::table::secs;
    use crate::config::testing::*;

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
            assert_eq!(c.notify.smtp.unwrap().tls, tls, "{port}");
        }
        let smtp = ok(&[&mail[..], &[("SMTP_TLS", "TLS")]].concat())
            .notify
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
            (vec![("EMAIL_FROM", "a(b@x.org")], "EMAIL_FROM"),
            (vec![("EMAIL_FROM", "bot@x..org")], "EMAIL_FROM"),
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
        assert_eq!(
            ok(&sms).notify.sms.unwrap().api_base,
            "https://api.twilio.com"
        );
        fails(
            &[&sms[..], &[("ADMIN_PHONES", "+1555, 5551234567")]].concat(),
            "ADMIN_PHONES",
        );
        fails(
            &[&sms[..], &[("SMS_API_BASE", "http://api.twilio.com")]].concat(),
            "SMS_API_BASE",
        );
        assert_eq!(
            ok(&[("HELP_ESCALATION_AFTER", "10m")])
                .notify
                .help_escalation_after,
            Some(secs(600))
        );
    }
}
