//! Where connections refused for lack of a slot wait to be closed cleanly.
//!
//! Closing a socket whose peer's request is still unread makes the kernel send an RST,
//! and an RST can destroy the 503 we just wrote before the client reads it. So a refused
//! connection gets its 503 and our FIN, then sits here (a few fixed slots outside the
//! slab, with their own tokens) while its input is drained, until the client closes or
//! a short deadline passes. When even this pen is full the socket is dropped at once:
//! under that much overload an occasional reset is the lesser evil.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

/// How long a refused client gets to read the 503 and close.
const LINGER: Duration = Duration::from_secs(1);

pub struct RejectPen {
    first_token: usize,
    slots: Vec<Option<(TcpStream, Instant)>>,
}

impl RejectPen {
    pub fn new(first_token: usize, capacity: usize) -> RejectPen {
        RejectPen {
            first_token,
            slots: (0..capacity).map(|_| None).collect(),
        }
    }

    pub fn owns(&self, token: Token) -> bool {
        (self.first_token..self.first_token + self.slots.len()).contains(&token.0)
    }

    /// Writes `response` (a complete HTTP response), sends FIN, and keeps the socket
    /// until the peer has gone.
    pub fn refuse(
        &mut self,
        mut stream: TcpStream,
        response: &[u8],
        registry: &Registry,
        now: Instant,
    ) {
        let mut sink = [0u8; 1024];
        drain(&mut stream, &mut sink);
        // A fresh socket's send buffer takes a few hundred bytes without blocking.
        let _ = stream.write(response);
        let _ = stream.shutdown(Shutdown::Write);
        let Some(index) = self.slots.iter().position(Option::is_none) else {
            return;
        };
        let token = Token(self.first_token + index);
        if registry
            .register(&mut stream, token, Interest::READABLE)
            .is_ok()
        {
            self.slots[index] = Some((stream, now + LINGER));
        }
    }

    /// The peer sent more or closed: read it away; a closed peer frees the place.
    pub fn readable(&mut self, token: Token, registry: &Registry) {
        let index = token.0 - self.first_token;
        let Some(Some((stream, _))) = self.slots.get_mut(index) else {
            return;
        };
        let mut sink = [0u8; 1024];
        if drain(stream, &mut sink) {
            self.release(index, registry);
        }
    }

    pub fn expire(&mut self, now: Instant, registry: &Registry) {
        for index in 0..self.slots.len() {
            if matches!(&self.slots[index], Some((_, until)) if *until <= now) {
                self.release(index, registry);
            }
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.slots.iter().flatten().map(|(_, until)| *until).min()
    }

    fn release(&mut self, index: usize, registry: &Registry) {
        if let Some((mut stream, _)) = self.slots[index].take() {
            let _ = registry.deregister(&mut stream);
        }
    }
}

/// Reads until `WouldBlock`; true when the peer is gone (EOF or error).
fn drain(stream: &mut TcpStream, sink: &mut [u8]) -> bool {
    loop {
        match stream.read(sink) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}
