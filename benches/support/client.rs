//! The WebSocket client: handshake and frames by hand, connections in a slab on one mio
//! (epoll, edge-triggered) loop, and the loop that keeps one message in flight per
//! connection (closed loop) or sends each a think time after the answer (paced, see
//! [`Load`]). What a connection says once upgraded is a [`Protocol`].

use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use base64::Engine;
use mio::event::Event;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::pace::{Load, Pacer};
use super::system::{CpuDelta, CpuMeter, CpuSample};

/// Connects (TCP + upgrade) in flight while opening idle and echo connections: well under
/// the listen backlog, so no SYN is dropped and retried a second later.
pub const OPEN_PARALLEL: usize = 128;
/// Room for the 101 response headers (and any error response) before the first frame.
const MIN_READ_BUFFER: usize = 4096;

pub struct Target {
    pub addr: SocketAddr,
    authority: String,
    path: String,
}

impl Target {
    /// The same server, another path.
    pub fn with_path(&self, path: &str) -> Target {
        Target {
            addr: self.addr,
            authority: self.authority.clone(),
            path: path.to_owned(),
        }
    }
}

pub fn parse_url(url: &str) -> Target {
    let rest = url
        .strip_prefix("ws://")
        .unwrap_or_else(|| panic!("--url must be ws://host:port/path, got {url:?}"));
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let with_port = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| panic!("cannot resolve {authority:?}"));
    Target {
        addr,
        authority: authority.to_owned(),
        path: if path.is_empty() { "/" } else { path }.to_owned(),
    }
}

fn new_key() -> String {
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).expect("getrandom");
    base64::engine::general_purpose::STANDARD.encode(nonce)
}

/// `headers`: extra header lines, each ending in `\r\n`.
fn upgrade_request(target: &Target, key: &str, headers: &str) -> Vec<u8> {
    format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{headers}\r\n",
        target.path, target.authority
    )
    .into_bytes()
}

/// `Ok(None)`: incomplete; `Ok(Some(len))`: a valid 101 whose headers are `len` bytes.
fn parse_upgrade_response(data: &[u8], key: &str) -> Result<Option<usize>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(data) {
        Ok(httparse::Status::Partial) => return Ok(None),
        Ok(httparse::Status::Complete(len)) => len,
        Err(e) => return Err(format!("bad HTTP response: {e}")),
    };
    if response.code != Some(101) {
        return Err(format!(
            "upgrade refused: HTTP {} {}",
            response.code.unwrap_or(0),
            response.reason.unwrap_or("")
        ));
    }
    let expected = tungstenite::handshake::derive_accept_key(key.as_bytes());
    match response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept"))
    {
        Some(h) if h.value == expected.as_bytes() => Ok(Some(len)),
        Some(_) => Err("wrong Sec-WebSocket-Accept".into()),
        None => Err("101 without Sec-WebSocket-Accept".into()),
    }
}

