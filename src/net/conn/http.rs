//! A connection's HTTP phase: parsing the next request out of the input buffer, and
//! queueing the answer to it (served, refused, or rejected before its body was read).
//!
//! One request is served at a time: while an answer is outstanding nothing else is
//! parsed, so pipelined responses keep request order.

use std::time::Instant;

use super::{Conn, Pending, Phase, Streaming};
use crate::net::handler::{Body, BODY_CHUNK};
use crate::net::http::{self, HeadError, Request, RequestHead, Response};

/// What a pass over the input found.
#[derive(Debug)]
pub(in crate::net) enum Parsed {
    Request(Request),
    /// The head of a request whose body is streamed; its body follows as `Chunk`s.
    BodyStart(Request),
    /// The next piece of a streamed body, and whether it is the last.
    Chunk(Vec<u8>, bool),
    /// The head was refused; answer and close.
    Invalid(HeadError),
    /// The route answered from the head alone and there is no body: the connection
    /// stays usable.
    Answer(Response),
    /// The route refused the request before its body was read (413, …): the unread
    /// body leaves the stream unframed, so answer and close. Carries "is HEAD".
    Refused(Response, bool),
    /// The declared body is over the route's limit: 413, then close.
    TooLarge(bool),
    /// Nothing complete yet (or waiting on the handler).
    Nothing,
}

impl Conn {
    /// Parses the next complete request, or the next chunk of a streamed body.
    /// `body_limit` is asked once per head.
    pub fn parse(
        &mut self,
        now: Instant,
        body_limit: impl FnOnce(&RequestHead) -> Result<Body, Response>,
    ) -> Parsed {
        let Phase::Http(state) = &mut self.phase else {
            return Parsed::Nothing;
        };
        if state.awaiting.is_some() {
            return Parsed::Nothing;
        }
        if let Some(stream) = &mut state.stream {
            if stream.paused || (self.inbuf.is_empty() && stream.remaining > 0) {
                return Parsed::Nothing;
            }
            let n = self.inbuf.len().min(stream.remaining).min(BODY_CHUNK);
            let chunk: Vec<u8> = self.inbuf.drain(..n).collect();
            stream.remaining -= n;
            let last = stream.remaining == 0;
            if last {
                state.awaiting = Some(stream.pending);
                state.stream = None;
            }
            return Parsed::Chunk(chunk, last);
        }
        if state.body.is_none() {
            if self.inbuf.is_empty() {
                return Parsed::Nothing;
            }
            state.started.get_or_insert(now);
            match http::parse_head(&self.inbuf) {
                Ok(None) => return Parsed::Nothing,
                Err(error) => return Parsed::Invalid(error),
                Ok(Some((head, used))) => {
                    self.inbuf.drain(..used);
                    let head_only = head.method == http::Method::Head;
                    let taken = match body_limit(&head) {
                        Ok(body) if head.content_length <= body.limit() => body,
                        Ok(_) => return Parsed::TooLarge(head_only),
                        Err(response) if head.content_length == 0 => {
                            state.awaiting = Some(Pending {
                                keep_alive: head.keep_alive,
                                head_only,
                            });
                            return Parsed::Answer(response);
                        }
                        Err(response) => return Parsed::Refused(response, head_only),
                    };
                    if head.expect_continue && head.content_length > 0 {
                        self.out.extend_from_slice(http::CONTINUE);
                    }
                    match taken {
                        Body::Whole(limit) => state.body = Some((head, limit)),
                        Body::Stream(_) => {
                            state.stream = Some(Streaming {
                                remaining: head.content_length,
                                paused: false,
                                pending: Pending {
                                    keep_alive: head.keep_alive,
                                    head_only,
                                },
                            });
                            return Parsed::BodyStart(Request {
                                head,
                                body: Vec::new(),
                            });
                        }
                    }
                }
            }
        }
        let Some((head, _)) = &state.body else {
            return Parsed::Nothing;
        };
        if self.inbuf.len() < head.content_length {
            return Parsed::Nothing;
        }
        let body: Vec<u8> = self.inbuf.drain(..head.content_length).collect();
        let Some((head, _)) = state.body.take() else {
            return Parsed::Nothing;
        };
        state.awaiting = Some(Pending {
            keep_alive: head.keep_alive,
            head_only: head.method == http::Method::Head,
        });
        Parsed::Request(Request { head, body })
    }

    /// The consumer of the streamed body is behind: read nothing until `resume_body`.
    pub fn pause_body(&mut self) {
        if let Phase::Http(state) = &mut self.phase {
            if let Some(stream) = &mut state.stream {
                stream.paused = true;
            }
        }
    }

