//! Replies: asking the assistant, streaming its chunks to every socket of the session
//! (coalesced per socket while it is behind), replaying them to sockets that bind
//! mid-stream, and storing the reply however it ends.

use super::*;
use crate::store::REPLY_BYTES_MAX;

impl Chat {
    pub(super) fn start_reply(&mut self, session_id: &str, origin: SocketId, now: Now) {
        let id = self.job_id();
        let message_id = ids::random_id();
        let Some(live) = self.sessions.get_mut(session_id) else {
            return;
        };
        let model_id = effective_model(live, &self.settings).to_owned();
        let turns: Vec<_> = live.history.iter().cloned().collect();
        let prompt_bytes = turns.iter().map(|t| t.content.len()).sum();
        let call = LlmCall {
            provider_id: model_id.clone(),
            turns,
            user_id: live.owner.to_string(),
            conversation_id: live.rare().conversation_id.clone(),
        };
        if let Some(rare) = live.rare_held() {
            rare.finished = None;
        }
        live.reply = Some(Box::new(Reply::new(
            id,
            message_id,
            model_id,
            origin,
            now.at,
            now.ms,
            prompt_bytes,
        )));
        self.out.push(Effect::Spawn(Job {
            id,
            work: Work::Llm(call),
            then: Continuation::Reply {
                session_id: session_id.to_owned(),
            },
        }));
        self.tell_started(session_id);
    }

    pub(super) fn chunk(&mut self, session_id: &str, job: JobId, text: &str, now: Now) {
        let Some(live) = self.sessions.get_mut(session_id) else {
            return;
        };
        let Some(reply) = live.reply.as_mut().filter(|r| r.job == job) else {
            return;
        };
        if text.is_empty() {
            return;
        }
        // A reply is stored past the session's byte budget (it is owed), so its own
        // length is what bounds it: at the cap it ends as if the user had stopped it.
        let cap = usize::try_from(REPLY_BYTES_MAX).unwrap_or(usize::MAX);
        let room = cap.saturating_sub(reply.text.len());
        let fits = &text[..floor_char_boundary(text, room)];
        if !fits.is_empty() {
            reply.push(fits);
            if self.shared {
                self.news.push(News::ReplyChunk {
                    session_id: session_id.to_owned(),
                    message_id: reply.message_id.clone(),
                    text: fits.to_owned(),
                    seq: reply.seq(),
                });
            }
            for &socket in &live.sockets {
                deliver(&mut self.hub, &mut self.out, socket, &live.id, reply, now);
            }
        }
        if text.len() >= room {
            log::warn!("session {session_id}: reply reached {REPLY_BYTES_MAX} bytes; stopping it");
            self.stop(session_id, now);
        }
    }

    pub(super) fn reply_finished(
        &mut self,
        session_id: &str,
        job: JobId,
        result: Result<Finish, LlmError>,
        now: Now,
    ) {
        let Some(live) = self.sessions.get_mut(session_id) else {
            return;
        };
        // A reply that was stopped was concluded then; its job ending changes nothing.
        let Some(reply) = live.reply.take_if(|r| r.job == job) else {
            return;
        };
        let timeout = || {
            let message = format!(
                "AI service request timed out after {}",
                humanize(self.settings.stream_timeout)
            );
            (code::LLM_TIMEOUT, message)
        };
        let (outcome, tokens, error) = match result {
            Ok(finish) => {
                if finish.conversation_id.is_some() {
                    live.rare_mut().conversation_id = finish.conversation_id;
                }
                (None, finish.total_tokens, None)
            }
            Err(LlmError::Cancelled) => (Some("stopped"), None, None),
            Err(LlmError::Interrupted { detail }) => {
                log::warn!("session {session_id}: reply interrupted: {detail}");
                (Some("error"), None, None)
            }
            Err(LlmError::Timeout) => (Some("error"), None, Some(timeout())),
            Err(LlmError::Unavailable { detail, .. }) => {
                log::warn!("session {session_id}: AI service unavailable: {detail}");
                let unavailable = (
                    code::LLM_UNAVAILABLE,
                    "AI service is temporarily unavailable".to_owned(),
                );
                (Some("error"), None, Some(unavailable))
            }
        };
        let origin = reply.origin;
        self.tell_ended(session_id, &reply, outcome);
        let Some(live) = self.sessions.get_mut(session_id) else {
            return;
        };
        if reply.seq() > 0 || outcome != Some("error") {
            self.conclude(session_id, reply, outcome, tokens, now);
        } else {
            // Nothing was streamed: the error frame is the whole answer.
            for socket in live.sockets.iter() {
                if let Some(state) = self.hub.get_mut(*socket) {
                    state.delivery = None;
                }
            }
        }
        if let Some((code, message)) = error {
            self.reply_error(session_id, origin, code, &message, now);
        }
        self.next_turn(session_id, now);
    }

