use serde_json::Value;

use super::*;
use crate::net::http::test_head;
use crate::store::{AdminPage, Session, Transcript};

fn head(query: &str) -> RequestHead {
    test_head(&format!(
        "GET /admin/sessions?{query} HTTP/1.1\r\nHost: x\r\n\r\n"
    ))
}

fn query(text: &str) -> AdminQuery {
    match Call::list(&head(text)) {
        Ok(Call::List(query)) => query,
        Ok(_) => panic!("not a listing"),
        Err(response) => panic!("{text}: {}", String::from_utf8_lossy(&response.body)),
    }
}

/// The 400's message for a query that must be refused.
fn refused(text: &str) -> String {
    let Err(response) = Call::list(&head(text)) else {
        panic!("{text} was accepted");
    };
    assert_eq!(response.status, 400, "{text}");
    let body: Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(body["code"], "BAD_REQUEST");
    body["error"].as_str().unwrap().to_owned()
}

#[test]
fn defaults_are_the_specs() {
    assert_eq!(query(""), AdminQuery::all(LIST_DEFAULT));
}

#[test]
fn every_parameter_is_read() {
    let q = query(
        "user_id=u%201&status=ended&admin_assisted=true&sort_by=last_activity&sort_order=asc\
         &limit=50&offset=20&start_time_from=2024-01-01T00:00:00Z\
         &start_time_to=2024-01-02T00:00:00%2B01:00",
    );
    assert_eq!(
        q,
        AdminQuery {
            user_id: Some("u 1".into()),
            active: Some(false),
            admin_assisted: Some(true),
            started_from: Some(1_704_067_200_000),
            started_to: Some(1_704_150_000_000),
            sort: SortBy::LastActivity,
            order: Order::Asc,
            offset: 20,
            limit: 50,
        }
    );
    assert_eq!(query("status=active").active, Some(true));
    assert_eq!(query("admin_assisted=false").admin_assisted, Some(false));
    assert_eq!(query("user_id=").user_id, None);
    for sort in SortBy::ALL {
        assert_eq!(query(&format!("sort_by={}", sort.name())).sort, sort);
    }
}

#[test]
fn an_unescaped_offset_sign_still_reads() {
    let q = query("start_time_from=2024-01-02T00:00:00+01:00");
    assert_eq!(q.started_from, Some(1_704_150_000_000));
}

#[test]
fn a_bad_value_names_the_parameter_and_what_it_may_be() {
    let cases = [
        (
            "status=open",
            "Invalid status, expected one of: active, ended",
        ),
        (
            "admin_assisted=yes",
            "Invalid admin_assisted, expected one of: true, false",
        ),
        (
            "sort_by=name",
            "Invalid sort_by, expected one of: start_time, end_time, message_count, \
             total_tokens, user_id, last_activity",
        ),
        (
            "sort_order=up",
            "Invalid sort_order, expected one of: asc, desc",
        ),
        ("limit=0", "limit must be a number from 1 to 1000"),
        ("limit=1001", "limit must be a number from 1 to 1000"),
        ("limit=x", "limit must be a number from 1 to 1000"),
        ("offset=-1", "offset must be a number, 0 or more"),
    ];
    for (text, message) in cases {
        assert_eq!(refused(text), message, "{text}");
    }
    assert!(refused("start_time_from=yesterday").contains("start_time_from"));
    assert!(refused("start_time_to=2024-13-01T00:00:00Z").contains("RFC3339"));
    let long = "u".repeat(USER_ID_MAX + 1);
    assert!(refused(&format!("user_id={long}")).contains("255"));
    assert_eq!(
        query(&format!("user_id={}", &long[1..])).user_id,
        Some(long[1..].into())
    );
}

#[test]
fn the_path_names_the_owner_of_user_sessions() {
    let Ok(Call::List(q)) = Call::user_sessions(&head("user_id=other&limit=5"), "alice") else {
        panic!("a listing");
    };
    assert_eq!((q.user_id.as_deref(), q.limit), (Some("alice"), 5));
}

#[test]
fn metrics_default_to_the_last_day_and_check_the_order() {
    let now = 1_704_067_200_000;
    let metrics_head = |q: &str| {
        test_head(&format!(
            "GET /admin/metrics?{q} HTTP/1.1\r\nHost: x\r\n\r\n"
        ))
    };
    let Ok(Call::Metrics { from, to }) = Call::metrics(&metrics_head(""), now) else {
        panic!("metrics");
    };
    assert_eq!((from, to), (now - METRICS_DEFAULT_SPAN, now));
    let Ok(Call::Metrics { from, to }) = Call::metrics(
        &metrics_head("start_time=2023-12-31T00:00:00Z&end_time=2023-12-31T12:00:00Z"),
        now,
    ) else {
        panic!("metrics");
    };
    assert_eq!((from, to), (1_703_980_800_000, 1_704_024_000_000));
    let Err(backwards) = Call::metrics(
        &metrics_head("start_time=2023-12-31T12:00:00Z&end_time=2023-12-31T00:00:00Z"),
        now,
    ) else {
        panic!("end before start is refused");
    };
    assert_eq!(backwards.status, 400);
    let Err(bad) = Call::metrics(&metrics_head("end_time=noon"), now) else {
        panic!("a bad time is refused");
    };
    assert!(String::from_utf8_lossy(&bad.body).contains("end_time"));
}

/// Answers the admin reads from fixed values; no other call is made.
struct Fixed;

