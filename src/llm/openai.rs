//! OpenAI chat completions, streamed; also what Ollama, llama.cpp and vLLM speak.

use std::time::Instant;

use serde::Deserialize;
use serde_json::json;

use super::sse::Event;
use super::transport::Client;
use super::upstream::{self, Decoder, Step};
use super::{Finish, LlmError, Provider, Request, Role, Sink};
use crate::config::Secret;

pub struct OpenAi {
    client: Client,
    url: String,
    api_key: Option<Secret>,
}

impl OpenAi {
    pub fn new(client: Client, endpoint: &str, api_key: Option<Secret>) -> OpenAi {
        OpenAi {
            client,
            url: upstream::join(endpoint, "chat/completions"),
            api_key,
        }
    }
}

impl Provider for OpenAi {
    fn stream(
        &self,
        request: &Request,
        deadline: Instant,
        sink: &mut dyn Sink,
    ) -> Result<Finish, LlmError> {
        let headers: Vec<(&str, String)> = self
            .api_key
            .iter()
            .map(|key| ("authorization", format!("Bearer {}", key.expose_str())))
            .collect();
        let events = upstream::open(
            &self.client,
            request.abort,
            &self.url,
            &headers,
            &body(request),
            deadline,
        )?;
        upstream::drive(
            events,
            &mut Stream::default(),
            sink,
            request.abort,
            deadline,
        )
    }
}

fn body(request: &Request) -> serde_json::Value {
    let messages: Vec<_> = request
        .turns
        .iter()
        .map(|turn| json!({ "role": role(turn.role), "content": &*turn.content }))
        .collect();
    json!({
        "model": request.model,
        "messages": messages,
        "stream": true,
        // Without it the stream carries no token counts at all.
        "stream_options": { "include_usage": true },
    })
}

fn role(role: Role) -> &'static str {
    match role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

#[derive(Default)]
struct Stream {
    total_tokens: Option<u64>,
    finish_reason_seen: bool,
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<Usage>,
    error: Option<ApiError>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Delta,
    finish_reason: Option<String>,
}

#[derive(Default, Deserialize)]
struct Delta {
    content: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    total_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct ApiError {
    #[serde(default)]
    message: String,
    #[serde(rename = "type", default)]
    kind: String,
}

impl Decoder for Stream {
    fn decode(&mut self, event: &Event) -> Step {
        if event.data.trim() == "[DONE]" {
            return Step::End;
        }
        let chunk: Chunk = match upstream::parse(event) {
            Ok(chunk) => chunk,
            Err(fail) => return fail,
        };
        if let Some(error) = chunk.error {
            return Step::Fail {
                retryable: matches!(error.kind.as_str(), "server_error" | "rate_limit_exceeded"),
                detail: format!("{}: {}", error.kind, error.message),
            };
        }
        if let Some(total) = chunk.usage.and_then(|u| u.total_tokens) {
            self.total_tokens = Some(total);
        }
        match chunk.choices.into_iter().next() {
            Some(choice) => {
                self.finish_reason_seen |= choice.finish_reason.is_some();
                Step::Text(choice.delta.content.unwrap_or_default())
            }
            None => Step::Continue,
        }
    }

    /// Some OpenAI-compatible servers close the stream after the last choice without
    /// `[DONE]`; a reply that reached its `finish_reason` is complete all the same.
    fn complete_at_eof(&self) -> bool {
        self.finish_reason_seen
    }

    fn finish(&mut self) -> Finish {
        Finish {
            total_tokens: self.total_tokens,
            conversation_id: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{Abort, Turn};

    fn data(data: &str) -> Event {
        Event {
            event: None,
            data: data.into(),
        }
    }

    fn text(step: Step) -> String {
        match step {
            Step::Text(text) => text,
            _ => panic!("not text"),
        }
    }

    #[test]
    fn body_has_every_turn_and_asks_for_usage() {
        let turns = [
            Turn {
                role: Role::System,
                content: "Be brief.".into(),
            },
            Turn {
                role: Role::User,
                content: "Hi".into(),
            },
            Turn {
                role: Role::Assistant,
                content: "Hello".into(),
            },
            Turn {
                role: Role::User,
                content: "Bye".into(),
            },
        ];
        let request = Request {
            model: "gpt-4o-mini",
            turns: &turns,
            user_id: "u1",
            conversation_id: None,
            abort: &Abort::default(),
        };
        assert_eq!(
            body(&request),
            json!({
                "model": "gpt-4o-mini",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello"},
                    {"role": "user", "content": "Bye"},
                ],
                "stream": true,
                "stream_options": {"include_usage": true},
            })
        );
    }

    #[test]
    fn content_usage_and_done() {
        let mut s = Stream::default();
        let first = r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}"#;
        assert_eq!(text(s.decode(&data(first))), "");
        let hel = r#"{"choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}"#;
        assert_eq!(text(s.decode(&data(hel))), "Hel");
        assert!(!s.complete_at_eof());
        let stop = r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#;
        assert_eq!(text(s.decode(&data(stop))), "");
        let usage =
            r#"{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}}"#;
        assert!(matches!(s.decode(&data(usage)), Step::Continue));
        assert!(matches!(s.decode(&data("[DONE]")), Step::End));
        assert!(s.complete_at_eof());
        assert_eq!(s.finish().total_tokens, Some(12));
    }

    #[test]
    fn no_usage_chunk_means_unknown_usage() {
        let mut s = Stream::default();
        s.decode(&data(r#"{"choices":[{"delta":{"content":"x"}}]}"#));
        assert_eq!(s.finish(), Finish::default());
    }

    #[test]
    fn error_objects_and_garbage_fail() {
        let mut s = Stream::default();
        let error = r#"{"error":{"message":"The server had an error","type":"server_error"}}"#;
        assert!(matches!(
            s.decode(&data(error)),
            Step::Fail { retryable: true, detail } if detail.contains("server had an error")
        ));
        let bad = r#"{"error":{"message":"bad key","type":"invalid_request_error"}}"#;
        assert!(matches!(
            s.decode(&data(bad)),
            Step::Fail {
                retryable: false,
                ..
            }
        ));
        assert!(matches!(
            s.decode(&data("not json")),
            Step::Fail {
                retryable: false,
                ..
            }
        ));
    }
}
