//! The session lease (`engine/lease.rs`) and resume from the reply stream
//! (`engine/resume.rs`): a leased core starts a reply only once the lease is settled,
//! waits while another process holds it, goes ahead without Redis, and ends a mirrored
//! reply whose process stopped renewing; a session entering memory mid-reply elsewhere
//! replays the stream to the socket from where it left off.

use super::*;
use crate::chat::engine::{LeaseAnswer, News};

fn leased() -> Harness {
    let mut h = Harness::new();
    h.chat.share_sessions();
    h.chat.lease_replies();
    h
}

fn lease(out: &Out, session: &str, take: bool) -> bool {
    out.has(&Effect::Lease {
        session_id: session.to_owned(),
        take,
    })
}

/// Sends and stores a user message: the lease is asked for, no reply starts yet.
fn say_leased(h: &mut Harness, socket: SocketId, session: &str, text: &str) {
    let frame = serde_json::json!({"type": "user_message", "session_id": session, "content": text});
    let append = h.send(socket, &frame.to_string()).only_job();
    let out = h.store(append.id, Ok(StoreReply::Appended(1)));
    assert!(lease(&out, session, true), "{out:?}");
    assert!(!out.jobs().iter().any(|j| matches!(j.work, Work::Llm(_))));
}

/// A socket of ann's bound to her stored session `s1`, which enters memory for it.
fn hold(h: &mut Harness, resume: Resume) -> SocketId {
    let (socket, out) = h.open("ann", Some("s1"), resume);
    let stored = stored_session("s1", "ann", vec![Message::new("m1", Sender::User, "hi", 0)]);
    h.store(
        out.only_job().id,
        Ok(StoreReply::Found(Some(Box::new(stored)))),
    );
    socket
}

/// A leased core whose socket's session `s1` mirrors reply `r1` of another process,
/// "Once " so far.
fn mirroring() -> (Harness, SocketId) {
    let mut h = leased();
    let socket = hold(&mut h, Resume::default());
    let news = [
        News::ReplyStarted {
            session_id: "s1".into(),
            message_id: "r1".into(),
            model_id: "gpt".into(),
        },
        News::ReplyChunk {
            session_id: "s1".into(),
            message_id: "r1".into(),
            text: "Once ".into(),
            seq: 1,
        },
    ];
    for news in news {
        h.event(Event::News(news));
    }
    (h, socket)
}

fn answer(h: &mut Harness, session: &str, answer: LeaseAnswer) -> Out {
    h.event(Event::Leased {
        session_id: session.to_owned(),
        answer,
    })
}

fn llm_job(out: &Out) -> Option<JobId> {
    out.jobs()
        .into_iter()
        .find(|j| matches!(j.work, Work::Llm(_)))
        .map(|j| j.id)
}

#[test]
fn a_reply_starts_under_the_lease_and_gives_it_back_when_it_ends() {
    let mut h = leased();
    let (socket, session) = h.fresh("ann");
    say_leased(&mut h, socket, &session, "hi");
    let out = answer(&mut h, &session, LeaseAnswer::Granted);
    let llm = llm_job(&out).expect("the assistant is asked");
    h.chunk(llm, "Hello");
    let finish = Finish {
        total_tokens: None,
        conversation_id: None,
    };
    let out = h.finish(llm, Ok(finish));
    assert!(lease(&out, &session, false), "{out:?}");
}

#[test]
fn held_elsewhere_the_turn_waits_and_is_asked_again() {
    let mut h = leased();
    let (socket, session) = h.fresh("ann");
    say_leased(&mut h, socket, &session, "hi");
    let out = answer(&mut h, &session, LeaseAnswer::Held);
    assert!(llm_job(&out).is_none(), "{out:?}");
    h.advance(Duration::from_millis(100));
    let out = h.event(Event::Tick);
    assert!(lease(&out, &session, true), "asked again: {out:?}");
    let out = answer(&mut h, &session, LeaseAnswer::Granted);
    assert!(llm_job(&out).is_some(), "{out:?}");
}

