//! The live progress line: on a terminal only (never in `--json` output or a pipe), on
//! stderr, redrawn at most a few times a second so that drawing it costs the client
//! nothing measurable.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

const EVERY: Duration = Duration::from_millis(250);

#[derive(Default)]
pub struct Progress {
    enabled: bool,
    drawn: Option<Instant>,
}

impl Progress {
    /// Draws only when asked and stderr is a terminal.
    pub fn new(wanted: bool) -> Progress {
        Progress {
            enabled: wanted && std::io::stderr().is_terminal(),
            drawn: None,
        }
    }

    /// Redraws the line with `line()` if the last one is old enough.
    pub fn show(&mut self, line: impl FnOnce() -> String) {
        if !self.enabled || self.drawn.is_some_and(|at| at.elapsed() < EVERY) {
            return;
        }
        self.drawn = Some(Instant::now());
        let mut err = std::io::stderr().lock();
        // A progress line that cannot be drawn is no reason to stop measuring.
        let _ = write!(err, "\r{}\x1b[K", line());
        let _ = err.flush();
    }

    /// Clears the line, so the summary starts on a clean one.
    pub fn clear(&mut self) {
        if self.enabled && self.drawn.take().is_some() {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }
}
