//! WebSocket on a connection: framing over the connection's own buffers, plain frames
//! by `net::frame` and the rest by tungstenite (the upgrade handshake is `net::upgrade`).
//!
//! tungstenite never sees the socket. The connection reads the socket into its input
//! buffer and writes its output queue to the socket; [`Wire`] lends those buffers to
//! tungstenite as a stream that never blocks: reads end in `WouldBlock` when the input is
//! used up, writes always fit (the queue's cap is enforced by the connection, which closes
//! a slow consumer rather than buffer without bound).

use std::io::{self, Read, Write};

use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig, WebSocketContext};
use tungstenite::{Bytes, Error, Message, Utf8Bytes};

use super::frame::{self, Head};

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

    /// How much of the input has been taken.
    pub fn consumed(&self) -> usize {
        self.consumed
    }

    fn rest(&self) -> &'a [u8] {
        &self.input[self.consumed..]
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

/// A complete data message from the peer, in the buffer tungstenite read it into: an
/// echo sends that same buffer back, with no copy of the payload on the way.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    Text(Utf8Bytes),
    Binary(Bytes),
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
///
/// Plain frames are decoded by `net::frame`, the rest by tungstenite. tungstenite is
/// only ever given the frame it is reading, never bytes past its end, so at a frame
/// boundary it holds no input and either reader can take the next frame.
pub struct Socket {
    /// tungstenite's state, only while it holds something: part of a frame, part of a
    /// fragmented message, or a close handshake. An idle socket holds none, so that it
    /// costs no read buffer (`READ_CHUNK`) and no context (issue 18).
    ctx: Option<Box<WebSocketContext>>,
    /// Set once the socket finished or failed: tungstenite's state after an error is not
    /// meant to be read from again (found by fuzzing: it can yield further messages).
    ended: bool,
    /// Bytes of the frame tungstenite is reading that it has not been given yet; 0 at a
    /// frame boundary.
    frame_left: u64,
    /// tungstenite holds the first fragments of a message: every frame goes to it until
    /// the last one, so that it reports what breaks the sequence.
    fragmented: bool,
    max_message_size: usize,
}

impl Socket {
    pub fn new(max_message_size: usize) -> Socket {
        Socket {
            ctx: None,
            ended: false,
            frame_left: 0,
            fragmented: false,
            max_message_size,
        }
    }

