//! IP networks, for `TRUSTED_PROXIES` and `METRICS_ALLOWED_NETWORKS`.

use std::fmt;
use std::net::IpAddr;

/// An IPv4 or IPv6 network. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, what a dual-stack
/// socket reports for IPv4 peers) are treated as the IPv4 address they carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// `10.0.0.0/8`, `fd00::/8`, or a bare address (= `/32` or `/128`). Host bits are
    /// cleared, as `net.ParseCIDR` of the old service did. Errors read as a predicate
    /// ("is not …") to follow the quoted input.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (ip, len) = match s.trim().split_once('/') {
            Some((ip, len)) => (ip, Some(len)),
            None => (s.trim(), None),
        };
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| "is not an IP address or CIDR".to_owned())?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match len {
            None => max,
            Some(l) => l.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| {
                format!("has a prefix length that is not a number from 0 to {max}")
            })?,
        };
        // `::ffff:10.0.0.0/104` and `10.0.0.0/8` are the same network.
        let (ip, prefix) = match ip.to_canonical() {
            IpAddr::V4(v4) if ip.is_ipv6() && prefix >= 96 => (IpAddr::V4(v4), prefix - 96),
            _ => (ip, prefix),
        };
        Ok(Cidr {
            net: mask(ip, prefix),
            prefix,
        })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.net.is_ipv4() && mask(ip, self.prefix) == self.net
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    let keep = |width: u32| (!0u128).checked_shl(width - u32::from(prefix)).unwrap_or(0);
    match ip {
        IpAddr::V4(a) => IpAddr::V4((u32::from(a) & keep(32) as u32).into()),
        IpAddr::V6(a) => IpAddr::V6((u128::from(a) & keep(128)).into()),
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::*;

    #[test]
    fn cidrs() {
        let net = |s: &str| Cidr::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let ten = net("10.0.0.0/8");
        assert!(ten.contains(ip("10.1.2.3")) && !ten.contains(ip("11.0.0.1")));
        assert!(ten.contains(ip("::ffff:10.1.2.3")) && !ten.contains(ip("::ffff:11.0.0.1")));
        assert!(
            !ten.contains(ip("::a01:203")),
            "IPv4-compatible is not mapped"
        );
        let host = net("192.168.1.5");
        assert!(host.contains(ip("192.168.1.5")) && !host.contains(ip("192.168.1.6")));
        let ula = net("fd00::/8");
        assert!(
            ula.contains(ip("fd12::1"))
                && !ula.contains(ip("fe80::1"))
                && !ula.contains(ip("10.0.0.1"))
        );
        let lo6 = net("::1");
        assert!(lo6.contains(ip("::1")) && !lo6.contains(ip("::2")));
        let all4 = net("0.0.0.0/0");
        assert!(
            all4.contains(ip("8.8.8.8"))
                && all4.contains(ip("::ffff:1.2.3.4"))
                && !all4.contains(ip("::2"))
        );
        assert!(net("::/0").contains(ip("2001:db8::1")));
        assert_eq!(net("::ffff:10.0.0.0/104"), ten);
        assert_eq!(net("10.1.2.3/8"), ten);
        assert_eq!(ten.to_string(), "10.0.0.0/8");
        for bad in [
            "10.0.0.0/33",
            "fd00::/129",
            "abc",
            "10.0.0.0/x",
            "",
            "10.0.0.0/",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
        assert!(ok(&[("TRUSTED_PROXIES", "")])
            .access
            .trusted_proxies
            .is_empty());
        assert!(ok(&[("METRICS_ALLOWED_NETWORKS", " ")])
            .metrics
            .allowed_networks
            .is_empty());
        let msg = fails(
            &[("TRUSTED_PROXIES", "10.0.0.0/8, bogus")],
            "TRUSTED_PROXIES",
        );
        assert!(msg.contains("entry \"bogus\""), "{msg}");
    }
}
