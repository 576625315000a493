//! A chat client for tests: a real WebSocket (see `ws`) that speaks the `/ws` protocol,
//! reading frames in order and collecting streamed replies.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::ws::{self, read_json, upgrade};
use super::Server;

pub struct Client {
    pub stream: TcpStream,
    pub session_id: String,
    /// The `connection_status` the server opened with.
    pub status: Value,
}

/// A streamed reply as one client saw it.
#[derive(Debug)]
pub struct Reply {
    pub text: String,
    pub message_id: String,
    pub frames: Vec<Value>,
}

impl Reply {
    pub fn last(&self) -> &Value {
        self.frames.last().expect("a reply has frames")
    }
}

impl Client {
    /// Opens `P/ws` as `user` (`query` is appended, e.g. `session_id=…`) and reads the
    /// opening `connection_status`.
    pub fn connect(server: &Server, user: &str, query: &str) -> Client {
        Client::connect_with(server, &bearer(user), query)
    }

    /// Opens `P/ws` as admin `user` (role `admin`).
    pub fn connect_admin(server: &Server, user: &str) -> Client {
        Client::connect_with(server, &admin_bearer(user), "")
    }

    fn connect_with(server: &Server, auth: &str, query: &str) -> Client {
        let target = match query {
            "" => "/chatbox/ws".to_owned(),
            q => format!("/chatbox/ws?{q}"),
        };
        let stream = upgrade(server, &target, auth).expect("chat socket");
        let mut client = Client {
            stream,
            session_id: String::new(),
            status: Value::Null,
        };
        let status = client.next();
        assert_eq!(status["type"], "connection_status", "{status}");
        client.session_id = status["session_id"]
            .as_str()
            .expect("session id")
            .to_owned();
        client.status = status;
        client
    }

    pub fn send(&mut self, frame: Value) {
        ws::send_text(&mut self.stream, &frame.to_string());
    }

    /// Sends a user message to the client's session.
    pub fn say(&mut self, text: &str) {
        let frame = json!({"type": "user_message", "session_id": self.session_id, "content": text});
        self.send(frame);
    }

    pub fn next(&mut self) -> Value {
        let frame = read_json(&mut self.stream);
        if let Some(id) = frame["session_id"].as_str() {
            // The protocol: a client adopts the session id of every frame it gets.
            if frame["type"] != "error" {
                self.session_id = id.to_owned();
            }
        }
        frame
    }

    /// The next frame of type `kind`, failing on any other type in between except those
    /// listed in `skip`.
    pub fn expect(&mut self, kind: &str, skip: &[&str]) -> Value {
        loop {
            let frame = self.next();
            if frame["type"] == kind {
                return frame;
            }
            assert!(
                skip.iter().any(|s| frame["type"] == *s),
                "expected {kind}, got {frame}"
            );
        }
    }

    /// Reads `ai_response` frames until the one marked done, joining their text.
    pub fn reply(&mut self) -> Reply {
        let mut reply = Reply {
            text: String::new(),
            message_id: String::new(),
            frames: Vec::new(),
        };
        loop {
            let frame = self.expect("ai_response", &["loading", "user_message"]);
            reply
                .text
                .push_str(frame["content"].as_str().unwrap_or_default());
            reply.message_id = frame["metadata"]["message_id"]
                .as_str()
                .expect("message_id")
                .to_owned();
            let done = frame["metadata"]["done"] == "true";
            reply.frames.push(frame);
            if done {
                return reply;
            }
        }
    }

    /// Sends a message and returns the whole reply.
    pub fn ask(&mut self, text: &str) -> Reply {
        self.say(text);
        self.reply()
    }

    pub fn set_timeout(&mut self, limit: Duration) {
        self.stream
            .set_read_timeout(Some(limit))
            .expect("read timeout");
    }
}

/// `Authorization: Bearer …` header line for `user`.
pub fn bearer(user: &str) -> String {
    format!("Authorization: Bearer {}\r\n", ws::token(user, 3600))
}

/// `Authorization: Bearer …` header line for admin `user`, named `Admin <user>`.
pub fn admin_bearer(user: &str) -> String {
    let token = chatbox::auth::mint(
        super::JWT_SECRET.as_bytes(),
        user,
        Some(&format!("Admin {user}")),
        &["admin".to_owned()],
        chatbox::time::unix_now(),
        Some(3600),
    )
    .expect("mint");
    format!("Authorization: Bearer {token}\r\n")
}

/// The session's stored messages (`GET P/sessions/:id`) once there are at least `count`:
/// a reply is stored right after its last frame goes out, so a test may look a moment
/// too early.
pub fn stored_messages(server: &Server, user: &str, session: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = server.request(
            "GET",
            &format!("/chatbox/sessions/{session}"),
            &bearer(user),
            "",
        );
        assert_eq!(
            response.status,
            200,
            "{:?}",
            String::from_utf8_lossy(&response.body)
        );
        let messages = response.json()["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if messages.len() >= count {
            return messages;
        }
        assert!(
            Instant::now() < deadline,
            "only {} message(s) stored: {messages:?}",
            messages.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
