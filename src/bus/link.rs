//! Connecting to Redis, and waiting before the next try. Both bus threads use it; each
//! holds its own connection.

use std::time::Duration;

/// A connection attempt (TCP, TLS and AUTH together) gives up after this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Commands on an established connection: a Redis that does not answer within this is
/// treated as gone, and the connection made anew.
pub const IO_TIMEOUT: Duration = Duration::from_secs(2);
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// One connection, with the publisher's write and read limits set.
pub fn connect(client: &redis::Client) -> redis::RedisResult<redis::Connection> {
    let connection = client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
    connection.set_write_timeout(Some(IO_TIMEOUT))?;
    connection.set_read_timeout(Some(IO_TIMEOUT))?;
    Ok(connection)
}

/// The wait before the next connection attempt: doubling from 100 ms to 5 s, back to
/// the start once a connection works.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            next: BACKOFF_FIRST,
        }
    }
}

impl Backoff {
    /// How long to wait now; the wait after it doubles.
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        wait
    }

    /// Whether no attempt failed since the last success: the first failure of an
    /// outage is the one worth a log line.
    pub fn fresh(&self) -> bool {
        self.next == BACKOFF_FIRST
    }

    pub fn reset(&mut self) {
        self.next = BACKOFF_FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut backoff = Backoff::default();
        let waits: Vec<u128> = (0..8).map(|_| backoff.next_wait().as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        backoff.reset();
        assert_eq!(backoff.next_wait(), BACKOFF_FIRST);
    }
}
