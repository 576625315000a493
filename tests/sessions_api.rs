//! The user's HTTP routes (spec/http.md): sessions, history, end, share, models.

mod common;

use std::time::Duration;

use chatbox::store::embedded::Embedded;
use chatbox::store::{Append, Message, Sender, Store};
use common::chat::{bearer, stored_messages, Client};
use common::ws::read_close;
use common::{Server, TempDir};
use serde_json::Value;

fn call(server: &Server, method: &str, path: &str, user: &str) -> (u16, Value) {
    let response = server.request(method, &format!("/chatbox{path}"), &bearer(user), "");
    let body = if response.body.is_empty() {
        Value::Null
    } else {
        response.json()
    };
    (response.status, body)
}

/// A session of `user` with one exchange in it, stored.
fn chatted(server: &Server, user: &str, text: &str) -> Client {
    let mut client = Client::connect(server, user, "");
    client.ask(text);
    stored_messages(server, user, &client.session_id, 2);
    client
}

#[test]
fn the_list_shows_own_sessions_newest_first_with_their_metadata() {
    let server = Server::start(&[]);
    let (status, empty) = call(&server, "GET", "/sessions", "ann");
    assert_eq!(status, 200);
    assert_eq!(empty["sessions"], serde_json::json!([]), "[] not null");
    assert_eq!(empty["count"], 0);
    assert_eq!(empty["limit"], 100);
    assert_eq!(empty["truncated"], false);

    let first = chatted(&server, "ann", "First question? And more");
    let mut second = Client::connect(&server, "ann", "");
    assert_eq!(
        second.session_id, first.session_id,
        "the latest active session"
    );
    // An id the server never made starts a fresh session under a server-made id.
    second.send(serde_json::json!({"type":"user_message","session_id":"brand-new","content":"Second topic"}));
    let moved = second.expect("connection_status", &[]);
    assert_ne!(moved["session_id"], "brand-new");
    assert_ne!(moved["session_id"], first.session_id.as_str());
    second.reply();
    chatted(&server, "bob", "Bob's own");

    let (_, list) = call(&server, "GET", "/sessions", "ann");
    assert_eq!(list["user_id"], "ann");
    assert_eq!(list["count"], 2);
    let sessions = list["sessions"].as_array().expect("sessions");
    assert_eq!(sessions[0]["name"], "Second topic");
    assert_eq!(sessions[1]["id"], first.session_id.as_str());
    let meta = &sessions[1];
    assert_eq!(meta["name"], "First question?");
    assert_eq!(meta["user_id"], "ann");
    assert_eq!(meta["message_count"], 2);
    assert_eq!(meta["is_active"], true);
    assert_eq!(meta["admin_assisted"], false);
    assert_eq!(meta["help_requested"], false);
    assert!(meta["total_tokens"].as_i64().expect("tokens") > 0);
    assert!(meta["start_time"].as_str().expect("start").ends_with('Z'));
    assert!(meta.get("end_time").is_none());
}

#[test]
fn history_is_for_the_owner_only() {
    let server = Server::start(&[]);
    let client = chatted(&server, "ann", "Hello there");
    let path = format!("/sessions/{}", client.session_id);
    let (status, history) = call(&server, "GET", &path, "ann");
    assert_eq!(status, 200);
    assert_eq!(history["session_id"], client.session_id.as_str());
    assert_eq!(history["name"], "Hello there");
    assert_eq!(history["model_id"], "");
    let messages = history["messages"].as_array().expect("messages");
    assert_eq!(messages[0]["sender"], "user");
    assert_eq!(messages[0]["content"], "Hello there");
    assert_eq!(messages[0]["id"].as_str().map(str::len), Some(32));
    assert_eq!(messages[1]["sender"], "ai");

    for (user, path) in [("bob", path.as_str()), ("ann", "/sessions/unknown")] {
        let (status, body) = call(&server, "GET", path, user);
        assert_eq!(status, 404, "{user} {path}");
        assert_eq!(body["error"], "Session not found");
        assert_eq!(body["code"], "NOT_FOUND");
    }
}

