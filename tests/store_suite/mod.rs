//! The `Store` conformance suite: every backend must pass it unchanged.
//!
//! Each case is a function taking a fresh, empty store. A backend's test file runs them
//! all, one `#[test]` each, with
//! ```ignore
//! mod store_suite;
//! store_suite::conformance_tests!(fresh_store); // fresh_store() -> impl Deref<Target = dyn Store>
//! ```
//! A case missing from the macro's list is unused code, which clippy rejects.

mod admin_queries;
mod assist;

use std::collections::BTreeMap;

use chatbox::store::{
    Append, Message, Millis, Sender, Session, Store, StoreError, Window, REPLY_BYTES_HEADROOM,
    SESSION_BYTES,
};

/// One `#[test]` per case; `$fresh()` must return a new, empty store each time, as
/// anything that dereferences to `dyn Store` (a `Box`, or a guard owning a temp dir).
macro_rules! conformance_tests {
    ($fresh:expr) => {
        $crate::store_suite::conformance_tests!(@cases $fresh;
            first_append_creates_the_session,
            later_appends_keep_name_and_model,
            append_checks_the_owner,
            append_past_the_cap_stores_nothing,
            append_past_the_byte_budget_stores_nothing,
            a_reply_owed_at_the_byte_budget_is_stored,
            a_batch_appends_each_on_its_own,
            messages_keep_their_order,
            transcript_gives_the_last_n_oldest_first,
            transcript_pages_walk_back_from_the_newest,
            shared_transcripts_come_in_pages_too,
            message_fields_round_trip,
            unicode_content_round_trips,
            ai_replies_update_token_and_time_stats,
            latest_active_picks_the_latest_activity,
            user_sessions_newest_first_own_only,
            set_model_updates_the_session,
            set_assist_marks_and_clears_the_admin,
            set_help_requested_flags_the_session,
            end_closes_a_session_once,
            share_token_is_stable_until_unshared,
            end_idle_ends_only_idle_sessions,
            count_active_counts_active_sessions,
            unknown_sessions_read_as_none,
            admin_filters_narrow_the_listing,
            admin_sorts_by_every_field_both_ways,
            admin_pages_carry_the_total,
            admin_metrics_sum_the_sessions_started_in_range,
        );
    };
    (@cases $fresh:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let store = ($fresh)();
                $crate::store_suite::$case(&*store);
            }
        )*
    };
}
pub(crate) use conformance_tests;

pub use admin_queries::*;
pub use assist::*;

const CAP: usize = 100;

fn message(id: &str, sender: Sender, content: &str, at: Millis) -> Message {
    Message::new(id, sender, content, at)
}

fn append_as(
    store: &dyn Store,
    session: &str,
    user: &str,
    message: &Message,
) -> Result<u64, StoreError> {
    store.append(&Append {
        session_id: session,
        user_id: user,
        name: "Chat name",
        model_id: "model-a",
        message,
        max_messages: CAP,
    })
}

/// Appends a user message `text` at `at` to `session` of `user`.
fn say(store: &dyn Store, session: &str, user: &str, text: &str, at: Millis) -> Session {
    // Unique per message, as the chat core's random ids are: a store may take a message
    // whose id is already its session's last for an append tried again.
    let id = format!("{session}-{at}-{text}");
    append_as(store, session, user, &message(&id, Sender::User, text, at)).expect("append");
    store.session(session).expect("read").expect("stored")
}

fn contents(store: &dyn Store, session: &str, last: Option<usize>) -> Vec<String> {
    let transcript = store.transcript(session, last).expect("transcript");
    let messages = transcript.expect("session exists").messages;
    messages.into_iter().map(|m| m.content).collect()
}

fn ids(sessions: &[Session]) -> Vec<&str> {
    sessions.iter().map(|s| s.id.as_str()).collect()
}

