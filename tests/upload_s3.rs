//! Uploads on the S3 backend against a real S3 server that checks signatures
//! (`s3s-fs`): the object lands under the spec's key, its presigned `file_url` gives the
//! same bytes to a plain HTTP client, a file over one part goes up as a multipart
//! upload, the owner is redirected to a fresh link and can delete it; a wrong secret
//! key fails the upload with a clear error and a log line, not a hang.

mod common;

use std::time::Duration;

use common::chat::bearer;
use common::s3::{http_get, S3Server, SECRET_KEY};
use common::upload::{fetch, upload, uploaded};
use common::Server;

const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

fn chatbox_on(s3: &S3Server, secret: &str) -> Server {
    let env = s3.env(secret);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::start(&env)
}

#[test]
fn round_trip_through_a_presigned_url() {
    let s3 = S3Server::start();
    let server = chatbox_on(&s3, SECRET_KEY);
    let json = uploaded(&server, &bearer("alice"), "dot.png", PNG);
    assert_eq!(json["content_type"], "image/png");
    let file_id = json["file_id"].as_str().expect("file_id").to_owned();
    let file_url = json["file_url"].as_str().expect("file_url").to_owned();
    assert!(file_url.starts_with(&s3.endpoint()), "{file_url}");
    assert!(file_url.contains("X-Amz-Signature="), "{file_url}");

    let fetched = http_get(&file_url);
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.body, PNG);
    let year_month = &chatbox::time::rfc3339(chatbox::time::unix_now())[..7].replace('-', "/");
    let key = format!("chat-files/alice/{year_month}/{file_id}");
    assert_eq!(std::fs::read(s3.object_path(&key)).expect("object"), PNG);

    // A presigned URL whose signature was changed is refused by S3 itself.
    let at = file_url.find("X-Amz-Signature=").expect("a signature") + "X-Amz-Signature=".len();
    let flipped = if &file_url[at..=at] == "0" { "1" } else { "0" };
    let tampered = format!("{}{flipped}{}", &file_url[..at], &file_url[at + 1..]);
    assert_eq!(http_get(&tampered).status, 403);

    // The owner gets a fresh presigned link; nobody else learns the file exists.
    let path = format!("/chatbox/files/{file_id}");
    let redirect = fetch(&server, &path, &bearer("alice"));
    assert_eq!(redirect.status, 302);
    let location = redirect.header("location").expect("a location");
    assert_eq!(http_get(location).body, PNG);
    assert_eq!(fetch(&server, &path, &bearer("bob")).status, 404);

    assert_eq!(
        server.request("DELETE", &path, &bearer("alice"), "").status,
        204
    );
    assert!(!s3.object_path(&key).exists());
    assert_eq!(fetch(&server, &path, &bearer("alice")).status, 404);
}

#[test]
fn a_large_file_goes_up_in_parts() {
    let s3 = S3Server::start();
    let server = chatbox_on(&s3, SECRET_KEY);
    // Two full 5 MiB parts and a short last one.
    let content: Vec<u8> = b"0123456789abcdef\n"
        .iter()
        .copied()
        .cycle()
        .take(12 << 20)
        .collect();
    let json = uploaded(&server, &bearer("carol"), "big.txt", &content);
    let file_url = json["file_url"].as_str().expect("url").to_owned();
    let fetched = http_get(&file_url);
    assert_eq!(fetched.status, 200);
    assert!(
        fetched.body == content,
        "the object differs from what was sent"
    );
}

#[test]
fn a_wrong_secret_fails_the_upload_clearly() {
    let s3 = S3Server::start();
    let server = chatbox_on(&s3, "not-the-secret-key");
    // An answer, not a hang: `upload` reads it with the connection's read timeout.
    let answer = upload(&server, &bearer("dave"), "dot.png", PNG);
    assert_eq!(answer.status, 500);
    assert_eq!(answer.json()["error"], "File storage failed");
    let logged = server.wait_for_log(Duration::from_secs(10), |line| {
        line.contains("storing failed") && line.contains("403")
    });
    assert!(
        logged,
        "no log line names the refusal:\n{}",
        server.logs().join("\n")
    );
}
