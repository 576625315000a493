//! chatbox on MongoDB, through the real binary: chats are stored in the collection,
//! `/readyz` reports `mongodb`, and MongoDB going away in the middle of a chat is a
//! clear `DATABASE_ERROR`, a 503 from `/readyz`, and nothing lost once it is back.

mod common;

use std::time::{Duration, Instant};

use common::chat::{stored_messages, Client};
use common::mongo::MongoServer;
use common::Server;
use serde_json::{json, Value};

fn start(mongo: &MongoServer) -> Server {
    Server::start(&[
        ("MONGO_URI", &mongo.uri()),
        ("MONGO_CONNECT_TIMEOUT", "1s"),
        ("MONGO_RETRY_DELAY", "50ms"),
    ])
}

/// Polls `/readyz` until its status is `want`, and returns its body.
fn readyz_becomes(server: &Server, want: u16) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let response = server.get("/chatbox/readyz");
        if response.status == want {
            return response.json();
        }
        assert!(
            Instant::now() < deadline,
            "/readyz stayed {}",
            response.status
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn user_texts(messages: &[Value]) -> Vec<&str> {
    messages
        .iter()
        .filter(|m| m["sender"] == "user")
        .filter_map(|m| m["content"].as_str())
        .collect()
}

#[test]
fn chats_are_stored_in_the_collection() {
    let mongo = MongoServer::start();
    let server = start(&mongo);
    let ready = readyz_becomes(&server, 200);
    assert_eq!(ready["checks"]["mongodb"], json!({"status": "ready"}));
    assert_eq!(ready["checks"]["store"], json!({"status": "ready"}));

    let mut client = Client::connect(&server, "ann", "");
    let reply = client.ask("Hello from MongoDB");
    let stored = stored_messages(&server, "ann", &client.session_id, 2);
    assert_eq!(user_texts(&stored), ["Hello from MongoDB"]);
    assert_eq!(stored[1]["content"], reply.text.as_str());

    let script = "doc = DB.sessions.find_one({'_id': sys.stdin.read()})\n\
                  print(json.dumps([doc['uid'], doc['nm'], [m['sender'] for m in doc['msgs']]]))";
    let seen: Value = serde_json::from_str(&mongo.python(script, &client.session_id)).unwrap();
    assert_eq!(seen, json!(["ann", "Hello from MongoDB", ["user", "ai"]]));
}

#[test]
fn mongodb_going_away_mid_chat_is_reported_and_survived() {
    let mut mongo = MongoServer::start();
    let server = start(&mongo);
    readyz_becomes(&server, 200);
    let mut client = Client::connect(&server, "bob", "");
    client.ask("before the outage");

    mongo.stop();
    client.set_timeout(Duration::from_secs(20));
    client.say("during the outage");
    let error = client.expect("error", &[]);
    assert_eq!(error["error"]["code"], "DATABASE_ERROR", "{error}");
    let down = readyz_becomes(&server, 503);
    assert_eq!(down["checks"]["mongodb"]["status"], "not ready");
    assert!(down["checks"]["mongodb"]["reason"]
        .as_str()
        .is_some_and(|r| !r.is_empty()));
    assert_eq!(
        server.get("/chatbox/healthz").status,
        200,
        "alive, only not ready"
    );
    client.send(json!({"type": "ping"}));
    client.expect("pong", &[]);

    mongo.resume();
    readyz_becomes(&server, 200);
    client.ask("after the outage");
    let stored = stored_messages(&server, "bob", &client.session_id, 4);
    assert_eq!(
        user_texts(&stored),
        ["before the outage", "after the outage"]
    );
    assert_eq!(stored.len(), 4, "both replies are stored too");
}