/// A single-frame text message: masked (client to server) or not (server to client).
pub fn text_frame(payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut frame = vec![0x81]; // FIN + text
    match payload.len() {
        n if n < 126 => frame.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            frame.push(mask_bit | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(mask_bit | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(mask) => {
            frame.extend_from_slice(&mask);
            frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        }
        None => frame.extend_from_slice(payload),
    }
    frame
}

pub fn random_mask() -> [u8; 4] {
    let mut mask = [0u8; 4];
    getrandom::fill(&mut mask).expect("getrandom");
    mask
}

/// One whole server frame at the front of `data`.
pub struct ServerFrame<'a> {
    pub fin: bool,
    pub opcode: u8,
    pub payload: &'a [u8],
    /// Header and payload bytes.
    pub len: usize,
}

/// The frame at the front of `data`: `Ok(None)` while it is incomplete. Server frames are
/// unmasked; the length is 7-bit, 16-bit or 64-bit.
pub fn server_frame(data: &[u8]) -> Result<Option<ServerFrame<'_>>, String> {
    let [b0, b1, rest @ ..] = data else {
        return Ok(None);
    };
    if b1 & 0x80 != 0 {
        return Err("masked frame from the server".into());
    }
    let (payload_len, header) = match b1 & 0x7f {
        126 => match rest {
            [a, b, ..] => (u64::from(u16::from_be_bytes([*a, *b])), 4),
            _ => return Ok(None),
        },
        127 => match rest.get(..8) {
            Some(bytes) => (u64::from_be_bytes(bytes.try_into().expect("8 bytes")), 10),
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    let len = usize::try_from(payload_len)
        .ok()
        .and_then(|n| n.checked_add(header))
        .ok_or_else(|| format!("frame of {payload_len} bytes"))?;
    if data.len() < len {
        return Ok(None);
    }
    Ok(Some(ServerFrame {
        fin: b0 & 0x80 != 0,
        opcode: b0 & 0x0f,
        payload: &data[header..len],
        len,
    }))
}

/// Blocking check that the URL upgrades; used to wait for a server and to fail early with
/// the server's answer (e.g. 404 when the echo endpoint is not enabled).
pub fn probe(target: &Target) -> Result<(), String> {
    let mut stream = std::net::TcpStream::connect_timeout(&target.addr, Duration::from_secs(1))
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let key = new_key();
    stream
        .write_all(&upgrade_request(target, &key, ""))
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = vec![0; MIN_READ_BUFFER];
    let mut filled = 0;
    loop {
        match stream.read(&mut buf[filled..]) {
            Ok(0) => return Err("server closed the connection during the upgrade".into()),
            Ok(n) => filled += n,
            Err(e) => return Err(format!("read: {e}")),
        }
        if parse_upgrade_response(&buf[..filled], &key)?.is_some() {
            return Ok(());
        }
        if filled == buf.len() {
            return Err("upgrade response too long".into());
        }
    }
}

/// What an upgraded connection says: the bench's side of one message exchange.
pub trait Protocol {
    /// Per-connection state.
    type State;
    /// The server speaks first: a connection counts as open only once `on_data` says
    /// [`Step::Open`]. Without a greeting, data before the first message is an error.
    const GREETING: bool;
    /// Read buffer per connection: room for the largest message expected.
    fn buffer_len(&self) -> usize;
    /// Extra upgrade header lines (each ending in `\r\n`) and state for a new connection.
    fn connect(&mut self) -> (String, Self::State);
    /// The frame to send for the next message.
    fn request<'a>(&'a self, state: &'a Self::State) -> &'a [u8];
    /// Handles what has been read: returns how many bytes from the front it used (the
    /// rest is kept for the next read) and the furthest step reached.
    fn on_data(
        &self,
        state: &mut Self::State,
        data: &[u8],
        in_flight: bool,
    ) -> Result<(usize, Step), String>;
}

pub enum Step {
    Pending,
    /// Upgraded (and greeted, where the server speaks first).
    Open,
    /// The answer to the message in flight is complete; `first` is when its first part
    /// arrived, for answers that come in parts, and `ack` when the server acknowledged
    /// the message, for protocols that do (chat: `loading`).
    Reply {
        first: Option<Instant>,
        ack: Option<Instant>,
    },
}

#[derive(PartialEq)]
enum Phase {
    Connecting,
    Upgrading,
    Greeting,
    Open,
}

struct Conn<S> {
    stream: TcpStream,
    phase: Phase,
    key: String,
    request: Vec<u8>,
    /// Bytes of the request (while upgrading) or of the frame in flight already written.
    written: usize,
    buf: Box<[u8]>,
    filled: usize,
    /// Connect start, then the send time of the message in flight.
    since: Instant,
    in_flight: bool,
    state: S,
}

/// Writes `data[*written..]` until done or WouldBlock; `Ok(true)` when all is written.
fn write_pending(stream: &mut TcpStream, data: &[u8], written: &mut usize) -> io::Result<bool> {
    while *written < data.len() {
        match stream.write(&data[*written..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => *written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

impl<S> Conn<S> {
    fn connect(target: &Target, headers: &str, buf_len: usize, state: S) -> io::Result<Conn<S>> {
        let key = new_key();
        Ok(Conn {
            stream: TcpStream::connect(target.addr)?,
            phase: Phase::Connecting,
            request: upgrade_request(target, &key, headers),
            key,
            written: 0,
            buf: vec![0; buf_len].into_boxed_slice(),
            filled: 0,
            since: Instant::now(),
            in_flight: false,
            state,
        })
    }

    /// Reads what has arrived. Returns true at end of stream.
    ///
    /// Edge-triggered readiness normally means "read until WouldBlock"; a short read on a
    /// TCP socket already proves the receive queue is empty, so it stops there and saves a
    /// read() that would fail with EAGAIN on every message (as nginx does).
    fn read_available(&mut self) -> io::Result<bool> {
        loop {
            if self.filled == self.buf.len() {
                return Ok(false); // the caller finds the data too long
            }
            match self.stream.read(&mut self.buf[self.filled..]) {
                Ok(0) => return Ok(true),
                Ok(n) => {
                    self.filled += n;
                    if self.filled < self.buf.len() {
                        return Ok(false);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Drops the first `len` bytes of the read buffer.
    fn consume(&mut self, len: usize) {
        self.buf.copy_within(len..self.filled, 0);
        self.filled -= len;
    }

    fn send<P: Protocol<State = S>>(&mut self, proto: &P) -> Result<(), String> {
        self.since = Instant::now();
        self.in_flight = true;
        self.written = 0;
        write_pending(
            &mut self.stream,
            proto.request(&self.state),
            &mut self.written,
        )
        .map(|_| ())
        .map_err(|e| format!("write: {e}"))
    }

    /// Drives the connection on a readiness event.
    fn on_event<P: Protocol<State = S>>(
        &mut self,
        event: &Event,
        proto: &P,
    ) -> Result<Step, String> {
        if self.phase == Phase::Connecting {
            if let Ok(Some(e)) | Err(e) = self.stream.take_error() {
                return Err(format!("connect: {e}"));
            }
            match self.stream.peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(Step::Pending),
                Err(e) => return Err(format!("connect: {e}")),
            }
            let _ = self.stream.set_nodelay(true);
            self.phase = Phase::Upgrading;
            self.written = 0;
        }
        if self.phase == Phase::Upgrading {
            write_pending(&mut self.stream, &self.request, &mut self.written)
                .map_err(|e| format!("write upgrade request: {e}"))?;
            let eof = self.read_available().map_err(|e| format!("read: {e}"))?;
            return match parse_upgrade_response(&self.buf[..self.filled], &self.key)? {
                Some(len) if len < self.filled && !P::GREETING => {
                    Err("data after the 101 response".into())
                }
                Some(len) if P::GREETING => {
                    self.phase = Phase::Greeting;
                    self.consume(len);
                    self.take_data(proto, eof)
                }
                Some(_) => {
                    self.phase = Phase::Open;
                    self.filled = 0;
                    Ok(Step::Open)
                }
                None if eof => Err("server closed the connection during the upgrade".into()),
                None if self.filled == self.buf.len() => Err("upgrade response too long".into()),
                None => Ok(Step::Pending),
            };
        }
        // Greeting or open.
        if self.in_flight && event.is_writable() {
            write_pending(
                &mut self.stream,
                proto.request(&self.state),
                &mut self.written,
            )
            .map_err(|e| format!("write: {e}"))?;
        }
        if !(event.is_readable() || event.is_read_closed()) {
            return Ok(Step::Pending);
        }
        let eof = self.read_available().map_err(|e| format!("read: {e}"))?;
        self.take_data(proto, eof)
    }

    /// Hands the read buffer to the protocol.
    fn take_data<P: Protocol<State = S>>(&mut self, proto: &P, eof: bool) -> Result<Step, String> {
        let (used, step) =
            proto.on_data(&mut self.state, &self.buf[..self.filled], self.in_flight)?;
        self.consume(used);
        match step {
            Step::Open => self.phase = Phase::Open,
            Step::Reply { .. } => self.in_flight = false,
            Step::Pending if eof => return Err("server closed the connection".into()),
            Step::Pending if self.filled == self.buf.len() => {
                return Err(format!(
                    "a message longer than the {}-byte read buffer",
                    self.buf.len()
                ))
            }
            Step::Pending => {}
        }
        Ok(step)
    }
}

/// Connections in a slab; the token carries slot and generation, so an event still queued
/// for a closed connection cannot reach the one that reuses its slot.
pub struct Client<P: Protocol> {
    poll: Poll,
    events: Events,
    slots: Vec<Option<Conn<P::State>>>,
    generations: Vec<u32>,
    free: Vec<usize>,
    pub open: usize,
    target: Target,
    proto: P,
}

fn token(slot: usize, generation: u32) -> Token {
    Token(((generation as usize) << 32) | slot)
}

pub struct Burst {
    pub upgraded: usize,
    pub failed: usize,
    pub first_error: Option<String>,
    /// Connect start to open (101 received, and the greeting if any), ns.
    pub latencies: Vec<u64>,
    pub elapsed: Duration,
}

/// The messages of a run: one in flight per connection, or paced.
pub struct Run {
    /// Complete answers in the measured window.
    pub messages: u64,
    /// Send to complete answer, ns, sorted.
    pub latencies: Vec<u64>,
    /// Send to the first part of an answer that comes in parts, ns, sorted; empty when
    /// answers come whole.
    pub first: Vec<u64>,
    /// Send to the server's acknowledgement, ns, sorted; empty without one.
    pub acks: Vec<u64>,
    pub errors: usize,
    pub first_error: Option<String>,
    /// Connections still open with a message in flight unanswered for the `stall` given
    /// to [`Client::run`].
    pub stalled: usize,
    pub cpu: CpuDelta,
}

/// Nanoseconds from `since` to `until`.
fn nanos(since: Instant, until: Instant) -> u64 {
    (until - since).as_nanos().try_into().unwrap_or(u64::MAX)
}

impl<P: Protocol> Client<P> {
    pub fn new(target: Target, proto: P) -> Client<P> {
        Client {
            poll: Poll::new().expect("epoll"),
            events: Events::with_capacity(1024),
            slots: Vec::new(),
            generations: Vec::new(),
            free: Vec::new(),
            open: 0,
            target,
            proto,
        }
    }

    fn connect(&mut self) -> io::Result<()> {
        let buf_len = self.proto.buffer_len().max(MIN_READ_BUFFER);
        let (headers, state) = self.proto.connect();
        let mut conn = Conn::connect(&self.target, &headers, buf_len, state)?;
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.generations.push(0);
            self.slots.len() - 1
        });
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self.poll.registry().register(
            &mut conn.stream,
            token(slot, self.generations[slot]),
            interest,
        ) {
            self.free.push(slot);
            return Err(e);
        }
        self.slots[slot] = Some(conn);
        Ok(())
    }

    fn remove(&mut self, slot: usize) {
        if let Some(mut conn) = self.slots[slot].take() {
            let _ = self.poll.registry().deregister(&mut conn.stream);
            if conn.phase == Phase::Open {
                self.open -= 1;
            }
            self.generations[slot] = self.generations[slot].wrapping_add(1);
            self.free.push(slot);
        }
    }

    pub fn close_all(&mut self) {
        for slot in 0..self.slots.len() {
            self.remove(slot);
        }
    }

    /// Polls once; yields (slot, was open, result) for each event of a live connection.
    fn poll_once(&mut self, timeout: Duration) -> Vec<(usize, bool, Result<Step, String>)> {
        if let Err(e) = self.poll.poll(&mut self.events, Some(timeout)) {
            assert!(e.kind() == io::ErrorKind::Interrupted, "epoll_wait: {e}");
        }
        let mut out = Vec::with_capacity(self.events.iter().count());
        for event in self.events.iter() {
            let slot = event.token().0 & 0xffff_ffff;
            let generation = (event.token().0 >> 32) as u32;
            if self.generations.get(slot) != Some(&generation) {
                continue;
            }
            let Some(conn) = self.slots[slot].as_mut() else {
                continue;
            };
            let was_open = conn.phase == Phase::Open;
            let result = conn.on_event(event, &self.proto);
            out.push((slot, was_open, result));
        }
        out
    }

    /// Opens `total` connections with at most `parallel` connecting or upgrading at once.
    /// With `keep`, they stay open (idle); without, each is closed once upgraded.
    pub fn burst(&mut self, total: usize, parallel: usize, keep: bool) -> Burst {
        let start = Instant::now();
        let deadline = start + Duration::from_secs(30 + total as u64 / 200);
        let (mut started, mut pending, mut upgraded, mut failed) = (0, 0, 0, 0);
        let mut first_error = None;
        let mut latencies = Vec::with_capacity(total);
        while upgraded + failed < total {
            while started < total && pending < parallel {
                started += 1;
                match self.connect() {
                    Ok(()) => pending += 1,
                    Err(e) => {
                        failed += 1;
                        first_error.get_or_insert(format!("connect: {e}"));
                    }
                }
            }
            for (slot, was_open, result) in self.poll_once(Duration::from_millis(100)) {
                match (was_open, result) {
                    (_, Ok(Step::Pending)) => {}
                    (true, Ok(_)) => {}
                    (true, Err(e)) => {
                        // A kept connection closed by the server while others open.
                        first_error.get_or_insert(format!("open connection lost: {e}"));
                        self.remove(slot);
                    }
                    (false, Ok(_)) => {
                        if let Some(conn) = self.slots[slot].as_ref() {
                            latencies.push(nanos(conn.since, Instant::now()));
                        }
                        upgraded += 1;
                        pending -= 1;
                        self.open += 1;
                        if !keep {
                            self.remove(slot);
                        }
                    }
                    (false, Err(e)) => {
                        failed += 1;
                        pending -= 1;
                        first_error.get_or_insert(e);
                        self.remove(slot);
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "connections stuck: {upgraded} upgraded, {failed} failed, {pending} pending \
                 after {:?} (first error: {first_error:?})",
                start.elapsed()
            );
        }
        Burst {
            upgraded,
            failed,
            first_error,
            latencies,
            elapsed: start.elapsed(),
        }
    }

    /// Opens `n` connections for a run, at most OPEN_PARALLEL at once; says so when some
    /// fail.
    pub fn open_for_run(&mut self, n: usize) {
        let burst = self.burst(n, OPEN_PARALLEL.min(n.max(1)), true);
        if burst.failed > 0 {
            println!(
                "  {n:>6}: {} of {n} connections failed to open (first: {})",
                burst.failed,
                burst.first_error.unwrap_or_default()
            );
        }
    }

    /// Every open connection sends messages for `warmup` + `measured`, as `load` says:
    /// the next one on the answer (closed) or a think time after it (paced).
    /// A connection with a message in flight unanswered for `stall` at the end counts as
    /// stalled.
    pub fn run(
        &mut self,
        warmup: Duration,
        measured: Duration,
        stall: Duration,
        meter: &CpuMeter,
        load: Load,
    ) -> Run {
        /// The longest poll: how late the end of warm-up and of the window may be seen.
        const TICK: Duration = Duration::from_millis(10);
        let mut run = Run {
            messages: 0,
            latencies: Vec::new(),
            first: Vec::new(),
            acks: Vec::new(),
            errors: 0,
            first_error: None,
            stalled: 0,
            cpu: CpuDelta::default(),
        };
        let mut pacer = match load {
            Load::Closed => None,
            Load::Paced { mean } => Some(Pacer::new(mean)),
        };
        let mut failed_slots = Vec::new();
        let start = Instant::now();
        for slot in 0..self.slots.len() {
            if let Some(conn) = self.slots[slot].as_mut() {
                if let Some(pacer) = pacer.as_mut() {
                    pacer.start(slot, start);
                } else if let Err(e) = conn.send(&self.proto) {
                    failed_slots.push((slot, e));
                }
            }
        }
        let warm_until = start + warmup;
        let mut window_start: Option<CpuSample> = None;
        loop {
            for (slot, e) in failed_slots.drain(..) {
                run.errors += 1;
                run.first_error.get_or_insert(e);
                self.remove(slot);
            }
            if self.open == 0 {
                break;
            }
            let now = Instant::now();
            if let Some(w) = window_start {
                if now - w.at >= measured {
                    break;
                }
            } else if now >= warm_until {
                window_start = Some(meter.sample());
            }
            if let Some(pacer) = pacer.as_mut() {
                while let Some(slot) = pacer.pop_due(now) {
                    // A slot removed after an error stays empty for the rest of the run.
                    if let Some(conn) = self.slots[slot].as_mut() {
                        if let Err(e) = conn.send(&self.proto) {
                            failed_slots.push((slot, e));
                        }
                    }
                }
            }
            let timeout = pacer.as_ref().map_or(TICK, |p| p.timeout(now, TICK));
            for (slot, _, result) in self.poll_once(timeout) {
                match result {
                    Ok(Step::Reply { first, ack }) => {
                        let conn = self.slots[slot].as_mut().expect("live slot");
                        let now = Instant::now();
                        if window_start.is_some() {
                            run.messages += 1;
                            run.latencies.push(nanos(conn.since, now));
                            if let Some(first) = first {
                                run.first.push(nanos(conn.since, first));
                            }
                            if let Some(ack) = ack {
                                run.acks.push(nanos(conn.since, ack));
                            }
                        }
                        if let Some(pacer) = pacer.as_mut() {
                            pacer.after_answer(slot, now);
                        } else if let Err(e) = conn.send(&self.proto) {
                            failed_slots.push((slot, e));
                        }
                    }
                    Ok(_) => {}
                    Err(e) => failed_slots.push((slot, e)),
                }
            }
        }
        let end = meter.sample();
        for (slot, e) in failed_slots.drain(..) {
            run.errors += 1;
            run.first_error.get_or_insert(e);
            self.remove(slot);
        }
        if let Some(start) = window_start {
            run.cpu = meter.delta(start, end);
        }
        run.stalled = self
            .slots
            .iter()
            .flatten()
            .filter(|c| c.in_flight && end.at - c.since > stall)
            .count();
        run.latencies.sort_unstable();
        run.first.sort_unstable();
        run.acks.sort_unstable();
        run
    }
}
