//! A 100 MB upload streams through: the server's peak resident memory (`VmHWM` in
//! `/proc`) grows by less than 8 MiB, however fast the client sends. A bound, not a
//! timing.

mod common;

use std::io::Write;

use common::chat::bearer;
use common::upload::{framing, peak_rss, start};
use common::{read_response, Server};

const SIZE: usize = 100 * 1000 * 1000;
const PIECE: usize = 256 * 1024;

#[test]
fn a_100_mb_upload_holds_little_memory() {
    let server = Server::start(&[("LOG_LEVEL", "info")]);
    let before_upload = peak_rss(server.pid());
    let (before, after) = framing("big.txt", "text/plain");
    let mut stream = start(&server, &bearer("kim"), before.len() + SIZE + after.len());
    stream.write_all(&before).expect("framing");
    let line = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n";
    let piece: Vec<u8> = line.iter().copied().cycle().take(PIECE).collect();
    let mut sent = 0;
    while sent < SIZE {
        let n = PIECE.min(SIZE - sent);
        stream.write_all(&piece[..n]).expect("body");
        sent += n;
    }
    stream.write_all(&after).expect("closing delimiter");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(120)))
        .expect("timeout");
    let answer = read_response(&mut stream).expect("an answer");
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.json()["size"], SIZE);
    let grown = peak_rss(server.pid()).saturating_sub(before_upload);
    eprintln!("peak RSS grew by {} KiB during the upload", grown / 1024);
    assert!(grown < 8 * 1024 * 1024, "peak RSS grew by {grown} bytes");
    let file_id = answer.json()["file_id"].as_str().expect("id").to_owned();
    let stored = walk(&server.data_dir().join("uploads/chat-files"), &file_id);
    assert_eq!(
        std::fs::metadata(stored).expect("stored").len(),
        SIZE as u64
    );
}

fn walk(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    for entry in std::fs::read_dir(dir).expect("dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            let found = walk(&path, name);
            if found.exists() {
                return found;
            }
        } else if path.file_name().is_some_and(|n| n == name) {
            return path;
        }
    }
    dir.join(name)
}
