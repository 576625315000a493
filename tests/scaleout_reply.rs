//! A reply streaming on one pod reaches the user's devices on the other pods over a
//! real Redis (docs/SCALE-OUT.md): the same text and message id, ending once; a message
//! sent from the other pod meanwhile waits for it, as on one pod; stop pressed on the
//! other pod stops it where it streams.

mod common;

use std::time::Duration;

use common::chat::{Client, Reply};
use common::llm_mock::{provider_env, LlmMock, Script, Wire};
use common::pods::{pod, Cluster};
use serde_json::json;

#[test]
fn two_devices_of_one_user_on_two_pods_both_receive_the_reply() {
    let cluster = Cluster::start(2);
    let mut laptop = Client::connect(&cluster.pods[0], "ann", "");
    laptop.ask("Hello");
    let id = laptop.session_id.clone();
    let mut phone = Client::connect(&cluster.pods[1], "ann", &format!("session_id={id}"));
    cluster
        .redis
        .wait_subscribers(&format!("chatbox:s:{id}"), 2);

    laptop.say("Tell me something");
    let echo = phone.expect("user_message", &[]);
    assert_eq!(echo["content"], "Tell me something");
    let on_laptop = laptop.reply();
    let on_phone = phone.reply();
    assert_eq!(on_phone.text, on_laptop.text);
    assert_eq!(on_phone.message_id, on_laptop.message_id);
    assert_one_end(&on_phone);

    // The phone asks next, on pod 2: pod 2 streams, the laptop gets it.
    phone.say("And now from the phone");
    laptop.expect("user_message", &[]);
    let on_phone = phone.reply();
    let on_laptop = laptop.reply();
    assert_eq!(on_laptop.text, on_phone.text);
    assert_one_end(&on_laptop);
}

fn assert_one_end(reply: &Reply) {
    let ends = reply
        .frames
        .iter()
        .filter(|f| f["metadata"]["done"] == "true")
        .count();
    assert_eq!(ends, 1, "{:?}", reply.frames);
}

#[test]
fn stop_on_the_other_pod_stops_the_reply_where_it_streams_and_a_waiting_message_follows() {
    let cluster = Cluster::start(0);
    // A quick reply, one that streams until it is stopped, then another quick one.
    let mock = LlmMock::start(
        Wire::OpenAi,
        vec![
            Script::stream(&["Hi"], Some(5)),
            Script::stall(&["Once upon a time"]),
            Script::stream(&["Second answer"], Some(5)),
        ],
    );
    let env = provider_env(1, "gpt", "openai", &mock.endpoint());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let first = pod(&cluster.mongo, &cluster.redis, &env);
    let second = pod(&cluster.mongo, &cluster.redis, &env);
    let mut laptop = Client::connect(&first, "ann", "");
    assert_eq!(laptop.ask("Hello").text, "Hi");
    let id = laptop.session_id.clone();
    let mut phone = Client::connect(&second, "ann", &format!("session_id={id}"));
    cluster
        .redis
        .wait_subscribers(&format!("chatbox:s:{id}"), 2);
    phone.set_timeout(Duration::from_secs(20));

    laptop.say("Tell me a long story");
    phone.expect("user_message", &[]);
    for client in [&mut laptop, &mut phone] {
        let chunk = client.expect("ai_response", &["loading"]);
        assert_eq!(chunk["content"], "Once upon a time", "{chunk}");
        assert_eq!(chunk["metadata"]["done"], "false", "{chunk}");
    }

    // Sent on pod 2 while pod 1 streams: stored at once, answered after.
    phone.say("Meanwhile, from the phone");
    laptop.expect("user_message", &[]);
    phone.send(json!({"type": "stop", "session_id": id}));
    for client in [&mut laptop, &mut phone] {
        let stopped = client.reply();
        assert_eq!(
            stopped.last()["metadata"]["stopped"],
            "true",
            "{:?}",
            stopped.frames
        );
    }
    assert!(
        mock.wait_for_disconnect(Duration::from_secs(10)),
        "pod 1 stopped the upstream"
    );
    let on_phone = phone.reply();
    assert_eq!(on_phone.text, "Second answer");
    let on_laptop = laptop.reply();
    assert_eq!(on_laptop.text, "Second answer");
    assert_eq!(mock.requests().len(), 3);
}
