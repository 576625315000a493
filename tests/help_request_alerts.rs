//! A help request through the real binary reaches the admins on every channel: one mail
//! at a real SMTP server (aiosmtpd) and one text at a server that receives Twilio's REST
//! requests, per request, at most five per session in five minutes; the admin sockets
//! hear of every one.

mod common;

use std::time::Duration;

use common::chat::Client;
use common::smtp::SmtpServer;
use common::twilio::{received, twilio};
use common::Server;
use mailparse::MailHeaderMap;
use serde_json::json;

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const PHONE: &str = "+15551234567";

#[test]
fn a_help_request_mails_and_texts_the_admins_and_the_sixth_in_five_minutes_is_not_sent() {
    let smtp = SmtpServer::start();
    let (api_base, texts) = twilio(|to| (201, format!(r#"{{"sid": "SM1", "to": "{to}"}}"#)));
    let port = smtp.port.to_string();
    let server = Server::start(&[
        ("SMTP_HOST", "127.0.0.1"),
        ("SMTP_PORT", &port),
        ("SMTP_TLS", "off"),
        ("EMAIL_FROM", "chatbox@example.org"),
        ("ADMIN_EMAILS", "desk@example.org"),
        ("ADMIN_PANEL_URL", "https://admin.example.org/sessions"),
        ("SMS_ACCOUNT_SID", SID),
        ("SMS_AUTH_TOKEN", "auth-token-42"),
        ("SMS_FROM_NUMBER", "+15550001111"),
        ("ADMIN_PHONES", PHONE),
        ("SMS_API_BASE", &api_base),
    ]);
    let mut ann = Client::connect(&server, "ann", "");
    ann.ask("Hello");
    let session = ann.session_id.clone();
    let mut ada = Client::connect_admin(&server, "ada");

    for _ in 0..6 {
        ann.send(json!({"type": "help_request", "session_id": session}));
        ann.expect("connection_status", &[]);
        let alert = ada.expect("notification", &[]);
        assert_eq!(alert["session_id"], session.as_str());
    }

    let sent = received(&texts, 5);
    for text in &sent {
        assert_eq!(
            text.request_line,
            format!("POST /2010-04-01/Accounts/{SID}/Messages.json HTTP/1.1")
        );
        let to = text.form.iter().find(|(k, _)| k == "To").map(|(_, v)| v);
        assert_eq!(to.map(String::as_str), Some(PHONE));
        let body = text.form.iter().find(|(k, _)| k == "Body").map(|(_, v)| v);
        assert_eq!(
            body.map(String::as_str),
            Some(format!("Help Request - User ann needs assistance. Session: {session}").as_str())
        );
    }
    // The sixth went nowhere: no further text arrives while the mails are counted.
    assert!(
        texts.recv_timeout(Duration::from_secs(2)).is_err(),
        "a sixth text within five minutes"
    );
    let waited = std::time::Instant::now();
    while smtp.messages().len() < 5 && waited.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let mails = smtp.messages();
    assert_eq!(mails.len(), 5, "one mail per request, the sixth suppressed");
    let mail = mailparse::parse_mail(&mails[0]).expect("a parsable mail");
    assert_eq!(
        mail.headers.get_first_value("Subject").as_deref(),
        Some("Help Request - User ann")
    );
    assert_eq!(
        mail.headers.get_first_value("To").as_deref(),
        Some("desk@example.org")
    );
    let link = format!("https://admin.example.org/sessions/{session}");
    for part in &mail.subparts {
        let body = part.get_body().expect("a decodable part");
        assert!(body.contains(&link), "{body}");
    }
    assert_eq!(mail.subparts.len(), 2, "a text and an HTML part");
}