pub fn first_append_creates_the_session(store: &dyn Store) {
    assert_eq!(store.session("s1").unwrap(), None);
    let first = message("m1", Sender::User, "Hello there", 1_000);
    let count = store.append(&Append {
        session_id: "s1",
        user_id: "alice",
        name: "Hello there",
        model_id: "gpt-x",
        message: &first,
        max_messages: CAP,
    });
    assert_eq!(count, Ok(1));
    let session = store.session("s1").unwrap().expect("created");
    assert_eq!(session.id, "s1");
    assert_eq!(session.user_id, "alice");
    assert_eq!(session.name, "Hello there");
    assert_eq!(session.model_id, "gpt-x");
    assert_eq!(session.started_at, 1_000);
    assert_eq!(session.last_activity, 1_000);
    assert_eq!(session.message_count, 1);
    assert!(session.is_active());
    assert_eq!(session.duration_secs, None);
    assert_eq!(session.share_token, None);
    assert_eq!(session.assisting_admin, None);
    assert!(!session.admin_assisted && !session.help_requested);
    assert_eq!(
        (
            session.total_tokens,
            session.max_resp_ms,
            session.avg_resp_ms
        ),
        (0, 0, 0)
    );
    let transcript = store.transcript("s1", None).unwrap().unwrap();
    assert_eq!(transcript.session, session);
    assert_eq!(transcript.messages, [first]);
}

pub fn later_appends_keep_name_and_model(store: &dyn Store) {
    say(store, "s1", "alice", "first", 1_000);
    let later = message("m2", Sender::Ai, "reply", 4_000);
    let count = store.append(&Append {
        session_id: "s1",
        user_id: "alice",
        name: "Another name",
        model_id: "model-b",
        message: &later,
        max_messages: CAP,
    });
    assert_eq!(count, Ok(2));
    let session = store.session("s1").unwrap().expect("stored");
    assert_eq!(
        (session.name.as_str(), session.model_id.as_str()),
        ("Chat name", "model-a")
    );
    assert_eq!(
        (
            session.started_at,
            session.last_activity,
            session.message_count
        ),
        (1_000, 4_000, 2)
    );
    assert!(session.modified_at >= 4_000);
}

pub fn append_checks_the_owner(store: &dyn Store) {
    say(store, "s1", "alice", "mine", 1_000);
    let intruder = message("m2", Sender::User, "not yours", 2_000);
    assert_eq!(
        append_as(store, "s1", "mallory", &intruder),
        Err(StoreError::NotOwner)
    );
    let session = store.session("s1").unwrap().unwrap();
    assert_eq!(
        (
            session.user_id.as_str(),
            session.message_count,
            session.last_activity
        ),
        ("alice", 1, 1_000)
    );
    assert_eq!(contents(store, "s1", None), ["mine"]);
}

pub fn append_past_the_cap_stores_nothing(store: &dyn Store) {
    let capped = |session: &str, n: u32, cap: usize| {
        let m = message(
            &format!("m{n}"),
            Sender::User,
            &format!("text {n}"),
            1_000 * i64::from(n),
        );
        store.append(&Append {
            session_id: session,
            user_id: "alice",
            name: "Chat",
            model_id: "",
            message: &m,
            max_messages: cap,
        })
    };
    for n in 1..=3 {
        assert_eq!(capped("s1", n, 3), Ok(u64::from(n)));
    }
    assert_eq!(capped("s1", 4, 3), Err(StoreError::SessionFull));
    let session = store.session("s1").unwrap().unwrap();
    assert_eq!((session.message_count, session.last_activity), (3, 3_000));
    assert_eq!(contents(store, "s1", None), ["text 1", "text 2", "text 3"]);
    // A raised cap lets the same session grow again.
    assert_eq!(capped("s1", 5, 4), Ok(4));
    // A session that could not take its first message is not created.
    assert_eq!(capped("s2", 1, 0), Err(StoreError::SessionFull));
    assert_eq!(store.session("s2").unwrap(), None);
    assert_eq!(store.count_active().unwrap(), 1);
}

