//! `chatbox-bench`: load a chatbox (or any WebSocket echo server) and measure it.
//! `chatbox-bench SUBCOMMAND --help` shows each one's flags; docs/BENCHMARKS.md says how
//! to run them and what every JSON field means.

use std::process::ExitCode;

use chatbox::bench::cmd;

const USAGE: &str = "usage: chatbox-bench SUBCOMMAND [FLAGS]

  connect  open N sockets at a rate: connect rate, handshake latency, failures, RSS/CPU per socket
  echo     raw frame round trip against P/echo, by connection count
  chat     N users exchanging messages: time to loading, first ai_response chunk, done
  drain    N sessions through a SIGTERM: /readyz, 1001 per socket, replies, lost messages

Every subcommand prints a live line on a terminal and a summary; --json prints one JSON
object instead. Only loopback and private addresses unless --allow-remote.";

/// A subcommand's entry: its arguments after the name.
type Subcommand = fn(Vec<String>) -> Result<(), cmd::BenchError>;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(command) = args.next() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let rest: Vec<String> = args.collect();
    let (usage, run): (&str, Subcommand) = match command.as_str() {
        "connect" => (cmd::connect::USAGE, cmd::connect::run),
        "echo" => (cmd::echo::USAGE, cmd::echo::run),
        "chat" => (cmd::chat::USAGE, cmd::chat::run),
        "drain" => (cmd::drain::USAGE, cmd::drain::run),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        other => {
            eprintln!("chatbox-bench: unknown subcommand {other:?}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if rest.iter().any(|a| a == "-h" || a == "--help") {
        println!("usage: {usage}");
        return ExitCode::SUCCESS;
    }
    match run(rest) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ cmd::BenchError::Cli(_)) => {
            eprintln!("chatbox-bench {command}: {e}\nusage: {usage}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("chatbox-bench {command}: {e}");
            ExitCode::FAILURE
        }
    }
}
