//! Where a frame becomes a chat event: validation, the session it is for, and what
//! each message type does.

use super::*;
use crate::chat::ratelimit::retry_after_ms;

/// How far past `MAX_MESSAGES_PER_SESSION` replies may be stored. A user message is
/// admitted while the session holds fewer than the cap, and a reply owed to an admitted
/// message is never dropped for want of room. Replies are counted when they end, and a
/// session owes at most two: the one streaming and the one whose turn waits behind it
/// (later messages join that turn). So a full session holds at most cap + 2 messages.
pub(super) const REPLY_HEADROOM: usize = 2;

/// The rate budgets of a user: every frame that makes the server work draws on one.
/// A `stop` draws on none: stopping nothing costs nothing, and the replies there are to
/// stop are paid for by the messages that asked for them. Pings cost a pong.
#[derive(Clone, Copy)]
pub(super) enum Budget {
    /// User messages: `RATE_LIMIT` per `RATE_LIMIT_WINDOW`.
    Messages,
    /// Model choices (a store write each) and lookups of a session not in memory (a
    /// store read each), at the same rate, apart from messages.
    Controls,
}

impl Chat {
    pub(super) fn frame(&mut self, socket: SocketId, text: &str, now: Now) {
        let Some(state) = self.hub.get_mut(socket) else {
            return;
        };
        if let Some(held) = &mut state.held {
            if held.len() < HELD_FRAMES_MAX {
                held.push_back(text.to_owned());
            } else {
                let bound = state.session.clone();
                self.error(socket, bound.as_deref(), code::SERVICE_ERROR, BUSY, now);
            }
            return;
        }
        let inbound = match parse_inbound(text, now.ms) {
            Ok(inbound) => inbound,
            Err(rejection) => {
                let bound = state.session.clone();
                self.error(
                    socket,
                    bound.as_deref(),
                    rejection.code,
                    rejection.message,
                    now,
                );
                return;
            }
        };
        if let Some(seq) = inbound.metadata.get("last_seq") {
            if let Ok(seq) = seq.parse() {
                state.saw_seq(seq);
            }
        }
        let refused = match inbound.kind {
            Kind::Ping => {
                let pong = Outbound::system(Kind::Pong, now.ms).to_json();
                self.send(socket, pong);
                return;
            }
            // An answer to nothing we asked; harmless.
            Kind::Pong => return,
            Kind::AiResponse
            | Kind::Error
            | Kind::ConnectionStatus
            | Kind::Loading
            | Kind::Notification => {
                let message = format!(
                    "Invalid message format: {} is sent by the server only",
                    inbound.kind.as_str()
                );
                Some((code::INVALID_FORMAT, message))
            }
            Kind::AdminJoin | Kind::AdminLeave if !state.user.admin => {
                let message = "Only administrators can join or leave sessions".to_owned();
                Some((code::UNAUTHORIZED, message))
            }
            Kind::UserMessage
            | Kind::FileUpload
            | Kind::VoiceMessage
            | Kind::ModelSelect
            | Kind::Stop
            | Kind::TypingIndicator
            | Kind::HelpRequest
            | Kind::AdminJoin
            | Kind::AdminLeave => None,
        };
        if let Some((code, message)) = refused {
            let bound = state.session.clone();
            self.error(socket, bound.as_deref(), code, message, now);
            return;
        }
        let Some(inbound) = self.admin_frame(socket, inbound, now) else {
            return;
        };
        let session_id = match self.target(socket, text, inbound.session_id.as_deref(), now) {
            Target::Ready(id) => id,
            Target::Held | Target::Refused => return,
        };
        match inbound.kind {
            Kind::UserMessage => self.user_message(socket, &session_id, inbound, now),
            Kind::FileUpload | Kind::VoiceMessage => {
                self.file_message(socket, &session_id, inbound, now)
            }
            Kind::ModelSelect => self.model_select(socket, &session_id, inbound, now),
            Kind::Stop => self.stop(&session_id, now),
            Kind::TypingIndicator => self.user_typing(socket, &session_id, &inbound, now),
            Kind::HelpRequest => self.help_request(socket, &session_id, now),
            _ => {}
        }
    }

