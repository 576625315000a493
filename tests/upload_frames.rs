//! `file_upload` and `voice_message` frames: a file uploaded with `POST P/upload` and
//! sent in a frame reaches the user's other device with its `file_id` and `file_url`
//! and is stored with the session; a voice message is also answered by the assistant;
//! an external `file_url` that is not https, or resolves to a private or loopback
//! address, is refused.

mod common;

use serde_json::json;

use common::chat::{bearer, stored_messages, Client};
use common::upload::upload;
use common::Server;

const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

#[test]
fn a_file_reaches_the_users_other_device_and_is_stored() {
    let server = Server::start(&[]);
    let mut phone = Client::connect(&server, "mia", "");
    phone.ask("hello");
    let session = phone.session_id.clone();
    let mut laptop = Client::connect(&server, "mia", &format!("session_id={session}"));
    assert_eq!(laptop.session_id, session);

    let uploaded = upload(&server, &bearer("mia"), "dot.png", PNG).json();
    let (file_id, file_url) = (&uploaded["file_id"], &uploaded["file_url"]);
    phone.send(json!({"type": "file_upload", "session_id": session,
                      "file_id": file_id, "file_url": file_url, "content": "a dot"}));
    for device in [&mut laptop, &mut phone] {
        let frame = device.expect("file_upload", &[]);
        assert_eq!(frame["file_id"], *file_id, "{frame}");
        assert_eq!(frame["file_url"], *file_url);
        assert_eq!(frame["content"], "a dot");
        assert_eq!(frame["session_id"], session.as_str());
    }
    let stored = stored_messages(&server, "mia", &session, 3);
    assert_eq!(stored[2]["file_id"], *file_id);
    assert_eq!(stored[2]["file_url"], *file_url);
}

#[test]
fn a_voice_message_is_answered_by_the_assistant() {
    let server = Server::start(&[]);
    let mut phone = Client::connect(&server, "noa", "");
    let webm = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08\x42\x82\x84webm";
    let uploaded = upload(&server, &bearer("noa"), "voice.webm", webm).json();
    let file_url = uploaded["file_url"].as_str().expect("url").to_owned();
    phone.send(
        json!({"type": "voice_message", "session_id": phone.session_id,
                      "file_id": uploaded["file_id"], "file_url": file_url}),
    );
    let reply = phone.reply();
    // The echo model says back what it was asked: the link, without its signature.
    let bare = file_url.split('?').next().expect("path");
    assert_eq!(reply.text.trim(), format!("Audio file: {bare}"));
}

#[test]
fn external_links_must_be_public_https() {
    let server = Server::start(&[]);
    let mut phone = Client::connect(&server, "omar", "");
    for url in [
        "http://example.com/a.png",
        "https://127.0.0.1/a.png",
        "https://localhost/a.png",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/a.png",
    ] {
        phone.send(
            json!({"type": "file_upload", "session_id": phone.session_id,
                          "file_id": "x", "file_url": url}),
        );
        let error = phone.expect("error", &[]);
        assert_eq!(error["error"]["code"], "INVALID_FORMAT", "{url}: {error}");
        assert_eq!(error["error"]["message"], "Invalid file URL");
    }
    phone.send(json!({"type": "file_upload", "session_id": phone.session_id}));
    let error = phone.expect("error", &[]);
    assert_eq!(
        error["error"]["message"],
        "Required field missing: file_url"
    );
}
