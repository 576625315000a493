//! A push parser for `multipart/form-data` (RFC 7578): bytes go in as they arrive, in
//! pieces of any size, and come out as parts with their data, without ever holding more
//! than a part's head (at most [`MAX_PART_HEAD`]) plus one delimiter's length.
//!
//! Written here rather than taken from a crate: the well-kept ones (`multer`,
//! `multipart`) pull their input from an async `Stream` or a blocking `Read`, and our
//! body arrives pushed, chunk by chunk, from the event loop through a bounded pipe.

use std::fmt;

/// A part's head (its header lines) longer than this is refused.
pub const MAX_PART_HEAD: usize = 8 * 1024;
/// RFC 2046: a boundary is 1 to 70 characters.
const MAX_BOUNDARY: usize = 70;

/// What the parser found, in order: a part's start, its data in pieces, its end.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    Part(PartHead),
    Data(&'a [u8]),
    PartEnd,
}

/// The fields of a part's `Content-Disposition` and `Content-Type` we use.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PartHead {
    pub name: String,
    /// `None` when the part is not a file.
    pub filename: Option<String>,
    /// What the client claims; only ever a hint (the content decides).
    pub content_type: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum MultipartError {
    /// The `Content-Type` is not `multipart/form-data` with a usable boundary.
    NotMultipart,
    /// The body does not follow the multipart framing.
    Malformed(&'static str),
    /// The body ended before the closing delimiter.
    Truncated,
}

impl fmt::Display for MultipartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MultipartError::NotMultipart => f.write_str("not multipart/form-data"),
            MultipartError::Malformed(what) => write!(f, "malformed multipart body: {what}"),
            MultipartError::Truncated => f.write_str("multipart body ended early"),
        }
    }
}

impl std::error::Error for MultipartError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first delimiter (the preamble is skipped).
    Preamble,
    /// Right after a delimiter: `--` ends the body, CRLF starts a part.
    AfterDelimiter,
    Head,
    Data,
    /// After the closing delimiter: the epilogue is ignored.
    Done,
}

pub struct Parser {
    /// `CRLF--boundary`: what ends every part's data.
    delimiter: Vec<u8>,
    state: State,
    /// Input not yet turned into events.
    buf: Vec<u8>,
}

/// The boundary of a `Content-Type: multipart/form-data; boundary=…` header.
pub fn boundary(content_type: &str) -> Result<String, MultipartError> {
    let mut params = content_type.split(';');
    let essence = params.next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("multipart/form-data") {
        return Err(MultipartError::NotMultipart);
    }
    let boundary = params
        .filter_map(|param| param.split_once('='))
        .find(|(key, _)| key.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, value)| unquote(value.trim()).to_owned())
        .ok_or(MultipartError::NotMultipart)?;
    let usable = (1..=MAX_BOUNDARY).contains(&boundary.len())
        && boundary.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
    if usable {
        Ok(boundary)
    } else {
        Err(MultipartError::NotMultipart)
    }
}

