//! The admin desk's reads: every filter, every order both ways, pages with `total`,
//! and the metrics of a time range, against one seeded set of sessions.
//!
//! Times are whole seconds: nx-27017 (the MongoDB of the tests) compares dates to the
//! second.

use chatbox::store::{AdminQuery, AssistingAdmin, Order, SortBy, Store};

use super::{append_as, ids, message, say};
use chatbox::store::Sender;

const SEC: i64 = 1_000;

/// | id | owner | start | messages | tokens | last activity | state |
/// |---|---|---|---|---|---|---|
/// | a1 | alice | 10 s | 1 | 0 | 10 s | active |
/// | b1 | bob | 20 s | 3 | 30 | 95 s | ended at 100 s, assisted, help asked |
/// | a2 | alice | 30 s | 2 | 50 | 60 s | active, assisted |
/// | c1 | carol | 40 s | 1 | 0 | 40 s | ended at 50 s |
/// | c2 | carol | 50 s | 3 | 50 | 70 s | active, help asked |
fn seed(store: &dyn Store) {
    let admin = AssistingAdmin {
        id: "adm".into(),
        name: "Ada".into(),
    };
    let reply = |session: &str, user: &str, at: i64, tokens: i64, resp_ms: i64| {
        let mut m = message(&format!("{session}-r{at}"), Sender::Ai, "answer", at);
        m.tokens = Some(tokens);
        m.resp_ms = Some(resp_ms);
        append_as(store, session, user, &m).expect("reply");
    };
    say(store, "a1", "alice", "hi", 10 * SEC);
    say(store, "b1", "bob", "hi", 20 * SEC);
    reply("b1", "bob", 25 * SEC, 10, 100);
    reply("b1", "bob", 95 * SEC, 20, 300);
    say(store, "a2", "alice", "hi", 30 * SEC);
    reply("a2", "alice", 60 * SEC, 50, 600);
    say(store, "c1", "carol", "hi", 40 * SEC);
    say(store, "c2", "carol", "hi", 50 * SEC);
    say(store, "c2", "carol", "more", 55 * SEC);
    reply("c2", "carol", 70 * SEC, 50, 200);
    assert!(store.set_assist("b1", Some(&admin), 96 * SEC).unwrap());
    assert!(store.set_assist("b1", None, 97 * SEC).unwrap());
    assert!(store.set_assist("a2", Some(&admin), 61 * SEC).unwrap());
    assert!(store.set_help_requested("b1", 98 * SEC).unwrap());
    assert!(store.set_help_requested("c2", 71 * SEC).unwrap());
    assert!(store.end("b1", 100 * SEC).unwrap());
    assert!(store.end("c1", 50 * SEC).unwrap());
}

fn listed(store: &dyn Store, query: &AdminQuery) -> (Vec<String>, u64) {
    let page = store.admin_sessions(query).expect("admin_sessions");
    let listed = ids(&page.sessions).into_iter().map(str::to_owned).collect();
    (listed, page.total)
}

pub fn admin_filters_narrow_the_listing(store: &dyn Store) {
    seed(store);
    let all = AdminQuery::all(100);
    let cases: Vec<(AdminQuery, &[&str])> = vec![
        (all.clone(), &["c2", "c1", "a2", "b1", "a1"]),
        (
            AdminQuery {
                user_id: Some("alice".into()),
                ..all.clone()
            },
            &["a2", "a1"],
        ),
        (
            AdminQuery {
                user_id: Some("nobody".into()),
                ..all.clone()
            },
            &[],
        ),
        (
            AdminQuery {
                active: Some(true),
                ..all.clone()
            },
            &["c2", "a2", "a1"],
        ),
        (
            AdminQuery {
                active: Some(false),
                ..all.clone()
            },
            &["c1", "b1"],
        ),
        (
            AdminQuery {
                admin_assisted: Some(true),
                ..all.clone()
            },
            &["a2", "b1"],
        ),
        (
            AdminQuery {
                admin_assisted: Some(false),
                ..all.clone()
            },
            &["c2", "c1", "a1"],
        ),
        (
            AdminQuery {
                started_from: Some(20 * SEC),
                started_to: Some(40 * SEC),
                ..all.clone()
            },
            &["c1", "a2", "b1"],
        ),
        (
            AdminQuery {
                started_from: Some(31 * SEC),
                ..all.clone()
            },
            &["c2", "c1"],
        ),
        (
            AdminQuery {
                started_to: Some(29 * SEC),
                ..all.clone()
            },
            &["b1", "a1"],
        ),
        (
            AdminQuery {
                user_id: Some("carol".into()),
                active: Some(true),
                admin_assisted: Some(false),
                started_from: Some(45 * SEC),
                ..all.clone()
            },
            &["c2"],
        ),
        (
            AdminQuery {
                active: Some(true),
                admin_assisted: Some(true),
                started_to: Some(30 * SEC),
                ..all.clone()
            },
            &["a2"],
        ),
    ];
    for (query, expected) in cases {
        let (found, total) = listed(store, &query);
        assert_eq!(found, expected, "{query:?}");
        assert_eq!(total, expected.len() as u64, "{query:?}");
    }
}

