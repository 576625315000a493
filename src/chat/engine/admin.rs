//! Admins in a session: taking it over and handing it back (by frame or over HTTP),
//! their messages and typing while they assist, and the user's typing relayed to them.
//! An admin socket is not bound to the sessions it assists: what it must see is
//! addressed to the session (which includes its assisting admin's sockets), so one
//! admin socket watches every session its admin assists.

use super::frames::Budget;
use super::*;
use crate::store::AssistingAdmin;

/// Bytes of an admin's name shown in the join and leave frames.
const ADMIN_NAME_MAX: usize = 100;

impl Chat {
    /// An admin asks to take a session over or hand it back: at once when the session
    /// is in memory, else once the store has it.
    pub(super) fn takeover(&mut self, takeover: Takeover, now: Now) {
        if self.sessions.contains_key(takeover.session_id.as_str()) {
            self.assist(takeover, now);
            return;
        }
        let load = StoreOp::Load {
            session_id: takeover.session_id.clone(),
            history: self.settings.chat.context_messages,
        };
        self.spawn(
            Work::Store(load),
            Continuation::Takeover(Box::new(takeover)),
        );
    }

    pub(super) fn takeover_loaded(
        &mut self,
        takeover: Takeover,
        result: Result<StoreReply, WriteError>,
        now: Now,
    ) {
        match result {
            Ok(StoreReply::Found(Some(found))) if found.session.id == takeover.session_id => {
                let context = self.settings.chat.context_messages;
                self.hold(&takeover.session_id, || Live::from_store(*found, context));
                let session_id = takeover.session_id.clone();
                self.assist(takeover, now);
                self.evict_if_idle(&session_id);
            }
            Ok(_) => self.answer(&takeover, Answer::NotFound, now),
            Err(error) => {
                log::warn!(
                    "session {}: loading it for an admin failed: {}",
                    takeover.session_id,
                    describe(&error)
                );
                self.answer(&takeover, Answer::Failed, now);
            }
        }
    }

    /// Changes who assists, in memory at once (a second admin is refused from now on)
    /// and then in the store; the session hears of it once it is stored.
    fn assist(&mut self, takeover: Takeover, now: Now) {
        let Some(live) = self.sessions.get_mut(takeover.session_id.as_str()) else {
            return self.answer(&takeover, Answer::NotFound, now);
        };
        if live.ended {
            return self.answer(&takeover, Answer::Ended, now);
        }
        match &live.rare().assisting {
            Some(holder) if holder.id != takeover.admin.id => {
                let holder = holder.name.clone();
                return self.answer(&takeover, Answer::Held(holder), now);
            }
            // Already so: nothing to store or tell.
            Some(_) if takeover.join => return self.answer(&takeover, Answer::Done, now),
            None if !takeover.join => return self.answer(&takeover, Answer::Done, now),
            _ => {}
        }
        live.rare_mut().assisting = takeover.join.then(|| takeover.admin.clone());
        if takeover.join {
            self.help.answered(&takeover.session_id);
        }
        let op = StoreOp::SetAssist {
            session_id: takeover.session_id.clone(),
            admin: live.rare().assisting.clone(),
            at: now.ms,
        };
        let session_id = takeover.session_id.clone();
        let then = AfterWrite::Assist(Box::new(takeover));
        self.write(&session_id, Write { op, then }, now);
    }

    pub(super) fn assist_stored(
        &mut self,
        takeover: Takeover,
        result: Result<StoreReply, WriteError>,
        now: Now,
    ) {
        let Takeover {
            admin,
            session_id,
            join,
            ..
        } = &takeover;
        let refused = match result {
            Ok(StoreReply::Updated(true)) => None,
            Ok(StoreReply::Held(holder)) => Some(Answer::Held(holder.name)),
            // Only a stored session can be taken over: one not written yet has no id
            // an admin could have found.
            Ok(_) => Some(Answer::NotFound),
            Err(error) => {
                log::warn!(
                    "session {session_id}: storing the admin change failed: {}",
                    describe(&error)
                );
                Some(Answer::Failed)
            }
        };
        if let Some(answer) = refused {
            // Undone unless someone changed it since.
            if let Some(live) = self.sessions.get_mut(session_id.as_str()) {
                match (&live.rare().assisting, join) {
                    (Some(holder), true) if holder.id == admin.id => {
                        live.rare_mut().assisting = None
                    }
                    (None, false) => live.rare_mut().assisting = Some(admin.clone()),
                    _ => {}
                }
            }
            return self.answer(&takeover, answer, now);
        }
        let name = truncate(&admin.name, ADMIN_NAME_MAX);
        let (kind, content) = if *join {
            self.tally.takeovers += 1;
            let content = format!("Administrator {name} has joined the session");
            (Kind::AdminJoin, content)
        } else {
            (
                Kind::AdminLeave,
                format!("Administrator {name} has left the session"),
            )
        };
        let frame = Outbound::new(kind, Sender::Admin, now.ms)
            .with_session(session_id)
            .with_content(&content)
            .with_meta("admin_id", &admin.id)
            .with_meta("admin_name", name)
            .to_json();
        if self.shared {
            self.news.push(News::Assist {
                session_id: session_id.clone(),
                admin_id: join.then(|| admin.id.clone()),
                admin_name: join.then(|| admin.name.clone()),
            });
        }
        if !*join {
            // No longer part of the session's audience, the admin still hears it left.
            self.broadcast(Audience::User(admin.id.clone()), frame.clone(), None);
        }
        self.broadcast(Audience::Session(session_id.clone()), frame, None);
        self.answer(&takeover, Answer::Done, now);
    }

