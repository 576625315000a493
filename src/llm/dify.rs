//! Dify chat apps (`/chat-messages`, streaming mode). Dify keeps the conversation itself:
//! we send only the new user message and its `conversation_id`, and return the id Dify
//! assigns so the session's next turn continues the same conversation.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;

use super::abort::Abort;
use super::sse::Event;
use super::transport::Client;
use super::upstream::{self, Decoder, Step};
use super::{Finish, LlmError, Provider, Request, Role, Sink};
use crate::config::Secret;

/// The stop call is a courtesy so Dify stops generating (and billing) a reply nobody
/// reads; the lane thread must not wait long on it.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Dify {
    client: Client,
    endpoint: String,
    api_key: Option<Secret>,
}

impl Dify {
    pub fn new(client: Client, endpoint: &str, api_key: Option<Secret>) -> Dify {
        Dify {
            client,
            endpoint: endpoint.to_owned(),
            api_key,
        }
    }

    fn headers(&self) -> Vec<(&'static str, String)> {
        self.api_key
            .iter()
            .map(|key| ("authorization", format!("Bearer {}", key.expose_str())))
            .collect()
    }

    /// `POST {endpoint}/chat-messages/{task_id}/stop`; failures are only logged, the
    /// reply is already stopped on our side.
    fn stop(&self, task_id: &str, user_id: &str) {
        // The id came from upstream and goes into a path: accept only what Dify issues
        // (UUIDs), not something that could point the call elsewhere.
        if task_id.is_empty()
            || !task_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            log::warn!("llm: not stopping Dify task with unexpected id {task_id:?}");
            return;
        }
        let url = upstream::join(&self.endpoint, &format!("chat-messages/{task_id}/stop"));
        // Its own abort, never fired: the stream's has fired by now, and this call is
        // the one thing that must still go out. `STOP_TIMEOUT` bounds it instead.
        let mut request = self
            .client
            .agent(&Abort::default())
            .post(&url)
            .config()
            .timeout_global(Some(STOP_TIMEOUT))
            .build()
            .header("content-type", "application/json");
        for (name, value) in self.headers() {
            request = request.header(name, value.as_str());
        }
        let body = json!({ "user": user_id }).to_string();
        match request.send(body.as_bytes()) {
            Ok(response) if response.status().is_success() => {}
            Ok(response) => log::warn!(
                "llm: Dify stop for task {task_id} answered HTTP {}",
                response.status().as_u16()
            ),
            Err(e) => log::warn!("llm: Dify stop for task {task_id} failed: {e}"),
        }
    }
}

impl Provider for Dify {
    fn stream(
        &self,
        request: &Request,
        deadline: Instant,
        sink: &mut dyn Sink,
    ) -> Result<Finish, LlmError> {
        let body = body(request).ok_or_else(|| LlmError::Unavailable {
            retryable: false,
            detail: "the request has no user turn to send as the query".into(),
        })?;
        let url = upstream::join(&self.endpoint, "chat-messages");
        let events = upstream::open(
            &self.client,
            request.abort,
            &url,
            &self.headers(),
            &body,
            deadline,
        )?;
        let mut stream = Stream::default();
        let result = upstream::drive(events, &mut stream, sink, request.abort, deadline);
        // `drive` has dropped the connection by now; Dify keeps generating until told.
        if let (Err(LlmError::Cancelled), Some(task_id)) = (&result, &stream.task_id) {
            self.stop(task_id, request.user_id);
        }
        result
    }
}

/// `None` when there is no user turn: Dify takes one query, not a history.
fn body(request: &Request) -> Option<serde_json::Value> {
    let query = request
        .turns
        .iter()
        .rev()
        .find(|turn| turn.role == Role::User)?;
    let mut body = json!({
        "inputs": {},
        "query": &*query.content,
        "response_mode": "streaming",
        "user": request.user_id,
    });
    if let Some(id) = request.conversation_id {
        body["conversation_id"] = id.into();
    }
    Some(body)
}

#[derive(Default)]
struct Stream {
    task_id: Option<String>,
    conversation_id: Option<String>,
    total_tokens: Option<u64>,
}

