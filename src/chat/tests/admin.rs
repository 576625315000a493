//! Admins taking sessions over, chatting in the assistant's place, handing them back;
//! typing relayed between the user and the admin.

use super::*;
use crate::chat::engine::{Answer, Audience};
use crate::chat::jobs::{Asker, Takeover};
use crate::store::AssistingAdmin;

impl Harness {
    /// An admin's socket, settled on a fresh session of its own.
    fn admin(&mut self, id: &str) -> SocketId {
        self.last_socket += 1;
        let socket = SocketId(self.last_socket);
        let admin = User {
            admin: true,
            ..user(id)
        };
        let out = self.event(Event::Connected {
            socket,
            user: admin,
            session_id: None,
            resume: Resume::default(),
        });
        self.store(out.only_job().id, Ok(StoreReply::Found(None)));
        socket
    }

    /// A user's session with one stored exchange: the socket and the session id.
    fn chatted(&mut self, user_id: &str) -> (SocketId, String) {
        let (socket, session) = self.fresh(user_id);
        let (llm, _) = self.say(socket, &session, "hi");
        self.chunk(llm, "hello");
        let reply = self.finish(llm, Ok(Finish::default())).only_job();
        self.store(reply.id, Ok(StoreReply::Appended(2)));
        (socket, session)
    }

    fn frame(&mut self, socket: SocketId, kind: &str, session: &str) -> Out {
        let frame = serde_json::json!({"type": kind, "session_id": session});
        self.send(socket, &frame.to_string())
    }

    /// `admin` takes `session` over by frame and the store takes it.
    fn join(&mut self, admin: SocketId, session: &str) -> Out {
        let job = self.frame(admin, "admin_join", session).only_job();
        let Work::Store(StoreOp::SetAssist { admin: Some(_), .. }) = &job.work else {
            panic!("expected the takeover stored: {job:?}");
        };
        self.store(job.id, Ok(StoreReply::Updated(true)))
    }
}

fn message(session: &str, content: &str) -> String {
    serde_json::json!({"type":"user_message","session_id":session,"content":content}).to_string()
}

#[test]
fn an_admin_takes_over_chats_in_place_of_the_llm_and_hands_back() {
    let mut h = Harness::new();
    let (ann, session) = h.chatted("ann");
    let ada = h.admin("ada");

    let out = h.join(ada, &session);
    for socket in [ann, ada] {
        let joined = out.only_frame(socket);
        assert_eq!(joined["type"], "admin_join");
        assert_eq!(joined["sender"], "admin");
        assert_eq!(
            joined["content"],
            "Administrator ada has joined the session"
        );
        assert_eq!(meta(&joined, "admin_id"), Some("ada"));
    }
    assert_eq!(h.chat.take_tally().takeovers, 1);

    // The user's message reaches the admin, not the assistant.
    let append = h
        .send(ann, &message(&session, "a person please"))
        .only_job();
    let out = h.store(append.id, Ok(StoreReply::Appended(3)));
    assert!(out.jobs().is_empty(), "the LLM is not asked: {out:?}");
    assert!(out.frames(ann).is_empty(), "no loading: nobody generates");
    let relayed = out.only_frame(ada);
    assert_eq!(
        (&relayed["type"], &relayed["content"]),
        (&"user_message".into(), &"a person please".into())
    );

    // The admin's message is stored as the admin's and reaches the user.
    let append = h
        .send(ada, &message(&session, "Hello, Ada here"))
        .only_job();
    let Work::Store(StoreOp::Append(op)) = &append.work else {
        panic!("expected the admin's message stored: {append:?}");
    };
    assert_eq!(
        (op.message.sender, op.user_id.as_str()),
        (Sender::Admin, "ann")
    );
    let out = h.store(append.id, Ok(StoreReply::Appended(4)));
    assert!(out.jobs().is_empty());
    let seen = out.only_frame(ann);
    assert_eq!(seen["sender"], "admin");
    assert_eq!(seen["content"], "Hello, Ada here");
    assert_eq!(out.only_frame(ada)["content"], "Hello, Ada here", "its ack");

    // Handed back: the next message reaches the LLM, the admin's turn in its history.
    let job = h.frame(ada, "admin_leave", &session).only_job();
    assert!(matches!(
        job.work,
        Work::Store(StoreOp::SetAssist { admin: None, .. })
    ));
    let out = h.store(job.id, Ok(StoreReply::Updated(true)));
    for socket in [ann, ada] {
        let left = out.only_frame(socket);
        assert_eq!(left["type"], "admin_leave");
        assert_eq!(left["content"], "Administrator ada has left the session");
    }
    let (_, out) = h.say(ann, &session, "thanks");
    let turns = llm_call(&out).turns;
    let admin_turn = turns.iter().find(|t| &*t.content == "Hello, Ada here");
    assert_eq!(admin_turn.map(|t| t.role), Some(Role::Assistant));
    assert_eq!(
        h.chat.take_tally().takeovers,
        0,
        "a hand-back is no takeover"
    );
}

