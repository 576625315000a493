//! What each frame a client sends gets: messages, model choices, the rate limit, bad
//! frames.

use super::*;

#[test]
fn a_user_message_is_stored_before_it_is_acknowledged_then_streamed() {
    let mut h = Harness::new();
    let (phone, session) = h.fresh("ann");
    let (laptop, out) = h.open("ann", Some(&session), Resume::default());
    assert!(
        out.jobs().is_empty(),
        "a live session binds without the store"
    );
    assert_eq!(out.only_frame(laptop)["session_id"], session.as_str());

    let frame =
        serde_json::json!({"type":"user_message","session_id":session,"content":"Hi there. More"});
    let out = h.send(phone, &frame.to_string());
    assert!(
        out.frames(phone).is_empty(),
        "nothing is acknowledged before the store write"
    );
    assert!(out.frames(laptop).is_empty());
    let append = out.only_job();
    let Work::Store(StoreOp::Append(AppendOp {
        name,
        message,
        user_id,
        ..
    })) = &append.work
    else {
        panic!("expected append: {append:?}");
    };
    assert_eq!((name.as_str(), user_id.as_str()), ("Hi there.", "ann"));
    let message_id = message.id.clone().expect("message id");

    let out = h.store(append.id, Ok(StoreReply::Appended(1)));
    let loading = out.only_frame(phone);
    assert_eq!(loading["type"], "loading");
    assert_eq!(meta(&loading, "message_id"), Some(message_id.as_str()));
    let echo = out.only_frame(laptop);
    assert_eq!(echo["type"], "user_message");
    assert_eq!(echo["content"], "Hi there. More");
    assert_eq!(meta(&echo, "message_id"), Some(message_id.as_str()));
    let call = llm_call(&out);
    assert_eq!(out.jobs().len(), 1);
    assert_eq!(call.provider_id, "echo");
    assert_eq!(call.turns.len(), 1);
    assert_eq!(call.turns[0].role, Role::User);
}

#[test]
fn the_rate_limit_answers_with_retry_after() {
    let mut s = settings();
    s.chat.rate_limit = 2;
    let mut h = Harness::with(s);
    let (socket, session) = h.fresh("ann");
    let frame = serde_json::json!({"type":"user_message","session_id":session,"content":"x"});
    for _ in 0..2 {
        let out = h.send(socket, &frame.to_string());
        assert!(out.frames(socket).is_empty(), "within the limit: {out:?}");
    }
    let out = h.send(socket, &frame.to_string());
    let error = out.only_frame(socket);
    assert_eq!(error["error"]["code"], "TOO_MANY_REQUESTS");
    let retry = error["error"]["retry_after"].as_u64().expect("retry_after");
    assert!((1..=30_000).contains(&retry), "{retry}");
    assert!(out.jobs().is_empty());
}

#[test]
fn model_select_validates_and_tells_every_device() {
    let mut h = Harness::new();
    let (socket, session) = h.fresh("ann");
    let (other, _) = h.open("ann", Some(&session), Resume::default());
    let bad = serde_json::json!({"type":"model_select","session_id":session,"model_id":"nope"});
    let error = h.send(socket, &bad.to_string()).only_frame(socket);
    assert_eq!(error["error"]["code"], "INVALID_FORMAT");
    assert_eq!(error["error"]["message"], "Invalid model ID: nope");

    let good = serde_json::json!({"type":"model_select","session_id":session,"model_id":"gpt"});
    let out = h.send(socket, &good.to_string());
    for s in [socket, other] {
        let status = out.only_frame(s);
        assert_eq!(status["content"], "Model changed to gpt");
        assert_eq!(status["model_id"], "gpt");
    }
    let (_, out) = h.say(socket, &session, "hi");
    assert_eq!(
        llm_call(&out).provider_id,
        "gpt",
        "the session's model answers"
    );
}