/// Dify names the event inside the JSON (`data: {"event": "message", …}`), not with an
/// SSE `event:` line.
#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    event: String,
    task_id: Option<String>,
    conversation_id: Option<String>,
    answer: Option<String>,
    metadata: Option<Metadata>,
    status: Option<u16>,
    code: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct Metadata {
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Usage {
    total_tokens: Option<u64>,
}

impl Decoder for Stream {
    fn decode(&mut self, event: &Event) -> Step {
        let message: Message = match upstream::parse(event) {
            Ok(message) => message,
            Err(fail) => return fail,
        };
        if let Some(id) = message.task_id.filter(|id| !id.is_empty()) {
            self.task_id = Some(id);
        }
        if let Some(id) = message.conversation_id.filter(|id| !id.is_empty()) {
            self.conversation_id = Some(id);
        }
        match message.event.as_str() {
            "message" | "agent_message" => Step::Text(message.answer.unwrap_or_default()),
            "message_end" => {
                self.total_tokens = message
                    .metadata
                    .and_then(|m| m.usage)
                    .and_then(|u| u.total_tokens);
                Step::End
            }
            "error" => {
                let status = message.status.unwrap_or(500);
                Step::Fail {
                    retryable: status == 429 || status >= 500,
                    detail: format!(
                        "Dify error {status} {}: {}",
                        message.code.unwrap_or_default(),
                        message.message.unwrap_or_default()
                    ),
                }
            }
            // Output moderation swaps the whole answer; what was streamed cannot be
            // taken back from the clients, so the swap is only recorded.
            "message_replace" => {
                log::warn!("llm: Dify replaced an answer after streaming it (moderation)");
                Step::Continue
            }
            // Workflow, agent-thought, file and TTS events carry no reply text.
            _ => Step::Continue,
        }
    }

    fn finish(&mut self) -> Finish {
        Finish {
            total_tokens: self.total_tokens,
            conversation_id: self.conversation_id.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::Turn;

    fn data(data: &str) -> Event {
        Event {
            event: None,
            data: data.into(),
        }
    }

    #[test]
    fn body_sends_the_last_user_turn_and_the_conversation() {
        let turns = [
            Turn {
                role: Role::User,
                content: "first".into(),
            },
            Turn {
                role: Role::Assistant,
                content: "reply".into(),
            },
            Turn {
                role: Role::User,
                content: "second".into(),
            },
        ];
        let request = Request {
            model: "",
            turns: &turns,
            user_id: "u1",
            conversation_id: Some("c-9"),
            abort: &Abort::default(),
        };
        assert_eq!(
            body(&request),
            Some(json!({
                "inputs": {},
                "query": "second",
                "response_mode": "streaming",
                "user": "u1",
                "conversation_id": "c-9",
            }))
        );
        let first = Request {
            conversation_id: None,
            turns: &turns[..2],
            ..request
        };
        let first = body(&first).expect("a user turn");
        assert_eq!(first["query"], "first");
        assert!(first.get("conversation_id").is_none());
        let none = Request {
            turns: &turns[1..2],
            ..request
        };
        assert_eq!(body(&none), None);
    }

    #[test]
    fn answers_ids_and_usage() {
        let mut s = Stream::default();
        let m1 = r#"{"event":"message","task_id":"t-1","message_id":"m","conversation_id":"c-1","answer":"Hi","created_at":1}"#;
        assert!(matches!(s.decode(&data(m1)), Step::Text(t) if t == "Hi"));
        let flow = r#"{"event":"node_started","task_id":"t-1","data":{}}"#;
        assert!(matches!(s.decode(&data(flow)), Step::Continue));
        let m2 = r#"{"event":"agent_message","task_id":"t-1","conversation_id":"c-1","answer":" there"}"#;
        assert!(matches!(s.decode(&data(m2)), Step::Text(t) if t == " there"));
        let end = r#"{"event":"message_end","task_id":"t-1","conversation_id":"c-1","metadata":{"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}}"#;
        assert!(matches!(s.decode(&data(end)), Step::End));
        assert_eq!(s.task_id.as_deref(), Some("t-1"));
        assert_eq!(
            s.finish(),
            Finish {
                total_tokens: Some(7),
                conversation_id: Some("c-1".into())
            }
        );
    }

    #[test]
    fn error_events_fail_retryable_by_status() {
        let mut s = Stream::default();
        let busy = r#"{"event":"error","task_id":"t","status":503,"code":"provider_error","message":"down"}"#;
        assert!(matches!(
            s.decode(&data(busy)),
            Step::Fail { retryable: true, detail } if detail.contains("down")
        ));
        let bad = r#"{"event":"error","status":400,"code":"invalid_param","message":"x"}"#;
        assert!(matches!(
            s.decode(&data(bad)),
            Step::Fail {
                retryable: false,
                ..
            }
        ));
    }
}
