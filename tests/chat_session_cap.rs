//! `MAX_MESSAGES_PER_SESSION` admits the user's message that reaches it, stores the
//! reply that message is owed, and refuses the next one.
mod common;

use common::chat::{stored_messages, Client};
use common::Server;

#[test]
fn a_session_accepts_its_last_message_and_keeps_the_reply() {
    let server = Server::start(&[("MAX_MESSAGES_PER_SESSION", "3")]);
    let mut ann = Client::connect(&server, "ann", "");
    ann.ask("one");
    // Two messages stored; the third is the user's to send.
    let reply = ann.ask("two");
    assert!(!reply.text.is_empty());
    let stored = stored_messages(&server, "ann", &ann.session_id, 4);
    assert_eq!(stored.len(), 4, "the owed reply is kept past the cap");
    assert_eq!(stored[2]["content"], "two");
    assert_eq!(stored[3]["sender"], "ai");

    ann.say("three");
    let error = ann.expect("error", &[]);
    assert_eq!(error["error"]["code"], "SERVICE_ERROR");
    assert_eq!(
        error["error"]["message"],
        "Session is full, start a new chat"
    );
}