impl Parser {
    pub fn new(boundary: &str) -> Parser {
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary.as_bytes());
        Parser {
            delimiter,
            state: State::Preamble,
            // The first delimiter may open the body, without the CRLF that precedes
            // every other: pretend it was there.
            buf: b"\r\n".to_vec(),
        }
    }

    /// Feeds the next piece of the body; `sink` gets the events it completes. An error
    /// from `sink` stops parsing and is returned as is.
    pub fn feed<E: From<MultipartError>>(
        &mut self,
        input: &[u8],
        sink: &mut impl FnMut(Event) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.state == State::Done {
            return Ok(());
        }
        self.buf.extend_from_slice(input);
        let mut at = 0;
        loop {
            let rest = &self.buf[at..];
            match self.state {
                State::Done => {
                    self.buf = Vec::new();
                    return Ok(());
                }
                State::Preamble => match find(rest, &self.delimiter) {
                    Some(i) => {
                        at += i + self.delimiter.len();
                        self.state = State::AfterDelimiter;
                    }
                    None => {
                        // Keep only what could still be the start of a delimiter.
                        at += rest.len().saturating_sub(self.delimiter.len() - 1);
                        break;
                    }
                },
                State::AfterDelimiter => {
                    if rest.len() < 2 {
                        break;
                    }
                    match &rest[..2] {
                        b"--" => self.state = State::Done,
                        b"\r\n" => self.state = State::Head,
                        _ => return Err(MultipartError::Malformed("bad delimiter").into()),
                    }
                    at += 2;
                }
                State::Head => match find(rest, b"\r\n\r\n") {
                    Some(i) => {
                        let head = parse_head(&rest[..i])?;
                        at += i + 4;
                        self.state = State::Data;
                        sink(Event::Part(head))?;
                    }
                    None if rest.len() > MAX_PART_HEAD => {
                        return Err(MultipartError::Malformed("part head too long").into())
                    }
                    None => break,
                },
                State::Data => match find(rest, &self.delimiter) {
                    Some(i) => {
                        if i > 0 {
                            sink(Event::Data(&rest[..i]))?;
                        }
                        sink(Event::PartEnd)?;
                        at += i + self.delimiter.len();
                        self.state = State::AfterDelimiter;
                    }
                    None => {
                        let safe = rest.len().saturating_sub(self.delimiter.len() - 1);
                        if safe > 0 {
                            sink(Event::Data(&rest[..safe]))?;
                        }
                        at += safe;
                        break;
                    }
                },
            }
        }
        self.buf.drain(..at);
        Ok(())
    }

    /// The body is over: an error unless it was closed properly.
    pub fn finish(&self) -> Result<(), MultipartError> {
        match self.state {
            State::Done => Ok(()),
            _ => Err(MultipartError::Truncated),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    let mut from = 0;
    while let Some(i) = haystack[from..].iter().position(|&b| b == first) {
        let start = from + i;
        if haystack.len() - start < needle.len() {
            return None;
        }
        if haystack[start..start + needle.len()] == *needle {
            return Some(start);
        }
        from = start + 1;
    }
    None
}

fn parse_head(raw: &[u8]) -> Result<PartHead, MultipartError> {
    let text = std::str::from_utf8(raw).map_err(|_| MultipartError::Malformed("part head"))?;
    let mut head = PartHead::default();
    let mut disposition = false;
    for line in text.split("\r\n") {
        let (name, value) = line
            .split_once(':')
            .ok_or(MultipartError::Malformed("part header line"))?;
        if name.trim().eq_ignore_ascii_case("content-disposition") {
            disposition = true;
            let mut params = value.split(';');
            let kind = params.next().unwrap_or_default().trim();
            if !kind.eq_ignore_ascii_case("form-data") {
                return Err(MultipartError::Malformed("not form-data"));
            }
            for (key, value) in params.filter_map(|p| p.split_once('=')) {
                let value = unquote(value.trim()).to_owned();
                match key.trim().to_ascii_lowercase().as_str() {
                    "name" => head.name = value,
                    "filename" => head.filename = Some(value),
                    _ => {}
                }
            }
        } else if name.trim().eq_ignore_ascii_case("content-type") {
            head.content_type = Some(value.trim().to_owned());
        }
    }
    if disposition {
        Ok(head)
    } else {
        Err(MultipartError::Malformed(
            "part without Content-Disposition",
        ))
    }
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, PartialEq)]
    struct Seen {
        parts: Vec<(PartHead, Vec<u8>)>,
    }

    fn parse_in_pieces(body: &[u8], piece: usize) -> Result<Seen, MultipartError> {
        let mut parser = Parser::new("XyZ");
        let mut seen = Seen::default();
        for chunk in body.chunks(piece.max(1)) {
            parser.feed(chunk, &mut |event| -> Result<(), MultipartError> {
                match event {
                    Event::Part(head) => seen.parts.push((head, Vec::new())),
                    Event::Data(data) => {
                        if let Some(part) = seen.parts.last_mut() {
                            part.1.extend_from_slice(data);
                        }
                    }
                    Event::PartEnd => {}
                }
                Ok(())
            })?;
        }
        parser.finish()?;
        Ok(seen)
    }

    const BODY: &[u8] = b"--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\
Content-Type: text/plain\r\n\r\nline1\r\n-XyZ --XyZ\r\n\r\n--XyZ--\r\nepilogue";

    #[test]
    fn parts_are_the_same_however_the_body_is_cut() {
        let whole = parse_in_pieces(BODY, BODY.len()).expect("parses");
        assert_eq!(whole.parts.len(), 2);
        assert_eq!(whole.parts[0].0.name, "note");
        assert_eq!(whole.parts[0].1, b"hi");
        let file = &whole.parts[1];
        assert_eq!(file.0.filename.as_deref(), Some("a.txt"));
        assert_eq!(file.0.content_type.as_deref(), Some("text/plain"));
        assert_eq!(file.1, b"line1\r\n-XyZ --XyZ\r\n");
        for piece in 1..BODY.len() {
            assert_eq!(
                parse_in_pieces(BODY, piece).as_ref(),
                Ok(&whole),
                "pieces of {piece}"
            );
        }
    }

    #[test]
    fn a_body_cut_short_is_truncated() {
        let cut = &BODY[..BODY.len() - 20];
        assert_eq!(parse_in_pieces(cut, 7), Err(MultipartError::Truncated));
    }

    #[test]
    fn framing_errors() {
        let bad = b"--XyZ\r\nContent-Type: text/plain\r\n\r\nx\r\n--XyZ--";
        assert!(matches!(
            parse_in_pieces(bad, 5),
            Err(MultipartError::Malformed(_))
        ));
        let mut long = b"--XyZ\r\nContent-Disposition: form-data; name=\"".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_PART_HEAD + 10));
        assert_eq!(
            parse_in_pieces(&long, 1000),
            Err(MultipartError::Malformed("part head too long"))
        );
    }

    #[test]
    fn boundary_from_content_type() {
        assert_eq!(
            boundary("multipart/form-data; boundary=\"a b\"").as_deref(),
            Ok("a b")
        );
        assert_eq!(
            boundary("Multipart/Form-Data;charset=utf-8; BOUNDARY=xyz").as_deref(),
            Ok("xyz")
        );
        for bad in [
            "application/json",
            "multipart/form-data",
            "multipart/form-data; boundary=",
            "multipart/mixed; boundary=x",
        ] {
            assert_eq!(boundary(bad), Err(MultipartError::NotMultipart), "{bad}");
        }
    }
}
