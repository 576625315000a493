//! Start-up and shutdown: bind, start the lanes, run the loop, let queued work finish.
//! What runs where: the loop (and every socket) on the calling thread; blocking work on
//! the lanes' threads (see `app::Lanes`).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::Poll;
use socket2::{Domain, Socket, Type};

use crate::app::{self, App, Backends, Done, Lanes};
use crate::bus::{Bus, BusError};
use crate::config::Config;
use crate::llm::Catalog;
use crate::net::conn::Limits;
use crate::net::lanes::completion_channel;
use crate::net::limits;
use crate::net::reactor::{self, Exit, Listeners, Reactor, Settings};
use crate::net::signals::SignalSource;
use crate::notify::{Notifier, NotifyError};
use crate::store::{self, StoreError};
use crate::upload::dir::DirBlobs;
use crate::upload::s3::S3Blobs;
use crate::upload::signed::Signer;
use crate::upload::{BlobError, Blobs};

/// Keep-alive connections idle this long are closed. Longer than the common proxy
/// default (nginx upstream keepalive 60 s) so that the proxy, not us, closes first and
/// never sends a request into a connection we are closing.
const HTTP_IDLE_TIMEOUT: Duration = Duration::from_secs(75);
/// spec/http.md: a request head must be complete within 10 s (slowloris).
const HTTP_HEAD_TIMEOUT: Duration = Duration::from_secs(10);
const HTTP_BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Completions in flight between lanes and the loop; a full channel slows the workers
/// (an LLM stream reads more slowly), never the loop.
const COMPLETION_CAPACITY: usize = 4096;
/// However the loop ended, queued store writes get at least this long to finish.
const FLUSH_FLOOR: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub enum StartError {
    Bind(SocketAddr, io::Error),
    Store(StoreError),
    Notify(NotifyError),
    Uploads(BlobError),
    Bus(BusError),
    Io(io::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Bind(addr, error) => write!(f, "cannot listen on {addr}: {error}"),
            StartError::Store(error) => write!(f, "cannot open the store: {error}"),
            StartError::Notify(error) => write!(f, "cannot set up help-request mail: {error}"),
            StartError::Uploads(error) => write!(f, "cannot set up DATA_DIR/uploads: {error}"),
            StartError::Bus(error) => write!(f, "cannot set up cross-pod delivery: {error}"),
            StartError::Io(error) => write!(f, "start-up failed: {error}"),
        }
    }
}

impl std::error::Error for StartError {}

impl From<io::Error> for StartError {
    fn from(error: io::Error) -> Self {
        StartError::Io(error)
    }
}

/// S3 when `S3_BUCKET` is set, else `DATA_DIR/uploads`.
fn open_blobs(config: &Config, signer: &Signer) -> Result<Arc<dyn Blobs>, BlobError> {
    let uploads = &config.uploads;
    Ok(match &uploads.s3 {
        Some(s3) => {
            // rust-s3's blocking client (attohttpc) compiles rustls with its default
            // provider next to ring, and rustls then cannot pick one and panics at the
            // first request: name ring, the one every other client here uses.
            let _ = rustls::crypto::ring::default_provider().install_default();
            log::info!("uploads go to S3 bucket {}", s3.bucket);
            Arc::new(S3Blobs::new(s3, &uploads.prefix)?)
        }
        None => Arc::new(DirBlobs::open(
            config.store.data_dir.join("uploads"),
            format!("{}/files", config.server.path_prefix),
            signer.clone(),
        )?),
    })
}

pub struct Server {
    reactor: Reactor<App>,
    addr: SocketAddr,
    internal_addr: Option<SocketAddr>,
}

/// Connections the kernel completes for us before the loop accepts them. mio's (and
/// std's) `bind` leaves it at 128: in a reconnect storm (every client of a restarted pod
/// at once) the accept queue overflowed, the kernel dropped the handshake's final ACK,
/// and those clients waited for the SYN-ACK retransmit, 1 s later (the "1.03 s
/// handshake" of issue 18). The kernel caps it at `net.core.somaxconn` (4096 by default).
const LISTEN_BACKLOG: i32 = 4096;

fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    let listen = || -> io::Result<TcpListener> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        // As mio's bind: a restarted server may bind while old connections sit in TIME_WAIT.
        socket.set_reuse_address(true)?;
        socket.bind(&addr.into())?;
        socket.listen(LISTEN_BACKLOG)?;
        socket.set_nonblocking(true)?;
        Ok(TcpListener::from_std(socket.into()))
    };
    listen().map_err(|error| StartError::Bind(addr, error))
}

impl Server {
    pub fn bind(config: &Config) -> Result<Server, StartError> {
        // Before anything can be reached: once the port answers, a SIGTERM must drain.
        let signals = SignalSource::new()?;
        let server = &config.server;
        match limits::ensure_open_files(server.max_connections) {
            Ok(soft) if (soft as usize) < server.max_connections => log::warn!(
                "open-file limit {soft} is below MAX_CONNECTIONS={}: connections past it will fail to be accepted",
                server.max_connections
            ),
            Ok(_) => {}
            Err(error) => log::warn!("cannot read the open-file limit: {error}"),
        }
        let public = bind(SocketAddr::new(server.host, server.port))?;
        let internal = config
            .metrics
            .port
            .map(|port| bind(SocketAddr::new(server.host, port)))
            .transpose()?;
        let addr = public.local_addr()?;
        let internal_addr = internal.as_ref().map(TcpListener::local_addr).transpose()?;

        let poll = Poll::new()?;
        let waker = reactor::waker(&poll)?;
        let (completions, queue) = completion_channel(waker, COMPLETION_CAPACITY);
        let catalog = Catalog::new(&config.llm);
        let metrics = Arc::new(app::metrics_registry(&server.path_prefix, &catalog.types()));
        let store =
            store::open(&config.store, metrics.store_timings()).map_err(StartError::Store)?;
        let notifier = Notifier::new(&config.notify).map_err(StartError::Notify)?;
        let lanes = Lanes::start(&config.store, &config.llm, config.io_workers, &completions)?;
        let signer = Signer::new(config.auth.jwt_secret.expose());
        let blobs = open_blobs(config, &signer).map_err(StartError::Uploads)?;
        let bus = match &config.redis_url {
            Some(url) => {
                let completions = completions.clone();
                let deliver = move |inbound| completions.send(Done::Bus(inbound)).is_ok();
                let bus = Bus::start(
                    url,
                    config.chat.reconnect_timeout,
                    Arc::clone(&metrics),
                    deliver,
                );
                Some(bus.map_err(StartError::Bus)?)
            }
            None => None,
        };
        let app = App::new(
            config,
            Backends {
                lanes,
                store,
                catalog,
                notifier,
                blobs,
                signer,
                bus,
            },
            Arc::clone(&metrics),
        );
        let settings = Settings {
            max_connections: server.max_connections,
            max_connections_per_ip: server.max_connections_per_ip,
            per_ip_exempt: config.access.trusted_proxies.clone(),
            limits: Limits {
                head_timeout: HTTP_HEAD_TIMEOUT,
                body_idle_timeout: HTTP_BODY_IDLE_TIMEOUT,
                idle_timeout: HTTP_IDLE_TIMEOUT,
                write_timeout: config.ws.write_wait,
                max_outbound: config.ws.max_outbound_bytes,
                ping_period: config.ws.ping_period,
                pong_wait: config.ws.pong_wait,
                max_message_size: config.ws.max_message_size,
            },
            drain_delay: server.shutdown_drain_delay,
            shutdown_timeout: server.shutdown_timeout,
        };
        let listeners = Listeners { public, internal };
        let reactor = Reactor::new(poll, signals, settings, listeners, queue, app, metrics)?;
        Ok(Server {
            reactor,
            addr,
            internal_addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn internal_addr(&self) -> Option<SocketAddr> {
        self.internal_addr
    }

    /// Runs until the drain completes (or a second signal), then gives the lanes what
    /// is left of the drain (at least `FLUSH_FLOOR`) to finish queued work.
    pub fn run(mut self) -> io::Result<Exit> {
        let exit = self.reactor.run()?;
        let floor = Instant::now() + FLUSH_FLOOR;
        let deadline = match exit {
            Exit::Interrupted(_) => floor,
            Exit::Drained | Exit::DeadlineReached { .. } => self
                .reactor
                .drain_deadline()
                .map_or(floor, |d| d.max(floor)),
        };
        if !self.reactor.finish(deadline) {
            log::warn!("shutdown: worker lanes still busy at the deadline; exiting anyway");
        }
        Ok(exit)
    }
}
