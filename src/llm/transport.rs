//! How provider requests reach the network: ureq's connector chain (CONNECT proxy, TCP,
//! rustls) with our own TCP step, which connects without blocking and hands the socket
//! to the request's [`Abort`] before the connect has even completed.
//!
//! Each request gets its own agent, so its connection is never pooled: a pooled
//! connection outlives its request and serves the next one, and an abort fired a moment
//! late would then cut a stream that is not its own. A stream is seconds of tokens, so
//! the extra handshake is small beside it; the TLS set-up (root store, session cache for
//! resumption) stays shared.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use ureq::config::Config;
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{
    Buffers, ConnectProxyConnector, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout,
    RustlsConnector, Transport,
};
use ureq::{Agent, Error};

use super::abort::Abort;

/// What every provider request shares.
#[derive(Clone)]
pub struct Client {
    config: Config,
    tls: Arc<RustlsConnector>,
}

impl Client {
    pub fn new(config: Config) -> Client {
        Client {
            config,
            tls: Arc::default(),
        }
    }

    /// An agent for one request, whose sockets `abort` can shut down.
    pub fn agent(&self, abort: &Abort) -> Agent {
        let connector =
            ().chain(ConnectProxyConnector::default())
                .chain(AbortableTcp(abort.clone()))
                .chain(SharedTls(Arc::clone(&self.tls)));
        Agent::with_parts(self.config.clone(), connector, DefaultResolver::default())
    }
}

/// Opens TCP connections the [`Abort`] watches from their first moment. It replaces
/// ureq's `TcpConnector`, whose blocking `connect` no other thread can interrupt.
#[derive(Debug)]
struct AbortableTcp(Abort);

impl<In: Transport> Connector<In> for AbortableTcp {
    type Out = Either<In, Tcp>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, Error> {
        // A proxy connection came first: it was made by this same chain, so watched.
        if chained.is_some() {
            return Ok(chained.map(Either::A));
        }
        let until = details
            .timeout
            .not_zero()
            .and_then(|after| Instant::now().checked_add(*after));
        let socket = connect_any(&details.addrs, until, &self.0).map_err(|e| match e {
            Failed::Io(e) => Error::Io(e),
            Failed::Timeout => Error::Timeout(details.timeout.reason),
        })?;
        let config = details.config;
        if config.no_delay() {
            socket.set_nodelay(true)?;
        }
        Ok(Some(Either::B(Tcp {
            socket,
            buffers: LazyBuffers::new(config.input_buffer_size(), config.output_buffer_size()),
        })))
    }
}

/// A TCP connection as ureq uses it, over the socket the [`Abort`] points at; it is the
/// socket's only owner, so the connection closes when ureq drops it.
#[derive(Debug)]
struct Tcp {
    socket: Arc<TcpStream>,
    buffers: LazyBuffers,
}

impl Transport for Tcp {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), Error> {
        let timeout = timeout.for_write();
        self.socket.set_write_timeout(left(timeout)?)?;
        let output = &self.buffers.output()[..amount];
        (&*self.socket)
            .write_all(output)
            .map_err(|e| io_error(e, timeout))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        let timeout = timeout.for_read();
        self.socket.set_read_timeout(left(timeout)?)?;
        let input = self.buffers.input_append_buf();
        let amount = loop {
            match (&*self.socket).read(input) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                result => break result.map_err(|e| io_error(e, timeout))?,
            }
        };
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    /// Open while nothing arrived unasked: an idle HTTP/1.1 connection stays silent, and
    /// an EOF, an error or stray bytes all make it unfit for another request.
    fn is_open(&mut self) -> bool {
        let socket = &*self.socket;
        if socket.set_nonblocking(true).is_err() {
            return false;
        }
        let idle = matches!(
            socket.peek(&mut [0u8; 1]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock
        );
        socket.set_nonblocking(false).is_ok() && idle
    }
}

/// The socket timeout for the next read or write; `None` waits without limit, as a zero
/// timeout would to the socket, so a budget already spent fails here instead.
fn left(timeout: NextTimeout) -> Result<Option<Duration>, Error> {
    if timeout.after.is_zero() {
        return Err(Error::Timeout(timeout.reason));
    }
    Ok(timeout.not_zero().map(|after| *after))
}

/// A socket timeout is ureq's timeout of the same name; any other error is I/O.
fn io_error(e: io::Error, timeout: NextTimeout) -> Error {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Timeout(timeout.reason),
        _ => Error::Io(e),
    }
}

/// One rustls set-up for every request, so its root store is built once and TLS
/// sessions resume across connections.
#[derive(Debug)]
struct SharedTls(Arc<RustlsConnector>);

impl<In: Transport> Connector<In> for SharedTls {
    type Out = <RustlsConnector as Connector<In>>::Out;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, Error> {
        self.0.connect(details, chained)
    }
}

enum Failed {
    Io(io::Error),
    Timeout,
}

impl From<io::Error> for Failed {
    fn from(e: io::Error) -> Failed {
        Failed::Io(e)
    }
}

