//! The common WebSocket frames without tungstenite: a whole, final, masked text or
//! binary frame from a client (RFC 6455 §5.2), the shape of nearly every message, and
//! the text or binary frame we send. Read through tungstenite, a message took half of
//! its user-space CPU (a copy into tungstenite's read buffer, a shared buffer split off,
//! a flush check per call); here it is one header look, one unmasking copy and, for
//! text, the UTF-8 check. A send is its header written in place before the payload.
//!
//! Everything else — control frames, fragments, reserved bits or opcodes, unmasked or
//! oversized frames, invalid UTF-8, a frame not yet whole — is left to tungstenite, which
//! fails it or reassembles it exactly as before: `net::ws` decides which, from [`Head`].

use tungstenite::{Bytes, Message, Utf8Bytes};

use super::ws::Incoming;

const FIN: u8 = 0x80;
const RSV: u8 = 0x70;
const MASKED: u8 = 0x80;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CONTINUATION: u8 = 0x0;

/// A frame's header, as far as the dispatch needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    first: u8,
    masked: bool,
    /// Header bytes, mask key included.
    header_len: usize,
    payload_len: u64,
}

impl Head {
    /// Reads the header at the start of `input`; `None` until all of it has arrived.
    pub fn peek(input: &[u8]) -> Option<Head> {
        let (&first, rest) = input.split_first()?;
        let second = *rest.first()?;
        let masked = second & MASKED != 0;
        let (extra, payload_len) = match second & 0x7f {
            126 => (
                2,
                u64::from(u16::from_be_bytes(input.get(2..4)?.try_into().ok()?)),
            ),
            127 => (8, u64::from_be_bytes(input.get(2..10)?.try_into().ok()?)),
            n => (0, u64::from(n)),
        };
        let header_len = 2 + extra + if masked { 4 } else { 0 };
        if input.len() < header_len {
            return None;
        }
        Some(Head {
            first,
            masked,
            header_len,
            payload_len,
        })
    }

    /// The whole frame's size on the wire.
    pub fn frame_len(&self) -> u64 {
        self.payload_len.saturating_add(self.header_len as u64)
    }

    /// A data frame that starts a message and does not end it (FIN clear).
    pub fn opens_fragments(&self) -> bool {
        self.first & FIN == 0 && matches!(self.first & 0x0f, TEXT | BINARY)
    }

    /// The final frame of a fragmented message.
    pub fn closes_fragments(&self) -> bool {
        self.first & FIN != 0 && self.first & 0x0f == CONTINUATION
    }

    /// A final text or binary frame with no reserved bits, masked, within `max_size`:
    /// the only kind decoded here.
    fn is_plain(&self, max_size: usize) -> bool {
        let opcode = self.first & 0x0f;
        self.first & (FIN | RSV) == FIN
            && (opcode == TEXT || opcode == BINARY)
            && self.masked
            && self.payload_len <= max_size as u64
    }
}

/// Decodes the frame at the start of `input` when it is whole and plain (see
/// [`Head::is_plain`]), with the bytes it took; `None` leaves it to tungstenite, `input`
/// untouched.
pub fn decode(head: &Head, input: &[u8], max_size: usize) -> Option<(Incoming, usize)> {
    if !head.is_plain(max_size) {
        return None;
    }
    let end = usize::try_from(head.frame_len()).ok()?;
    let frame = input.get(..end)?;
    let (header, payload) = frame.split_at(head.header_len);
    let key: [u8; 4] = header.get(header.len() - 4..)?.try_into().ok()?;
    let payload = Bytes::from(unmask(payload, key));
    let message = if head.first & 0x0f == TEXT {
        // Invalid UTF-8 goes to tungstenite, which closes with 1007 as it always did.
        Incoming::Text(Utf8Bytes::try_from(payload).ok()?)
    } else {
        Incoming::Binary(payload)
    };
    Some((message, end))
}

