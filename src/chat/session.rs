//! A session the server is working on: its sockets, its recent history for the LLM, the
//! reply streaming into it, and its queue of store writes. A session lives in memory
//! while anything needs it and is dropped again when idle; the store holds the truth.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::id::Id;
use super::jobs::{AfterWrite, JobId, StoreOp};
use super::socket::{SocketId, Sockets};
use super::stream::Reply;
use crate::llm::{Role, Turn};
use crate::store::{AssistingAdmin, Sender, Transcript};

/// User writes (messages, model choices) a session may have queued behind the one in
/// flight. A client that sends faster than the store writes is told `SERVICE_ERROR` past
/// it instead of being queued without bound. Replies are never refused: each is owed to
/// a message already admitted, and at most `REPLY_HEADROOM` of them queue at once.
pub const WRITES_QUEUED_MAX: usize = 64;

pub struct Write {
    pub op: StoreOp,
    pub then: AfterWrite,
}

impl Write {
    /// A model choice queued behind another one replaces it: only the latest is worth
    /// a write, and a client that changes its mind 5,000 times costs one.
    pub fn supersedes(&self, queued: &Write) -> bool {
        matches!(
            (&self.op, &queued.op),
            (StoreOp::SetModel { .. }, StoreOp::SetModel { .. })
        )
    }
}

/// A reply the store could not take for a passing reason (it is down, its lane is
/// full). It holds the session's place in the write order and is tried again, ever
/// less often, until it is stored: a reply the user has read is never dropped.
pub struct Parked {
    pub op: StoreOp,
    pub failures: u32,
    pub retry_at: Instant,
}

impl Parked {
    const FIRST_WAIT: Duration = Duration::from_secs(1);
    const LONGEST_WAIT: Duration = Duration::from_secs(30);

    /// The wait before the next attempt after `failures` failed ones: 1 s, doubling,
    /// at most 30 s.
    pub fn wait(failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(5);
        (Self::FIRST_WAIT * (1 << doublings)).min(Self::LONGEST_WAIT)
    }
}

/// A finished reply kept for `RECONNECT_TIMEOUT`, so that a device that lost its socket
/// mid-stream gets the end it missed.
pub struct Finished {
    pub reply: Box<Reply>,
    /// Metadata of its final frame (`stopped`, `error`).
    pub outcome: Option<&'static str>,
    pub at: Instant,
}

/// Where a session's turn stands with its lease (`engine/lease.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leasing {
    /// Asked for; the answer comes as `Event::Leased`.
    Asked,
    /// Refused; asked again at this time unless a mirrored reply's end comes first.
    RetryAt(Instant),
}

/// A session in memory. What every session uses is inline; what few use, or use only
/// while something is under way, is in [`Rare`], allocated when first needed and given
/// back when it holds nothing again: a session with only an idle socket bound costs a
/// small box (issue 18).
pub struct Live {
    pub id: Id,
    pub owner: Id,
    /// `""` until chosen: the default model answers. (Not a `String`: its spare
    /// capacity word is not worth its place in every session.)
    pub model_id: Box<str>,
    /// Exists in the store (a fresh session is stored with its first message).
    pub stored: bool,
    /// Ended: frames naming it start a fresh session instead.
    pub ended: bool,
    /// Messages stored plus user messages accepted but not yet stored: the cap counts both.
    pub message_count: u64,
    /// The last turns, oldest first, bounded by `LLM_CONTEXT_MESSAGES`.
    pub history: VecDeque<Turn>,
    pub sockets: Sockets,
    /// Boxed: most sessions in memory are idle, and a reply is the largest part of one.
    pub reply: Option<Box<Reply>>,
    /// Since when no socket is bound: a reply nobody can see is stopped after
    /// `RECONNECT_TIMEOUT`.
    pub orphaned_since: Option<Instant>,
    /// `None` while all of it is empty.
    rare: Option<Box<Rare>>,
}

/// The parts of a session that are empty most of the time.
#[derive(Default)]
pub struct Rare {
    pub finished: Option<Finished>,
    /// A user message (from this socket) was stored while a reply was streaming:
    /// answer it next.
    pub turn_waiting: Option<SocketId>,
    /// The session's lease, while a turn waits for it (several processes only).
    pub leasing: Option<Leasing>,
    pub writes: VecDeque<Write>,
    /// The store job of the write in progress; writes of one session run one at a time.
    pub writing: Option<JobId>,
    /// A reply waiting to be tried again; later writes wait behind it.
    pub parked: Option<Parked>,
    /// The LLM provider's conversation (Dify), once it named one.
    pub conversation_id: Option<String>,
    /// The admin answering in the assistant's place; the LLM is not asked meanwhile.
    pub assisting: Option<AssistingAdmin>,
}

/// What a session without a [`Rare`] reads.
const NOTHING_RARE: &Rare = &Rare {
    finished: None,
    turn_waiting: None,
    leasing: None,
    writes: VecDeque::new(),
    writing: None,
    parked: None,
    conversation_id: None,
    assisting: None,
};

impl Rare {
    fn is_empty(&self) -> bool {
        self.finished.is_none()
            && self.turn_waiting.is_none()
            && self.leasing.is_none()
            && self.writes.is_empty()
            && self.writing.is_none()
            && self.parked.is_none()
            && self.conversation_id.is_none()
            && self.assisting.is_none()
    }
}