#[test]
fn one_admin_at_a_time_and_users_cannot_join() {
    let mut h = Harness::new();
    let (ann, session) = h.chatted("ann");
    let ada = h.admin("ada");
    let bob = h.admin("bob");
    h.join(ada, &session);

    let out = h.frame(bob, "admin_join", &session);
    assert!(out.jobs().is_empty());
    let refused = out.only_frame(bob);
    assert_eq!(refused["error"]["code"], "UNAUTHORIZED");
    assert!(refused["error"]["message"]
        .as_str()
        .unwrap()
        .contains("ada"));
    let out = h.send(bob, &message(&session, "me too"));
    assert_eq!(out.only_frame(bob)["error"]["code"], "UNAUTHORIZED");
    let out = h.frame(bob, "admin_leave", &session);
    assert_eq!(out.only_frame(bob)["error"]["code"], "UNAUTHORIZED");

    let (eve, _) = h.fresh("eve");
    for kind in ["admin_join", "admin_leave"] {
        let out = h.frame(eve, kind, &session);
        assert!(out.jobs().is_empty());
        assert_eq!(out.only_frame(eve)["error"]["code"], "UNAUTHORIZED");
    }
    let out = h.frame(ann, "admin_join", &session);
    assert_eq!(out.only_frame(ann)["error"]["code"], "UNAUTHORIZED");
    assert_eq!(h.chat.take_tally().takeovers, 1);
}

#[test]
fn an_admin_socket_watches_several_sessions() {
    let mut h = Harness::new();
    let (ann, first) = h.chatted("ann");
    let (cid, second) = h.chatted("cid");
    let ada = h.admin("ada");
    h.join(ada, &first);
    h.join(ada, &second);
    for (socket, session, text) in [(ann, &first, "one"), (cid, &second, "two")] {
        let append = h.send(socket, &message(session, text)).only_job();
        let out = h.store(append.id, Ok(StoreReply::Appended(3)));
        let relayed = out.only_frame(ada);
        assert_eq!(
            (relayed["session_id"].as_str(), relayed["content"].as_str()),
            (Some(session.as_str()), Some(text))
        );
    }
    assert_eq!(
        h.chat.audience(&Audience::Session(first.clone())),
        [ann, ada]
    );
}

#[test]
fn typing_is_relayed_both_ways_and_never_stored() {
    let mut h = Harness::new();
    let (ann, session) = h.chatted("ann");
    let ada = h.admin("ada");
    let typing = |typing: &str| {
        serde_json::json!({"type":"typing_indicator","session_id":session,"metadata":{"typing":typing}})
            .to_string()
    };
    let out = h.send(ann, &typing("true"));
    assert!(out.0.is_empty(), "nobody to tell before an admin joins");

    h.join(ada, &session);
    let out = h.send(ann, &typing("true"));
    assert!(out.jobs().is_empty());
    let relayed = out.only_frame(ada);
    assert_eq!(relayed["type"], "typing_indicator");
    assert_eq!(relayed["sender"], "user");
    assert_eq!(meta(&relayed, "typing"), Some("true"));
    assert!(out.frames(ann).is_empty());

    let out = h.send(ada, &typing("false"));
    assert!(out.jobs().is_empty());
    let relayed = out.only_frame(ann);
    assert_eq!(relayed["sender"], "admin");
    assert_eq!(meta(&relayed, "typing"), Some("false"));
    assert!(out.frames(ada).is_empty(), "not back to the typist");
}

