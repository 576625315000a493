//! The fan-out seam: every frame the chat core addresses to an audience — the sockets
//! of a session, of a user, or every admin socket — is delivered here, and only here.
//!
//! The core names the audience rather than listing sockets, and the sockets are looked
//! up at delivery, in the local hub. With `REDIS_URL` the frame is also published once
//! per audience (one message "to session S", not one per socket) and every other pod
//! that holds sockets of that audience delivers it to them (docs/SCALE-OUT.md); the
//! domain does not change. Which audiences this pod holds the core reports as they
//! change, and the bus subscribes to exactly those. (A reply's streamed chunks stay
//! per socket: each socket's delivery is paced by its own flush, which only the pod
//! holding it knows.)

use super::socket::conn_of;
use super::App;
use crate::bus::{Inbound, Lease, Topic};
use crate::chat::engine::{Audience, Event, LeaseAnswer, News};
use crate::chat::socket::SocketId;
use crate::http::health::Check;
use crate::net::handler::Ctx;

/// The `/readyz` reason while Redis is away (the error itself goes to the log).
const UNREACHABLE: &str = "redis unreachable; serving this pod's sockets only";

impl App {
    pub(super) fn fan_out(
        &mut self,
        to: &Audience,
        frame: String,
        except: Option<SocketId>,
        ctx: &mut Ctx,
    ) {
        if let Some(bus) = &self.bus {
            bus.publish(&topic_of(to), &frame);
        }
        self.deliver(to, &frame, except, ctx);
    }

    /// What the bus brought: a frame from another pod for sockets here, or news of
    /// the link, shown in `/readyz` without deciding it.
    pub(super) fn bus_brought(&mut self, inbound: Inbound, ctx: &mut Ctx) {
        match inbound {
            Inbound::Frame {
                topic: Topic::Sockets,
                frame,
            } => self.sockets_heard(&frame, ctx.now),
            Inbound::Frame { topic, frame } => {
                if let Some(to) = audience_of(topic) {
                    self.deliver(&to, &frame, None, ctx);
                }
            }
            Inbound::News { news, .. } => match News::from_json(&news) {
                Some(news) => {
                    log::debug!("redis: {} for session {}", news.kind(), news.session_id());
                    self.chat_event(Event::News(news), ctx);
                }
                None => log::warn!("redis: news this version cannot read; ignored"),
            },
            Inbound::Replay {
                session_id,
                entries,
            } => {
                // An entry this version cannot read is one it would not have mirrored.
                let entries = entries.iter().filter_map(|e| News::from_json(e)).collect();
                self.chat_event(
                    Event::Replayed {
                        session_id,
                        entries,
                    },
                    ctx,
                );
            }
            Inbound::Lease { session_id, answer } => {
                let answer = match answer {
                    Lease::Granted => LeaseAnswer::Granted,
                    Lease::Freed => LeaseAnswer::Freed,
                    Lease::Held => LeaseAnswer::Held,
                    Lease::Unavailable => LeaseAnswer::Unavailable,
                };
                self.chat_event(Event::Leased { session_id, answer }, ctx);
            }
            Inbound::Link(side, up) => {
                let Some(bus) = &mut self.bus else {
                    return;
                };
                let both = bus.link(side, up);
                let check = match both {
                    true => Check::ready(),
                    false => Check::not_ready(UNREACHABLE),
                };
                self.readiness.set("redis", check.advisory());
                self.presence_link(both, ctx.now);
            }
        }
    }

    /// Subscribes the bus to the audiences the chat core began to hold, and off those
    /// it ceased to; without a bus there is nothing to follow.
    pub(super) fn follow_audiences(&mut self) {
        let changes = self.chat.take_listening();
        if let Some(bus) = &self.bus {
            for (audience, on) in changes {
                bus.listen(&topic_of(&audience), on);
            }
        }
    }

    /// Takes or releases a session's lease; the core asks only when there is a bus.
    pub(super) fn lease(&self, session_id: &str, take: bool) {
        let Some(bus) = &self.bus else {
            return;
        };
        if take {
            bus.take_lease(session_id);
        } else {
            bus.release_lease(session_id);
        }
    }

    /// Publishes what changed in the sessions this pod shares.
    pub(super) fn tell_other_pods(&mut self) {
        let Some(bus) = &self.bus else {
            return;
        };
        for news in self.chat.take_news() {
            let session_id = news.session_id();
            // The reply streaming here also goes to its stream, for resumes elsewhere.
            match news {
                News::ReplyStarted { .. } => {
                    bus.publish_reply_news(session_id, &news.to_json(), true)
                }
                News::ReplyChunk { .. } | News::ReplyEnded { .. } => {
                    bus.publish_reply_news(session_id, &news.to_json(), false)
                }
                _ => bus.publish_news(&Topic::Session(session_id.to_owned()), &news.to_json()),
            }
        }
    }

    fn deliver(&self, to: &Audience, frame: &str, except: Option<SocketId>, ctx: &mut Ctx) {
        for socket in self.chat.audience(to) {
            if Some(socket) != except {
                ctx.send_text(conn_of(socket), frame.to_owned());
            }
        }
    }
}

fn topic_of(audience: &Audience) -> Topic {
    match audience {
        Audience::Session(id) => Topic::Session(id.clone()),
        Audience::User(id) => Topic::User(id.clone()),
        Audience::Admins => Topic::Admins,
    }
}

/// `None` for the socket counts, which are for the pod, not for sockets.
fn audience_of(topic: Topic) -> Option<Audience> {
    match topic {
        Topic::Session(id) => Some(Audience::Session(id)),
        Topic::User(id) => Some(Audience::User(id)),
        Topic::Admins => Some(Audience::Admins),
        Topic::Sockets => None,
    }
}