    /// Tells whoever asked: an HTTP request its answer, a socket an `error` frame when
    /// it was refused (when it was not, the session's frame is its answer).
    fn answer(&mut self, takeover: &Takeover, answer: Answer, now: Now) {
        let socket = match takeover.by {
            Asker::Request(request) => {
                self.out.push(Effect::Answer(request, answer));
                return;
            }
            Asker::Socket(socket) => socket,
        };
        let (code, message) = match answer {
            Answer::Done => return,
            Answer::NotFound => (code::NOT_FOUND, "Session not found".to_owned()),
            Answer::Ended => (code::NOT_FOUND, "Session has ended".to_owned()),
            Answer::Held(name) => (
                code::UNAUTHORIZED,
                format!(
                    "Session is already assisted by administrator {}",
                    truncate(&name, ADMIN_NAME_MAX)
                ),
            ),
            Answer::Failed => (code::DATABASE_ERROR, "Database operation failed".to_owned()),
        };
        self.error(socket, Some(&takeover.session_id), code, message, now);
    }

    /// An admin socket's frames that are about a session of someone else: returned
    /// untouched when the frame is the socket's own business (its own chat).
    pub(super) fn admin_frame(
        &mut self,
        socket: SocketId,
        inbound: Inbound,
        now: Now,
    ) -> Option<Inbound> {
        let admin = match self.hub.get(socket) {
            Some(state) if state.user.admin => AssistingAdmin {
                id: state.user.id.to_string(),
                name: state.user.name.to_string(),
            },
            _ => return Some(inbound),
        };
        let Some(session_id) = inbound.session_id.clone() else {
            if matches!(inbound.kind, Kind::AdminJoin | Kind::AdminLeave) {
                let missing = "Required field missing: session_id";
                self.error(socket, None, code::MISSING_FIELD, missing, now);
                return None;
            }
            return Some(inbound);
        };
        if let Kind::AdminJoin | Kind::AdminLeave = inbound.kind {
            if self.within_budget(socket, Some(&session_id), Budget::Controls, now) {
                let join = inbound.kind == Kind::AdminJoin;
                let by = Asker::Socket(socket);
                let takeover = Takeover {
                    by,
                    admin,
                    session_id,
                    join,
                };
                self.takeover(takeover, now);
            }
            return None;
        }
        // A session not in memory goes the usual way: its lookup lets the assisting
        // admin in (`loaded`), and the frame comes back here.
        let Some(live) = self.sessions.get(session_id.as_str()) else {
            return Some(inbound);
        };
        if *live.owner == *admin.id
            || !matches!(inbound.kind, Kind::UserMessage | Kind::TypingIndicator)
        {
            return Some(inbound);
        }
        match &live.rare().assisting {
            Some(holder) if holder.id == admin.id => {}
            Some(holder) => {
                let message = format!(
                    "Session is already assisted by administrator {}",
                    truncate(&holder.name, ADMIN_NAME_MAX)
                );
                self.error(socket, Some(&session_id), code::UNAUTHORIZED, message, now);
                return None;
            }
            None => {
                self.unauthorized(socket, None, now);
                return None;
            }
        }
        if inbound.kind == Kind::UserMessage {
            self.admin_message(socket, &session_id, &admin, inbound, now);
        } else if self.within_budget(socket, Some(&session_id), Budget::Controls, now) {
            let frame = typing_frame(&session_id, Sender::Admin, &inbound, now);
            self.broadcast(Audience::Session(session_id), frame, Some(socket));
        }
        None
    }

    /// The assisting admin's message: stored with sender `admin`, then sent to the
    /// session (see `user_message_stored`); the assistant is not asked.
    fn admin_message(
        &mut self,
        socket: SocketId,
        session_id: &str,
        admin: &AssistingAdmin,
        inbound: Inbound,
        now: Now,
    ) {
        let Some((content, message_id)) =
            self.admit_message(socket, session_id, inbound.content, now)
        else {
            return;
        };
        let mut message = Message::new(message_id, Sender::Admin, content, now.ms);
        message.meta.insert("admin_id".to_owned(), admin.id.clone());
        message
            .meta
            .insert("admin_name".to_owned(), admin.name.clone());
        self.store_message(socket, session_id, message, Kind::UserMessage, now);
    }

    /// The user typing: relayed to the assisting admin, if any; never stored.
    pub(super) fn user_typing(
        &mut self,
        socket: SocketId,
        session_id: &str,
        inbound: &Inbound,
        now: Now,
    ) {
        let Some(admin) = self
            .sessions
            .get(session_id)
            .and_then(|l| l.rare().assisting.clone())
        else {
            return;
        };
        if self.within_budget(socket, Some(session_id), Budget::Controls, now) {
            let frame = typing_frame(session_id, Sender::User, inbound, now);
            self.broadcast(Audience::User(admin.id), frame, None);
        }
    }
}

fn typing_frame(session_id: &str, sender: Sender, inbound: &Inbound, now: Now) -> String {
    let typing = match inbound.metadata.get("typing").map(String::as_str) {
        Some("false") => "false",
        _ => "true",
    };
    Outbound::new(Kind::TypingIndicator, sender, now.ms)
        .with_session(session_id)
        .with_meta("typing", typing)
        .to_json()
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
