//! Help-request texts in Twilio's REST wire format (spec/integrations.md §Notifications):
//! `POST {SMS_API_BASE}/2010-04-01/Accounts/{SID}/Messages.json` with HTTP basic auth
//! (account SID, auth token) and the form fields `To`, `From` and `Body`, one request per
//! `ADMIN_PHONES` number. Twilio-compatible gateways take the same request.

use std::time::Duration;

use base64::Engine;
use serde::Deserialize;
use ureq::Agent;

use super::{Alert, NotifyError};
use crate::config::SmsConfig;

/// Twilio answers with a JSON resource or error of a few hundred bytes; more is not read.
const ANSWER_LIMIT: u64 = 16 * 1024;

pub struct Texter {
    agent: Agent,
    url: String,
    /// `Basic base64(SID:token)`.
    authorization: String,
    from: String,
    to: Vec<String>,
}

/// The error body Twilio sends with a 4xx/5xx (<https://www.twilio.com/docs/api/errors>).
#[derive(Deserialize)]
struct TwilioError {
    code: Option<u64>,
    message: Option<String>,
    status: Option<u16>,
}

impl Texter {
    pub fn new(sms: &SmsConfig, timeout: Duration) -> Texter {
        let credentials = format!("{}:{}", sms.account_sid, sms.auth_token.expose_str());
        let agent = Agent::config_builder()
            .timeout_global(Some(timeout))
            // Twilio's error JSON says what was wrong: read it rather than get a bare status.
            .http_status_as_error(false)
            .build()
            .new_agent();
        Texter {
            agent,
            url: format!(
                "{}/2010-04-01/Accounts/{}/Messages.json",
                sms.api_base, sms.account_sid
            ),
            authorization: format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(credentials)
            ),
            from: sms.from_number.clone(),
            to: sms.admin_phones.clone(),
        }
    }

    /// Texts every admin phone, each whatever happened to the others; the error names
    /// the numbers that failed by their place in `ADMIN_PHONES` (numbers stay out of logs).
    pub fn send(&self, alert: &Alert) -> Result<(), NotifyError> {
        let body = body(alert);
        let failed: Vec<(usize, NotifyError)> = self
            .to
            .iter()
            .enumerate()
            .filter_map(|(i, to)| self.text(to, &body).err().map(|error| (i + 1, error)))
            .collect();
        let Some((_, first)) = failed.first() else {
            return Ok(());
        };
        let detail = failed
            .iter()
            .map(|(n, error)| format!("ADMIN_PHONES #{n}: {error}"))
            .collect::<Vec<_>>()
            .join("; ");
        let summary = format!(
            "{} of {} text(s) failed: {detail}",
            failed.len(),
            self.to.len()
        );
        // A refusal anywhere is a configuration to fix; say that rather than "transport".
        Err(match first {
            NotifyError::Transport(_) => NotifyError::Transport(summary),
            _ => NotifyError::Refused(summary),
        })
    }

    fn text(&self, to: &str, body: &str) -> Result<(), NotifyError> {
        let mut response = self
            .agent
            .post(&self.url)
            .header("Authorization", &self.authorization)
            .send_form([("To", to), ("From", &self.from), ("Body", body)])
            .map_err(|error| NotifyError::Transport(error.to_string()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let answer = response
            .body_mut()
            .with_config()
            .limit(ANSWER_LIMIT)
            .read_to_string()
            .unwrap_or_default();
        Err(NotifyError::Refused(refusal(status.as_u16(), &answer)))
    }
}

/// The spec's text; an escalation says so, keeping the spec's words around it.
pub fn body(alert: &Alert) -> String {
    let needs = if alert.escalated {
        "still needs assistance (escalated: no admin has joined yet)"
    } else {
        "needs assistance"
    };
    format!(
        "Help Request - User {} {needs}. Session: {}",
        alert.user_id, alert.session_id
    )
}

/// Twilio's code and message when the answer is its error JSON, else the status alone.
fn refusal(status: u16, answer: &str) -> String {
    match serde_json::from_str::<TwilioError>(answer) {
        Ok(TwilioError {
            code,
            message,
            status: reported,
        }) => format!(
            "HTTP {}, Twilio error {}: {}",
            reported.unwrap_or(status),
            code.map_or_else(|| "without a code".to_owned(), |c| c.to_string()),
            message.as_deref().unwrap_or("no message")
        ),
        Err(_) => format!("HTTP {status}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_the_spec_s() {
        let alert = Alert {
            session_id: "s1",
            user_id: "u1",
            at_ms: 0,
            escalated: false,
        };
        assert_eq!(
            body(&alert),
            "Help Request - User u1 needs assistance. Session: s1"
        );
        let escalated = body(&Alert {
            escalated: true,
            ..alert
        });
        assert!(escalated.starts_with("Help Request - User u1 still needs assistance"));
        assert!(escalated.ends_with(". Session: s1"));
    }

    #[test]
    fn refusal_reads_twilio_s_error_json() {
        let answer = r#"{"code": 21211, "message": "The 'To' number 123 is not a valid phone number.", "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}"#;
        assert_eq!(
            refusal(400, answer),
            "HTTP 400, Twilio error 21211: The 'To' number 123 is not a valid phone number."
        );
        assert_eq!(refusal(502, "<html>bad gateway</html>"), "HTTP 502");
    }
}
