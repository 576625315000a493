//! The admin API's reads (spec/http.md §Routes): who may call, the listing's filters,
//! orders and pages over sessions seeded into the store, one session of any owner, a
//! user's sessions, the metrics, and the per-admin rate limit.

mod common;

use chatbox::store::embedded::Embedded;
use chatbox::store::{Append, AssistingAdmin, Message, Sender, Store};
use common::{Server, TempDir, JWT_SECRET};
use serde_json::Value;

const HOUR: i64 = 3_600_000;

const ROUTES: [&str; 4] = [
    "/admin/sessions",
    "/admin/sessions/b1",
    "/admin/users/alice/sessions",
    "/admin/metrics",
];

fn token(user: &str, roles: &[&str]) -> String {
    let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
    let now = chatbox::time::unix_now();
    chatbox::auth::mint(JWT_SECRET.as_bytes(), user, None, &roles, now, Some(3600)).expect("mint")
}

fn get(server: &Server, path: &str, token: &str) -> (u16, Value) {
    let auth = format!("Authorization: Bearer {token}\r\n");
    let response = server.request("GET", &format!("/chatbox{path}"), &auth, "");
    (response.status, response.json())
}

fn admin_get(server: &Server, path: &str) -> Value {
    let (status, body) = get(server, path, &token("adm", &["admin"]));
    assert_eq!(status, 200, "{path}: {body}");
    body
}

fn ids(list: &Value) -> Vec<&str> {
    let sessions = list["sessions"].as_array().expect("sessions");
    sessions
        .iter()
        .map(|s| s["id"].as_str().expect("id"))
        .collect()
}

/// Five sessions, started 5 to 1 hours ago (`seed` in the store suite, on a clock that
/// the metrics' default range of a day covers):
///
/// | id | owner | start | messages | tokens | last activity | state |
/// |---|---|---|---|---|---|---|
/// | a1 | alice | -5 h | 1 | 0 | -5 h | active |
/// | b1 | bob | -4 h | 3 | 30 | -1 h | ended, assisted, help asked |
/// | a2 | alice | -3 h | 2 | 50 | -2 h | active, assisted |
/// | c1 | carol | -2 h 1 s | 1 | 0 | -2 h 1 s | ended |
/// | c2 | carol | -1 h | 2 | 50 | -30 min | active, help asked |
fn seeded(env: &[(&str, &str)]) -> Server {
    let data = TempDir::new();
    let now = chatbox::time::unix_millis_now();
    {
        let store = Embedded::open(data.path()).expect("open the data dir");
        let add = |session: &str, user: &str, at: i64, reply: Option<(i64, i64)>| {
            let sender = if reply.is_some() {
                Sender::Ai
            } else {
                Sender::User
            };
            let mut message = Message::new(format!("{session}-{at}"), sender, "text", now + at);
            if let Some((tokens, resp_ms)) = reply {
                message.tokens = Some(tokens);
                message.resp_ms = Some(resp_ms);
            }
            store
                .append(&Append {
                    session_id: session,
                    user_id: user,
                    name: session,
                    model_id: "",
                    message: &message,
                    max_messages: 100,
                })
                .expect("append");
        };
        add("a1", "alice", -5 * HOUR, None);
        add("b1", "bob", -4 * HOUR, None);
        add("b1", "bob", -4 * HOUR + 1_000, Some((10, 100)));
        add("b1", "bob", -HOUR, Some((20, 300)));
        add("a2", "alice", -3 * HOUR, None);
        add("a2", "alice", -2 * HOUR, Some((50, 600)));
        add("c1", "carol", -2 * HOUR - 1_000, None);
        add("c2", "carol", -HOUR, None);
        add("c2", "carol", -HOUR / 2, Some((50, 200)));
        let admin = AssistingAdmin {
            id: "adm".into(),
            name: "Ada".into(),
        };
        assert!(store.set_assist("b1", Some(&admin), now - HOUR).unwrap());
        assert!(store.set_assist("a2", Some(&admin), now - HOUR).unwrap());
        assert!(store.set_help_requested("b1", now - HOUR).unwrap());
        assert!(store.set_help_requested("c2", now - HOUR).unwrap());
        assert!(store.end("b1", now - HOUR / 2).unwrap());
        assert!(store.end("c1", now - HOUR).unwrap());
    }
    // The idle sweep at start-up would end the sessions idle for more than its TTL.
    let mut env = env.to_vec();
    env.push(("SESSION_TTL", "24h"));
    Server::start_in(common::binary(), data, &env)
}

#[test]
fn admin_routes_refuse_anyone_but_an_admin() {
    let server = seeded(&[]);
    for path in ROUTES {
        let response = server.request("GET", &format!("/chatbox{path}"), "", "");
        assert_eq!(response.status, 401, "{path} without a token");
        assert_eq!(response.json()["code"], "UNAUTHORIZED");
        let (status, body) = get(&server, path, &token("alice", &["user"]));
        assert_eq!(status, 403, "{path} with a user's token");
        assert_eq!(body["code"], "FORBIDDEN");
        assert_eq!(body["error"], "Insufficient permissions");
        for role in ["admin", "chat_admin"] {
            let (status, _) = get(&server, path, &token("adm", &[role]));
            assert_eq!(status, 200, "{path} as {role}");
        }
    }
    let response = server.request(
        "POST",
        "/chatbox/admin/sessions",
        &format!("Authorization: Bearer {}\r\n", token("adm", &["admin"])),
        "",
    );
    assert_eq!(response.status, 405);
}