impl Live {
    pub fn fresh(id: Id, owner: Id) -> Live {
        Live {
            id,
            owner,
            model_id: Box::default(),
            stored: false,
            ended: false,
            message_count: 0,
            history: VecDeque::new(),
            sockets: Sockets::None,
            reply: None,
            orphaned_since: None,
            rare: None,
        }
    }

    pub fn rare(&self) -> &Rare {
        self.rare.as_deref().unwrap_or(NOTHING_RARE)
    }

    /// To set something rare: allocates the parts on first use.
    pub fn rare_mut(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// To clear or take something rare without allocating for it.
    pub fn rare_held(&mut self) -> Option<&mut Rare> {
        self.rare.as_deref_mut()
    }

    pub fn holds_rare(&self) -> bool {
        self.rare.is_some()
    }

    /// Gives the rare parts back to the allocator once they hold nothing.
    pub fn tidy(&mut self) {
        if self.rare.as_deref().is_some_and(Rare::is_empty) {
            self.rare = None;
        }
    }

    pub fn from_store(transcript: Transcript, context: usize) -> Live {
        let session = transcript.session;
        let mut live = Live::fresh(session.id.into(), session.user_id.into());
        live.model_id = session.model_id.into();
        live.stored = true;
        live.message_count = session.message_count;
        if let Some(admin) = session.assisting_admin {
            live.rare_mut().assisting = Some(admin);
        }
        for message in transcript.messages {
            live.remember(message.sender, message.content, context);
        }
        live
    }

    /// Adds a stored message to the LLM history. Admin replies count as the assistant;
    /// system notes are not part of the conversation.
    pub fn remember(&mut self, sender: Sender, content: String, context: usize) {
        let role = match sender {
            Sender::User => Role::User,
            Sender::Ai | Sender::Admin => Role::Assistant,
            Sender::System => return,
        };
        if content.is_empty() || context == 0 {
            return;
        }
        self.history.push_back(Turn {
            role,
            content: content.into(),
        });
        while self.history.len() > context {
            self.history.pop_front();
        }
    }

    /// Nothing needs this session in memory any more.
    pub fn is_idle(&self) -> bool {
        let rare = self.rare();
        self.sockets.is_empty()
            && self.reply.is_none()
            && rare.finished.is_none()
            && rare.writing.is_none()
            && rare.writes.is_empty()
            && rare.parked.is_none()
            && rare.leasing.is_none()
    }
}

/// Byte length past which a session name is shortened.
const NAME_MAX: usize = 50;
/// A shortened name is cut at the last space before this byte, then gets `...`.
const NAME_CUT: usize = 47;

/// The session's name from its first user message (spec/storage.md `nm`): the first
/// line, else the text up to the first sentence end; long names are cut at a word.
pub fn name_for(first_message: &str) -> String {
    let text = first_message.trim();
    let candidate = match text.split_once('\n') {
        Some((first_line, _)) => first_line,
        None => match text.find(['.', '?', '!']) {
            Some(end) => &text[..=end],
            None => text,
        },
    }
    .trim();
    if candidate.is_empty() {
        return "New Chat".to_owned();
    }
    if candidate.len() <= NAME_MAX {
        return candidate.to_owned();
    }
    let mut limit = NAME_CUT;
    while !candidate.is_char_boundary(limit) {
        limit -= 1;
    }
    let head = &candidate[..limit];
    let cut = head
        .rfind(' ')
        .map_or(head, |space| &head[..space])
        .trim_end();
    format!("{cut}...")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_spec_rule() {
        assert_eq!(name_for("Hello there"), "Hello there");
        assert_eq!(name_for("  First line\nsecond line"), "First line");
        assert_eq!(name_for("How are you? I am fine."), "How are you?");
        assert_eq!(name_for("   "), "New Chat");
        assert_eq!(
            name_for("\n\nlater"),
            "later",
            "leading blank lines are trimmed"
        );
        let long = "Please explain how the borrow checker decides lifetimes in nested closures";
        let name = name_for(long);
        assert_eq!(name, "Please explain how the borrow checker decides...");
        assert!(name.len() <= NAME_CUT + 3);
        let unbroken = "x".repeat(80);
        assert_eq!(name_for(&unbroken), format!("{}...", "x".repeat(47)));
        // A multi-byte character straddling byte 47 is not split.
        let wide = format!("{}é{}", "a".repeat(46), "b".repeat(10));
        assert_eq!(name_for(&wide), format!("{}...", "a".repeat(46)));
    }

    #[test]
    fn history_keeps_the_last_turns_and_maps_roles() {
        let mut live = Live::fresh("s".into(), "u".into());
        live.remember(Sender::User, "one".into(), 2);
        live.remember(Sender::System, "note".into(), 2);
        live.remember(Sender::Admin, "two".into(), 2);
        live.remember(Sender::User, "three".into(), 2);
        let turns: Vec<(Role, &str)> = live.history.iter().map(|t| (t.role, &*t.content)).collect();
        assert_eq!(turns, [(Role::Assistant, "two"), (Role::User, "three")]);
    }
}
