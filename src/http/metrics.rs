//! The Prometheus scrape (`P/metrics/prometheus`, and `/metrics` on `METRICS_PORT`),
//! open only to `METRICS_ALLOWED_NETWORKS`.
//!
//! On `METRICS_PORT` the client is the socket peer, never a header: scrapers connect
//! directly. The public route can be reached through an ingress or proxy, whose own
//! address is usually in the allowed networks (a pod network, a private range): there a
//! request that came through a proxy — it carries `X-Forwarded-For` or `Forwarded`, or
//! its peer is in `TRUSTED_PROXIES` — is judged by the client the proxy forwarded, never
//! by the proxy. Headers are believed only from `TRUSTED_PROXIES` (as everywhere,
//! [`client_ip`]); forwarded by anyone else, nobody vouches for them and the scrape is
//! refused. When both headers are present, each one's client must be allowed: a proxy
//! that writes one of them passes the other through as the client wrote it.
//!
//! Everything shown is already in memory (counters, and a state the loop holds), so a
//! scrape never waits on the store.

use std::net::IpAddr;

use super::client_ip::client_ip;
use crate::config::Cidr;
use crate::http::error;
use crate::metrics::{text, Metrics, State};
use crate::net::http::{RequestHead, Response};

/// The scrape for `peer`, or 403 when `allowed` (empty: everyone) does not hold it.
/// `state` is only gathered for a scrape that will be answered.
pub fn scrape(
    metrics: &Metrics,
    allowed: &[Cidr],
    peer: IpAddr,
    state: impl FnOnce() -> State,
) -> Response {
    if !is_allowed(allowed, peer) {
        log::debug!("metrics scrape from {peer} refused: not in METRICS_ALLOWED_NETWORKS");
        return forbidden();
    }
    render(metrics, state)
}

/// The scrape on the public route: judged by the forwarded client when the request
/// came through a proxy (see the module's doc), else by `peer`.
pub fn public_scrape(
    metrics: &Metrics,
    allowed: &[Cidr],
    trusted: &[Cidr],
    peer: IpAddr,
    head: &RequestHead,
    state: impl FnOnce() -> State,
) -> Response {
    let Some(clients) = forwarded_clients(peer, head, trusted) else {
        log::debug!("metrics scrape refused: forwarded by {peer}, which is not in TRUSTED_PROXIES");
        return forbidden();
    };
    match clients.into_iter().find(|&ip| !is_allowed(allowed, ip)) {
        Some(client) => {
            log::debug!(
                "metrics scrape for {client} via {peer} refused: not in METRICS_ALLOWED_NETWORKS"
            );
            forbidden()
        }
        None => render(metrics, state),
    }
}

/// The clients a public scrape is judged by: the peer when nothing was forwarded; the
/// first untrusted hop of each forwarding header present; `None` when headers came
/// from a peer not in `trusted`.
fn forwarded_clients(peer: IpAddr, head: &RequestHead, trusted: &[Cidr]) -> Option<Vec<IpAddr>> {
    let forwarded_for: Vec<&str> = head.header_values("x-forwarded-for").collect();
    let forwarded: Vec<String> = head
        .header_values("forwarded")
        .flat_map(forwarded_nodes)
        .collect();
    let headers = [!forwarded_for.is_empty(), !forwarded.is_empty()];
    if headers == [false, false] {
        return Some(vec![client_ip(peer, None, trusted)]);
    }
    if !trusted.iter().any(|cidr| cidr.contains(peer)) {
        return None;
    }
    let mut clients = Vec::new();
    if headers[0] {
        clients.push(client_ip(peer, forwarded_for, trusted));
    }
    if headers[1] {
        clients.push(client_ip(
            peer,
            forwarded.iter().map(String::as_str),
            trusted,
        ));
    }
    Some(clients)
}

/// The `for=` nodes of one `Forwarded` line (RFC 7239), in order, as bare addresses:
/// quotes, `[...]` and ports removed. An obfuscated or `unknown` node stays as it is,
/// which ends the chain of trust where it stands.
fn forwarded_nodes(line: &str) -> Vec<String> {
    line.split(',')
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (name, value) = pair.split_once('=')?;
                name.trim().eq_ignore_ascii_case("for").then(|| {
                    let value = value.trim().trim_matches('"');
                    let host = match value.strip_prefix('[') {
                        Some(v6) => v6.split(']').next().unwrap_or(v6),
                        None => value.split(':').next().unwrap_or(value),
                    };
                    host.to_owned()
                })
            })
        })
        .collect()
}

fn is_allowed(allowed: &[Cidr], ip: IpAddr) -> bool {
    allowed.is_empty() || allowed.iter().any(|network| network.contains(ip))
}

fn forbidden() -> Response {
    error::json_error(403, "Insufficient permissions")
}

fn render(metrics: &Metrics, state: impl FnOnce() -> State) -> Response {
    Response::new(200, text::CONTENT_TYPE, metrics.render(&state()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::http::test_head;

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

    #[test]
    fn through_a_proxy_the_forwarded_client_is_judged_never_the_proxy() {
        let metrics = Metrics::new(&[]);
        // Traefik's pod network is both trusted and allowed, as on K3s.
        let pods = cidrs(&["10.42.0.0/16"]);
        let status = |peer: &str, headers: &str| {
            let head = test_head(&format!(
                "GET /chatbox/metrics/prometheus HTTP/1.1\r\n{headers}\r\n"
            ));
            public_scrape(&metrics, &pods, &pods, ip(peer), &head, State::default).status
        };
        assert_eq!(
            status("10.42.0.7", ""),
            200,
            "an in-cluster scraper, directly"
        );
        assert_eq!(status("10.42.0.7", "X-Forwarded-For: 203.0.113.9\r\n"), 403);
        assert_eq!(status("10.42.0.7", "X-Forwarded-For: 10.42.3.3\r\n"), 200);
        assert_eq!(
            status(
                "10.42.0.7",
                "Forwarded: for=\"[2001:db8::1]:4711\";proto=https\r\n"
            ),
            403
        );
        assert_eq!(
            status(
                "10.42.0.7",
                "Forwarded: For=10.42.1.1:80, for=198.51.100.2\r\n"
            ),
            403
        );
        assert_eq!(
            status(
                "10.42.0.7",
                "X-Forwarded-For: 203.0.113.9\r\nForwarded: for=10.42.1.1\r\n"
            ),
            403,
            "a header the proxy passed through untouched cannot vouch for the client"
        );
        assert_eq!(
            status("192.0.2.1", "X-Forwarded-For: 10.42.1.1\r\n"),
            403,
            "forwarded by an untrusted peer: nobody vouches"
        );
        assert_eq!(status("192.0.2.1", ""), 403, "an outsider, directly");
    }

    #[test]
    fn forwarded_nodes_are_bare_addresses() {
        assert_eq!(
            forwarded_nodes(
                r#"for=192.0.2.60;proto=http;by=203.0.113.43, for="[2001:db8:cafe::17]:4711", for=unknown, proto=https"#
            ),
            ["192.0.2.60", "2001:db8:cafe::17", "unknown"]
        );
    }
}