/// Tries the resolved addresses in order until one connects. Each gets an equal share
/// of the time left, so a first address that drops packets leaves time for the next;
/// one that refuses at once passes its share on.
fn connect_any(
    addrs: &[SocketAddr],
    until: Option<Instant>,
    abort: &Abort,
) -> Result<Arc<TcpStream>, Failed> {
    let mut last = Failed::Io(io::Error::new(
        io::ErrorKind::AddrNotAvailable,
        "the host resolved to no address",
    ));
    for (i, addr) in addrs.iter().enumerate() {
        let share = until.map(|until| {
            let left = until.saturating_duration_since(Instant::now());
            Instant::now() + left / u32::try_from(addrs.len() - i).unwrap_or(u32::MAX)
        });
        match connect_one(*addr, share, abort) {
            Ok(socket) => return Ok(socket),
            Err(e) if abort.is_fired() => return Err(e),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Starts a non-blocking connect, shows the socket to `abort`, then waits until the
/// connect completes, fails, times out, or the abort shuts the socket down (which wakes
/// the wait: a socket shut down while connecting reports a hang-up).
fn connect_one(
    addr: SocketAddr,
    until: Option<Instant>,
    abort: &Abort,
) -> Result<Arc<TcpStream>, Failed> {
    const CONNECTED: Token = Token(0);
    let mut connecting = mio::net::TcpStream::connect(addr)?;
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut connecting, CONNECTED, Interest::WRITABLE)?;
    let socket = Arc::new(TcpStream::from(connecting));
    abort.watch(&socket);
    let mut events = Events::with_capacity(1);
    loop {
        if abort.is_fired() {
            return Err(Failed::Io(aborted()));
        }
        let wait = match until {
            Some(until) => match until.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => return Err(Failed::Timeout),
            },
            None => None,
        };
        if let Err(e) = poll.poll(&mut events, wait) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e.into());
        }
        if events.is_empty() {
            continue;
        }
        if abort.is_fired() {
            return Err(Failed::Io(aborted()));
        }
        if let Some(e) = socket.take_error()? {
            return Err(e.into());
        }
        // Writable without an error may still be a spurious wake-up: a socket whose
        // connect completed has a peer.
        match socket.peer_addr() {
            Ok(_) => {
                socket.set_nonblocking(false)?;
                return Ok(socket);
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// What a connect stopped by the [`Abort`] fails with; the provider sees the abort
/// fired and reports a cancellation, not this.
fn aborted() -> io::Error {
    io::Error::new(io::ErrorKind::Interrupted, "aborted")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::os::fd::AsRawFd;
    use std::sync::mpsc;
    use std::thread;

    const LONG: Duration = Duration::from_secs(30);

    /// A listener that takes one connection into its queue and then drops further
    /// handshakes: connecting to it while it is full blocks, as an upstream that never
    /// accepts does.
    fn full_listener() -> (TcpListener, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        // SAFETY: `listen` on a descriptor we own only changes its queue length.
        let status = unsafe { libc::listen(listener.as_raw_fd(), 0) };
        assert_eq!(status, 0, "listen");
        let first = TcpStream::connect(listener.local_addr().expect("addr")).expect("first");
        (listener, first)
    }

    #[test]
    fn connects_and_the_socket_carries_data() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let abort = Abort::default();
        let socket = connect_one(addr, Some(Instant::now() + LONG), &abort)
            .unwrap_or_else(|_| panic!("connect"));
        let (mut peer, _) = listener.accept().expect("accept");
        (&*socket).write_all(b"hi").expect("write");
        let mut got = [0u8; 2];
        peer.read_exact(&mut got).expect("read");
        assert_eq!(&got, b"hi");
        // Blocking again, as ureq's transport expects.
        peer.write_all(b"!").expect("write");
        let mut one = [0u8; 1];
        (&*socket).read_exact(&mut one).expect("blocking read");
    }

    #[test]
    fn a_fire_stops_a_connect_the_upstream_never_accepts() {
        let (listener, _first) = full_listener();
        let addr = listener.local_addr().expect("addr");
        let abort = Abort::default();
        let (tx, rx) = mpsc::channel();
        let connecting = {
            let abort = abort.clone();
            thread::spawn(move || {
                let result = connect_one(addr, Some(Instant::now() + LONG), &abort);
                let _ = tx.send(result.map(drop).map_err(|e| match e {
                    Failed::Io(e) => e.kind(),
                    Failed::Timeout => io::ErrorKind::TimedOut,
                }));
            })
        };
        // The queue is full: the connect waits (and would until its timeout).
        assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
        abort.fire();
        let result = rx.recv_timeout(LONG).expect("the connect returned");
        assert_eq!(result, Err(io::ErrorKind::Interrupted));
        connecting.join().expect("thread");
    }

    #[test]
    fn a_connect_that_does_not_complete_in_time_times_out() {
        let (listener, _first) = full_listener();
        let addr = listener.local_addr().expect("addr");
        let result = connect_one(
            addr,
            Some(Instant::now() + Duration::from_millis(100)),
            &Abort::default(),
        );
        assert!(matches!(result, Err(Failed::Timeout)));
    }

    #[test]
    fn a_refused_address_passes_on_to_the_next() {
        let refused = {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("addr")
        };
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let open = listener.local_addr().expect("addr");
        let socket = connect_any(
            &[refused, open],
            Some(Instant::now() + LONG),
            &Abort::default(),
        );
        let socket = socket.unwrap_or_else(|_| panic!("the second address connects"));
        assert_eq!(socket.peer_addr().expect("peer"), open);
    }
}
