//! The durability rule (spec/storage.md) through the real binary, on both backends:
//! chatbox is killed with SIGKILL in the middle of a busy chat, restarted on the same
//! store, and every message it had acknowledged (with `loading`) must be there.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::chat::{stored_messages, Client};
use common::mongo::MongoServer;
use common::ws::{self, read_frame, TEXT};
use common::{Server, TempDir};
use serde_json::{json, Value};

const USERS: usize = 6;
/// Acknowledged messages, over all users, before the kill.
const ACKED_BEFORE_KILL: usize = 60;

/// One user's session and the texts it saw acknowledged.
#[derive(Default)]
struct Acked {
    session: String,
    texts: Vec<String>,
}

/// Sends messages one after another until the server goes away, recording each one
/// the server acknowledged. Reads with `read_frame`, which ends at EOF instead of
/// panicking: the server's death is the point of the test.
fn chat_until_killed(mut client: Client, user: usize, acked: Arc<Mutex<Acked>>) {
    acked.lock().unwrap().session = client.session_id.clone();
    for n in 0.. {
        let text = format!("user {user} message {n}");
        let frame =
            json!({"type": "user_message", "session_id": client.session_id, "content": text});
        let wire = ws::frame(TEXT, frame.to_string().as_bytes(), true);
        if client.stream.write_all(&wire).is_err() {
            return;
        }
        loop {
            let Some((opcode, payload)) = read_frame(&mut client.stream) else {
                return;
            };
            if opcode != TEXT {
                continue;
            }
            let frame: Value = serde_json::from_slice(&payload).expect("JSON frame");
            match frame["type"].as_str() {
                Some("loading") => acked.lock().unwrap().texts.push(text.clone()),
                Some("ai_response") if frame["metadata"]["done"] == "true" => break,
                Some("error") => panic!("the server refused a message: {frame}"),
                _ => {}
            }
        }
    }
}

/// Runs the busy chat, kills the server, restarts it with `restart`, and checks the
/// acknowledged messages against what the restarted server has stored.
fn acknowledged_messages_survive_kill_9(server: Server, restart: impl FnOnce(TempDir) -> Server) {
    let acked: Vec<Arc<Mutex<Acked>>> = (0..USERS).map(|_| Arc::default()).collect();
    let clients: Vec<_> = acked
        .iter()
        .enumerate()
        .map(|(user, acked)| {
            let client = Client::connect(&server, &format!("user{user}"), "");
            let acked = Arc::clone(acked);
            thread::spawn(move || chat_until_killed(client, user, acked))
        })
        .collect();
    let total = || {
        acked
            .iter()
            .map(|a| a.lock().unwrap().texts.len())
            .sum::<usize>()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while total() < ACKED_BEFORE_KILL {
        assert!(
            Instant::now() < deadline,
            "only {} messages acknowledged",
            total()
        );
        thread::sleep(Duration::from_millis(5));
    }
    let data = server.kill();
    for client in clients {
        client.join().expect("a chat thread");
    }

    let server = restart(data);
    for (user, acked) in acked.iter().enumerate() {
        let acked = acked.lock().unwrap();
        let user = format!("user{user}");
        let stored = stored_messages(&server, &user, &acked.session, acked.texts.len());
        let stored: Vec<&str> = stored
            .iter()
            .filter(|m| m["sender"] == "user")
            .filter_map(|m| m["content"].as_str())
            .collect();
        for text in &acked.texts {
            assert!(
                stored.contains(&text.as_str()),
                "{text:?} was acknowledged but is lost"
            );
        }
    }
}

#[test]
fn embedded_store_keeps_every_acknowledged_message() {
    let server = Server::start(&[]);
    acknowledged_messages_survive_kill_9(server, |data| {
        Server::start_in(common::binary(), data, &[])
    });
}

#[test]
fn mongodb_keeps_every_acknowledged_message() {
    let mongo = MongoServer::start();
    let uri = mongo.uri();
    let env = [("MONGO_URI", uri.as_str())];
    let server = Server::start(&env);
    acknowledged_messages_survive_kill_9(server, |data| {
        Server::start_in(common::binary(), data, &env)
    });
}
