//! Accepting connections: every pending one on a readable listener gets a slab slot, a
//! registration and its first deadline. When the slab is full the connection is still
//! accepted, answered `503` with `Retry-After` and handed to the reject pen, so the
//! limit is a clear answer and never a backlog that grows or a panic.

use std::io;
use std::time::Duration;

use mio::net::TcpStream;
use mio::Interest;

use super::{Reactor, RESERVED_TOKENS};
use crate::net::conn::{Conn, ConnInfo, ListenerKind};
use crate::net::handler::Handler;
use crate::net::http;

/// After `EMFILE`/`ENFILE` the pending connection stays in the backlog and, with
/// edge-triggered readiness, no new event would come for it: retry on a timer instead
/// of spinning.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

impl<H: Handler> Reactor<H> {
    /// Accepts until `WouldBlock` on listener `index` (0 public, 1 internal).
    pub(super) fn accept(&mut self, index: usize) {
        let kind = if index == 0 {
            ListenerKind::Public
        } else {
            ListenerKind::Internal
        };
        loop {
            let Some(listener) = &self.listeners[index] else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => {
                    if self.slab.is_full() {
                        self.reject_full(stream);
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let accepted_at = self.clock.now;
                    let inserted = self.slab.insert_with(|id| {
                        Box::new(Conn::new(
                            stream,
                            ConnInfo {
                                id,
                                peer,
                                listener: kind,
                                accepted_at,
                            },
                        ))
                    });
                    let Some(id) = inserted else { continue };
                    let registered = match self.slab.get_mut(id) {
                        Some(conn) => self.poll.registry().register(
                            conn.socket_mut(),
                            id.to_token(RESERVED_TOKENS),
                            Interest::READABLE | Interest::WRITABLE,
                        ),
                        None => continue,
                    };
                    if let Err(error) = registered {
                        log::warn!("register {peer}: {error}");
                        self.slab.remove(id);
                        continue;
                    }
                    self.arm_timer(id);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_resource_exhaustion(&e) => {
                    log::warn!("accept paused for {ACCEPT_RETRY:?}: {e}");
                    self.accept_retry_at = Some(self.clock.now + ACCEPT_RETRY);
                    return;
                }
                // Per-connection failures (ECONNABORTED, …) do not affect the listener.
                Err(e) => log::debug!("accept: {e}"),
            }
        }
    }

    /// Accepts on both listeners again once a pause for resource exhaustion is over.
    pub(super) fn retry_accept(&mut self) {
        if self.accept_retry_at.is_some_and(|at| at <= self.clock.now) {
            self.accept_retry_at = None;
            self.accept(0);
            self.accept(1);
        }
    }

    /// The slab is full: answer 503 straight away and let the pen close the socket.
    fn reject_full(&mut self, stream: TcpStream) {
        self.rejected_full += 1;
        if self.rejected_full.is_power_of_two() {
            log::warn!(
                "connection slab full ({} slots): refused {} connection(s) so far",
                self.slab.capacity(),
                self.rejected_full
            );
        }
        let response = self
            .refusal(503, "Server at capacity, retry shortly")
            .with_header("Retry-After", "1");
        let mut out = Vec::with_capacity(320);
        http::write_response(&mut out, &response, false, false, &self.clock.http_date);
        self.reject_pen
            .refuse(stream, &out, self.poll.registry(), self.clock.now);
    }
}

fn is_resource_exhaustion(error: &io::Error) -> bool {
    // EMFILE, ENFILE, ENOBUFS, ENOMEM
    matches!(error.raw_os_error(), Some(24 | 23 | 105 | 12))
}