    /// The session a frame is for, moving the socket there when it names another of
    /// the user's sessions.
    pub(super) fn target(
        &mut self,
        socket: SocketId,
        text: &str,
        named: Option<&str>,
        now: Now,
    ) -> Target {
        let Some(state) = self.hub.get(socket) else {
            return Target::Refused;
        };
        let bound = state.session.clone();
        let named = match (named, state.alias.as_deref()) {
            (Some(named), Some((from, to))) if named == from => Some(to.clone()),
            (named, _) => named.map(str::to_owned),
        };
        let Some(named) = named.filter(|n| Some(n.as_str()) != bound.as_deref()) else {
            // No session: it ended and the socket is being closed (1000, or 1011 when no
            // fresh id could be made); the close frame is the answer.
            return bound.map_or(Target::Refused, Target::Ready);
        };
        let user_id = state.user.id.clone();
        match self.sessions.get(named.as_str()) {
            Some(live) if live.owner == user_id && !live.ended => {
                let id = live.id.clone();
                self.bind(socket, &id, now);
                Target::Ready(id)
            }
            Some(live) if live.owner != user_id => {
                self.unauthorized(socket, bound.as_deref(), now);
                Target::Refused
            }
            // Ended: like an unknown id, the frame starts a fresh session.
            Some(_) => match self.bind_fresh(socket, now) {
                Some(fresh) => {
                    self.alias(socket, named, fresh.to_string());
                    Target::Ready(fresh)
                }
                None => Target::Refused,
            },
            None => {
                if !self.within_budget(socket, bound.as_deref(), Budget::Controls, now) {
                    return Target::Refused;
                }
                if let Some(state) = self.hub.get_mut(socket) {
                    state.held = Some(Box::new(VecDeque::from([text.to_owned()])));
                }
                let load = StoreOp::Load {
                    session_id: named.clone(),
                    history: self.settings.chat.context_messages,
                };
                let then = Continuation::Load {
                    socket,
                    session_id: named,
                };
                self.spawn(Work::Store(load), then);
                Target::Held
            }
        }
    }

    /// Takes a token from the user's `budget`, or answers `TOO_MANY_REQUESTS` with the
    /// wait: true when the frame may go on.
    pub(super) fn within_budget(
        &mut self,
        socket: SocketId,
        session_id: Option<&str>,
        budget: Budget,
        now: Now,
    ) -> bool {
        let Some(user_id) = self.hub.get(socket).map(|s| s.user.id.clone()) else {
            return false;
        };
        let limiter = match budget {
            Budget::Messages => &mut self.limiter,
            Budget::Controls => &mut self.controls,
        };
        let Err(wait) = limiter.check(&user_id, now.at) else {
            return true;
        };
        let mut frame = Outbound::error(
            code::TOO_MANY_REQUESTS,
            "Too many requests, please slow down",
            true,
            now.ms,
        )
        .with_retry_after(retry_after_ms(wait));
        if let Some(id) = session_id {
            frame = frame.with_session(id);
        }
        if matches!(budget, Budget::Messages) {
            self.tally.rate_limited += 1;
        }
        self.send_error(socket, frame);
        false
    }

    pub(super) fn alias(&mut self, socket: SocketId, from: String, to: String) {
        if let Some(state) = self.hub.get_mut(socket) {
            state.alias = Some(Box::new((from, to)));
        }
    }

    pub(super) fn user_message(
        &mut self,
        socket: SocketId,
        session_id: &str,
        inbound: Inbound,
        now: Now,
    ) {
        let Some((content, message_id)) =
            self.admit_message(socket, session_id, inbound.content, now)
        else {
            return;
        };
        // Stored under our clock: the stored time becomes the session's last activity, and
        // a back-dated one would have the idle sweep end the session at once. The client's
        // own time, where it said one, is kept for what it is: a claim.
        let mut message = Message::new(message_id, Sender::User, content, now.ms);
        message.meta = inbound.metadata;
        message.meta.remove("last_seq");
        if inbound.at != now.ms {
            let claimed = crate::time::rfc3339_millis(inbound.at);
            message.meta.insert("client_timestamp".to_owned(), claimed);
        }
        self.store_message(socket, session_id, message, Kind::UserMessage, now);
    }

