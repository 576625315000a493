//! Fuzzes WebSocket frame input on an upgraded connection: `chatbox::net::ws::Socket`
//! fed through `Wire` exactly the way `net::conn::Conn::ws_event` and the reactor do.
//!
//! Input layout: `[c0 c1 c2 c3] [mode] client-bytes...`
//! - `c0..c3`: the sizes of the reads that deliver the client bytes, used in turn
//!   (chunk i is `c[i % 4]` bytes; 0 means "everything left"). So `\0\0\0\0` is one read,
//!   `\x01\x01\x01\x01` is one byte per read.
//! - `mode`: its top bit set, the server echoes every message as soon as it arrives,
//!   before the next frame is read (the reactor sends a handler's answers to the socket
//!   that way; `CHATBOX_ECHO`). Its low 7 bits are `close_at`: before read number
//!   `close_at` (0-based, < 16) the server starts the close handshake itself with 1001,
//!   as `Conn::ws_close` does on drain or token expiry; 16 or more: it never does. Seeds
//!   use '~' (no echo, never close) and `\xfe` (echo, never close).
//! - the rest: what the client sent after the `101` (masked frames, if it behaves).
//!
//! Per read, like the reactor: append the chunk to the connection's input buffer, call
//! `next_event` until `NeedInput`, `Finished` or `Failed`, drop what `Wire::consumed` says
//! was taken, keep the remainder for the next read. The connection stops reading at
//! `Finished`/`Failed`; this harness keeps feeding the socket the remaining reads to check
//! that it also stays stopped (a terminal event is terminal for the socket, not just
//! because today's caller happens to drop it; fuzz/regressions/ws_frames/ are inputs
//! that broke this when `Socket` did not remember that it had ended).
//!
//! `CHATBOX_FUZZ_TRACE=1` prints every read and event to stderr (for triage: run the
//! target binary on one input file).
//!
//! Invariants:
//! - never panics; `consumed()` never exceeds what was offered;
//! - `Failed(code)`: code is 1002, 1007, 1009 or 1011, and if the socket was open, the
//!   last frame it wrote is a close frame carrying that code;
//! - after `Finished` or `Failed`, no `Message` (and no other `Failed`) is produced;
//! - every `Message`: at most `MAX_MESSAGE` bytes; text is valid UTF-8;
//! - echoing: sending on an open socket succeeds;
//! - the output (everything the server wrote) is a sequence of complete, unmasked, final,
//!   minimally-encoded server frames: pongs, closes, and data frames that are exactly the
//!   messages the server sent, in order; control payloads at most 125 bytes, at most one
//!   close frame and nothing after it, a close payload empty or a sendable code plus a
//!   UTF-8 reason.
#![no_main]

use chatbox::net::ws::{code, Event, Incoming, Socket, Wire};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use tungstenite::Message;

/// Small, so that the 1009 paths (one big frame, many fragments) are reachable.
const MAX_MESSAGE: usize = 1024;
/// `close_at` values (low 7 bits) at or above this mean "the server never closes".
const NEVER_CLOSE: u8 = 16;
/// `mode`'s top bit: echo every message.
const ECHO: u8 = 0x80;
/// Every read of the client bytes counts; this bounds a run of 1-byte reads (inputs are
/// far shorter in practice, libFuzzer's default `-max_len` is 4096).
const MAX_READS: usize = 1 << 16;

const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PONG: u8 = 0xA;

/// Whether `CHATBOX_FUZZ_TRACE` is set (read once).
fn tracing() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("CHATBOX_FUZZ_TRACE").is_some_and(|v| v != "0"))
}

macro_rules! trace {
    ($($arg:tt)*) => {
        if tracing() {
            eprintln!($($arg)*);
        }
    };
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    let (sizes, rest) = data.split_at(4);
    let (mode, client) = (rest[0], &rest[1..]);
    run(sizes, mode & !ECHO, mode & ECHO != 0, client);
});

