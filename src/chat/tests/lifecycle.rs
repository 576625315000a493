//! Sessions ending, time passing, shutdown, and what the metrics count.

use super::*;

#[test]
fn ending_a_session_tells_and_closes_its_sockets() {
    let mut h = Harness::new();
    let (phone, session) = h.fresh("ann");
    let (laptop, _) = h.open("ann", Some(&session), Resume::default());
    let out = h.event(Event::SessionEnded {
        session_id: session.clone(),
    });
    for socket in [phone, laptop] {
        let status = out.only_frame(socket);
        assert_eq!(status["type"], "connection_status");
        assert_eq!(meta(&status, "ended"), Some("true"));
        assert!(out.has(&Effect::Close(socket, 1000, "Session ended")));
    }
}

#[test]
fn the_sweep_runs_on_its_interval_and_ends_idle_sessions() {
    let mut h = Harness::new();
    let (socket, session) = h.fresh("ann");
    let out = h.event(Event::Tick);
    let sweep = out.only_job();
    let Work::Store(StoreOp::EndIdle { idle_before, at }) = sweep.work else {
        panic!("expected the idle sweep: {sweep:?}");
    };
    assert_eq!(at - idle_before, 900_000);
    assert!(out.0.iter().any(|e| matches!(e, Effect::Timer(_))));
    assert!(
        h.event(Event::Tick).jobs().is_empty(),
        "not again before the interval"
    );
    let out = h.store(sweep.id, Ok(StoreReply::Ended(vec![session])));
    assert!(out.has(&Effect::Close(socket, 1000, "Session ended")));
    h.advance(Duration::from_secs(301));
    assert_eq!(h.event(Event::Tick).jobs().len(), 1);
}

#[test]
fn a_reply_nobody_watches_is_stopped_after_the_reconnect_window() {
    let mut h = Harness::new();
    let (socket, session) = h.fresh("ann");
    let (llm, _) = h.say(socket, &session, "hello");
    h.chunk(llm, "partial");
    h.event(Event::Closed { socket });
    h.advance(Duration::from_secs(899));
    assert!(!h.event(Event::Tick).has(&Effect::Cancel(llm)));
    h.advance(Duration::from_secs(2));
    let out = h.event(Event::Tick);
    assert!(out.has(&Effect::Cancel(llm)));
    assert!(out.jobs().iter().any(|j| matches!(
        &j.work,
        Work::Store(StoreOp::Append(AppendOp { message, .. })) if message.content == "partial"
    )));
}

#[test]
fn shutdown_stops_replies_and_hands_over_their_writes() {
    let mut h = Harness::new();
    let (socket, session) = h.fresh("ann");
    let (llm, _) = h.say(socket, &session, "hello");
    h.chunk(llm, "so far");
    let out = h.event(Event::Shutdown);
    assert!(out.has(&Effect::Cancel(llm)));
    let stored: Vec<BTreeMap<String, String>> = out
        .jobs()
        .into_iter()
        .filter_map(|j| match j.work {
            Work::Store(StoreOp::Append(AppendOp { message, .. })) => Some(message.meta),
            _ => None,
        })
        .collect();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].get("stopped").map(String::as_str), Some("true"));
}

#[test]
fn a_parked_reply_is_handed_over_at_shutdown() {
    let mut h = Harness::new();
    let (socket, session) = h.fresh("ann");
    let (llm, _) = h.say(socket, &session, "hello");
    h.chunk(llm, "Hi!");
    let write = h.finish(llm, Ok(Finish::default())).only_job();
    h.store(write.id, Err(StoreError::Unavailable("down".into())));
    let out = h.event(Event::Shutdown);
    assert_eq!(out.only_job().work, write.work);
}

#[test]
fn the_tally_counts_sessions_errors_and_refusals_once() {
    let mut s = settings();
    s.chat.rate_limit = 2;
    let mut h = Harness::with(s);
    let (socket, session) = h.fresh("ann");
    assert_eq!(
        h.chat.take_tally(),
        Tally::default(),
        "connecting counts nothing"
    );

    let (llm, _) = h.say(socket, &session, "first");
    h.chunk(llm, "reply");
    let reply = h.finish(llm, Ok(Finish::default())).only_job();
    h.store(reply.id, Ok(StoreReply::Appended(2)));
    let frame = serde_json::json!({"type":"user_message","session_id":session,"content":"x"});
    let append = h.send(socket, &frame.to_string()).only_job();
    h.store(append.id, Ok(StoreReply::Appended(3)));
    assert_eq!(
        h.chat.take_tally(),
        Tally {
            sessions_created: 1,
            ..Tally::default()
        },
        "only the first stored message creates the session"
    );

    h.send(socket, &frame.to_string());
    h.send(socket, r#"{"type":"file_upload"}"#);
    h.event(Event::SessionEnded {
        session_id: session.clone(),
    });
    assert_eq!(
        h.chat.take_tally(),
        Tally {
            error_frames: 2,
            rate_limited: 1,
            sessions_ended: 1,
            ..Tally::default()
        }
    );
    assert_eq!(h.chat.take_tally(), Tally::default(), "taking resets it");
}