    /// What every message a person sends into a session passes, in this order: it has a
    /// content, its sender is within budget, the session has room, an id can be made.
    /// The content and the new id; `None` once the sender has been answered.
    pub(super) fn admit_message(
        &mut self,
        socket: SocketId,
        session_id: &str,
        content: Option<String>,
        now: Now,
    ) -> Option<(String, String)> {
        let Some(content) = content else {
            self.error(
                socket,
                Some(session_id),
                code::MISSING_FIELD,
                "Required field missing: content",
                now,
            );
            return None;
        };
        if !self.within_budget(socket, Some(session_id), Budget::Messages, now) {
            return None;
        }
        let live = self.sessions.get(session_id)?;
        // The cap admits the message itself; a reply it is owed is stored past the cap if
        // need be (see REPLY_HEADROOM).
        if live.message_count >= self.settings.chat.max_messages as u64 {
            self.error(
                socket,
                Some(session_id),
                code::SERVICE_ERROR,
                SESSION_FULL,
                now,
            );
            return None;
        }
        Some((content, ids::random_id()))
    }

    /// Counts a message [`Chat::admit_message`] let in and queues its append; it is
    /// acknowledged and sent to the session once stored (`user_message_stored`) as a
    /// frame of `kind` (a user message, a file or a voice message).
    pub(super) fn store_message(
        &mut self,
        socket: SocketId,
        session_id: &str,
        message: Message,
        kind: Kind,
        now: Now,
    ) {
        let Some(live) = self.sessions.get_mut(session_id) else {
            return;
        };
        live.message_count += 1;
        let op = StoreOp::Append(AppendOp {
            session_id: session_id.to_owned(),
            user_id: live.owner.to_string(),
            name: name_for(&message.content),
            model_id: live.model_id.to_string(),
            message: Box::new(message.clone()),
            max_messages: self.settings.chat.max_messages,
        });
        let then = AfterWrite::UserMessage {
            socket,
            message: Box::new(message),
            kind,
        };
        self.write(session_id, Write { op, then }, now);
    }

    pub(super) fn model_select(
        &mut self,
        socket: SocketId,
        session_id: &str,
        inbound: Inbound,
        now: Now,
    ) {
        let Some(model_id) = inbound.model_id else {
            self.error(
                socket,
                Some(session_id),
                code::MISSING_FIELD,
                "Required field missing: model_id",
                now,
            );
            return;
        };
        if !self.settings.models.iter().any(|m| m.id == model_id) {
            let message = format!("Invalid model ID: {model_id}");
            self.error(socket, Some(session_id), code::INVALID_FORMAT, message, now);
            return;
        }
        if !self.within_budget(socket, Some(session_id), Budget::Controls, now) {
            return;
        }
        let Some(live) = self.sessions.get_mut(session_id) else {
            return;
        };
        live.model_id = model_id.as_str().into();
        if live.stored || live.rare().writing.is_some() {
            let op = StoreOp::SetModel {
                session_id: session_id.to_owned(),
                model_id: model_id.clone(),
                at: now.ms,
            };
            self.write(
                session_id,
                Write {
                    op,
                    then: AfterWrite::Model { socket, model_id },
                },
                now,
            );
        } else {
            // Not stored yet: the model is stored with the session's first message.
            self.model_changed(session_id, &model_id, now);
        }
    }

    pub(super) fn model_changed(&mut self, session_id: &str, model_id: &str, now: Now) {
        if !self.sessions.contains_key(session_id) {
            return;
        }
        let content = format!("Model changed to {model_id}");
        let frame = Outbound::system(Kind::ConnectionStatus, now.ms)
            .with_session(session_id)
            .with_content(&content)
            .with_model(model_id)
            .to_json();
        self.broadcast(Audience::Session(session_id.to_owned()), frame, None);
    }

    /// Stops the reply in progress, if any: the upstream request is cancelled and what
    /// arrived so far is stored as a stopped reply. A reply streaming in another process
    /// is asked to stop there; its end comes back as news.
    pub(super) fn stop(&mut self, session_id: &str, now: Now) {
        let Some(live) = self.sessions.get_mut(session_id) else {
            return;
        };
        if let Some(mirror) = live.reply.as_ref().filter(|r| r.mirror.is_some()) {
            self.news.push(News::Stop {
                session_id: session_id.to_owned(),
                message_id: mirror.message_id.clone(),
            });
            return;
        }
        let Some(reply) = live.reply.take() else {
            return;
        };
        self.tell_ended(session_id, &reply, Some("stopped"));
        self.out.push(Effect::Cancel(reply.job));
        self.conclude(session_id, reply, Some("stopped"), None, now);
    }
}