/// Appends a server frame (final, unmasked) for a text or binary message to `out`;
/// false for any other message, which then goes through tungstenite.
pub fn encode(out: &mut Vec<u8>, message: &Message) -> bool {
    let (opcode, payload) = match message {
        Message::Text(text) => (TEXT, text.as_bytes()),
        Message::Binary(data) => (BINARY, &data[..]),
        _ => return false,
    };
    out.reserve(10 + payload.len());
    out.push(FIN | opcode);
    match payload.len() {
        // Each arm's length fits the byte count it is written with.
        n if n < 126 => out.push(n as u8),
        n if n <= 0xffff => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    true
}

/// A copy of `payload` with the client's mask removed, eight bytes at a time.
fn unmask(payload: &[u8], key: [u8; 4]) -> Vec<u8> {
    let mut out = payload.to_vec();
    let wide = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = out.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    // The tail starts at a multiple of 8, so the key's phase starts at 0 again.
    for (byte, mask) in chunks.into_remainder().iter_mut().zip(key.iter().cycle()) {
        *byte ^= mask;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(first: u8, payload: &[u8], key: Option<[u8; 4]>) -> Vec<u8> {
        let mut out = vec![first];
        let mask_bit = if key.is_some() { MASKED } else { 0 };
        match payload.len() {
            n if n < 126 => out.push(mask_bit | n as u8),
            n if n <= 0xffff => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        match key {
            Some(key) => {
                out.extend_from_slice(&key);
                out.extend(payload.iter().zip(key.iter().cycle()).map(|(b, m)| b ^ m));
            }
            None => out.extend_from_slice(payload),
        }
        out
    }

    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    #[test]
    fn decodes_text_and_binary_of_every_length_form() {
        for len in [0, 1, 7, 8, 9, 15, 64, 125, 126, 1000, 70_000] {
            let text: String = "héllo wörld ".chars().cycle().take(len).collect();
            let wire = frame(FIN | TEXT, text.as_bytes(), Some(KEY));
            let head = Head::peek(&wire).expect("whole header");
            assert_eq!(head.frame_len(), wire.len() as u64);
            assert_eq!(
                decode(&head, &wire, 1 << 20),
                Some((Incoming::Text(text.clone().into()), wire.len())),
                "length {len}"
            );
            let data: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let wire = frame(FIN | BINARY, &data, Some(KEY));
            let head = Head::peek(&wire).expect("whole header");
            let mut longer = wire.clone();
            longer.extend_from_slice(b"next frame");
            assert_eq!(
                decode(&head, &longer, 1 << 20),
                Some((Incoming::Binary(data.into()), wire.len()))
            );
        }
    }

    #[test]
    fn a_header_is_read_only_once_whole() {
        let wire = frame(FIN | TEXT, &[b'x'; 300], Some(KEY));
        // 2 bytes, 2 of extended length, 4 of key.
        for cut in 0..8 {
            assert_eq!(Head::peek(&wire[..cut]), None, "cut at {cut}");
        }
        let head = Head::peek(&wire[..8]).expect("whole header");
        assert_eq!(head.frame_len(), 308);
        assert_eq!(
            decode(&head, &wire[..100], 1 << 20),
            None,
            "payload not whole"
        );
    }

    #[test]
    fn everything_else_is_left_to_tungstenite() {
        let cases = [
            ("fragment", frame(TEXT, b"ab", Some(KEY))),
            ("continuation", frame(FIN | CONTINUATION, b"ab", Some(KEY))),
            ("ping", frame(FIN | 0x9, b"ab", Some(KEY))),
            ("close", frame(FIN | 0x8, &1000u16.to_be_bytes(), Some(KEY))),
            ("reserved bit", frame(FIN | 0x40 | TEXT, b"ab", Some(KEY))),
            ("reserved opcode", frame(FIN | 0x3, b"ab", Some(KEY))),
            ("unmasked", frame(FIN | TEXT, b"ab", None)),
            ("invalid UTF-8", frame(FIN | TEXT, &[0xff, 0xfe], Some(KEY))),
            ("over the limit", frame(FIN | BINARY, &[0; 101], Some(KEY))),
        ];
        for (what, wire) in cases {
            let head = Head::peek(&wire).expect("whole header");
            assert_eq!(decode(&head, &wire, 100), None, "{what}");
        }
    }

    #[test]
    fn encodes_what_tungstenite_would() {
        use tungstenite::protocol::{Role, WebSocketConfig, WebSocketContext};
        for len in [0, 5, 125, 126, 65_535, 65_536] {
            for message in [
                Message::text("é".repeat(len / 2)),
                Message::binary(vec![3u8; len]),
            ] {
                let mut ours = Vec::new();
                assert!(encode(&mut ours, &message));
                let mut theirs = std::io::Cursor::new(Vec::new());
                let config = WebSocketConfig::default().write_buffer_size(0);
                let mut ctx = WebSocketContext::new(Role::Server, Some(config));
                ctx.write(&mut theirs, message).expect("written");
                assert_eq!(ours, theirs.into_inner(), "length {len}");
            }
        }
        assert!(!encode(&mut Vec::new(), &Message::Ping(Bytes::new())));
    }

    #[test]
    fn fragments_are_recognised() {
        let first = Head::peek(&frame(BINARY, b"a", Some(KEY))).expect("header");
        let last = Head::peek(&frame(FIN | CONTINUATION, b"b", Some(KEY))).expect("header");
        let middle = Head::peek(&frame(CONTINUATION, b"c", Some(KEY))).expect("header");
        assert!(first.opens_fragments() && !first.closes_fragments());
        assert!(last.closes_fragments() && !last.opens_fragments());
        assert!(!middle.opens_fragments() && !middle.closes_fragments());
    }
}
