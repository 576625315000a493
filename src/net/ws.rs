//! WebSocket on a connection: the upgrade handshake (RFC 6455 §4.2) and tungstenite
//! framing over the connection's own buffers.
//!
//! tungstenite never sees the socket. The connection reads the socket into its input
//! buffer and writes its output queue to the socket; [`Wire`] lends those buffers to
//! tungstenite as a stream that never blocks: reads end in `WouldBlock` when the input is
//! used up, writes always fit (the queue's cap is enforced by the connection, which closes
//! a slow consumer rather than buffer without bound).

use std::io::{self, Read, Write};

use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig, WebSocketContext};
use tungstenite::{Error, Message};

use super::frame_scan::FrameScan;
use super::http::{Method, RequestHead, Response};

/// tungstenite reads the input buffer in chunks of this size. Small, because it is
/// allocated for every socket up front; frames larger than it get their own allocation.
const READ_CHUNK: usize = 512;

/// A close handshake we started is abandoned after this long without the peer's reply.
pub const CLOSE_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Close codes used by the service (spec/websocket.md §Close codes).
pub mod code {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL: u16 = 1002;
    pub const INVALID_DATA: u16 = 1007;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    pub const INTERNAL: u16 = 1011;
    pub const TRY_AGAIN: u16 = 1013;
}

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

/// Framing limits for many mostly idle sockets: a small read chunk, no write buffering
/// inside tungstenite (frames go straight to the connection's queue, whose cap is ours),
/// and one limit for frames and messages so an oversized frame is refused from its
/// header, before its payload is buffered.
pub fn config(max_message_size: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_CHUNK)
        .write_buffer_size(0)
        .max_write_buffer_size(usize::MAX)
        .max_message_size(Some(max_message_size))
        .max_frame_size(Some(max_message_size))
}

/// The connection's buffers as a non-blocking stream.
pub struct Wire<'a> {
    input: &'a [u8],
    consumed: usize,
    output: &'a mut Vec<u8>,
}

impl<'a> Wire<'a> {
    pub fn new(input: &'a [u8], output: &'a mut Vec<u8>) -> Wire<'a> {
        Wire {
            input,
            consumed: 0,
            output,
        }
    }

    /// How much of the input tungstenite has taken.
    pub fn consumed(&self) -> usize {
        self.consumed
    }
}

impl Read for Wire<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let rest = &self.input[self.consumed..];
        if rest.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.consumed += n;
        Ok(n)
    }
}

impl Write for Wire<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A complete data message from the peer.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    Text(String),
    Binary(Vec<u8>),
}

/// What reading the input produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    Message(Incoming),
    /// A control frame (ping, pong, close) arrived: the peer is alive.
    Control,
    /// The input is used up.
    NeedInput,
    /// The close handshake is complete (or the peer vanished): close the TCP connection.
    Finished,
    /// The peer broke the protocol; a close frame with this code is queued, then the
    /// TCP connection should close.
    Failed(u16),
}

/// One WebSocket's protocol state.
pub struct Socket {
    /// tungstenite's state, only while it holds something: part of a frame, part of a
    /// fragmented message, or a close handshake. An idle socket holds none, so that it
    /// costs no read buffer (`READ_CHUNK`) and no context (issue 18).
    ctx: Option<Box<WebSocketContext>>,
    /// Frame boundaries in what `ctx` was given: when it may be dropped.
    scan: FrameScan,
    max_message_size: usize,
    /// Set once the socket finished or failed: tungstenite's state after an error is not
    /// meant to be read from again (found by fuzzing: it can yield further messages).
    ended: bool,
}

impl Socket {
    pub fn new(max_message_size: usize) -> Socket {
        Socket {
            ctx: None,
            scan: FrameScan::default(),
            max_message_size,
            ended: false,
        }
    }

    /// Reads the next event from `wire`; after `Finished` or `Failed`, only `Finished`.
    pub fn next_event(&mut self, wire: &mut Wire<'_>) -> Event {
        if self.ended {
            return Event::Finished;
        }
        let before = wire.consumed();
        let event = self.read_event(wire);
        self.scan.feed(&wire.input[before..wire.consumed()]);
        self.ended = matches!(event, Event::Finished | Event::Failed(_));
        if event == Event::NeedInput {
            self.release_if_idle();
        }
        event
    }

