//! Resume across pods over a real Redis (docs/SCALE-OUT.md, "Resume across pods"): the
//! pod a reply streams on goes away mid-reply, the user reconnects to another pod with
//! where they left off, and gets the rest with no gap and no duplicate; the reply ends
//! stored. SIGTERM: the drain stops and stores it, and the reply stream gives the end.
//! SIGKILL: nothing is stored there; the other pod takes the lease once it lapses and
//! stores what was streamed, `stopped`.

mod common;

use std::time::Duration;

use common::chat::{stored_messages, Client};
use common::llm_mock::{provider_env, LlmMock, Script, Wire};
use common::pods::{pod, Cluster};
use common::Server;
use serde_json::Value;

/// Two pods sharing a mock whose second reply streams a word every 100 ms for 20 s.
fn setup(cluster: &Cluster, extra: &[(&str, &str)]) -> (LlmMock, Server, Server) {
    let mock = LlmMock::start(
        Wire::OpenAi,
        vec![
            Script::stream(&["Hi"], Some(5)),
            Script::slow_words(200, Duration::from_millis(100)),
        ],
    );
    let env = provider_env(1, "gpt", "openai", &mock.endpoint());
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.extend_from_slice(extra);
    let first = pod(&cluster.mongo, &cluster.redis, &env);
    let second = pod(&cluster.mongo, &cluster.redis, &env);
    (mock, first, second)
}

/// The laptop on `first` starts the long reply and reads its first `count` frames:
/// each one's `seq` and text, and the reply's message id.
fn start_reply(first: &Server, count: usize) -> (Client, Vec<(u64, String)>, String) {
    let mut laptop = Client::connect(first, "ann", "");
    assert_eq!(laptop.ask("Hello").text, "Hi");
    laptop.set_timeout(Duration::from_secs(30));
    laptop.say("talk for a while");
    let mut frames = Vec::new();
    let mut message_id = String::new();
    for _ in 0..count {
        let chunk = laptop.expect("ai_response", &["loading", "user_message"]);
        assert_eq!(chunk["metadata"]["done"], "false", "{chunk}");
        let seq = chunk["metadata"]["seq"]
            .as_str()
            .and_then(|s| s.parse().ok());
        frames.push((seq.expect("a seq"), content(&chunk).to_owned()));
        message_id = chunk["metadata"]["message_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
    }
    (laptop, frames, message_id)
}

/// Reconnects to `server` where the laptop left off (`last_seq`).
fn resume(server: &Server, session: &str, message_id: &str, last_seq: u64) -> Client {
    let query = format!("session_id={session}&message_id={message_id}&last_seq={last_seq}");
    let mut client = Client::connect(server, "ann", &query);
    assert_eq!(client.session_id, session);
    client.set_timeout(Duration::from_secs(30));
    client
}

fn content(frame: &Value) -> &str {
    frame["content"].as_str().unwrap_or_default()
}

#[test]
fn sigterm_mid_reply_then_a_reconnect_to_another_pod_gets_the_rest_once_and_it_is_stored() {
    let cluster = Cluster::start(0);
    let drain = [
        ("SHUTDOWN_DRAIN_DELAY", "100ms"),
        ("SHUTDOWN_TIMEOUT", "1500ms"),
    ];
    let (_mock, mut first, second) = setup(&cluster, &drain);
    let (laptop, frames, message_id) = start_reply(&first, 2);
    let session = laptop.session_id.clone();
    first.signal("TERM");
    assert_eq!(first.wait_exit(Duration::from_secs(10)).code(), Some(0));

    // The laptop saw two frames, but says it has the first only: the rest comes.
    let text: String = frames.iter().map(|(_, text)| text.as_str()).collect();
    let (first_seq, first_chunk) = &frames[0];
    let mut laptop = resume(&second, &session, &message_id, *first_seq);
    let end = laptop.expect("ai_response", &["loading"]);
    assert_eq!(end["metadata"]["replay"], "true", "{end}");
    assert_eq!(end["metadata"]["done"], "true", "{end}");
    assert_eq!(end["metadata"]["stopped"], "true", "{end}");
    assert_eq!(end["metadata"]["message_id"], message_id.as_str(), "{end}");
    let seen = format!("{first_chunk}{}", content(&end));
    assert!(seen.starts_with(&text), "no gap: {seen:?} after {text:?}");

    let stored = stored_messages(&second, "ann", &session, 4);
    assert_eq!(
        stored[3]["content"].as_str(),
        Some(seen.as_str()),
        "no duplicate"
    );
    assert_eq!(stored[3]["metadata"]["stopped"], "true", "{}", stored[3]);
}

#[test]
fn sigkill_mid_reply_then_a_reconnect_to_another_pod_gets_what_streamed_and_it_is_stored_stopped() {
    let cluster = Cluster::start(0);
    let (_mock, first, second) = setup(&cluster, &[]);
    let (laptop, frames, message_id) = start_reply(&first, 3);
    let session = laptop.session_id.clone();
    // Killed once its three chunks are in the reply stream (the start and three), not
    // merely on the laptop: a chunk still in the publisher's queue dies with the pod.
    cluster
        .redis
        .wait_stream(&format!("chatbox:reply:{session}"), 4);
    first.kill();

    let text: String = frames.iter().map(|(_, text)| text.as_str()).collect();
    let last_seq = frames.last().map_or(0, |(seq, _)| *seq);
    let mut laptop = resume(&second, &session, &message_id, last_seq);
    let replay = laptop.expect("ai_response", &["loading"]);
    assert_eq!(replay["metadata"]["replay"], "true", "{replay}");
    assert_eq!(replay["metadata"]["done"], "false", "{replay}");
    assert_eq!(replay["metadata"]["message_id"], message_id.as_str());
    // Once the killed pod's lease lapses, pod 2 ends the reply in its place.
    let end = laptop.expect("ai_response", &[]);
    assert_eq!(end["metadata"]["done"], "true", "{end}");
    assert_eq!(end["metadata"]["stopped"], "true", "{end}");
    let seen = format!("{text}{}{}", content(&replay), content(&end));
    assert!(seen.starts_with("w0 w1 w2 "), "{seen}");

    let stored = stored_messages(&second, "ann", &session, 4);
    assert_eq!(
        stored[3]["content"].as_str(),
        Some(seen.as_str()),
        "no gap, no duplicate"
    );
    assert_eq!(stored[3]["metadata"]["stopped"], "true", "{}", stored[3]);
    assert_eq!(
        stored[3]["id"].as_str(),
        Some(message_id.as_str()),
        "{}",
        stored[3]
    );
}
