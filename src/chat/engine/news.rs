//! What other processes holding the same session must hear to keep their copy of it
//! current (several pods, `REDIS_URL`; docs/SCALE-OUT.md): who assists it, what was
//! said, and the reply streaming on one of them, which the others mirror to their own
//! sockets (coalesced per socket as usual, replayed to a socket that binds there
//! mid-stream). Collected only once [`Chat::share_sessions`] was called, so one pod on
//! its own pays nothing for it.

use serde::{Deserialize, Serialize};

use super::*;

/// A reply streaming in another process has no socket of this one behind it.
pub(super) const NOBODY: SocketId = SocketId(u64::MAX);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "news", rename_all = "snake_case")]
pub enum News {
    /// An admin began (`admin_id` set) or ceased to assist the session: its user's
    /// messages are (not) answered by the assistant.
    Assist {
        session_id: String,
        admin_id: Option<String>,
        admin_name: Option<String>,
    },
    /// A message was stored and belongs in the conversation the assistant is sent.
    Said {
        session_id: String,
        sender: String,
        content: String,
    },
    ReplyStarted {
        session_id: String,
        message_id: String,
        model_id: String,
    },
    /// `seq`: the chunk's number on the origin (0 from a version that did not send it):
    /// a pod that read the reply stream hears again the chunks the stream held.
    ReplyChunk {
        session_id: String,
        message_id: String,
        text: String,
        #[serde(default)]
        seq: u64,
    },
    /// `outcome`: `stopped` or `error`, as on the reply's final frame.
    ReplyEnded {
        session_id: String,
        message_id: String,
        outcome: Option<String>,
    },
    /// A socket elsewhere pressed stop: the process streaming the reply stops it.
    Stop {
        session_id: String,
        message_id: String,
    },
    /// The store ended the session (its user, an admin, or the idle sweep, on any
    /// process): every holder tells its sockets and closes them.
    Ended { session_id: String },
}

impl News {
    pub fn session_id(&self) -> &str {
        match self {
            News::Assist { session_id, .. }
            | News::Said { session_id, .. }
            | News::ReplyStarted { session_id, .. }
            | News::ReplyChunk { session_id, .. }
            | News::ReplyEnded { session_id, .. }
            | News::Stop { session_id, .. }
            | News::Ended { session_id } => session_id,
        }
    }

    /// Its name, for logs (never its content).
    pub fn kind(&self) -> &'static str {
        match self {
            News::Assist { .. } => "assist",
            News::Said { .. } => "said",
            News::ReplyStarted { .. } => "reply_started",
            News::ReplyChunk { .. } => "reply_chunk",
            News::ReplyEnded { .. } => "reply_ended",
            News::Stop { .. } => "stop",
            News::Ended { .. } => "ended",
        }
    }

    pub fn to_json(&self) -> String {
        // A derived enum of strings always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_json(text: &str) -> Option<News> {
        serde_json::from_str(text).ok()
    }
}

impl Chat {
    /// Another process may hold the same sessions: from now on, what changes in them
    /// is collected for [`Chat::take_news`].
    pub fn share_sessions(&mut self) {
        self.shared = true;
    }

    /// What changed in shared sessions since the last call, in order.
    pub fn take_news(&mut self) -> Vec<News> {
        std::mem::take(&mut self.news)
    }

    /// The news that a reply started here, for the other processes to mirror it.
    pub(super) fn tell_started(&mut self, session_id: &str) {
        if !self.shared {
            return;
        }
        let Some(reply) = self.sessions.get(session_id).and_then(|l| l.reply.as_ref()) else {
            return;
        };
        self.news.push(News::ReplyStarted {
            session_id: session_id.to_owned(),
            message_id: reply.message_id.clone(),
            model_id: reply.model_id.clone(),
        });
    }

    /// The news that a reply of this process ended; its lease goes back with it.
    pub(super) fn tell_ended(&mut self, session_id: &str, reply: &Reply, outcome: Option<&str>) {
        self.end_lease(session_id);
        if self.shared {
            self.news.push(News::ReplyEnded {
                session_id: session_id.to_owned(),
                message_id: reply.message_id.clone(),
                outcome: outcome.map(str::to_owned),
            });
        }
    }

