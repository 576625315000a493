//! A connection's WebSocket phase: the upgrade from HTTP, frames in, messages out, and
//! the close handshake. Framing is tungstenite's (`net::ws`) over this connection's own
//! buffers; what is decided here is when a socket stops taking messages.

use std::time::Instant;

use super::{Conn, Limits, Phase, WsState};
use crate::net::upgrade;
use crate::net::ws::{self, Wire};

/// The fate of a message queued on a WebSocket.
#[derive(Debug, PartialEq, Eq)]
pub(in crate::net) enum Sent {
    Queued,
    /// The queue passed its cap: the socket is being closed with 1013.
    SlowConsumer,
    /// The socket is closing or not a WebSocket; the message was dropped.
    NotOpen,
}

impl Conn {
    /// Completes the upgrade of the request being served: `101`, then WebSocket framing
    /// on the same buffers (bytes the client pipelined after the request are frames).
    /// False when no request was being served, and nothing changed.
    pub fn upgrade(
        &mut self,
        accept: &str,
        expires_at: Option<Instant>,
        limits: &Limits,
        now: Instant,
    ) -> bool {
        if !matches!(&self.phase, Phase::Http(s) if s.awaiting.is_some()) {
            return false;
        }
        self.out
            .extend_from_slice(&upgrade::switching_protocols(accept));
        self.last_progress = now;
        self.ws_opened = Some(now);
        self.phase = Phase::Ws(WsState {
            socket: ws::Socket::new(limits.max_message_size),
            last_heard: now,
            next_ping: now + limits.ping_period,
            expires_at,
            close_started: None,
        });
        true
    }

    /// Once, when an upgraded connection is no longer an open WebSocket (or is about to
    /// be dropped): the moment to tell the handler. Gives when it was upgraded.
    pub fn take_ws_ended(&mut self) -> Option<Instant> {
        if matches!(&self.phase, Phase::Ws(ws) if ws.socket.is_open()) {
            return None;
        }
        self.ws_opened.take()
    }

    /// The next WebSocket event from buffered input.
    pub fn ws_event(&mut self) -> ws::Event {
        let Phase::Ws(state) = &mut self.phase else {
            return ws::Event::NeedInput;
        };
        let mut wire = Wire::new(&self.inbuf, &mut self.out);
        let event = state.socket.next_event(&mut wire);
        let consumed = wire.consumed();
        self.inbuf.drain(..consumed);
        if matches!(event, ws::Event::Finished | ws::Event::Failed(_)) {
            self.start_closing();
        }
        event
    }

    /// Queues a message, unless it would take a queue that the peer has not drained
    /// past `max_outbound`: then the peer is a slow consumer and the socket is closed
    /// with 1013 instead. A message into an empty queue is always taken, so one large
    /// message never counts as slowness; the queue holds at most the cap or one message.
    pub fn ws_send(
        &mut self,
        message: tungstenite::Message,
        limits: &Limits,
        now: Instant,
    ) -> Sent {
        let backlog = self.outbound_len();
        let Phase::Ws(state) = &mut self.phase else {
            return Sent::NotOpen;
        };
        if !state.socket.is_open() {
            return Sent::NotOpen;
        }
        let mut wire = Wire::new(&[], &mut self.out);
        if backlog > 0 && backlog + message.len() > limits.max_outbound {
            // The close frame queues behind what the peer has not read; if it never
            // reads, the write timeout ends the connection.
            state
                .socket
                .close(&mut wire, ws::code::TRY_AGAIN, "slow consumer");
            self.start_closing();
            return Sent::SlowConsumer;
        }
        if backlog == 0 {
            self.last_progress = now;
        }
        if state.socket.send(&mut wire, message) {
            Sent::Queued
        } else {
            Sent::NotOpen
        }
    }

    /// Starts the close handshake; the peer has `CLOSE_HANDSHAKE_TIMEOUT` to answer.
    pub fn ws_close(&mut self, code: u16, reason: &str, now: Instant) {
        let Phase::Ws(state) = &mut self.phase else {
            return;
        };
        if !state.socket.is_open() {
            return;
        }
        let mut wire = Wire::new(&[], &mut self.out);
        state.socket.close(&mut wire, code, reason);
        state.close_started = Some(now);
    }
}