pub fn admin_sorts_by_every_field_both_ways(store: &dyn Store) {
    seed(store);
    let expected: [(SortBy, &[&str]); 6] = [
        (SortBy::StartTime, &["a1", "b1", "a2", "c1", "c2"]),
        // Active sessions (no end) first, ascending.
        (SortBy::EndTime, &["a1", "a2", "c2", "c1", "b1"]),
        // Ties in id order.
        (SortBy::MessageCount, &["a1", "c1", "a2", "b1", "c2"]),
        (SortBy::TotalTokens, &["a1", "c1", "b1", "a2", "c2"]),
        (SortBy::UserId, &["a1", "a2", "b1", "c1", "c2"]),
        (SortBy::LastActivity, &["a1", "c1", "a2", "c2", "b1"]),
    ];
    assert_eq!(expected.len(), SortBy::ALL.len());
    for (sort, ascending) in expected {
        for order in [Order::Asc, Order::Desc] {
            let query = AdminQuery {
                sort,
                order,
                ..AdminQuery::all(100)
            };
            let mut want: Vec<&str> = ascending.to_vec();
            if order == Order::Desc {
                want.reverse();
            }
            assert_eq!(listed(store, &query).0, want, "{sort:?} {order:?}");
            // The same order under a filter, read from another path in each backend.
            let carol = AdminQuery {
                user_id: Some("carol".into()),
                ..query.clone()
            };
            let want_carol: Vec<&str> = want
                .iter()
                .copied()
                .filter(|id| id.starts_with('c'))
                .collect();
            assert_eq!(
                listed(store, &carol).0,
                want_carol,
                "carol {sort:?} {order:?}"
            );
            for (active, ids) in [
                (true, ["a1", "a2", "c2"].as_slice()),
                (false, &["b1", "c1"]),
            ] {
                let by_status = AdminQuery {
                    active: Some(active),
                    ..query.clone()
                };
                let want_status: Vec<&str> =
                    want.iter().copied().filter(|id| ids.contains(id)).collect();
                assert_eq!(
                    listed(store, &by_status).0,
                    want_status,
                    "active={active} {sort:?} {order:?}"
                );
            }
        }
    }
}

pub fn admin_pages_carry_the_total(store: &dyn Store) {
    seed(store);
    let page = |offset: u64, limit: usize, from: Option<i64>| {
        listed(
            store,
            &AdminQuery {
                offset,
                limit,
                started_from: from,
                ..AdminQuery::all(limit)
            },
        )
    };
    assert_eq!(page(0, 2, None), (vec!["c2".into(), "c1".into()], 5));
    assert_eq!(page(2, 2, None), (vec!["a2".into(), "b1".into()], 5));
    assert_eq!(page(4, 2, None), (vec!["a1".into()], 5));
    assert_eq!(page(9, 2, None), (vec![], 5));
    assert_eq!(page(1, 1, Some(20 * SEC)), (vec!["c1".into()], 4));
    let by_tokens = AdminQuery {
        sort: SortBy::TotalTokens,
        started_from: Some(20 * SEC),
        offset: 1,
        limit: 2,
        ..AdminQuery::all(2)
    };
    assert_eq!(
        listed(store, &by_tokens),
        (vec!["a2".into(), "b1".into()], 4)
    );
    let with_owner = AdminQuery {
        user_id: Some("carol".into()),
        offset: 1,
        ..AdminQuery::all(1)
    };
    assert_eq!(listed(store, &with_owner), (vec!["c1".into()], 2));
}

pub fn admin_metrics_sum_the_sessions_started_in_range(store: &dyn Store) {
    assert_eq!(
        store.session_metrics(0, 1_000 * SEC).unwrap(),
        Default::default(),
        "an empty store sums to zero"
    );
    seed(store);
    let all = store.session_metrics(0, 1_000 * SEC).unwrap();
    assert_eq!(all.sessions, 5);
    assert_eq!(all.active, 3);
    assert_eq!(all.total_tokens, 130);
    assert_eq!(all.max_resp_ms, 600);
    // Replies 100, 300, 600, 200: 1200 / 4.
    assert_eq!(all.avg_resp_ms, 300);
    assert_eq!(all.admin_assisted, 2);
    assert_eq!(all.help_requested, 2);
    assert_eq!(all.messages, 10);
    // Bounds are inclusive: b1 (20 s) to c1 (40 s).
    let some = store.session_metrics(20 * SEC, 40 * SEC).unwrap();
    assert_eq!(
        (some.sessions, some.active, some.total_tokens, some.messages),
        (3, 1, 80, 6)
    );
    assert_eq!((some.max_resp_ms, some.avg_resp_ms), (600, 333));
    assert_eq!((some.admin_assisted, some.help_requested), (2, 1));
    let none = store.session_metrics(11 * SEC, 19 * SEC).unwrap();
    assert_eq!(none, Default::default());
}
