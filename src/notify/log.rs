//! The channel of last resort, and the default: with no SMTP and no SMS configured, an
//! alert is a log line, so a help request is never silently dropped.

use super::Alert;

/// Writes the alert as one warning: an admin watching the logs should see it.
pub(super) fn logged(alert: &Alert) {
    let what = if alert.escalated {
        "still waits for an admin (escalated)"
    } else {
        "asks for an admin"
    };
    ::log::warn!(
        "help request: user {} {what} in session {} \
         (no SMTP_HOST or SMS_ACCOUNT_SID set, so no mail or SMS)",
        alert.user_id,
        alert.session_id
    );
}
