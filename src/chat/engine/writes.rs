//! Store writes: one at a time per session, in order, and what follows each (a user
//! message is acknowledged only once it is stored).

use super::*;

impl Chat {
    /// Queues a user's write (a reply's is queued by `conclude`, never refused); writes
    /// of one session run one at a time, in order.
    pub(super) fn write(&mut self, session_id: &str, write: Write, now: Now) {
        let Some(live) = self.sessions.get_mut(session_id) else {
            return;
        };
        if live.rare().parked.is_some() {
            // The store just failed this session's reply: answer now, rather than hold
            // the user's message behind it for as long as the store is down.
            self.after_write(session_id, write.then, Err(waiting_reply()), None, now);
            return;
        }
        if let Some(queued) = live
            .rare_mut()
            .writes
            .back_mut()
            .filter(|q| write.supersedes(q))
        {
            // The superseded choice is answered by this one's answer: every socket of the
            // session hears the model that was stored.
            *queued = write;
            return;
        }
        if live.rare().writes.len() >= WRITES_QUEUED_MAX {
            self.after_write(session_id, write.then, Err(WriteError::Busy), None, now);
            return;
        }
        live.rare_mut().writes.push_back(write);
        self.next_write(session_id);
    }

    pub(super) fn next_write(&mut self, session_id: &str) {
        let write = match self.sessions.get_mut(session_id) {
            Some(live) if live.rare().writing.is_none() && live.rare().parked.is_none() => {
                live.rare_held().and_then(|rare| rare.writes.pop_front())
            }
            _ => None,
        };
        if let Some(write) = write {
            self.start_write(session_id, write.op, write.then);
        }
    }

    /// Sends a write to the store; a reply's is kept, to be parked if it fails.
    pub(super) fn start_write(&mut self, session_id: &str, op: StoreOp, then: AfterWrite) {
        let retry = matches!(then, AfterWrite::Reply).then(|| Box::new(op.clone()));
        let then = Continuation::Write {
            session_id: session_id.to_owned(),
            then,
            retry,
        };
        let id = self.spawn(Work::Store(op), then);
        if let Some(live) = self.sessions.get_mut(session_id) {
            live.rare_mut().writing = Some(id);
        }
    }

    pub(super) fn written(
        &mut self,
        session_id: &str,
        then: AfterWrite,
        result: Result<StoreReply, WriteError>,
        retry: Option<Box<StoreOp>>,
        now: Now,
    ) {
        if let Some(live) = self.sessions.get_mut(session_id) {
            if let Some(rare) = live.rare_held() {
                rare.writing = None;
            }
            if result.is_ok() {
                live.stored = true;
            }
        }
        // Only appends write a session into existence, so the first message is its birth.
        if matches!(result, Ok(StoreReply::Appended(1))) {
            self.tally.sessions_created += 1;
        }
        self.after_write(session_id, then, result, retry, now);
        self.next_write(session_id);
        self.evict_if_idle(session_id);
    }

    fn after_write(
        &mut self,
        session_id: &str,
        then: AfterWrite,
        result: Result<StoreReply, WriteError>,
        retry: Option<Box<StoreOp>>,
        now: Now,
    ) {
        match then {
            AfterWrite::UserMessage {
                socket,
                message,
                kind,
            } => self.user_message_stored(socket, session_id, (*message, kind), result, now),
            AfterWrite::Reply => match result {
                Ok(_) => {
                    let live = self.sessions.get_mut(session_id);
                    let parked = live.and_then(|live| live.rare_held()?.parked.take());
                    if parked.is_some() {
                        log::info!("session {session_id}: the reply that waited is stored");
                    }
                }
                Err(error) => self.reply_write_failed(session_id, retry, &error, now),
            },
            AfterWrite::Model { socket, model_id } => match result {
                Ok(_) => self.model_changed(session_id, &model_id, now),
                Err(error) => self.write_failed(socket, session_id, &error, now),
            },
            AfterWrite::Assist(takeover) => self.assist_stored(*takeover, result, now),
            AfterWrite::HelpRequested { socket } => match result {
                Ok(_) => self.help_recorded(socket, session_id, now),
                Err(error) => self.write_failed(socket, session_id, &error, now),
            },
        }
    }

    /// Parks a reply whose write failed for a reason that passes; anything else
    /// (the session is not the user's, or full) will not change by trying again.
    fn reply_write_failed(
        &mut self,
        session_id: &str,
        retry: Option<Box<StoreOp>>,
        error: &WriteError,
        now: Now,
    ) {
        let passing = matches!(
            error,
            WriteError::Busy | WriteError::Store(StoreError::Unavailable(_))
        );
        let live = self.sessions.get_mut(session_id);
        let (Some(op), true, Some(live)) = (retry, passing, live) else {
            log::error!(
                "session {session_id}: a reply could not be stored: {}",
                describe(error)
            );
            return;
        };
        let failures = live
            .rare()
            .parked
            .as_ref()
            .map_or(0, |parked| parked.failures)
            + 1;
        let retry_at = now.at + Parked::wait(failures);
        if failures == 1 {
            log::warn!(
                "session {session_id}: a reply could not be stored ({}); trying again until it is",
                describe(error)
            );
        }
        live.rare_mut().parked = Some(Parked {
            op: *op,
            failures,
            retry_at,
        });
        self.out.push(Effect::Timer(retry_at));
        // What queued behind the reply is answered now, as `write` answers what comes
        // later; other replies keep their place.
        let rare = live.rare_mut();
        let (replies, refused) = std::mem::take(&mut rare.writes)
            .into_iter()
            .partition(|write| matches!(write.then, AfterWrite::Reply));
        rare.writes = replies;
        for write in refused {
            self.after_write(session_id, write.then, Err(waiting_reply()), None, now);
        }
    }

