//! The offline provider: streams the user's last message back word by word, so the server
//! runs, and its streaming path can be tried, with no upstream and no key.

use std::time::Instant;

use super::{Finish, LlmError, Provider, Request, Role, Sink};

pub struct Echo;

impl Provider for Echo {
    /// Usage is `None`: no model ran, and an invented token count would inflate
    /// `chatbox_tokens_used_total`.
    fn stream(
        &self,
        request: &Request,
        _deadline: Instant,
        sink: &mut dyn Sink,
    ) -> Result<Finish, LlmError> {
        let text = request
            .turns
            .iter()
            .rev()
            .find(|turn| turn.role == Role::User)
            .map_or("", |turn| &*turn.content);
        for word in words(text) {
            if sink.cancelled() || !sink.chunk(word) {
                return Err(LlmError::Cancelled);
            }
        }
        Ok(Finish::default())
    }
}

/// Splits `text` into words that each keep the whitespace after them (leading whitespace
/// stays with the first), so the pieces concatenate to exactly `text`.
fn words(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let leading = rest.len() - rest.trim_start().len();
        let word_end = rest[leading..]
            .find(char::is_whitespace)
            .map_or(rest.len(), |i| leading + i);
        let end = rest[word_end..]
            .find(|c: char| !c.is_whitespace())
            .map_or(rest.len(), |i| word_end + i);
        let (word, tail) = rest.split_at(end);
        rest = tail;
        Some(word)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{Abort, Turn};

    #[test]
    fn words_keep_all_whitespace() {
        for text in [
            "Hello world",
            "  lead and trail  ",
            "tabs\tand\nnew\r\nlines",
            "one",
            "",
            "   ",
            "ünï cödé\u{3000}wide space",
        ] {
            let parts: Vec<&str> = words(text).collect();
            assert_eq!(parts.concat(), text);
            assert!(parts.iter().all(|p| !p.is_empty()));
            // One piece per word (a blank text is one piece of whitespace, or none).
            let expected = text
                .split_whitespace()
                .count()
                .max(usize::from(!text.is_empty()));
            assert_eq!(parts.len(), expected, "{text:?} → {parts:?}");
        }
        assert_eq!(words(" a  b ").collect::<Vec<_>>(), [" a  ", "b "]);
    }

    struct Collect {
        chunks: Vec<String>,
        stop_after: usize,
    }

    impl Sink for Collect {
        fn chunk(&mut self, text: &str) -> bool {
            self.chunks.push(text.to_owned());
            self.chunks.len() < self.stop_after
        }
        fn cancelled(&self) -> bool {
            false
        }
    }

    fn turns() -> Vec<Turn> {
        vec![
            Turn {
                role: Role::User,
                content: "old".into(),
            },
            Turn {
                role: Role::Assistant,
                content: "reply".into(),
            },
            Turn {
                role: Role::User,
                content: "say it back".into(),
            },
        ]
    }

    /// Streams the echo of `turns()` into a sink that stops after `stop_after` chunks.
    fn echo(stop_after: usize) -> (Result<Finish, LlmError>, Vec<String>) {
        let turns = turns();
        let request = Request {
            model: "echo",
            turns: &turns,
            user_id: "u",
            conversation_id: None,
            abort: &Abort::default(),
        };
        let mut sink = Collect {
            chunks: Vec::new(),
            stop_after,
        };
        let result = Echo.stream(&request, Instant::now(), &mut sink);
        (result, sink.chunks)
    }

    #[test]
    fn echoes_the_last_user_turn() {
        let (finish, chunks) = echo(usize::MAX);
        assert_eq!(finish, Ok(Finish::default()));
        assert_eq!(chunks, ["say ", "it ", "back"]);
    }

    #[test]
    fn stops_when_the_sink_says_so() {
        let (finish, chunks) = echo(2);
        assert_eq!(finish, Err(LlmError::Cancelled));
        assert_eq!(chunks, ["say ", "it "]);
    }
}
