//! Sockets coming and going: which session a new socket starts on, moving a socket
//! between the user's sessions, and the frames a socket sends while a lookup runs.

use super::*;

impl Chat {
    pub(super) fn connected(
        &mut self,
        socket: SocketId,
        user: User,
        requested: Option<String>,
        resume: Resume,
        now: Now,
    ) {
        let user_id = user.id.clone();
        if self.hub.sockets_of(&user_id).is_empty() {
            self.listening
                .push((Audience::User(user_id.to_string()), true));
        }
        if user.admin && self.hub.admins().is_empty() {
            self.listening.push((Audience::Admins, true));
        }
        self.hub.connect(socket, user, resume);
        if let Some(id) = &requested {
            match self.sessions.get(id.as_str()) {
                Some(live) if live.owner == user_id && !live.ended => {
                    let id = id.clone();
                    self.bind(socket, &id, now);
                    return;
                }
                // Someone else's (or ended): a fresh session, without saying which.
                Some(_) => {
                    self.bind_fresh(socket, now);
                    return;
                }
                None => {}
            }
        }
        if let Some(state) = self.hub.get_mut(socket) {
            state.held = Some(Box::default());
        }
        let resolve = StoreOp::Resolve {
            user_id: user_id.to_string(),
            requested,
            history: self.settings.chat.context_messages,
        };
        self.spawn(Work::Store(resolve), Continuation::Resolve { socket });
    }

    pub(super) fn closed(&mut self, socket: SocketId, now: Now) {
        if let Some(state) = self.hub.disconnect(socket) {
            if self.hub.sockets_of(&state.user.id).is_empty() {
                self.listening
                    .push((Audience::User(state.user.id.to_string()), false));
            }
            if state.user.admin && self.hub.admins().is_empty() {
                self.listening.push((Audience::Admins, false));
            }
            if let Some(session_id) = state.session {
                self.unbind(socket, &session_id, now);
            }
        }
    }

    pub(super) fn flushed(&mut self, socket: SocketId, now: Now) {
        let Some(state) = self.hub.get_mut(socket) else {
            return;
        };
        if let Some(delivery) = &mut state.delivery {
            delivery.awaiting_flush = false;
        }
        let Some(session_id) = state.session.clone() else {
            return;
        };
        if let Some(live) = self.sessions.get(&session_id) {
            if let Some(reply) = &live.reply {
                deliver(&mut self.hub, &mut self.out, socket, &live.id, reply, now);
            }
        }
    }

    /// Binds a socket to a session it may use, and tells it so; a socket binding while
    /// a reply streams first gets what it missed.
    pub(super) fn bind(&mut self, socket: SocketId, session_id: &str, now: Now) {
        let Some(state) = self.hub.get_mut(socket) else {
            return;
        };
        // The id the session in memory holds, shared rather than copied.
        let shared = self.sessions.get(session_id).map(|live| live.id.clone());
        let previous = state
            .session
            .replace(shared.unwrap_or_else(|| session_id.into()));
        if previous.as_deref() == Some(session_id) {
            return;
        }
        state.delivery = None;
        let resume = state.take_resume();
        let user_id = state.user.id.clone();
        if let Some(previous) = previous {
            self.unbind(socket, &previous, now);
        }
        let Some(live) = self.sessions.get_mut(session_id) else {
            return;
        };
        live.sockets.push(socket);
        live.orphaned_since = None;
        let model_id = effective_model(live, &self.settings);
        let status = Outbound::system(Kind::ConnectionStatus, now.ms)
            .with_session(session_id)
            .with_user(&user_id)
            .with_content("Connected")
            .with_models(&self.settings.models)
            .with_model(model_id)
            .to_json();
        self.out.push(Effect::Send(socket, status));
        replay(&mut self.hub, &mut self.out, socket, live, &resume, now);
        // Nothing here to resume from yet: the reply stream may have it
        // (`engine/resume.rs`), and the socket keeps where it left off until then.
        if self.shared && live.reply.is_none() && live.rare().finished.is_none() {
            if let Some(state) = self.hub.get_mut(socket) {
                state.keep_resume(resume);
            }
        }
    }

    pub(super) fn bind_fresh(&mut self, socket: SocketId, now: Now) -> Option<Id> {
        let owner = self.hub.get(socket)?.user.id.clone();
        let id = Id::from(ids::random_id());
        self.hold(&id, || Live::fresh(id.clone(), owner));
        self.bind(socket, &id, now);
        Some(id)
    }

    pub(super) fn unbind(&mut self, socket: SocketId, session_id: &str, now: Now) {
        if let Some(live) = self.sessions.get_mut(session_id) {
            live.sockets.remove(socket);
            if live.sockets.is_empty() {
                live.orphaned_since = Some(now.at);
            }
        }
        self.evict_if_idle(session_id);
    }

