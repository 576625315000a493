//! The command line: `--flag value` pairs after the subcommand, with typed errors.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;

#[derive(Debug)]
pub struct CliError(pub String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CliError {}

pub struct Flags {
    args: VecDeque<String>,
}

impl Flags {
    pub fn new(args: impl IntoIterator<Item = String>) -> Flags {
        Flags {
            args: args.into_iter().collect(),
        }
    }

    pub fn next_flag(&mut self) -> Option<String> {
        self.args.pop_front()
    }

    pub fn text(&mut self, flag: &str) -> Result<String, CliError> {
        self.args
            .pop_front()
            .ok_or_else(|| CliError(format!("{flag} needs a value")))
    }

    pub fn number<T: FromStr>(&mut self, flag: &str) -> Result<T, CliError> {
        let text = self.text(flag)?;
        text.parse()
            .map_err(|_| CliError(format!("{flag} needs a number, not {text:?}")))
    }

    /// A comma-separated list of numbers.
    pub fn numbers<T: FromStr>(&mut self, flag: &str) -> Result<Vec<T>, CliError> {
        let text = self.text(flag)?;
        text.split(',')
            .map(|n| {
                n.trim()
                    .parse()
                    .map_err(|_| CliError(format!("{flag}: {n:?} is not a number")))
            })
            .collect()
    }
}

pub fn unknown(flag: &str) -> CliError {
    CliError(format!("unknown argument {flag:?}"))
}

/// `value` must lie in `range`, or the flag is refused: every run is bounded.
pub fn bounded<T: PartialOrd + fmt::Display + Copy>(
    flag: &str,
    value: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, CliError> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(CliError(format!(
            "{flag} must be from {} to {}, not {value}",
            range.start(),
            range.end()
        )))
    }
}
