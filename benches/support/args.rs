//! Command-line flags of the benches: `--flag value`, numbers, comma-separated lists.

use std::str::FromStr;

pub struct Flags {
    args: std::iter::Skip<std::env::Args>,
    usage: &'static str,
}

impl Flags {
    /// This process's arguments; `usage` is printed for `--help` and with every mistake.
    pub fn new(usage: &'static str) -> Flags {
        Flags {
            args: std::env::args().skip(1),
            usage,
        }
    }

    /// The next flag. `--bench` (added by `cargo bench`) is skipped; `-h` and `--help`
    /// print the usage and exit.
    pub fn next_flag(&mut self) -> Option<String> {
        loop {
            let flag = self.args.next()?;
            match flag.as_str() {
                "--bench" => {}
                "-h" | "--help" => {
                    println!("{}", self.usage);
                    std::process::exit(0);
                }
                _ => return Some(flag),
            }
        }
    }

    /// The value after `flag`; `what` says what it should be.
    pub fn text(&mut self, flag: &str, what: &str) -> String {
        let usage = self.usage;
        self.args
            .next()
            .unwrap_or_else(|| panic!("{flag} needs {what}\n{usage}"))
    }

    pub fn number<T: FromStr>(&mut self, flag: &str) -> T {
        let usage = self.usage;
        self.args
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{flag} needs a number\n{usage}"))
    }

    /// The comma-separated list after `flag`, each item read by `item`.
    pub fn list<T>(&mut self, flag: &str, what: &str, item: impl Fn(&str) -> Option<T>) -> Vec<T> {
        let usage = self.usage;
        self.text(flag, what)
            .split(',')
            .map(|s| item(s.trim()).unwrap_or_else(|| panic!("{flag}: {what}, not {s:?}\n{usage}")))
            .collect()
    }

    pub fn unknown(&self, flag: &str) -> ! {
        panic!("unknown argument {flag:?}\n{}", self.usage)
    }
}
