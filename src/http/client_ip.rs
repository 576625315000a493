//! The client's address as the spec defines it: the socket peer, or, when the peer is a
//! trusted proxy, the first hop of `X-Forwarded-For` (read from the right) that is not.

use std::net::IpAddr;

use crate::config::Cidr;

pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|cidr| cidr.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let Some(header) = forwarded_for else {
        return peer;
    };
    let mut last = peer;
    for hop in header.rsplit(',') {
        let Ok(ip) = hop.trim().parse::<IpAddr>() else {
            // A hop we cannot read ends the chain of trust: use the last good one.
            return last;
        };
        if !is_trusted(ip) {
            return ip;
        }
        last = ip;
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted() -> Vec<Cidr> {
        ["10.0.0.0/8", "127.0.0.0/8"]
            .iter()
            .map(|c| Cidr::parse(c).expect("cidr"))
            .collect()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn untrusted_peers_are_the_client() {
        let got = client_ip(ip("203.0.113.9"), Some("1.2.3.4"), &trusted());
        assert_eq!(got, ip("203.0.113.9"), "a client cannot spoof the header");
    }

    #[test]
    fn trusted_peers_pass_on_the_first_untrusted_hop() {
        let got = client_ip(
            ip("10.1.1.1"),
            Some("1.2.3.4, 198.51.100.7, 10.2.2.2"),
            &trusted(),
        );
        assert_eq!(got, ip("198.51.100.7"));
        assert_eq!(
            client_ip(ip("127.0.0.1"), None, &trusted()),
            ip("127.0.0.1")
        );
        let garbage = client_ip(ip("10.1.1.1"), Some("junk, 10.3.3.3"), &trusted());
        assert_eq!(garbage, ip("10.3.3.3"));
    }
}