#[test]
fn without_redis_the_reply_starts_as_on_one_pod() {
    let mut h = leased();
    let (socket, session) = h.fresh("ann");
    say_leased(&mut h, socket, &session, "hi");
    let out = answer(&mut h, &session, LeaseAnswer::Unavailable);
    assert!(llm_job(&out).is_some(), "{out:?}");
}

#[test]
fn a_mirror_whose_process_lets_the_lease_lapse_is_stored_stopped_here() {
    let (mut h, socket) = mirroring();
    let session = "s1".to_owned();
    // Alive: the lease is held, asked again while the mirror stays silent.
    h.advance(Duration::from_secs(2));
    let out = h.event(Event::Tick);
    assert!(lease(&out, &session, true), "{out:?}");
    answer(&mut h, &session, LeaseAnswer::Held);
    h.advance(Duration::from_secs(2));
    let out = h.event(Event::Tick);
    assert!(lease(&out, &session, true), "{out:?}");

    let out = answer(&mut h, &session, LeaseAnswer::Granted);
    let end = out.frames(socket).pop().expect("the final frame");
    assert_eq!(end["metadata"]["stopped"], "true", "{end}");
    let stored = appends(&out);
    assert!(
        matches!(&stored[..], [Job { work: Work::Store(StoreOp::Append(AppendOp { message, .. })), .. }]
            if message.content == "Once " && message.id.as_deref() == Some("r1")),
        "{stored:?}"
    );
    assert!(lease(&out, &session, false), "given back: {out:?}");
    let told = h.chat.take_news();
    assert!(
        told.iter()
            .any(|n| matches!(n, News::ReplyEnded { outcome: Some(o), .. } if o == "stopped")),
        "{told:?}"
    );
}

#[test]
fn a_mirror_whose_process_released_the_lease_ended_there_and_is_only_forgotten() {
    let (mut h, socket) = mirroring();
    h.advance(Duration::from_secs(2));
    let out = h.event(Event::Tick);
    assert!(lease(&out, "s1", true), "{out:?}");
    let out = answer(&mut h, "s1", LeaseAnswer::Freed);
    assert!(
        appends(&out).is_empty(),
        "stored where it streamed: {out:?}"
    );
    assert!(out.frames(socket).is_empty(), "{out:?}");
    assert!(lease(&out, "s1", false), "not needed here: {out:?}");
    // The session's next message is answered here.
    say_leased(&mut h, socket, "s1", "and then?");
}

#[test]
fn a_session_entering_memory_mid_reply_replays_the_stream_from_where_the_socket_left_off() {
    let mut h = leased();
    let resume = Resume {
        message_id: Some("r1".into()),
        last_seq: Some(1),
    };
    let socket = hold(&mut h, resume);
    let chunk = |text: &str, seq| News::ReplyChunk {
        session_id: "s1".into(),
        message_id: "r1".into(),
        text: text.into(),
        seq,
    };
    let entries = vec![
        News::ReplyStarted {
            session_id: "s1".into(),
            message_id: "r1".into(),
            model_id: "gpt".into(),
        },
        chunk("Once ", 1),
        chunk("upon ", 2),
    ];
    let out = h.event(Event::Replayed {
        session_id: "s1".into(),
        entries,
    });
    let replay = out.only_frame(socket);
    assert_eq!(replay["content"], "upon ", "{replay}");
    assert_eq!(replay["metadata"]["replay"], "true");
    assert_eq!(replay["metadata"]["seq"], "2");
    h.event(Event::Flushed { socket });

    // Heard again on the channel: skipped; the next one is new.
    let out = h.event(Event::News(chunk("upon ", 2)));
    assert!(out.frames(socket).is_empty(), "no duplicate: {out:?}");
    let out = h.event(Event::News(chunk("a time", 3)));
    assert_eq!(out.only_frame(socket)["content"], "a time");
}
