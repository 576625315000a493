//! Help-request mail through a real SMTP server (aiosmtpd, see `common/smtp.rs`),
//! driven through `chatbox::notify` as the io lane drives it: recipients, subject, the
//! text and HTML parts and the admin panel link as they arrive; a server that refuses
//! the login and one that never answers end in an error, not a hang.

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use chatbox::config::{NotifyConfig, Secret, SmtpConfig, SmtpTls};
use chatbox::notify::{Alert, Channel, Notifier, NotifyError};
use common::smtp::SmtpServer;
use mailparse::{MailHeaderMap, ParsedMail};

const PANEL: &str = "https://admin.example.org/chat/sessions";
/// Short, so the test of a silent server is quick; far above a local round trip.
const TIMEOUT: Duration = Duration::from_secs(2);

fn smtp(port: u16) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        tls: SmtpTls::Off,
        user: None,
        pass: None,
        from: "bot@chatbox.test".into(),
        from_name: "Chatbox Desk".into(),
        reply_to: Some("team@chatbox.test".into()),
        admin_emails: vec!["ada@chatbox.test".into(), "bob@chatbox.test".into()],
    }
}

fn notifier(smtp: SmtpConfig) -> Notifier {
    Notifier::new(&NotifyConfig {
        smtp: Some(smtp),
        sms: None,
        help_escalation_after: None,
        admin_panel_url: Some(PANEL.into()),
        timeout: TIMEOUT,
    })
    .expect("a notifier")
}

const ALERT: Alert = Alert {
    session_id: "sess-42",
    user_id: "user<7>",
    at_ms: 1_765_000_000_000,
    escalated: false,
};

fn header(mail: &ParsedMail, name: &str) -> String {
    mail.get_headers()
        .get_first_value(name)
        .unwrap_or_else(|| panic!("no {name} header"))
}

/// The one part of `mail` with this MIME type, decoded.
fn part(mail: &ParsedMail, mimetype: &str) -> String {
    let parts: Vec<&ParsedMail> = mail
        .subparts
        .iter()
        .filter(|p| p.ctype.mimetype == mimetype)
        .collect();
    assert_eq!(parts.len(), 1, "one {mimetype} part");
    parts[0].get_body().expect("a decodable part")
}

#[test]
fn one_mail_reaches_every_admin_with_both_parts_and_the_link() {
    let server = SmtpServer::start();
    let failed = notifier(smtp(server.port)).send(&ALERT);
    assert!(failed.is_empty(), "{failed:?}");

    let messages = server.messages();
    assert_eq!(messages.len(), 1, "one message for all admins");
    let mail = mailparse::parse_mail(&messages[0]).expect("a parsable mail");
    // The envelope, as the server received it (aiosmtpd records it in these headers).
    let envelope_to = header(&mail, "X-RcptTo");
    for admin in ["ada@chatbox.test", "bob@chatbox.test"] {
        assert!(envelope_to.contains(admin), "{admin} in {envelope_to}");
        assert!(header(&mail, "To").contains(admin));
    }
    assert_eq!(header(&mail, "X-MailFrom"), "bot@chatbox.test");
    assert_eq!(header(&mail, "From"), "\"Chatbox Desk\" <bot@chatbox.test>");
    assert_eq!(header(&mail, "Reply-To"), "team@chatbox.test");
    assert_eq!(header(&mail, "Subject"), "Help Request - User user<7>");
    assert_eq!(mail.ctype.mimetype, "multipart/alternative");

    let link = format!("{PANEL}/sess-42");
    let text = part(&mail, "text/plain");
    for expected in [
        "User: user<7>",
        "Session: sess-42",
        "Time: 2025-12-06T05:46:40.000Z",
        &link,
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} in the text part:\n{text}"
        );
    }
    let html = part(&mail, "text/html");
    for expected in [
        "User: user&lt;7&gt;",
        "Session: sess-42",
        &format!("<a href=\"{link}\">"),
    ] {
        assert!(
            html.contains(expected),
            "{expected:?} in the HTML part:\n{html}"
        );
    }
    assert!(!html.contains("user<7>"), "the user id is escaped:\n{html}");
}

#[test]
fn an_escalation_says_so_in_the_subject() {
    let server = SmtpServer::start();
    let escalated = Alert {
        escalated: true,
        ..ALERT
    };
    assert!(notifier(smtp(server.port)).send(&escalated).is_empty());
    let messages = server.messages();
    let mail = mailparse::parse_mail(&messages[0]).expect("a parsable mail");
    let subject = header(&mail, "Subject");
    assert!(
        subject.starts_with("Help Request - User user<7> (escalated"),
        "{subject}"
    );
}

#[test]
fn a_refused_login_is_a_clear_error_at_once() {
    let server = SmtpServer::refusing_auth();
    let config = SmtpConfig {
        user: Some("desk".into()),
        pass: Some(Secret::new("wrong")),
        ..smtp(server.port)
    };
    let started = Instant::now();
    let failed = notifier(config).send(&ALERT);
    assert!(started.elapsed() < TIMEOUT, "answered, not timed out");
    let [(Channel::Email, NotifyError::Refused(detail))] = failed.as_slice() else {
        panic!("a refusal of the email channel: {failed:?}");
    };
    assert!(detail.contains("535"), "the server's code: {detail}");
    assert!(server.messages().is_empty());
}

#[test]
fn a_server_that_never_answers_fails_within_the_timeout() {
    // Accepts connections (the kernel does, from the backlog) and never says a word.
    let silent = TcpListener::bind("127.0.0.1:0").expect("a listener");
    let port = silent.local_addr().expect("its address").port();
    let started = Instant::now();
    let failed = notifier(smtp(port)).send(&ALERT);
    let took = started.elapsed();
    assert!(
        took >= TIMEOUT && took < TIMEOUT * 3,
        "gave up after the timeout: {took:?}"
    );
    assert!(
        matches!(
            failed.as_slice(),
            [(Channel::Email, NotifyError::Transport(_))]
        ),
        "{failed:?}"
    );
}

#[test]
fn a_closed_port_fails_at_once() {
    let port = common::free_port();
    let started = Instant::now();
    let failed = notifier(smtp(port)).send(&ALERT);
    assert!(started.elapsed() < TIMEOUT);
    assert!(
        matches!(
            failed.as_slice(),
            [(Channel::Email, NotifyError::Transport(_))]
        ),
        "{failed:?}"
    );
}
