//! Framing limits and close codes: 1009 oversize, 1007 bad UTF-8, 1002 protocol errors,
//! and an orderly close handshake.
mod common;

use std::time::Duration;

use common::ws::{self, echo_socket, read_close, read_frame, send};
use common::{closed_within, Server};

const ECHO: &[(&str, &str)] = &[("CHATBOX_ECHO", "true"), ("MAX_MESSAGE_SIZE", "4KiB")];

#[test]
fn echo_round_trips_text_and_binary() {
    let server = Server::start(ECHO);
    let mut socket = echo_socket(&server);
    send(&mut socket, ws::TEXT, "héllo".as_bytes());
    assert_eq!(
        read_frame(&mut socket),
        Some((ws::TEXT, "héllo".as_bytes().to_vec()))
    );
    let blob: Vec<u8> = (0..=255).collect();
    send(&mut socket, ws::BINARY, &blob);
    assert_eq!(read_frame(&mut socket), Some((ws::BINARY, blob)));
    send(&mut socket, ws::PING, b"p");
    assert_eq!(read_frame(&mut socket), Some((ws::PONG, b"p".to_vec())));
}

#[test]
fn oversize_message_closes_with_1009() {
    let server = Server::start(ECHO);
    let mut socket = echo_socket(&server);
    send(&mut socket, ws::TEXT, &vec![b'a'; 5000]);
    assert_eq!(
        read_close(&mut socket, Duration::from_secs(5)).map(|c| c.0),
        Some(1009)
    );
    assert!(closed_within(&mut socket, Duration::from_secs(5)));
}

#[test]
fn oversize_fragmented_message_closes_with_1009() {
    let server = Server::start(ECHO);
    let mut socket = echo_socket(&server);
    // Three non-final text fragments of 2 KiB: no single frame is too big.
    use std::io::Write;
    for opcode in [ws::TEXT, 0x0, 0x0] {
        let mut frame = ws::frame(opcode, &[b'a'; 2048], true);
        frame[0] &= 0x7f; // clear FIN
        socket.write_all(&frame).expect("send");
    }
    assert_eq!(
        read_close(&mut socket, Duration::from_secs(5)).map(|c| c.0),
        Some(1009)
    );
}

#[test]
fn invalid_utf8_closes_with_1007() {
    let server = Server::start(ECHO);
    let mut socket = echo_socket(&server);
    send(&mut socket, ws::TEXT, &[0x68, 0xff, 0xfe]);
    assert_eq!(
        read_close(&mut socket, Duration::from_secs(5)).map(|c| c.0),
        Some(1007)
    );
}

#[test]
fn unmasked_frame_closes_with_1002() {
    let server = Server::start(ECHO);
    let mut socket = echo_socket(&server);
    use std::io::Write;
    socket
        .write_all(&ws::frame(ws::TEXT, b"x", false))
        .expect("send");
    assert_eq!(
        read_close(&mut socket, Duration::from_secs(5)).map(|c| c.0),
        Some(1002)
    );
}

#[test]
fn client_close_is_answered_then_the_server_closes_tcp() {
    let server = Server::start(ECHO);
    let mut socket = echo_socket(&server);
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"bye");
    send(&mut socket, ws::CLOSE, &payload);
    assert_eq!(
        read_close(&mut socket, Duration::from_secs(5)),
        Some((1000, "bye".to_owned()))
    );
    assert!(closed_within(&mut socket, Duration::from_secs(5)));
}
