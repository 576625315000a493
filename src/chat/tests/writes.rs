//! Store writes that fail: reported, refused, or parked and tried again until stored.

use super::*;

#[test]
fn a_failed_store_write_is_reported_and_nothing_is_acknowledged() {
    let mut h = Harness::new();
    let (socket, session) = h.fresh("ann");
    let frame = serde_json::json!({"type":"user_message","session_id":session,"content":"x"});
    let append = h.send(socket, &frame.to_string()).only_job();
    let out = h.store(append.id, Err(StoreError::Unavailable("disk".into())));
    let error = out.only_frame(socket);
    assert_eq!(error["error"]["code"], "DATABASE_ERROR");
    assert_eq!(error["error"]["message"], "Database operation failed");
    assert!(
        out.jobs().is_empty(),
        "no assistant call for an unstored message"
    );
}

#[test]
fn a_full_session_refuses_new_messages() {
    let mut s = settings();
    s.chat.max_messages = 2;
    let mut h = Harness::with(s);
    let (socket, session) = h.fresh("ann");
    let (llm, _) = h.say(socket, &session, "one");
    h.chunk(llm, "answer");
    h.finish(llm, Ok(Finish::default()));
    let frame = serde_json::json!({"type":"user_message","session_id":session,"content":"two"});
    let out = h.send(socket, &frame.to_string());
    let error = out.only_frame(socket);
    assert_eq!(
        error["error"]["message"],
        "Session is full, start a new chat"
    );
}

#[test]
fn a_socket_that_closes_while_its_message_is_stored_hears_nothing_more() {
    let mut h = Harness::new();
    let (phone, session) = h.fresh("ann");
    let (laptop, _) = h.open("ann", Some(&session), Resume::default());
    let frame = serde_json::json!({"type":"user_message","session_id":session,"content":"bye"});
    let append = h.send(phone, &frame.to_string()).only_job();
    h.event(Event::Closed { socket: phone });
    let out = h.store(append.id, Ok(StoreReply::Appended(1)));
    assert!(out.frames(phone).is_empty(), "{out:?}");
    assert_eq!(out.only_frame(laptop)["type"], "user_message");
    assert_eq!(
        llm_call(&out).turns.len(),
        1,
        "the reply still comes, for the laptop"
    );
}

#[test]
fn a_reply_the_store_fails_is_kept_and_stored_once_the_store_is_back() {
    let mut h = Harness::new();
    let (socket, session) = h.fresh("ann");
    let (llm, _) = h.say(socket, &session, "hello");
    h.chunk(llm, "Hi!");
    let write = h.finish(llm, Ok(Finish::default())).only_job();
    let down = || Err(StoreError::Unavailable("connection refused".into()));
    let out = h.store(write.id, down());
    let Some(Effect::Timer(first)) = out
        .0
        .iter()
        .find(|e| matches!(e, Effect::Timer(_)))
        .cloned()
    else {
        panic!("a retry is scheduled: {:?}", out.0);
    };
    assert_eq!(first, h.now().at + Duration::from_secs(1));

    // While it waits, the user's next message is refused at once, not queued behind it.
    let frame = serde_json::json!({"type":"user_message","session_id":session,"content":"again"});
    let out = h.send(socket, &frame.to_string());
    assert_eq!(out.only_frame(socket)["error"]["code"], "DATABASE_ERROR");
    assert!(out.jobs().is_empty());

    // Retried when its wait is over, then after twice as long.
    h.advance(Duration::from_secs(1));
    let retry = appends(&h.event(Event::Tick)).remove(0);
    assert_eq!(retry.work, write.work, "the same reply, unchanged");
    assert!(
        appends(&h.event(Event::Tick)).is_empty(),
        "one attempt at a time"
    );
    let out = h.store(retry.id, down());
    assert!(out.has(&Effect::Timer(h.now().at + Duration::from_secs(2))));
    h.advance(Duration::from_secs(2));
    let retry = appends(&h.event(Event::Tick)).remove(0);
    h.store(retry.id, Ok(StoreReply::Appended(2)));

    // Stored: the session takes messages again.
    let (_, out) = h.say(socket, &session, "back");
    assert!(out.frames(socket).iter().any(|f| f["type"] == "loading"));
}

#[test]
fn a_message_queued_behind_a_reply_that_fails_is_answered_at_once() {
    let mut h = Harness::new();
    let (socket, session) = h.fresh("ann");
    let (llm, _) = h.say(socket, &session, "hello");
    h.chunk(llm, "Hi!");
    let write = h.finish(llm, Ok(Finish::default())).only_job();
    let frame = serde_json::json!({"type":"user_message","session_id":session,"content":"next"});
    assert!(
        h.send(socket, &frame.to_string()).jobs().is_empty(),
        "queued behind the reply"
    );
    let out = h.store(write.id, Err(StoreError::Unavailable("down".into())));
    assert_eq!(out.only_frame(socket)["error"]["code"], "DATABASE_ERROR");
    assert!(appends(&out).is_empty());
}

#[test]
fn a_reply_refused_for_good_is_not_retried() {
    let mut h = Harness::new();
    let (socket, session) = h.fresh("ann");
    let (llm, _) = h.say(socket, &session, "hello");
    h.chunk(llm, "Hi!");
    let write = h.finish(llm, Ok(Finish::default())).only_job();
    let out = h.store(write.id, Err(StoreError::SessionFull));
    assert!(!out.0.iter().any(|e| matches!(e, Effect::Timer(_))));
    h.advance(Duration::from_secs(60));
    assert!(appends(&h.event(Event::Tick)).is_empty());
}

#[test]
fn the_cap_admits_its_last_message_and_stores_the_reply_it_is_owed() {
    let mut s = settings();
    s.chat.max_messages = 3;
    let mut h = Harness::with(s);
    let (socket, session) = h.fresh("ann");
    let (llm, _) = h.say(socket, &session, "one");
    h.chunk(llm, "answer");
    let reply = h.finish(llm, Ok(Finish::default())).only_job();
    h.store(reply.id, Ok(StoreReply::Appended(2)));

    // Two stored, cap three: the third is the user's.
    let (llm, _) = h.say(socket, &session, "two");
    h.chunk(llm, "last answer");
    let reply = h.finish(llm, Ok(Finish::default())).only_job();
    let Work::Store(StoreOp::Append(AppendOp { max_messages, .. })) = reply.work else {
        panic!("expected the reply stored: {reply:?}");
    };
    assert!(max_messages > 3, "the owed reply fits past the cap");
    h.store(reply.id, Ok(StoreReply::Appended(4)));

    let frame = serde_json::json!({"type":"user_message","session_id":session,"content":"three"});
    let error = h.send(socket, &frame.to_string()).only_frame(socket);
    assert_eq!(error["error"]["code"], "SERVICE_ERROR");
    assert_eq!(
        error["error"]["message"],
        "Session is full, start a new chat"
    );
}
