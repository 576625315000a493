//! Connections per client address on the public listener: one client (one host, or one
//! IPv6 subscriber's /64) cannot fill the slab by itself, whatever it sends or does not.
//!
//! Counted at accept on the socket peer, never a header: a header is read only after
//! the slot is taken. Behind a proxy every client shares the proxy's address, so peers
//! in `TRUSTED_PROXIES` are not counted: their connections are many clients', whom the
//! per-user and per-IP limits behind the head still tell apart.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use crate::config::Cidr;

/// What a per-client limit counts under. One IPv6 subscriber is routinely given a whole
/// /64 and can pick any address in it, so IPv6 clients are counted per /64; IPv4
/// (IPv4-mapped IPv6 included) per address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    pub fn of(ip: IpAddr) -> ClientKey {
        ClientKey(match ip {
            IpAddr::V4(v4) => IpAddr::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
            },
        })
    }
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// Open public connections per [`ClientKey`]; a key without any is forgotten.
pub struct PerIp {
    cap: usize,
    exempt: Vec<Cidr>,
    open: HashMap<ClientKey, usize>,
}

impl PerIp {
    pub fn new(cap: usize, exempt: Vec<Cidr>) -> PerIp {
        PerIp {
            cap,
            exempt,
            open: HashMap::new(),
        }
    }

    fn is_exempt(&self, ip: IpAddr) -> bool {
        self.exempt.iter().any(|cidr| cidr.contains(ip))
    }

    /// Counts one more connection from `ip`; false (and nothing counted) at the cap.
    pub fn try_add(&mut self, ip: IpAddr) -> bool {
        if self.is_exempt(ip) {
            return true;
        }
        let open = self.open.entry(ClientKey::of(ip)).or_insert(0);
        if *open >= self.cap {
            return false;
        }
        *open += 1;
        true
    }

    pub fn release(&mut self, ip: IpAddr) {
        if self.is_exempt(ip) {
            return;
        }
        let key = ClientKey::of(ip);
        if let Some(open) = self.open.get_mut(&key) {
            *open -= 1;
            if *open == 0 {
                self.open.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let key = |text: &str| ClientKey::of(ip(text)).to_string();
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2:bbbb::9"), key("2001:db8:1:2::1"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:203.0.113.9"), "203.0.113.9");
        assert_ne!(key("203.0.113.9"), key("203.0.113.10"));
    }

    #[test]
    fn the_cap_holds_per_key_and_frees_on_release() {
        let mut per_ip = PerIp::new(2, vec![Cidr::parse("10.0.0.0/8").expect("cidr")]);
        assert!(per_ip.try_add(ip("2001:db8::1")));
        assert!(per_ip.try_add(ip("2001:db8::2")), "same /64, second slot");
        assert!(!per_ip.try_add(ip("2001:db8::3")), "same /64, over the cap");
        assert!(per_ip.try_add(ip("2001:db8:0:1::1")), "another /64");
        per_ip.release(ip("2001:db8::1"));
        assert!(per_ip.try_add(ip("2001:db8::4")));
        for addr in ["2001:db8::2", "2001:db8::4", "2001:db8:0:1::1"] {
            per_ip.release(ip(addr));
        }
        assert!(per_ip.open.is_empty(), "nothing kept for clients that left");
        for _ in 0..3 {
            assert!(
                per_ip.try_add(ip("10.1.2.3")),
                "a trusted proxy is many clients"
            );
        }
        assert!(per_ip.open.is_empty());
    }
}