/// The budget counts stored bytes, which a backend may make larger than the content
/// (framing, sealing) but never smaller: no more content than the budget fits, and
/// the budget is not so small that sessions of ordinary messages run into it.
pub fn append_past_the_byte_budget_stores_nothing(store: &dyn Store) {
    const MIB: usize = 1024 * 1024;
    let big = |n: usize| message(&format!("m{n}"), Sender::User, &"x".repeat(MIB), n as i64);
    let mut stored = 0;
    let refused = loop {
        match append_as(store, "s1", "alice", &big(stored)) {
            Ok(count) => {
                stored += 1;
                assert_eq!(count, stored as u64);
            }
            Err(error) => break error,
        }
        assert!(stored * MIB <= SESSION_BYTES as usize, "over the budget");
    };
    assert_eq!(refused, StoreError::SessionFull);
    assert!(stored >= 8, "only {stored} MiB fit");
    let session = store.session("s1").unwrap().unwrap();
    assert_eq!(
        session.message_count, stored as u64,
        "the refused one is not stored"
    );
    let transcript = store.transcript("s1", Some(1)).unwrap().unwrap();
    assert_eq!(
        transcript.messages[0].id.as_deref(),
        Some(&*format!("m{}", stored - 1))
    );
    // Full stays full (it does not depend on a count made once), and only this session is.
    assert_eq!(
        append_as(store, "s1", "alice", &big(99)),
        Err(StoreError::SessionFull)
    );
    say(store, "s2", "alice", "a fresh session", 1);
}

/// A reply is owed to a user message the budget admitted, and the user has read it:
/// it is stored past the budget (within `REPLY_BYTES_HEADROOM`), and the budget then
/// refuses the user's next message instead.
pub fn a_reply_owed_at_the_byte_budget_is_stored(store: &dyn Store) {
    const MIB: usize = 1024 * 1024;
    let big = |n: usize, sender| message(&format!("m{n}"), sender, &"x".repeat(MIB), n as i64);
    let mut n = 0;
    while append_as(store, "s1", "alice", &big(n, Sender::User)).is_ok() {
        n += 1;
    }
    // Just under a MiB: what the user's last message left free plus the headroom.
    let reply = message("r1", Sender::Ai, &"y".repeat(MIB - 4096), n as i64);
    let stored = append_as(store, "s1", "alice", &reply).expect("the owed reply is stored");
    assert_eq!(stored, n as u64 + 1);
    assert_eq!(
        append_as(store, "s1", "alice", &big(n + 1, Sender::User)),
        Err(StoreError::SessionFull),
        "the user's next message is still refused"
    );
    // The headroom is bounded too: replies cannot grow a session without end.
    let refused = (0..4).find_map(|i| {
        let reply = message(
            &format!("r{}", i + 2),
            Sender::Ai,
            &"z".repeat(MIB),
            n as i64,
        );
        append_as(store, "s1", "alice", &reply).err()
    });
    assert_eq!(refused, Some(StoreError::SessionFull));
    let held = store.session("s1").unwrap().unwrap().message_count as usize;
    assert!(
        held * MIB <= (SESSION_BYTES + REPLY_BYTES_HEADROOM) as usize + MIB,
        "{held} messages of about a MiB held"
    );
}

pub fn a_batch_appends_each_on_its_own(store: &dyn Store) {
    assert!(store.append_batch(&[]).is_empty());
    say(store, "mine", "ann", "first", 1);
    say(store, "bobs", "bob", "hi", 2);
    say(store, "capped", "ann", "only", 3);
    let new = message("a", Sender::User, "to new", 10);
    let mine = message("b", Sender::User, "to mine", 11);
    let bobs = message("c", Sender::User, "not yours", 12);
    let capped = message("d", Sender::User, "over the cap", 13);
    let to = |session_id, message, max_messages| Append {
        session_id,
        user_id: "ann",
        name: "Batch",
        model_id: "model-a",
        message,
        max_messages,
    };
    let results = store.append_batch(&[
        to("new", &new, CAP),
        to("mine", &mine, CAP),
        to("bobs", &bobs, CAP),
        to("capped", &capped, 1),
    ]);
    assert_eq!(
        results,
        [
            Ok(1),
            Ok(2),
            Err(StoreError::NotOwner),
            Err(StoreError::SessionFull)
        ]
    );
    assert_eq!(contents(store, "new", None), ["to new"]);
    assert_eq!(
        store.session("new").unwrap().expect("created").name,
        "Batch"
    );
    assert_eq!(contents(store, "mine", None), ["first", "to mine"]);
    assert_eq!(contents(store, "bobs", None), ["hi"]);
    assert_eq!(contents(store, "capped", None), ["only"]);
}

