//! Help-request texts against a local server that checks each request exactly as
//! Twilio's REST API receives it (method, path, basic auth, form encoding and fields)
//! and answers like Twilio: `201` with the message resource, or `400` with its error
//! JSON. Driven through `chatbox::notify`, as the io lane drives it.

mod common;

use std::time::Duration;

use base64::Engine;
use chatbox::config::{NotifyConfig, Secret, SmsConfig, SmtpConfig, SmtpTls};
use chatbox::notify::{Alert, Channel, Notifier, NotifyError};
use common::smtp::SmtpServer;
use common::twilio::{received, twilio};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "auth-token-42";
const FROM: &str = "+15550001111";
const PHONES: [&str; 2] = ["+15551234567", "+442071234567"];
/// Twilio's answer to a number it cannot text (its documented error 21211).
const INVALID_NUMBER: &str = r#"{"code": 21211, "message": "The 'To' number +442071234567 is not a valid phone number.", "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}"#;

const ALERT: Alert = Alert {
    session_id: "sess-42",
    user_id: "user-7",
    at_ms: 1_765_000_000_000,
    escalated: false,
};

/// Twilio's 201 body, trimmed to the fields a client might read.
fn created(to: &str) -> (u16, String) {
    (
        201,
        format!(r#"{{"sid": "SM0123", "status": "queued", "to": "{to}", "from": "{FROM}"}}"#),
    )
}

fn sms(api_base: String) -> SmsConfig {
    SmsConfig {
        account_sid: SID.into(),
        auth_token: Secret::new(TOKEN),
        from_number: FROM.into(),
        admin_phones: PHONES.map(str::to_owned).to_vec(),
        api_base,
    }
}

/// A plain-text SMTP server on this machine, one admin.
fn smtp(port: u16) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        tls: SmtpTls::Off,
        user: None,
        pass: None,
        from: "bot@chatbox.test".into(),
        from_name: "Chatbox".into(),
        reply_to: None,
        admin_emails: vec!["ada@chatbox.test".into()],
    }
}

fn notifier(smtp: Option<SmtpConfig>, sms: SmsConfig) -> Notifier {
    Notifier::new(&NotifyConfig {
        smtp,
        sms: Some(sms),
        help_escalation_after: None,
        admin_panel_url: None,
        timeout: Duration::from_secs(5),
    })
    .expect("a notifier")
}

#[test]
fn each_admin_phone_gets_one_request_in_twilio_s_wire_format() {
    let (base, rx) = twilio(created);
    let failed = notifier(None, sms(base)).send(&ALERT);
    assert!(failed.is_empty(), "{failed:?}");

    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{SID}:{TOKEN}"));
    for (request, phone) in received(&rx, 2).iter().zip(PHONES) {
        assert_eq!(
            request.request_line,
            format!("POST /2010-04-01/Accounts/{SID}/Messages.json HTTP/1.1")
        );
        assert_eq!(request.headers["authorization"], format!("Basic {basic}"));
        assert_eq!(
            request.headers["content-type"],
            "application/x-www-form-urlencoded"
        );
        let form: Vec<(&str, &str)> = request
            .form
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            form,
            [
                ("To", phone),
                ("From", FROM),
                (
                    "Body",
                    "Help Request - User user-7 needs assistance. Session: sess-42"
                ),
            ]
        );
    }
    assert!(rx.try_recv().is_err(), "one request per phone, no more");
}

#[test]
fn twilio_s_error_json_is_reported_and_the_other_phones_still_texted() {
    let (base, rx) = twilio(|to| {
        if to == PHONES[1] {
            (400, INVALID_NUMBER.to_owned())
        } else {
            created(to)
        }
    });
    let failed = notifier(None, sms(base)).send(&ALERT);
    let [(Channel::Sms, NotifyError::Refused(detail))] = failed.as_slice() else {
        panic!("a refusal of the SMS channel: {failed:?}");
    };
    assert!(
        detail.contains("1 of 2")
            && detail.contains("ADMIN_PHONES #2")
            && detail.contains("HTTP 400, Twilio error 21211: The 'To' number"),
        "{detail}"
    );
    assert_eq!(received(&rx, 2).len(), 2, "both phones were tried");
}

#[test]
fn a_failed_mail_does_not_stop_the_texts() {
    let (base, rx) = twilio(created);
    // Nothing listens there: the mail fails at once.
    let failed = notifier(Some(smtp(common::free_port())), sms(base)).send(&ALERT);
    assert!(
        matches!(
            failed.as_slice(),
            [(Channel::Email, NotifyError::Transport(_))]
        ),
        "{failed:?}"
    );
    assert_eq!(received(&rx, 2).len(), 2);
}

#[test]
fn a_help_request_is_one_mail_and_one_text_per_phone() {
    let server = SmtpServer::start();
    let (base, rx) = twilio(created);
    let failed = notifier(Some(smtp(server.port)), sms(base)).send(&ALERT);
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(server.messages().len(), 1);
    assert_eq!(received(&rx, 2).len(), 2);
}
