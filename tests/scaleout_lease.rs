//! The session lease over a real Redis (docs/SCALE-OUT.md, "One reply at a time"): two
//! devices of one user on two pods sending at once get one reply at a time, both
//! messages answered in order; with Redis gone a pod answers on its own, as one pod.

mod common;

use std::time::Duration;

use common::chat::{stored_messages, Client};
use common::llm_mock::{provider_env, LlmMock, Script, Wire};
use common::pods::{pod, redis_check_becomes, Cluster};
use common::Server;
use serde_json::Value;

/// A reply slow enough that the other pod's message lands while it streams.
fn slow(words: &[&str]) -> Script {
    Script::slow(words, Duration::from_millis(60))
}

fn pods(cluster: &Cluster, mock: &LlmMock) -> (Server, Server) {
    let env = provider_env(1, "gpt", "openai", &mock.endpoint());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let first = pod(&cluster.mongo, &cluster.redis, &env);
    let second = pod(&cluster.mongo, &cluster.redis, &env);
    (first, second)
}

/// The `ai_response` frames a socket gets until `count` replies are done, in order
/// (echoes and `loading` in between are skipped).
fn replies(client: &mut Client, count: usize) -> Vec<Value> {
    let mut frames = Vec::new();
    let mut done = 0;
    while done < count {
        let frame = client.next();
        if frame["type"] == "error" {
            panic!("{frame}");
        }
        if frame["type"] != "ai_response" {
            continue;
        }
        if frame["metadata"]["done"] == "true" {
            done += 1;
        }
        frames.push(frame);
    }
    frames
}

/// The replies in `frames` as (message id, text), checking that each one's frames are
/// contiguous: a reply ended before the next began.
fn one_at_a_time(frames: &[Value]) -> Vec<(String, String)> {
    let mut replies: Vec<(String, String)> = Vec::new();
    let mut open = false;
    for frame in frames {
        let id = frame["metadata"]["message_id"].as_str().unwrap_or_default();
        let text = frame["content"].as_str().unwrap_or_default();
        match replies.last_mut() {
            Some((last, so_far)) if open && last == id => so_far.push_str(text),
            _ => {
                assert!(!open, "a reply began before the last one ended: {frames:?}");
                replies.push((id.to_owned(), text.to_owned()));
            }
        }
        open = frame["metadata"]["done"] != "true";
    }
    replies
}

#[test]
fn two_devices_on_two_pods_sending_at_once_get_one_reply_at_a_time_in_order() {
    let cluster = Cluster::start(0);
    let mock = LlmMock::start(
        Wire::OpenAi,
        vec![
            Script::stream(&["Hi"], Some(5)),
            slow(&["first ", "answer ", "here"]),
            slow(&["second ", "answer ", "here"]),
        ],
    );
    let (first, second) = pods(&cluster, &mock);
    let mut laptop = Client::connect(&first, "ann", "");
    assert_eq!(laptop.ask("Hello").text, "Hi");
    let id = laptop.session_id.clone();
    let mut phone = Client::connect(&second, "ann", &format!("session_id={id}"));
    cluster
        .redis
        .wait_subscribers(&format!("chatbox:s:{id}"), 2);
    for client in [&mut laptop, &mut phone] {
        client.set_timeout(Duration::from_secs(20));
    }

    laptop.say("from the laptop");
    phone.say("from the phone");
    let on_laptop = one_at_a_time(&replies(&mut laptop, 2));
    let on_phone = one_at_a_time(&replies(&mut phone, 2));
    assert_eq!(on_laptop, on_phone, "both devices see the same two replies");
    let texts: Vec<&str> = on_laptop.iter().map(|(_, text)| text.as_str()).collect();
    assert_eq!(texts, ["first answer here", "second answer here"]);

    // The second reply was asked for after the first ended: its conversation holds it.
    let requests = mock.wait_for_requests(3, Duration::from_secs(5));
    assert_eq!(requests.len(), 3, "exactly one LLM request per reply");
    let conversation = requests[2].body["messages"].to_string();
    assert!(
        conversation.contains("first answer here")
            && conversation.contains("from the laptop")
            && conversation.contains("from the phone"),
        "{conversation}"
    );
    let stored = stored_messages(&second, "ann", &id, 6);
    let ai: Vec<&str> = stored
        .iter()
        .filter(|m| m["sender"] == "ai")
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert_eq!(ai, ["Hi", "first answer here", "second answer here"]);
    let lease: Option<String> = redis::cmd("GET")
        .arg(format!("chatbox:lease:{id}"))
        .query(&mut cluster.redis.connection())
        .expect("GET");
    assert_eq!(lease.as_deref(), Some("-"), "released when the reply ended");
}

#[test]
fn with_redis_gone_a_reply_starts_without_the_lease_and_is_counted() {
    let mut cluster = Cluster::start(0);
    let mock = LlmMock::start(
        Wire::OpenAi,
        vec![
            Script::stream(&["Hi"], Some(5)),
            Script::stream(&["still here"], Some(5)),
        ],
    );
    let (first, _second) = pods(&cluster, &mock);
    let mut laptop = Client::connect(&first, "ann", "");
    assert_eq!(laptop.ask("Hello").text, "Hi");
    assert_eq!(unleased(&first), 0.0, "the first reply had its lease");

    cluster.redis.stop();
    redis_check_becomes(&first, "not ready");
    laptop.set_timeout(Duration::from_secs(20));
    assert_eq!(laptop.ask("during the outage").text, "still here");
    assert_eq!(unleased(&first), 1.0);
    let id = laptop.session_id.clone();
    let stored = stored_messages(&first, "ann", &id, 4);
    assert_eq!(stored[3]["content"], "still here");
}

/// `chatbox_redis_unleased_replies_total` on `server`.
fn unleased(server: &Server) -> f64 {
    let body = server.get("/chatbox/metrics/prometheus").body;
    let text = String::from_utf8_lossy(&body).into_owned();
    text.lines()
        .find_map(|line| line.strip_prefix("chatbox_redis_unleased_replies_total "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no unleased count in:\n{text}"))
}