pub fn messages_keep_their_order(store: &dyn Store) {
    let texts: Vec<String> = (0..30).map(|i| format!("message {i}")).collect();
    for (i, text) in texts.iter().enumerate() {
        // Equal timestamps too: the order is the order of the appends.
        say(store, "s1", "alice", text, 1_000 + (i as i64 / 3));
    }
    assert_eq!(contents(store, "s1", None), texts);
    assert_eq!(store.session("s1").unwrap().unwrap().message_count, 30);
}

pub fn transcript_gives_the_last_n_oldest_first(store: &dyn Store) {
    for (i, text) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        say(store, "s1", "alice", text, 1_000 + i as i64);
    }
    assert_eq!(contents(store, "s1", Some(2)), ["d", "e"]);
    assert_eq!(contents(store, "s1", Some(1)), ["e"]);
    assert_eq!(contents(store, "s1", Some(5)), ["a", "b", "c", "d", "e"]);
    assert_eq!(contents(store, "s1", Some(50)), ["a", "b", "c", "d", "e"]);
    assert!(contents(store, "s1", Some(0)).is_empty());
    let transcript = store.transcript("s1", Some(2)).unwrap().unwrap();
    assert_eq!(
        transcript.session.message_count, 5,
        "the session counts them all"
    );
}

/// Texts of the page `window` of session `s1`.
fn page(store: &dyn Store, before: Option<u64>, limit: usize) -> Vec<String> {
    let window = Window { before, limit };
    let transcript = store.transcript_page("s1", window).expect("page");
    let transcript = transcript.expect("session exists");
    assert_eq!(
        transcript.session.message_count, 7,
        "the session counts them all"
    );
    transcript.messages.into_iter().map(|m| m.content).collect()
}

pub fn transcript_pages_walk_back_from_the_newest(store: &dyn Store) {
    for (i, text) in ["a", "b", "c", "d", "e", "f", "g"].iter().enumerate() {
        say(store, "s1", "alice", text, 1_000 + i as i64);
    }
    // Positions count from 0; `before` is the position of the page's first message.
    assert_eq!(page(store, None, 3), ["e", "f", "g"]);
    assert_eq!(page(store, Some(4), 3), ["b", "c", "d"]);
    assert_eq!(page(store, Some(1), 3), ["a"]);
    assert!(page(store, Some(0), 3).is_empty());
    assert_eq!(page(store, Some(7), 2), ["f", "g"]);
    assert_eq!(
        page(store, Some(1_000_000), 2),
        ["f", "g"],
        "past the end is the end"
    );
    assert_eq!(page(store, Some(u64::MAX), 1), ["g"]);
    assert_eq!(page(store, None, 100), ["a", "b", "c", "d", "e", "f", "g"]);
    assert!(page(store, Some(5), 0).is_empty());
    assert_eq!(
        store
            .transcript_page(
                "s2",
                Window {
                    before: None,
                    limit: 3
                }
            )
            .unwrap(),
        None
    );
}

pub fn shared_transcripts_come_in_pages_too(store: &dyn Store) {
    for (i, text) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        say(store, "s1", "alice", text, 1_000 + i as i64);
    }
    store.share("s1", "tok", 2_000).unwrap();
    let texts = |before, limit| {
        let shared = store
            .shared("tok", Window { before, limit })
            .unwrap()
            .unwrap();
        assert_eq!(shared.session.message_count, 5);
        shared
            .messages
            .into_iter()
            .map(|m| m.content)
            .collect::<Vec<_>>()
    };
    assert_eq!(texts(None, 2), ["d", "e"]);
    assert_eq!(texts(Some(3), 2), ["b", "c"]);
    assert_eq!(texts(Some(1), 2), ["a"]);
    assert_eq!(store.shared("other", Window::ALL).unwrap(), None);
}

pub fn message_fields_round_trip(store: &dyn Store) {
    let mut with_file = message("m1", Sender::User, "see attachment", 1_000);
    with_file.file_id = Some("file-123".into());
    with_file.file_url = Some("https://files.example/u/file-123.png?sig=a%20b".into());
    with_file.meta = BTreeMap::from([
        ("filename".to_owned(), "scan.png".to_owned()),
        ("size".to_owned(), "2048".to_owned()),
        ("note".to_owned(), String::new()),
    ]);
    let mut legacy = message("unused", Sender::Admin, "old message without id", 2_000);
    legacy.id = None;
    let system = message("m3", Sender::System, "admin joined", 3_000);
    let mut reply = message("m4", Sender::Ai, "answer", 4_000);
    reply.model = Some("model-a".into());
    reply.tokens = Some(42);
    reply.resp_ms = Some(1_234);
    let all = [with_file, legacy, system, reply];
    for m in &all {
        append_as(store, "s1", "alice", m).unwrap();
    }
    let transcript = store.transcript("s1", None).unwrap().unwrap();
    assert_eq!(transcript.messages, all);
    assert_eq!(transcript.session.message_count, 4);
}

