//! The chat core's side of the application: an event in, its effects carried out —
//! frames and closes to the loop, jobs to the executor, its next wake-up noted — and
//! the jobs the executor answered itself (refused, or done at once) handed back, one
//! event at a time, never recursively.

use super::socket::conn_of;
use super::{measure, App};
use crate::chat::engine::{Effect, Event, Now};
use crate::net::handler::Ctx;
use crate::time;

impl App {
    /// Hands an event to the chat core and carries out what it asks for, then hands
    /// back the jobs the executor answered itself meanwhile.
    pub(super) fn chat_event(&mut self, event: Event, ctx: &mut Ctx) {
        self.chat_step(event, ctx);
        self.hand_back_answered(ctx);
    }

    pub(super) fn chat_step(&mut self, event: Event, ctx: &mut Ctx) {
        let now = Now {
            at: ctx.now,
            ms: time::unix_millis_now(),
        };
        let effects = self.chat.handle(event, now);
        self.metrics
            .record_chat(measure::chat_counts(self.chat.take_tally()));
        self.follow_audiences();
        // News before frames: a pod that delivers a frame of this event to its sockets
        // already knows what the event changed (an admin joined: no more AI replies).
        self.tell_other_pods();
        self.apply(effects, ctx);
    }

    /// Each job the executor answered itself (most often: refused) goes back to the chat
    /// core as its own event, one at a time, in the order the core asked for them; the
    /// answers an answer causes are heard before the older ones still waiting, as if
    /// each had been told at once.
    pub(super) fn hand_back_answered(&mut self, ctx: &mut Ctx) {
        let mut waiting = Vec::new();
        loop {
            waiting.extend(self.executor.take_answered().into_iter().rev());
            let Some(done) = waiting.pop() else {
                return;
            };
            self.chat_step(Event::JobDone(done), ctx);
        }
    }

    pub(super) fn apply(&mut self, mut effects: Vec<Effect>, ctx: &mut Ctx) {
        for effect in effects.drain(..) {
            match effect {
                Effect::Send(socket, text) => ctx.send_text(conn_of(socket), text),
                Effect::Broadcast { to, frame, except } => self.fan_out(&to, frame, except, ctx),
                Effect::Answer(request, answer) => self.takeover_answered(request, answer, ctx),
                Effect::WatchFlush(socket) => ctx.watch_flush(conn_of(socket)),
                Effect::Close(socket, code, reason) => ctx.close(conn_of(socket), code, reason),
                Effect::Spawn(job) => self.executor.submit(&self.lanes, job),
                Effect::Cancel(id) => self.executor.cancel(id),
                Effect::Timer(at) => {
                    self.wake_at = Some(self.wake_at.map_or(at, |current| current.min(at)))
                }
                Effect::Lease { session_id, take } => self.lease(&session_id, take),
            }
        }
        self.chat.give_back(effects);
    }
}
