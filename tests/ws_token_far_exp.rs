//! A validly signed token whose `exp` lies absurdly far ahead is refused with 401, and
//! the server lives on: such an `exp` once overflowed the loop's clock and took the
//! whole process down from the upgrade path.
mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::ws::upgrade;
use common::Server;
use serde_json::json;

/// HS256 by hand (`chatbox token` refuses an exp this far ahead).
fn signed(exp: serde_json::Value) -> String {
    let claims = json!({"user_id": "u", "roles": [], "exp": exp});
    let head = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{head}.{body}");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, common::JWT_SECRET.as_bytes());
    let tag = ring::hmac::sign(&key, signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag))
}

#[test]
fn far_future_exp_is_401_and_the_server_survives() {
    let server = Server::start(&[]);
    let eleven_years = chatbox::time::unix_now() + 11 * 365 * 24 * 3600;
    for exp in [json!(1e19), json!(1e300), json!(eleven_years)] {
        let token = signed(exp.clone());
        for (target, header) in [
            (format!("/chatbox/ws?token={token}"), String::new()),
            (
                "/chatbox/ws".to_owned(),
                format!("Authorization: Bearer {token}\r\n"),
            ),
        ] {
            let refused = upgrade(&server, &target, &header).expect_err("a far exp is refused");
            assert_eq!(refused.status, 401, "exp {exp}");
        }
        let api = server.request(
            "GET",
            "/chatbox/sessions",
            &format!("Authorization: Bearer {token}\r\n"),
            "",
        );
        assert_eq!(api.status, 401, "exp {exp}");
        assert_eq!(api.json()["code"], "INVALID_TOKEN");
        assert_eq!(
            server.get("/chatbox/healthz").status,
            200,
            "after exp {exp}"
        );
    }
}
