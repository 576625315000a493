//! The subcommands (`connect`, `echo`, `chat`, `drain`): each parses its flags, runs
//! within its bounds, prints a human summary or, with `--json`, one JSON object.

pub mod chat;
pub mod connect;
pub mod drain;
pub mod echo;

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use super::chat::{TokenError, Tokens};
use super::cli::{CliError, Flags};
use super::frames::{Target, UrlError};
use super::limits::{self, LimitError};
use super::meter::CpuDelta;

/// Why a run could not be done (a run that completes with failures is no error: its
/// report counts them).
#[derive(Debug)]
pub enum BenchError {
    Cli(CliError),
    Url(UrlError),
    Limit(LimitError),
    Token(TokenError),
    /// The server cannot be reached or refuses the upgrade before the run starts.
    Unreachable(String),
    Io(std::io::Error),
    /// The drain's store check could not read the store.
    Store(String),
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BenchError::Cli(e) => e.fmt(f),
            BenchError::Url(e) => e.fmt(f),
            BenchError::Limit(e) => e.fmt(f),
            BenchError::Token(e) => e.fmt(f),
            BenchError::Unreachable(e) => write!(f, "server: {e}"),
            BenchError::Io(e) => write!(f, "client: {e}"),
            BenchError::Store(e) => write!(f, "store check: {e}"),
        }
    }
}

impl std::error::Error for BenchError {}

macro_rules! from_error {
    ($($variant:ident($ty:ty)),*) => {$(
        impl From<$ty> for BenchError {
            fn from(e: $ty) -> Self {
                BenchError::$variant(e)
            }
        }
    )*};
}
from_error!(
    Cli(CliError),
    Url(UrlError),
    Limit(LimitError),
    Token(TokenError),
    Io(std::io::Error)
);

/// Flags every subcommand takes.
pub struct Common {
    pub url: String,
    pub pid: Option<u32>,
    pub json: bool,
    pub allow_remote: bool,
    /// `--secret` or `--token-file`: chat sockets; neither: raw WebSocket sockets.
    pub tokens: Option<Tokens>,
}

/// The longest a token minted here lives: longer than any bounded run.
const TOKEN_TTL_SECS: u64 = 6 * 3600;

impl Common {
    pub fn new(default_path: &str) -> Common {
        Common {
            url: format!("ws://127.0.0.1:8080/chatbox{default_path}"),
            pid: None,
            json: false,
            allow_remote: false,
            tokens: None,
        }
    }

    /// Takes `flag` (and its value) if it is a common one; `Ok(false)` if not.
    pub fn take(&mut self, flag: &str, flags: &mut Flags) -> Result<bool, BenchError> {
        match flag {
            "--url" => self.url = flags.text(flag)?,
            "--pid" => self.pid = Some(flags.number(flag)?),
            "--json" => self.json = true,
            "--allow-remote" => self.allow_remote = true,
            "--secret" => {
                self.tokens = Some(Tokens::Mint {
                    secret: flags.text(flag)?.into_bytes(),
                    prefix: "bench-".into(),
                    ttl_secs: TOKEN_TTL_SECS,
                })
            }
            "--token-file" => {
                let path = flags.text(flag)?;
                self.tokens = Some(Tokens::from_file(std::path::Path::new(&path))?);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The target, refused unless it is a test address or `--allow-remote` was given;
    /// with the open-file limit raised for `conns` sockets.
    pub fn target(&self, conns: usize) -> Result<Target, BenchError> {
        let target = Target::parse(&self.url)?;
        limits::check_target(target.addr, self.allow_remote)?;
        limits::raise_open_files(conns as u64 + 256)?;
        Ok(target)
    }

    /// Prints `report` as one JSON object, or its human summary.
    pub fn print<R: Serialize>(&self, report: &R, human: impl FnOnce(&R)) {
        if self.json {
            match serde_json::to_string(report) {
                Ok(text) => println!("{text}"),
                Err(e) => eprintln!("chatbox-bench: JSON: {e}"),
            }
        } else {
            human(report);
        }
    }
}

/// The server's and the client's CPU over a window, for the reports.
#[derive(Serialize, Default, Clone, Copy)]
pub struct CpuReport {
    pub wall_s: f64,
    /// `null` without `--pid`.
    pub server_s: Option<f64>,
    pub client_s: Option<f64>,
    /// Every other process, and steal: noise, should be near 0.
    pub others_s: Option<f64>,
}

impl From<CpuDelta> for CpuReport {
    fn from(d: CpuDelta) -> Self {
        CpuReport {
            wall_s: d.wall,
            server_s: d.server,
            client_s: d.client,
            others_s: d.others,
        }
    }
}

/// `total` per `count`, in µs: server CPU per message or per connection.
pub fn per_item_us(total_s: Option<f64>, count: u64) -> Option<f64> {
    total_s
        .filter(|_| count > 0)
        .map(|s| s * 1e6 / count as f64)
}

/// Whole seconds within `range`: every run is bounded.
pub fn secs(
    flag: &str,
    flags: &mut Flags,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Duration, BenchError> {
    let n: u64 = flags.number(flag)?;
    Ok(Duration::from_secs(super::cli::bounded(flag, n, range)?))
}

pub fn opt_text(v: Option<f64>, precision: usize, unit: &str) -> String {
    v.map_or("-".into(), |v| format!("{v:.precision$}{unit}"))
}
