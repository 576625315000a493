//! Help requests: stored, the user told, the admins alerted and notified within the
//! cap, escalated when nobody joins in time.

use super::*;
use crate::chat::helpdesk::NOTICES_MAX;
use crate::chat::jobs::Notice;

fn notices(out: &Out) -> Vec<Notice> {
    out.jobs()
        .into_iter()
        .filter_map(|job| match job.work {
            Work::Notify(notice) => Some(notice),
            _ => None,
        })
        .collect()
}

fn admin_socket(h: &mut Harness, id: &str) -> SocketId {
    h.last_socket += 1;
    let socket = SocketId(h.last_socket);
    let out = h.event(Event::Connected {
        socket,
        user: User {
            admin: true,
            ..user(id)
        },
        session_id: None,
        resume: Resume::default(),
    });
    h.store(out.only_job().id, Ok(StoreReply::Found(None)));
    socket
}

/// Asks for help and stores the flag: the effects of the store answering.
fn ask(h: &mut Harness, socket: SocketId, session: &str) -> Out {
    let frame = serde_json::json!({"type":"help_request","session_id":session});
    let job = h.send(socket, &frame.to_string()).only_job();
    assert!(
        matches!(&job.work, Work::Store(StoreOp::SetHelpRequested { session_id, .. }) if session_id == session),
        "expected the flag stored: {job:?}"
    );
    h.store(job.id, Ok(StoreReply::Updated(true)))
}

#[test]
fn a_help_request_is_stored_then_alerts_and_notifies_the_admins() {
    let mut h = Harness::new();
    let ada = admin_socket(&mut h, "ada");
    let (ann, session) = h.fresh("ann");
    let (llm, _) = h.say(ann, &session, "hi");
    h.chunk(llm, "hello");
    let reply = h.finish(llm, Ok(Finish::default())).only_job();
    h.store(reply.id, Ok(StoreReply::Appended(2)));

    let out = ask(&mut h, ann, &session);
    let told = out.only_frame(ann);
    assert_eq!(told["type"], "connection_status");
    assert_eq!(
        told["content"],
        "Help request sent. An administrator will join your session shortly."
    );
    let alert = out.only_frame(ada);
    assert_eq!(alert["type"], "notification");
    assert_eq!(alert["session_id"], session.as_str());
    assert_eq!(alert["user_id"], "ann");
    let sent = notices(&out);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (
            sent[0].session_id.as_str(),
            sent[0].user_id.as_str(),
            sent[0].escalated
        ),
        (session.as_str(), "ann", false)
    );

    // Five notices per session per five minutes; the admins' sockets hear every one.
    for _ in 1..NOTICES_MAX {
        assert_eq!(notices(&ask(&mut h, ann, &session)).len(), 1);
    }
    let out = ask(&mut h, ann, &session);
    assert!(notices(&out).is_empty(), "the sixth is suppressed");
    assert_eq!(out.only_frame(ada)["type"], "notification");
    h.advance(Duration::from_secs(300));
    assert_eq!(notices(&ask(&mut h, ann, &session)).len(), 1);
}

#[test]
fn a_request_nobody_answers_is_escalated_once() {
    let mut s = settings();
    s.help_escalation_after = Some(Duration::from_secs(600));
    let mut h = Harness::with(s);
    let (ann, waits) = h.fresh("ann");
    let (bob, answered) = h.fresh("bob");
    let ada = admin_socket(&mut h, "ada");
    for (socket, session) in [(ann, &waits), (bob, &answered)] {
        let (llm, _) = h.say(socket, session, "hi");
        h.chunk(llm, "hello");
        let reply = h.finish(llm, Ok(Finish::default())).only_job();
        h.store(reply.id, Ok(StoreReply::Appended(2)));
        let out = ask(&mut h, socket, session);
        assert!(out.0.iter().any(|e| matches!(e, Effect::Timer(_))));
    }
    let join = serde_json::json!({"type":"admin_join","session_id":answered});
    let job = h.send(ada, &join.to_string()).only_job();
    h.store(job.id, Ok(StoreReply::Updated(true)));

    h.advance(Duration::from_secs(599));
    assert!(notices(&h.event(Event::Tick)).is_empty());
    h.advance(Duration::from_secs(1));
    let out = h.event(Event::Tick);
    let sent = notices(&out);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        (sent[0].session_id.as_str(), sent[0].escalated),
        (waits.as_str(), true)
    );
    assert_eq!(meta(&out.only_frame(ada), "event"), Some("help_escalation"));
    h.advance(Duration::from_secs(600));
    assert!(notices(&h.event(Event::Tick)).is_empty(), "once");
}
