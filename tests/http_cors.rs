//! CORS refusals are the spec's generic 403: `{"error":"Insufficient permissions",
//! "code":"FORBIDDEN"}`, naming no origin.
mod common;

use common::chat::bearer;
use common::Server;
use serde_json::json;

#[test]
fn an_unlisted_origin_gets_the_specs_forbidden() {
    let server = Server::start(&[("CORS_ALLOWED_ORIGINS", "https://chat.example.org")]);
    let refused = server.request(
        "GET",
        "/chatbox/models",
        &format!("{}Origin: https://evil.example.org\r\n", bearer("ann")),
        "",
    );
    assert_eq!(refused.status, 403);
    assert_eq!(
        refused.json(),
        json!({"error": "Insufficient permissions", "code": "FORBIDDEN"})
    );
    let allowed = server.request(
        "GET",
        "/chatbox/models",
        &format!("{}Origin: https://chat.example.org\r\n", bearer("ann")),
        "",
    );
    assert_eq!(allowed.status, 200);
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://chat.example.org")
    );
}
