//! Cross-pod delivery over a real Redis (docs/SCALE-OUT.md), with two chatbox processes
//! sharing one MongoDB: what the chat core sends to a session, a user or all admins
//! reaches the sockets of that audience on the other pod too, once each; Redis going
//! away leaves every pod serving its own sockets, and its return brings cross-pod
//! delivery back with nothing acknowledged lost.

mod common;

use common::chat::{stored_messages, Client};
use common::pods::{readyz_becomes, redis_check_becomes, Cluster};
use serde_json::json;

fn session_channel(id: &str) -> String {
    format!("chatbox:s:{id}")
}

/// Ann's laptop on pod 1 starts a session; her phone binds to it on pod 2.
fn two_devices(cluster: &Cluster) -> (Client, Client) {
    let mut laptop = Client::connect(&cluster.pods[0], "ann", "");
    laptop.ask("Hello from the laptop");
    let id = laptop.session_id.clone();
    let phone = Client::connect(&cluster.pods[1], "ann", &format!("session_id={id}"));
    assert_eq!(phone.session_id, id, "{}", phone.status);
    cluster.redis.wait_subscribers(&session_channel(&id), 2);
    (laptop, phone)
}

#[test]
fn a_help_request_on_pod_1_alerts_an_admin_on_pod_2() {
    let cluster = Cluster::start(2);
    let mut ada = Client::connect_admin(&cluster.pods[1], "ada");
    cluster.redis.wait_subscribers("chatbox:admins", 1);
    let mut ann = Client::connect(&cluster.pods[0], "ann", "");
    ann.ask("Hello");
    ann.send(json!({"type": "help_request", "session_id": ann.session_id}));
    ann.expect("connection_status", &[]);
    let alert = ada.expect("notification", &[]);
    assert_eq!(alert["session_id"], ann.session_id.as_str(), "{alert}");
}

#[test]
fn two_devices_of_one_user_on_two_pods_see_each_others_messages_once() {
    let cluster = Cluster::start(2);
    let (mut laptop, mut phone) = two_devices(&cluster);

    laptop.say("typed on the laptop");
    let echo = phone.expect("user_message", &[]);
    assert_eq!(echo["content"], "typed on the laptop", "{echo}");
    assert_eq!(laptop.reply().text, phone.reply().text);

    phone.say("typed on the phone");
    let echo = laptop.expect("user_message", &[]);
    assert_eq!(echo["content"], "typed on the phone", "{echo}");
    assert_eq!(phone.reply().text, laptop.reply().text);

    // Once each: neither the sender (whose pod hears its own publication back) nor
    // the other device gets a second copy before the end of the reply.
    laptop.say("one more");
    let echo = phone.expect("user_message", &[]);
    assert_eq!(echo["content"], "one more", "{echo}");
    assert_no_user_message_until_done(&mut laptop);
    assert_no_user_message_until_done(&mut phone);
}

/// Reads the socket's frames up to the end of the reply it is getting.
fn assert_no_user_message_until_done(client: &mut Client) {
    loop {
        let frame = client.next();
        assert_ne!(frame["type"], "user_message", "a copy: {frame}");
        if frame["type"] == "ai_response" && frame["metadata"]["done"] == "true" {
            return;
        }
    }
}

#[test]
fn redis_going_away_leaves_each_pod_serving_its_own_and_its_return_restores_delivery() {
    let mut cluster = Cluster::start(2);
    let (mut laptop, mut phone) = two_devices(&cluster);

    cluster.redis.stop();
    for pod in &cluster.pods {
        let body = redis_check_becomes(pod, "not ready");
        assert_eq!(
            body["status"], "ready",
            "Redis does not decide readiness: {body}"
        );
    }
    let reply = laptop.ask("during the outage");
    assert!(!reply.text.is_empty(), "local chat goes on");

    cluster.redis.resume();
    for pod in &cluster.pods {
        redis_check_becomes(pod, "ready");
    }
    let id = laptop.session_id.clone();
    cluster.redis.wait_subscribers(&session_channel(&id), 2);
    laptop.say("after the outage");
    let echo = phone.expect("user_message", &[]);
    assert_eq!(echo["content"], "after the outage", "{echo}");
    laptop.reply();

    let stored = stored_messages(&cluster.pods[1], "ann", &id, 6);
    let users: Vec<&str> = stored
        .iter()
        .filter(|m| m["sender"] == "user")
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert_eq!(
        users,
        [
            "Hello from the laptop",
            "during the outage",
            "after the outage"
        ]
    );
    readyz_becomes(&cluster.pods[0], 200);
}
