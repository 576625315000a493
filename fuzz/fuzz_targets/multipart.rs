//! Fuzzes the multipart push parser uploads go through (`chatbox::upload::multipart`):
//! the same body must give the same parts however it is cut into pushes, and the
//! parser's buffer stays bounded.
//!
//! Input: `[c0 c1 c2 c3] body...`: push `i` hands over `c[i % 4]` bytes (0 = the rest);
//! the boundary is `b`.
//!
//! Invariants: never panics; the parts (heads and data) and the outcome (error or
//! finished) equal those of the whole body pushed at once.
#![no_main]

use chatbox::upload::multipart::{Event, MultipartError, Parser};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, PartialEq)]
struct Seen {
    parts: Vec<(String, Option<String>, Option<String>, Vec<u8>)>,
    ends: usize,
    outcome: Result<(), MultipartError>,
}

fn parse(body: &[u8], sizes: [u8; 4]) -> Seen {
    let mut parser = Parser::new("b");
    let mut seen = Seen {
        parts: Vec::new(),
        ends: 0,
        outcome: Ok(()),
    };
    let mut rest = body;
    let mut i = 0;
    while !rest.is_empty() {
        let n = match sizes[i % 4] {
            0 => rest.len(),
            n => usize::from(n).min(rest.len()),
        };
        i += 1;
        let (piece, after) = rest.split_at(n);
        rest = after;
        let fed = parser.feed(piece, &mut |event| -> Result<(), MultipartError> {
            match event {
                Event::Part(head) => {
                    seen.parts
                        .push((head.name, head.filename, head.content_type, Vec::new()))
                }
                Event::Data(data) => {
                    // Data only ever comes inside a part.
                    let part = seen.parts.last_mut().expect("data outside a part");
                    part.3.extend_from_slice(data);
                }
                Event::PartEnd => seen.ends += 1,
            }
            Ok(())
        });
        if let Err(error) = fed {
            seen.outcome = Err(error);
            return seen;
        }
    }
    seen.outcome = parser.finish();
    seen
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let sizes = [data[0], data[1], data[2], data[3]];
    let body = &data[4..];
    let whole = parse(body, [0; 4]);
    let cut = parse(body, sizes);
    assert_eq!(whole, cut);
});
