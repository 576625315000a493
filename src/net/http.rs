//! HTTP/1.1 on the wire: request heads parsed with `httparse`, responses serialised into
//! a connection's outbound buffer. Resumable by construction: the parser is handed
//! whatever bytes have arrived and answers "not yet" until a whole head is there.
//! Routing and JSON live in `crate::http`; this module knows only the protocol.

/// Larger heads are refused with 431 (spec/http.md: header over 8 KiB total).
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
/// More headers than this is 431; also the size of the on-stack header array.
pub const MAX_HEADERS: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
    Other,
}

impl Method {
    /// Every method, in declaration order (`method as usize` indexes it).
    pub const ALL: [Method; 8] = [
        Method::Get,
        Method::Head,
        Method::Post,
        Method::Put,
        Method::Patch,
        Method::Delete,
        Method::Options,
        Method::Other,
    ];

    fn parse(name: &str) -> Method {
        match name {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            _ => Method::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Other => "OTHER",
        }
    }
}

/// A parsed request head, owned so that it can outlive the read buffer while a body
/// arrives or a worker lane answers.
#[derive(Debug, Clone)]
pub struct RequestHead {
    pub method: Method,
    /// Path without the query string, as sent (not percent-decoded).
    pub path: String,
    pub query: Option<String>,
    /// Lower-cased names, values as sent (non-UTF-8 bytes replaced).
    pub headers: Vec<(String, String)>,
    pub keep_alive: bool,
    pub content_length: usize,
    pub expect_continue: bool,
}

impl RequestHead {
    /// First value of a header; `name` must be lower case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header, in the order the lines came; `name` must be lower case.
    /// For list headers a proxy may append as a line of its own (RFC 9110 §5.3), where
    /// the first line alone is what the client wrote.
    pub fn header_values<'a>(
        &'a self,
        name: &'a str,
    ) -> impl DoubleEndedIterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Value of a query parameter (percent-decoded; `+` is a space).
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query.as_deref()?.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key)? == name).then(|| percent_decode(value))?
        })
    }
}

#[derive(Debug)]
pub struct Request {
    pub head: RequestHead,
    pub body: Vec<u8>,
}

/// Why a head was refused. Every variant closes the connection after its response:
/// once framing is in doubt, nothing after it on the stream can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// 431: the head passed `MAX_HEAD_BYTES`.
    TooLarge,
    /// 431: more than `MAX_HEADERS` headers.
    TooManyHeaders,
    /// 400: not HTTP/1.x syntax.
    Malformed,
    /// 400: a `Content-Length` that is not one plain decimal number (or several that disagree).
    BadContentLength,
    /// 411: chunked or other transfer codings; request bodies must say their length.
    TransferEncoding,
}

impl HeadError {
    pub fn status(self) -> u16 {
        match self {
            HeadError::TooLarge | HeadError::TooManyHeaders => 431,
            HeadError::Malformed | HeadError::BadContentLength => 400,
            HeadError::TransferEncoding => 411,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            HeadError::TooLarge => "Request header fields too large",
            HeadError::TooManyHeaders => "Too many header fields",
            HeadError::Malformed => "Malformed HTTP request",
            HeadError::BadContentLength => "Invalid Content-Length",
            HeadError::TransferEncoding => {
                "Transfer-Encoding is not supported; send Content-Length"
            }
        }
    }
}

