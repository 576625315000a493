//! SIGTERM on the pod where a reply streams, with the user's other device on a second
//! pod (real Redis, one nx-27017): the drain stops and stores the reply, and the other
//! pod's mirror ends with it, `stopped`, its text exactly the stored one.

mod common;

use std::time::Duration;

use common::chat::{stored_messages, Client};
use common::llm_mock::{LlmMock, Script, Wire};
use common::pods::{pod, Cluster};

#[test]
fn a_reply_stopped_by_one_pods_drain_ends_stored_and_whole_on_the_other_pod() {
    let cluster = Cluster::start(0);
    let mock = LlmMock::start(
        Wire::OpenAi,
        vec![
            Script::stream(&["Hi"], Some(5)),
            Script::slow_words(40, Duration::from_millis(100)),
        ],
    );
    let endpoint = mock.endpoint();
    let env = [
        ("LLM_PROVIDER_1_ID", "gpt"),
        ("LLM_PROVIDER_1_TYPE", "openai"),
        ("LLM_PROVIDER_1_ENDPOINT", endpoint.as_str()),
        ("LLM_PROVIDER_1_MODEL", "m"),
        ("LLM_PROVIDER_1_API_KEY", "sk-test"),
        ("SHUTDOWN_DRAIN_DELAY", "100ms"),
        ("SHUTDOWN_TIMEOUT", "1500ms"),
    ];
    let mut first = pod(&cluster.mongo, &cluster.redis, &env);
    let second = pod(&cluster.mongo, &cluster.redis, &env);
    let mut laptop = Client::connect(&first, "ann", "");
    laptop.ask("Hello");
    let id = laptop.session_id.clone();
    let mut phone = Client::connect(&second, "ann", &format!("session_id={id}"));
    cluster
        .redis
        .wait_subscribers(&format!("chatbox:s:{id}"), 2);
    phone.set_timeout(Duration::from_secs(20));

    laptop.say("talk for a while");
    phone.expect("user_message", &[]);
    let chunk = phone.expect("ai_response", &[]);
    assert_eq!(chunk["metadata"]["done"], "false", "{chunk}");
    first.signal("TERM");
    assert_eq!(first.wait_exit(Duration::from_secs(10)).code(), Some(0));

    let mut seen = chunk["content"].as_str().unwrap_or_default().to_owned();
    let end = loop {
        let frame = phone.expect("ai_response", &[]);
        seen.push_str(frame["content"].as_str().unwrap_or_default());
        if frame["metadata"]["done"] == "true" {
            break frame;
        }
    };
    assert_eq!(end["metadata"]["stopped"], "true", "{end}");
    let stored = stored_messages(&second, "ann", &id, 4);
    let reply = &stored[3];
    assert_eq!(reply["metadata"]["stopped"], "true", "{reply}");
    assert_eq!(
        reply["content"].as_str(),
        Some(seen.as_str()),
        "no gap, no duplicate"
    );
    assert!(seen.starts_with("w0 w1 "), "{seen}");
}
