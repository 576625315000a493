//! Retries of MongoDB operations (`spec/storage.md` §Retries): `MONGO_RETRY_ATTEMPTS`
//! attempts, waiting `MONGO_RETRY_DELAY` and then twice as long each time (at most
//! 2 s), for transient failures only, and never past the operation's time budget.
//!
//! Retrying runs on the store lane's thread: a sleeping retry holds one lane worker,
//! never the event loop.

use std::thread;
use std::time::{Duration, Instant};

use mongodb::error::{Error, ErrorKind, WriteFailure};

use crate::store::StoreError;

const DELAY_CAP: Duration = Duration::from_secs(2);

/// Server error codes that say "try again": the node is stepping down, starting up,
/// shutting down, unreachable, or the operation ran out of time.
const TRANSIENT_CODES: &[i32] = &[
    6,     // HostUnreachable
    7,     // HostNotFound
    50,    // MaxTimeMSExpired
    89,    // NetworkTimeout
    91,    // ShutdownInProgress
    134,   // ReadConcernMajorityNotAvailableYet
    189,   // PrimarySteppedDown
    262,   // ExceededTimeLimit
    9001,  // SocketException
    10107, // NotWritablePrimary
    11600, // InterruptedAtShutdown
    11602, // InterruptedDueToReplStateChange
    13435, // NotPrimaryNoSecondaryOk
    13436, // NotPrimaryOrSecondary
];

/// Why one attempt failed.
#[derive(Debug)]
pub enum Failure {
    /// The driver or the server failed; retried when transient.
    Driver(Error),
    /// The store's own answer (not the owner, session full, unreadable data): final.
    Refused(StoreError),
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        Failure::Driver(error)
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Failure {
        Failure::Refused(error)
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Retry {
    pub attempts: u32,
    pub first_delay: Duration,
}

impl Retry {
    /// Runs `attempt` until it succeeds, fails for good, runs out of attempts, or the
    /// next wait would end after `budget` (counted from now).
    pub fn run<T>(
        &self,
        what: &str,
        budget: Duration,
        mut attempt: impl FnMut() -> Result<T, Failure>,
    ) -> Result<T, StoreError> {
        let deadline = Instant::now() + budget;
        let mut delays = self.delays();
        loop {
            let error = match attempt() {
                Ok(value) => return Ok(value),
                Err(Failure::Refused(error)) => return Err(error),
                Err(Failure::Driver(error)) => error,
            };
            let wait = delays
                .next()
                .filter(|wait| is_transient(&error) && Instant::now() + *wait < deadline);
            match wait {
                Some(wait) => {
                    log::debug!("mongodb {what}: {error}; retrying in {wait:?}");
                    thread::sleep(wait);
                }
                None => return Err(StoreError::Unavailable(format!("mongodb {what}: {error}"))),
            }
        }
    }

    /// The waits between attempts: one fewer than the attempts.
    fn delays(&self) -> impl Iterator<Item = Duration> {
        let first = self.first_delay.min(DELAY_CAP);
        std::iter::successors(Some(first), |wait| Some((*wait * 2).min(DELAY_CAP)))
            .take(self.attempts.saturating_sub(1) as usize)
    }
}

/// Network, timeout, server selection, pool and not-primary failures; never a
/// validation or duplicate-key error, which would fail the same way again.
pub fn is_transient(error: &Error) -> bool {
    match error.kind.as_ref() {
        ErrorKind::Io(_)
        | ErrorKind::ServerSelection { .. }
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::DnsResolve { .. } => true,
        ErrorKind::Command(command) => TRANSIENT_CODES.contains(&command.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(concern)) => {
            TRANSIENT_CODES.contains(&concern.code)
        }
        _ => error.contains_label("RetryableWriteError"),
    }
}

/// MongoDB's duplicate key error: a unique index (or `_id`) refused the write.
pub fn is_duplicate_key(error: &Error) -> bool {
    match error.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(write)) => write.code == 11000,
        ErrorKind::Command(command) => command.code == 11000,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use mongodb::bson::{deserialize_from_document as from_document, doc};

    use super::*;

    fn io_error() -> Error {
        Error::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset))
    }

    fn command_error(code: i32) -> Error {
        let command = from_document(doc! {"code": code, "codeName": "X", "errmsg": "x"}).unwrap();
        Error::from(ErrorKind::Command(command))
    }

    fn write_error(code: i32) -> Error {
        let write = from_document(doc! {"code": code, "errmsg": "x"}).unwrap();
        Error::from(ErrorKind::Write(WriteFailure::WriteError(write)))
    }

    const RETRY: Retry = Retry {
        attempts: 3,
        first_delay: Duration::from_millis(1),
    };

    #[test]
    fn transient_failures_are_told_apart() {
        assert!(is_transient(&io_error()));
        assert!(is_transient(&command_error(10107)), "not writable primary");
        assert!(is_transient(&command_error(91)), "shutting down");
        assert!(!is_transient(&command_error(2)), "bad value");
        assert!(!is_transient(&write_error(11000)), "duplicate key");
        assert!(is_duplicate_key(&write_error(11000)));
        assert!(!is_duplicate_key(&command_error(10107)));
    }

    #[test]
    fn waits_double_up_to_the_cap() {
        let retry = Retry {
            attempts: 6,
            first_delay: Duration::from_millis(400),
        };
        let waits: Vec<u64> = retry.delays().map(|d| d.as_millis() as u64).collect();
        assert_eq!(waits, [400, 800, 1600, 2000, 2000]);
    }

    #[test]
    fn a_transient_failure_is_retried_until_it_succeeds() {
        let calls = Cell::new(0);
        let result = RETRY.run("op", Duration::from_secs(5), || {
            calls.set(calls.get() + 1);
            match calls.get() {
                1 | 2 => Err(Failure::Driver(io_error())),
                _ => Ok("done"),
            }
        });
        assert_eq!((result, calls.get()), (Ok("done"), 3));
    }

    #[test]
    fn attempts_are_bounded() {
        let calls = Cell::new(0);
        let result: Result<(), _> = RETRY.run("op", Duration::from_secs(5), || {
            calls.set(calls.get() + 1);
            Err(Failure::Driver(io_error()))
        });
        assert!(
            matches!(result, Err(StoreError::Unavailable(detail)) if detail.contains("mongodb op"))
        );
        assert_eq!(calls.get(), 3);
    }

    #[test]
    fn permanent_failures_and_refusals_are_not_retried() {
        for failure in [
            || Failure::Driver(write_error(11000)),
            || Failure::Refused(StoreError::NotOwner),
        ] {
            let calls = Cell::new(0);
            let result: Result<(), _> = RETRY.run("op", Duration::from_secs(5), || {
                calls.set(calls.get() + 1);
                Err(failure())
            });
            assert!(result.is_err());
            assert_eq!(calls.get(), 1);
        }
    }

    #[test]
    fn no_retry_outlives_the_budget() {
        let slow = Retry {
            attempts: 3,
            first_delay: Duration::from_secs(1),
        };
        let calls = Cell::new(0);
        let result: Result<(), _> = slow.run("op", Duration::from_millis(10), || {
            calls.set(calls.get() + 1);
            Err(Failure::Driver(io_error()))
        });
        assert!(result.is_err());
        assert_eq!(calls.get(), 1, "the first wait alone would pass the budget");
    }
}
