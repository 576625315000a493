//! One user cannot make the core grow: every frame that makes the server work is rate
//! limited, a session's write queue is bounded (model choices coalesce), and shutdown
//! keeps a session's writes one at a time.

use super::*;
use crate::chat::session::WRITES_QUEUED_MAX;

/// A stored session (its first message and an empty reply done) and its socket.
fn stored(h: &mut Harness, user_id: &str) -> (SocketId, String) {
    let (socket, session) = h.fresh(user_id);
    let (llm, _) = h.say(socket, &session, "first");
    h.finish(llm, Ok(Finish::default()));
    (socket, session)
}

fn select(session: &str, model_id: &str) -> String {
    serde_json::json!({"type":"model_select","session_id":session,"model_id":model_id}).to_string()
}

fn codes(out: &Out, socket: SocketId) -> Vec<String> {
    out.frames(socket)
        .iter()
        .filter_map(|f| f["error"]["code"].as_str().map(str::to_owned))
        .collect()
}

/// A settings with a rate limit no test reaches, to get at the queue behind it.
fn unlimited() -> Settings {
    let mut s = settings();
    s.chat.rate_limit = 1_000_000;
    s
}

#[test]
fn a_model_select_flood_is_rate_limited_like_messages() {
    let mut h = Harness::new();
    let (socket, session) = stored(&mut h, "ann");
    let (mut refused, mut writes) = (0, 0);
    for i in 0..5000 {
        let model = if i % 2 == 0 { "gpt" } else { "echo" };
        let out = h.send(socket, &select(&session, model));
        writes += out.jobs().len();
        for frame in out.frames(socket) {
            if frame["error"]["code"] == "TOO_MANY_REQUESTS" {
                assert!(frame["error"]["retry_after"]
                    .as_u64()
                    .is_some_and(|ms| ms > 0));
                assert_eq!(frame["session_id"], session.as_str());
                refused += 1;
            }
        }
        assert!(h.chat.footprint().writes_queued <= 1, "choices coalesce");
    }
    assert_eq!(
        refused,
        5000 - 100,
        "RATE_LIMIT (100) admitted, the rest refused"
    );
    assert_eq!(writes, 1, "one write in flight, the rest wait behind it");

    // Messages have their own budget: the flood did not use it up.
    let frame = serde_json::json!({"type":"user_message","session_id":session,"content":"x"});
    let out = h.send(socket, &frame.to_string());
    assert!(codes(&out, socket).is_empty(), "{out:?}");
}

#[test]
fn model_choices_behind_a_write_coalesce_and_the_last_is_stored() {
    let mut h = Harness::with(unlimited());
    let (socket, session) = stored(&mut h, "ann");
    let (laptop, _) = h.open("ann", Some(&session), Resume::default());
    let frame = serde_json::json!({"type":"user_message","session_id":session,"content":"hi"});
    let append = h.send(socket, &frame.to_string()).only_job();
    for i in 0..5000 {
        let model = if i % 2 == 0 { "echo" } else { "gpt" };
        let out = h.send(socket, &select(&session, model));
        assert!(out.0.is_empty(), "queued without an answer yet: {out:?}");
    }
    assert_eq!(
        h.chat.footprint().writes_queued,
        1,
        "5,000 choices, one write"
    );

    let out = h.store(append.id, Ok(StoreReply::Appended(3)));
    let set = out
        .jobs()
        .into_iter()
        .find(|j| matches!(j.work, Work::Store(StoreOp::SetModel { .. })))
        .expect("the choice is written next");
    let Work::Store(StoreOp::SetModel { model_id, .. }) = &set.work else {
        unreachable!();
    };
    assert_eq!(model_id, "gpt", "the latest choice wins");
    let out = h.store(set.id, Ok(StoreReply::Updated(true)));
    for s in [socket, laptop] {
        let status = out.only_frame(s);
        assert_eq!(status["content"], "Model changed to gpt");
    }
    assert!(
        !out.jobs()
            .iter()
            .any(|j| matches!(j.work, Work::Store(StoreOp::SetModel { .. }))),
        "nothing more to write"
    );
}

#[test]
fn past_the_write_queue_bound_the_sender_is_told_busy() {
    let mut h = Harness::with(unlimited());
    let (socket, session) = stored(&mut h, "ann");
    let frame = serde_json::json!({"type":"user_message","session_id":session,"content":"x"});
    let first = h.send(socket, &frame.to_string()).only_job();
    for _ in 0..WRITES_QUEUED_MAX {
        let out = h.send(socket, &frame.to_string());
        assert!(out.0.is_empty(), "queued: {out:?}");
    }
    for _ in 0..100 {
        let out = h.send(socket, &frame.to_string());
        let error = out.only_frame(socket);
        assert_eq!(error["error"]["code"], "SERVICE_ERROR");
        assert_eq!(error["error"]["message"], "Server busy — please retry");
        assert!(out.jobs().is_empty());
        // A choice does not slip in behind messages either.
        let out = h.send(socket, &select(&session, "gpt"));
        assert_eq!(codes(&out, socket), ["SERVICE_ERROR"]);
    }
    assert_eq!(h.chat.footprint().writes_queued, WRITES_QUEUED_MAX);

    // The queue drains as usual: the next message in line is written.
    let out = h.store(first.id, Ok(StoreReply::Appended(3)));
    assert_eq!(appends(&out).len(), 1);
}

