//! Sessions shared with other processes (`engine/news.rs`): a core tells nothing unless
//! shared; a reply streaming in one core is mirrored by another that holds the session,
//! paced per socket there; a message sent there meanwhile waits for the mirror's end;
//! an admin assisting elsewhere keeps the assistant quiet here.

use super::*;
use crate::chat::engine::News;

fn shared() -> Harness {
    let mut h = Harness::new();
    h.chat.share_sessions();
    h
}

/// `there` holds `session` through a socket of `owner` bound to it.
fn hold(there: &mut Harness, owner: &str, session: &str) -> SocketId {
    let (socket, out) = there.open(owner, Some(session), Resume::default());
    let stored = stored_session(
        session,
        owner,
        vec![Message::new("m1", Sender::User, "hi", 0)],
    );
    there.store(
        out.only_job().id,
        Ok(StoreReply::Found(Some(Box::new(stored)))),
    );
    socket
}

/// Hands `from`'s news to `to`; returns the frames `socket` got.
fn relay(from: &mut Harness, to: &mut Harness, socket: SocketId) -> (Vec<Value>, Vec<Job>) {
    let (mut frames, mut jobs) = (Vec::new(), Vec::new());
    for news in from.chat.take_news() {
        let out = to.event(Event::News(news));
        frames.extend(out.frames(socket));
        jobs.extend(out.jobs());
    }
    (frames, jobs)
}

#[test]
fn a_core_on_its_own_tells_nothing() {
    let mut h = Harness::new();
    let (socket, session) = h.fresh("ann");
    let (llm, _) = h.say(socket, &session, "hi");
    h.chunk(llm, "Hello");
    assert!(h.chat.take_news().is_empty());
}

#[test]
fn a_reply_is_mirrored_where_the_session_is_held_and_a_message_there_waits_for_it() {
    let mut here = shared();
    let (laptop, session) = here.fresh("ann");
    let mut there = shared();
    let phone = hold(&mut there, "ann", &session);
    there.chat.take_news();

    let (llm, _) = here.say(laptop, &session, "tell me");
    let (frames, jobs) = relay(&mut here, &mut there, phone);
    assert!(frames.is_empty() && jobs.is_empty(), "{frames:?} {jobs:?}");
    here.chunk(llm, "Hel");
    here.chunk(llm, "lo");
    let (frames, _) = relay(&mut here, &mut there, phone);
    assert_eq!(
        frames.len(),
        1,
        "paced by the phone's own flush: {frames:?}"
    );
    assert_eq!(frames[0]["content"], "Hel");
    let out = there.event(Event::Flushed { socket: phone });
    assert_eq!(out.only_frame(phone)["content"], "lo");
    assert_eq!(out.only_frame(phone)["metadata"]["seq"], "2");

    // The phone asks meanwhile: stored at once, and no second reply starts.
    let frame =
        serde_json::json!({"type": "user_message", "session_id": session, "content": "and?"});
    let append = there.send(phone, &frame.to_string()).only_job();
    let out = there.store(append.id, Ok(StoreReply::Appended(3)));
    assert!(!out.jobs().iter().any(|j| matches!(j.work, Work::Llm(_))));

    let finish = Finish {
        total_tokens: None,
        conversation_id: None,
    };
    here.finish(llm, Ok(finish));
    let (frames, jobs) = relay(&mut here, &mut there, phone);
    let last = frames.last().expect("the final frame");
    assert_eq!(last["metadata"]["done"], "true", "{frames:?}");
    let rest = last["content"].as_str().unwrap_or_default();
    assert_eq!(rest, "", "the phone had all of it: {last}");
    let call = jobs.iter().find_map(|j| match &j.work {
        Work::Llm(call) => Some(call.clone()),
        _ => None,
    });
    let call = call.expect("the waiting message is answered there now");
    let said: Vec<&str> = call.turns.iter().map(|t| &*t.content).collect();
    assert_eq!(
        said,
        ["hi", "tell me", "and?", "Hello"],
        "the laptop's turn is known"
    );
}

#[test]
fn an_admin_assisting_elsewhere_keeps_the_assistant_quiet_here_until_it_leaves() {
    let mut here = shared();
    let (socket, session) = here.fresh("ann");
    let (llm, _) = here.say(socket, &session, "hi");
    here.finish(
        llm,
        Ok(Finish {
            total_tokens: None,
            conversation_id: None,
        }),
    );
    let join = |admin: Option<&str>| News::Assist {
        session_id: session.clone(),
        admin_id: admin.map(str::to_owned),
        admin_name: admin.map(str::to_owned),
    };
    here.event(Event::News(join(Some("ada"))));
    let frame =
        serde_json::json!({"type": "user_message", "session_id": session, "content": "hello?"});
    let append = here.send(socket, &frame.to_string()).only_job();
    let out = here.store(append.id, Ok(StoreReply::Appended(3)));
    assert!(out.jobs().is_empty(), "the admin answers: {out:?}");

    here.event(Event::News(join(None)));
    here.say(socket, &session, "anyone?");
}

#[test]
fn a_session_ended_in_one_core_is_closed_in_the_others_and_counted_once() {
    let mut here = shared();
    let (_laptop, session) = here.fresh("ann");
    let mut there = shared();
    let phone = hold(&mut there, "ann", &session);
    there.chat.take_news();

    here.event(Event::SessionEnded {
        session_id: session.clone(),
    });
    let news = here.chat.take_news();
    assert!(news.contains(&News::Ended {
        session_id: session.clone()
    }));
    let mut closed = false;
    for news in news {
        let out = there.event(Event::News(news));
        for frame in out.frames(phone) {
            assert_eq!(frame["type"], "connection_status");
            assert_eq!(meta(&frame, "ended"), Some("true"));
        }
        closed |= out.has(&Effect::Close(phone, 1000, "Session ended"));
    }
    assert!(closed, "the phone is closed where it is");
    assert_eq!(
        there.chat.take_tally().sessions_ended,
        0,
        "counted where it ended"
    );
}