#[test]
fn the_listing_filters_sorts_and_pages() {
    let server = seeded(&[]);
    let all = admin_get(&server, "/admin/sessions");
    assert_eq!(
        ids(&all),
        ["c2", "c1", "a2", "b1", "a1"],
        "newest start first"
    );
    assert_eq!(
        (&all["count"], &all["total"]),
        (&Value::from(5), &Value::from(5))
    );
    assert_eq!(
        (&all["limit"], &all["offset"]),
        (&Value::from(100), &Value::from(0))
    );
    let b1 = &all["sessions"][3];
    assert_eq!(b1["user_id"], "bob");
    assert_eq!(
        (
            &b1["admin_assisted"],
            &b1["help_requested"],
            &b1["is_active"]
        ),
        (&Value::from(true), &Value::from(true), &Value::from(false))
    );
    assert_eq!(
        (&b1["message_count"], &b1["total_tokens"]),
        (&Value::from(3), &Value::from(30))
    );

    let cases = [
        ("user_id=alice", vec!["a2", "a1"]),
        ("status=active", vec!["c2", "a2", "a1"]),
        ("status=ended", vec!["c1", "b1"]),
        ("admin_assisted=true", vec!["a2", "b1"]),
        ("admin_assisted=false", vec!["c2", "c1", "a1"]),
        ("sort_by=last_activity", vec!["c2", "b1", "a2", "c1", "a1"]),
        (
            "sort_by=last_activity&sort_order=asc",
            vec!["a1", "c1", "a2", "b1", "c2"],
        ),
        (
            "sort_by=end_time&sort_order=asc",
            vec!["a1", "a2", "c2", "c1", "b1"],
        ),
        ("sort_by=message_count", vec!["b1", "c2", "a2", "c1", "a1"]),
        (
            "sort_by=total_tokens&sort_order=asc",
            vec!["a1", "c1", "b1", "a2", "c2"],
        ),
        (
            "sort_by=user_id&sort_order=asc",
            vec!["a1", "a2", "b1", "c1", "c2"],
        ),
        (
            "sort_by=start_time&sort_order=asc",
            vec!["a1", "b1", "a2", "c1", "c2"],
        ),
        (
            "status=active&admin_assisted=false&sort_by=user_id",
            vec!["c2", "a1"],
        ),
    ];
    for (query, expected) in cases {
        let list = admin_get(&server, &format!("/admin/sessions?{query}"));
        assert_eq!(ids(&list), expected, "{query}");
        assert_eq!(list["total"], expected.len(), "{query}");
    }
    let page = admin_get(&server, "/admin/sessions?limit=2&offset=1");
    assert_eq!(ids(&page), ["c1", "a2"]);
    assert_eq!(
        (&page["count"], &page["total"]),
        (&Value::from(2), &Value::from(5))
    );

    // A time range, as an admin panel sends it: from 4.5 hours ago until 2.5 hours ago.
    let at = |hours_ago: f64| {
        let now = chatbox::time::unix_millis_now();
        chatbox::time::rfc3339_millis(now - (hours_ago * HOUR as f64) as i64)
    };
    let ranged = admin_get(
        &server,
        &format!(
            "/admin/sessions?start_time_from={}&start_time_to={}",
            at(4.5),
            at(2.5)
        ),
    );
    assert_eq!(ids(&ranged), ["a2", "b1"]);
    assert_eq!(ranged["total"], 2);
}

#[test]
fn bad_parameters_are_named_with_their_allowed_values() {
    let server = seeded(&[]);
    let admin = token("adm", &["admin"]);
    for (query, named) in [
        ("status=open", "active, ended"),
        ("admin_assisted=1", "true, false"),
        ("sort_by=name", "last_activity"),
        ("sort_order=up", "asc, desc"),
        ("limit=5000", "1 to 1000"),
        ("offset=x", "offset"),
        ("start_time_from=today", "start_time_from"),
    ] {
        let (status, body) = get(&server, &format!("/admin/sessions?{query}"), &admin);
        assert_eq!(status, 400, "{query}");
        assert_eq!(body["code"], "BAD_REQUEST");
        let message = body["error"].as_str().expect("error");
        assert!(message.contains(named), "{query}: {message}");
    }
    let (status, body) = get(
        &server,
        "/admin/metrics?start_time=2024-01-02T00:00:00Z&end_time=2024-01-01T00:00:00Z",
        &admin,
    );
    assert_eq!(status, 400, "end before start: {body}");
}

