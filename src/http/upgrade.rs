//! Admission to a WebSocket (spec/websocket.md §Handshake): draining, handshake, origin,
//! token, per-user limit — each failure a plain-text answer before any upgrade.

use std::time::{Duration, Instant};

use crate::auth::{self, Identity, Verifier};
use crate::net::http::{RequestHead, Response};
use crate::net::upgrade;

/// A socket admitted: the handshake answer and when the token runs out.
pub struct Admitted {
    pub accept: String,
    pub expires_at: Option<Instant>,
}

fn plain(status: u16, text: &'static str) -> Response {
    Response::new(status, "text/plain; charset=utf-8", text)
}

pub fn unavailable() -> Response {
    plain(503, "Service unavailable, retry shortly").with_header("Retry-After", "5")
}

pub fn too_many_sockets() -> Response {
    plain(429, "Connection limit exceeded, please try again later")
}

/// The handshake and the origin: what every WebSocket route checks.
pub fn handshake(
    head: &RequestHead,
    allowed_origins: Option<&[String]>,
) -> Result<String, Response> {
    let accept = upgrade::accept_key(head).map_err(upgrade::HandshakeError::response)?;
    if let Some(allowed) = allowed_origins {
        let origin = head
            .header("origin")
            .map(|o| o.trim_end_matches('/').to_ascii_lowercase());
        if !origin.is_some_and(|o| allowed.contains(&o)) {
            return Err(plain(403, "Forbidden"));
        }
    }
    Ok(accept)
}

/// The token: `Authorization: Bearer`, else `?token=` (browsers cannot set headers on a
/// WebSocket). Error texts never say why a token failed.
pub fn authenticate(
    head: &RequestHead,
    verifier: &Verifier,
    unix: u64,
) -> Result<Identity, Response> {
    let token = match head.header("authorization") {
        Some(value) => auth::bearer_token(value).ok().map(str::to_owned),
        None => head.query_param("token").filter(|t| !t.is_empty()),
    };
    let Some(token) = token else {
        return Err(plain(401, "Missing authentication token"));
    };
    verifier.verify(&token, unix).map_err(|error| {
        log::debug!("WebSocket token refused: {error}");
        plain(401, "Authentication failed")
    })
}

/// Converts a token's `exp` (Unix seconds) to a loop deadline. The verifier keeps `exp`
/// within ten years, which `Instant` always holds; should one ever not fit, the socket
/// gets no expiry timer rather than the loop a panic.
pub fn expiry(identity: &Identity, now: Instant, unix: u64) -> Option<Instant> {
    let exp = identity.expires_at?;
    now.checked_add(Duration::from_secs(exp.saturating_sub(unix)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::http::test_head;

    const HANDSHAKE: &str =
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

    fn head(extra: &str, query: &str) -> RequestHead {
        let raw = format!("GET /chatbox/ws{query} HTTP/1.1\r\n{HANDSHAKE}{extra}\r\n");
        test_head(&raw)
    }

    #[test]
    fn origin_must_match_exactly_when_configured() {
        let allowed = vec!["https://chat.example.org".to_owned()];
        assert!(handshake(
            &head("Origin: https://chat.example.org\r\n", ""),
            Some(&allowed)
        )
        .is_ok());
        let refused = handshake(
            &head("Origin: https://evil.example.org\r\n", ""),
            Some(&allowed),
        );
        assert_eq!(refused.map_err(|r| r.status), Err(403));
        assert_eq!(
            handshake(&head("", ""), Some(&allowed)).map_err(|r| r.status),
            Err(403)
        );
        assert!(handshake(&head("Origin: https://anything\r\n", ""), None).is_ok());
    }

    #[test]
    fn expiry_never_overflows_the_clock() {
        let identity = |expires_at| Identity {
            user_id: "u".into(),
            name: "u".into(),
            roles: Vec::new(),
            expires_at,
        };
        let now = Instant::now();
        assert_eq!(expiry(&identity(None), now, 1000), None);
        assert_eq!(
            expiry(&identity(Some(1060)), now, 1000),
            Some(now + Duration::from_secs(60))
        );
        assert_eq!(expiry(&identity(Some(10)), now, 1000), Some(now));
        assert_eq!(expiry(&identity(Some(u64::MAX)), now, 1000), None);
    }

    #[test]
    fn token_from_header_or_query() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let verifier = Verifier::new(secret, true);
        let token = auth::mint(secret, "u1", None, &[], 1000, Some(60)).expect("mint");
        let by_header = head(&format!("Authorization: Bearer {token}\r\n"), "");
        assert_eq!(
            authenticate(&by_header, &verifier, 1000)
                .expect("ok")
                .user_id,
            "u1"
        );
        let by_query = head("", &format!("?token={token}"));
        assert_eq!(
            authenticate(&by_query, &verifier, 1000)
                .expect("ok")
                .user_id,
            "u1"
        );
        let missing = authenticate(&head("", ""), &verifier, 1000).expect_err("missing");
        assert_eq!(missing.body, b"Missing authentication token");
        let expired = authenticate(&by_query, &verifier, 2000).expect_err("expired");
        assert_eq!(expired.body, b"Authentication failed");
    }
}
