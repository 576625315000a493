//! What an idle socket costs the core (issue 18, target 1): its state and its
//! session's stay small, and what a session needs only while something is under way
//! goes back to the allocator once that is over.

use super::*;
use crate::chat::hub::SocketState;
use crate::chat::session::Live;

/// Each is one heap block per idle chat socket (glibc adds an 8-byte header and
/// rounds up to 16): a field added inline shows up ten thousand times in
/// `chatbox-bench connect`. Box what an idle socket does not use.
#[test]
fn an_idle_sockets_state_and_session_stay_small() {
    let socket = std::mem::size_of::<SocketState>();
    let session = std::mem::size_of::<Live>();
    assert!(socket <= 88, "SocketState: {socket} bytes");
    assert!(session <= 152, "Live: {session} bytes");
}

#[test]
fn a_sessions_rare_parts_go_back_once_its_reply_is_stored_and_expired() {
    let mut h = Harness::new();
    let (socket, session) = h.fresh("ann");
    assert_eq!(h.chat.footprint().sessions_busy, 0, "a fresh session");
    let (llm, _) = h.say(socket, &session, "hello");
    assert_eq!(
        h.chat.footprint().sessions_busy,
        0,
        "the message is stored: nothing rare while the reply streams"
    );
    h.chunk(llm, "hi");
    let out = h.finish(llm, Ok(Finish::default()));
    let [append] = &appends(&out)[..] else {
        panic!("the reply is stored");
    };
    h.store(append.id, Ok(StoreReply::Appended(2)));
    assert_eq!(
        h.chat.footprint().sessions_busy,
        1,
        "the finished reply is kept for a reconnect"
    );
    h.advance(Duration::from_secs(899));
    h.event(Event::Tick);
    assert_eq!(h.chat.footprint().sessions_busy, 1, "not yet");
    h.advance(Duration::from_secs(1));
    h.event(Event::Tick);
    assert_eq!(h.chat.footprint().sessions_busy, 0);
}
