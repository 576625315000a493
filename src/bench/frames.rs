//! The client's side of the wire, by hand: the upgrade request and its 101, masked text
//! frames out, unmasked server frames in. No tungstenite state per connection, so the
//! client stays cheaper than the server it measures.

use std::fmt;

use base64::Engine;

/// Where a client connects: the address, and the Host and path of its upgrade request.
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: std::net::SocketAddr,
    pub authority: String,
    pub path: String,
}

/// Why a `ws://` URL cannot be used.
#[derive(Debug)]
pub enum UrlError {
    Scheme(String),
    Resolve(String),
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlError::Scheme(url) => write!(f, "the URL must be ws://host:port/path, not {url:?}"),
            UrlError::Resolve(host) => write!(f, "cannot resolve {host:?}"),
        }
    }
}

impl std::error::Error for UrlError {}

impl Target {
    pub fn parse(url: &str) -> Result<Target, UrlError> {
        use std::net::ToSocketAddrs;
        let rest = url
            .strip_prefix("ws://")
            .ok_or_else(|| UrlError::Scheme(url.to_owned()))?;
        let (authority, path) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
        let with_port = if authority.contains(':') {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        let addr = with_port
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| UrlError::Resolve(authority.to_owned()))?;
        let path = match path {
            "" => "/".to_owned(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_owned(),
        };
        Ok(Target {
            addr,
            authority: authority.to_owned(),
            path,
        })
    }

    /// The same server, another path.
    pub fn with_path(&self, path: &str) -> Target {
        Target {
            path: path.to_owned(),
            ..self.clone()
        }
    }
}

/// A fresh `Sec-WebSocket-Key`.
pub fn new_key() -> String {
    let mut nonce = [0u8; 16];
    // The key only has to differ between connections; a failing getrandom leaves zeros.
    let _ = getrandom::fill(&mut nonce);
    base64::engine::general_purpose::STANDARD.encode(nonce)
}

/// `headers`: extra header lines, each ending in `\r\n`.
pub fn upgrade_request(target: &Target, key: &str, headers: &str) -> Vec<u8> {
    format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{headers}\r\n",
        target.path, target.authority
    )
    .into_bytes()
}

/// `Ok(None)`: incomplete; `Ok(Some(len))`: a valid 101 whose headers are `len` bytes.
pub fn parse_upgrade_response(data: &[u8], key: &str) -> Result<Option<usize>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(data) {
        Ok(httparse::Status::Partial) => return Ok(None),
        Ok(httparse::Status::Complete(len)) => len,
        Err(e) => return Err(format!("bad HTTP response: {e}")),
    };
    if response.code != Some(101) {
        return Err(format!(
            "upgrade refused: HTTP {} {}",
            response.code.unwrap_or(0),
            response.reason.unwrap_or("")
        ));
    }
    let expected = tungstenite::handshake::derive_accept_key(key.as_bytes());
    match response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept"))
    {
        Some(h) if h.value == expected.as_bytes() => Ok(Some(len)),
        Some(_) => Err("wrong Sec-WebSocket-Accept".into()),
        None => Err("101 without Sec-WebSocket-Accept".into()),
    }
}

/// A single-frame text message: masked (client to server) or not (server to client).
pub fn text_frame(payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut frame = vec![0x81]; // FIN + text
    match payload.len() {
        n if n < 126 => frame.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            frame.push(mask_bit | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(mask_bit | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(mask) => {
            frame.extend_from_slice(&mask);
            frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        }
        None => frame.extend_from_slice(payload),
    }
    frame
}

pub fn random_mask() -> [u8; 4] {
    let mut mask = [0u8; 4];
    // A mask hides nothing from a server we measure; zeros are as valid as any.
    let _ = getrandom::fill(&mut mask);
    mask
}

/// One whole server frame at the front of `data`.
pub struct ServerFrame<'a> {
    pub fin: bool,
    pub opcode: u8,
    pub payload: &'a [u8],
    /// Header and payload bytes.
    pub len: usize,
}

impl ServerFrame<'_> {
    /// A close frame's status code, if it is one and carries a code.
    pub fn close_code(&self) -> Option<u16> {
        match (self.opcode, self.payload) {
            (0x8, [a, b, ..]) => Some(u16::from_be_bytes([*a, *b])),
            _ => None,
        }
    }
}

/// The frame at the front of `data`: `Ok(None)` while it is incomplete. Server frames are
/// unmasked; the length is 7-bit, 16-bit or 64-bit.
pub fn server_frame(data: &[u8]) -> Result<Option<ServerFrame<'_>>, String> {
    let [b0, b1, rest @ ..] = data else {
        return Ok(None);
    };
    if b1 & 0x80 != 0 {
        return Err("masked frame from the server".into());
    }
    let (payload_len, header) = match b1 & 0x7f {
        126 => match rest {
            [a, b, ..] => (u64::from(u16::from_be_bytes([*a, *b])), 4),
            _ => return Ok(None),
        },
        127 => match rest.get(..8) {
            Some(bytes) => {
                let mut be = [0u8; 8];
                be.copy_from_slice(bytes);
                (u64::from_be_bytes(be), 10)
            }
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    let len = usize::try_from(payload_len)
        .ok()
        .and_then(|n| n.checked_add(header))
        .ok_or_else(|| format!("frame of {payload_len} bytes"))?;
    if data.len() < len {
        return Ok(None);
    }
    Ok(Some(ServerFrame {
        fin: b0 & 0x80 != 0,
        opcode: b0 & 0x0f,
        payload: &data[header..len],
        len,
    }))
}

/// A close frame's payload, for error messages.
pub fn describe_close(payload: &[u8]) -> String {
    match payload {
        [a, b, reason @ ..] => format!(
            "server sent close {} {:?}",
            u16::from_be_bytes([*a, *b]),
            String::from_utf8_lossy(reason)
        ),
        _ => "server sent close".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_masked_frame_unmasks_to_the_payload_and_lengths_round_trip() {
        for len in [0, 5, 125, 126, 65_535, 65_536] {
            let payload = vec![b'x'; len];
            let plain = text_frame(&payload, None);
            let frame = server_frame(&plain).expect("valid").expect("complete");
            assert_eq!((frame.fin, frame.opcode, frame.len), (true, 1, plain.len()));
            assert_eq!(frame.payload, &payload[..]);
            assert!(
                server_frame(&plain[..plain.len() - 1])
                    .expect("valid")
                    .is_none()
                    || len == 0
            );
        }
        let masked = text_frame(b"abc", Some([1, 2, 3, 4]));
        assert!(
            server_frame(&masked).is_err(),
            "a masked frame is no server frame"
        );
    }

    #[test]
    fn urls_give_address_authority_and_path() {
        let t = Target::parse("ws://127.0.0.1:9001/chatbox/ws?x=1").expect("valid");
        assert_eq!(
            (t.authority.as_str(), t.path.as_str()),
            ("127.0.0.1:9001", "/chatbox/ws?x=1")
        );
        assert_eq!(Target::parse("ws://127.0.0.1:9").expect("valid").path, "/");
        assert!(Target::parse("http://127.0.0.1/").is_err());
    }
}
