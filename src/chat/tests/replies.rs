//! Replies: streaming to every device, stopping, replaying to a socket that (re)binds,
//! and every way a provider or its lane can fail.

use super::*;

#[test]
fn chunks_stream_to_every_device_and_coalesce_while_a_socket_is_behind() {
    let mut h = Harness::new();
    let (phone, session) = h.fresh("ann");
    let (laptop, _) = h.open("ann", Some(&session), Resume::default());
    let (llm, _) = h.say(phone, &session, "hello");

    let out = h.chunk(llm, "Hel");
    for socket in [phone, laptop] {
        let frame = out.only_frame(socket);
        assert_eq!(frame["type"], "ai_response");
        assert_eq!(frame["sender"], "ai");
        assert_eq!(frame["content"], "Hel");
        assert_eq!(meta(&frame, "seq"), Some("1"));
        assert_eq!(meta(&frame, "done"), Some("false"));
        assert_eq!(meta(&frame, "streaming"), Some("true"));
        assert!(out.has(&Effect::WatchFlush(socket)));
    }
    // The phone drains, the laptop does not: the laptop's chunks wait and join up.
    assert!(h.event(Event::Flushed { socket: phone }).0.is_empty());
    let out = h.chunk(llm, "lo ");
    assert_eq!(out.only_frame(phone)["content"], "lo ");
    assert!(out.frames(laptop).is_empty());
    h.event(Event::Flushed { socket: phone });
    let out = h.chunk(llm, "you");
    assert_eq!(out.only_frame(phone)["content"], "you");
    let out = h.event(Event::Flushed { socket: laptop });
    let caught_up = out.only_frame(laptop);
    assert_eq!(caught_up["content"], "lo you");
    assert_eq!(meta(&caught_up, "seq"), Some("3"));

    let out = h.finish(
        llm,
        Ok(Finish {
            total_tokens: Some(42),
            conversation_id: None,
        }),
    );
    for socket in [phone, laptop] {
        let done = out.only_frame(socket);
        assert_eq!(meta(&done, "done"), Some("true"));
        assert_eq!(meta(&done, "seq"), Some("3"));
        assert!(done.get("content").is_none(), "nothing was left unsent");
    }
    let Work::Store(StoreOp::Append(AppendOp { message, .. })) = out.only_job().work else {
        panic!("the reply is stored");
    };
    assert_eq!(message.sender, Sender::Ai);
    assert_eq!(message.content, "Hello you");
    assert_eq!(message.tokens, Some(42));
    assert_eq!(message.model.as_deref(), Some("echo"));
    assert!(message.resp_ms.is_some());
}

#[test]
fn stop_cancels_the_upstream_and_stores_the_partial_reply() {
    let mut h = Harness::new();
    let (socket, session) = h.fresh("ann");
    let (llm, _) = h.say(socket, &session, "hello");
    h.chunk(llm, "Part");
    let stop = serde_json::json!({"type":"stop","session_id":session});
    let out = h.send(socket, &stop.to_string());
    assert!(out.has(&Effect::Cancel(llm)));
    let done = out.only_frame(socket);
    assert_eq!(meta(&done, "done"), Some("true"));
    assert_eq!(meta(&done, "stopped"), Some("true"));
    let Work::Store(StoreOp::Append(AppendOp { message, .. })) = out.only_job().work else {
        panic!("the partial reply is stored");
    };
    assert_eq!(message.content, "Part");
    assert_eq!(
        message.meta.get("stopped").map(String::as_str),
        Some("true")
    );
    // Chunks already in flight from the cancelled job change nothing.
    assert!(h.chunk(llm, "ial").0.is_empty());
    assert!(h.finish(llm, Err(LlmError::Cancelled)).0.is_empty());
}

#[test]
fn a_socket_that_binds_mid_stream_gets_the_reply_so_far_then_live_chunks() {
    let mut h = Harness::new();
    let (phone, session) = h.fresh("ann");
    let (llm, _) = h.say(phone, &session, "hello");
    h.chunk(llm, "one ");
    h.chunk(llm, "two ");
    // The phone drops; the reply keeps streaming.
    h.event(Event::Closed { socket: phone });
    assert!(h.chunk(llm, "three ").0.is_empty(), "nobody to send to");

    let (back, out) = h.open("ann", Some(&session), Resume::default());
    let frames = out.frames(back);
    assert_eq!(frames[0]["type"], "connection_status");
    assert_eq!(frames[1]["content"], "one two three ");
    assert_eq!(meta(&frames[1], "replay"), Some("true"));
    assert_eq!(meta(&frames[1], "seq"), Some("3"));
    h.event(Event::Flushed { socket: back });
    let live = h.chunk(llm, "four");
    assert_eq!(live.only_frame(back)["content"], "four");
    assert_eq!(meta(&live.only_frame(back), "seq"), Some("4"));

    // A device that says where it left off gets only the rest.
    let resume = Resume {
        message_id: None,
        last_seq: Some(2),
    };
    let (tablet, out) = h.open("ann", Some(&session), resume);
    assert_eq!(out.frames(tablet)[1]["content"], "three four");
}

