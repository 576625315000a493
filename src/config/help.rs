//! `chatbox --help`: the usage, then the settings table rendered row by row.

use std::fmt::Write as _;

use super::table::{Dflt, VARS};

const USAGE: &str = "\
chatbox: WebSocket chat server with a streaming LLM assistant and admin takeover

Usage:
  chatbox [--dev | --check-config | --help]
  chatbox token --user ID [--name N] [--role admin] [--ttl 1h]

  (no flag)       serve, configured by the environment variables below
  --dev           try it out: bind 127.0.0.1, make a throw-away JWT_SECRET, use the
                  embedded store and the echo provider unless configured, and print links
                  to the chat, sessions and admin pages with fresh user and admin tokens
                  (24 h); refused (exit 2) when JWT_SECRET is set: its tokens would be real
  --dev-with-real-secret
                  --dev, but signing those tokens with the JWT_SECRET that is set
  --check-config  validate the environment and exit (0 valid, 2 a bad value)
  --help          print this text
  token           print a token signed with JWT_SECRET for user ID, optionally with a
                  display name, the admin role and a lifetime (a duration)

A bad value stops start-up with one line naming the variable (exit code 2). An empty
value counts as unset. Durations: 90s, 15m, 1h, 100ms, 7d, 1h30m. Sizes: bytes, 100MB
(10^6 bytes), 1MiB (2^20 bytes).

Environment variables:
";

/// Appends `label` and `text` word-wrapped to 92 columns, continuation lines aligned.
fn wrap(out: &mut String, label: &str, text: &str) {
    const INDENT: usize = 6;
    let mut line = format!("{:INDENT$}{label}", "");
    for word in text.split(' ') {
        if line.len() + word.len() > 92 && line.trim_end().len() > INDENT + label.len() {
            out.push_str(line.trim_end());
            out.push('\n');
            line = " ".repeat(INDENT + label.len());
        }
        line.push_str(word);
        line.push(' ');
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

/// `chatbox --help`: usage, then every variable of `VARS` with its default and rule.
pub fn help_text() -> String {
    let mut out = String::from(USAGE);
    for v in VARS {
        let default = match v.default {
            Dflt::Lit(d) => format!("default {d}"),
            Dflt::Required => "required".to_owned(),
            Dflt::Unset(meaning) => format!("unset: {meaning}"),
        };
        let _ = writeln!(out, "  {}  ({default})", v.name);
        wrap(&mut out, "value: ", &v.kind.expected());
        wrap(&mut out, "note:  ", v.why);
    }
    out
}
