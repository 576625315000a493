//! A client that stops reading is closed with 1013 once its queue passes
//! WS_MAX_OUTBOUND_BYTES, while other sockets keep flowing; memory stays bounded.
mod common;

use std::io::Write;
use std::time::Duration;

use common::ws::{self, echo_socket, read_frame};
use common::Server;

#[test]
fn a_client_that_never_reads_gets_1013_and_others_keep_flowing() {
    let server = Server::start(&[
        ("CHATBOX_ECHO", "true"),
        ("MAX_MESSAGE_SIZE", "16KiB"),
        ("WS_MAX_OUTBOUND_BYTES", "64KiB"),
        ("WS_WRITE_WAIT", "30s"),
    ]);
    let mut stalled = echo_socket(&server);
    let mut healthy = echo_socket(&server);

    // Echo far more than the kernel buffers plus the 64 KiB queue can hold, never reading.
    let message = ws::frame(ws::BINARY, &[7u8; 16 * 1024], true);
    let mut writer = stalled.try_clone().expect("clone");
    let flood = std::thread::spawn(move || {
        writer
            .set_write_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        for _ in 0..4096 {
            // Once the server stops reading (it closed the socket), writes block or fail.
            if writer.write_all(&message).is_err() {
                break;
            }
        }
    });
    flood.join().expect("flood thread");

    ws::send(&mut healthy, ws::TEXT, b"still here");
    assert_eq!(
        read_frame(&mut healthy),
        Some((ws::TEXT, b"still here".to_vec()))
    );

    // Now read what was queued: echoes, then the 1013 close.
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut echoed = 0usize;
    let close = loop {
        match read_frame(&mut stalled) {
            Some((ws::BINARY, payload)) => echoed += payload.len(),
            Some((ws::CLOSE, payload)) => break Some(payload),
            Some(_) => {}
            None => break None,
        }
    };
    let close = close.expect("a close frame after the queued echoes");
    assert_eq!(u16::from_be_bytes([close[0], close[1]]), 1013);
    assert_eq!(&close[2..], b"slow consumer");
    assert!(
        echoed < 4096 * 16 * 1024,
        "the server stopped echoing at the cap"
    );
}
