//! Whether an external `file_url` may be stored and shown to others: `https` only, no
//! credentials in it, and a host that resolves only to public addresses (never private,
//! loopback, link-local or otherwise special), so that no client or model that follows
//! the link is pointed into the server's network. Resolving blocks: io lane only.
//! Nothing is fetched here, so there is no redirect to follow.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs};

#[derive(Debug, PartialEq, Eq)]
pub enum UrlRefused {
    NotHttps,
    Malformed,
    /// The name did not resolve.
    Unresolved,
    /// It resolves to this address, which is not public.
    NotPublic(IpAddr),
}

impl fmt::Display for UrlRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlRefused::NotHttps => f.write_str("not an https URL"),
            UrlRefused::Malformed => f.write_str("malformed URL"),
            UrlRefused::Unresolved => f.write_str("the host does not resolve"),
            UrlRefused::NotPublic(ip) => write!(f, "the host resolves to {ip}, not public"),
        }
    }
}

pub fn check_public_https(url: &str) -> Result<(), UrlRefused> {
    let (host, port) = host_and_port(url)?;
    let addresses: Vec<IpAddr> = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|_| UrlRefused::Unresolved)?
        .map(|address| address.ip())
        .collect();
    if addresses.is_empty() {
        return Err(UrlRefused::Unresolved);
    }
    // Every address: a name with one public and one private address is refused.
    match addresses.into_iter().find(|ip| !is_public(*ip)) {
        Some(ip) => Err(UrlRefused::NotPublic(ip)),
        None => Ok(()),
    }
}

fn host_and_port(url: &str) -> Result<(String, u16), UrlRefused> {
    let scheme_end = url.find("://").ok_or(UrlRefused::NotHttps)?;
    if !url[..scheme_end].eq_ignore_ascii_case("https") {
        return Err(UrlRefused::NotHttps);
    }
    let rest = &url[scheme_end + 3..];
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') || authority.contains(char::is_whitespace) {
        return Err(UrlRefused::Malformed);
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']').ok_or(UrlRefused::Malformed)?;
            (host, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let port = match port {
        Some(port) => port.parse().map_err(|_| UrlRefused::Malformed)?,
        None => 443,
    };
    if host.is_empty() {
        return Err(UrlRefused::Malformed);
    }
    Ok((host.to_owned(), port))
}

fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // Shared address space (carrier-grade NAT), 100.64.0.0/10.
        || (a == 100 && (64..128).contains(&b))
        // IETF protocol assignments, 192.0.0.0/24; benchmarking, 198.18.0.0/15.
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
        // Reserved, 240.0.0.0/4.
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // Unique local fc00::/7, link-local fe80::/10, documentation 2001:db8::/32.
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first == 0x2001 && ip.segments()[1] == 0x0db8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_to_public_addresses() {
        assert_eq!(check_public_https("https://8.8.8.8/a.png?x=1"), Ok(()));
        assert_eq!(
            check_public_https("https://[2606:4700::1111]:8443/a"),
            Ok(())
        );
        for (url, refused) in [
            ("http://8.8.8.8/a", UrlRefused::NotHttps),
            ("ftp://8.8.8.8/a", UrlRefused::NotHttps),
            ("https://user:pw@8.8.8.8/a", UrlRefused::Malformed),
            ("https:///a", UrlRefused::Malformed),
            ("https://8.8.8.8:99999/a", UrlRefused::Malformed),
        ] {
            assert_eq!(check_public_https(url), Err(refused), "{url}");
        }
        for url in [
            "https://127.0.0.1/a",
            "https://10.0.0.7/a",
            "https://172.20.1.1/a",
            "https://192.168.1.1/a",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/a",
            "https://0.0.0.0/a",
            "https://[::1]/a",
            "https://[fe80::1]/a",
            "https://[fd00::1]/a",
            "https://[::ffff:127.0.0.1]/a",
            // Through /etc/hosts: a name, resolved, then refused by its address.
            "https://localhost/a",
        ] {
            assert!(
                matches!(check_public_https(url), Err(UrlRefused::NotPublic(_))),
                "{url}"
            );
        }
    }
}