impl Fixed {
    fn session() -> Session {
        Session::new("s1", "alice", "Chat", "m", 1_704_067_200_000)
    }
}

impl Store for Fixed {
    fn append(&self, _: &crate::store::Append) -> crate::store::Result<u64> {
        unreachable!()
    }
    fn session(&self, _: &str) -> crate::store::Result<Option<Session>> {
        unreachable!()
    }
    fn transcript_page(&self, id: &str, _: Window) -> crate::store::Result<Option<Transcript>> {
        Ok((id == "s1").then(|| Transcript {
            session: Fixed::session(),
            messages: Vec::new(),
        }))
    }
    fn latest_active(&self, _: &str) -> crate::store::Result<Option<Session>> {
        unreachable!()
    }
    fn user_sessions(&self, _: &str, _: usize) -> crate::store::Result<Vec<Session>> {
        unreachable!()
    }
    fn set_model(&self, _: &str, _: &str, _: Millis) -> crate::store::Result<bool> {
        unreachable!()
    }
    fn set_assist(
        &self,
        _: &str,
        _: Option<&crate::store::AssistingAdmin>,
        _: Millis,
    ) -> crate::store::Result<bool> {
        unreachable!()
    }
    fn set_help_requested(&self, _: &str, _: Millis) -> crate::store::Result<bool> {
        unreachable!()
    }
    fn end(&self, _: &str, _: Millis) -> crate::store::Result<bool> {
        unreachable!()
    }
    fn share(&self, _: &str, _: &str, _: Millis) -> crate::store::Result<Option<String>> {
        unreachable!()
    }
    fn unshare(&self, _: &str, _: Millis) -> crate::store::Result<bool> {
        unreachable!()
    }
    fn shared(&self, _: &str, _: Window) -> crate::store::Result<Option<Transcript>> {
        unreachable!()
    }
    fn end_idle(&self, _: Millis, _: Millis) -> crate::store::Result<Vec<String>> {
        unreachable!()
    }
    fn count_active(&self) -> crate::store::Result<u64> {
        unreachable!()
    }
    fn admin_sessions(&self, query: &AdminQuery) -> crate::store::Result<AdminPage> {
        Ok(AdminPage {
            sessions: vec![Fixed::session()],
            total: 7 + query.offset,
        })
    }
    fn session_metrics(&self, _: Millis, _: Millis) -> crate::store::Result<Aggregate> {
        Ok(Aggregate {
            sessions: 5,
            active: 3,
            total_tokens: 130,
            avg_resp_ms: 300,
            max_resp_ms: 600,
            admin_assisted: 2,
            help_requested: 1,
            messages: 10,
        })
    }
    fn ping(&self) -> crate::store::Result<()> {
        unreachable!()
    }
}

fn body(response: &Response) -> Value {
    serde_json::from_slice(&response.body).unwrap()
}

#[test]
fn a_listing_has_the_specs_shape() {
    let q = AdminQuery {
        offset: 2,
        ..AdminQuery::all(10)
    };
    let response = Call::List(q).run(&Fixed, 1_704_067_260_000);
    assert_eq!(response.status, 200);
    let list = body(&response);
    assert_eq!(
        (
            &list["count"],
            &list["limit"],
            &list["offset"],
            &list["total"]
        ),
        (
            &Value::from(1),
            &Value::from(10),
            &Value::from(2),
            &Value::from(9)
        )
    );
    assert_eq!(list["sessions"][0]["id"], "s1");
    assert_eq!(list["sessions"][0]["user_id"], "alice");
    assert_eq!(list["sessions"][0]["duration"], 60);
}

#[test]
fn one_session_comes_with_its_owner_and_messages() {
    let page = Window {
        before: None,
        limit: 10,
    };
    let found = Call::Get {
        session_id: "s1".into(),
        page,
    }
    .run(&Fixed, 0);
    let found = body(&found);
    assert_eq!(
        (&found["session_id"], &found["user_id"]),
        (&Value::from("s1"), &Value::from("alice"))
    );
    assert_eq!(found["messages"], Value::Array(Vec::new()));
    assert_eq!(found["has_more"], false);
    let missing = Call::Get {
        session_id: "nope".into(),
        page,
    }
    .run(&Fixed, 0);
    assert_eq!(missing.status, 404);
}

#[test]
fn metrics_come_in_both_shapes() {
    let response = Call::Metrics {
        from: 1_703_980_800_000,
        to: 1_704_067_200_000,
    }
    .run(&Fixed, 0);
    let m = body(&response);
    let old = &m["metrics"];
    assert_eq!(
        [
            &old["TotalSessions"],
            &old["ActiveSessions"],
            &old["TotalTokens"],
            &old["AvgResponseTime"],
            &old["MaxResponseTime"],
            &old["AdminAssistedCount"],
        ],
        [5, 3, 130, 300, 600, 2].map(Value::from).each_ref()
    );
    assert_eq!(
        [
            &m["total_sessions"],
            &m["active_sessions"],
            &m["total_tokens"],
            &m["avg_response_time"],
            &m["max_response_time"],
            &m["admin_assisted_count"],
            &m["help_requests"],
            &m["messages"],
        ],
        [5, 3, 130, 300, 600, 2, 1, 10].map(Value::from).each_ref()
    );
    assert_eq!(m["time_range"]["start"], "2023-12-31T00:00:00.000Z");
    assert_eq!(m["time_range"]["end"], "2024-01-01T00:00:00.000Z");
}