#[test]
fn auth_errors_follow_the_spec() {
    let server = Server::start(&[]);
    let missing = server.request("GET", "/chatbox/sessions", "", "");
    assert_eq!(missing.status, 401);
    assert_eq!(missing.json()["code"], "UNAUTHORIZED");
    assert_eq!(missing.json()["error"], "Invalid authorization header");
    let bad = server.request(
        "GET",
        "/chatbox/models",
        "Authorization: Bearer nope\r\n",
        "",
    );
    assert_eq!(bad.status, 401);
    assert_eq!(bad.json()["code"], "INVALID_TOKEN");
    let wrong_method = server.request("PUT", "/chatbox/sessions/x/end", &bearer("ann"), "");
    assert_eq!(wrong_method.status, 405);
}

#[test]
fn ending_a_session_tells_its_sockets_and_closes_them() {
    let server = Server::start(&[]);
    let client = chatted(&server, "ann", "Bye soon");
    let mut other = Client::connect(&server, "ann", &format!("session_id={}", client.session_id));
    let path = format!("/sessions/{}/end", client.session_id);
    assert_eq!(
        call(&server, "POST", &path, "bob").0,
        404,
        "not bob's to end"
    );
    let (status, body) = call(&server, "POST", &path, "ann");
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ended");

    let notice = other.expect("connection_status", &[]);
    assert_eq!(notice["metadata"]["ended"], "true");
    assert_eq!(notice["session_id"], client.session_id.as_str());
    let close = read_close(&mut other.stream, Duration::from_secs(5)).expect("closed");
    assert_eq!(close.0, 1000);

    let (_, list) = call(&server, "GET", "/sessions", "ann");
    let meta = &list["sessions"][0];
    assert_eq!(meta["is_active"], false);
    assert!(meta["end_time"].is_string());
    // A new socket does not resume an ended session.
    let fresh = Client::connect(&server, "ann", "");
    assert_ne!(fresh.session_id, client.session_id);
}

#[test]
fn sharing_gives_a_stable_token_a_public_read_and_a_revoke() {
    let server = Server::start(&[]);
    let client = chatted(&server, "ann", "Worth sharing");
    let path = format!("/sessions/{}/share", client.session_id);
    let (status, shared) = call(&server, "POST", &path, "ann");
    assert_eq!(status, 200);
    let token = shared["share_token"].as_str().expect("token").to_owned();
    assert_eq!(token.len(), 32);
    assert_eq!(
        call(&server, "POST", &path, "ann").1["share_token"],
        token.as_str()
    );
    assert_eq!(call(&server, "POST", &path, "bob").0, 404);

    let public = server.get(&format!("/chatbox/shared/{token}"));
    assert_eq!(public.status, 200);
    let body = public.json();
    assert_eq!(body["session_id"], client.session_id.as_str());
    assert_eq!(body["name"], "Worth sharing");
    assert_eq!(body["messages"][0]["content"], "Worth sharing");

    assert_eq!(call(&server, "DELETE", &path, "ann").0, 204);
    let gone = server.get(&format!("/chatbox/shared/{token}"));
    assert_eq!(gone.status, 404);
    assert_eq!(gone.json()["error"], "Shared session not found");
}

#[test]
fn shared_reads_are_limited_per_client_ip() {
    let server = Server::start(&[]);
    for _ in 0..60 {
        assert_eq!(server.get("/chatbox/shared/none").status, 404);
    }
    let limited = server.get("/chatbox/shared/none");
    assert_eq!(limited.status, 429);
    let body = limited.json();
    assert_eq!(body["error"], "rate_limit_exceeded");
    assert!(body["retry_after_ms"].as_u64().expect("retry") > 0);
    let retry: u64 = limited
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!(retry >= 1);
    assert_eq!(
        server.get("/chatbox/healthz").status,
        200,
        "probes are never limited"
    );
}

#[test]
fn models_lists_the_configured_providers_and_the_default() {
    let server = Server::start(&[]);
    let (status, body) = call(&server, "GET", "/models", "ann");
    assert_eq!(status, 200);
    assert_eq!(
        body,
        serde_json::json!({"models":[{"id":"echo","name":"Echo (offline)"}],"default":"echo"})
    );
}

/// A session of `user` with `count` stored messages, "message 0" first, written into a
/// fresh `DATA_DIR` before the server starts on it.
fn long_session(user: &str, count: usize) -> Server {
    let data = TempDir::new();
    {
        let store = Embedded::open(data.path()).expect("open the data dir");
        for n in 0..count {
            let message = Message::new(
                format!("m{n}"),
                Sender::User,
                format!("message {n}"),
                1_000 + n as i64,
            );
            store
                .append(&Append {
                    session_id: "long",
                    user_id: user,
                    name: "Long",
                    model_id: "",
                    message: &message,
                    max_messages: 5_000,
                })
                .expect("append");
        }
    }
    Server::start_in(common::binary(), data, &[])
}

