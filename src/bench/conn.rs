//! One client connection: TCP connect (from a chosen source address, if any), the upgrade
//! request and its 101, then what the [`Protocol`] makes of the bytes that arrive.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Instant;

use mio::event::Event;
use mio::net::TcpStream;
use socket2::{Domain, Socket, Type};

use super::frames::{new_key, parse_upgrade_response, random_mask, upgrade_request, Target};

/// What an upgraded connection says: the client's side of one message exchange.
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

#[derive(Debug, PartialEq)]
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
    /// The server sent a close frame, with this code (protocols that watch for it).
    Closed {
        code: Option<u16>,
    },
    /// The server refused the message in flight but keeps the socket (chat: a
    /// recoverable `error`, such as `busy`); the next one may be sent.
    Refused(String),
}

#[derive(PartialEq, Clone, Copy)]
pub enum Phase {
    Connecting,
    Upgrading,
    Greeting,
    Open,
}

pub struct Conn<S> {
    stream: TcpStream,
    pub phase: Phase,
    key: String,
    request: Vec<u8>,
    /// Bytes of the request (while upgrading) or of the frame in flight already written.
    written: usize,
    buf: Box<[u8]>,
    filled: usize,
    /// Connect start, then the send time of the message in flight.
    pub since: Instant,
    pub in_flight: bool,
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

/// A non-blocking connect to `addr` from `source`: `IP_BIND_ADDRESS_NO_PORT` lets the
/// kernel pick the port at connect time, per destination, so each source address has
/// the whole ephemeral range towards the server.
fn connect_from(addr: SocketAddr, source: IpAddr) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    let on: libc::c_int = 1;
    // SAFETY: a valid socket fd and a pointer to a c_int that outlives the call.
    let set = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if set != 0 {
        return Err(io::Error::last_os_error());
    }
    socket.bind(&SocketAddr::new(source, 0).into())?;
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(socket.into()))
}

impl<S> Conn<S> {
    pub fn connect(
        target: &Target,
        source: Option<IpAddr>,
        headers: &str,
        buf_len: usize,
        state: S,
    ) -> io::Result<Conn<S>> {
        let key = new_key();
        let stream = match source {
            Some(source) => connect_from(target.addr, source)?,
            None => TcpStream::connect(target.addr)?,
        };
        Ok(Conn {
            stream,
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

    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
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

    /// Answers a server's close frame with ours (masked, same code), best effort: the
    /// connection is dropped next either way, but without the answer the server waits
    /// its close timeout before letting go of the socket.
    pub fn answer_close(&mut self, code: u16) {
        let mut frame = vec![0x88, 0x80 | 2];
        let mask = random_mask();
        frame.extend_from_slice(&mask);
        frame.extend(code.to_be_bytes().iter().zip(mask).map(|(b, m)| b ^ m));
        let _ = self.stream.write(&frame);
    }

    pub fn send<P: Protocol<State = S>>(&mut self, proto: &P) -> Result<(), String> {
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
    pub fn on_event<P: Protocol<State = S>>(
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
            Step::Reply { .. } | Step::Refused(_) => self.in_flight = false,
            Step::Closed { .. } => {}
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