    /// Reads the next event from `wire`; after `Finished` or `Failed`, only `Finished`.
    pub fn next_event(&mut self, wire: &mut Wire<'_>) -> Event {
        if self.ended {
            return Event::Finished;
        }
        let event = self.read_event(wire);
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

    /// Drops tungstenite's state when a fresh context would be the same: it was given
    /// whole frames only (at a frame boundary, no fragmented message open), it has
    /// answered them all, and it is open.
    fn release_if_idle(&mut self) {
        let open = self
            .ctx
            .as_ref()
            .is_some_and(|ctx| ctx.can_read() && ctx.can_write());
        if open && self.frame_left == 0 && !self.fragmented {
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
        loop {
            // Once a close frame went either way, tungstenite takes everything: it
            // answers the close and ends the socket, even when no input is left.
            if !self.is_open() {
                return self.tungstenite_event(wire);
            }
            if self.frame_left == 0 {
                let Some(head) = Head::peek(wire.rest()) else {
                    return Event::NeedInput;
                };
                // While open, nothing is pending inside tungstenite: a pong is written
                // as soon as it is queued.
                if !self.fragmented {
                    let decoded = frame::decode(&head, wire.rest(), self.max_message_size);
                    if let Some((message, used)) = decoded {
                        wire.consumed += used;
                        return Event::Message(message);
                    }
                }
                self.frame_left = head.frame_len();
                if head.opens_fragments() {
                    self.fragmented = true;
                } else if head.closes_fragments() {
                    self.fragmented = false;
                }
            }
            let given = wire
                .rest()
                .len()
                .min(usize::try_from(self.frame_left).unwrap_or(usize::MAX));
            let mut frame = Wire {
                input: &wire.input[..wire.consumed + given],
                consumed: wire.consumed,
                output: &mut *wire.output,
            };
            let event = self.tungstenite_event(&mut frame);
            let taken = frame.consumed - wire.consumed;
            wire.consumed = frame.consumed;
            self.frame_left -= taken as u64;
            // tungstenite used up a frame that makes no message on its own (a fragment):
            // the next frame may already be here.
            if event != Event::NeedInput || self.frame_left > 0 || wire.rest().is_empty() {
                return event;
            }
        }
    }

    fn tungstenite_event(&mut self, wire: &mut Wire<'_>) -> Event {
        let ctx = self.reading();
        match ctx.read(wire) {
            Ok(Message::Text(text)) => Event::Message(Incoming::Text(text)),
            Ok(Message::Binary(data)) => Event::Message(Incoming::Binary(data)),
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
        // Open, tungstenite has nothing of its own queued (see `read_event`), so a data
        // frame may go straight to the output.
        if self.is_open() && frame::encode(wire.output, &message) {
            return true;
        }
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

    /// A masked client frame.
    fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1u8, 2, 3, 4];
        let mut frame = vec![0x80 | opcode];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= 0xffff => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        frame
    }

    /// Feeds `input` as a connection does: appended to what is still unread in
    /// `pending`, which keeps what the socket did not take.
    fn feed(
        socket: &mut Socket,
        pending: &mut Vec<u8>,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Vec<Event> {
        pending.extend_from_slice(input);
        let mut wire = Wire::new(pending, out);
        let mut seen = Vec::new();
        loop {
            match socket.next_event(&mut wire) {
                Event::NeedInput => break,
                event @ (Event::Finished | Event::Failed(_)) => {
                    seen.push(event);
                    break;
                }
                event => seen.push(event),
            }
        }
        let used = wire.consumed();
        pending.drain(..used);
        seen
    }

    fn events(socket: &mut Socket, input: &[u8], out: &mut Vec<u8>) -> Vec<Event> {
        feed(socket, &mut Vec::new(), input, out)
    }

    #[test]
    fn reads_messages_across_partial_input() {
        let frame = client_frame(0x1, &[b'h'; 300]);
        // Cut everywhere: in the header, in the payload, and not at all.
        for cut in 0..=frame.len() {
            let mut socket = Socket::new(1024);
            let (mut pending, mut out) = (Vec::new(), Vec::new());
            let mut seen = feed(&mut socket, &mut pending, &frame[..cut], &mut out);
            seen.extend(feed(&mut socket, &mut pending, &frame[cut..], &mut out));
            let text = Incoming::Text("h".repeat(300).into());
            assert_eq!(seen, vec![Event::Message(text)], "cut at {cut}");
            assert!(pending.is_empty());
        }
    }

    #[test]
    fn an_idle_socket_holds_no_tungstenite_state_until_a_frame_is_in_progress() {
        let mut socket = Socket::new(1024);
        let (mut pending, mut out) = (Vec::new(), Vec::new());
        assert!(!socket.holds_state(), "nothing before any input");
        let frame = client_frame(0x1, b"hello");
        let hello = || vec![Event::Message(Incoming::Text("hello".into()))];
        assert_eq!(feed(&mut socket, &mut pending, &frame, &mut out), hello());
        assert!(
            !socket.holds_state(),
            "a whole frame never reaches tungstenite"
        );

        // A header cut short waits in the connection's input, not in tungstenite.
        assert_eq!(
            feed(&mut socket, &mut pending, &frame[..3], &mut out),
            vec![]
        );
        assert!(!socket.holds_state());
        assert_eq!(
            feed(&mut socket, &mut pending, &frame[3..8], &mut out),
            vec![]
        );
        assert!(socket.holds_state(), "kept while a payload is half read");
        assert_eq!(
            feed(&mut socket, &mut pending, &frame[8..], &mut out),
            hello()
        );
        assert!(!socket.holds_state(), "released once the frame is handled");

        // A fragmented message: its first part stays with tungstenite until the last.
        let first = fragment(0x1, false, b"hel");
        assert_eq!(feed(&mut socket, &mut pending, &first, &mut out), vec![]);
        assert!(socket.holds_state(), "kept between fragments");
        let last = fragment(0x0, true, b"lo");
        assert_eq!(feed(&mut socket, &mut pending, &last, &mut out), hello());
        assert!(!socket.holds_state());

        // Sending on an idle socket frames the message without keeping any state.
        out.clear();
        assert!(socket.send(&mut Wire::new(&[], &mut out), Message::text("hi")));
        assert_eq!(out, [0x81, 0x02, b'h', b'i']);
        assert!(!socket.holds_state());
    }

    #[test]
    fn fragments_pings_and_plain_frames_keep_their_order() {
        let mut socket = Socket::new(1 << 20);
        let (mut pending, mut out) = (Vec::new(), Vec::new());
        let mut input = client_frame(0x1, b"one");
        input.extend(fragment(0x1, false, b"tw"));
        input.extend(client_frame(0x9, b"p"));
        input.extend(fragment(0x0, true, b"o"));
        input.extend(client_frame(0x2, &[7u8; 70_000]));
        input.extend(client_frame(0x1, b"three"));
        // In pieces of every size the socket may be read in.
        let mut seen = Vec::new();
        for piece in input.chunks(1000) {
            seen.extend(feed(&mut socket, &mut pending, piece, &mut out));
        }
        assert_eq!(
            seen,
            vec![
                Event::Message(Incoming::Text("one".into())),
                Event::Control,
                Event::Message(Incoming::Text("two".into())),
                Event::Message(Incoming::Binary(vec![7u8; 70_000].into())),
                Event::Message(Incoming::Text("three".into())),
            ]
        );
        assert_eq!(&out[..3], &[0x8a, 0x01, b'p'], "the ping was answered");
    }

    #[test]
    fn a_plain_frame_inside_a_fragmented_message_fails_it() {
        let mut socket = Socket::new(1024);
        let mut input = fragment(0x1, false, b"a");
        input.extend(client_frame(0x1, b"b"));
        let mut out = Vec::new();
        assert_eq!(
            events(&mut socket, &input, &mut out),
            vec![Event::Failed(code::PROTOCOL)]
        );
    }

    /// A masked client frame with FIN as given.
    fn fragment(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mut frame = client_frame(opcode, payload);
        if !fin {
            frame[0] &= 0x7f;
        }
        frame
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
