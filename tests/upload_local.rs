//! `POST P/upload` on the local backend, end to end: the file comes back byte for byte
//! through its signed link and through the owner's token, with the sniffed type; links
//! that are tampered with or expired get 403; other users never see it; the owner
//! deletes it.

mod common;

use chatbox::upload::signed::Signer;
use common::chat::bearer;
use common::upload::{fetch, upload, uploaded};
use common::Server;

const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

#[test]
fn round_trip_through_the_signed_link_and_the_owners_token() {
    let server = Server::start(&[]);
    let json = uploaded(&server, &bearer("alice"), "dot.png", PNG);
    let keys: Vec<&str> = json
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["content_type", "file_id", "file_url", "size"]);
    assert_eq!(json["content_type"], "image/png");
    assert_eq!(json["size"], PNG.len());
    let file_id = json["file_id"].as_str().expect("file_id").to_owned();
    let file_url = json["file_url"].as_str().expect("file_url").to_owned();
    assert!(file_url.starts_with(&format!("/chatbox/files/{file_id}?exp=")));

    // The signed link needs no token.
    let fetched = fetch(&server, &file_url, "");
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.body, PNG);
    assert_eq!(fetched.header("content-type"), Some("image/png"));
    assert_eq!(fetched.header("x-content-type-options"), Some("nosniff"));
    assert!(fetched
        .header("content-disposition")
        .expect("disposition")
        .starts_with("inline"));

    // The key layout of the spec, under DATA_DIR/uploads.
    let year_month = &chatbox::time::rfc3339(chatbox::time::unix_now())[..7].replace('-', "/");
    let stored = server
        .data_dir()
        .join(format!("uploads/chat-files/alice/{year_month}/{file_id}"));
    assert_eq!(std::fs::read(stored).expect("stored file"), PNG);

    // The owner's token works without a link; anyone else's finds nothing.
    let path = format!("/chatbox/files/{file_id}");
    assert_eq!(fetch(&server, &path, &bearer("alice")).body, PNG);
    assert_eq!(fetch(&server, &path, &bearer("bob")).status, 404);
    assert_eq!(fetch(&server, &path, "").status, 401);
    let bobs_delete = server.request("DELETE", &path, &bearer("bob"), "");
    assert_eq!(bobs_delete.status, 404);

    // Deleting removes it for good, link and all.
    assert_eq!(
        server.request("DELETE", &path, &bearer("alice"), "").status,
        204
    );
    assert_eq!(fetch(&server, &file_url, "").status, 404);
    assert_eq!(fetch(&server, &path, &bearer("alice")).status, 404);
}

#[test]
fn tampered_or_expired_links_are_forbidden() {
    let server = Server::start(&[]);
    let answer = upload(&server, &bearer("carol"), "notes.txt", b"some notes\n");
    assert_eq!(answer.status, 200);
    let json = answer.json();
    assert_eq!(json["content_type"], "text/plain");
    let file_id = json["file_id"].as_str().expect("file_id");
    let file_url = json["file_url"].as_str().expect("file_url");

    // A text file is only ever downloaded, never shown inline.
    let fetched = fetch(&server, file_url, "");
    assert!(fetched
        .header("content-disposition")
        .expect("disposition")
        .starts_with("attachment"));

    let (path, query) = file_url.split_once('?').expect("a query");
    // The signature's first digit changed, and nothing else: the same character may
    // stand earlier in the query (an `e` in `exp`), which must stay as it is.
    let (signed, sig) = query.split_once("sig=").expect("sig");
    let flipped = if sig.starts_with('0') { "1" } else { "0" };
    let tampered = format!("{path}?{signed}sig={flipped}{}", &sig[1..]);
    assert_eq!(fetch(&server, &tampered, "").status, 403);
    let longer = query.replacen("exp=", "exp=9", 1);
    assert_eq!(fetch(&server, &format!("{path}?{longer}"), "").status, 403);

    // Correctly signed, but in the past.
    let signer = Signer::new(common::JWT_SECRET.as_bytes());
    let expired = signer.query(file_id, chatbox::time::unix_now() - 1);
    assert_eq!(fetch(&server, &format!("{path}?{expired}"), "").status, 403);
    // Signed with another secret.
    let forged = Signer::new(b"another-secret").query(file_id, chatbox::time::unix_now() + 60);
    assert_eq!(fetch(&server, &format!("{path}?{forged}"), "").status, 403);
}
