//! The raw echo at `P/echo`: one precomputed masked text frame, the expected echo compared
//! byte for byte, so the client does one write and one read per message.

use super::conn::{Protocol, Step};
use super::frames::{random_mask, text_frame};

pub struct Echo {
    frame: Vec<u8>,
    echo: Vec<u8>,
}

impl Echo {
    /// Messages of `size` bytes.
    pub fn new(size: usize) -> Echo {
        let payload: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
        Echo {
            frame: text_frame(&payload, Some(random_mask())),
            echo: text_frame(&payload, None),
        }
    }
}

impl Protocol for Echo {
    type State = ();
    const GREETING: bool = false;

    fn buffer_len(&self) -> usize {
        self.echo.len()
    }

    fn connect(&mut self) -> (String, ()) {
        (String::new(), ())
    }

    fn request<'a>(&'a self, _: &'a ()) -> &'a [u8] {
        &self.frame
    }

    fn on_data(&self, _: &mut (), got: &[u8], in_flight: bool) -> Result<(usize, Step), String> {
        if !in_flight && !got.is_empty() {
            return Err(format!("unsolicited data: {}", describe_unexpected(got)));
        }
        if got.len() > self.echo.len() || got != &self.echo[..got.len()] {
            return Err(describe_unexpected(got));
        }
        if got.len() == self.echo.len() {
            return Ok((
                got.len(),
                Step::Reply {
                    first: None,
                    ack: None,
                },
            ));
        }
        Ok((0, Step::Pending))
    }
}

/// What the server sent instead of the echo, for the error message.
fn describe_unexpected(got: &[u8]) -> String {
    match got {
        [0x88, len, rest @ ..] if len & 0x7f >= 2 && rest.len() >= 2 => {
            let code = u16::from_be_bytes([rest[0], rest[1]]);
            let end = rest.len().min(2 + (len & 0x7f) as usize);
            let reason = String::from_utf8_lossy(&rest[2..end]);
            format!("server sent close {code} {reason:?} instead of the echo")
        }
        [0x88, ..] => "server sent close instead of the echo".into(),
        [b0, b1, ..] => format!(
            "echo differs from what was sent (frame starts {b0:#04x} {b1:#04x}, {} bytes read)",
            got.len()
        ),
        _ => "echo differs from what was sent".into(),
    }
}
