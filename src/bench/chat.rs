//! The chat socket: one user per socket, each keeping one `user_message` in flight, the
//! times of `loading` (the message is stored), of the first `ai_response` chunk and of
//! `done`; optionally every acknowledged message, for the drain's loss check.

use std::cell::RefCell;
use std::fmt;
use std::time::Instant;

use super::conn::{Protocol, Step};
use super::frames::{describe_close, random_mask, server_frame, text_frame};

/// The read buffer: `connection_status` (with the model list) is the largest frame.
const CHAT_BUFFER: usize = 16 * 1024;

/// Where the sockets' tokens come from.
pub enum Tokens {
    /// Minted here with the server's `JWT_SECRET`, for users `<prefix><n>`.
    Mint {
        secret: Vec<u8>,
        prefix: String,
        ttl_secs: u64,
    },
    /// Given, one per line: socket n uses line n (round robin).
    Given(Vec<String>),
}

#[derive(Debug)]
pub struct TokenError(String);

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "token: {}", self.0)
    }
}

impl std::error::Error for TokenError {}

impl Tokens {
    /// Reads a token file: one token a line, blank lines skipped.
    pub fn from_file(path: &std::path::Path) -> Result<Tokens, TokenError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| TokenError(format!("read {}: {e}", path.display())))?;
        let tokens: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        if tokens.is_empty() {
            return Err(TokenError(format!("{} holds no token", path.display())));
        }
        Ok(Tokens::Given(tokens))
    }

    /// The token of socket `n`.
    pub fn token(&self, n: usize) -> Result<String, TokenError> {
        match self {
            Tokens::Mint {
                secret,
                prefix,
                ttl_secs,
            } => {
                let user = format!("{prefix}{n}");
                let now = crate::time::unix_now();
                crate::auth::mint(secret, &user, None, &[], now, Some(*ttl_secs))
                    .map_err(|e| TokenError(format!("mint for {user}: {e}")))
            }
            Tokens::Given(tokens) => Ok(tokens[n % tokens.len()].clone()),
        }
    }
}

/// A message the server acknowledged with `loading`: it must be in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acked {
    pub session: String,
    pub message_id: Option<String>,
    pub content: String,
}

pub struct Chat {
    tokens: Tokens,
    next: usize,
    /// Keep every acknowledged message in `acked`.
    record: bool,
    pub acked: RefCell<Vec<Acked>>,
    /// Replies that ended with `done`, on every socket.
    pub done: RefCell<u64>,
}

impl Chat {
    pub fn new(tokens: Tokens, record: bool) -> Chat {
        Chat {
            tokens,
            next: 0,
            record,
            acked: RefCell::new(Vec::new()),
            done: RefCell::new(0),
        }
    }
}

#[derive(Default)]
pub struct ChatConn {
    /// This socket's number, in the contents it sends.
    n: usize,
    sent: u64,
    session: Option<String>,
    content: String,
    /// The masked `user_message` frame for `session` and `content`.
    frame: Vec<u8>,
    /// When the first `ai_response` of the reply in progress arrived.
    first: Option<Instant>,
    /// When the message in flight was acknowledged with `loading` (it is stored).
    ack: Option<Instant>,
    /// A token that could not be made: the socket fails on its first data.
    error: Option<String>,
}

impl ChatConn {
    /// The next message: one word (the echo model answers it with one chunk), unique per
    /// socket and message so that a lost one can be named.
    fn next_message(&mut self) {
        let Some(session) = &self.session else {
            return;
        };
        self.sent += 1;
        self.content = format!("b{}m{}", self.n, self.sent);
        let message = format!(
            r#"{{"type":"user_message","session_id":"{session}","content":"{}"}}"#,
            self.content
        );
        self.frame = text_frame(message.as_bytes(), Some(random_mask()));
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The value of `"key":"…"` in a server frame (ids are hex: no escapes to undo).
fn string_field<'a>(json: &'a [u8], key: &str) -> Option<&'a str> {
    let pattern = format!("\"{key}\":\"");
    let start = json
        .windows(pattern.len())
        .position(|w| w == pattern.as_bytes())?
        + pattern.len();
    let len = json[start..].iter().position(|&b| b == b'"')?;
    std::str::from_utf8(&json[start..start + len]).ok()
}

