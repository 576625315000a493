//! [`Abort`]: stops an upstream request from another thread at once, even while the lane
//! thread is blocked on a provider that sends nothing.
//!
//! A flag is only looked at between upstream events, and a silent provider sends none.
//! So the request's transport hands its socket over the moment the socket exists (still
//! connecting, see `transport.rs`), and [`Abort::fire`] shuts it down: a `connect`,
//! `read` or `write` blocked on it returns at once, under TLS too (rustls reads from
//! that socket), and the provider reports [`LlmError::Cancelled`](super::LlmError).

use std::fmt;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

/// One request's stop switch; clones share it. The runner keeps one next to the lane's
/// cancel token and fires both.
#[derive(Clone, Default)]
pub struct Abort(Arc<Inner>);

#[derive(Default)]
struct Inner {
    fired: AtomicBool,
    /// The socket the request uses now. Weak: the transport owns it, and a request that
    /// ended closes it as usual; firing after that touches nothing.
    socket: Mutex<Weak<TcpStream>>,
}

impl Abort {
    /// Stops the request: later checks see [`Abort::is_fired`], and I/O blocked on its
    /// socket returns now.
    pub fn fire(&self) {
        self.0.fired.store(true, Ordering::SeqCst);
        let socket = self.socket().upgrade();
        if let Some(socket) = socket {
            shut(&socket);
        }
    }

    pub fn is_fired(&self) -> bool {
        self.0.fired.load(Ordering::SeqCst)
    }

    /// Makes `socket` the one [`Abort::fire`] shuts down. Called as soon as it exists, so
    /// an abort that already fired (the stop raced the connect) shuts it down here.
    pub(super) fn watch(&self, socket: &Arc<TcpStream>) {
        // Stored before the flag is read, and `fire` sets the flag before it reads the
        // slot: whichever comes second sees the other, so no socket escapes.
        *self.socket() = Arc::downgrade(socket);
        if self.is_fired() {
            shut(socket);
        }
    }

    fn socket(&self) -> MutexGuard<'_, Weak<TcpStream>> {
        // The slot is one pointer, never left half-written: a panic elsewhere while it
        // was locked does not make it wrong.
        self.0.socket.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Errors mean the socket is closed or shut down already: nothing left to stop.
fn shut(socket: &TcpStream) {
    let _ = socket.shutdown(Shutdown::Both);
}

impl fmt::Debug for Abort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Abort")
            .field("fired", &self.is_fired())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{ErrorKind, Read};
    use std::net::TcpListener;
    use std::sync::mpsc;
    use std::thread;
    use std::time::Duration;

    /// A connected pair: our end (watched) and the peer's accepted end.
    fn pair() -> (Arc<TcpStream>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let ours = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (theirs, _) = listener.accept().expect("accept");
        (Arc::new(ours), theirs)
    }

    /// Whether `peer` sees the connection end (EOF or reset) within a generous limit.
    fn closed(mut peer: TcpStream) -> bool {
        peer.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        match peer.read(&mut [0u8; 1]) {
            Ok(n) => n == 0,
            Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        }
    }

    #[test]
    fn fire_unblocks_a_read_on_another_thread() {
        let (ours, theirs) = pair();
        let abort = Abort::default();
        abort.watch(&ours);
        let (tx, rx) = mpsc::channel();
        let reader = {
            let ours = Arc::clone(&ours);
            thread::spawn(move || {
                let result = (&*ours).read(&mut [0u8; 16]).map_err(|e| e.kind());
                let _ = tx.send(result);
            })
        };
        // The peer sends nothing: without the abort this read never returns.
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
        abort.fire();
        assert!(abort.is_fired());
        let result = rx.recv_timeout(Duration::from_secs(10)).expect("unblocked");
        assert!(matches!(result, Ok(0) | Err(_)), "{result:?}");
        reader.join().expect("reader");
        assert!(closed(theirs), "the peer saw the connection end");
    }

    #[test]
    fn a_socket_watched_after_the_fire_is_shut_at_once() {
        let (ours, theirs) = pair();
        let abort = Abort::default();
        abort.fire();
        abort.clone().watch(&ours);
        assert!(matches!((&*ours).read(&mut [0u8; 1]), Ok(0) | Err(_)));
        assert!(closed(theirs));
    }

    #[test]
    fn the_abort_does_not_keep_a_finished_request_open() {
        let (ours, theirs) = pair();
        let abort = Abort::default();
        abort.watch(&ours);
        drop(ours);
        // The transport dropped its socket: the connection closed, and a late fire has
        // nothing to act on.
        assert!(closed(theirs));
        abort.fire();
        assert!(abort.is_fired());
    }
}