pub fn unicode_content_round_trips(store: &dyn Store) {
    let texts = [
        "Grüße aus Köln – ça va? ¿Qué tal?",
        "你好，世界。日本語のテキスト、한국어",
        "שלום עולם مرحبا بالعالم",
        "emoji 🚀👩‍👩‍👧‍👦🏳️‍🌈 and a combining e\u{301}",
        "quotes \" ' ` backslash \\ newline\nand tab\t and NUL \0 inside",
        "",
    ];
    let big = "Ω".repeat(40_000);
    for (i, text) in texts.iter().chain([&big.as_str()]).enumerate() {
        say(store, "s1", "ユーザー", text, 1_000 + i as i64);
    }
    let mut expected: Vec<&str> = texts.to_vec();
    expected.push(&big);
    assert_eq!(contents(store, "s1", None), expected);
    let mut named = message("m1", Sender::User, "名前", 5_000);
    named.meta = BTreeMap::from([("ключ".to_owned(), "значение 🎉".to_owned())]);
    store
        .append(&Append {
            session_id: "s2",
            user_id: "ユーザー",
            name: "Чат про погоду ☀️",
            model_id: "",
            message: &named,
            max_messages: CAP,
        })
        .unwrap();
    let session = store.session("s2").unwrap().expect("stored");
    assert_eq!(session.name, "Чат про погоду ☀️");
    let sessions = store.user_sessions("ユーザー", 10).unwrap();
    assert_eq!(ids(&sessions), ["s2", "s1"]);
    let transcript = store.transcript("s2", None).unwrap().unwrap();
    assert_eq!(transcript.messages, [named]);
}

pub fn ai_replies_update_token_and_time_stats(store: &dyn Store) {
    say(store, "s1", "alice", "question", 1_000);
    let reply = |n: u32, tokens: i64, resp_ms: Option<i64>| {
        let mut m = message(&format!("r{n}"), Sender::Ai, "answer", 1_000 + i64::from(n));
        m.tokens = Some(tokens);
        m.resp_ms = resp_ms;
        append_as(store, "s1", "alice", &m).unwrap();
        store.session("s1").unwrap().expect("stored")
    };
    let s = reply(1, 10, Some(100));
    assert_eq!(
        (s.total_tokens, s.max_resp_ms, s.avg_resp_ms),
        (10, 100, 100)
    );
    let s = reply(2, 20, Some(300));
    assert_eq!(
        (s.total_tokens, s.max_resp_ms, s.avg_resp_ms),
        (30, 300, 200)
    );
    let s = reply(3, 30, Some(200));
    assert_eq!(
        (s.total_tokens, s.max_resp_ms, s.avg_resp_ms),
        (60, 300, 200)
    );
    // Only AI messages that carry a response time count.
    let s = reply(4, 1_000, None);
    assert_eq!(
        (s.total_tokens, s.max_resp_ms, s.avg_resp_ms),
        (60, 300, 200)
    );
    let mut from_user = message("u2", Sender::User, "thanks", 9_000);
    from_user.tokens = Some(500);
    from_user.resp_ms = Some(9_999);
    append_as(store, "s1", "alice", &from_user).unwrap();
    let s = store.session("s1").unwrap().expect("stored");
    assert_eq!(
        (s.total_tokens, s.max_resp_ms, s.avg_resp_ms),
        (60, 300, 200)
    );
    let stored = store.session("s1").unwrap().unwrap();
    assert_eq!(
        (stored.total_tokens, stored.max_resp_ms, stored.avg_resp_ms),
        (60, 300, 200)
    );
}