    /// The LLM job never ran (lane full) or died (panic): a busy error, or, when text
    /// had already streamed, the end of a failed reply that keeps what arrived.
    pub(super) fn reply_refused(&mut self, session_id: &str, job: JobId, now: Now) {
        let Some(reply) = self
            .sessions
            .get_mut(session_id)
            .and_then(|live| live.reply.take_if(|r| r.job == job))
        else {
            return;
        };
        let origin = reply.origin;
        self.tell_ended(session_id, &reply, Some("error"));
        if reply.seq() > 0 {
            self.conclude(session_id, reply, Some("error"), None, now);
        }
        self.reply_error(session_id, origin, code::SERVICE_ERROR, BUSY, now);
        self.next_turn(session_id, now);
    }

    /// A user message stored while the previous reply streamed is answered now.
    pub(super) fn next_turn(&mut self, session_id: &str, now: Now) {
        let Some(live) = self.sessions.get_mut(session_id) else {
            return;
        };
        if let (Some(origin), true) = (live.rare().turn_waiting, live.reply.is_none()) {
            live.rare_mut().turn_waiting = None;
            self.begin_turn(session_id, origin, now);
        }
        self.evict_if_idle(session_id);
    }

    /// Ends a reply: the final frame to every socket (with what each has not seen), and
    /// the reply stored with its usage and timing.
    pub(super) fn conclude(
        &mut self,
        session_id: &str,
        reply: Box<Reply>,
        outcome: Option<&'static str>,
        tokens: Option<u64>,
        now: Now,
    ) {
        let context = self.settings.chat.context_messages;
        let max_messages = self.settings.chat.max_messages + super::frames::REPLY_HEADROOM;
        let Some(live) = self.sessions.get_mut(session_id) else {
            return;
        };
        send_final(
            &live.sockets,
            &mut self.hub,
            &mut self.out,
            session_id,
            &reply,
            outcome,
            now,
        );
        if !reply.text.is_empty() {
            let estimate = (reply.prompt_bytes + reply.text.len()) / 4;
            let tokens = tokens.unwrap_or(estimate as u64);
            let elapsed = now.at.saturating_duration_since(reply.started);
            let mut message = Message::new(
                reply.message_id.clone(),
                Sender::Ai,
                reply.text.clone(),
                now.ms,
            );
            if let Some(outcome) = outcome {
                message.meta.insert(outcome.to_owned(), "true".to_owned());
            }
            message.model = Some(reply.model_id.clone());
            message.tokens = Some(i64::try_from(tokens).unwrap_or(i64::MAX));
            message.resp_ms = Some(i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX));
            live.remember(Sender::Ai, reply.text.clone(), context);
            live.message_count += 1;
            let op = StoreOp::Append(AppendOp {
                session_id: session_id.to_owned(),
                user_id: live.owner.to_string(),
                name: String::new(),
                model_id: live.model_id.to_string(),
                message: Box::new(message),
                max_messages,
            });
            live.rare_mut().writes.push_back(Write {
                op,
                then: AfterWrite::Reply,
            });
        }
        live.rare_mut().finished = Some(Finished {
            reply,
            outcome,
            at: now.at,
        });
        self.next_write(session_id);
    }

    /// Errors about a reply go to the socket that asked for it, or to the session's
    /// sockets when that one is gone.
    pub(super) fn reply_error(
        &mut self,
        session_id: &str,
        origin: SocketId,
        code: &'static str,
        message: &str,
        now: Now,
    ) {
        let targets: Vec<SocketId> = match self.hub.get(origin) {
            Some(_) => vec![origin],
            None => self
                .sessions
                .get(session_id)
                .map(|live| live.sockets.to_vec())
                .unwrap_or_default(),
        };
        for socket in targets {
            self.error(socket, Some(session_id), code, message, now);
        }
    }
}

/// Sends a socket the part of `reply` it has not seen, unless a frame is still queued on
/// it: then the text waits and goes out as one frame when the socket drains.
pub(super) fn deliver(
    hub: &mut Hub,
    out: &mut Vec<Effect>,
    socket: SocketId,
    session_id: &str,
    reply: &Reply,
    now: Now,
) {
    let Some(state) = hub.get_mut(socket) else {
        return;
    };
    let delivery = match &mut state.delivery {
        Some(d) if d.message_id == reply.message_id => d,
        slot => slot.insert(Box::new(Delivery {
            message_id: reply.message_id.clone(),
            sent_seq: 0,
            awaiting_flush: false,
        })),
    };
    if delivery.awaiting_flush || delivery.sent_seq >= reply.seq() {
        return;
    }
    let frame = chunk_frame(session_id, reply, delivery.sent_seq, &[], now);
    delivery.sent_seq = reply.seq();
    delivery.awaiting_flush = true;
    out.push(Effect::Send(socket, frame));
    out.push(Effect::WatchFlush(socket));
}

