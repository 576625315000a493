//! `/readyz` answers anyone, so a failing check shows a short fixed reason; the store's
//! own error text (hosts, ports, file paths) goes to the log only.
mod common;

use std::time::{Duration, Instant};

use common::{free_port, Server};

#[test]
fn an_unreachable_store_is_a_fixed_reason_and_the_detail_is_logged() {
    let port = free_port().to_string();
    let uri = format!("mongodb://127.0.0.1:{port}/chat");
    let server = Server::start(&[("MONGO_URI", &uri), ("MONGO_CONNECT_TIMEOUT", "1s")]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        let response = server.get("/chatbox/readyz");
        assert_eq!(response.status, 503);
        let body = response.json();
        // Until the first ping has failed the reason says no answer came yet.
        if body["checks"]["store"]["reason"] != "no answer from MongoDB yet" {
            break body;
        }
        assert!(Instant::now() < deadline, "the store ping never failed");
        std::thread::sleep(Duration::from_millis(100));
    };
    for name in ["store", "mongodb"] {
        assert_eq!(
            body["checks"][name]["reason"], "store unreachable",
            "{body}"
        );
    }
    assert!(!body.to_string().contains(&port), "{body}");
    let logs = server.logs();
    assert!(
        logs.iter()
            .any(|line| line.contains("store not ready") && line.contains(&port)),
        "the detail is in the log: {logs:?}"
    );
}
