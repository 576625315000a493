//! An admin on pod 2 takes over a session whose user is on pod 1, over a real Redis
//! (docs/SCALE-OUT.md): both hear the join, chat both ways and see each other typing
//! while the assistant stays quiet on pod 1, and after the admin leaves pod 1's
//! assistant answers again.

mod common;

use common::chat::{stored_messages, Client};
use common::pods::Cluster;
use serde_json::{json, Value};

/// The `user_message` with `content`. Frames pod 1 published before pod 2 held the
/// session may still arrive, late, when a loaded machine delays the publisher thread:
/// those are skipped, nothing else is.
fn next_message(client: &mut Client, content: &str) -> Value {
    loop {
        let frame = client.expect("user_message", &[]);
        if frame["content"] == content {
            return frame;
        }
    }
}

fn typing(session: &str, on: &str) -> Value {
    json!({"type": "typing_indicator", "session_id": session, "metadata": {"typing": on}})
}

#[test]
fn an_admin_on_pod_2_takes_over_a_session_on_pod_1_chats_types_and_leaves() {
    let cluster = Cluster::start(2);
    let mut ann = Client::connect(&cluster.pods[0], "ann", "");
    ann.ask("Hello");
    let session = ann.session_id.clone();
    // Pod 1 subscribes to the session within its subscriber's poll; what pod 2 publishes
    // before that reaches nobody on pod 1 (pub/sub keeps nothing).
    let channel = format!("chatbox:s:{session}");
    cluster.redis.wait_subscribers(&channel, 1);
    let mut ada = Client::connect_admin(&cluster.pods[1], "ada");

    ada.send(json!({"type": "admin_join", "session_id": session}));
    for client in [&mut ann, &mut ada] {
        let joined = client.expect("admin_join", &[]);
        assert_eq!(joined["metadata"]["admin_id"], "ada", "{joined}");
    }
    cluster.redis.wait_subscribers(&channel, 2);

    ann.say("Is a person there?");
    let relayed = next_message(&mut ada, "Is a person there?");
    assert_eq!(relayed["content"], "Is a person there?", "{relayed}");
    ada.send(json!({"type": "user_message", "session_id": session, "content": "Yes, Ada here"}));
    let seen = ann.expect("user_message", &[]);
    assert_eq!(
        (&seen["sender"], &seen["content"]),
        (&json!("admin"), &json!("Yes, Ada here")),
        "the admin's answer, and no assistant reply before it: {seen}"
    );

    ann.send(typing(&session, "true"));
    let typed = ada.expect("typing_indicator", &["user_message"]);
    assert_eq!(typed["metadata"]["typing"], "true", "{typed}");
    ada.send(typing(&session, "true"));
    let typed = ann.expect("typing_indicator", &[]);
    assert_eq!(typed["sender"], "admin", "{typed}");

    ada.send(json!({"type": "admin_leave", "session_id": session}));
    let left = ann.expect("admin_leave", &["typing_indicator"]);
    assert_eq!(left["metadata"]["admin_id"], "ada", "{left}");
    let reply = ann.ask("Back to the assistant");
    assert!(!reply.text.is_empty(), "pod 1's assistant answers again");

    let stored = stored_messages(&cluster.pods[0], "ann", &session, 5);
    let said: Vec<(&str, &str)> = stored
        .iter()
        .filter(|m| m["sender"] != "ai" && m["sender"] != "system")
        .filter_map(|m| Some((m["sender"].as_str()?, m["content"].as_str()?)))
        .collect();
    assert_eq!(
        said,
        [
            ("user", "Hello"),
            ("user", "Is a person there?"),
            ("admin", "Yes, Ada here"),
            ("user", "Back to the assistant"),
        ]
    );
}