/// What a socket binding to a session gets of its reply: the reply so far while it
/// streams, or the end it missed when it reconnects within `RECONNECT_TIMEOUT`.
pub(super) fn replay(
    hub: &mut Hub,
    out: &mut Vec<Effect>,
    socket: SocketId,
    live: &Live,
    resume: &Resume,
    now: Now,
) {
    let resumes = |message_id: &str| {
        resume
            .message_id
            .as_deref()
            .is_none_or(|wanted| wanted == message_id)
    };
    if let Some(reply) = &live.reply {
        let from = if resumes(&reply.message_id) {
            resume.last_seq.unwrap_or(0)
        } else {
            0
        };
        let Some(state) = hub.get_mut(socket) else {
            return;
        };
        if reply.seq() == 0 {
            let loading = Outbound::system(Kind::Loading, now.ms)
                .with_session(&live.id)
                .to_json();
            out.push(Effect::Send(socket, loading));
        } else {
            let frame = chunk_frame(&live.id, reply, from, &[("replay", "true")], now);
            out.push(Effect::Send(socket, frame));
            out.push(Effect::WatchFlush(socket));
        }
        state.delivery = Some(Box::new(Delivery {
            message_id: reply.message_id.clone(),
            sent_seq: reply.seq(),
            awaiting_flush: reply.seq() > 0,
        }));
        return;
    }
    let Some(finished) = &live.rare().finished else {
        return;
    };
    let (Some(wanted), Some(last_seq)) = (&resume.message_id, resume.last_seq) else {
        return;
    };
    if *wanted == finished.reply.message_id && last_seq < finished.reply.seq() {
        let frame = final_frame(
            &live.id,
            &finished.reply,
            last_seq,
            finished.outcome,
            true,
            now,
        );
        out.push(Effect::Send(socket, frame));
    }
}

fn chunk_frame(
    session_id: &str,
    reply: &Reply,
    sent: u64,
    extra: &[(&str, &str)],
    now: Now,
) -> String {
    reply_frame(session_id, reply, sent, false, extra, now)
}

fn final_frame(
    session_id: &str,
    reply: &Reply,
    sent: u64,
    outcome: Option<&str>,
    replayed: bool,
    now: Now,
) -> String {
    let mut extra = Vec::with_capacity(2);
    if let Some(outcome) = outcome {
        extra.push((outcome, "true"));
    }
    if replayed {
        extra.push(("replay", "true"));
    }
    reply_frame(session_id, reply, sent, true, &extra, now)
}

/// An `ai_response` carrying the reply's text after chunk `sent`, up to its latest.
fn reply_frame(
    session_id: &str,
    reply: &Reply,
    sent: u64,
    done: bool,
    extra: &[(&str, &str)],
    now: Now,
) -> String {
    let seq = reply.seq().to_string();
    let mut frame = Outbound::new(Kind::AiResponse, Sender::Ai, now.ms)
        .with_session(session_id)
        .with_content(reply.since(sent))
        .with_model(&reply.model_id)
        .with_meta("streaming", "true")
        .with_meta("done", if done { "true" } else { "false" })
        .with_meta("message_id", &reply.message_id)
        .with_meta("seq", &seq);
    for (key, value) in extra {
        frame = frame.with_meta(key, value);
    }
    frame.to_json()
}

/// A duration the way the Go service printed it (`2m0s`, `1h0m0s`, `45s`, `500ms`), so
/// that error texts clients match on stay the same.
fn humanize(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        _ if secs == 0 => format!("{}ms", duration.as_millis()),
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// The longest prefix of `text` of at most `limit` bytes that ends on a char boundary.
fn floor_char_boundary(text: &str, limit: usize) -> usize {
    if limit >= text.len() {
        return text.len();
    }
    (0..=limit)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0)
}

/// The reply's final frame to each of `sockets`, with what that socket has not seen yet.
pub(super) fn send_final(
    sockets: &[SocketId],
    hub: &mut Hub,
    out: &mut Vec<Effect>,
    session_id: &str,
    reply: &Reply,
    outcome: Option<&str>,
    now: Now,
) {
    for &socket in sockets {
        let Some(state) = hub.get_mut(socket) else {
            continue;
        };
        let sent = match state.delivery.take() {
            Some(d) if d.message_id == reply.message_id => d.sent_seq,
            _ => 0,
        };
        let frame = final_frame(session_id, reply, sent, outcome, false, now);
        out.push(Effect::Send(socket, frame));
    }
}
