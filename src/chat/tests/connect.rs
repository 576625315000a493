//! A socket's first session: a fresh one, the latest stored one, someone else's, an
//! unknown one.

use super::*;

#[test]
fn a_new_socket_gets_a_fresh_session_and_the_models() {
    let mut h = Harness::new();
    let (socket, out) = h.open("ann", None, Resume::default());
    let resolve = out.only_job();
    assert_eq!(
        resolve.work,
        Work::Store(StoreOp::Resolve {
            user_id: "ann".into(),
            requested: None,
            history: 20
        })
    );
    let status = h
        .store(resolve.id, Ok(StoreReply::Found(None)))
        .only_frame(socket);
    assert_eq!(status["type"], "connection_status");
    assert_eq!(status["sender"], "system");
    assert_eq!(status["user_id"], "ann");
    assert_eq!(status["model_id"], "echo");
    assert_eq!(status["models"][1]["id"], "gpt");
    let id = status["session_id"].as_str().expect("id");
    assert_eq!(id.len(), 32);
    assert!(id
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
}

#[test]
fn the_latest_active_session_is_resumed_with_its_history() {
    let mut h = Harness::new();
    let (socket, out) = h.open("ann", None, Resume::default());
    let earlier = stored_session(
        "s-old",
        "ann",
        vec![
            Message::new("m1", Sender::User, "hello", 1),
            Message::new("m2", Sender::Ai, "hi there", 2),
        ],
    );
    let out = h.store(
        out.only_job().id,
        Ok(StoreReply::Found(Some(Box::new(earlier)))),
    );
    assert_eq!(out.only_frame(socket)["session_id"], "s-old");
    let (_, out) = h.say(socket, "s-old", "and now?");
    let call = llm_call(&out);
    let turns: Vec<(Role, &str)> = call.turns.iter().map(|t| (t.role, &*t.content)).collect();
    assert_eq!(
        turns,
        [
            (Role::User, "hello"),
            (Role::Assistant, "hi there"),
            (Role::User, "and now?")
        ]
    );
}

#[test]
fn another_users_session_is_refused_without_revealing_it() {
    let mut h = Harness::new();
    let (ann, ann_session) = h.fresh("ann");
    let (bob, _) = h.fresh("bob");
    let frame = serde_json::json!({"type":"user_message","session_id":ann_session,"content":"hi"});
    let out = h.send(bob, &frame.to_string());
    let error = out.only_frame(bob);
    assert_eq!(error["error"]["code"], "UNAUTHORIZED");
    assert_eq!(
        error["error"]["message"],
        "You do not have permission to access this session"
    );
    assert!(out.frames(ann).is_empty(), "never routed to the owner");

    // Not in memory: the store answers, with the same result.
    let (carl, _) = h.fresh("carl");
    let frame = serde_json::json!({"type":"user_message","session_id":"s-bob","content":"hi"});
    let load = h.send(carl, &frame.to_string()).only_job();
    let theirs = stored_session("s-bob", "bob", Vec::new());
    let out = h.store(load.id, Ok(StoreReply::Found(Some(Box::new(theirs)))));
    assert_eq!(out.only_frame(carl)["error"]["code"], "UNAUTHORIZED");
    assert!(out.jobs().is_empty(), "the refused message is not stored");

    // Someone else's id in the handshake: a fresh session, no error.
    let (dave, out) = h.open("dave", Some(&ann_session), Resume::default());
    let status = out.only_frame(dave);
    assert_ne!(status["session_id"], ann_session.as_str());
}

#[test]
fn an_unknown_session_id_starts_a_fresh_session_the_frames_follow() {
    let mut h = Harness::new();
    let (socket, first) = h.fresh("ann");
    let frame = serde_json::json!({"type":"user_message","session_id":"made-up","content":"hi"});
    let load = h.send(socket, &frame.to_string()).only_job();
    // Frames sent meanwhile wait their turn.
    assert!(h.send(socket, r#"{"type":"ping"}"#).0.is_empty());
    let out = h.store(load.id, Ok(StoreReply::Found(None)));
    let frames = out.frames(socket);
    assert_eq!(frames[0]["type"], "connection_status");
    let fresh = frames[0]["session_id"].as_str().expect("id");
    assert_ne!(fresh, first);
    assert_ne!(fresh, "made-up");
    assert_eq!(frames[1]["type"], "pong");
    let Work::Store(StoreOp::Append(AppendOp { session_id, .. })) = out.only_job().work else {
        panic!("the message is stored in the fresh session");
    };
    assert_eq!(session_id, fresh);
}