    /// Whether tungstenite's state is held (anything but an idle, open socket).
    #[cfg(test)]
    pub fn holds_state(&self) -> bool {
        self.ctx.is_some()
    }

    /// Drops tungstenite's state when a fresh context would be the same: every byte it
    /// was given formed complete frames, it has answered them all, and it is open.
    fn release_if_idle(&mut self) {
        let open = self
            .ctx
            .as_ref()
            .is_some_and(|ctx| ctx.can_read() && ctx.can_write());
        if open && self.scan.at_rest() {
            self.ctx = None;
        }
    }

    /// The context to read with, made afresh for a socket that was idle.
    fn reading(&mut self) -> &mut WebSocketContext {
        let max_message_size = self.max_message_size;
        self.ctx.get_or_insert_with(|| {
            Box::new(WebSocketContext::new(
                Role::Server,
                Some(config(max_message_size)),
            ))
        })
    }

    /// Runs `write` on the socket's context or, on an idle socket, on a context that
    /// only frames the output: one without a read buffer, dropped afterwards (sending
    /// leaves nothing behind in tungstenite: its output goes straight to the wire).
    fn writing<T>(&mut self, write: impl FnOnce(&mut WebSocketContext) -> T) -> T {
        match &mut self.ctx {
            Some(ctx) => write(ctx),
            None => {
                let config = config(self.max_message_size).read_buffer_size(0);
                write(&mut WebSocketContext::new(Role::Server, Some(config)))
            }
        }
    }

    fn read_event(&mut self, wire: &mut Wire<'_>) -> Event {
        let ctx = self.reading();
        match ctx.read(wire) {
            Ok(Message::Text(text)) => Event::Message(Incoming::Text(text.as_str().to_owned())),
            Ok(Message::Binary(data)) => Event::Message(Incoming::Binary(data.to_vec())),
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Close(_) | Message::Frame(_)) => {
                // A ping's pong and a close's reply are queued by tungstenite; pushing them
                // out now keeps them in order with whatever we send next.
                let _ = ctx.flush(wire);
                Event::Control
            }
            Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Event::NeedInput,
            Err(Error::ConnectionClosed | Error::AlreadyClosed | Error::Io(_)) => Event::Finished,
            Err(error) => {
                let (code, reason) = close_for(&error);
                self.close(wire, code, reason);
                Event::Failed(code)
            }
        }
    }

    pub fn send(&mut self, wire: &mut Wire<'_>, message: Message) -> bool {
        self.writing(|ctx| ctx.write(wire, message).is_ok())
    }

    /// Starts (or continues) the close handshake; the close frame goes out once.
    pub fn close(&mut self, wire: &mut Wire<'_>, code: u16, reason: &str) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.to_owned().into(),
        };
        // The context is kept: it now holds the close handshake's state.
        let _ = self.reading().close(wire, Some(frame));
    }

    /// Whether data may still be sent (no close frame sent or received yet).
    pub fn is_open(&self) -> bool {
        self.ctx.as_ref().is_none_or(|ctx| ctx.can_write())
    }
}