    /// Takes a session out of memory when nothing needs it there, or else gives back
    /// what of it is no longer in use.
    pub(super) fn evict_if_idle(&mut self, session_id: &str) {
        if self
            .sessions
            .get(session_id)
            .is_some_and(|l| self.evictable(l))
        {
            self.release(session_id);
        } else if let Some(live) = self.sessions.get_mut(session_id) {
            live.tidy();
        }
    }

    /// Handles the frames a socket sent while its session was being looked up, until
    /// one of them starts another lookup.
    pub(super) fn release_held(&mut self, socket: SocketId, now: Now) {
        let Some(mut queue) = self.hub.get_mut(socket).and_then(|s| s.held.take()) else {
            return;
        };
        while let Some(text) = queue.pop_front() {
            self.frame(socket, &text, now);
            match self.hub.get_mut(socket) {
                None => return,
                Some(state) => {
                    if let Some(held) = &mut state.held {
                        held.extend(queue.drain(..));
                        return;
                    }
                }
            }
        }
    }

    pub(super) fn resolved(
        &mut self,
        socket: SocketId,
        result: Result<StoreReply, WriteError>,
        now: Now,
    ) {
        let Some(user_id) = self.hub.get(socket).map(|s| s.user.id.clone()) else {
            return;
        };
        let found = match result {
            Ok(StoreReply::Found(found)) => found,
            Ok(_) => None,
            Err(error) => {
                log::warn!(
                    "socket {socket:?}: looking up the session failed ({}); starting a fresh one",
                    describe(&error)
                );
                None
            }
        };
        if let Some(state) = self.hub.get_mut(socket) {
            state.held = None;
        }
        match found.filter(|t| *t.session.user_id == *user_id && t.session.is_active()) {
            Some(transcript) => {
                let id = transcript.session.id.clone();
                let context = self.settings.chat.context_messages;
                self.hold(&id, || Live::from_store(*transcript, context));
                self.bind(socket, &id, now);
            }
            None => {
                self.bind_fresh(socket, now);
            }
        }
        self.release_held(socket, now);
    }

    pub(super) fn loaded(
        &mut self,
        socket: SocketId,
        session_id: String,
        result: Result<StoreReply, WriteError>,
        now: Now,
    ) {
        let Some(user) = self.hub.get(socket).map(|s| s.user.clone()) else {
            return;
        };
        let user_id = user.id;
        let found = match result {
            // Only the session asked for counts: the core never trusts a store answer
            // enough to put one session's sockets on another.
            Ok(StoreReply::Found(found)) => Ok(found.filter(|t| t.session.id == session_id)),
            Ok(_) => Ok(None),
            Err(error) => Err(error),
        };
        let held = self
            .hub
            .get_mut(socket)
            .and_then(|state| state.held.take())
            .map(|held| *held)
            .unwrap_or_default();
        let bound = self.hub.get(socket).and_then(|s| s.session.clone());
        let assists = |t: &Transcript| {
            let holder = t.session.assisting_admin.as_ref();
            user.admin && holder.is_some_and(|admin| *admin.id == *user_id)
        };
        match found {
            // The admin assisting someone else's session: in memory now, the frame goes
            // back to `admin_frame`; the socket stays where it is.
            Ok(Some(t))
                if *t.session.user_id != *user_id && assists(&t) && t.session.is_active() =>
            {
                let context = self.settings.chat.context_messages;
                self.hold(&session_id, || Live::from_store(*t, context));
                self.requeue(socket, held, 0, now);
            }
            Ok(Some(t)) if *t.session.user_id != *user_id => {
                self.unauthorized(socket, bound.as_deref(), now);
                self.requeue(socket, held, 1, now);
            }
            Ok(Some(t)) if t.session.is_active() => {
                let context = self.settings.chat.context_messages;
                self.hold(&session_id, || Live::from_store(*t, context));
                self.requeue(socket, held, 0, now);
            }
            // Unknown or ended: a fresh session under a new id; the frames that named
            // the old id go there.
            Ok(_) => {
                if let Some(fresh) = self.bind_fresh(socket, now) {
                    self.alias(socket, session_id, fresh.to_string());
                }
                self.requeue(socket, held, 0, now);
            }
            Err(error) => {
                let (code, message) = match error {
                    WriteError::Busy => (code::SERVICE_ERROR, BUSY),
                    WriteError::Store(error) => {
                        log::warn!("loading session {session_id} failed: {error}");
                        (code::DATABASE_ERROR, "Database operation failed")
                    }
                };
                self.error(socket, bound.as_deref(), code, message, now);
                self.requeue(socket, held, 1, now);
            }
        }
    }

    /// Puts held frames back (dropping the first `answered`) and handles them.
    pub(super) fn requeue(
        &mut self,
        socket: SocketId,
        mut held: VecDeque<String>,
        answered: usize,
        now: Now,
    ) {
        held.drain(..answered.min(held.len()));
        if let Some(state) = self.hub.get_mut(socket) {
            state.held = Some(Box::new(held));
        }
        self.release_held(socket, now);
    }
}