#[test]
fn a_stored_session_stores_its_model_before_confirming() {
    let mut h = Harness::new();
    let (socket, session) = h.fresh("ann");
    let (llm, _) = h.say(socket, &session, "hi");
    h.finish(llm, Ok(Finish::default()));
    let select = serde_json::json!({"type":"model_select","session_id":session,"model_id":"gpt"});
    let out = h.send(socket, &select.to_string());
    assert!(out.frames(socket).is_empty());
    let job = out.only_job();
    assert!(matches!(job.work, Work::Store(StoreOp::SetModel { .. })));
    let out = h.store(job.id, Ok(StoreReply::Updated(true)));
    assert_eq!(out.only_frame(socket)["model_id"], "gpt");
}

#[test]
fn a_second_message_during_a_reply_is_answered_after_it() {
    let mut h = Harness::new();
    let (socket, session) = h.fresh("ann");
    let (first, _) = h.say(socket, &session, "one");
    let frame = serde_json::json!({"type":"user_message","session_id":session,"content":"two"});
    let append = h.send(socket, &frame.to_string()).only_job();
    let out = h.store(append.id, Ok(StoreReply::Appended(2)));
    assert!(out.jobs().is_empty(), "one reply at a time per session");
    assert_eq!(out.only_frame(socket)["type"], "loading");
    let out = h.finish(first, Ok(Finish::default()));
    let call = llm_call(&out);
    let last = call.turns.last().expect("turns");
    assert_eq!(&*last.content, "two");
}

#[test]
fn bad_frames_get_errors_on_their_own_socket() {
    let mut h = Harness::new();
    let (socket, _) = h.fresh("ann");
    let cases = [
        ("nope", "INVALID_FORMAT", "Invalid message format"),
        (
            r#"{"type":"dance"}"#,
            "INVALID_FORMAT",
            "Invalid message format: unknown message type dance",
        ),
        (
            r#"{"type":"user_message"}"#,
            "MISSING_FIELD",
            "Required field missing: content",
        ),
        (
            r#"{"type":"model_select"}"#,
            "MISSING_FIELD",
            "Required field missing: model_id",
        ),
        (
            r#"{"type":"ai_response","content":"x"}"#,
            "INVALID_FORMAT",
            "Invalid message format: ai_response is sent by the server only",
        ),
    ];
    for (text, code, message) in cases {
        let error = h.send(socket, text).only_frame(socket);
        assert_eq!(error["type"], "error", "{text}");
        assert_eq!(error["error"]["code"], code, "{text}");
        assert_eq!(error["error"]["message"], message, "{text}");
    }
    let pong = h.send(socket, r#"{"type":"ping"}"#).only_frame(socket);
    assert_eq!(pong["type"], "pong");
}

#[test]
fn a_back_dated_message_is_stored_at_server_time() {
    let mut h = Harness::new();
    let (phone, session) = h.fresh("ann");
    let (laptop, _) = h.open("ann", Some(&session), Resume::default());
    let frame = serde_json::json!({"type": "user_message", "session_id": session,
        "content": "from the past", "timestamp": "2000-01-01T00:00:00Z"});
    let append = h.send(phone, &frame.to_string()).only_job();
    let Work::Store(StoreOp::Append(AppendOp { message, .. })) = &append.work else {
        panic!("expected append: {append:?}");
    };
    assert_eq!(message.at, h.now().ms, "the store's time, not the client's");
    assert_eq!(
        message.meta.get("client_timestamp").map(String::as_str),
        Some("2000-01-01T00:00:00.000Z")
    );
    let out = h.store(append.id, Ok(StoreReply::Appended(1)));
    let echo = out.only_frame(laptop);
    assert_eq!(echo["timestamp"], crate::time::rfc3339_millis(h.now().ms));

    // Without a `timestamp` there is no claim to keep.
    let frame = serde_json::json!({"type": "user_message", "session_id": session,
        "content": "now"});
    let append = h.send(phone, &frame.to_string()).only_job();
    let Work::Store(StoreOp::Append(AppendOp { message, .. })) = &append.work else {
        panic!("expected append: {append:?}");
    };
    assert_eq!(message.at, h.now().ms);
    assert!(!message.meta.contains_key("client_timestamp"));
}
