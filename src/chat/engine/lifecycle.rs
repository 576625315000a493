//! Sessions ending, time passing (the idle sweep, expiries) and shutdown.

use super::*;

impl Chat {
    /// Tells every socket of an ended session, and closes them: a client starts a new
    /// session by reconnecting. Called only for sessions the store has just ended, so
    /// each is counted once; the other processes holding it hear of it.
    pub(super) fn end_session(&mut self, session_id: &str, now: Now) {
        self.tally.sessions_ended += 1;
        self.stop(session_id, now);
        if self.shared {
            self.news.push(News::Ended {
                session_id: session_id.to_owned(),
            });
        }
        self.close_ended(session_id, now);
    }

    /// The sockets' side of a session ended here or in another process: each gets the
    /// final status and is closed, and the session leaves memory once idle.
    pub(super) fn close_ended(&mut self, session_id: &str, now: Now) {
        let Some(live) = self.sessions.get_mut(session_id) else {
            return;
        };
        live.ended = true;
        let sockets = std::mem::take(&mut live.sockets);
        let frame = Outbound::system(Kind::ConnectionStatus, now.ms)
            .with_session(session_id)
            .with_content("Session ended")
            .with_meta("ended", "true")
            .to_json();
        for &socket in &sockets {
            if let Some(state) = self.hub.get_mut(socket) {
                state.session = None;
                state.delivery = None;
            }
            self.out.push(Effect::Send(socket, frame.clone()));
            let (code, reason) = SESSION_ENDED;
            self.out.push(Effect::Close(socket, code, reason));
        }
        live.orphaned_since = Some(now.at);
        if let Some(rare) = live.rare_held() {
            rare.finished = None;
        }
        self.evict_if_idle(session_id);
    }

    pub(super) fn tick(&mut self, now: Now) {
        if now.at >= self.next_sweep {
            self.next_sweep = now.at + self.settings.chat.sweep_interval;
            let ttl = i64::try_from(self.settings.chat.session_ttl.as_millis()).unwrap_or(i64::MAX);
            let sweep = StoreOp::EndIdle {
                idle_before: now.ms.saturating_sub(ttl),
                at: now.ms,
            };
            self.spawn(Work::Store(sweep), Continuation::Sweep);
        }
        if now.at >= self.next_cleanup {
            self.next_cleanup = now.at + self.settings.chat.rate_cleanup;
            self.limiter.cleanup(now.at);
            self.controls.cleanup(now.at);
        }
        let keep = self.settings.chat.reconnect_timeout;
        let expired = |since: Option<Instant>| since.is_some_and(|t| t + keep <= now.at);
        let orphans: Vec<Id> = self
            .sessions
            .values()
            .filter(|live| {
                let here = live.reply.as_ref().is_some_and(|r| r.mirror.is_none());
                here && expired(live.orphaned_since)
            })
            .map(|live| live.id.clone())
            .collect();
        for id in orphans {
            log::info!("session {id}: nobody connected for {keep:?}; stopping its reply");
            self.stop(&id, now);
        }
        for live in self.sessions.values_mut() {
            if let Some(rare) = live.rare_held() {
                if expired(rare.finished.as_ref().map(|f| f.at)) {
                    rare.finished = None;
                }
            }
            live.tidy();
        }
        let idle: Vec<Id> = self
            .sessions
            .values()
            .filter(|live| self.evictable(live))
            .map(|live| live.id.clone())
            .collect();
        for id in idle {
            self.release(&id);
        }
        self.drop_silent_mirrors(now);
        self.lease_due(now);
        self.retry_parked(now);
        self.escalate(now);
        let stream_timeout = self.settings.stream_timeout;
        let next = self
            .sessions
            .values()
            .flat_map(|live| {
                let orphan = live.reply.as_ref().and(live.orphaned_since);
                let finished = live.rare().finished.as_ref().map(|f| f.at);
                let expiries = [orphan, finished].into_iter().flatten().map(|t| t + keep);
                let silent = live.reply.as_ref().and_then(|r| r.mirror);
                let expiries = expiries.chain(silent.map(|heard| heard + stream_timeout));
                // A parked reply being tried has no time of its own until it fails.
                let retry = live
                    .rare()
                    .parked
                    .as_ref()
                    .filter(|_| live.rare().writing.is_none());
                expiries.chain(retry.map(|parked| parked.retry_at))
            })
            .chain([self.next_sweep, self.next_cleanup])
            .chain(self.help_deadline())
            .chain(self.lease_deadline())
            .min()
            .unwrap_or(self.next_sweep);
        self.out.push(Effect::Timer(next));
    }

    pub(super) fn shutdown(&mut self, now: Now) {
        let streaming: Vec<Id> = self
            .sessions
            .values()
            .filter(|live| live.reply.as_ref().is_some_and(|r| r.mirror.is_none()))
            .map(|live| live.id.clone())
            .collect();
        for id in &streaming {
            self.stop(id, now);
        }
        let waiting: Vec<Id> = self
            .sessions
            .values()
            .filter(|live| live.rare().parked.is_some() || !live.rare().writes.is_empty())
            .map(|live| live.id.clone())
            .collect();
        for id in &waiting {
            self.hand_over(id);
        }
        if !streaming.is_empty() {
            log::info!(
                "shutdown: stopped {} streaming repl(ies); their text is being stored",
                streaming.len()
            );
        }
    }

    /// No loop will come back to start a session's next write once this one ends: the
    /// session starts its next write now (a parked reply first) and hands the rest over
    /// as one job that runs them in order after the write in flight, so that writes of
    /// a session stay one at a time and in order to the end.
    fn hand_over(&mut self, session_id: &str) {
        let Some(live) = self.sessions.get_mut(session_id) else {
            return;
        };
        // A parked reply being tried has that attempt as its last: another, beside it,
        // could store it twice.
        let rare = live.rare_mut();
        if let Some(parked) = rare.parked.take_if(|_| rare.writing.is_none()) {
            let reply = Write {
                op: parked.op,
                then: AfterWrite::Reply,
            };
            rare.writes.push_front(reply);
        }
        self.next_write(session_id);
        let Some(live) = self.sessions.get_mut(session_id) else {
            return;
        };
        let (Some(job), false) = (live.rare().writing, live.rare().writes.is_empty()) else {
            return;
        };
        let ops = live
            .rare_mut()
            .writes
            .drain(..)
            .map(|write| write.op)
            .collect();
        self.spawn(Work::After { job, ops }, Continuation::Nothing);
    }
}
