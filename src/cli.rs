//! Command-line arguments. Settings come from the environment (spec/config.md); the
//! command line only picks what to do.

use std::time::Duration;

use crate::config::parse_duration;

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Serve {
        dev: bool,
    },
    /// `--dev` that may sign its links with the configured `JWT_SECRET`: plain `--dev`
    /// refuses one, since it prints day-long admin tokens to anyone reading the output.
    DevWithRealSecret,
    CheckConfig,
    Help,
    Token(TokenRequest),
}

#[derive(Debug, PartialEq, Eq)]
pub struct TokenRequest {
    pub user: String,
    pub name: Option<String>,
    pub roles: Vec<String>,
    pub ttl: Duration,
}

const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(3600);

pub fn parse(args: &[String]) -> Result<Command, String> {
    let mut args = args.iter().map(String::as_str);
    match args.next() {
        None => Ok(Command::Serve { dev: false }),
        Some("--dev") => no_more(args, Command::Serve { dev: true }),
        Some("--dev-with-real-secret") => no_more(args, Command::DevWithRealSecret),
        Some("--check-config") => no_more(args, Command::CheckConfig),
        Some("--help" | "-h" | "help") => Ok(Command::Help),
        Some("token") => parse_token(args).map(Command::Token),
        Some(other) => Err(format!("unknown argument `{other}`")),
    }
}

fn no_more<'a>(
    mut rest: impl Iterator<Item = &'a str>,
    command: Command,
) -> Result<Command, String> {
    match rest.next() {
        None => Ok(command),
        Some(extra) => Err(format!("unexpected argument `{extra}`")),
    }
}

fn parse_token<'a>(mut args: impl Iterator<Item = &'a str>) -> Result<TokenRequest, String> {
    let mut user = None;
    let mut name = None;
    let mut roles = Vec::new();
    let mut ttl = DEFAULT_TOKEN_TTL;
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("`{flag}` needs a value"));
        match flag {
            "--user" => user = Some(value()?.to_owned()),
            "--name" => name = Some(value()?.to_owned()),
            "--role" => roles.push(value()?.to_owned()),
            "--ttl" => ttl = parse_duration(value()?).map_err(|e| format!("--ttl: {e}"))?,
            other => return Err(format!("unknown token option `{other}`")),
        }
    }
    match user {
        Some(user) if !user.trim().is_empty() => Ok(TokenRequest {
            user,
            name,
            roles,
            ttl,
        }),
        _ => Err("token needs --user ID".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn commands() {
        assert_eq!(parse(&args(&[])), Ok(Command::Serve { dev: false }));
        assert_eq!(parse(&args(&["--dev"])), Ok(Command::Serve { dev: true }));
        assert_eq!(parse(&args(&["--check-config"])), Ok(Command::CheckConfig));
        assert!(parse(&args(&["--dev", "x"])).is_err());
        assert_eq!(
            parse(&args(&["--dev-with-real-secret"])),
            Ok(Command::DevWithRealSecret)
        );
        assert!(parse(&args(&["--bogus"])).is_err());
    }

    #[test]
    fn token_options() {
        let parsed = parse(&args(&[
            "token", "--user", "u1", "--name", "Ann", "--role", "admin", "--ttl", "2h",
        ]));
        assert_eq!(
            parsed,
            Ok(Command::Token(TokenRequest {
                user: "u1".into(),
                name: Some("Ann".into()),
                roles: vec!["admin".into()],
                ttl: Duration::from_secs(7200),
            }))
        );
        assert!(parse(&args(&["token"])).is_err());
        assert!(parse(&args(&["token", "--user"])).is_err());
        assert!(parse(&args(&["token", "--user", "u", "--ttl", "soon"])).is_err());
    }
}
