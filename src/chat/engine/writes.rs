//! Store writes: one at a time per session, in order, and what follows each (a user
//! message is acknowledged only once it is stored).

use super::*;

impl Chat {
    /// Queues a write; writes of one session run one at a time, in order.
    pub(super) fn write(&mut self, session_id: &str, write: Write) {
        if let Some(live) = self.sessions.get_mut(session_id) {
            live.writes.push_back(write);
        }
        self.next_write(session_id);
    }

    pub(super) fn next_write(&mut self, session_id: &str) {
        let write = match self.sessions.get_mut(session_id) {
            Some(live) if live.writing.is_none() => live.writes.pop_front(),
            _ => None,
        };
        let Some(write) = write else {
            return;
        };
        let id = self.spawn(Work::Store(write.op));
        if let Some(live) = self.sessions.get_mut(session_id) {
            live.writing = Some(id);
        }
        self.pending.insert(
            id,
            Pending::Write {
                session_id: session_id.to_owned(),
                then: write.then,
            },
        );
    }

    pub(super) fn written(
        &mut self,
        session_id: &str,
        then: AfterWrite,
        result: Result<StoreReply, WriteError>,
        now: Now,
    ) {
        if let Some(live) = self.sessions.get_mut(session_id) {
            live.writing = None;
            if result.is_ok() {
                live.stored = true;
            }
        }
        // Only appends write a session into existence, so the first message is its birth.
        if matches!(result, Ok(StoreReply::Appended(1))) {
            self.tally.sessions_created += 1;
        }
        match then {
            AfterWrite::UserMessage { socket, message } => {
                self.user_message_stored(socket, session_id, message, result, now)
            }
            AfterWrite::Reply => {
                if let Err(error) = result {
                    log::error!(
                        "session {session_id}: a reply could not be stored: {}",
                        describe(&error)
                    );
                }
            }
            AfterWrite::Model { socket, model_id } => match result {
                Ok(_) => self.model_changed(session_id, &model_id, now),
                Err(error) => self.write_failed(socket, session_id, &error, now),
            },
        }
        self.next_write(session_id);
        self.evict_if_idle(session_id);
    }

    pub(super) fn user_message_stored(
        &mut self,
        socket: ConnId,
        session_id: &str,
        message: Message,
        result: Result<StoreReply, WriteError>,
        now: Now,
    ) {
        let context = self.settings.context_messages;
        let Some(live) = self.sessions.get_mut(session_id) else {
            return;
        };
        if let Err(error) = result {
            live.message_count = live.message_count.saturating_sub(1);
            self.write_failed(socket, session_id, &error, now);
            return;
        }
        live.remember(Sender::User, message.content.clone(), context);
        let message_id = message.id.as_deref().unwrap_or_default();
        let mut echo = Outbound::new(Kind::UserMessage, Sender::User, message.at)
            .with_session(session_id)
            .with_user(&live.owner)
            .with_content(&message.content);
        for (key, value) in &message.meta {
            echo = echo.with_meta(key, value);
        }
        let echo = echo.with_meta("message_id", message_id).to_json();
        for &other in live.sockets.iter().filter(|&&s| s != socket) {
            self.out.push(Effect::Send(other, echo.clone()));
        }
        let loading = Outbound::system(Kind::Loading, now.ms)
            .with_session(session_id)
            .with_meta("message_id", message_id)
            .to_json();
        if self.hub.get(socket).is_some() {
            self.out.push(Effect::Send(socket, loading));
        }
        if live.reply.is_some() {
            live.turn_waiting = Some(socket);
        } else {
            self.start_reply(session_id, socket, now);
        }
    }

    pub(super) fn write_failed(
        &mut self,
        socket: ConnId,
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
        id: JobId,
        result: Result<StoreReply, WriteError>,
        now: Now,
    ) {
        let Some(pending) = self.pending.remove(&id) else {
            return;
        };
        match pending {
            Pending::Resolve { socket } => self.resolved(socket, result, now),
            Pending::Load { socket, session_id } => self.loaded(socket, session_id, result, now),
            Pending::Write { session_id, then } => self.written(&session_id, then, result, now),
            Pending::Sweep => match result {
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
            Pending::Reply { session_id } => {
                // Not a store job; put it back untouched.
                self.pending.insert(id, Pending::Reply { session_id });
            }
        }
    }
}

pub(super) fn describe(error: &WriteError) -> String {
    match error {
        WriteError::Busy => "store lane busy".to_owned(),
        WriteError::Store(error) => error.to_string(),
    }
}
