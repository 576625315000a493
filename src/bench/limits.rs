//! What bounds a run on the client's side: open files (raised as far as allowed), the
//! source addresses that let more than one ephemeral port range reach one server, and
//! the rule that only loopback and private test addresses are measured unless the
//! operator says `--allow-remote`.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Connections one source address can hold to one server address: the default
/// ephemeral port range (32768–60999) less some room.
pub const PER_SOURCE: usize = 28_000;

#[derive(Debug)]
pub enum LimitError {
    /// The server is not a loopback or private address and `--allow-remote` was not given.
    Remote(SocketAddr),
    /// More connections than several loopback sources can hold.
    TooMany(usize),
    Rlimit(io::Error),
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitError::Remote(addr) => write!(
                f,
                "{addr} is not a loopback or private address: pass --allow-remote to load it"
            ),
            LimitError::TooMany(n) => write!(
                f,
                "{n} connections need more source addresses than 127.0.0.1–127.0.0.250"
            ),
            LimitError::Rlimit(e) => write!(f, "open-file limit: {e}"),
        }
    }
}

impl std::error::Error for LimitError {}

/// Loopback, RFC 1918, link-local, CGNAT and IPv6 unique-local addresses count as test
/// addresses; anything else needs `allow_remote`.
pub fn check_target(addr: SocketAddr, allow_remote: bool) -> Result<(), LimitError> {
    let local = match addr.ip() {
        IpAddr::V4(ip) => {
            let [a, b, ..] = ip.octets();
            ip.is_loopback()
                || ip.is_private()
                || ip.is_link_local()
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(ip) => {
            ip.is_loopback()
                || (ip.segments()[0] & 0xfe00) == 0xfc00
                || (ip.segments()[0] & 0xffc0) == 0xfe80
        }
    };
    if local || allow_remote {
        Ok(())
    } else {
        Err(LimitError::Remote(addr))
    }
}

/// The source addresses for `conns` connections to `target`: none (the kernel picks)
/// while one range is enough or the server is not on 127.0.0.0/8; else 127.0.0.1,
/// 127.0.0.2, … (every 127.x address is this host's on Linux).
pub fn sources(target: SocketAddr, conns: usize) -> Result<Vec<IpAddr>, LimitError> {
    let loopback_v4 = matches!(target.ip(), IpAddr::V4(ip) if ip.is_loopback());
    if conns <= PER_SOURCE || !loopback_v4 {
        return Ok(Vec::new());
    }
    let needed = conns.div_ceil(PER_SOURCE);
    if needed > 250 {
        return Err(LimitError::TooMany(conns));
    }
    Ok((1..=needed as u8)
        .map(|last| IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
        .collect())
}

/// Raises the soft RLIMIT_NOFILE to `wanted` or the hard limit, whichever is lower; says
/// what it is now. Raising the hard limit needs privileges a container may lack.
pub fn raise_open_files(wanted: u64) -> Result<u64, LimitError> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(LimitError::Rlimit(io::Error::last_os_error()));
    }
    let target = wanted.min(limit.rlim_max);
    if limit.rlim_cur >= target {
        return Ok(limit.rlim_cur);
    }
    limit.rlim_cur = target;
    // SAFETY: setrlimit reads the struct we own.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(LimitError::Rlimit(io::Error::last_os_error()));
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_test_addresses_without_allow_remote() {
        for ok in [
            "127.0.0.1:80",
            "10.1.2.3:80",
            "192.168.0.9:80",
            "[::1]:80",
            "[fd00::1]:80",
        ] {
            assert!(
                check_target(ok.parse().expect("addr"), false).is_ok(),
                "{ok}"
            );
        }
        let remote: SocketAddr = "8.8.8.8:80".parse().expect("addr");
        assert!(check_target(remote, false).is_err());
        assert!(check_target(remote, true).is_ok());
    }

    #[test]
    fn more_than_one_range_of_ports_gets_more_sources() {
        let local: SocketAddr = "127.0.0.1:9".parse().expect("addr");
        assert!(sources(local, 10_000).expect("fits").is_empty());
        let many = sources(local, 60_000).expect("fits");
        assert_eq!(many.len(), 3);
        assert_eq!(many[2], IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)));
        let private: SocketAddr = "10.0.0.1:9".parse().expect("addr");
        assert!(sources(private, 60_000).expect("fits").is_empty());
    }
}