fn run(sizes: &[u8], close_at: u8, echo: bool, client: &[u8]) {
    let mut socket = Socket::new(MAX_MESSAGE);
    let mut inbuf: Vec<u8> = Vec::new();
    let mut out: Vec<u8> = Vec::new();
    let mut terminal: Option<Event> = None;
    let mut server_closed = false;
    // The data frames the server sent (opcode, payload), in order.
    let mut sent: Vec<(u8, Vec<u8>)> = Vec::new();
    let mut offset = 0;

    for read in 0..MAX_READS {
        if usize::from(close_at) == read && close_at < NEVER_CLOSE && socket.is_open() {
            // Conn::ws_close: a Wire over no input, the close frame appended to `out`.
            let mut wire = Wire::new(&[], &mut out);
            socket.close(&mut wire, code::GOING_AWAY, "going away");
            trace!("server closes with 1001 before read {read}");
            server_closed = true;
            let frames = parse_output(&out);
            assert_eq!(
                frames.last().map(|f| (f.opcode, close_code(f))),
                Some((OP_CLOSE, Some(code::GOING_AWAY))),
                "the server's own close did not put a 1001 close frame last"
            );
        }
        if offset == client.len() {
            break;
        }
        let size = match usize::from(sizes[read % sizes.len()]) {
            0 => client.len() - offset,
            n => n.min(client.len() - offset),
        };
        inbuf.extend_from_slice(&client[offset..offset + size]);
        offset += size;
        trace!("read {read}: {size} bytes, {} buffered", inbuf.len());

        // Conn::ws_event, called by the reactor until NeedInput/Finished/Failed.
        loop {
            let was_open = socket.is_open();
            let mut wire = Wire::new(&inbuf, &mut out);
            let event = socket.next_event(&mut wire);
            let consumed = wire.consumed();
            assert!(
                consumed <= inbuf.len(),
                "consumed {consumed} of {} bytes",
                inbuf.len()
            );
            inbuf.drain(..consumed);
            trace!(
                "  {event:?} (took {consumed}, {} left, output {} bytes)",
                inbuf.len(),
                out.len()
            );
            check_event(&event, terminal.as_ref());
            match event {
                Event::Message(message) if echo && socket.is_open() => {
                    // Conn::ws_send: a Wire over no input, the frame appended to `out`.
                    let (opcode, payload, reply) = match message {
                        Incoming::Text(t) => (OP_TEXT, t.as_bytes().to_vec(), Message::text(t)),
                        Incoming::Binary(b) => (OP_BINARY, b.to_vec(), Message::binary(b)),
                    };
                    let mut wire = Wire::new(&[], &mut out);
                    assert!(
                        socket.send(&mut wire, reply),
                        "sending on an open socket failed"
                    );
                    sent.push((opcode, payload));
                }
                Event::Message(_) | Event::Control => {}
                Event::NeedInput => break,
                Event::Finished => {
                    terminal.get_or_insert(Event::Finished);
                    break;
                }
                Event::Failed(code) => {
                    if was_open {
                        let frames = parse_output(&out);
                        assert_eq!(
                            frames.last().map(|f| (f.opcode, close_code(f))),
                            Some((OP_CLOSE, Some(code))),
                            "Failed({code}) without a close frame carrying it"
                        );
                    }
                    terminal.get_or_insert(Event::Failed(code));
                    break;
                }
            }
        }
    }

    let frames = parse_output(&out);
    let data: Vec<(u8, Vec<u8>)> = frames
        .iter()
        .filter(|f| matches!(f.opcode, OP_TEXT | OP_BINARY))
        .map(|f| (f.opcode, f.payload.to_vec()))
        .collect();
    assert!(
        data == sent,
        "the data frames on the wire ({}) are not the {} messages sent",
        data.len(),
        sent.len()
    );
    if server_closed {
        assert!(
            frames
                .iter()
                .any(|f| f.opcode == OP_CLOSE && close_code(f) == Some(code::GOING_AWAY)),
            "the server closed with 1001 but no 1001 close frame went out"
        );
    }
}

