//! What a bad setting looks like to the operator, and how credentials stay out of it.

use std::fmt;

use super::table::spec;

/// A credential. Its `Debug` prints `Secret(***)` and errors never quote it, so it cannot
/// reach a log by accident.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Secret {
        Secret(bytes.into())
    }
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
    /// Secrets read from the environment are UTF-8; one built from other bytes gives `""`.
    pub fn expose_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A bad setting: which variable, what is wrong, what would be right. Displayed as one line
/// (`main` prints it and exits 2); secret values are never part of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: String,
    pub problem: String,
    pub expected: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}; expected {}",
            self.variable, self.problem, self.expected
        )
    }
}

impl std::error::Error for ConfigError {}

/// The value quoted for an error message, cut short so the message stays readable.
fn quote(value: &str) -> String {
    const MAX: usize = 60;
    match value.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}…", &value[..cut]),
        None => format!("{value:?}"),
    }
}

/// An error about `value` of `name`; secrets are called "the value" instead of quoted.
pub(super) fn bad(name: &str, value: &str, problem: impl fmt::Display) -> ConfigError {
    let var = spec(name);
    let subject = match var {
        Some(v) if !v.kind.secret() => quote(value),
        _ => "the value".to_owned(),
    };
    ConfigError {
        variable: name.to_owned(),
        problem: format!("{subject} {problem}"),
        expected: var.map_or_else(String::new, |v| v.kind.expected()),
    }
}

/// `why` completes "is not set", e.g. `" but S3_BUCKET is"`.
pub(super) fn missing(name: &str, why: &str) -> ConfigError {
    ConfigError {
        variable: name.to_owned(),
        problem: format!("is not set{why}"),
        expected: spec(name).map_or_else(String::new, |v| v.kind.expected()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::table::VARS;
    use crate::config::testing::*;

    #[test]
    fn secrets_never_appear_in_errors_or_debug() {
        let mail = [
            ("SMTP_HOST", "mail"),
            ("EMAIL_FROM", "bot@x.org"),
            ("ADMIN_EMAILS", "a@x.org"),
        ];
        let provider = [("LLM_PROVIDER_1_ID", "p"), ("LLM_PROVIDER_1_TYPE", "echo")];
        let cases: &[(&str, &str, Pairs)] = &[
            ("JWT_SECRET", "tooShortSecretValue1", &[]),
            (
                "JWT_SECRET",
                "myVeryLongAdminKeyThatIsLongEnough1234567",
                &[],
            ),
            ("ENCRYPTION_KEY", "notAValidKeyQq8vN3", &[]),
            ("SMTP_PASS", "pw-REPLACE_WITH-zz91", &mail),
            ("LLM_PROVIDER_1_API_KEY", "sk-replace_with-abc", &provider),
            (
                "SMS_AUTH_TOKEN",
                "tok\u{1}en-zz92",
                &[("SMS_ACCOUNT_SID", "AC1")],
            ),
            (
                "S3_SECRET_ACCESS_KEY",
                "REPLACE_WITH_s3secret",
                &[
                    ("S3_BUCKET", "b01"),
                    ("S3_REGION", "r"),
                    ("S3_ACCESS_KEY_ID", "k"),
                ],
            ),
            ("MONGO_URI", "postgres://user:hunter2@db", &[]),
            ("REDIS_URL", "http://:hunter2@redis", &[]),
        ];
        for (name, value, extra) in cases {
            let msg = fails(&[*extra, &[(*name, *value)]].concat(), name);
            assert!(
                !msg.contains(value) && !msg.contains("hunter2") && !msg.contains("zz9"),
                "{msg}"
            );
        }
        // Credentials, and URIs that usually embed one, are secret kinds in the table.
        const CREDENTIALS: &str =
            "JWT_SECRET ENCRYPTION_KEY S3_SECRET_ACCESS_KEY MONGO_URI REDIS_URL";
        for v in VARS {
            let by_suffix = ["_PASS", "_API_KEY", "_AUTH_TOKEN"]
                .iter()
                .any(|s| v.name.ends_with(s));
            let secret = by_suffix || CREDENTIALS.split(' ').any(|n| n == v.name);
            assert_eq!(v.kind.secret(), secret, "{}", v.name);
        }
        let c = ok(FULL);
        let debug = format!(
            "{:?}",
            (
                &c.auth.jwt_secret,
                &c.llm.providers,
                &c.store.mongo,
                &c.uploads.s3,
                &c.notify.smtp,
                &c.notify.sms
            )
        );
        for (name, value) in FULL {
            if spec(name).is_some_and(|v| v.kind.secret()) && !value.is_empty() {
                assert!(!debug.contains(value), "{name}");
            }
        }
        assert!(!debug.contains(GOOD_SECRET) && debug.contains("Secret(***)"));
    }

    #[test]
    fn messages_are_one_line_and_quote_values() {
        let msg = fails(&[("SERVER_HOST", "1.2.3.4\nx")], "SERVER_HOST");
        assert!(
            msg.starts_with("SERVER_HOST: \"1.2.3.4\\nx\" contains control characters; expected "),
            "{msg}"
        );
        let long = "x".repeat(500);
        assert!(fails(&[("LOG_LEVEL", &long)], "LOG_LEVEL").len() < 200);
        assert_eq!(format!("{:?}", Secret::new("pw")), "Secret(***)");
    }
}
