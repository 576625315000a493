//! The Prometheus scrape of the real binary (spec/integrations.md §Metrics): every metric
//! of the spec with its type, values that follow a scripted chat, the network guard,
//! the active-sessions gauge across a restart, and `promtool check metrics`.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::chat::{bearer, stored_messages, Client};
use common::llm_mock::{LlmMock, Script, Wire};
use common::{free_port, read_response, HttpResponse, Server};

/// Every metric the spec names, with its type: the old service's dashboards read them.
const SPEC: [(&str, &str); 26] = [
    ("chatbox_websocket_connections_total", "gauge"),
    ("chatbox_websocket_connection_duration_seconds", "histogram"),
    ("chatbox_messages_received_total", "counter"),
    ("chatbox_messages_sent_total", "counter"),
    ("chatbox_message_errors_total", "counter"),
    ("chatbox_llm_requests_total", "counter"),
    ("chatbox_llm_errors_total", "counter"),
    ("chatbox_tokens_used_total", "counter"),
    ("chatbox_llm_latency_seconds", "histogram"),
    ("chatbox_active_sessions_total", "gauge"),
    ("chatbox_sessions_created_total", "counter"),
    ("chatbox_sessions_ended_total", "counter"),
    ("chatbox_admin_takeovers_total", "counter"),
    ("chatbox_mongodb_operation_seconds", "histogram"),
    ("chatbox_ratelimit_blocked_total", "counter"),
    ("chatbox_http_request_duration_seconds", "histogram"),
    ("process_resident_memory_bytes", "gauge"),
    ("process_cpu_seconds_total", "counter"),
    ("process_open_fds", "gauge"),
    ("process_start_time_seconds", "gauge"),
    ("chatbox_connection_slots", "gauge"),
    ("chatbox_lane_queue_depth", "gauge"),
    ("chatbox_lane_rejected_total", "counter"),
    ("chatbox_ws_slow_consumer_closes_total", "counter"),
    ("chatbox_event_loop_iteration_seconds", "histogram"),
    ("chatbox_draining", "gauge"),
];

/// The spec keeps these names for the dashboards although they are gauges, which
/// promtool's naming lint flags; nothing else may be.
const KNOWN_LINT: [&str; 2] = [
    r#"chatbox_websocket_connections_total non-counter metrics should not have "_total" suffix"#,
    r#"chatbox_active_sessions_total non-counter metrics should not have "_total" suffix"#,
];

const SCRAPE: &str = "/chatbox/metrics/prometheus";
/// Failure guard for waits on something the server does right after an event.
const GUARD: Duration = Duration::from_secs(10);

/// One scrape, parsed: each family's type, and each series' value.
struct Scrape {
    text: String,
    types: HashMap<String, String>,
    values: HashMap<String, f64>,
}

impl Scrape {
    fn of(response: &HttpResponse) -> Scrape {
        assert_eq!(response.status, 200, "{response:?}");
        assert_eq!(
            response.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        let text = String::from_utf8(response.body.clone()).expect("UTF-8");
        let mut types = HashMap::new();
        let mut values = HashMap::new();
        for line in text.lines() {
            if let Some(declared) = line.strip_prefix("# TYPE ") {
                let (name, kind) = declared.split_once(' ').expect("name and type");
                types.insert(name.to_owned(), kind.to_owned());
            } else if !line.starts_with('#') {
                let (series, value) = line.rsplit_once(' ').expect("series and value");
                let value = value.parse().unwrap_or_else(|_| panic!("number: {line}"));
                values.insert(series.to_owned(), value);
            }
        }
        Scrape {
            text,
            types,
            values,
        }
    }

    fn value(&self, series: &str) -> f64 {
        *self
            .values
            .get(series)
            .unwrap_or_else(|| panic!("{series} missing from:\n{}", self.text))
    }
}

fn scrape(server: &Server) -> Scrape {
    Scrape::of(&server.get(SCRAPE))
}

fn get_at(port: u16, path: &str) -> HttpResponse {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(GUARD)).expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    read_response(&mut stream).expect("a response")
}

