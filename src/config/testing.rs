//! What the tests of every section share: a valid environment to start from, one with
//! every variable set, and the two ways a test reads a result.

use std::collections::HashMap;

use super::Config;

pub(super) type Pairs<'a> = &'a [(&'a str, &'a str)];

pub(super) const GOOD_SECRET: &str = "Zq8vN3xW0pLr7Kc2Hm5Tj9Yb4Fg6Ds1QuE";
/// Base64 of the bytes 0, 1, …, 31.
pub(super) const KEY_B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// Every variable set to a valid, non-default value.
pub(super) const FULL: &[(&str, &str)] = &[
    ("SERVER_HOST", "::"),
    ("SERVER_PORT", "9000"),
    ("CHATBOX_PATH_PREFIX", "/api/chat"),
    ("REQUIRE_EXP", "no"),
    ("ENCRYPTION_KEY", KEY_B64),
    ("ENCRYPT_ALL_FIELDS", "yes"),
    ("MAX_CONNECTIONS", "500"),
    ("MAX_CONNECTIONS_PER_USER", "3"),
    ("MAX_MESSAGE_SIZE", "64KiB"),
    ("RATE_LIMIT", "5"),
    ("RATE_LIMIT_WINDOW", "30s"),
    ("RATE_LIMIT_CLEANUP_INTERVAL", "1m"),
    ("ADMIN_RATE_LIMIT", "7"),
    ("ADMIN_RATE_WINDOW", "2m"),
    ("RECONNECT_TIMEOUT", "5m"),
    ("SESSION_TTL", "1h"),
    ("SESSION_CLEANUP_INTERVAL", "30s"),
    ("MAX_MESSAGES_PER_SESSION", "100"),
    ("LLM_STREAM_TIMEOUT", "1m30s"),
    ("LLM_CONTEXT_MESSAGES", "1"),
    ("LLM_MAX_CONCURRENT", "8"),
    ("DEFAULT_MODEL", "claude"),
    ("LLM_PROVIDER_1_ID", "local"),
    ("LLM_PROVIDER_1_NAME", "Local Llama"),
    ("LLM_PROVIDER_1_TYPE", "openai"),
    ("LLM_PROVIDER_1_ENDPOINT", "http://ollama:11434/v1/"),
    ("LLM_PROVIDER_1_MODEL", "llama3:8b"),
    ("LLM_PROVIDER_1_API_KEY", ""),
    ("LLM_PROVIDER_2_ID", "claude"),
    ("LLM_PROVIDER_2_TYPE", "Anthropic"),
    ("LLM_PROVIDER_2_ENDPOINT", "https://api.anthropic.com/v1"),
    ("LLM_PROVIDER_2_MODEL", "claude-sonnet-4"),
    ("LLM_PROVIDER_2_API_KEY", "sk-ant-key-123"),
    ("STORE_WORKERS", "2"),
    ("IO_WORKERS", "3"),
    ("MONGO_URI", "mongodb+srv://u:pw@cluster0.mongo.net"),
    ("MONGO_DATABASE", "chatdb"),
    ("MONGO_COLLECTION", "chat.sessions"),
    ("MONGO_CONNECT_TIMEOUT", "5s"),
    ("MONGO_RETRY_ATTEMPTS", "5"),
    ("MONGO_RETRY_DELAY", "50ms"),
    ("DATA_DIR", "/var/lib/chatbox"),
    ("S3_BUCKET", "chat-uploads"),
    ("S3_REGION", "eu-west-1"),
    ("S3_ENDPOINT", "http://minio.storage.svc:9000/"),
    ("S3_ACCESS_KEY_ID", "AKIAEXAMPLE"),
    ("S3_SECRET_ACCESS_KEY", "s3-secret-value"),
    ("UPLOAD_MAX_SIZE", "10MiB"),
    ("UPLOAD_PREFIX", "files/chat"),
    ("UPLOAD_URL_TTL", "1h"),
    ("UPLOAD_MAX_CONCURRENT", "2"),
    ("UPLOAD_RATE_LIMIT", "5"),
    ("SMTP_HOST", "smtp.example.org"),
    ("SMTP_PORT", "465"),
    ("SMTP_USER", "mailer"),
    ("SMTP_PASS", "mail-pass"),
    ("SMTP_TLS", "starttls"),
    ("EMAIL_FROM", "help@example.org"),
    ("EMAIL_FROM_NAME", "Help Desk"),
    ("EMAIL_REPLY_TO", "team@example.org"),
    ("ADMIN_EMAILS", "a@example.org, b@example.org"),
    ("SMS_ACCOUNT_SID", "AC123"),
    ("SMS_AUTH_TOKEN", "sms-token"),
    ("SMS_FROM_NUMBER", "+15550001111"),
    ("ADMIN_PHONES", "+15551234567,+442071234567"),
    ("SMS_API_BASE", "http://twilio-mock:8080/"),
    ("HELP_ESCALATION_AFTER", "10m"),
    ("ADMIN_PANEL_URL", "https://admin.example.org/sessions/"),
    ("CORS_ALLOWED_ORIGINS", "https://chat.example.org"),
    (
        "WS_ALLOWED_ORIGINS",
        "https://Chat.example.org/, capacitor://localhost",
    ),
    ("TRUSTED_PROXIES", "10.0.0.0/8"),
    ("METRICS_PORT", "9090"),
    ("METRICS_ALLOWED_NETWORKS", "10.0.0.0/8,fd00::/8"),
    ("WS_PING_PERIOD", "20s"),
    ("WS_PONG_WAIT", "30s"),
    ("WS_WRITE_WAIT", "5s"),
    ("WS_MAX_OUTBOUND_BYTES", "256KiB"),
    ("SHUTDOWN_DRAIN_DELAY", "0s"),
    ("SHUTDOWN_TIMEOUT", "10s"),
    ("CHATBOX_ECHO", "true"),
    ("LOG_LEVEL", "debug"),
    ("REDIS_URL", "redis://redis:6379"),
];

/// A valid JWT_SECRET plus `pairs` (later pairs win).
pub(super) fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    [("JWT_SECRET", GOOD_SECRET)]
        .iter()
        .chain(pairs)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub(super) fn ok(pairs: &[(&str, &str)]) -> Config {
    Config::from_vars(&env(pairs)).unwrap_or_else(|e| panic!("{pairs:?}: {e}"))
}

/// Asserts that `pairs` fail naming `variable`; returns the message.
pub(super) fn fails(pairs: &[(&str, &str)], variable: &str) -> String {
    match Config::from_vars(&env(pairs)) {
        Ok(_) => panic!("{pairs:?} should fail naming {variable}"),
        Err(e) => {
            assert_eq!(e.variable, variable, "{pairs:?}: {e}");
            let msg = e.to_string();
            assert!(!msg.contains('\n') && msg.contains("; expected "), "{msg}");
            msg
        }
    }
}