#[test]
fn lookups_of_unknown_sessions_are_rate_limited() {
    let mut s = settings();
    s.chat.rate_limit = 3;
    let mut h = Harness::with(s);
    let (socket, _) = h.fresh("ann");
    for i in 0..3 {
        let stop = serde_json::json!({"type":"stop","session_id":format!("made-up-{i}")});
        let load = h.send(socket, &stop.to_string()).only_job();
        assert!(matches!(load.work, Work::Store(StoreOp::Load { .. })));
        h.store(load.id, Ok(StoreReply::Found(None)));
    }
    let stop = serde_json::json!({"type":"stop","session_id":"made-up-3"});
    let out = h.send(socket, &stop.to_string());
    assert_eq!(codes(&out, socket), ["TOO_MANY_REQUESTS"]);
    assert!(out.jobs().is_empty(), "no store read");
    // A stop of the socket's own session costs nothing.
    let bound = out.frames(socket)[0]["session_id"]
        .as_str()
        .map(str::to_owned);
    let own = serde_json::json!({"type":"stop","session_id":bound});
    assert!(h.send(socket, &own.to_string()).0.is_empty());
}

#[test]
fn shutdown_runs_a_sessions_queued_writes_after_the_one_in_flight() {
    let mut h = Harness::new();
    let (socket, session) = stored(&mut h, "ann");
    let frame = serde_json::json!({"type":"user_message","session_id":session,"content":"x"});
    let in_flight = h.send(socket, &frame.to_string()).only_job();
    h.send(socket, &frame.to_string());
    h.send(socket, &select(&session, "gpt"));
    let out = h.event(Event::Shutdown);
    let job = out.only_job();
    let Work::After { job: after, ops } = job.work else {
        panic!("one job that waits for the write in flight: {job:?}");
    };
    assert_eq!(after, in_flight.id);
    assert!(
        matches!(
            ops.as_slice(),
            [StoreOp::Append(_), StoreOp::SetModel { .. }]
        ),
        "in the session's order: {ops:?}"
    );
}

#[test]
fn shutdown_starts_a_parked_reply_and_chains_the_next_reply_to_it() {
    let mut h = Harness::new();
    let (socket, session) = h.fresh("ann");
    let (first, _) = h.say(socket, &session, "one");
    h.chunk(first, "Hi");
    let frame = serde_json::json!({"type":"user_message","session_id":session,"content":"two"});
    let append = h.send(socket, &frame.to_string()).only_job();
    h.store(append.id, Ok(StoreReply::Appended(3)));
    let out = h.finish(first, Ok(Finish::default()));
    let reply = appends(&out).remove(0);
    let second = out
        .jobs()
        .into_iter()
        .find(|j| matches!(j.work, Work::Llm(_)))
        .expect("the second reply streams");
    h.store(reply.id, Err(StoreError::Unavailable("down".into())));
    h.chunk(second.id, "So far");

    let out = h.event(Event::Shutdown);
    let mut jobs = out.jobs().into_iter();
    let restart = jobs.next().expect("the parked reply is tried");
    assert_eq!(restart.work, reply.work, "the parked reply goes first");
    let chained = jobs.next().expect("the stopped reply follows it");
    let Work::After { job, ops } = chained.work else {
        panic!("expected a job that waits: {chained:?}");
    };
    assert_eq!(job, restart.id);
    let [StoreOp::Append(AppendOp { message, .. })] = ops.as_slice() else {
        panic!("the stopped reply: {ops:?}");
    };
    assert_eq!(message.content, "So far");
    assert!(jobs.next().is_none());
}

#[test]
fn a_parked_reply_being_retried_at_shutdown_is_not_handed_over_again() {
    let mut h = Harness::new();
    let (socket, session) = h.fresh("ann");
    let (llm, _) = h.say(socket, &session, "hello");
    h.chunk(llm, "Hi");
    let reply = h.finish(llm, Ok(Finish::default())).only_job();
    h.store(reply.id, Err(StoreError::Unavailable("down".into())));
    h.advance(Duration::from_secs(1));
    let retry = appends(&h.event(Event::Tick)).remove(0);
    let out = h.event(Event::Shutdown);
    assert!(
        out.jobs().is_empty(),
        "the retry in flight ({}) is its last attempt: {out:?}",
        retry.id
    );
}

#[test]
fn a_reply_stopped_by_shutdown_stores_every_chunk_applied() {
    let mut h = Harness::new();
    let (socket, session) = h.fresh("ann");
    let (llm, _) = h.say(socket, &session, "hello");
    for chunk in ["one ", "two ", "three"] {
        h.chunk(llm, chunk);
    }
    let out = h.event(Event::Shutdown);
    let [append] = appends(&out).try_into().expect("one append");
    let Work::Store(StoreOp::Append(AppendOp { message, .. })) = append.work else {
        unreachable!();
    };
    assert_eq!(message.content, "one two three");
    assert_eq!(
        message.meta.get("stopped").map(String::as_str),
        Some("true")
    );

    // A chunk the lane delivered that the loop had not applied before the stop is not
    // part of the reply: no socket was sent it, and the stored reply is what they saw.
    let late = h.chunk(llm, " four");
    assert!(late.0.is_empty(), "{late:?}");
    assert!(h.finish(llm, Err(LlmError::Cancelled)).0.is_empty());
}
