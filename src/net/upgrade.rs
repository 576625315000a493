//! The WebSocket upgrade handshake (RFC 6455 §4.2): whether a request is a valid
//! upgrade, its `Sec-WebSocket-Accept`, and the `101` head.

use super::http::{Method, RequestHead, Response};

/// Why an upgrade request is not a valid WebSocket handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeError {
    /// Not an upgrade request at all: 426, the route only speaks WebSocket.
    NotUpgrade,
    /// An upgrade request that breaks RFC 6455: 400.
    Invalid(&'static str),
}

impl HandshakeError {
    pub fn response(self) -> Response {
        match self {
            HandshakeError::NotUpgrade => Response::new(
                426,
                "text/plain; charset=utf-8",
                "WebSocket upgrade required",
            )
            .with_header("Upgrade", "websocket"),
            HandshakeError::Invalid(why) => Response::new(
                400,
                "text/plain; charset=utf-8",
                format!("Bad WebSocket handshake: {why}"),
            ),
        }
    }
}

fn has_token(head: &RequestHead, header: &str, token: &str) -> bool {
    head.headers
        .iter()
        .filter(|(name, _)| name == header)
        .flat_map(|(_, value)| value.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Checks the handshake and returns the `Sec-WebSocket-Accept` value.
pub fn accept_key(head: &RequestHead) -> Result<String, HandshakeError> {
    if !has_token(head, "upgrade", "websocket") {
        return Err(HandshakeError::NotUpgrade);
    }
    if head.method != Method::Get {
        return Err(HandshakeError::Invalid("method must be GET"));
    }
    if !has_token(head, "connection", "upgrade") {
        return Err(HandshakeError::Invalid("Connection must include Upgrade"));
    }
    if head.header("sec-websocket-version") != Some("13") {
        return Err(HandshakeError::Invalid("Sec-WebSocket-Version must be 13"));
    }
    let key = head
        .header("sec-websocket-key")
        .ok_or(HandshakeError::Invalid("Sec-WebSocket-Key is missing"))?;
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(key)
        .map_err(|_| HandshakeError::Invalid("Sec-WebSocket-Key is not base64"))?;
    if decoded.len() != 16 {
        return Err(HandshakeError::Invalid(
            "Sec-WebSocket-Key must be 16 bytes",
        ));
    }
    Ok(tungstenite::handshake::derive_accept_key(key.as_bytes()))
}

/// The `101 Switching Protocols` head. No subprotocol and no extensions are negotiated
/// (spec: no compression).
pub fn switching_protocols(accept: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::http::test_head as head;

    const UPGRADE: &str =
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
        Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

    #[test]
    fn accepts_the_rfc_example_key() {
        assert_eq!(
            accept_key(&head(UPGRADE)).as_deref(),
            Ok("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        );
    }

    #[test]
    fn refuses_broken_handshakes() {
        assert_eq!(
            accept_key(&head("GET /ws HTTP/1.1\r\n\r\n")),
            Err(HandshakeError::NotUpgrade)
        );
        let bad_version = UPGRADE.replace("Version: 13", "Version: 8");
        assert!(matches!(
            accept_key(&head(&bad_version)),
            Err(HandshakeError::Invalid(_))
        ));
        let short_key = UPGRADE.replace("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ=");
        assert!(matches!(
            accept_key(&head(&short_key)),
            Err(HandshakeError::Invalid(_))
        ));
    }
}
