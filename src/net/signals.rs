//! Process signals as loop events: SIGTERM/SIGINT start the drain (a second one exits at
//! once), SIGHUP is acknowledged and ignored (configuration is read at start-up only).
//! signal-hook's self-pipe turns the async-signal context into a readable socket, so the
//! loop handles signals like any other readiness and no handler code runs in a signal.

use std::io;

use signal_hook::consts::signal::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Terminate(i32),
    Hangup,
}

impl Signal {
    /// Shell convention for a process ended by this signal.
    pub fn exit_code(self) -> i32 {
        match self {
            Signal::Terminate(number) => 128 + number,
            Signal::Hangup => 128 + SIGHUP,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Signal::Terminate(SIGINT) => "SIGINT",
            Signal::Terminate(_) => "SIGTERM",
            Signal::Hangup => "SIGHUP",
        }
    }
}

pub struct SignalSource {
    signals: Signals,
}

impl SignalSource {
    pub fn new() -> io::Result<SignalSource> {
        Ok(SignalSource {
            signals: Signals::new([SIGTERM, SIGINT, SIGHUP])?,
        })
    }

    pub fn source(&mut self) -> &mut Signals {
        &mut self.signals
    }

    /// Signals that arrived since the last call.
    pub fn pending(&mut self) -> Vec<Signal> {
        self.signals
            .pending()
            .map(|number| match number {
                SIGHUP => Signal::Hangup,
                other => Signal::Terminate(other),
            })
            .collect()
    }
}
