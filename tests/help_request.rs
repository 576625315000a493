//! A help request through the real binary (spec/websocket.md, help request): the flag
//! is stored, the user is told, and every connected admin socket gets a
//! `notification`. (The cap on mail and SMS is checked in the engine's tests; the
//! channels themselves in the notifier's.)

mod common;

use common::chat::{bearer, Client};
use common::Server;
use serde_json::json;

#[test]
fn a_help_request_is_stored_and_every_admin_socket_hears_of_it() {
    let server = Server::start(&[]);
    let mut ann = Client::connect(&server, "ann", "");
    ann.ask("Hello");
    let session = ann.session_id.clone();
    let mut ada = Client::connect_admin(&server, "ada");
    let mut ada_laptop = Client::connect_admin(&server, "ada");
    let mut bob = Client::connect_admin(&server, "bob");

    ann.send(json!({"type": "help_request", "session_id": session}));
    let told = ann.expect("connection_status", &[]);
    assert_eq!(
        told["content"],
        "Help request sent. An administrator will join your session shortly."
    );
    for admin in [&mut ada, &mut ada_laptop, &mut bob] {
        let alert = admin.expect("notification", &[]);
        assert_eq!(alert["session_id"], session.as_str());
        assert_eq!(alert["user_id"], "ann");
        assert_eq!(alert["metadata"]["event"], "help_request");
    }

    let response = server.request("GET", "/chatbox/sessions", &bearer("ann"), "");
    assert_eq!(response.json()["sessions"][0]["help_requested"], true);
}