fn contents(page: &Value) -> Vec<String> {
    let messages = page["messages"].as_array().expect("messages");
    messages
        .iter()
        .map(|m| m["content"].as_str().expect("content").to_owned())
        .collect()
}

#[test]
fn a_long_history_comes_in_bounded_pages_that_walk_it_once() {
    let server = long_session("ann", 250);
    let (status, newest) = call(&server, "GET", "/sessions/long", "ann");
    assert_eq!(status, 200);
    let texts = contents(&newest);
    assert_eq!(texts.len(), 100, "the default page");
    assert_eq!(texts.first().map(String::as_str), Some("message 150"));
    assert_eq!(texts.last().map(String::as_str), Some("message 249"));
    assert_eq!(newest["has_more"], true);
    assert_eq!(newest["next_before"], 150);
    assert_eq!(newest["session_id"], "long");

    // Walked back to the start in pages of 60, every message comes once, in order.
    let mut walked: Vec<String> = Vec::new();
    let mut path = "/sessions/long?limit=60".to_owned();
    loop {
        let (status, page) = call(&server, "GET", &path, "ann");
        assert_eq!(status, 200, "{page}");
        let mut texts = contents(&page);
        assert!(texts.len() <= 60);
        texts.append(&mut walked);
        walked = texts;
        if page["has_more"] == false {
            assert_eq!(page["next_before"], Value::Null);
            break;
        }
        let before = page["next_before"].as_u64().expect("next_before");
        path = format!("/sessions/long?limit=60&before={before}");
    }
    let expected: Vec<String> = (0..250).map(|n| format!("message {n}")).collect();
    assert_eq!(walked, expected);

    let (_, most) = call(&server, "GET", "/sessions/long?limit=500", "ann");
    assert_eq!(contents(&most).len(), 250);
    assert_eq!(most["has_more"], false);
    assert_eq!(
        call(&server, "GET", "/sessions/long?before=10", "bob").0,
        404,
        "not bob's"
    );
}

#[test]
fn a_short_history_keeps_its_whole_response() {
    let server = Server::start(&[]);
    let client = chatted(&server, "ann", "Short one");
    let (_, history) = call(
        &server,
        "GET",
        &format!("/sessions/{}", client.session_id),
        "ann",
    );
    assert_eq!(contents(&history).len(), 2);
    assert_eq!(history["has_more"], false);
}

#[test]
fn a_bad_page_parameter_is_a_400_that_names_it() {
    let server = long_session("ann", 3);
    for (query, named) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("limit=", "limit"),
        ("before=-1", "before"),
        ("before=x", "before"),
        ("limit=5&before=1.5", "before"),
    ] {
        let (status, body) = call(&server, "GET", &format!("/sessions/long?{query}"), "ann");
        assert_eq!(status, 400, "{query}");
        assert_eq!(body["code"], "BAD_REQUEST");
        let error = body["error"].as_str().expect("error");
        assert!(error.starts_with(named), "{query}: {error}");
    }
    let (_, token) = call(&server, "POST", "/sessions/long/share", "ann");
    let token = token["share_token"].as_str().expect("token");
    let public = server.get(&format!("/chatbox/shared/{token}?limit=9999"));
    assert_eq!(public.status, 400);
    assert!(public.json()["error"]
        .as_str()
        .expect("error")
        .starts_with("limit"));
}

#[test]
fn a_shared_history_comes_in_pages_too() {
    let server = long_session("ann", 150);
    let (_, shared) = call(&server, "POST", "/sessions/long/share", "ann");
    let token = shared["share_token"].as_str().expect("token").to_owned();
    let newest = server.get(&format!("/chatbox/shared/{token}")).json();
    assert_eq!(
        contents(&newest).len(),
        100,
        "the public read is bounded too"
    );
    assert_eq!(newest["has_more"], true);
    assert_eq!(newest["next_before"], 50);
    let oldest = server
        .get(&format!("/chatbox/shared/{token}?before=50&limit=500"))
        .json();
    let expected: Vec<String> = (0..50).map(|n| format!("message {n}")).collect();
    assert_eq!(contents(&oldest), expected);
    assert_eq!(oldest["has_more"], false);
}
