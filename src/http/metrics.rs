//! The Prometheus scrape (`P/metrics/prometheus`, and `/metrics` on `METRICS_PORT`),
//! open only to `METRICS_ALLOWED_NETWORKS`.
//!
//! The client is the socket peer, never `X-Forwarded-For`: scrapers connect directly,
//! and a header anyone can write must not open the door. Everything shown is already in
//! memory (counters, and a state the loop holds), so a scrape never waits on the store.

use std::net::IpAddr;

use crate::config::Cidr;
use crate::http::error;
use crate::metrics::{text, Metrics, State};
use crate::net::http::Response;

/// The scrape for `peer`, or 403 when `allowed` (empty: everyone) does not hold it.
/// `state` is only gathered for a scrape that will be answered.
pub fn scrape(
    metrics: &Metrics,
    allowed: &[Cidr],
    peer: IpAddr,
    state: impl FnOnce() -> State,
) -> Response {
    if !allowed.is_empty() && !allowed.iter().any(|network| network.contains(peer)) {
        log::debug!("metrics scrape from {peer} refused: not in METRICS_ALLOWED_NETWORKS");
        return error::json_error(403, "Insufficient permissions");
    }
    Response::new(200, text::CONTENT_TYPE, metrics.render(&state()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|c| Cidr::parse(c).expect("cidr")).collect()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn only_allowed_networks_get_the_metrics() {
        let metrics = Metrics::new(&["echo"]);
        let allowed = cidrs(&["10.0.0.0/8"]);
        let refused = scrape(&metrics, &allowed, ip("192.168.1.5"), || {
            panic!("no state is gathered for a refused scrape")
        });
        assert_eq!(refused.status, 403);
        let body: serde_json::Value = serde_json::from_slice(&refused.body).expect("json");
        assert_eq!(body["code"], "FORBIDDEN");

        for (allowed, peer) in [(allowed, "10.1.2.3"), (Vec::new(), "203.0.113.7")] {
            let answer = scrape(&metrics, &allowed, ip(peer), State::default);
            assert_eq!(answer.status, 200, "{peer}");
            assert_eq!(answer.headers[0].1, text::CONTENT_TYPE);
            let body = String::from_utf8(answer.body).expect("utf-8");
            assert!(body.contains("chatbox_llm_requests_total{provider=\"echo\"} 0"));
        }
    }
}