/// Parses one request head from the front of `buf`: `Ok(None)` until it is complete,
/// then the head and how many bytes it took.
pub fn parse_head(buf: &[u8]) -> Result<Option<(RequestHead, usize)>, HeadError> {
    // The parser never looks past the size limit, so the verdict on a head does not
    // depend on how much of what follows it has arrived (found by fuzzing: a defect
    // after byte 8192 used to turn a 431 into a 400 once it was read).
    let window = &buf[..buf.len().min(MAX_HEAD_BYTES + 1)];
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut slots);
    let consumed = match request.parse(window) {
        Ok(httparse::Status::Complete(n)) if n <= MAX_HEAD_BYTES => n,
        Ok(httparse::Status::Complete(_)) => return Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) if window.len() > MAX_HEAD_BYTES => {
            return Err(HeadError::TooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(_) => return Err(HeadError::Malformed),
    };
    let (Some(method), Some(target), Some(minor)) = (request.method, request.path, request.version)
    else {
        return Err(HeadError::Malformed);
    };
    if !target.starts_with('/') {
        return Err(HeadError::Malformed);
    }
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path.to_owned(), Some(query.to_owned())),
        None => (target.to_owned(), None),
    };

    let mut headers = Vec::with_capacity(request.headers.len());
    let mut content_length: Option<usize> = None;
    let mut connection_close = false;
    let mut connection_keep_alive = false;
    let mut expect_continue = false;
    for header in request.headers.iter() {
        let name = header.name.to_ascii_lowercase();
        let value = String::from_utf8_lossy(header.value).trim().to_owned();
        match name.as_str() {
            "content-length" => {
                let parsed = parse_content_length(&value)?;
                if content_length.is_some_and(|seen| seen != parsed) {
                    return Err(HeadError::BadContentLength);
                }
                content_length = Some(parsed);
            }
            "transfer-encoding" => return Err(HeadError::TransferEncoding),
            "connection" => {
                for token in value.split(',').map(str::trim) {
                    connection_close |= token.eq_ignore_ascii_case("close");
                    connection_keep_alive |= token.eq_ignore_ascii_case("keep-alive");
                }
            }
            "expect" => expect_continue = value.eq_ignore_ascii_case("100-continue"),
            _ => {}
        }
        headers.push((name, value));
    }
    // HTTP/1.1 is persistent unless told otherwise; HTTP/1.0 only when asked.
    let keep_alive = if minor >= 1 {
        !connection_close
    } else {
        connection_keep_alive && !connection_close
    };
    let head = RequestHead {
        method: Method::parse(method),
        path,
        query,
        headers,
        keep_alive,
        content_length: content_length.unwrap_or(0),
        expect_continue,
    };
    Ok(Some((head, consumed)))
}

fn parse_content_length(value: &str) -> Result<usize, HeadError> {
    // `usize::from_str` accepts a leading '+', which RFC 9110 does not.
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HeadError::BadContentLength);
    }
    value.parse().map_err(|_| HeadError::BadContentLength)
}

fn percent_decode(input: &str) -> Option<String> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = input.get(i + 1..i + 3)?;
                // `from_str_radix` alone would also take a sign ("%+f").
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// A complete response. Bodies are small JSON or text documents; large payloads
/// (file downloads) will get a streaming body of their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type", content_type.to_owned())],
            body: body.into(),
        }
    }

    pub fn empty(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }
}

/// Headers every response carries (spec/http.md).
const SECURITY_HEADERS: &str = "X-Content-Type-Options: nosniff\r\n\
X-Frame-Options: DENY\r\n\
Referrer-Policy: strict-origin-when-cross-origin\r\n";