    /// News from another process about a session; ignored unless it is in memory here.
    pub(super) fn heard(&mut self, news: News, now: Now) {
        let session_id = news.session_id().to_owned();
        let context = self.settings.chat.context_messages;
        let Some(live) = self.sessions.get_mut(session_id.as_str()) else {
            return;
        };
        if let News::Ended { .. } = news {
            // The process that ended it stopped a reply streaming there, and told the
            // one streaming elsewhere to stop (`stop` before this news): a mirror here
            // ends with the session, a reply streaming here stops and is stored.
            if live.reply.as_ref().is_some_and(|r| r.mirror.is_some()) {
                live.reply = None;
            }
            self.stop(&session_id, now);
            self.close_ended(&session_id, now);
            return;
        }
        match news {
            News::Assist {
                admin_id,
                admin_name,
                ..
            } => {
                live.rare_mut().assisting = admin_id.map(|id| AssistingAdmin {
                    id,
                    name: admin_name.unwrap_or_default(),
                });
                if live.rare().assisting.is_some() {
                    self.help.answered(&session_id);
                }
            }
            News::Said {
                sender, content, ..
            } => {
                if let Some(sender) = Sender::parse(&sender) {
                    live.remember(sender, content, context);
                }
            }
            News::ReplyStarted {
                message_id,
                model_id,
                ..
            } => {
                if live.reply.is_some() {
                    log::warn!(
                        "session {session_id}: a reply started elsewhere while one streams here"
                    );
                    return;
                }
                let mut reply = Reply::new(0, message_id, model_id, NOBODY, now.at, now.ms, 0);
                reply.mirror = Some(now.at);
                if let Some(rare) = live.rare_held() {
                    rare.finished = None;
                }
                live.reply = Some(Box::new(reply));
                self.watch_mirror(now);
            }
            News::ReplyChunk {
                message_id,
                text,
                seq,
                ..
            } => {
                let Some(reply) = live.reply.as_mut().filter(|r| mirrors(r, &message_id)) else {
                    return;
                };
                if seq != 0 && seq <= reply.seq() {
                    return;
                }
                reply.push(&text);
                reply.mirror = Some(now.at);
                for &socket in &live.sockets {
                    deliver(&mut self.hub, &mut self.out, socket, &live.id, reply, now);
                }
            }
            News::ReplyEnded {
                message_id,
                outcome,
                ..
            } => {
                let Some(reply) = live.reply.take_if(|r| mirrors(r, &message_id)) else {
                    return;
                };
                let outcome = outcome_of(outcome.as_deref());
                self.mirror_ended(&session_id, reply, outcome, now);
            }
            News::Ended { .. } => {}
            News::Stop { message_id, .. } => {
                let streams_here = live
                    .reply
                    .as_ref()
                    .is_some_and(|r| r.mirror.is_none() && r.message_id == message_id);
                if streams_here {
                    self.stop(&session_id, now);
                }
            }
        }
    }

    /// A mirrored reply ended where it streamed: this process's sockets get its final
    /// frame, its text joins the conversation, and a message waiting here is answered.
    fn mirror_ended(
        &mut self,
        session_id: &str,
        reply: Box<Reply>,
        outcome: Option<&'static str>,
        now: Now,
    ) {
        let context = self.settings.chat.context_messages;
        let Some(live) = self.sessions.get_mut(session_id) else {
            return;
        };
        if reply.seq() > 0 || outcome != Some("error") {
            let (hub, out) = (&mut self.hub, &mut self.out);
            send_final(&live.sockets, hub, out, session_id, &reply, outcome, now);
        }
        live.remember(Sender::Ai, reply.text.clone(), context);
        live.rare_mut().finished = Some(Finished {
            reply,
            outcome,
            at: now.at,
        });
        self.next_turn(session_id, now);
    }

    /// Mirrored replies whose process has not been heard from for as long as a stream
    /// may last (it died, or Redis lost the end): dropped, so the session's next
    /// message is answered here.
    pub(super) fn drop_silent_mirrors(&mut self, now: Now) {
        let limit = self.settings.stream_timeout;
        let mut silenced = Vec::new();
        for live in self.sessions.values_mut() {
            let silent = live
                .reply
                .as_ref()
                .and_then(|r| r.mirror)
                .is_some_and(|heard| heard + limit <= now.at);
            if silent {
                log::warn!(
                    "session {}: the reply streaming elsewhere went silent",
                    live.id
                );
                live.reply = None;
                silenced.push(live.id.clone());
            }
        }
        // A message that waited for it is answered here now.
        for session_id in silenced {
            self.next_turn(&session_id, now);
        }
    }
}

/// A reply's end as news tells it, as its final frame says it.
pub(super) fn outcome_of(told: Option<&str>) -> Option<&'static str> {
    match told {
        Some("stopped") => Some("stopped"),
        Some(_) => Some("error"),
        None => None,
    }
}

fn mirrors(reply: &Reply, message_id: &str) -> bool {
    reply.mirror.is_some() && reply.message_id == message_id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn news_survives_its_json() {
        let news = News::ReplyChunk {
            session_id: "s".into(),
            message_id: "m".into(),
            text: "two\nlines \"quoted\"".into(),
            seq: 3,
        };
        assert_eq!(News::from_json(&news.to_json()), Some(news));
        assert_eq!(News::from_json("{\"news\":\"unknown\"}"), None);
    }
}
