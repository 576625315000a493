//! Anthropic Messages API, streamed.

use std::time::Instant;

use serde::Deserialize;
use serde_json::json;

use super::sse::Event;
use super::transport::Client;
use super::upstream::{self, Decoder, Step};
use super::{Finish, LlmError, Provider, Request, Role, Sink};
use crate::config::Secret;

/// The API version whose event shapes this module parses.
const API_VERSION: &str = "2023-06-01";

/// Required by the API; the spec fixes it at 4096.
const MAX_TOKENS: u32 = 4096;

pub struct Anthropic {
    client: Client,
    url: String,
    api_key: Option<Secret>,
}

impl Anthropic {
    pub fn new(client: Client, endpoint: &str, api_key: Option<Secret>) -> Anthropic {
        Anthropic {
            client,
            url: upstream::join(endpoint, "messages"),
            api_key,
        }
    }
}

impl Provider for Anthropic {
    fn stream(
        &self,
        request: &Request,
        deadline: Instant,
        sink: &mut dyn Sink,
    ) -> Result<Finish, LlmError> {
        let mut headers = vec![("anthropic-version", API_VERSION.to_owned())];
        if let Some(key) = &self.api_key {
            headers.push(("x-api-key", key.expose_str().to_owned()));
        }
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

/// System turns leave `messages` (the API accepts only user and assistant there) and
/// become the top-level `system`, joined by blank lines when there are several.
///
/// Assistant turns before the first user turn are left out: the API has refused
/// conversations that open with the assistant, and a history cut to the last
/// `LLM_CONTEXT_MESSAGES` often starts with one.
fn body(request: &Request) -> serde_json::Value {
    let mut system = Vec::new();
    let mut messages = Vec::new();
    for turn in request.turns {
        match turn.role {
            Role::System => system.push(&*turn.content),
            Role::User => messages.push(json!({ "role": "user", "content": &*turn.content })),
            Role::Assistant if messages.is_empty() => {}
            Role::Assistant => {
                messages.push(json!({ "role": "assistant", "content": &*turn.content }))
            }
        }
    }
    let mut body = json!({
        "model": request.model,
        "messages": messages,
        "max_tokens": MAX_TOKENS,
        "stream": true,
    });
    if !system.is_empty() {
        body["system"] = system.join("\n\n").into();
    }
    body
}

#[derive(Default)]
struct Stream {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StreamEvent {
    MessageStart {
        message: Started,
    },
    ContentBlockDelta {
        delta: BlockDelta,
    },
    MessageDelta {
        usage: Option<Usage>,
    },
    MessageStop,
    Error {
        error: ApiError,
    },
    /// `ping`, `content_block_start`, `content_block_stop` and types added later.
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct Started {
    usage: Option<Usage>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    TextDelta {
        text: String,
    },
    /// Tool input and thinking deltas: not part of the reply text.
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct Usage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct ApiError {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    message: String,
}

impl Stream {
    /// `message_delta` counts are cumulative, so a later count replaces an earlier one.
    fn count(&mut self, usage: Option<Usage>) {
        if let Some(usage) = usage {
            self.input_tokens = usage.input_tokens.or(self.input_tokens);
            self.output_tokens = usage.output_tokens.or(self.output_tokens);
        }
    }
}

impl Decoder for Stream {
    fn decode(&mut self, event: &Event) -> Step {
        match upstream::parse(event) {
            Ok(StreamEvent::MessageStart { message }) => {
                self.count(message.usage);
                Step::Continue
            }
            Ok(StreamEvent::ContentBlockDelta {
                delta: BlockDelta::TextDelta { text },
            }) => Step::Text(text),
            Ok(StreamEvent::MessageDelta { usage }) => {
                self.count(usage);
                Step::Continue
            }
            Ok(StreamEvent::MessageStop) => Step::End,
            // The error types of 429, 500 and 529 answers; the others are about the
            // request itself.
            Ok(StreamEvent::Error { error }) => Step::Fail {
                retryable: matches!(
                    error.kind.as_str(),
                    "overloaded_error" | "api_error" | "rate_limit_error"
                ),
                detail: format!("{}: {}", error.kind, error.message),
            },
            Ok(StreamEvent::ContentBlockDelta { .. } | StreamEvent::Other) => Step::Continue,
            Err(fail) => fail,
        }
    }

    fn finish(&mut self) -> Finish {
        let total_tokens = match (self.input_tokens, self.output_tokens) {
            (None, None) => None,
            (input, output) => Some(input.unwrap_or(0) + output.unwrap_or(0)),
        };
        Finish {
            total_tokens,
            conversation_id: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{Abort, Turn};

    fn event(name: &str, data: &str) -> Event {
        Event {
            event: Some(name.into()),
            data: data.into(),
        }
    }

    #[test]
    fn system_turns_go_to_the_top_level_and_messages_start_with_the_user() {
        let turn = |role, content: &str| Turn {
            role,
            content: content.into(),
        };
        let turns = [
            turn(Role::Assistant, "cut-off history"),
            turn(Role::System, "Be brief."),
            turn(Role::User, "Hi"),
            turn(Role::Assistant, "Hello"),
            turn(Role::System, "Answer in French."),
            turn(Role::User, "Bye"),
        ];
        let request = Request {
            model: "claude-sonnet-4",
            turns: &turns,
            user_id: "u1",
            conversation_id: None,
            abort: &Abort::default(),
        };
        assert_eq!(
            body(&request),
            json!({
                "model": "claude-sonnet-4",
                "system": "Be brief.\n\nAnswer in French.",
                "messages": [
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello"},
                    {"role": "user", "content": "Bye"},
                ],
                "max_tokens": 4096,
                "stream": true,
            })
        );
        let no_system = Request {
            turns: &turns[2..4],
            ..request
        };
        assert!(body(&no_system).get("system").is_none());
    }

    #[test]
    fn a_whole_stream() {
        let mut s = Stream::default();
        let steps: Vec<Step> = [
            event("message_start", r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"m","stop_reason":null,"usage":{"input_tokens":25,"output_tokens":1}}}"#),
            event("content_block_start", r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#),
            event("ping", r#"{"type": "ping"}"#),
            event("content_block_delta", r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}"#),
            event("content_block_delta", r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{"}}"#),
            event("content_block_delta", r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" there"}}"#),
            event("content_block_stop", r#"{"type":"content_block_stop","index":0}"#),
            event("message_delta", r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}"#),
            event("message_stop", r#"{"type":"message_stop"}"#),
        ]
        .iter()
        .map(|e| s.decode(e))
        .collect();
        let texts: Vec<&str> = steps
            .iter()
            .filter_map(|step| match step {
                Step::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(texts, ["Hello", " there"]);
        assert!(matches!(steps.last(), Some(Step::End)));
        assert_eq!(s.finish().total_tokens, Some(40));
    }

    #[test]
    fn no_usage_means_unknown_usage() {
        let mut s = Stream::default();
        s.decode(&event(
            "message_start",
            r#"{"type":"message_start","message":{"id":"m"}}"#,
        ));
        assert_eq!(s.finish().total_tokens, None);
    }

    #[test]
    fn error_events_fail_retryable_by_type() {
        let mut s = Stream::default();
        let overloaded =
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert!(matches!(
            s.decode(&event("error", overloaded)),
            Step::Fail { retryable: true, detail } if detail == "overloaded_error: Overloaded"
        ));
        let invalid = r#"{"type":"error","error":{"type":"invalid_request_error","message":"x"}}"#;
        assert!(matches!(
            s.decode(&event("error", invalid)),
            Step::Fail {
                retryable: false,
                ..
            }
        ));
    }
}
