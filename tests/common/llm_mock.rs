//! Mock LLM providers: a plain `TcpListener` on 127.0.0.1 that speaks each provider's real
//! wire format (HTTP/1.1, chunked SSE) well enough for `ureq`, so tests can drive our
//! providers, or the real binary configured with `LLM_PROVIDER_1_ENDPOINT=mock.endpoint()`.
//!
//! Each request is recorded (method, path, headers, JSON body) and answered by the next
//! [`Script`] in order, so "first 500, then a stream" tests retries. Every SSE event is
//! written and flushed on its own, so a `delay` between chunks is real on the wire, and
//! while waiting out a delay the mock watches its socket: a client that closes the
//! connection before the stream is over is counted as a disconnect (an aborted request).

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The task id in every Dify stream; a stop call goes to `chat-messages/{it}/stop`.
pub const DIFY_TASK_ID: &str = "mock-task-1";
/// The conversation id Dify streams carry when the request had none.
pub const DIFY_CONVERSATION_ID: &str = "mock-conversation-1";

/// How often blocked reads look at the stop flag.
const POLL: Duration = Duration::from_millis(20);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    OpenAi,
    Anthropic,
    Dify,
}

#[derive(Clone, Debug)]
pub enum Script {
    /// 200 and `chunks` as the provider's text events, each after `delay`, then its end
    /// events, with usage (as the provider splits it) when `usage` is given.
    Stream {
        chunks: Vec<String>,
        delay: Duration,
        usage: Option<u64>,
    },
    /// This status with this body, `Content-Length` framed.
    Status(u16, String),
    /// 200 and `chunks` as in `Stream`, then the connection closes mid-stream.
    FailAfter {
        chunks: Vec<String>,
        delay: Duration,
    },
    /// 200 headers, then nothing until the client goes away.
    Hang,
    /// Not even headers: the request is read, then nothing until the client goes away.
    Silent,
    /// 200 and `chunks` as in `Stream`, then nothing until the client goes away.
    Stall { chunks: Vec<String> },
}

impl Script {
    /// A stream with no delay between chunks.
    pub fn stream(chunks: &[&str], usage: Option<u64>) -> Script {
        Script::Stream {
            chunks: strings(chunks),
            delay: Duration::ZERO,
            usage,
        }
    }

    /// A stream slow enough (`delay` before each chunk) for a stop to land mid-stream.
    pub fn slow(chunks: &[&str], delay: Duration) -> Script {
        Script::Stream {
            chunks: strings(chunks),
            delay,
            usage: None,
        }
    }

    /// `count` words `w0 `, `w1 `, … each `delay` apart: a reply long enough to be
    /// interrupted, whose text shows which words arrived.
    pub fn slow_words(count: usize, delay: Duration) -> Script {
        Script::Stream {
            chunks: (0..count).map(|i| format!("w{i} ")).collect(),
            delay,
            usage: None,
        }
    }

    pub fn stall(chunks: &[&str]) -> Script {
        Script::Stall {
            chunks: strings(chunks),
        }
    }

    pub fn fail_after(chunks: &[&str]) -> Script {
        Script::FailAfter {
            chunks: strings(chunks),
            delay: Duration::ZERO,
        }
    }
}

fn strings(chunks: &[&str]) -> Vec<String> {
    chunks.iter().map(|c| (*c).to_owned()).collect()
}

