//! A client that stops sending mid-body: its job stops, the temp file is removed and
//! the user's upload slot is free again (with one slot, the next upload gets through).

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::chat::bearer;
use common::upload::{framing, start, upload};
use common::Server;

fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "still not {what} after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_client_that_leaves_mid_body_frees_its_slot_and_temp_file() {
    let server = Server::start(&[("UPLOAD_MAX_CONCURRENT", "1")]);
    let auth = bearer("jack");
    let (before, _) = framing("half.txt", "text/plain");
    let mut stream = start(&server, &auth, before.len() + 10 * 1024 * 1024);
    stream.write_all(&before).expect("framing");
    stream
        .write_all(&[b'x'; 256 * 1024])
        .expect("part of the file");
    let tmp = server.data_dir().join("uploads/.tmp");
    let temp_files = || std::fs::read_dir(&tmp).expect("tmp").count();
    wait_until(Duration::from_secs(10), "writing a temp file", || {
        temp_files() == 1
    });

    // While it streams, the one slot is taken.
    assert_eq!(upload(&server, &auth, "b.txt", b"hi").status, 429);

    drop(stream);
    wait_until(Duration::from_secs(10), "removing the temp file", || {
        temp_files() == 0
    });
    // The slot comes back with the job's end, which the temp file's removal precedes.
    wait_until(Duration::from_secs(10), "freeing the slot", || {
        let answer = upload(&server, &auth, "c.txt", b"hi");
        assert!(matches!(answer.status, 200 | 429), "{}", answer.status);
        answer.status == 200
    });
    assert!(server.wait_for_log(Duration::from_secs(10), |l| l.contains("left mid-body")));
}