fn check_event(event: &Event, terminal: Option<&Event>) {
    match event {
        Event::Message(message) => {
            if let Some(terminal) = terminal {
                panic!("a message after {terminal:?}: {}", describe(message));
            }
            match message {
                Incoming::Text(text) => {
                    assert!(
                        text.len() <= MAX_MESSAGE,
                        "text message of {} bytes > max {MAX_MESSAGE}",
                        text.len()
                    );
                    assert!(std::str::from_utf8(text.as_bytes()).is_ok());
                }
                Incoming::Binary(data) => assert!(
                    data.len() <= MAX_MESSAGE,
                    "binary message of {} bytes > max {MAX_MESSAGE}",
                    data.len()
                ),
            }
        }
        Event::Failed(code) => {
            assert!(
                [
                    code::PROTOCOL,
                    code::INVALID_DATA,
                    code::TOO_BIG,
                    code::INTERNAL
                ]
                .contains(code),
                "Failed with unexpected close code {code}"
            );
            if let Some(Event::Failed(_) | Event::Finished) = terminal {
                panic!("Failed({code}) after {terminal:?}");
            }
        }
        Event::Control | Event::NeedInput | Event::Finished => {}
    }
}

fn describe(message: &Incoming) -> String {
    match message {
        Incoming::Text(t) => format!("text of {} bytes", t.len()),
        Incoming::Binary(b) => format!("binary of {} bytes", b.len()),
    }
}

/// One frame the server wrote.
struct Frame<'a> {
    opcode: u8,
    payload: &'a [u8],
}

/// The close code a close frame carries (`None` for an empty close payload).
fn close_code(frame: &Frame<'_>) -> Option<u16> {
    (frame.opcode == OP_CLOSE && frame.payload.len() >= 2)
        .then(|| u16::from_be_bytes([frame.payload[0], frame.payload[1]]))
}

/// Splits the server's output into frames, asserting RFC 6455 §5.2 for a server that
/// sends whole (unfragmented) messages.
fn parse_output(mut out: &[u8]) -> Vec<Frame<'_>> {
    let mut frames: Vec<Frame<'_>> = Vec::new();
    while !out.is_empty() {
        assert!(
            out.len() >= 2,
            "output ends in a partial frame header: {out:02x?}"
        );
        let (b0, b1) = (out[0], out[1]);
        assert!(b0 & 0x80 != 0, "server frame without FIN: {b0:#04x}");
        assert!(b0 & 0x70 == 0, "server frame with RSV bits: {b0:#04x}");
        assert!(b1 & 0x80 == 0, "server frame is masked");
        let opcode = b0 & 0x0f;
        let (len, header) = match b1 & 0x7f {
            126 => {
                assert!(out.len() >= 4, "partial 16-bit length");
                let len = u16::from_be_bytes([out[2], out[3]]) as u64;
                assert!(len >= 126, "16-bit length {len} not minimal");
                (len, 4)
            }
            127 => {
                assert!(out.len() >= 10, "partial 64-bit length");
                let mut be = [0u8; 8];
                be.copy_from_slice(&out[2..10]);
                let len = u64::from_be_bytes(be);
                assert!(len >> 63 == 0, "64-bit length with its top bit set");
                assert!(len > 0xffff, "64-bit length {len} not minimal");
                (len, 10)
            }
            n => (u64::from(n), 2),
        };
        let len = usize::try_from(len).expect("length fits usize");
        assert!(
            out.len() - header >= len,
            "output ends inside a frame: {} of {len} payload bytes",
            out.len() - header
        );
        let payload = &out[header..header + len];
        assert!(
            matches!(opcode, OP_TEXT | OP_BINARY | OP_CLOSE | OP_PONG),
            "server sent opcode {opcode:#x} (this harness sends no pings, no fragments)"
        );
        if opcode & 0x8 != 0 {
            assert!(
                payload.len() <= 125,
                "control frame of {} bytes",
                payload.len()
            );
        }
        if let Some(previous) = frames.last() {
            assert!(
                previous.opcode != OP_CLOSE,
                "a frame (opcode {opcode:#x}) after the server's close frame"
            );
        }
        if opcode == OP_CLOSE {
            assert!(payload.len() != 1, "close payload of 1 byte");
            if payload.len() >= 2 {
                let code = u16::from_be_bytes([payload[0], payload[1]]);
                assert!(
                    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999),
                    "server sent close code {code}, which may not go on the wire"
                );
                assert!(
                    std::str::from_utf8(&payload[2..]).is_ok(),
                    "close reason is not UTF-8"
                );
            }
        }
        frames.push(Frame { opcode, payload });
        out = &out[header + len..];
    }
    frames
}
