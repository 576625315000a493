//! WebSocket admission: token (header or query), origin, the per-user socket limit, and
//! plain-text refusals before any upgrade.
mod common;

use common::ws::{self, chat_socket, read_json, upgrade};
use common::Server;

fn body(response: &common::HttpResponse) -> String {
    String::from_utf8_lossy(&response.body).into_owned()
}

#[test]
fn missing_invalid_and_expired_tokens_are_401() {
    let server = Server::start(&[]);
    let missing = upgrade(&server, "/chatbox/ws", "").expect_err("no token");
    assert_eq!(
        (missing.status, body(&missing).as_str()),
        (401, "Missing authentication token")
    );

    let forged = chatbox::auth::mint(
        b"another-secret-of-32-bytes-len!!x",
        "u",
        None,
        &[],
        chatbox::time::unix_now(),
        Some(60),
    )
    .expect("mint");
    let invalid = upgrade(&server, &format!("/chatbox/ws?token={forged}"), "").expect_err("forged");
    assert_eq!(
        (invalid.status, body(&invalid).as_str()),
        (401, "Authentication failed")
    );

    let expired = chatbox::auth::mint(
        common::JWT_SECRET.as_bytes(),
        "u",
        None,
        &[],
        1_000_000,
        Some(60),
    )
    .expect("mint");
    let refused = upgrade(
        &server,
        "/chatbox/ws",
        &format!("Authorization: Bearer {expired}\r\n"),
    )
    .expect_err("expired");
    assert_eq!(refused.status, 401);
    assert_eq!(
        refused.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
}

#[test]
fn token_in_header_or_query_opens_a_socket_that_answers_ping() {
    let server = Server::start(&[]);
    let mut by_header = chat_socket(&server, "ann").expect("header token");
    let token = ws::token("ann", 60);
    let mut by_query =
        upgrade(&server, &format!("/chatbox/ws?token={token}"), "").expect("query token");
    for socket in [&mut by_header, &mut by_query] {
        let status = read_json(socket);
        assert_eq!(status["type"], "connection_status");
        assert_eq!(status["user_id"], "ann");
        ws::send_text(socket, r#"{"type":"ping"}"#);
        let pong = read_json(socket);
        assert_eq!(pong["type"], "pong");
        assert_eq!(pong["sender"], "system");
    }
    ws::send_text(&mut by_header, "{nonsense");
    let error = read_json(&mut by_header);
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["code"], "INVALID_FORMAT");
}

#[test]
fn origin_is_checked_when_configured() {
    let server = Server::start(&[("WS_ALLOWED_ORIGINS", "https://chat.example.org")]);
    let token = ws::token("ann", 60);
    let bad = upgrade(
        &server,
        &format!("/chatbox/ws?token={token}"),
        "Origin: https://evil.example.org\r\n",
    )
    .expect_err("bad origin");
    assert_eq!((bad.status, body(&bad).as_str()), (403, "Forbidden"));
    upgrade(
        &server,
        &format!("/chatbox/ws?token={token}"),
        "Origin: https://chat.example.org\r\n",
    )
    .expect("listed origin");
}

#[test]
fn eleventh_socket_is_429_and_failed_upgrades_do_not_count() {
    let server = Server::start(&[("WS_ALLOWED_ORIGINS", "https://chat.example.org")]);
    let token = ws::token("ann", 3600);
    let target = format!("/chatbox/ws?token={token}");
    let good = "Origin: https://chat.example.org\r\n";
    let mut open: Vec<_> = (0..9)
        .map(|_| upgrade(&server, &target, good).expect("socket"))
        .collect();
    // Refused upgrades of the same user (bad origin) must not use up the limit.
    for _ in 0..5 {
        let refused =
            upgrade(&server, &target, "Origin: https://evil.example.org\r\n").expect_err("origin");
        assert_eq!(refused.status, 403);
    }
    open.push(upgrade(&server, &target, good).expect("the 10th socket"));
    let over = upgrade(&server, &target, good).expect_err("the 11th socket");
    assert_eq!(
        (over.status, body(&over).as_str()),
        (429, "Connection limit exceeded, please try again later")
    );
    assert_eq!(read_json(&mut open[0])["type"], "connection_status");
    let notice = read_json(&mut open[0]);
    assert_eq!(notice["type"], "notification");
    // Another user is not affected.
    let bob = format!("/chatbox/ws?token={}", ws::token("bob", 60));
    upgrade(&server, &bob, good).expect("bob's socket");
    // Closing one frees a place.
    drop(open.pop());
    let mut reopened = None;
    for _ in 0..50 {
        if let Ok(socket) = upgrade(&server, &target, good) {
            reopened = Some(socket);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(reopened.is_some(), "a closed socket frees its place");
}
