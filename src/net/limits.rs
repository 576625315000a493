//! The process's open-file limit against the connection slab: every slot is a socket,
//! so a soft limit below `MAX_CONNECTIONS` would turn a promised slot into `EMFILE`.

use std::io;

/// Descriptors the process needs besides its connections: listeners, epoll, the waker,
/// the signal pipe, the store, log and lane files.
const RESERVED_FDS: u64 = 64;

/// Raises the soft `RLIMIT_NOFILE` towards `connections + RESERVED_FDS` (never past
/// the hard limit). Returns the soft limit in force afterwards.
pub fn ensure_open_files(connections: usize) -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own; the resource id is valid.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let wanted = (connections as u64).saturating_add(RESERVED_FDS);
    if limit.rlim_cur >= wanted {
        return Ok(limit.rlim_cur);
    }
    limit.rlim_cur = wanted.min(limit.rlim_max);
    // SAFETY: setrlimit reads the struct we own; a soft limit within the hard limit is
    // always permitted.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(limit.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn current() -> libc::rlimit {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as in `ensure_open_files`.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        limit
    }

    #[test]
    fn raises_the_soft_limit_within_the_hard_one() {
        let before = current();
        let want = (before.rlim_cur + 100).min(before.rlim_max.saturating_sub(RESERVED_FDS));
        let soft = ensure_open_files(want as usize).expect("setrlimit");
        assert!(soft >= before.rlim_cur, "never lowered");
        assert!(soft >= (want + RESERVED_FDS).min(before.rlim_max));
        assert_eq!(current().rlim_cur, soft);
        assert!(ensure_open_files(usize::MAX).expect("capped") <= before.rlim_max);
    }
}