pub fn latest_active_picks_the_latest_activity(store: &dyn Store) {
    assert_eq!(store.latest_active("alice").unwrap(), None);
    say(store, "old-start", "alice", "a", 1_000);
    say(store, "new-start", "alice", "b", 2_000);
    say(store, "old-start", "alice", "c", 5_000);
    say(store, "ended", "alice", "d", 6_000);
    say(store, "bobs", "bob", "e", 7_000);
    assert!(store.end("ended", 6_500).unwrap());
    let latest = store.latest_active("alice").unwrap().unwrap();
    assert_eq!(
        (latest.id.as_str(), latest.last_activity),
        ("old-start", 5_000)
    );
    say(store, "new-start", "alice", "f", 8_000);
    let latest = store.latest_active("alice").unwrap().unwrap();
    assert_eq!(latest.id, "new-start");
    assert_eq!(store.latest_active("bob").unwrap().unwrap().id, "bobs");
    assert!(store.end("bobs", 9_000).unwrap());
    assert_eq!(store.latest_active("bob").unwrap(), None);
    assert_eq!(store.latest_active("carol").unwrap(), None);
}

pub fn user_sessions_newest_first_own_only(store: &dyn Store) {
    assert!(store.user_sessions("alice", 10).unwrap().is_empty());
    say(store, "s-mid", "alice", "a", 2_000);
    say(store, "s-old", "alice", "b", 1_000);
    say(store, "s-new", "alice", "c", 3_000);
    say(store, "bobs", "bob", "d", 4_000);
    // Activity does not reorder: the order is by start.
    say(store, "s-old", "alice", "e", 9_000);
    assert!(store.end("s-mid", 5_000).unwrap());
    let all = store.user_sessions("alice", 10).unwrap();
    assert_eq!(ids(&all), ["s-new", "s-mid", "s-old"]);
    assert!(!all[1].is_active(), "ended sessions are listed too");
    assert_eq!(all[2].message_count, 2);
    assert_eq!(
        ids(&store.user_sessions("alice", 2).unwrap()),
        ["s-new", "s-mid"]
    );
    assert!(store.user_sessions("alice", 0).unwrap().is_empty());
    assert_eq!(ids(&store.user_sessions("bob", 10).unwrap()), ["bobs"]);
    assert!(store.user_sessions("al", 10).unwrap().is_empty());
}

pub fn set_model_updates_the_session(store: &dyn Store) {
    assert!(!store.set_model("missing", "model-b", 2_000).unwrap());
    assert_eq!(store.session("missing").unwrap(), None);
    say(store, "s1", "alice", "hi", 1_000);
    assert!(store.set_model("s1", "model-b", 2_000).unwrap());
    let session = store.session("s1").unwrap().unwrap();
    assert_eq!(session.model_id, "model-b");
    assert_eq!(session.modified_at, 2_000);
    assert_eq!(session.last_activity, 1_000, "not a message");
    assert!(store.set_model("s1", "", 3_000).unwrap());
    assert_eq!(store.session("s1").unwrap().unwrap().model_id, "");
}

pub fn end_closes_a_session_once(store: &dyn Store) {
    say(store, "s1", "alice", "hi", 10_000);
    say(store, "s1", "alice", "again", 20_000);
    assert_eq!(store.count_active().unwrap(), 1);
    assert!(store.end("s1", 75_999).unwrap());
    let session = store.session("s1").unwrap().unwrap();
    assert!(!session.is_active());
    assert_eq!(session.ended_at, Some(75_999));
    assert_eq!(
        session.duration_secs,
        Some(65),
        "whole seconds from start to end"
    );
    assert_eq!(session.last_activity, 20_000);
    assert!(!store.end("s1", 80_000).unwrap(), "already ended");
    assert_eq!(store.session("s1").unwrap().unwrap().ended_at, Some(75_999));
    assert!(!store.end("missing", 80_000).unwrap());
    assert_eq!(store.count_active().unwrap(), 0);
    assert_eq!(store.latest_active("alice").unwrap(), None);
    assert_eq!(contents(store, "s1", None), ["hi", "again"]);
}

