//! Panic containment: a bug in the application (or in one connection's protocol state)
//! must cost the connection it was serving, never the loop that serves everyone else.
//!
//! Every call into the handler runs inside [`Reactor::contained`]. When one panics, the
//! panic is logged with its message and counted (`chatbox_handler_panics_total`), and
//! the loop goes on:
//! - serving a connection (a request, a frame, an upgrade, a flush): that connection is
//!   failed — a request in progress gets `500` and the connection closes, a WebSocket is
//!   closed with 1011 — see `Conn::fail`;
//! - a completion or a tick: nothing is closed (no one connection was being served);
//!   ticks pause for [`TICK_BACKOFF`], so a tick that panics every time cannot spin.
//!
//! What the handler recorded before it panicked is still carried out. Its own state
//! may be half-updated, and nothing here can roll that back; but the effects it asked
//! for are the part of that state other clients see (a frame the handler counts as
//! sent, a reply it counts as given), so dropping them would make the handler's view
//! and the clients' diverge further. The failed connection's effects are dropped, as it
//! is closed first. The handler then hears `ws_closed` for a failed WebSocket as for
//! any other, so whatever it keeps per socket is released.

use std::fmt::Display;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use super::Reactor;
use crate::net::handler::Handler;
use crate::net::http::Response;
use crate::net::lanes::panic_message;
use crate::net::slab::ConnId;

/// After a tick panics, the next one waits this long.
pub(super) const TICK_BACKOFF: Duration = Duration::from_secs(1);

impl<H: Handler> Reactor<H> {
    /// Runs `call` (a call into the handler, `what` naming it for the log); `None` when
    /// it panicked, which has then been logged and counted.
    pub(super) fn contained<R>(
        &mut self,
        what: impl Display,
        call: impl FnOnce(&mut Self) -> R,
    ) -> Option<R> {
        match catch_unwind(AssertUnwindSafe(|| call(self))) {
            Ok(result) => Some(result),
            Err(panic) => {
                self.metrics.handler_panics.inc();
                log::error!("{what}: panicked: {}", panic_message(&*panic));
                None
            }
        }
    }

    /// A panic happened while serving `id`: a request in progress is answered with 500,
    /// a WebSocket closed with 1011, and the connection reads nothing more.
    pub(super) fn fail(&mut self, id: ConnId) {
        let error = self.refusal(500, "An internal error occurred");
        let (date, now) = (self.clock.http_date.as_str(), self.clock.now);
        if let Some(conn) = self.slab.get_mut(id) {
            conn.fail(&error, date, now);
        }
    }

    /// The handler's body for a refusal the loop makes itself; a plain-text one should
    /// the handler panic building it.
    pub(super) fn refusal(&mut self, status: u16, message: &'static str) -> Response {
        self.contained(format_args!("error_response({status})"), |reactor| {
            reactor.handler.error_response(status, message)
        })
        .unwrap_or_else(|| Response::new(status, "text/plain; charset=utf-8", message))
    }

    /// When the handler's tick is next due: when it asks, but not before the pause
    /// after a tick that panicked.
    pub(super) fn next_tick(&self) -> Option<Instant> {
        let at = self.handler.wake_at()?;
        Some(self.tick_held_until.map_or(at, |until| until.max(at)))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};

    use tungstenite::protocol::frame::coding::CloseCode;
    use tungstenite::protocol::Role;
    use tungstenite::{Message, WebSocket};

    use crate::net::conn::ConnInfo;
    use crate::net::handler::{Body, Ctx, Handler, Reply};
    use crate::net::http::{Request, RequestHead, Response};
    use crate::net::reactor::testing::{connect, get, TestLoop};
    use crate::net::slab::ConnId;
    use crate::net::upgrade;
    use crate::net::ws::Incoming;

    /// A handler with bugs on purpose: `/panic`, the frame `boom`, every tick when
    /// `ticks_panic`, and every completion that says `true` panic.
    struct Fragile {
        ticks_panic: bool,
        next_tick: Instant,
        completed: usize,
        closed: Vec<ConnId>,
    }

    impl Fragile {
        fn new(ticks_panic: bool) -> Fragile {
            Fragile {
                ticks_panic,
                next_tick: Instant::now(),
                completed: 0,
                closed: Vec::new(),
            }
        }
    }

    impl Handler for Fragile {
        type Completion = bool;

        fn body_limit(&mut self, _: &RequestHead, _: &ConnInfo, _: &Ctx) -> Result<Body, Response> {
            Ok(Body::Whole(0))
        }

        fn request(&mut self, request: Request, _: &ConnInfo, _: &mut Ctx) -> Reply {
            match request.head.path.as_str() {
                "/panic" => panic!("deliberate test panic: request"),
                "/ws" => Reply::Upgrade {
                    accept: upgrade::accept_key(&request.head).expect("a handshake"),
                    expires_at: None,
                },
                _ => Reply::Now(Response::new(200, "text/plain", "ok")),
            }
        }

