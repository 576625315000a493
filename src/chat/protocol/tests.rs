//! Inbound validation and sanitising, and the outbound envelope's shape.

use super::*;

const NOW: Millis = 1_764_107_000_000;

fn parse(text: &str) -> Result<Inbound, Rejection> {
    parse_inbound(text, NOW)
}

#[test]
fn outbound_omits_empty_fields() {
    let json = Outbound::system(Kind::Pong, 0).to_json();
    assert_eq!(
        json,
        r#"{"type":"pong","timestamp":"1970-01-01T00:00:00.000Z","sender":"system"}"#
    );
    let error = Outbound::error(code::TOO_MANY_REQUESTS, "slow", true, 0)
        .with_session("s1")
        .with_retry_after(1500)
        .to_json();
    assert_eq!(
        error,
        r#"{"type":"error","session_id":"s1","timestamp":"1970-01-01T00:00:00.000Z","sender":"system","error":{"code":"TOO_MANY_REQUESTS","message":"slow","recoverable":true,"retry_after":1500}}"#
    );
}

#[test]
fn every_kind_round_trips_its_name() {
    for (kind, name) in KINDS {
        assert_eq!(kind.as_str(), name);
        assert_eq!(Kind::parse(name), Some(kind));
    }
}

#[test]
fn inbound_defaults_and_sanitising() {
    let frame = parse(
        "{\"type\":\" user_message \",\"content\":\"  hi\\u0000 there \",\"session_id\":\"\"}",
    )
    .expect("valid");
    assert_eq!(frame.kind, Kind::UserMessage);
    assert_eq!(frame.content.as_deref(), Some("hi there"));
    assert_eq!(frame.session_id, None, "empty reads as absent");
    assert_eq!(frame.sender, Sender::User);
    assert_eq!(frame.at, NOW);
}

#[test]
fn metadata_values_become_strings() {
    let frame = parse(
        r#"{"type":"ping","metadata":{"last_seq":7,"flag":true,"s":"x","gone":null,"o":{"a":1}}}"#,
    )
    .expect("valid");
    let pairs: Vec<(&str, &str)> = frame
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("flag", "true"),
            ("last_seq", "7"),
            ("o", r#"{"a":1}"#),
            ("s", "x")
        ]
    );
}

#[test]
fn limits_are_in_bytes_after_trimming() {
    let at_limit = format!(
        r#"{{"type":"user_message","content":"  {}  "}}"#,
        "é".repeat(5000)
    );
    assert!(parse(&at_limit).is_ok(), "10000 bytes is allowed");
    let over = format!(
        r#"{{"type":"user_message","content":"{}x"}}"#,
        "é".repeat(5000)
    );
    assert_eq!(parse(&over), Err(validation_failed()));
    let long_id = format!(r#"{{"type":"ping","session_id":"{}"}}"#, "a".repeat(129));
    assert_eq!(parse(&long_id), Err(validation_failed()));
    let long_meta = format!(
        r#"{{"type":"ping","metadata":{{"k":"{}"}}}}"#,
        "a".repeat(1001)
    );
    assert_eq!(parse(&long_meta), Err(validation_failed()));
}

#[test]
fn metadata_is_bounded_in_keys_key_length_and_total() {
    let with = |pairs: Vec<(String, String)>| {
        let map: Map<String, Value> = pairs
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        parse(&serde_json::json!({"type": "ping", "metadata": map}).to_string())
    };
    let keys = |n: usize| (0..n).map(|i| (format!("k{i}"), "v".to_owned())).collect();
    assert_eq!(with(keys(16)).map(|f| f.metadata.len()), Ok(16));
    assert_eq!(with(keys(17)), Err(validation_failed()));

    let key = |len: usize| vec![("k".repeat(len), "v".to_owned())];
    assert!(with(key(64)).is_ok());
    assert_eq!(with(key(65)), Err(validation_failed()));

    // Four keys of 24 bytes with values of 1000: 4096 exactly; one byte more is over.
    let mut full: Vec<(String, String)> = (0..4)
        .map(|i| (i.to_string().repeat(24), "v".repeat(1000)))
        .collect();
    assert!(with(full.clone()).is_ok());
    full.push(("x".to_owned(), String::new()));
    assert_eq!(with(full), Err(validation_failed()));
}

#[test]
fn timestamps_may_not_be_far_in_the_future() {
    let stamp = |ms| {
        format!(
            r#"{{"type":"ping","timestamp":"{}"}}"#,
            time::rfc3339_millis(ms)
        )
    };
    assert_eq!(parse(&stamp(NOW - 5_000)).map(|f| f.at), Ok(NOW - 5_000));
    assert!(parse(&stamp(NOW + 59_000)).is_ok());
    assert_eq!(parse(&stamp(NOW + 61_000)), Err(validation_failed()));
    assert_eq!(
        parse(r#"{"type":"ping","timestamp":"yesterday"}"#),
        Err(validation_failed())
    );
}

#[test]
fn bad_frames_are_named() {
    assert_eq!(
        parse(r#"{"type":"dance"}"#),
        Err(Rejection::invalid(
            "Invalid message format: unknown message type dance"
        ))
    );
    assert_eq!(
        parse("not json"),
        Err(Rejection::invalid("Invalid message format"))
    );
    assert_eq!(
        parse("[1,2]"),
        Err(Rejection::invalid("Invalid message format"))
    );
    assert_eq!(parse("{}"), Err(Rejection::missing("type")));
    assert_eq!(
        parse(r#"{"type":"ping","sender":"robot"}"#),
        Err(validation_failed())
    );
    assert_eq!(
        parse(r#"{"type":"ping","content":5}"#),
        Err(validation_failed())
    );
}
