//! A bad configuration stops start-up with exit code 2 and one line naming the variable.
mod common;

use common::run_once;

fn assert_rejected(env: &[(&str, Option<&str>)], variable: &str) {
    let (code, _, stderr) = run_once(&["--check-config"], env);
    assert_eq!(code, Some(2), "{variable}: stderr was {stderr}");
    assert!(
        stderr.contains(variable),
        "stderr must name {variable}: {stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
}

#[test]
fn missing_jwt_secret() {
    assert_rejected(&[("JWT_SECRET", None)], "JWT_SECRET");
}

#[test]
fn weak_or_short_jwt_secret_is_refused_without_echoing_it() {
    let weak = "this-is-my-changeme-secret-value-0001";
    let (code, _, stderr) = run_once(&["--check-config"], &[("JWT_SECRET", Some(weak))]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("JWT_SECRET"));
    assert!(
        !stderr.contains(weak),
        "the secret leaked into the error: {stderr}"
    );
    assert_rejected(&[("JWT_SECRET", Some("tooShort9"))], "JWT_SECRET");
}

#[test]
fn bad_duration() {
    assert_rejected(&[("SESSION_TTL", Some("15 minutes"))], "SESSION_TTL");
    assert_rejected(&[("WS_PING_PERIOD", Some("90s"))], "WS_PING_PERIOD");
}

#[test]
fn bad_prefix() {
    assert_rejected(
        &[("CHATBOX_PATH_PREFIX", Some("/chatbox/"))],
        "CHATBOX_PATH_PREFIX",
    );
    assert_rejected(
        &[("CHATBOX_PATH_PREFIX", Some("chatbox"))],
        "CHATBOX_PATH_PREFIX",
    );
}

#[test]
fn bad_port() {
    assert_rejected(&[("SERVER_PORT", Some("70000"))], "SERVER_PORT");
    assert_rejected(&[("SERVER_PORT", Some("http"))], "SERVER_PORT");
}

#[test]
fn bad_encryption_key() {
    assert_rejected(&[("ENCRYPTION_KEY", Some("c2hvcnQ="))], "ENCRYPTION_KEY");
    let (code, _, _) = run_once(
        &["--check-config"],
        &[(
            "ENCRYPTION_KEY",
            Some("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
        )],
    );
    assert_eq!(code, Some(0), "a base64 32-byte key is valid");
}

#[test]
fn placeholder_origins_and_bad_counts() {
    assert_rejected(
        &[(
            "CORS_ALLOWED_ORIGINS",
            Some("https://REPLACE_WITH_YOUR_DOMAIN"),
        )],
        "CORS_ALLOWED_ORIGINS",
    );
    assert_rejected(&[("MAX_CONNECTIONS", Some("0"))], "MAX_CONNECTIONS");
    assert_rejected(&[("MONGO_URI", Some("postgres://x"))], "MONGO_URI");
}

#[test]
fn serving_with_a_bad_value_also_exits_2() {
    let (code, _, stderr) = run_once(&[], &[("SERVER_PORT", Some("0"))]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("SERVER_PORT"));
}

#[test]
fn help_lists_every_variable() {
    let (code, stdout, _) = run_once(&["--help"], &[]);
    assert_eq!(code, Some(0));
    for name in [
        "SERVER_PORT",
        "JWT_SECRET",
        "MAX_CONNECTIONS",
        "SHUTDOWN_TIMEOUT",
        "MONGO_URI",
        "CHATBOX_ECHO",
    ] {
        assert!(stdout.contains(name), "--help lacks {name}");
    }
}

#[test]
fn unknown_argument_is_a_usage_error() {
    let (code, _, stderr) = run_once(&["--frobnicate"], &[]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--frobnicate"));
}

#[test]
fn token_command_mints_a_verifiable_token() {
    let (code, stdout, stderr) = run_once(
        &[
            "token", "--user", "u-42", "--name", "Ann", "--role", "admin", "--ttl", "10m",
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let token = stdout.trim();
    let verifier = chatbox::auth::Verifier::new(common::JWT_SECRET.as_bytes(), true);
    let identity = verifier
        .verify(token, chatbox::time::unix_now())
        .expect("the minted token verifies");
    assert_eq!(identity.user_id, "u-42");
    assert_eq!(identity.name, "Ann");
    assert!(identity.is_admin());
    let expires = identity.expires_at.expect("exp") - chatbox::time::unix_now();
    assert!((590..=600).contains(&expires), "ttl was {expires}");
}
