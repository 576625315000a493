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
    /// A document over MongoDB's size limit is the session's own state, not a passing
    /// failure: it is full, and no retry (here or in the chat core) can store it.
    fn from(error: Error) -> Failure {
        if is_too_large(&error) {
            log::warn!("mongodb: a write was refused as too large: {error}");
            return Failure::Refused(StoreError::SessionFull);
        }
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

/// Server error codes that say a document would pass MongoDB's 16 MiB limit.
const TOO_LARGE_CODES: &[i32] = &[
    10334, // BSONObjectTooLarge
    17419, // the document an update would leave is too large
    17420, // the document an upsert would insert is too large
];

/// A write refused because the document, or the command carrying it, is too large:
/// by the server, or by the driver before sending it. Final: the same write fails the
/// same way every time.
fn is_too_large(error: &Error) -> bool {
    match error.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(write)) => TOO_LARGE_CODES.contains(&write.code),
        ErrorKind::Command(command) => TOO_LARGE_CODES.contains(&command.code),
        ErrorKind::InvalidArgument { message, .. } => is_size_check(message),
        _ => false,
    }
}

/// The driver's own size checks, which it reports as an invalid argument with no kind
/// of their own: an inserted document over `maxBsonObjectSize`, a message over
/// `maxMessageSizeBytes` (mongodb 3.x wording).
fn is_size_check(message: &str) -> bool {
    message.starts_with("insert document must be within")
        || (message.starts_with("Message length") && message.contains("over maximum"))
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
    fn a_document_too_large_is_told_apart_and_final() {
        for too_large in [command_error(10334), write_error(17419), write_error(17420)] {
            assert!(is_too_large(&too_large), "{too_large}");
            assert!(!is_transient(&too_large), "{too_large}");
        }
        assert!(!is_too_large(&write_error(11000)));
        assert!(!is_too_large(&command_error(10107)));
        assert!(!is_too_large(&io_error()));
        // The driver's wording, which it builds in `operation/insert.rs` and
        // `cmap/conn/wire/message.rs`.
        assert!(is_size_check(
            "Message length 50331700 over maximum 48000000"
        ));
        assert!(is_size_check(
            "insert document must be within 16777216 bytes, but document provided is \
             16777300 bytes"
        ));
        assert!(!is_size_check("limit exceeds range of i64: 5"));

        let calls = Cell::new(0);
        let result: Result<(), _> = RETRY.run("append", Duration::from_secs(5), || {
            calls.set(calls.get() + 1);
            Err(write_error(17419).into())
        });
        assert_eq!(
            (result, calls.get()),
            (Err(StoreError::SessionFull), 1),
            "final: the session is full, and said so once"
        );
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