    pub fn resume_body(&mut self, now: Instant) {
        if let Phase::Http(state) = &mut self.phase {
            if let Some(stream) = &mut state.stream {
                stream.paused = false;
                // The stall timeout measures the peer, not the time we made it wait.
                self.last_progress = now;
            }
        }
    }

    /// True once, when a streamed body ended before its last chunk.
    pub fn take_body_aborted(&mut self) -> bool {
        std::mem::take(&mut self.body_aborted)
    }

    /// Queues the answer to the request being served. With `keep_alive` false the
    /// connection moves to `Closing` and reads no further requests.
    pub fn respond(
        &mut self,
        response: &Response,
        keep_alive_allowed: bool,
        date: &str,
        now: Instant,
    ) {
        let pending = match &mut self.phase {
            Phase::Http(state) => {
                state.started = None;
                state.awaiting.take()
            }
            Phase::Ws(_) | Phase::Closing { .. } => return,
        };
        let (keep_alive, head_only) = match pending {
            Some(p) => (p.keep_alive && keep_alive_allowed, p.head_only),
            None => (false, false),
        };
        self.queue_response(response, head_only, keep_alive, date, now);
        if !keep_alive {
            self.start_closing();
        }
    }

    /// Answers a request that will not be served (bad head, refused route, timeout):
    /// the rest of the input is unframed, so the connection closes after it.
    pub fn reject(&mut self, response: &Response, head_only: bool, date: &str, now: Instant) {
        self.queue_response(response, head_only, false, date, now);
        self.start_closing();
    }