/// Appends `response` to `out`. A `HEAD` request gets the same head (including the
/// `Content-Length` a `GET` would have) and no body.
pub fn write_response(
    out: &mut Vec<u8>,
    response: &Response,
    head_only: bool,
    keep_alive: bool,
    date: &str,
) {
    // Straight into the output queue, piece by piece: no intermediate head and no
    // formatting machinery on a path every keep-alive request and probe takes.
    out.reserve(256 + response.body.len());
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, usize::from(response.status));
    out.push(b' ');
    out.extend_from_slice(reason(response.status).as_bytes());
    out.extend_from_slice(b"\r\nDate: ");
    out.extend_from_slice(date.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in &response.headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // 1xx, 204 and 304 never carry a body or its length.
    if !matches!(response.status, 100..=199 | 204 | 304) {
        out.extend_from_slice(b"Content-Length: ");
        push_decimal(out, response.body.len());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(SECURITY_HEADERS.as_bytes());
    out.extend_from_slice(if keep_alive {
        b"Connection: keep-alive\r\n\r\n"
    } else {
        b"Connection: close\r\n\r\n"
    });
    if !head_only {
        out.extend_from_slice(&response.body);
    }
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        // A digit: n % 10 < 10 fits in a u8.
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// A complete, valid head from text, for unit tests across the crate.
#[cfg(test)]
pub fn test_head(raw: &str) -> RequestHead {
    parse_head(raw.as_bytes())
        .expect("valid")
        .expect("complete")
        .0
}

pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_methods_are_listed_at_their_index() {
        for (i, method) in Method::ALL.iter().enumerate() {
            assert_eq!(*method as usize, i, "{method:?}");
            assert_eq!(Method::parse(method.as_str()), *method);
        }
    }

    fn parse(raw: &str) -> Result<Option<(RequestHead, usize)>, HeadError> {
        parse_head(raw.as_bytes())
    }

    #[test]
    fn partial_then_complete() {
        assert!(matches!(parse("GET /a HTTP/1.1\r\nHost: x\r\n"), Ok(None)));
        let (head, used) = parse("GET /a?b=c%20d&e HTTP/1.1\r\nHost: x\r\n\r\nrest")
            .expect("valid")
            .expect("complete");
        assert_eq!(used, "GET /a?b=c%20d&e HTTP/1.1\r\nHost: x\r\n\r\n".len());
        assert_eq!(head.method, Method::Get);
        assert_eq!(head.path, "/a");
        assert_eq!(head.query_param("b").as_deref(), Some("c d"));
        assert_eq!(head.query_param("e").as_deref(), Some(""));
        assert_eq!(head.query_param("z"), None);
        let signed = parse("GET /a?t=%+f HTTP/1.1\r\n\r\n")
            .expect("valid")
            .expect("complete");
        assert_eq!(signed.0.query_param("t"), None, "not a percent escape");
        assert_eq!(head.header("host"), Some("x"));
        assert!(head.keep_alive);
    }

    #[test]
    fn keep_alive_rules() {
        let head = |raw: &str| parse(raw).expect("valid").expect("complete").0;
        assert!(!head("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
    }

    #[test]
    fn refuses_bad_heads() {
        assert_eq!(parse("GARBAGE\r\n\r\n").err(), Some(HeadError::Malformed));
        assert_eq!(
            parse("GET http://x/ HTTP/1.1\r\n\r\n").err(),
            Some(HeadError::Malformed)
        );
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(MAX_HEAD_BYTES));
        assert_eq!(parse(&big).err(), Some(HeadError::TooLarge));
        // The same verdict however much arrives after the limit, defects included.
        assert_eq!(
            parse(&format!("{big}\x01bad\r\n\r\n")).err(),
            Some(HeadError::TooLarge)
        );
        let many: String = (0..=MAX_HEADERS).map(|i| format!("H{i}: v\r\n")).collect();
        assert_eq!(
            parse(&format!("GET / HTTP/1.1\r\n{many}\r\n")).err(),
            Some(HeadError::TooManyHeaders)
        );
        for cl in ["+5", "-1", "5x", "", "99999999999999999999999"] {
            let raw = format!("POST / HTTP/1.1\r\nContent-Length: {cl}\r\n\r\n");
            assert_eq!(parse(&raw).err(), Some(HeadError::BadContentLength), "{cl}");
        }
        assert_eq!(
            parse("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n").err(),
            Some(HeadError::BadContentLength)
        );
        assert_eq!(
            parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").err(),
            Some(HeadError::TransferEncoding)
        );
    }

    #[test]
    fn writes_head_and_omits_body_for_head_requests() {
        let response = Response::new(200, "text/plain", "hi");
        let mut out = Vec::new();
        write_response(&mut out, &response, true, false, "D");
        let text = String::from_utf8(out).expect("ascii");
        assert!(text.starts_with("HTTP/1.1 200 OK\r\nDate: D\r\n"));
        assert!(text.contains("Content-Length: 2\r\n"));
        assert!(text.contains("X-Frame-Options: DENY\r\n"));
        assert!(text.ends_with("Connection: close\r\n\r\n"));
    }

    #[test]
    fn writes_every_header_in_order_then_the_body() {
        let response = Response::new(404, "application/json", vec![b'x'; 1234])
            .with_header("Retry-After", "5");
        let mut out = b"earlier".to_vec();
        write_response(
            &mut out,
            &response,
            false,
            true,
            "Mon, 07 Dec 2026 05:00:00 GMT",
        );
        let expected = format!(
            "earlierHTTP/1.1 404 Not Found\r\nDate: Mon, 07 Dec 2026 05:00:00 GMT\r\n\
             Content-Type: application/json\r\nRetry-After: 5\r\nContent-Length: 1234\r\n\
             X-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\n\
             Referrer-Policy: strict-origin-when-cross-origin\r\n\
             Connection: keep-alive\r\n\r\n{}",
            "x".repeat(1234)
        );
        assert_eq!(String::from_utf8(out).expect("ascii"), expected);

        let mut out = Vec::new();
        write_response(&mut out, &Response::empty(204), false, true, "D");
        let text = String::from_utf8(out).expect("ascii");
        assert!(text.starts_with("HTTP/1.1 204 No Content\r\n"));
        assert!(!text.contains("Content-Length"), "204 carries no length");
        let mut out = Vec::new();
        write_response(&mut out, &Response::empty(200), false, true, "D");
        assert!(String::from_utf8(out)
            .expect("ascii")
            .contains("Content-Length: 0\r\n"));
    }
}
