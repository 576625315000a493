//! Cluster-wide limits and state over a real Redis, with two chatbox processes sharing
//! one MongoDB (docs/SCALE-OUT.md): the per-user socket limit counts the user's
//! sockets on every pod, one admin at a time assists a session whichever pods they
//! are on, and ending a session on one pod reaches its sockets on the other.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::chat::{admin_bearer, bearer, Client};
use common::pods::Cluster;
use common::ws::{read_close, upgrade};
use common::{HttpResponse, Server};

const LIMIT: &str = "3";

/// Upgrades as `user` on `server` until it is refused, closing what was admitted
/// meanwhile: another pod's count reaches this one a moment after it changed.
fn refused_within(server: &Server, user: &str, limit: Duration) -> HttpResponse {
    let deadline = Instant::now() + limit;
    loop {
        match upgrade(server, "/chatbox/ws", &bearer(user)) {
            Err(refused) => return refused,
            Ok(admitted) => drop(admitted),
        }
        assert!(Instant::now() < deadline, "{user} stayed admitted");
        thread::sleep(Duration::from_millis(50));
    }
}

/// Upgrades as `user` on `server` until it is admitted.
fn admitted_within(server: &Server, user: &str, limit: Duration) -> Client {
    let deadline = Instant::now() + limit;
    while upgrade(server, "/chatbox/ws", &bearer(user)).is_err() {
        assert!(Instant::now() < deadline, "{user} stayed refused");
        thread::sleep(Duration::from_millis(50));
    }
    Client::connect(server, user, "")
}

#[test]
fn the_socket_limit_counts_the_users_sockets_on_every_pod() {
    let cluster = Cluster::start_with(2, &[("MAX_CONNECTIONS_PER_USER", LIMIT)]);
    cluster.redis.wait_subscribers("chatbox:sockets", 2);
    let (one, two) = (&cluster.pods[0], &cluster.pods[1]);
    let mut on_one = vec![
        Client::connect(one, "ann", ""),
        Client::connect(one, "ann", ""),
    ];
    let on_two = Client::connect(two, "ann", "");
    cluster.redis.wait_subscribers("chatbox:u:ann", 2);

    // Pod 2 holds one of ann's three sockets: the fourth is refused there as on one pod.
    let over = refused_within(two, "ann", Duration::from_secs(10));
    assert_eq!(
        (over.status, String::from_utf8_lossy(&over.body).as_ref()),
        (429, "Connection limit exceeded, please try again later")
    );
    // Each open socket hears of it, on either pod.
    let notice = on_one[0].expect("notification", &[]);
    assert!(
        notice["content"]
            .as_str()
            .is_some_and(|c| c.starts_with("Connection limit reached")),
        "{notice}"
    );
    // And on pod 1, which counts pod 2's.
    assert_eq!(
        refused_within(one, "ann", Duration::from_secs(10)).status,
        429
    );
    // Another user is not affected.
    Client::connect(two, "bob", "");

    // Closing one on pod 1 frees a place on pod 2.
    drop(on_one.pop());
    let fourth = admitted_within(two, "ann", Duration::from_secs(10));
    drop((on_one, on_two, fourth));
}

#[test]
fn two_admins_on_two_pods_cannot_both_take_a_session_over() {
    let cluster = Cluster::start(2);
    let (one, two) = (&cluster.pods[0], &cluster.pods[1]);
    for round in 0..3 {
        // Both pods hold the session: each would decide from its own memory. A user
        // per round, whose socket does not resume the last round's assisted session.
        let user = format!("ann{round}");
        let mut laptop = Client::connect(one, &user, "");
        laptop.ask("Hello");
        let id = laptop.session_id.clone();
        let _phone = Client::connect(two, &user, &format!("session_id={id}"));
        cluster
            .redis
            .wait_subscribers(&format!("chatbox:s:{id}"), 2);

        let path = format!("/chatbox/admin/takeover/{id}");
        let answers: Vec<HttpResponse> = thread::scope(|scope| {
            let asks = [(one, "ada"), (two, "abe")].map(|(pod, admin)| {
                let path = &path;
                scope.spawn(move || pod.request("POST", path, &admin_bearer(admin), "{}"))
            });
            asks.into_iter()
                .map(|ask| ask.join().expect("a takeover request"))
                .collect()
        });
        let mut statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 409], "round {round}");
        let refused = answers.iter().find(|a| a.status == 409).expect("a 409");
        let message = refused.json()["error"].to_string();
        assert!(
            message.contains("already assisted by administrator Admin"),
            "{message}"
        );
    }
}

#[test]
fn ending_a_session_on_pod_1_reaches_its_sockets_on_pod_2() {
    let cluster = Cluster::start(2);
    let mut laptop = Client::connect(&cluster.pods[0], "ann", "");
    laptop.ask("Hello");
    let id = laptop.session_id.clone();
    let mut phone = Client::connect(&cluster.pods[1], "ann", &format!("session_id={id}"));
    assert_eq!(phone.session_id, id, "{}", phone.status);
    cluster
        .redis
        .wait_subscribers(&format!("chatbox:s:{id}"), 2);

    let path = format!("/chatbox/sessions/{id}/end");
    let ended = cluster.pods[0].request("POST", &path, &bearer("ann"), "");
    assert_eq!(ended.status, 200);
    for client in [&mut laptop, &mut phone] {
        let notice = client.expect("connection_status", &[]);
        assert_eq!(notice["metadata"]["ended"], "true", "{notice}");
        assert_eq!(notice["session_id"], id.as_str());
        let close = read_close(&mut client.stream, Duration::from_secs(5)).expect("closed");
        assert_eq!(close.0, 1000);
    }
    // Pod 2 dropped the session: a socket asking for it there gets a new one.
    let fresh = Client::connect(&cluster.pods[1], "ann", &format!("session_id={id}"));
    assert_ne!(fresh.session_id, id, "{}", fresh.status);
}
