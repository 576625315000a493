//! Resume across processes (several pods, `REDIS_URL`; docs/SCALE-OUT.md): a session
//! that enters this process's memory while its reply streams in another is given the
//! reply so far from the reply stream, mirrored from then on like one heard from the
//! start, and the sockets bound meanwhile get it from where they left off (the same
//! `replay` frame as on one pod). A stream that ended gives the end a reconnecting
//! socket missed.

use super::news::{outcome_of, NOBODY};
use super::*;

impl Chat {
    pub(super) fn replayed(&mut self, session_id: &str, entries: Vec<News>, now: Now) {
        let Some(live) = self.sessions.get_mut(session_id) else {
            return;
        };
        // Only a session with no reply of its own yet: one that started here meanwhile
        // is this process's (under the lease), and newer.
        let rebuilt = live.reply.is_none() && live.rare().finished.is_none();
        if rebuilt {
            match rebuild(entries, now) {
                Some(Told::Streaming(reply)) => live.reply = Some(reply),
                Some(Told::Ended(reply, outcome)) => {
                    live.rare_mut().finished = Some(Finished {
                        reply,
                        outcome,
                        at: now.at,
                    });
                }
                None => {}
            }
        }
        for &socket in &live.sockets {
            let Some(state) = self.hub.get_mut(socket) else {
                continue;
            };
            let resume = state.take_resume();
            replay(&mut self.hub, &mut self.out, socket, live, &resume, now);
        }
        if rebuilt && live.reply.is_some() {
            self.watch_mirror(now);
        }
    }
}

/// What a reply stream tells of its last reply.
enum Told {
    /// Still streaming (or its process died): mirrored here.
    Streaming(Box<Reply>),
    /// Ended, with its final frame's outcome.
    Ended(Box<Reply>, Option<&'static str>),
}

/// The last reply the stream tells of, as a mirror here, with its outcome when it
/// ended. Chunks are taken in their order only: one missing ends what can be shown.
fn rebuild(entries: Vec<News>, now: Now) -> Option<Told> {
    let start = entries
        .iter()
        .rposition(|news| matches!(news, News::ReplyStarted { .. }))?;
    let mut entries = entries.into_iter().skip(start);
    let Some(News::ReplyStarted {
        message_id,
        model_id,
        ..
    }) = entries.next()
    else {
        return None;
    };
    let mut reply = Reply::new(0, message_id, model_id, NOBODY, now.at, now.ms, 0);
    reply.mirror = Some(now.at);
    let mut whole = true;
    for news in entries {
        match news {
            News::ReplyChunk {
                message_id,
                text,
                seq,
                ..
            } if message_id == reply.message_id => {
                whole &= seq == 0 || seq == reply.seq() + 1;
                if whole {
                    reply.push(&text);
                }
            }
            News::ReplyEnded {
                message_id,
                outcome,
                ..
            } if message_id == reply.message_id => {
                return Some(Told::Ended(Box::new(reply), outcome_of(outcome.as_deref())));
            }
            _ => {}
        }
    }
    Some(Told::Streaming(Box::new(reply)))
}
