//! Accepting connections: every pending one on a readable listener gets a slab slot, a
//! registration and its first deadline. A connection that may not have a slot — the
//! public side is full (`MAX_CONNECTIONS`), or its client already holds
//! `MAX_CONNECTIONS_PER_IP` — is still accepted, answered `503` with `Retry-After` and
//! handed to the reject pen, so a limit is a clear answer and never a backlog that
//! grows or a panic. The internal listener (probes, scrapes) is not counted per client
//! and has slots of its own beyond `MAX_CONNECTIONS`, so a full public side never
//! turns into failed probes and restarts.

use std::io;
use std::net::IpAddr;
use std::time::Duration;

use mio::net::TcpStream;
use mio::Interest;

use super::{Reactor, RESERVED_TOKENS};
use crate::metrics::Limiter;
use crate::net::conn::{Conn, ConnInfo, ListenerKind};
use crate::net::handler::Handler;
use crate::net::http;
use crate::net::slab::ConnId;

/// After `EMFILE`/`ENFILE` the pending connection stays in the backlog and, with
/// edge-triggered readiness, no new event would come for it: retry on a timer instead
/// of spinning.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Why a connection got no slot.
#[derive(Clone, Copy, Debug)]
enum Refused {
    SlotsFull,
    PerIp,
}

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
                    if let Err(why) = self.admit(kind, peer.ip()) {
                        self.refuse(stream, why);
                        continue;
                    }
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
                    let registered = inserted.map(|id| self.register(id));
                    let Some(Ok(id)) = registered else {
                        if let Some(Err(error)) = registered {
                            log::warn!("register {peer}: {error}");
                        }
                        self.forget(kind, peer.ip());
                        continue;
                    };
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

    /// Takes a slot's worth of the limits for a connection from `ip`, or says which
    /// limit refuses it. [`Reactor::forget`] gives it back.
    fn admit(&mut self, kind: ListenerKind, ip: IpAddr) -> Result<(), Refused> {
        if self.slab.is_full() {
            return Err(Refused::SlotsFull);
        }
        if kind == ListenerKind::Public {
            if self.open[0] >= self.settings.max_connections {
                return Err(Refused::SlotsFull);
            }
            if !self.per_ip.try_add(ip) {
                return Err(Refused::PerIp);
            }
        }
        self.open[kind as usize] += 1;
        Ok(())
    }

    /// A connection admitted by [`Reactor::admit`] is gone.
    pub(super) fn forget(&mut self, kind: ListenerKind, ip: IpAddr) {
        self.open[kind as usize] -= 1;
        if kind == ListenerKind::Public {
            self.per_ip.release(ip);
        }
    }

    fn register(&mut self, id: ConnId) -> io::Result<ConnId> {
        let Some(conn) = self.slab.get_mut(id) else {
            return Err(io::ErrorKind::NotFound.into());
        };
        let registered = self.poll.registry().register(
            conn.socket_mut(),
            id.to_token(RESERVED_TOKENS),
            Interest::READABLE | Interest::WRITABLE,
        );
        if registered.is_err() {
            self.slab.remove(id);
        }
        registered.map(|()| id)
    }

    /// No slot for this connection: answer 503 straight away and let the pen close it.
    fn refuse(&mut self, stream: TcpStream, why: Refused) {
        let refused = &mut self.refused[why as usize];
        *refused += 1;
        if refused.is_power_of_two() {
            match why {
                Refused::SlotsFull => log::warn!(
                    "connection slots full ({} public): refused {refused} connection(s) so far",
                    self.settings.max_connections
                ),
                Refused::PerIp => log::warn!(
                    "a client reached MAX_CONNECTIONS_PER_IP={}: refused {refused} connection(s) so far",
                    self.settings.max_connections_per_ip
                ),
            }
        }
        if let Refused::PerIp = why {
            self.metrics.blocked(Limiter::Connection);
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