/// One request as the mock received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// `Value::Null` when the body was not JSON.
    pub body: Value,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub struct LlmMock {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

struct Shared {
    wire: Wire,
    state: Mutex<State>,
    changed: Condvar,
    stopping: AtomicBool,
}

#[derive(Default)]
struct State {
    scripts: VecDeque<Script>,
    requests: Vec<Recorded>,
    disconnects: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, change: impl FnOnce(&mut State)) {
        change(&mut self.lock());
        self.changed.notify_all();
    }

    /// Waits until `done` holds or `limit` passes; returns whether it holds.
    fn wait(&self, limit: Duration, done: impl Fn(&State) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        let mut state = self.lock();
        loop {
            if done(&state) {
                return true;
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}

impl LlmMock {
    pub fn start(wire: Wire, scripts: Vec<Script>) -> LlmMock {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind mock");
        let addr = listener.local_addr().expect("mock address");
        let shared = Arc::new(Shared {
            wire,
            state: Mutex::new(State {
                scripts: scripts.into(),
                ..State::default()
            }),
            changed: Condvar::new(),
            stopping: AtomicBool::new(false),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || accept(listener, shared))
        };
        LlmMock {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// The provider endpoint to configure: `http://127.0.0.1:PORT/v1`.
    pub fn endpoint(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Queues another script after those given at start.
    pub fn push(&self, script: Script) {
        self.shared.update(|s| s.scripts.push_back(script));
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().requests.clone()
    }

    /// The requests once there are at least `count`, or all there are after `limit`.
    pub fn wait_for_requests(&self, count: usize, limit: Duration) -> Vec<Recorded> {
        self.shared.wait(limit, |s| s.requests.len() >= count);
        self.requests()
    }

    /// Whether a client closed its connection while the mock was still streaming or
    /// hanging, waiting up to `limit` for it. With a zero-delay stream the whole reply
    /// may sit in socket buffers before the client stops, so a stop test needs a delay.
    pub fn wait_for_disconnect(&self, limit: Duration) -> bool {
        self.shared.wait(limit, |s| s.disconnects > 0)
    }

    pub fn disconnects(&self) -> usize {
        self.shared.lock().disconnects
    }
}

impl Drop for LlmMock {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wakes the blocking accept so the acceptor sees the flag; when even that fails
        // the thread is left behind rather than the test hanging in join.
        if TcpStream::connect(self.addr).is_ok() {
            if let Some(acceptor) = self.acceptor.take() {
                let _ = acceptor.join();
            }
        }
    }
}

fn accept(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = Vec::new();
    for stream in listener.incoming() {
        if shared.stopping() {
            break;
        }
        let Ok(stream) = stream else { continue };
        let shared = Arc::clone(&shared);
        connections.push(thread::spawn(move || serve(&shared, stream)));
    }
    for connection in connections {
        let _ = connection.join();
    }
}

fn serve(shared: &Shared, mut stream: TcpStream) {
    let Some(request) = read_request(shared, &mut stream) else {
        return;
    };
    let stop_call = shared.wire == Wire::Dify && request.path.ends_with("/stop");
    let body = request.body.clone();
    // The script is taken in the same step as the request is recorded, so the order of
    // scripts is the order of recorded requests.
    let mut script = None;
    shared.update(|s| {
        s.requests.push(request);
        if !stop_call {
            script = s.scripts.pop_front();
        }
    });
    if stop_call {
        respond(&mut stream, 200, r#"{"result":"success"}"#);
        return;
    }
    let script = script.unwrap_or_else(|| {
        Script::Status(418, r#"{"error":"the mock has no script left"}"#.into())
    });
    let events = |chunks: &[String], usage| Rendered::new(shared.wire, &body, chunks, usage);
    match script {
        Script::Status(status, body) => respond(&mut stream, status, &body),
        Script::Stream {
            chunks,
            delay,
            usage,
        } => {
            let rendered = events(&chunks, usage);
            let _ = stream_events(shared, &mut stream, &rendered, delay, true);
        }
        Script::FailAfter { chunks, delay } => {
            let rendered = events(&chunks, None);
            if stream_events(shared, &mut stream, &rendered, delay, false).is_ok() {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
        Script::Hang => {
            if write_head(&mut stream).is_ok() && client_gone_within(shared, &stream, None) {
                shared.update(|s| s.disconnects += 1);
            }
        }
        Script::Silent => {
            if client_gone_within(shared, &stream, None) {
                shared.update(|s| s.disconnects += 1);
            }
        }
        Script::Stall { chunks } => {
            let rendered = events(&chunks, None);
            if stream_events(shared, &mut stream, &rendered, Duration::ZERO, false).is_ok()
                && client_gone_within(shared, &stream, None)
            {
                shared.update(|s| s.disconnects += 1);
            }
        }
    }
}

/// The client went away while we were still sending.
struct Gone;

/// Writes the head, the prologue, each text event after `delay`, and with `finish` the
/// end events and the last chunk. A client gone before that is counted and ends it.
fn stream_events(
    shared: &Shared,
    stream: &mut TcpStream,
    rendered: &Rendered,
    delay: Duration,
    finish: bool,
) -> Result<(), Gone> {
    let result = (|| {
        write_head(stream).map_err(|_| Gone)?;
        for event in &rendered.prologue {
            write_chunk(stream, event)?;
        }
        for event in &rendered.chunks {
            if !delay.is_zero() && client_gone_within(shared, stream, Some(delay)) {
                return Err(Gone);
            }
            write_chunk(stream, event)?;
        }
        if finish {
            for event in &rendered.epilogue {
                write_chunk(stream, event)?;
            }
            // Best effort: the end event above is the stream's end, and a client that
            // keeps no connection alive (chatbox since stop shuts the upstream socket)
            // may hang up before this last, empty chunk arrives. That is no disconnect.
            let _ = stream.write_all(b"0\r\n\r\n");
        }
        Ok(())
    })();
    if result.is_err() {
        shared.update(|s| s.disconnects += 1);
    }
    result
}

fn write_head(stream: &mut TcpStream) -> io::Result<()> {
    stream.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
          Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    )?;
    stream.flush()
}

fn write_chunk(stream: &mut TcpStream, event: &str) -> Result<(), Gone> {
    write!(stream, "{:x}\r\n{event}\r\n", event.len())
        .and_then(|()| stream.flush())
        .map_err(|_| Gone)
}

fn respond(stream: &mut TcpStream, status: u16, body: &str) {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Mock",
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .and_then(|()| stream.flush());
}

/// Whether the client closes the connection (EOF or reset) within `limit` (`None`: until
/// the mock stops). The client sends nothing after its request, so any readable byte
/// would be a protocol error on its side and is ignored.
fn client_gone_within(shared: &Shared, stream: &TcpStream, limit: Option<Duration>) -> bool {
    let deadline = limit.map(|l| Instant::now() + l);
    let mut byte = [0u8; 1];
    let mut stream = stream;
    while !shared.stopping() {
        let slice = match deadline {
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => left.min(POLL),
                _ => return false,
            },
            None => POLL,
        };
        if stream.set_read_timeout(Some(slice)).is_err() {
            return true;
        }
        match stream.read(&mut byte) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

/// Reads one request: head up to 64 KiB, then a `Content-Length` body.
fn read_request(shared: &Shared, stream: &mut TcpStream) -> Option<Recorded> {
    let deadline = Instant::now() + Duration::from_secs(10);
    stream.set_read_timeout(Some(POLL)).ok()?;
    let mut buf = Vec::new();
    let mut piece = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 || shared.stopping() || Instant::now() > deadline {
            return None;
        }
        read_some(stream, &mut piece, &mut buf)?;
    };
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Request::new(&mut headers);
    parsed.parse(&buf[..head_end]).ok()?;
    let method = parsed.method?.to_owned();
    let path = parsed.path?.to_owned();
    let headers = super::owned_headers(parsed.headers);
    let length = super::content_length(&headers).unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        if shared.stopping() || Instant::now() > deadline {
            return None;
        }
        read_some(stream, &mut piece, &mut body)?;
    }
    Some(Recorded {
        method,
        path,
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    })
}

/// A reply as SSE event texts: what precedes the text, the text events, what ends it.
struct Rendered {
    prologue: Vec<String>,
    chunks: Vec<String>,
    epilogue: Vec<String>,
}

/// Appends what the client sent to `buf` (nothing on a read timeout); `None` once the
/// client is gone or the read failed.
fn read_some(stream: &mut TcpStream, piece: &mut [u8], buf: &mut Vec<u8>) -> Option<()> {
    match stream.read(piece) {
        Ok(0) => None,
        Ok(n) => {
            buf.extend_from_slice(&piece[..n]);
            Some(())
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Some(())
        }
        Err(_) => None,
    }
}
fn data(value: &Value) -> String {
    format!("data: {value}\n\n")
}

fn named(name: &str, value: &Value) -> String {
    format!("event: {name}\ndata: {value}\n\n")
}

impl Rendered {
    fn new(wire: Wire, request: &Value, chunks: &[String], usage: Option<u64>) -> Rendered {
        let model = request["model"].as_str().unwrap_or("mock-model");
        // Split the total the way the providers report it: prompt plus completion.
        let prompt = usage.map(|u| u / 2);
        let completion = usage.map(|u| u - u / 2);
        match wire {
            Wire::OpenAi => {
                let chunk = |delta: Value, finish: Value| {
                    data(&json!({
                        "id": "chatcmpl-mock", "object": "chat.completion.chunk",
                        "created": 1_700_000_000, "model": model,
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                        "usage": null,
                    }))
                };
                let mut epilogue = vec![chunk(json!({}), json!("stop"))];
                if let Some(total) = usage {
                    epilogue.push(data(&json!({
                        "id": "chatcmpl-mock", "object": "chat.completion.chunk",
                        "created": 1_700_000_000, "model": model, "choices": [],
                        "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                                  "total_tokens": total},
                    })));
                }
                epilogue.push("data: [DONE]\n\n".into());
                Rendered {
                    prologue: vec![chunk(
                        json!({"role": "assistant", "content": ""}),
                        Value::Null,
                    )],
                    chunks: chunks
                        .iter()
                        .map(|c| chunk(json!({ "content": c }), Value::Null))
                        .collect(),
                    epilogue,
                }
            }
            Wire::Anthropic => {
                let mut start = json!({
                    "type": "message_start",
                    "message": {"id": "msg_mock", "type": "message", "role": "assistant",
                                "content": [], "model": model, "stop_reason": null,
                                "stop_sequence": null},
                });
                let mut delta = json!({
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                });
                if let (Some(prompt), Some(completion)) = (prompt, completion) {
                    start["message"]["usage"] = json!({"input_tokens": prompt, "output_tokens": 1});
                    delta["usage"] = json!({ "output_tokens": completion });
                }
                Rendered {
                    prologue: vec![
                        named("message_start", &start),
                        named(
                            "content_block_start",
                            &json!({"type": "content_block_start", "index": 0,
                                    "content_block": {"type": "text", "text": ""}}),
                        ),
                        named("ping", &json!({"type": "ping"})),
                    ],
                    chunks: chunks
                        .iter()
                        .map(|c| {
                            named(
                                "content_block_delta",
                                &json!({"type": "content_block_delta", "index": 0,
                                        "delta": {"type": "text_delta", "text": c}}),
                            )
                        })
                        .collect(),
                    epilogue: vec![
                        named(
                            "content_block_stop",
                            &json!({"type": "content_block_stop", "index": 0}),
                        ),
                        named("message_delta", &delta),
                        named("message_stop", &json!({"type": "message_stop"})),
                    ],
                }
            }
            Wire::Dify => {
                let conversation = request["conversation_id"]
                    .as_str()
                    .filter(|c| !c.is_empty())
                    .unwrap_or(DIFY_CONVERSATION_ID);
                let metadata = match usage {
                    Some(total) => json!({"usage": {"prompt_tokens": prompt,
                        "completion_tokens": completion, "total_tokens": total,
                        "currency": "USD", "latency": 0.5}}),
                    None => json!({}),
                };
                Rendered {
                    // Dify's keep-alive: an event with no data, which readers must skip.
                    prologue: vec!["event: ping\n\n".into()],
                    chunks: chunks
                        .iter()
                        .map(|c| {
                            data(&json!({
                                "event": "message", "task_id": DIFY_TASK_ID,
                                "message_id": "mock-message-1", "conversation_id": conversation,
                                "answer": c, "created_at": 1_700_000_000,
                            }))
                        })
                        .collect(),
                    epilogue: vec![data(&json!({
                        "event": "message_end", "task_id": DIFY_TASK_ID,
                        "message_id": "mock-message-1", "conversation_id": conversation,
                        "metadata": metadata,
                    }))],
                }
            }
        }
    }
}

/// `LLM_PROVIDER_<n>_*` for a mock (n counts from 1).
pub fn provider_env(n: usize, id: &str, kind: &str, endpoint: &str) -> Vec<(String, String)> {
    [
        ("ID", id),
        ("NAME", id),
        ("TYPE", kind),
        ("ENDPOINT", endpoint),
        ("MODEL", "upstream-model"),
        ("API_KEY", "sk-test-key"),
    ]
    .iter()
    .map(|(k, v)| (format!("LLM_PROVIDER_{n}_{k}"), v.to_string()))
    .collect()
}
