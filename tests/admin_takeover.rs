//! Admin takeover through the real binary (spec/websocket.md, admin takeover and leave,
//! typing; spec/http.md `P/admin/takeover/:id`): an admin chats in the assistant's
//! place, live, while the LLM mock hears nothing, and hands the session back.

mod common;

use std::time::Duration;

use common::chat::{admin_bearer, bearer, stored_messages, Client};
use common::llm_mock::{provider_env, LlmMock, Script, Wire};
use common::{Server, TempDir};
use serde_json::{json, Value};

fn start(mock: &LlmMock, data: TempDir) -> Server {
    let env = provider_env(1, "gpt", "openai", &mock.endpoint());
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Server::start_in(common::binary(), data, &pairs)
}

fn takeover(server: &Server, method: &str, session: &str, auth: &str) -> (u16, Value) {
    let path = format!("/chatbox/admin/takeover/{session}");
    let response = server.request(method, &path, auth, "");
    let body = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    (response.status, body)
}

fn typing(session: &str, on: &str) -> Value {
    json!({"type": "typing_indicator", "session_id": session, "metadata": {"typing": on}})
}

#[test]
fn an_admin_chats_in_the_llms_place_then_hands_the_session_back() {
    let mock = LlmMock::start(
        Wire::OpenAi,
        vec![
            Script::stream(&["Hi Ann"], Some(5)),
            Script::stream(&["Glad to help"], Some(5)),
        ],
    );
    let server = start(&mock, TempDir::new());
    let mut ann = Client::connect(&server, "ann", "");
    assert_eq!(ann.ask("Hello").text, "Hi Ann");
    let session = ann.session_id.clone();
    let mut ada = Client::connect_admin(&server, "ada");

    ada.send(json!({"type": "admin_join", "session_id": session}));
    for client in [&mut ann, &mut ada] {
        let joined = client.expect("admin_join", &[]);
        assert_eq!(
            joined["content"],
            "Administrator Admin ada has joined the session"
        );
        assert_eq!(joined["metadata"]["admin_id"], "ada");
    }

    ann.say("Is a person there?");
    let relayed = ada.expect("user_message", &[]);
    assert_eq!(relayed["content"], "Is a person there?");
    assert_eq!(relayed["session_id"], session.as_str());
    ada.send(json!({"type": "user_message", "session_id": session, "content": "Yes, Ada here"}));
    let seen = ann.expect("user_message", &[]);
    assert_eq!(
        (&seen["sender"], &seen["content"]),
        (&json!("admin"), &json!("Yes, Ada here"))
    );
    assert_eq!(
        ada.expect("user_message", &[])["sender"],
        "admin",
        "the admin's ack"
    );

    // Typing both ways, never stored.
    ann.send(typing(&session, "true"));
    let typed = ada.expect("typing_indicator", &[]);
    assert_eq!(
        (&typed["sender"], &typed["metadata"]["typing"]),
        (&json!("user"), &json!("true"))
    );
    ada.send(typing(&session, "false"));
    let typed = ann.expect("typing_indicator", &[]);
    assert_eq!(
        (&typed["sender"], &typed["metadata"]["typing"]),
        (&json!("admin"), &json!("false"))
    );

    // One admin at a time; users are refused.
    let mut bob = Client::connect_admin(&server, "bob");
    bob.send(json!({"type": "admin_join", "session_id": session}));
    let refused = bob.expect("error", &[]);
    assert_eq!(refused["error"]["code"], "UNAUTHORIZED");
    assert!(refused["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Admin ada"));
    let (status, body) = takeover(&server, "POST", &session, &admin_bearer("bob"));
    assert_eq!(status, 409, "{body}");
    assert!(body.to_string().contains("Admin ada"), "{body}");
    let mut eve = Client::connect(&server, "eve", "");
    eve.send(json!({"type": "admin_join", "session_id": session}));
    assert_eq!(eve.expect("error", &[])["error"]["code"], "UNAUTHORIZED");
    assert_eq!(takeover(&server, "POST", &session, &bearer("eve")).0, 403);

    assert_eq!(
        mock.requests().len(),
        1,
        "the LLM heard nothing while Ada assisted"
    );

    ada.send(json!({"type": "admin_leave", "session_id": session}));
    let left = ann.expect("admin_leave", &[]);
    assert_eq!(
        left["content"],
        "Administrator Admin ada has left the session"
    );
    assert_eq!(ann.ask("Thanks").text, "Glad to help");
    let requests = mock.wait_for_requests(2, Duration::from_secs(5));
    let history = &requests[1].body["messages"];
    assert!(
        history
            .as_array()
            .unwrap()
            .contains(&json!({"role": "assistant", "content": "Yes, Ada here"})),
        "{history}"
    );
    let stored = stored_messages(&server, "ann", &session, 6);
    let senders: Vec<&str> = stored.iter().filter_map(|m| m["sender"].as_str()).collect();
    assert_eq!(
        senders,
        ["user", "ai", "user", "admin", "user", "ai"],
        "no typing stored"
    );

    let scrape = server.get("/chatbox/metrics/prometheus");
    let text = String::from_utf8_lossy(&scrape.body);
    assert!(
        text.contains("\nchatbox_admin_takeovers_total 1\n"),
        "{text}"
    );
}

#[test]
fn a_takeover_over_http_survives_a_restart() {
    let mock = LlmMock::start(Wire::OpenAi, vec![Script::stream(&["Hi"], Some(1))]);
    let server = start(&mock, TempDir::new());
    let mut ann = Client::connect(&server, "ann", "");
    ann.ask("Hello");
    let session = ann.session_id.clone();
    assert_eq!(
        takeover(&server, "POST", "no-such-session", &admin_bearer("ada")).0,
        404
    );
    let (status, body) = takeover(&server, "POST", &session, &admin_bearer("ada"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"message": "Takeover initiated successfully", "session_id": session, "admin_id": "ada"})
    );
    ann.expect("admin_join", &[]);
    drop(ann);

    let server = start(&mock, server.kill());
    let (_, list) = {
        let response = server.request("GET", "/chatbox/sessions", &bearer("ann"), "");
        (response.status, response.json())
    };
    assert_eq!(list["sessions"][0]["admin_assisted"], true);
    assert_eq!(list["sessions"][0]["assisting_admin_name"], "Admin ada");

    let mut ada = Client::connect_admin(&server, "ada");
    let mut ann = Client::connect(&server, "ann", &format!("session_id={session}"));
    assert_eq!(ann.session_id, session);
    ann.say("Still there?");
    assert_eq!(ada.expect("user_message", &[])["content"], "Still there?");
    assert_eq!(
        mock.requests().len(),
        1,
        "still assisted: the LLM is not asked"
    );

    let (status, body) = takeover(&server, "DELETE", &session, &admin_bearer("ada"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"message": "Session released", "session_id": session})
    );
    ann.expect("admin_leave", &[]);
    let (_, list) = {
        let response = server.request("GET", "/chatbox/sessions", &bearer("ann"), "");
        (response.status, response.json())
    };
    assert_eq!(list["sessions"][0]["admin_assisted"], true, "ever assisted");
    assert!(list["sessions"][0].get("assisting_admin_name").is_none());
}