pub fn share_token_is_stable_until_unshared(store: &dyn Store) {
    assert_eq!(store.share("missing", "tok-0", 1_000).unwrap(), None);
    assert!(!store.unshare("missing", 1_000).unwrap());
    assert_eq!(store.shared("tok-0", Window::ALL).unwrap(), None);
    say(store, "s1", "alice", "question", 1_000);
    say(store, "s1", "alice", "more", 2_000);
    say(store, "s2", "bob", "other", 2_500);
    assert_eq!(
        store.share("s1", "tok-1", 3_000).unwrap().as_deref(),
        Some("tok-1")
    );
    assert_eq!(
        store.share("s1", "tok-2", 4_000).unwrap().as_deref(),
        Some("tok-1"),
        "a shared session keeps its token"
    );
    let session = store.session("s1").unwrap().unwrap();
    assert_eq!(session.share_token.as_deref(), Some("tok-1"));
    let shared = store.shared("tok-1", Window::ALL).unwrap().unwrap();
    assert_eq!(shared.session, session);
    let texts: Vec<&str> = shared.messages.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(texts, ["question", "more"]);
    assert_eq!(store.shared("tok-2", Window::ALL).unwrap(), None);

    assert!(store.unshare("s1", 5_000).unwrap());
    assert_eq!(store.shared("tok-1", Window::ALL).unwrap(), None);
    let session = store.session("s1").unwrap().unwrap();
    assert_eq!((session.share_token, session.modified_at), (None, 5_000));
    assert!(
        store.unshare("s1", 6_000).unwrap(),
        "exists, nothing to remove"
    );
    assert_eq!(
        store.share("s1", "tok-3", 7_000).unwrap().as_deref(),
        Some("tok-3")
    );
    assert_eq!(
        store
            .shared("tok-3", Window::ALL)
            .unwrap()
            .unwrap()
            .session
            .id,
        "s1"
    );
    assert_eq!(store.session("s2").unwrap().unwrap().share_token, None);
}

pub fn end_idle_ends_only_idle_sessions(store: &dyn Store) {
    assert!(store.end_idle(10_000, 10_000).unwrap().is_empty());
    say(store, "idle-1", "alice", "a", 1_000);
    say(store, "idle-2", "bob", "b", 2_000);
    say(store, "busy", "alice", "c", 1_500);
    say(store, "busy", "alice", "d", 3_000);
    say(store, "ended", "carol", "e", 500);
    assert!(store.end("ended", 600).unwrap());
    say(store, "edge", "dave", "f", 2_500);

    let mut ended = store.end_idle(2_500, 9_000).unwrap();
    ended.sort();
    assert_eq!(
        ended,
        ["idle-1", "idle-2"],
        "lastActivity strictly before the cutoff"
    );
    let idle = store.session("idle-1").unwrap().unwrap();
    assert_eq!((idle.ended_at, idle.duration_secs), (Some(9_000), Some(8)));
    let ended_before = store.session("ended").unwrap().unwrap();
    assert_eq!(ended_before.ended_at, Some(600), "not ended twice");
    assert!(store.session("busy").unwrap().unwrap().is_active());
    assert!(store.session("edge").unwrap().unwrap().is_active());
    assert_eq!(store.count_active().unwrap(), 2);
    assert_eq!(store.latest_active("bob").unwrap(), None);
    assert!(store.end_idle(2_500, 9_500).unwrap().is_empty());
}

pub fn count_active_counts_active_sessions(store: &dyn Store) {
    assert_eq!(store.count_active().unwrap(), 0);
    store.ping().unwrap();
    say(store, "s1", "alice", "a", 1_000);
    say(store, "s1", "alice", "b", 2_000);
    assert_eq!(
        store.count_active().unwrap(),
        1,
        "per session, not per message"
    );
    say(store, "s2", "alice", "c", 2_000);
    say(store, "s3", "bob", "d", 2_000);
    assert_eq!(store.count_active().unwrap(), 3);
    assert!(store.end("s2", 3_000).unwrap());
    assert_eq!(store.count_active().unwrap(), 2);
}

pub fn unknown_sessions_read_as_none(store: &dyn Store) {
    say(store, "s1", "alice", "a", 1_000);
    assert_eq!(store.session("s2").unwrap(), None);
    assert_eq!(store.session("").unwrap(), None);
    assert_eq!(store.session("s").unwrap(), None);
    assert_eq!(store.transcript("s2", None).unwrap(), None);
    assert_eq!(store.transcript("s2", Some(3)).unwrap(), None);
    assert_eq!(store.shared("", Window::ALL).unwrap(), None);
}
