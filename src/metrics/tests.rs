//! The registry's own tests: what it renders from what was recorded.

use super::ChatCounts as Tally;
use super::*;

fn value_of<'s>(scrape: &'s str, series: &str) -> &'s str {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{series} missing from:\n{scrape}"))
}

#[test]
fn active_sessions_follow_the_start_count_and_never_go_below_zero() {
    let metrics = Metrics::new(&[]);
    let active = |m: &Metrics| {
        value_of(
            &m.render(&State::default()),
            "chatbox_active_sessions_total",
        )
        .to_owned()
    };
    metrics.set_sessions_at_start(2);
    metrics.record_chat(Tally {
        sessions_ended: 5,
        ..Tally::default()
    });
    assert_eq!(
        active(&metrics),
        "0",
        "ends of older sessions cannot go below zero"
    );
    metrics.record_chat(Tally {
        sessions_created: 4,
        error_frames: 1,
        rate_limited: 1,
        ..Tally::default()
    });
    assert_eq!(active(&metrics), "1");
    let scrape = metrics.render(&State::default());
    assert_eq!(value_of(&scrape, "chatbox_sessions_created_total"), "4");
    assert_eq!(value_of(&scrape, "chatbox_sessions_ended_total"), "5");
    assert_eq!(value_of(&scrape, "chatbox_message_errors_total"), "1");
    assert_eq!(
        value_of(
            &scrape,
            r#"chatbox_ratelimit_blocked_total{limiter="message"}"#
        ),
        "1"
    );
}

#[test]
fn every_sliding_window_refusal_counts_as_message() {
    let metrics = Metrics::new(&[]);
    metrics.blocked(Limiter::Message);
    metrics.blocked(Limiter::Connection);
    metrics.record_chat(Tally {
        rate_limited: 2,
        ..Tally::default()
    });
    let scrape = metrics.render(&State::default());
    let limiter = |value: &str| format!(r#"chatbox_ratelimit_blocked_total{{limiter="{value}"}}"#);
    assert_eq!(value_of(&scrape, &limiter("message")), "3");
    assert_eq!(value_of(&scrape, &limiter("connection")), "1");
    let series = scrape
        .lines()
        .filter(|l| l.starts_with("chatbox_ratelimit_blocked_total{"))
        .count();
    assert_eq!(series, 2, "the old service's two values, no others");
}

#[test]
fn a_provider_label_given_twice_is_one_series() {
    let metrics = Metrics::new(&["openai", "echo", "openai"]);
    let openai = metrics.llm("openai").expect("a series");
    openai.requests.inc();
    openai.requests.inc();
    let scrape = metrics.render(&State::default());
    let series: Vec<&str> = scrape
        .lines()
        .filter(|l| l.starts_with("chatbox_llm_requests_total{"))
        .collect();
    assert_eq!(
        series,
        [
            r#"chatbox_llm_requests_total{provider="openai"} 2"#,
            r#"chatbox_llm_requests_total{provider="echo"} 0"#,
        ]
    );
}

#[test]
fn labelled_series_exist_before_anything_happens() {
    let metrics = Metrics::new(&["echo", "gpt"]);
    let state = State {
        slots_used: 3,
        slots_total: 10,
        draining: true,
        lanes: vec![LaneState {
            name: "store",
            queue_depth: 2,
            rejected: 9,
        }],
        process: None,
    };
    let scrape = metrics.render(&state);
    for (series, value) in [
        (r#"chatbox_llm_requests_total{provider="gpt"}"#, "0"),
        (r#"chatbox_llm_latency_seconds_count{provider="echo"}"#, "0"),
        (
            r#"chatbox_ratelimit_blocked_total{limiter="connection"}"#,
            "0",
        ),
        (
            r#"chatbox_mongodb_operation_seconds_count{operation="ping"}"#,
            "0",
        ),
        (r#"chatbox_connection_slots{state="used"}"#, "3"),
        (r#"chatbox_connection_slots{state="free"}"#, "7"),
        (r#"chatbox_lane_queue_depth{lane="store"}"#, "2"),
        (r#"chatbox_lane_rejected_total{lane="store"}"#, "9"),
        ("chatbox_draining", "1"),
        ("chatbox_admin_takeovers_total", "0"),
    ] {
        assert_eq!(value_of(&scrape, series), value, "{series}");
    }
    assert!(!scrape.contains("process_"), "no /proc, no process metrics");
}
