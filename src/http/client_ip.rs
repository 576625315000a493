//! The client's address as the spec defines it: the socket peer, or, when the peer is a
//! trusted proxy, the first hop of `X-Forwarded-For` (read from the right) that is not.

use std::net::IpAddr;

use crate::config::Cidr;
use crate::net::per_ip::ClientKey;

/// `forwarded_for` is every `X-Forwarded-For` line in order: they form one list (RFC 9110
/// §5.3), and a proxy that adds its hop as a line of its own must not lose to the line
/// the client wrote first.
pub fn client_ip<'a>(
    peer: IpAddr,
    forwarded_for: impl IntoIterator<Item = &'a str, IntoIter: DoubleEndedIterator>,
    trusted: &[Cidr],
) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|cidr| cidr.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let mut last = peer;
    let hops = forwarded_for
        .into_iter()
        .rev()
        .flat_map(|line| line.rsplit(','));
    for hop in hops {
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

/// The key a per-client limit counts under. One IPv6 subscriber is routinely given a
/// whole /64 and can pick any address in it, so IPv6 clients are counted per /64; IPv4
/// (IPv4-mapped IPv6 included) per address.
pub fn rate_key(ip: IpAddr) -> String {
    ClientKey::of(ip).to_string()
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

    #[test]
    fn header_lines_form_one_list_read_from_the_right() {
        // The client wrote the first line; the trusted proxy appended the second.
        let lines = ["1.2.3.4", "198.51.100.7, 10.2.2.2"];
        let got = client_ip(ip("10.1.1.1"), lines, &trusted());
        assert_eq!(got, ip("198.51.100.7"));
        let got = client_ip(ip("10.1.1.1"), ["1.2.3.4", "10.2.2.2"], &trusted());
        assert_eq!(
            got,
            ip("1.2.3.4"),
            "trusted hops on every line are passed over"
        );
    }

    #[test]
    fn ipv6_clients_are_limited_per_64() {
        let key = |text: &str| rate_key(ip(text));
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(
            key("2001:db8:1:2:bbbb:cccc:dddd:eeee"),
            key("2001:db8:1:2::9")
        );
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("203.0.113.9"), "203.0.113.9");
        assert_eq!(key("::ffff:203.0.113.9"), "203.0.113.9");
        assert_ne!(key("203.0.113.9"), key("203.0.113.10"));
    }
}