    fn queue_response(
        &mut self,
        response: &Response,
        head_only: bool,
        keep_alive: bool,
        date: &str,
        now: Instant,
    ) {
        if self.outbound_len() == 0 {
            // Starting a fresh write: the write timeout counts from now.
            self.last_progress = now;
        }
        http::write_response(&mut self.out, response, head_only, keep_alive, date);
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::TcpListener;
    use std::time::{Duration, Instant};

    use mio::net::TcpStream;

    use super::Parsed;
    use crate::net::conn::{Conn, ConnInfo, Limits, ListenerKind};
    use crate::net::handler::{Body, BODY_CHUNK};
    use crate::net::http::Response;
    use crate::net::slab::Slab;

    /// Reads until `done`: the peer's bytes may take a moment to show up on loopback.
    fn read_until(conn: &mut Conn, scratch: &mut [u8], now: Instant, done: impl Fn(&Conn) -> bool) {
        for _ in 0..100 {
            conn.readable = true;
            conn.fill(scratch, now, &Limits::TESTING).expect("read");
            if done(conn) {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn pair() -> (Conn, std::net::TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let client =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, peer) = listener.accept().expect("accept");
        server.set_nonblocking(true).expect("nonblocking");
        let mut slab = Slab::with_capacity(1);
        let id = slab.insert_with(|id| id).expect("slot");
        let info = ConnInfo {
            id,
            peer,
            listener: ListenerKind::Public,
            accepted_at: Instant::now(),
        };
        (Conn::new(TcpStream::from_std(server), info), client)
    }

    #[test]
    fn pipelined_requests_wait_for_the_answer_in_flight() {
        let (mut conn, mut client) = pair();
        client
            .write_all(b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n")
            .expect("write");
        let now = Instant::now();
        conn.mark_ready(true, true, false);
        let mut scratch = [0u8; 1024];
        read_until(&mut conn, &mut scratch, now, |conn| conn.inbuf.len() >= 38);
        let Parsed::Request(first) = conn.parse(now, |_| Ok(Body::Whole(0))) else {
            panic!("first request expected");
        };
        assert_eq!(first.head.path, "/a");
        assert!(matches!(
            conn.parse(now, |_| Ok(Body::Whole(0))),
            Parsed::Nothing
        ));
        conn.respond(&Response::empty(204), true, "D", now);
        let Parsed::Request(second) = conn.parse(now, |_| Ok(Body::Whole(0))) else {
            panic!("second request expected");
        };
        assert_eq!(second.head.path, "/b");
    }

    #[test]
    fn a_streamed_body_comes_in_chunks_and_waits_while_paused() {
        let (mut conn, mut client) = pair();
        let body = vec![b'x'; 100 * 1024];
        write!(
            client,
            "POST /up HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .expect("head");
        client.write_all(&body).expect("body");
        let now = Instant::now();
        let mut scratch = [0u8; 64 * 1024];
        let mut fill =
            |conn: &mut Conn| read_until(conn, &mut scratch, now, |conn| !conn.inbuf.is_empty());
        fill(&mut conn);
        let stream = |_: &_| Ok(Body::Stream(1 << 20));
        let Parsed::BodyStart(request) = conn.parse(now, stream) else {
            panic!("the head first");
        };
        assert!(request.body.is_empty());
        let mut got = 0;
        let mut last = false;
        while !last {
            match conn.parse(now, stream) {
                Parsed::Chunk(chunk, end) => {
                    assert!(chunk.len() <= BODY_CHUNK);
                    got += chunk.len();
                    last = end;
                    // Paused after the first chunk: nothing more until resumed.
                    if got == chunk.len() && !end {
                        conn.pause_body();
                        assert!(matches!(conn.parse(now, stream), Parsed::Nothing));
                        conn.readable = true;
                        assert!(!conn.can_read(&Limits::TESTING));
                        conn.resume_body(now);
                        assert!(conn.can_read(&Limits::TESTING));
                    }
                }
                Parsed::Nothing => fill(&mut conn),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(got, body.len());
        assert!(!conn.take_body_aborted(), "it ended well");
        // Answered after the whole body: the connection stays usable.
        conn.respond(&Response::empty(200), true, "D", now);
        assert!(conn.outbound_len() > 0);
        assert!(matches!(conn.phase, crate::net::conn::Phase::Http(_)));
    }

    #[test]
    fn a_paused_body_is_not_lost_when_the_peer_half_closes() {
        let (mut conn, mut client) = pair();
        write!(client, "POST /up HTTP/1.1\r\nContent-Length: 70000\r\n\r\n").expect("head");
        client.write_all(&[b'y'; 70_000]).expect("body");
        client
            .shutdown(std::net::Shutdown::Write)
            .expect("half-close");
        let now = Instant::now();
        let mut scratch = [0u8; 128 * 1024];
        let stream = |_: &_| Ok(Body::Stream(1 << 20));
        let mut parsed = Vec::new();
        // Read and hand over until the FIN is read with part of the body still buffered.
        for _ in 0..200 {
            conn.readable = true;
            conn.fill(&mut scratch, now, &Limits::TESTING)
                .expect("read");
            if conn.peer_closed {
                break;
            }
            match conn.parse(now, stream) {
                Parsed::Nothing => std::thread::sleep(Duration::from_millis(5)),
                other => parsed.push(other),
            }
        }
        assert!(conn.peer_closed, "the whole body and the FIN were read");
        assert!(matches!(parsed.first(), Some(Parsed::BodyStart(_))));
        assert!(
            !conn.inbuf.is_empty(),
            "the rest of the body waits in the buffer"
        );
        // The consumer is behind: the rest must wait, not be dropped with the connection.
        conn.pause_body();
        assert_eq!(
            conn.settle(now, &Limits::TESTING),
            crate::net::conn::Next::Keep
        );
        conn.resume_body(now);
        let last = (0..4).any(|_| matches!(conn.parse(now, stream), Parsed::Chunk(_, true)));
        assert!(last, "the last chunk is handed over");
        assert!(!conn.take_body_aborted());
    }

    #[test]
    fn a_streamed_body_cut_short_is_reported_once() {
        let (mut conn, mut client) = pair();
        client
            .write_all(b"POST /up HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
            .expect("write");
        let now = Instant::now();
        let mut scratch = [0u8; 1024];
        read_until(&mut conn, &mut scratch, now, |conn| {
            conn.inbuf.len() >= 3 && conn.inbuf.ends_with(b"abc")
        });
        let stream = |_: &_| Ok(Body::Stream(100));
        assert!(matches!(conn.parse(now, stream), Parsed::BodyStart(_)));
        assert!(matches!(conn.parse(now, stream), Parsed::Chunk(ref c, false) if c == b"abc"));
        conn.start_closing();
        assert!(conn.take_body_aborted());
        assert!(!conn.take_body_aborted(), "only once");
    }

    #[test]
    fn oversize_body_is_refused_before_it_is_read() {
        let (mut conn, mut client) = pair();
        client
            .write_all(b"POST /x HTTP/1.1\r\nContent-Length: 10\r\n\r\n")
            .expect("write");
        let now = Instant::now();
        let mut scratch = [0u8; 1024];
        read_until(&mut conn, &mut scratch, now, |conn| !conn.inbuf.is_empty());
        assert!(matches!(
            conn.parse(now, |_| Ok(Body::Whole(5))),
            Parsed::TooLarge(false)
        ));
    }
}
