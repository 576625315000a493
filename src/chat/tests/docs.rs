//! docs/PROTOCOL.md is for client authors; these keep its error table honest.

use crate::chat::protocol::code;

const DOC: &str = include_str!("../../../docs/PROTOCOL.md");
const SOURCES: [&str; 9] = [
    include_str!("../protocol/mod.rs"),
    include_str!("../engine/admin.rs"),
    include_str!("../engine/files.rs"),
    include_str!("../engine/mod.rs"),
    include_str!("../engine/frames.rs"),
    include_str!("../engine/lifecycle.rs"),
    include_str!("../engine/replies.rs"),
    include_str!("../engine/sockets.rs"),
    include_str!("../engine/writes.rs"),
];

/// The rows of the "## Errors" table: (code, message) with the code carried down
/// into continuation rows.
fn error_rows() -> Vec<(String, String)> {
    let table = DOC
        .split("## Errors")
        .nth(1)
        .expect("an Errors section")
        .lines()
        .filter(|line| line.starts_with('|') && !line.starts_with("|---"))
        .skip(1);
    let mut code = String::new();
    let mut rows = Vec::new();
    for line in table {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if !cells[1].is_empty() {
            code = cells[1].trim_matches('`').to_owned();
        }
        rows.push((code.clone(), cells[2].trim_matches('`').to_owned()));
    }
    rows
}

#[test]
fn every_error_code_is_documented() {
    let documented: Vec<String> = error_rows().into_iter().map(|(code, _)| code).collect();
    for code in [
        code::INVALID_FORMAT,
        code::MISSING_FIELD,
        code::UNAUTHORIZED,
        code::TOO_MANY_REQUESTS,
        code::LLM_UNAVAILABLE,
        code::LLM_TIMEOUT,
        code::DATABASE_ERROR,
        code::SERVICE_ERROR,
    ] {
        assert!(
            documented.iter().any(|d| d == code),
            "{code} is not in the doc"
        );
    }
}

#[test]
fn every_documented_message_is_one_the_server_sends() {
    for (code, message) in error_rows() {
        // `<t>`-style placeholders stand for values: check the fixed part before one.
        let fixed = message.split('<').next().unwrap_or_default().trim_end();
        let fixed = fixed.strip_suffix("2m0s").unwrap_or(fixed);
        assert!(
            SOURCES.iter().any(|source| source.contains(fixed)),
            "{code}: {message:?} is documented but never sent"
        );
    }
}