#[test]
fn a_restart_keeps_the_assisted_state() {
    let mut h = Harness::new();
    let ada = h.admin("ada");
    let mut stored = stored_session("s1", "ann", vec![Message::new("m1", Sender::User, "hi", 0)]);
    stored.session.admin_assisted = true;
    stored.session.assisting_admin = Some(AssistingAdmin {
        id: "ada".into(),
        name: "Ada".into(),
    });

    // The admin writes first: the session is looked up, and the admin let in.
    let load = h.send(ada, &message("s1", "still here")).only_job();
    let out = h.store(
        load.id,
        Ok(StoreReply::Found(Some(Box::new(stored.clone())))),
    );
    let append = out.only_job();
    assert!(
        matches!(&append.work, Work::Store(StoreOp::Append(op)) if op.message.sender == Sender::Admin)
    );
    h.store(append.id, Ok(StoreReply::Appended(2)));
    // In memory while the assisting admin is connected (its frames reach the admin
    // only so); the admin leaves, and the next tick lets it go.
    h.event(Event::Tick);
    assert_eq!(h.chat.footprint().sessions, 2, "the admin's own and s1");
    h.event(Event::Closed { socket: ada });
    h.event(Event::Tick);
    assert_eq!(h.chat.footprint().sessions, 0);
    let ada = h.admin("ada");

    // The user comes back (the session left memory with nobody on it): still
    // assisted, so the assistant stays quiet.
    let (ann, out) = h.open("ann", Some("s1"), Resume::default());
    let found = Some(Box::new(stored));
    h.store(out.only_job().id, Ok(StoreReply::Found(found)));
    let append = h.send(ann, &message("s1", "back")).only_job();
    let out = h.store(append.id, Ok(StoreReply::Appended(3)));
    assert!(out.jobs().is_empty(), "the LLM is not asked: {out:?}");
    assert_eq!(out.only_frame(ada)["content"], "back");
}

#[test]
fn http_takeovers_are_answered_by_number() {
    let mut h = Harness::new();
    let (_, session) = h.chatted("ann");
    let takeover = |by, id: &str, session: &str, join| {
        Event::Takeover(Takeover {
            by: Asker::Request(by),
            admin: AssistingAdmin {
                id: id.into(),
                name: id.to_uppercase(),
            },
            session_id: session.into(),
            join,
        })
    };
    let job = h.event(takeover(1, "ada", &session, true)).only_job();
    let out = h.store(job.id, Ok(StoreReply::Updated(true)));
    assert!(out.has(&Effect::Answer(1, Answer::Done)));
    let out = h.event(takeover(2, "bob", &session, true));
    assert_eq!(out.0, [Effect::Answer(2, Answer::Held("ADA".into()))]);
    let out = h.event(takeover(3, "bob", &session, false));
    assert_eq!(out.0, [Effect::Answer(3, Answer::Held("ADA".into()))]);

    // Not in memory: looked up first.
    let load = h.event(takeover(4, "ada", "gone", true)).only_job();
    let out = h.store(load.id, Ok(StoreReply::Found(None)));
    assert_eq!(out.0, [Effect::Answer(4, Answer::NotFound)]);

    // A store that fails the write undoes the takeover.
    let job = h.event(takeover(5, "ada", &session, false)).only_job();
    let out = h.store(job.id, Err(StoreError::Unavailable("down".into())));
    assert_eq!(out.0, [Effect::Answer(5, Answer::Failed)]);
    let out = h.event(takeover(6, "bob", &session, true));
    assert_eq!(out.0, [Effect::Answer(6, Answer::Held("ADA".into()))]);
}
