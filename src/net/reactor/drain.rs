//! The drain state machine (docs/LIFECYCLE.md, "Drain"): signals move the loop from
//! `Running` to `Draining`; after `drain_delay` the listeners close, idle keep-alive
//! connections close and every WebSocket gets 1001; the loop ends when everything is
//! done, at the deadline, or at once on a second SIGTERM/SIGINT.

use std::time::Instant;

use super::Reactor;
use crate::net::handler::Handler;
use crate::net::signals::Signal;
use crate::net::ws;

#[derive(Debug, PartialEq, Eq)]
pub enum Exit {
    /// Every connection finished within the drain.
    Drained,
    /// The drain deadline passed with this many connections still open.
    DeadlineReached { open: usize },
    /// A second SIGTERM/SIGINT: exit at once.
    Interrupted(Signal),
}

pub(super) enum Lifecycle {
    Running,
    Draining {
        since: Instant,
        close_listeners_at: Instant,
        deadline: Instant,
        listeners_closed: bool,
    },
}

impl Lifecycle {
    pub(super) fn is_draining(&self) -> bool {
        matches!(self, Lifecycle::Draining { .. })
    }

    /// Once the listeners are closed, answers carry `Connection: close`.
    pub(super) fn listeners_closed(&self) -> bool {
        matches!(
            self,
            Lifecycle::Draining {
                listeners_closed: true,
                ..
            }
        )
    }

    /// When the drain takes its next step, for the poll timeout.
    pub(super) fn next_step(&self) -> Option<Instant> {
        match *self {
            Lifecycle::Running => None,
            Lifecycle::Draining {
                close_listeners_at,
                deadline,
                listeners_closed,
                ..
            } => Some(if listeners_closed {
                deadline
            } else {
                close_listeners_at
            }),
        }
    }
}

impl<H: Handler> Reactor<H> {
    pub fn drain_deadline(&self) -> Option<Instant> {
        match self.lifecycle {
            Lifecycle::Running => None,
            Lifecycle::Draining { deadline, .. } => Some(deadline),
        }
    }

    pub(super) fn on_signals(&mut self) -> Option<Exit> {
        for signal in self.signals.pending() {
            match (signal, &self.lifecycle) {
                (Signal::Hangup, _) => {
                    log::info!("SIGHUP ignored: configuration is read at start-up")
                }
                (Signal::Terminate(_), Lifecycle::Draining { .. }) => {
                    log::warn!("second {}: exiting now", signal.name());
                    return Some(Exit::Interrupted(signal));
                }
                (Signal::Terminate(_), Lifecycle::Running) => {
                    let now = self.clock.now;
                    let close_listeners_at = now + self.settings.drain_delay;
                    self.lifecycle = Lifecycle::Draining {
                        since: now,
                        close_listeners_at,
                        deadline: now + self.settings.shutdown_timeout,
                        listeners_closed: false,
                    };
                    log::info!(
                        "drain 1/3: {} received; readiness off, serving {} connection(s) for {:?}",
                        signal.name(),
                        self.slab.len(),
                        self.settings.drain_delay
                    );
                }
            }
        }
        None
    }

    pub(super) fn advance_lifecycle(&mut self) -> Option<Exit> {
        let Lifecycle::Draining {
            since,
            close_listeners_at,
            deadline,
            listeners_closed,
        } = &mut self.lifecycle
        else {
            return None;
        };
        let (since, deadline) = (*since, *deadline);
        let now = self.clock.now;
        if !*listeners_closed && now >= *close_listeners_at {
            *listeners_closed = true;
            for listener in self.listeners.iter_mut() {
                if let Some(mut listener) = listener.take() {
                    let _ = self.poll.registry().deregister(&mut listener);
                }
            }
            let (mut idle, mut sockets) = (0, 0);
            for id in self.slab.ids() {
                let Some(conn) = self.slab.get_mut(id) else {
                    continue;
                };
                if conn.is_idle() {
                    idle += 1;
                    self.close(id);
                } else if conn.is_websocket() {
                    sockets += 1;
                    conn.ws_close(ws::code::GOING_AWAY, "Server shutting down", now);
                    self.queue(id);
                }
            }
            log::info!(
                "drain 2/3: listeners closed; closed {idle} idle connection(s), sent 1001 to {sockets} WebSocket(s); waiting up to {:?} for {}",
                deadline.saturating_duration_since(now),
                self.slab.len()
            );
        }
        if self.lifecycle.listeners_closed() && self.slab.is_empty() && self.handler.is_quiet() {
            log::info!("drain 3/3: complete after {:?}", now.duration_since(since));
            return Some(Exit::Drained);
        }
        if now >= deadline {
            let open = self.slab.len();
            log::warn!("drain 3/3: deadline reached with {open} connection(s) open; closing them");
            for id in self.slab.ids() {
                self.close(id);
            }
            return Some(Exit::DeadlineReached { open });
        }
        None
    }
}
