//! Start-up with help-request notifications configured: the settings take effect (no
//! "not used yet" warning), the failure counter and the io lane are scraped from zero,
//! and a sender address the mailer could not use is refused like any bad setting.

mod common;

use common::{run_once, Server};

const MAIL_AND_SMS: [(&str, &str); 10] = [
    ("SMTP_HOST", "127.0.0.1"),
    ("SMTP_PORT", "2525"),
    ("SMTP_TLS", "off"),
    ("EMAIL_FROM", "bot@chatbox.test"),
    ("ADMIN_EMAILS", "ada@chatbox.test,bob@chatbox.test"),
    ("SMS_ACCOUNT_SID", "AC0123"),
    ("SMS_AUTH_TOKEN", "token-0123"),
    ("SMS_FROM_NUMBER", "+15550001111"),
    ("ADMIN_PHONES", "+15551234567"),
    ("SMS_API_BASE", "http://127.0.0.1:9"),
];

#[test]
fn mail_and_sms_settings_take_effect_and_failures_count_from_zero() {
    let server = Server::start(&MAIL_AND_SMS);
    let scrape = server.get("/chatbox/metrics/prometheus");
    assert_eq!(scrape.status, 200);
    let text = String::from_utf8_lossy(&scrape.body);
    for series in [
        "chatbox_notification_failures_total{channel=\"email\"} 0",
        "chatbox_notification_failures_total{channel=\"sms\"} 0",
        "chatbox_lane_queue_depth{lane=\"io\"} 0",
    ] {
        assert!(text.contains(series), "{series} in:\n{text}");
    }
    let logs = server.logs();
    assert!(
        !logs.iter().any(|line| line.contains("not used yet")),
        "{logs:#?}"
    );
}

#[test]
fn a_sender_the_mailer_cannot_use_is_a_bad_setting() {
    let env: Vec<(&str, Option<&str>)> = MAIL_AND_SMS
        .iter()
        .map(|&(name, value)| (name, Some(value)))
        .chain([("EMAIL_FROM", Some("bot(desk)@chatbox.test"))])
        .collect();
    let (code, _, stderr) = run_once(&["--check-config"], &env);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("EMAIL_FROM"), "{stderr}");
}
