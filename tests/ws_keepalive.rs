//! Keep-alive: protocol pings on schedule, silent peers closed after the pong wait,
//! sockets closed with 1008 when their token expires.
mod common;

use std::time::{Duration, Instant};

use common::ws::{self, read_close, read_frame, send, upgrade};
use common::{closed_within, Server};

const FAST_PINGS: &[(&str, &str)] = &[("WS_PING_PERIOD", "1s"), ("WS_PONG_WAIT", "2500ms")];

#[test]
fn a_peer_that_answers_pings_stays_and_a_silent_one_is_closed() {
    let server = Server::start(FAST_PINGS);
    let mut lively = ws::chat_socket(&server, "ann").expect("socket");
    let mut silent = ws::chat_socket(&server, "bob").expect("socket");
    let started = Instant::now();
    let mut pings = 0;
    lively
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    while started.elapsed() < Duration::from_secs(4) {
        let (opcode, payload) = read_frame(&mut lively).expect("a frame");
        if opcode == ws::PING {
            pings += 1;
            send(&mut lively, ws::PONG, &payload);
        }
    }
    assert!(
        pings >= 2,
        "pings arrive every WS_PING_PERIOD (got {pings})"
    );
    // bob never answered: closed by now (TCP closed, pings were all it got).
    assert!(closed_within(&mut silent, Duration::from_secs(2)));
    // ann is still served.
    ws::send_text(&mut lively, r#"{"type":"ping"}"#);
    assert_eq!(ws::read_json(&mut lively)["type"], "pong");
}

#[test]
fn socket_is_closed_with_1008_when_its_token_expires() {
    let server = Server::start(&[]);
    let token = ws::token("ann", 2);
    let mut socket = upgrade(&server, &format!("/chatbox/ws?token={token}"), "").expect("socket");
    let started = Instant::now();
    let close = read_close(&mut socket, Duration::from_secs(6));
    assert_eq!(close, Some((1008, "token expired".to_owned())));
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed before exp"
    );
}
