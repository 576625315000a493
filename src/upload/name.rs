//! The file name a client gives: kept only as a label (never as a path: files are stored
//! under their id), yet refused when it could mislead a program that trusts it.

use std::fmt;

/// Longer names are refused (most file systems stop at 255 bytes).
const MAX_NAME: usize = 255;

#[derive(Debug, PartialEq, Eq)]
pub enum BadName {
    Missing,
    TooLong,
    /// NUL, `/`, `\`, a `..` or a control character.
    Unsafe,
}

impl fmt::Display for BadName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BadName::Missing => "The file needs a name",
            BadName::TooLong => "File name too long",
            BadName::Unsafe => "File name contains characters that are not allowed",
        })
    }
}

pub fn check(name: &str) -> Result<(), BadName> {
    if name.trim().is_empty() {
        return Err(BadName::Missing);
    }
    if name.len() > MAX_NAME {
        return Err(BadName::TooLong);
    }
    let unsafe_char = |c: char| c.is_control() || matches!(c, '/' | '\\');
    if name.contains("..") || name.chars().any(unsafe_char) {
        return Err(BadName::Unsafe);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["photo.png", "Résumé 2026 (final).pdf", ".hidden", "a.b.c"] {
            assert_eq!(check(good), Ok(()), "{good}");
        }
        for bad in [
            "../etc/passwd",
            "a/b",
            "a\\b",
            "x\0.png",
            "bell\x07",
            "new\nline",
            "..",
            "a..b",
        ] {
            assert_eq!(check(bad), Err(BadName::Unsafe), "{bad:?}");
        }
        assert_eq!(check(" "), Err(BadName::Missing));
        assert_eq!(check(&"a".repeat(256)), Err(BadName::TooLong));
    }
}
