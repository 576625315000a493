//! Where WebSocket frames begin and end in the bytes handed to tungstenite.
//!
//! tungstenite keeps a read buffer per socket and says nothing about what is in it. An
//! idle socket should hold no such buffer (issue 18: ~1 KiB per idle socket), so the
//! socket drops tungstenite's state whenever this scan says that every byte given so
//! far belongs to a complete frame and no fragmented message is open: tungstenite then
//! holds nothing a fresh context would not. The scan reads only frame headers (2–14
//! bytes) and skips payloads; tungstenite still does all the checking.

/// Longest frame header: 2 bytes, an 8-byte length, a 4-byte mask (RFC 6455 §5.2).
const HEADER_MAX: usize = 14;

const FIN: u8 = 0x80;
const OPCODE: u8 = 0x0f;
const MASKED: u8 = 0x80;

#[derive(Debug, Default)]
pub struct FrameScan {
    header: [u8; HEADER_MAX],
    /// Bytes of the current frame's header seen so far.
    have: u8,
    /// Payload bytes of the current frame still to come.
    payload_left: u64,
    /// A data frame without FIN began a message whose last fragment has not come yet.
    fragmented: bool,
}

impl FrameScan {
    /// Follows `bytes`, the next ones given to tungstenite.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.payload_left > 0 {
                let skip = usize::try_from(self.payload_left)
                    .map_or(bytes.len(), |left| left.min(bytes.len()));
                bytes = &bytes[skip..];
                self.payload_left -= skip as u64;
                continue;
            }
            let have = usize::from(self.have);
            let need = self.header_len().unwrap_or(2);
            let take = (need - have).min(bytes.len());
            self.header[have..have + take].copy_from_slice(&bytes[..take]);
            self.have += take as u8;
            bytes = &bytes[take..];
            if usize::from(self.have) == need && self.header_len() == Some(need) {
                self.end_header();
            }
        }
    }

    /// True when every byte fed so far is part of a complete frame and no message is
    /// half received.
    pub fn at_rest(&self) -> bool {
        self.have == 0 && self.payload_left == 0 && !self.fragmented
    }

    /// The current header's full length, once its first two bytes are known.
    fn header_len(&self) -> Option<usize> {
        if self.have < 2 {
            return None;
        }
        let extended = match self.header[1] & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if self.header[1] & MASKED != 0 { 4 } else { 0 };
        Some(2 + extended + mask)
    }

    fn end_header(&mut self) {
        let [first, second, ..] = self.header;
        self.payload_left = match second & 0x7f {
            126 => u64::from(u16::from_be_bytes([self.header[2], self.header[3]])),
            127 => {
                let mut length = [0u8; 8];
                length.copy_from_slice(&self.header[2..10]);
                u64::from_be_bytes(length)
            }
            short => u64::from(short),
        };
        // Control frames (opcode 8 and up) may come between fragments and change nothing.
        if first & OPCODE < 8 {
            // A data frame without FIN opens a message (or keeps it open); FIN ends it.
            self.fragmented = first & FIN == 0;
        }
        self.have = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTINUATION: u8 = 0x0;

    fn frame(first: u8, payload_len: usize) -> Vec<u8> {
        let mut frame = vec![first];
        match payload_len {
            n if n < 126 => frame.push(MASKED | n as u8),
            n if n <= 0xffff => {
                frame.push(MASKED | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(MASKED | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&[1, 2, 3, 4]);
        frame.resize(frame.len() + payload_len, b'x');
        frame
    }

    #[test]
    fn whole_frames_leave_it_at_rest_whatever_the_split() {
        let mut bytes = frame(FIN | 0x1, 5);
        bytes.extend(frame(FIN | 0x2, 300));
        bytes.extend(frame(FIN | 0x1, 70_000));
        for split in [1, 2, 3, 7, 13, 14, 500] {
            let mut scan = FrameScan::default();
            for chunk in bytes.chunks(split) {
                scan.feed(chunk);
            }
            assert!(scan.at_rest(), "split {split}");
        }
    }

    #[test]
    fn a_partial_header_or_payload_is_not_at_rest() {
        let bytes = frame(FIN | 0x1, 300);
        for cut in [1, 2, 3, 7, 8, bytes.len() - 1] {
            let mut scan = FrameScan::default();
            scan.feed(&bytes[..cut]);
            assert!(!scan.at_rest(), "cut at {cut}");
            scan.feed(&bytes[cut..]);
            assert!(scan.at_rest(), "completed after {cut}");
        }
    }

    #[test]
    fn a_fragmented_message_is_open_until_its_last_fragment_even_across_pings() {
        let mut scan = FrameScan::default();
        scan.feed(&frame(0x1, 3));
        assert!(!scan.at_rest());
        scan.feed(&frame(FIN | 0x9, 1));
        assert!(!scan.at_rest(), "a ping between fragments");
        scan.feed(&frame(CONTINUATION, 3));
        assert!(!scan.at_rest());
        scan.feed(&frame(FIN | CONTINUATION, 3));
        assert!(scan.at_rest());
    }
}