impl Protocol for Chat {
    type State = ChatConn;
    const GREETING: bool = true;

    fn buffer_len(&self) -> usize {
        CHAT_BUFFER
    }

    fn connect(&mut self) -> (String, ChatConn) {
        let n = self.next;
        self.next += 1;
        let mut state = ChatConn {
            n,
            ..ChatConn::default()
        };
        match self.tokens.token(n) {
            Ok(token) => (format!("Authorization: Bearer {token}\r\n"), state),
            Err(e) => {
                state.error = Some(e.to_string());
                (String::new(), state)
            }
        }
    }

    fn request<'a>(&'a self, state: &'a ChatConn) -> &'a [u8] {
        &state.frame
    }

    /// Frames are told apart by their start (`type` is always the first field) and the
    /// reply's end by `"done":"true"`, which no content can hold unescaped.
    fn on_data(
        &self,
        state: &mut ChatConn,
        data: &[u8],
        in_flight: bool,
    ) -> Result<(usize, Step), String> {
        if let Some(e) = state.error.take() {
            return Err(e);
        }
        let mut used = 0;
        let mut step = Step::Pending;
        while let Some(frame) = server_frame(&data[used..])? {
            used += frame.len;
            match (frame.fin, frame.opcode) {
                (true, 0x1) => {}
                (_, 0x8) if state.session.is_none() => return Err(describe_close(frame.payload)),
                (_, 0x8) => {
                    return Ok((
                        used,
                        Step::Closed {
                            code: frame.close_code(),
                        },
                    ))
                }
                // The server pings every 54 s and any frame of ours counts as alive.
                (true, 0x9 | 0xa) => continue,
                (fin, opcode) => {
                    return Err(format!("unexpected frame: opcode {opcode:#x}, fin {fin}"))
                }
            }
            let json = frame.payload;
            if json.starts_with(br#"{"type":"ai_response""#) {
                if !in_flight {
                    return Err("ai_response with no message in flight".into());
                }
                let first = *state.first.get_or_insert_with(Instant::now);
                if contains(json, br#""done":"true""#) {
                    if contains(json, br#""error":"true""#) {
                        return Err("the reply ended with error".into());
                    }
                    *self.done.borrow_mut() += 1;
                    state.first = None;
                    state.next_message();
                    step = Step::Reply {
                        first: Some(first),
                        ack: state.ack.take(),
                    };
                }
            } else if json.starts_with(br#"{"type":"connection_status""#) {
                let session = string_field(json, "session_id")
                    .ok_or("connection_status without a session_id")?;
                if state.session.as_deref() != Some(session) {
                    // Adopt the session of every connection_status (the protocol's rule).
                    let greeting = state.session.is_none();
                    state.session = Some(session.to_owned());
                    if !in_flight {
                        state.next_message();
                    }
                    if greeting {
                        step = Step::Open;
                    }
                }
            } else if json.starts_with(br#"{"type":"loading""#) {
                if in_flight && state.ack.is_none() {
                    state.ack = Some(Instant::now());
                    if self.record {
                        self.acked.borrow_mut().push(Acked {
                            session: state.session.clone().unwrap_or_default(),
                            message_id: string_field(json, "message_id").map(str::to_owned),
                            content: state.content.clone(),
                        });
                    }
                }
            } else if json.starts_with(br#"{"type":"error""#) {
                let error = format!("server error: {}", String::from_utf8_lossy(json));
                if !(in_flight && contains(json, br#""recoverable":true"#)) {
                    return Err(error);
                }
                // Not taken (busy, rate limited): this message gets no reply.
                state.first = None;
                state.ack = None;
                state.next_message();
                step = Step::Refused(error);
            }
            // Anything else: nothing to do.
        }
        Ok((used, step))
    }
}