        fn ws_opened(&mut self, _: &ConnInfo, _: &mut Ctx) {}

        fn ws_message(&mut self, conn: &ConnInfo, message: Incoming, ctx: &mut Ctx) {
            match message {
                Incoming::Text(text) if text == "boom" => panic!("deliberate test panic: frame"),
                Incoming::Text(text) => ctx.send_text(conn.id, text),
                Incoming::Binary(_) => {}
            }
        }

        fn ws_closed(&mut self, conn: ConnId, _: &mut Ctx) {
            self.closed.push(conn);
        }

        /// Also keeps the test loop's poll short.
        fn wake_at(&self) -> Option<Instant> {
            Some(self.next_tick)
        }

        fn tick(&mut self, ctx: &mut Ctx) {
            assert!(!self.ticks_panic, "deliberate test panic: tick");
            self.next_tick = ctx.now + Duration::from_millis(10);
        }

        fn completion(&mut self, explode: bool, _: &mut Ctx) {
            assert!(!explode, "deliberate test panic: completion");
            self.completed += 1;
        }

        fn error_response(&self, status: u16, message: &str) -> Response {
            Response::new(status, "text/plain", message.to_owned())
        }

        fn finish(&mut self, _: Instant) -> bool {
            true
        }
    }

    /// TCP_NODELAY is set on the listener only (Linux passes it to accepted sockets):
    /// without it, small frames would wait for Nagle behind an unacknowledged one.
    #[test]
    fn accepted_sockets_send_without_nagle() {
        let mut test = TestLoop::new(Fragile::new(false), 8);
        let addr = test.public;
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let (opened, open) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let client = connect(addr);
            let _ = opened.send(());
            let _ = hold.recv();
            drop(client);
        });
        let _ = open.recv();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut events = mio::Events::with_capacity(8);
        while test.reactor.slab.is_empty() && Instant::now() < deadline {
            test.reactor.turn(&mut events).expect("poll");
        }
        let accepted: Vec<bool> = test
            .reactor
            .slab
            .iter_mut()
            .map(|(_, conn)| conn.socket_mut().nodelay().expect("getsockopt"))
            .collect();
        assert_eq!(accepted, [true]);
        drop(release);
    }

    #[test]
    fn a_request_that_panics_gets_500_and_the_loop_serves_on() {
        let mut test = TestLoop::new(Fragile::new(false), 8);
        let addr = test.public;
        let (failed, next) = test.serve(move || (get(addr, "/panic"), get(addr, "/ok")));
        assert!(failed.starts_with("HTTP/1.1 500 "), "{failed}");
        assert!(failed.contains("Connection: close"), "{failed}");
        assert!(next.starts_with("HTTP/1.1 200 "), "{next}");
        assert_eq!(test.metrics.handler_panics.get(), 1);
    }

    #[test]
    fn a_frame_that_panics_closes_its_socket_with_1011_and_only_it() {
        let mut test = TestLoop::new(Fragile::new(false), 8);
        let addr = test.public;
        let (echo, close, next) = test.serve(move || {
            let mut stream = connect(addr);
            write!(
                stream,
                "GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            )
            .expect("upgrade");
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                stream.read_exact(&mut byte).expect("101");
                head.push(byte[0]);
            }
            assert!(head.starts_with(b"HTTP/1.1 101 "));
            let mut socket = WebSocket::from_raw_socket(stream, Role::Client, None);
            socket.send(Message::text("hello")).expect("send");
            let echo = socket.read().expect("echo");
            socket.send(Message::text("boom")).expect("send");
            let close = socket.read().expect("close");
            (echo, close, get(addr, "/ok"))
        });
        assert_eq!(echo, Message::text("hello"));
        let Message::Close(Some(frame)) = close else {
            panic!("a close frame, not {close:?}");
        };
        assert_eq!(frame.code, CloseCode::Error, "1011");
        assert!(next.starts_with("HTTP/1.1 200 "), "{next}");
        assert_eq!(
            test.reactor.handler.closed.len(),
            1,
            "the handler heard it end"
        );
        assert_eq!(test.metrics.handler_panics.get(), 1);
    }

    #[test]
    fn ticks_and_completions_that_panic_are_logged_and_the_loop_goes_on() {
        let mut test = TestLoop::new(Fragile::new(true), 8);
        for explode in [true, false] {
            test.completions.send(explode).expect("loop there");
        }
        let addr = test.public;
        let answer = test.serve(move || get(addr, "/ok"));
        assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
        assert_eq!(
            test.reactor.handler.completed, 1,
            "the next completion came"
        );
        // The completion, and the first tick at least.
        assert!(test.metrics.handler_panics.get() >= 2);
    }
}