#[test]
fn a_reconnect_after_the_end_gets_the_missed_tail_once() {
    let mut h = Harness::new();
    let (phone, session) = h.fresh("ann");
    let (llm, _) = h.say(phone, &session, "hello");
    let first = h.chunk(llm, "one ").only_frame(phone);
    let message_id = meta(&first, "message_id").expect("id").to_owned();
    h.event(Event::Closed { socket: phone });
    h.chunk(llm, "two");
    h.finish(llm, Ok(Finish::default()));

    let resume = Resume {
        message_id: Some(message_id),
        last_seq: Some(1),
    };
    let (back, out) = h.open("ann", Some(&session), resume);
    let tail = &out.frames(back)[1];
    assert_eq!(tail["content"], "two");
    assert_eq!(meta(tail, "done"), Some("true"));
    assert_eq!(meta(tail, "replay"), Some("true"));
    let (plain, out) = h.open("ann", Some(&session), Resume::default());
    assert_eq!(out.frames(plain).len(), 1, "no resume asked, no replay");
}

#[test]
fn provider_failures_become_the_spec_errors() {
    let mut h = Harness::new();
    let (socket, session) = h.fresh("ann");
    let (llm, _) = h.say(socket, &session, "hi");
    let out = h.finish(
        llm,
        Err(LlmError::Unavailable {
            retryable: true,
            detail: "503 upstream".into(),
        }),
    );
    let error = out.only_frame(socket);
    assert_eq!(error["error"]["code"], "LLM_UNAVAILABLE");
    assert_eq!(
        error["error"]["message"],
        "AI service is temporarily unavailable"
    );
    assert!(out.jobs().is_empty(), "nothing arrived, nothing to store");

    let (llm, _) = h.say(socket, &session, "again");
    let out = h.finish(llm, Err(LlmError::Timeout));
    assert_eq!(
        out.only_frame(socket)["error"]["message"],
        "AI service request timed out after 2m0s"
    );

    let (llm, _) = h.say(socket, &session, "and again");
    h.chunk(llm, "half");
    let out = h.finish(
        llm,
        Err(LlmError::Interrupted {
            detail: "reset".into(),
        }),
    );
    let done = out.only_frame(socket);
    assert_eq!(meta(&done, "done"), Some("true"));
    assert_eq!(meta(&done, "error"), Some("true"));
    let Work::Store(StoreOp::Append(AppendOp { message, .. })) = out.only_job().work else {
        panic!("what arrived is stored");
    };
    assert_eq!(message.content, "half");
}

#[test]
fn a_full_llm_lane_is_a_clear_busy_error() {
    let mut h = Harness::new();
    let (socket, session) = h.fresh("ann");
    let (llm, _) = h.say(socket, &session, "hi");
    let out = h.refuse(llm);
    let error = out.only_frame(socket);
    assert_eq!(error["error"]["code"], "SERVICE_ERROR");
    assert_eq!(error["error"]["message"], "Server busy — please retry");
}

#[test]
fn closing_a_socket_does_not_stop_the_reply() {
    let mut h = Harness::new();
    let (phone, session) = h.fresh("ann");
    let (laptop, _) = h.open("ann", Some(&session), Resume::default());
    let (llm, _) = h.say(phone, &session, "hello");
    h.event(Event::Closed { socket: phone });
    let out = h.chunk(llm, "still here");
    assert_eq!(out.only_frame(laptop)["content"], "still here");
    let out = h.finish(llm, Ok(Finish::default()));
    assert!(!out.has(&Effect::Cancel(llm)));
    assert_eq!(out.jobs().len(), 1, "the reply is stored");
}

/// A reply is stored past the session's byte budget (it is owed), so its own length is
/// bounded: at `REPLY_BYTES_MAX` it ends as a stopped reply, cut on a char boundary.
#[test]
fn a_reply_that_reaches_its_byte_cap_is_stopped_and_stored_cut() {
    let cap = crate::store::REPLY_BYTES_MAX as usize;
    let mut h = Harness::new();
    let (socket, session) = h.fresh("ann");
    let (llm, _) = h.say(socket, &session, "write forever");
    let out = h.chunk(llm, &"a".repeat(cap - 1));
    assert!(!out.has(&Effect::Cancel(llm)), "still under the cap");
    // A two-byte character does not fit in the one byte left: the reply ends without it.
    let out = h.chunk(llm, "éé");
    assert!(out.has(&Effect::Cancel(llm)), "the upstream is cancelled");
    let done = out.only_frame(socket);
    assert_eq!(meta(&done, "done"), Some("true"));
    assert_eq!(meta(&done, "stopped"), Some("true"));
    let Work::Store(StoreOp::Append(AppendOp { message, .. })) = out.only_job().work else {
        panic!("the reply is stored");
    };
    assert_eq!(message.content.len(), cap - 1);
    // Chunks the lane had already sent are dropped, not appended.
    assert!(h.chunk(llm, "more").0.is_empty());
}