/// The close code and reason for a protocol failure (spec/websocket.md §Close codes).
fn close_for(error: &Error) -> (u16, &'static str) {
    match error {
        Error::Capacity(_) => (code::TOO_BIG, "message too big"),
        Error::Utf8(_) => (code::INVALID_DATA, "invalid UTF-8"),
        Error::Protocol(_) => (code::PROTOCOL, "protocol error"),
        _ => (code::INTERNAL, "internal error"),
    }
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

    /// A masked client frame.
    fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1u8, 2, 3, 4];
        let mut frame = vec![0x80 | opcode];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        frame
    }

    fn events(socket: &mut Socket, input: &[u8], out: &mut Vec<u8>) -> Vec<Event> {
        let mut wire = Wire::new(input, out);
        let mut seen = Vec::new();
        loop {
            match socket.next_event(&mut wire) {
                Event::NeedInput => return seen,
                event @ (Event::Finished | Event::Failed(_)) => {
                    seen.push(event);
                    return seen;
                }
                event => seen.push(event),
            }
        }
    }

    #[test]
    fn reads_messages_across_partial_input() {
        let mut socket = Socket::new(1024);
        let frame = client_frame(0x1, b"hello");
        let mut out = Vec::new();
        assert_eq!(events(&mut socket, &frame[..3], &mut out), vec![]);
        // tungstenite keeps the partial frame; feed the rest.
        assert_eq!(
            events(&mut socket, &frame[3..], &mut out),
            vec![Event::Message(Incoming::Text("hello".into()))]
        );
    }

    #[test]
    fn an_idle_socket_holds_no_tungstenite_state_until_a_frame_is_in_progress() {
        let mut socket = Socket::new(1024);
        let mut out = Vec::new();
        assert!(!socket.holds_state(), "nothing before any input");
        let frame = client_frame(0x1, b"hello");
        let seen = events(&mut socket, &frame, &mut out);
        assert_eq!(seen, vec![Event::Message(Incoming::Text("hello".into()))]);
        assert!(!socket.holds_state(), "released once the frame is handled");

        assert_eq!(events(&mut socket, &frame[..3], &mut out), vec![]);
        assert!(socket.holds_state(), "kept while a frame is half read");
        let seen = events(&mut socket, &frame[3..], &mut out);
        assert_eq!(seen, vec![Event::Message(Incoming::Text("hello".into()))]);
        assert!(!socket.holds_state());

        // A fragmented message: its first part stays with tungstenite until the last.
        let mut first = client_frame(0x1, b"hel");
        first[0] &= 0x7f;
        assert_eq!(events(&mut socket, &first, &mut out), vec![]);
        assert!(socket.holds_state(), "kept between fragments");
        let seen = events(&mut socket, &client_frame(0x0, b"lo"), &mut out);
        assert_eq!(seen, vec![Event::Message(Incoming::Text("hello".into()))]);
        assert!(!socket.holds_state());

        // Sending on an idle socket frames the message without keeping any state.
        out.clear();
        assert!(socket.send(&mut Wire::new(&[], &mut out), Message::text("hi")));
        assert_eq!(out, [0x81, 0x02, b'h', b'i']);
        assert!(!socket.holds_state());
    }

    #[test]
    fn oversize_frame_fails_with_1009_before_its_payload() {
        let mut socket = Socket::new(100);
        let frame = client_frame(0x2, &[0u8; 200]);
        let mut out = Vec::new();
        assert_eq!(
            events(&mut socket, &frame[..8], &mut out),
            vec![Event::Failed(code::TOO_BIG)]
        );
        // The close frame (opcode 8) carries 1009.
        assert_eq!(&out[..4], &[0x88, out[1], 0x03, 0xf1]);
    }

    #[test]
    fn invalid_utf8_fails_with_1007_and_unmasked_with_1002() {
        let mut out = Vec::new();
        let mut socket = Socket::new(100);
        let bad = client_frame(0x1, &[0xff, 0xfe]);
        assert_eq!(
            events(&mut socket, &bad, &mut out),
            vec![Event::Failed(code::INVALID_DATA)]
        );

        let mut socket = Socket::new(100);
        assert_eq!(
            events(&mut socket, &[0x81, 0x01, b'x'], &mut out),
            vec![Event::Failed(code::PROTOCOL)]
        );
    }

    #[test]
    fn nothing_is_read_after_a_failure() {
        let mut socket = Socket::new(4);
        let mut input = client_frame(0x1, b"too long");
        input.extend(client_frame(0x1, b"ok"));
        let mut out = Vec::new();
        let mut wire = Wire::new(&input, &mut out);
        assert_eq!(socket.next_event(&mut wire), Event::Failed(code::TOO_BIG));
        assert_eq!(socket.next_event(&mut wire), Event::Finished);
    }

    #[test]
    fn ping_is_answered_and_close_completes_the_handshake() {
        let mut socket = Socket::new(100);
        let mut out = Vec::new();
        let mut input = client_frame(0x9, b"p");
        input.extend(client_frame(0x8, &1000u16.to_be_bytes()));
        let seen = events(&mut socket, &input, &mut out);
        assert_eq!(seen, vec![Event::Control, Event::Control, Event::Finished]);
        assert_eq!(&out[..3], &[0x8a, 0x01, b'p'], "pong first");
        assert_eq!(out[3], 0x88, "then the close reply");
    }
}