    /// Tries the parked replies whose wait is over.
    pub(super) fn retry_parked(&mut self, now: Now) {
        let due: Vec<(Id, StoreOp)> = self
            .sessions
            .values()
            .filter(|live| live.rare().writing.is_none())
            .filter_map(|live| live.rare().parked.as_ref().map(|parked| (live, parked)))
            .filter(|(_, parked)| parked.retry_at <= now.at)
            .map(|(live, parked)| (live.id.clone(), parked.op.clone()))
            .collect();
        for (session_id, op) in due {
            self.start_write(&session_id, op, AfterWrite::Reply);
        }
    }

    /// A person's message is stored: it goes to the session's other sockets (a file to
    /// all of them, the sender's as its acknowledgement), and the assistant answers it
    /// unless an admin assists or it is a file.
    pub(super) fn user_message_stored(
        &mut self,
        socket: SocketId,
        session_id: &str,
        (message, kind): (Message, Kind),
        result: Result<StoreReply, WriteError>,
        now: Now,
    ) {
        let context = self.settings.chat.context_messages;
        let Some(live) = self.sessions.get_mut(session_id) else {
            return;
        };
        if let Err(error) = result {
            live.message_count = live.message_count.saturating_sub(1);
            self.write_failed(socket, session_id, &error, now);
            return;
        }
        // What the assistant is sent later: a file alone says nothing to it, a voice
        // note is its link; other pods keep the same conversation.
        let remembered = match (kind, message.file_url.as_deref()) {
            (Kind::FileUpload, _) => None,
            (Kind::VoiceMessage, Some(url)) => Some(files::voice_prompt(url)),
            _ => Some(message.content.clone()),
        };
        if let Some(content) = remembered {
            if self.shared {
                self.news.push(News::Said {
                    session_id: session_id.to_owned(),
                    sender: message.sender.as_str().to_owned(),
                    content: content.clone(),
                });
            }
            live.remember(message.sender, content, context);
        }
        let assisted = live.rare().assisting.is_some();
        let message_id = message.id.as_deref().unwrap_or_default();
        let mut echo = Outbound::new(kind, message.sender, message.at)
            .with_session(session_id)
            .with_user(&live.owner)
            .with_content(&message.content)
            .with_files(message.file_id.as_deref(), message.file_url.as_deref());
        for (key, value) in &message.meta {
            echo = echo.with_meta(key, value);
        }
        let echo = echo.with_meta("message_id", message_id).to_json();
        let session = Audience::Session(session_id.to_owned());
        if message.sender == Sender::Admin || kind == Kind::FileUpload {
            // The admin's own socket gets it too: its `message_id` says it is stored.
            self.broadcast(session, echo, None);
            return;
        }
        self.broadcast(session, echo, Some(socket));
        if assisted {
            // The admin answers, not the assistant.
            return;
        }
        let loading = Outbound::system(Kind::Loading, now.ms)
            .with_session(session_id)
            .with_meta("message_id", message_id)
            .to_json();
        if self.hub.get(socket).is_some() {
            self.out.push(Effect::Send(socket, loading));
        }
        let Some(live) = self.sessions.get_mut(session_id) else {
            return;
        };
        if live.reply.is_some() {
            live.rare_mut().turn_waiting = Some(socket);
        } else {
            self.begin_turn(session_id, socket, now);
        }
    }

    pub(super) fn write_failed(
        &mut self,
        socket: SocketId,
        session_id: &str,
        error: &WriteError,
        now: Now,
    ) {
        let (code, message) = match error {
            WriteError::Busy => (code::SERVICE_ERROR, BUSY),
            WriteError::Store(StoreError::SessionFull) => (code::SERVICE_ERROR, SESSION_FULL),
            WriteError::Store(StoreError::NotOwner) => {
                self.unauthorized(socket, Some(session_id), now);
                return;
            }
            WriteError::Store(other) => {
                log::warn!("session {session_id}: store write failed: {other}");
                (code::DATABASE_ERROR, "Database operation failed")
            }
        };
        self.error(socket, Some(session_id), code, message, now);
    }

    pub(super) fn store_done(
        &mut self,
        then: Continuation,
        result: Result<StoreReply, WriteError>,
        now: Now,
    ) {
        match then {
            Continuation::Resolve { socket } => self.resolved(socket, result, now),
            Continuation::Load { socket, session_id } => {
                self.loaded(socket, session_id, result, now)
            }
            Continuation::Write {
                session_id,
                then,
                retry,
            } => self.written(&session_id, then, result, retry, now),
            Continuation::Sweep => match result {
                Ok(StoreReply::Ended(ids)) => {
                    if !ids.is_empty() {
                        log::info!("idle sweep ended {} session(s)", ids.len());
                    }
                    for id in ids {
                        self.end_session(&id, now);
                    }
                }
                Ok(_) => {}
                Err(error) => log::warn!("idle sweep failed: {}", describe(&error)),
            },
            Continuation::Takeover(takeover) => self.takeover_loaded(*takeover, result, now),
            Continuation::FileUrl {
                socket,
                session_id,
                frame,
            } => self.file_url_checked(socket, &session_id, *frame, result, now),
            Continuation::Reply { .. } | Continuation::Nothing => {}
        }
    }
}

/// Why a write is refused while its session's reply is parked.
fn waiting_reply() -> WriteError {
    WriteError::Store(StoreError::Unavailable(
        "the session's last reply waits for the store".into(),
    ))
}

pub(super) fn describe(error: &WriteError) -> String {
    match error {
        WriteError::Busy => "store lane busy".to_owned(),
        WriteError::Store(error) => error.to_string(),
    }
}