/// Scrapes until `series` has `want`: what follows a closed socket or a lane job lands
/// a moment after the client sees its own side done.
fn wait_for(server: &Server, series: &str, want: f64) -> Scrape {
    let deadline = Instant::now() + GUARD;
    loop {
        let scrape = scrape(server);
        if scrape.value(series) == want {
            return scrape;
        }
        assert!(
            Instant::now() < deadline,
            "{series} stayed at {} (want {want}):\n{}",
            scrape.value(series),
            scrape.text
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A chat of `user` with one exchange, stored.
fn chat(server: &Server, user: &str, text: &str) -> Client {
    let mut client = Client::connect(server, user, "");
    assert_eq!(client.ask(text).text, text, "the echo model repeats");
    stored_messages(server, user, &client.session_id, 2);
    client
}

fn end(server: &Server, user: &str, session: &str) {
    let path = format!("/chatbox/sessions/{session}/end");
    let response = server.request("POST", &path, &bearer(user), "");
    assert_eq!(response.status, 200, "{response:?}");
}

#[test]
fn every_spec_metric_is_there_from_the_first_scrape() {
    let internal = free_port();
    let server = Server::start(&[("METRICS_PORT", &internal.to_string())]);
    let first = scrape(&server);
    for (name, kind) in SPEC {
        assert_eq!(
            first.types.get(name).map(String::as_str),
            Some(kind),
            "{name} declared as a {kind}:\n{}",
            first.text
        );
    }
    assert_eq!(first.value("chatbox_websocket_connections_total"), 0.0);
    assert_eq!(first.value("chatbox_admin_takeovers_total"), 0.0);
    assert_eq!(first.value("chatbox_draining"), 0.0);
    assert_eq!(
        first.value(r#"chatbox_llm_requests_total{provider="echo"}"#),
        0.0
    );
    for lane in ["store", "llm", "io"] {
        assert_eq!(
            first.value(&format!(r#"chatbox_lane_rejected_total{{lane="{lane}"}}"#)),
            0.0
        );
    }
    assert!(first.value(r#"chatbox_connection_slots{state="used"}"#) >= 1.0);
    assert!(first.value(r#"chatbox_connection_slots{state="free"}"#) > 0.0);
    assert!(first.value("process_resident_memory_bytes") > 0.0);
    assert!(first.value("process_open_fds") > 0.0);
    let started = first.value("process_start_time_seconds");
    let now = chatbox::time::unix_now() as f64;
    assert!(started > now - 600.0 && started <= now + 1.0, "{started}");

    // The internal port serves the same scrape at /metrics.
    let inside = Scrape::of(&get_at(internal, "/metrics"));
    assert_eq!(inside.types.len(), first.types.len());
}

#[test]
fn a_chat_moves_the_counters_and_the_gauges_come_back() {
    let server = Server::start(&[("MAX_CONNECTIONS_PER_USER", "1")]);
    let ann = chat(&server, "ann", "hello there");
    let bob = chat(&server, "bob", "good morning to you");
    let refused = common::ws::chat_socket(&server, "bob").expect_err("bob's second socket");
    assert_eq!(refused.status, 429);
    let during = scrape(&server);
    assert_eq!(during.value("chatbox_websocket_connections_total"), 2.0);
    assert_eq!(during.value("chatbox_active_sessions_total"), 2.0);

    end(&server, "ann", &ann.session_id);
    drop((ann, bob));
    let after = wait_for(&server, "chatbox_websocket_connections_total", 0.0);

    assert!(after.value("chatbox_messages_received_total") >= 2.0);
    assert!(after.value("chatbox_messages_sent_total") > 2.0);
    for (series, want) in [
        ("chatbox_message_errors_total", 0.0),
        ("chatbox_sessions_created_total", 2.0),
        ("chatbox_sessions_ended_total", 1.0),
        ("chatbox_active_sessions_total", 1.0),
        (
            r#"chatbox_ratelimit_blocked_total{limiter="connection"}"#,
            1.0,
        ),
        (r#"chatbox_llm_requests_total{provider="echo"}"#, 2.0),
        (r#"chatbox_llm_latency_seconds_count{provider="echo"}"#, 2.0),
        (r#"chatbox_llm_errors_total{provider="echo"}"#, 0.0),
        ("chatbox_websocket_connection_duration_seconds_count", 2.0),
    ] {
        assert_eq!(after.value(series), want, "{series}");
    }
    assert!(
        after.value(r#"chatbox_mongodb_operation_seconds_count{operation="append_batch"}"#) >= 1.0,
        "the appends were timed"
    );
    assert!(
        after.value(r#"chatbox_mongodb_operation_seconds_count{operation="end_session"}"#) >= 1.0,
        "the old service's name for ending a session"
    );
    for (endpoint, method, count) in [
        ("/chatbox/sessions/:sessionID/end", "POST", 1.0),
        ("/chatbox/sessions/:sessionID", "GET", 2.0),
        ("/chatbox/ws", "GET", 3.0),
    ] {
        let series = format!(
            r#"chatbox_http_request_duration_seconds_count{{endpoint="{endpoint}",method="{method}"}}"#
        );
        assert!(after.value(&series) >= count, "{series}");
    }
    let ids_in_labels = after
        .text
        .split('"')
        .filter(|part| part.len() == 32 && part.bytes().all(|b| b.is_ascii_hexdigit()))
        .count();
    assert_eq!(ids_in_labels, 0, "endpoints are route templates, not paths");
    assert!(after.value("chatbox_event_loop_iteration_seconds_count") > 0.0);
}

/// The label values of one family, as they appear in the scrape.
fn label_values(scrape: &Scrape, family: &str, label: &str) -> Vec<String> {
    let start = format!("{family}{{");
    let key = format!("{label}=\"");
    let mut values: Vec<String> = scrape
        .values
        .keys()
        .filter_map(|series| series.strip_prefix(&start))
        .filter_map(|labels| {
            let (_, rest) = labels.split_once(&key)?;
            Some(rest.split_once('"')?.0.to_owned())
        })
        .collect();
    values.sort();
    values.dedup();
    values
}

#[test]
fn limiters_are_labelled_connection_and_message_as_the_old_service() {
    let server = Server::start(&[
        ("MAX_CONNECTIONS_PER_USER", "1"),
        ("RATE_LIMIT", "1"),
        ("RATE_LIMIT_WINDOW", "1m"),
    ]);
    let first = scrape(&server);
    assert_eq!(
        label_values(&first, "chatbox_ratelimit_blocked_total", "limiter"),
        ["connection", "message"],
        "both series from the first scrape, and no others"
    );
    let blocked =
        |limiter: &str| format!(r#"chatbox_ratelimit_blocked_total{{limiter="{limiter}"}}"#);
    assert_eq!(first.value(&blocked("connection")), 0.0);
    assert_eq!(first.value(&blocked("message")), 0.0);

    // The per-user message limiter.
    let mut ann = Client::connect(&server, "ann", "");
    ann.ask("one");
    ann.say("two");
    assert_eq!(
        ann.expect("error", &[])["error"]["code"],
        "TOO_MANY_REQUESTS"
    );
    // The per-IP limiter of the public route: 60 a minute.
    let statuses: Vec<u16> = (0..61)
        .map(|_| server.get("/chatbox/shared/0123").status)
        .collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 429).count(),
        1,
        "{statuses:?}"
    );
    // The per-user socket limit.
    let refused = common::ws::chat_socket(&server, "ann").expect_err("ann's second socket");
    assert_eq!(refused.status, 429);

    let after = wait_for(&server, &blocked("message"), 2.0);
    assert_eq!(after.value(&blocked("connection")), 1.0);
}

#[test]
fn endpoints_are_full_route_templates_and_an_unmatched_path_is_empty() {
    let internal = free_port();
    let server = Server::start(&[("METRICS_PORT", &internal.to_string())]);
    for path in [
        "/chatbox/no/such/route",
        "/elsewhere",
        "/chatbox/healthz",
        "/chatbox/shared/0123",
    ] {
        server.get(path);
    }
    for path in ["/healthz", "/nowhere", "/metrics"] {
        get_at(internal, path);
    }
    let refused = server.request("POST", "/chatbox/healthz", "", "");
    assert_eq!(refused.status, 405);
    let after = scrape(&server);
    assert_eq!(
        after.value(
            r#"chatbox_http_request_duration_seconds_count{endpoint="/chatbox/healthz",method="POST"}"#
        ),
        1.0,
        "a refusal before the body is timed too"
    );
    let count = |endpoint: &str| {
        after.value(&format!(
            r#"chatbox_http_request_duration_seconds_count{{endpoint="{endpoint}",method="GET"}}"#
        ))
    };
    for (endpoint, want) in [
        ("", 3.0),
        ("/chatbox/healthz", 1.0),
        ("/chatbox/shared/:token", 1.0),
        ("/healthz", 1.0),
        ("/metrics", 1.0),
    ] {
        assert_eq!(count(endpoint), want, "{endpoint:?}");
    }
    for endpoint in label_values(
        &after,
        "chatbox_http_request_duration_seconds_count",
        "endpoint",
    ) {
        assert!(
            endpoint.is_empty()
                || endpoint.starts_with("/chatbox/")
                || ["/healthz", "/metrics"].contains(&endpoint.as_str()),
            "{endpoint:?}: a template with the prefix, a route of the internal port, or empty"
        );
    }
}

#[test]
fn providers_are_labelled_by_their_type_and_one_type_is_one_series() {
    let mock = LlmMock::start(Wire::OpenAi, vec![Script::stream(&["hi"], Some(3))]);
    let endpoint = mock.endpoint();
    let mut env = vec![("DEFAULT_MODEL".to_owned(), "gpt-b".to_owned())];
    for (n, id) in [(1, "gpt-a"), (2, "gpt-b")] {
        for (key, value) in [
            ("ID", id),
            ("TYPE", "openai"),
            ("ENDPOINT", endpoint.as_str()),
            ("MODEL", "upstream-model"),
            ("API_KEY", "sk-test-key"),
        ] {
            env.push((format!("LLM_PROVIDER_{n}_{key}"), value.to_owned()));
        }
    }
    for (key, value) in [("ID", "local"), ("TYPE", "echo")] {
        env.push((format!("LLM_PROVIDER_3_{key}"), value.to_owned()));
    }
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = Server::start(&pairs);
    let first = scrape(&server);
    for family in [
        "chatbox_llm_requests_total",
        "chatbox_llm_errors_total",
        "chatbox_tokens_used_total",
        "chatbox_llm_latency_seconds_count",
    ] {
        assert_eq!(
            label_values(&first, family, "provider"),
            ["echo", "openai"],
            "{family}: types, not ids, each once"
        );
    }

    let mut ann = Client::connect(&server, "ann", "");
    assert_eq!(ann.ask("hello").text, "hi");
    let after = wait_for(
        &server,
        r#"chatbox_llm_latency_seconds_count{provider="openai"}"#,
        1.0,
    );
    assert_eq!(
        after.value(r#"chatbox_llm_requests_total{provider="openai"}"#),
        1.0
    );
    assert_eq!(
        after.value(r#"chatbox_tokens_used_total{provider="openai"}"#),
        3.0
    );
}

#[test]
fn scrapes_from_outside_the_allowed_networks_are_refused() {
    let internal = free_port();
    let server = Server::start(&[
        ("METRICS_PORT", &internal.to_string()),
        ("METRICS_ALLOWED_NETWORKS", "10.0.0.0/8,fd00::/8"),
    ]);
    for response in [server.get(SCRAPE), get_at(internal, "/metrics")] {
        assert_eq!(response.status, 403);
        assert_eq!(response.json()["code"], "FORBIDDEN");
    }
    // The header cannot open the door: the peer decides.
    let forwarded = server.request("GET", SCRAPE, "X-Forwarded-For: 10.1.1.1\r\n", "");
    assert_eq!(forwarded.status, 403);
    assert_eq!(get_at(internal, "/healthz").status, 200, "probes stay open");
}

#[test]
fn the_active_sessions_gauge_is_recounted_from_the_store_after_a_restart() {
    let server = Server::start(&[]);
    let ann = chat(&server, "ann", "first");
    let bob = chat(&server, "bob", "second");
    let cat = chat(&server, "cat", "third");
    end(&server, "bob", &bob.session_id);
    drop((ann, bob, cat));
    let data = server.kill();

    let again = Server::start_in(common::binary(), data, &[]);
    let counted = wait_for(&again, "chatbox_active_sessions_total", 2.0);
    assert_eq!(counted.value("chatbox_sessions_created_total"), 0.0);
    assert_eq!(counted.value("chatbox_sessions_ended_total"), 0.0);
    assert_eq!(
        counted.value(r#"chatbox_mongodb_operation_seconds_count{operation="count_active"}"#),
        1.0
    );
}

/// `promtool` from `CHATBOX_TEST_PROMTOOL` (scripts/test installs it and sets it), else
/// the one on `PATH`.
fn promtool() -> String {
    std::env::var("CHATBOX_TEST_PROMTOOL").unwrap_or_else(|_| "promtool".into())
}

#[test]
fn promtool_accepts_a_real_scrape() {
    let server = Server::start(&[]);
    drop(chat(&server, "ann", "hello"));
    // The empty `endpoint` label of a path that is no route must pass too.
    assert_eq!(server.get("/chatbox/no/such/route").status, 404);
    let scrape = scrape(&server);
    assert!(scrape.text.contains(r#"endpoint="""#), "{}", scrape.text);

    let tool = promtool();
    let mut child = Command::new(&tool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {tool} ({e}); run scripts/test, which installs it (Debian package prometheus)")
        });
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(scrape.text.as_bytes())
        .expect("feed promtool");
    let output = child.wait_with_output().expect("promtool ran");
    let report = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    let problems: Vec<&str> = report.lines().filter(|l| !l.trim().is_empty()).collect();
    let unexpected: Vec<&&str> = problems
        .iter()
        .filter(|p| !KNOWN_LINT.contains(&p.trim()))
        .collect();
    assert!(
        unexpected.is_empty(),
        "promtool: {unexpected:#?}\n{}",
        scrape.text
    );
    // 0: clean; 3: lint findings only (the two above). A parse error is 1.
    assert!(
        matches!(output.status.code(), Some(0 | 3)),
        "promtool exit {:?}: {report}",
        output.status
    );
}
