//! A real reactor on loopback listeners for unit tests: the loop turns on the test's
//! thread while a client thread talks to it over real sockets.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Poll};

use super::{waker, Listeners, Reactor, Settings};
use crate::metrics::Metrics;
use crate::net::conn::Limits;
use crate::net::handler::Handler;
use crate::net::lanes::{completion_channel, Completions};
use crate::net::signals::SignalSource;

/// Failure guard only: no test waits this long when it passes.
const GUARD: Duration = Duration::from_secs(20);

pub struct TestLoop<H: Handler> {
    pub reactor: Reactor<H>,
    events: Events,
    pub public: SocketAddr,
    pub completions: Completions<H::Completion>,
    pub metrics: Arc<Metrics>,
}

impl<H: Handler> TestLoop<H> {
    pub fn new(handler: H, max_connections: usize) -> TestLoop<H> {
        let public = TcpListener::bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let addr = public.local_addr().expect("addr");
        let poll = Poll::new().expect("poll");
        let (completions, queue) = completion_channel(waker(&poll).expect("waker"), 64);
        let metrics = Arc::new(Metrics::new(&[]));
        let settings = Settings {
            max_connections,
            max_connections_per_ip: max_connections,
            per_ip_exempt: Vec::new(),
            limits: Limits::TESTING,
            drain_delay: Duration::ZERO,
            shutdown_timeout: Duration::from_secs(1),
        };
        let listeners = Listeners {
            public,
            internal: None,
        };
        let signals = SignalSource::new().expect("signals");
        let reactor = Reactor::new(
            poll,
            signals,
            settings,
            listeners,
            queue,
            handler,
            Arc::clone(&metrics),
        )
        .expect("reactor");
        TestLoop {
            reactor,
            events: Events::with_capacity(64),
            public: addr,
            completions,
            metrics,
        }
    }

    /// Turns the loop until `client` (run on a thread of its own) returns; its panic
    /// fails the test.
    pub fn serve<T: Send + 'static>(&mut self, client: impl FnOnce() -> T + Send + 'static) -> T {
        let client = thread::spawn(client);
        let deadline = Instant::now() + GUARD;
        while !client.is_finished() {
            assert!(Instant::now() < deadline, "the client did not finish");
            let exit = self.reactor.turn(&mut self.events).expect("poll");
            assert!(exit.is_none(), "the loop ended: {exit:?}");
        }
        client
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(GUARD)).expect("read timeout");
    stream
}

/// One `GET path` with `Connection: close`; the whole answer, up to the server's close.
pub fn get(addr: SocketAddr, path: &str) -> String {
    let mut stream = connect(addr);
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut answer = Vec::new();
    // A reset after the answer still leaves what was read.
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}
