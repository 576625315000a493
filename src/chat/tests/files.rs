//! `file_upload` and `voice_message`: stored with their file fields, sent to every
//! socket of the session, a voice message answered; external links checked first.

use super::*;

fn file_frame(kind: &str, session: &str, url: &str) -> String {
    serde_json::json!({"type": kind, "session_id": session, "file_id": "f1",
                       "file_url": url, "content": "look"})
    .to_string()
}

#[test]
fn an_own_file_is_stored_then_sent_to_every_socket_of_the_session() {
    let mut h = Harness::new();
    let (phone, session) = h.fresh("ann");
    let (laptop, _) = h.open("ann", Some(&session), Resume::default());
    let url = "/chatbox/files/0123456789abcdef0123456789abcdef?exp=1&sig=ab";
    let out = h.send(phone, &file_frame("file_upload", &session, url));
    assert!(
        out.frames(phone).is_empty(),
        "nothing before the store write"
    );
    let append = out.only_job();
    let Work::Store(StoreOp::Append(op)) = &append.work else {
        panic!("an append: {append:?}");
    };
    assert_eq!(op.message.file_id.as_deref(), Some("f1"));
    assert_eq!(op.message.file_url.as_deref(), Some(url));
    let out = h.store(append.id, Ok(StoreReply::Appended(1)));
    for socket in [phone, laptop] {
        let frame = out.only_frame(socket);
        assert_eq!(frame["type"], "file_upload");
        assert_eq!(
            (frame["file_id"].as_str(), frame["file_url"].as_str()),
            (Some("f1"), Some(url))
        );
        assert!(meta(&frame, "message_id").is_some());
    }
    assert!(
        out.jobs().is_empty(),
        "a file is not answered by the assistant"
    );
}

#[test]
fn a_voice_message_asks_the_assistant_about_the_bare_link() {
    let mut h = Harness::new();
    let (phone, session) = h.fresh("ann");
    let url = "/chatbox/files/0123456789abcdef0123456789abcdef?exp=1&sig=ab";
    let out = h.send(phone, &file_frame("voice_message", &session, url));
    let append = out.only_job();
    let out = h.store(append.id, Ok(StoreReply::Appended(1)));
    assert_eq!(out.only_frame(phone)["type"], "loading");
    let call = llm_call(&out);
    let asked = &*call.turns.last().expect("a turn").content;
    assert_eq!(
        asked,
        "Audio file: /chatbox/files/0123456789abcdef0123456789abcdef"
    );
}

#[test]
fn external_links_are_checked_before_anything_is_stored() {
    let mut h = Harness::new();
    let (phone, session) = h.fresh("ann");
    let out = h.send(
        phone,
        &file_frame("file_upload", &session, "http://example.com/a"),
    );
    assert_eq!(
        out.only_frame(phone)["error"]["message"],
        "Invalid file URL"
    );
    assert!(out.jobs().is_empty());

    let url = "https://files.example.com/a.png";
    let out = h.send(phone, &file_frame("file_upload", &session, url));
    let check = out.only_job();
    assert_eq!(check.work, Work::CheckUrl(url.to_owned()));
    let out = h.store(check.id, Ok(StoreReply::Updated(false)));
    assert_eq!(out.only_frame(phone)["error"]["code"], "INVALID_FORMAT");
    assert!(out.jobs().is_empty());

    let out = h.send(phone, &file_frame("file_upload", &session, url));
    let check = out.only_job();
    let out = h.store(check.id, Ok(StoreReply::Updated(true)));
    assert!(matches!(
        &out.only_job().work,
        Work::Store(StoreOp::Append(_))
    ));
}