#[test]
fn one_session_of_any_owner_and_one_users_sessions() {
    let server = seeded(&[]);
    let b1 = admin_get(&server, "/admin/sessions/b1?limit=2");
    assert_eq!(
        (&b1["session_id"], &b1["user_id"]),
        (&Value::from("b1"), &Value::from("bob"))
    );
    assert_eq!(b1["messages"].as_array().expect("messages").len(), 2);
    assert_eq!(
        (&b1["has_more"], &b1["next_before"]),
        (&Value::from(true), &Value::from(1))
    );
    assert_eq!(b1["messages"][1]["sender"], "ai");
    let older = admin_get(&server, "/admin/sessions/b1?limit=2&before=1");
    assert_eq!(older["messages"].as_array().expect("messages").len(), 1);
    let (status, _) = get(&server, "/admin/sessions/nope", &token("adm", &["admin"]));
    assert_eq!(status, 404);

    let carol = admin_get(&server, "/admin/users/carol/sessions?sort_order=asc");
    assert_eq!(ids(&carol), ["c1", "c2"]);
    assert_eq!(carol["total"], 2);
    let nobody = admin_get(&server, "/admin/users/nobody/sessions");
    assert_eq!(nobody["sessions"], serde_json::json!([]));
    assert_eq!(nobody["total"], 0);
}

#[test]
fn metrics_match_the_seeded_sessions() {
    let server = seeded(&[]);
    let day = admin_get(&server, "/admin/metrics");
    let flat: Vec<&Value> = [
        "total_sessions",
        "active_sessions",
        "total_tokens",
        "avg_response_time",
        "max_response_time",
        "admin_assisted_count",
        "help_requests",
        "messages",
    ]
    .iter()
    .map(|key| &day[*key])
    .collect();
    // Replies of 100, 300, 600 and 200 ms: 300 on average.
    let expected = [5, 3, 130, 300, 600, 2, 2, 9].map(Value::from);
    assert_eq!(flat, expected.iter().collect::<Vec<_>>());
    let old = &day["metrics"];
    assert_eq!(
        (
            &old["TotalSessions"],
            &old["ActiveSessions"],
            &old["TotalTokens"]
        ),
        (&Value::from(5), &Value::from(3), &Value::from(130))
    );
    assert_eq!(
        (
            &old["AvgResponseTime"],
            &old["MaxResponseTime"],
            &old["AdminAssistedCount"]
        ),
        (&Value::from(300), &Value::from(600), &Value::from(2))
    );
    assert!(day["time_range"]["start"]
        .as_str()
        .expect("start")
        .ends_with('Z'));

    // Only the sessions started in the range: b1 and a2.
    let now = chatbox::time::unix_millis_now();
    let from = chatbox::time::rfc3339_millis(now - 4 * HOUR - HOUR / 2);
    let to = chatbox::time::rfc3339_millis(now - 5 * HOUR / 2);
    let some = admin_get(
        &server,
        &format!("/admin/metrics?start_time={from}&end_time={to}"),
    );
    assert_eq!(
        (
            &some["total_sessions"],
            &some["active_sessions"],
            &some["total_tokens"]
        ),
        (&Value::from(2), &Value::from(1), &Value::from(80))
    );
    assert_eq!(
        (
            &some["avg_response_time"],
            &some["messages"],
            &some["help_requests"]
        ),
        (&Value::from(333), &Value::from(5), &Value::from(1))
    );
    assert_eq!(some["time_range"]["start"], from.as_str());
}

#[test]
fn each_admin_has_a_rate_limit_of_their_own() {
    let server = seeded(&[("ADMIN_RATE_LIMIT", "3"), ("ADMIN_RATE_WINDOW", "1m")]);
    let busy = token("busy", &["admin"]);
    for _ in 0..3 {
        assert_eq!(get(&server, "/admin/metrics", &busy).0, 200);
    }
    let auth = format!("Authorization: Bearer {busy}\r\n");
    let refused = server.request("GET", "/chatbox/admin/sessions", &auth, "");
    assert_eq!(refused.status, 429);
    // The takeover routes are admin routes too: the same allowance covers them.
    let takeover = server.request("POST", "/chatbox/admin/takeover/some-session", &auth, "");
    assert_eq!(takeover.status, 429, "a takeover past the admin's limit");
    let body = refused.json();
    assert_eq!(body["error"], "rate_limit_exceeded");
    let wait_ms = body["retry_after_ms"].as_u64().expect("retry_after_ms");
    assert!(wait_ms > 0 && wait_ms <= 60_000, "{wait_ms}");
    let retry_after: u64 = refused
        .header("Retry-After")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert_eq!(retry_after, wait_ms.div_ceil(1000).max(1));
    assert_eq!(
        get(&server, "/admin/sessions", &token("calm", &["chat_admin"])).0,
        200,
        "another admin is not limited by the first"
    );
    let scrape = server.get("/chatbox/metrics/prometheus");
    let text = String::from_utf8_lossy(&scrape.body);
    assert!(
        text.lines().any(|l| l
            .starts_with(r#"chatbox_ratelimit_blocked_total{limiter="message"} "#)
            && !l.ends_with(" 0")),
        "{text}"
    );
}
