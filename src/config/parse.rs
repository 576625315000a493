//! Value parsers shared by the sections: durations, sizes, numbers in the table's range,
//! booleans, lists. Each gets the trimmed text and the table kind and returns a problem
//! that reads as a predicate of the quoted value ("is out of range").

use std::time::Duration;

use log::LevelFilter;

use super::cidr::Cidr;
use super::error::Secret;
use super::table::{Kind, GIB, KIB, MIB};

/// `90s`, `15m`, `1h`, `100ms`, `7d`, combinations like `1h30m`, fractions like `1.5h`
/// (Go's `time.ParseDuration` forms the old manifests use, plus `d`). A bare number is an
/// error: `30` could mean seconds or minutes. Errors read as a predicate ("has no unit").
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    const NS: u128 = 1_000_000_000;
    let s = s.trim();
    if s.is_empty() {
        return Err("is empty".into());
    }
    if s.starts_with('-') {
        return Err("is negative".into());
    }
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err("has no unit (write 90s, 15m, 1h or 100ms)".into());
    }
    let is_num = |c: char| c.is_ascii_digit() || c == '.';
    let (mut rest, mut total) = (s, 0u128);
    while !rest.is_empty() {
        let (num, tail) = rest.split_at(rest.find(|c: char| !is_num(c)).unwrap_or(rest.len()));
        let (unit, next) = tail.split_at(tail.find(is_num).unwrap_or(tail.len()));
        let per: u128 = match unit {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => NS,
            "m" => 60 * NS,
            "h" => 3_600 * NS,
            "d" => 86_400 * NS,
            "" => return Err("has a number without a unit".into()),
            _ => return Err(format!("has unknown unit {unit:?} (use ms, s, m, h or d)")),
        };
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
        if int.len() + frac.len() == 0 || !digits(int) || !digits(frac) || frac.len() > 18 {
            return Err(format!("has no valid number before {unit:?}"));
        }
        let int: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| "is too long")?
        };
        let frac_ns = if frac.is_empty() {
            0
        } else {
            frac.parse::<u128>().map_err(|_| "is too long")? * per / 10u128.pow(frac.len() as u32)
        };
        total = int
            .checked_mul(per)
            .and_then(|n| n.checked_add(frac_ns))
            .and_then(|n| n.checked_add(total))
            .ok_or("is too long")?;
        rest = next;
    }
    let secs = u64::try_from(total / NS).map_err(|_| "is too long")?;
    Ok(Duration::new(secs, (total % NS) as u32))
}

/// Bytes (`1048576`) or a whole number with a unit: `KB`/`MB`/`GB`/`TB` are powers of 1000,
/// `KiB`/`MiB`/`GiB`/`TiB` (and Kubernetes' `Ki`/`Mi`/`Gi`) powers of 1024; case-insensitive.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    if num.is_empty() {
        return Err("does not start with a whole number".into());
    }
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "ki" | "kib" => KIB,
        "mi" | "mib" => MIB,
        "gi" | "gib" => GIB,
        "ti" | "tib" => GIB * KIB,
        _ => {
            return Err(format!(
                "has unknown unit {unit:?} (use B, KB, KiB, MB or MiB)"
            ))
        }
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| "is too large".into())
}

pub(super) fn p_text(s: &str, _: Kind) -> Result<String, String> {
    Ok(s.to_owned())
}

pub(super) fn p_secret(s: &str, _: Kind) -> Result<Secret, String> {
    Ok(Secret::new(s))
}

pub(super) fn p_bool(s: &str, _: Kind) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err("is not a boolean".into()),
    }
}

fn within<N: PartialOrd>(n: N, (lo, hi): (N, N)) -> Result<N, String> {
    if n < lo || n > hi {
        Err("is out of range".into())
    } else {
        Ok(n)
    }
}

pub(super) fn p_int<T: TryFrom<u64>>(s: &str, k: Kind) -> Result<T, String> {
    let n = s
        .parse::<u64>()
        .map_err(|_| "is not a whole number".to_owned())?;
    T::try_from(within(n, k.int_bounds())?).map_err(|_| "is too large for this platform".into())
}

pub(super) fn p_size<T: TryFrom<u64>>(s: &str, k: Kind) -> Result<T, String> {
    T::try_from(within(parse_size(s)?, k.int_bounds())?)
        .map_err(|_| "is too large for this platform".into())
}

pub(super) fn p_dur(s: &str, k: Kind) -> Result<Duration, String> {
    let bounds = match k {
        Kind::Dur(lo, hi) => (lo, hi),
        _ => (Duration::ZERO, Duration::MAX),
    };
    within(parse_duration(s)?, bounds)
}

pub(super) fn p_cidrs(s: &str, _: Kind) -> Result<Vec<Cidr>, String> {
    list(s, Cidr::parse)
}

pub(super) fn choice<T: Copy>(s: &str, options: &[(&str, T)]) -> Result<T, String> {
    options
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(s))
        .map(|(_, v)| *v)
        .ok_or_else(|| "is not one of the accepted words".into())
}

/// Comma list, entries trimmed, empty entries skipped; a bad entry is named.
pub(super) fn list<T>(s: &str, f: impl Fn(&str) -> Result<T, String>) -> Result<Vec<T>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| f(e).map_err(|p| format!("has an entry {e:?} that {p}")))
        .collect()
}

pub(super) fn non_empty<T>(v: Vec<T>) -> Result<Vec<T>, String> {
    if v.is_empty() {
        Err("lists nothing".into())
    } else {
        Ok(v)
    }
}

pub(super) fn p_log_level(s: &str, _: Kind) -> Result<LevelFilter, String> {
    let s = s.to_ascii_lowercase();
    let s = match s.as_str() {
        "warning" => "warn",
        "fatal" | "panic" | "dpanic" => "error",
        other => other,
    };
    s.parse().map_err(|_| "is not a log level".into())
}

/// Checks `/`-separated segments of URL-safe characters; `..` would escape the prefix.
pub(super) fn path_segments(s: &str) -> Result<(), String> {
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-._~/".contains(*c)))
    {
        return Err(format!("contains {c:?}"));
    }
    if s.split('/').any(|seg| matches!(seg, "" | "." | "..")) {
        return Err("has an empty (// or a leading or trailing /), . or .. segment".into());
    }
    Ok(())
}

/// `s` starts with one of `schemes` and has something after it.
pub(super) fn scheme_in(s: &str, schemes: &[&str]) -> Result<(), String> {
    match schemes.iter().find_map(|p| s.strip_prefix(p)) {
        Some(rest) if !rest.is_empty() => Ok(()),
        Some(_) => Err("has no host".into()),
        None => Err(format!("does not start with {}", schemes.join(" or "))),
    }
}

pub(super) fn fmt_dur(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ]
    .iter()
    .find(|(_, n)| ms >= *n && ms.is_multiple_of(*n))
    .map_or_else(
        || format!("{ms}ms"),
        |(unit, n)| format!("{}{unit}", ms / n),
    )
}

pub(super) fn fmt_size(b: u64) -> String {
    [
        ("GiB", GIB),
        ("MiB", MIB),
        ("KiB", KIB),
        ("GB", 1_000_000_000),
        ("MB", 1_000_000),
        ("KB", 1_000),
    ]
    .iter()
    .find(|(_, n)| b >= *n && b.is_multiple_of(*n))
    .map_or_else(|| format!("{b}B"), |(unit, n)| format!("{}{unit}", b / n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::table::{secs, DAY};
    use crate::config::testing::*;

    #[test]
    fn durations() {
        for (s, want) in [
            ("90s", secs(90)),
            ("15m", secs(900)),
            ("1h", secs(3600)),
            ("100ms", Duration::from_millis(100)),
            ("7d", secs(7 * DAY)),
            ("1h30m", secs(5400)),
            ("1.5h", secs(5400)),
            (" 2m5s ", secs(125)),
            ("250us", Duration::from_micros(250)),
            ("0s", Duration::ZERO),
        ] {
            assert_eq!(parse_duration(s), Ok(want), "{s}");
        }
        for s in [
            "90",
            "",
            "5x",
            "-5s",
            "s",
            "1..5s",
            "1 h",
            "99999999999999999999999d",
        ] {
            assert!(parse_duration(s).is_err(), "{s}");
        }
        assert!(parse_duration("90").unwrap_err().contains("unit"));
        let msg = fails(&[("RATE_LIMIT_WINDOW", "90")], "RATE_LIMIT_WINDOW");
        assert!(
            msg.contains("\"90\" has no unit") && msg.contains("like 90s, 15m, 1h, 100ms"),
            "{msg}"
        );
        assert!(fails(&[("SESSION_TTL", "10s")], "SESSION_TTL").contains("out of range"));
        fails(&[("UPLOAD_URL_TTL", "8d")], "UPLOAD_URL_TTL");
        assert_eq!(
            ok(&[("SHUTDOWN_DRAIN_DELAY", "0s")])
                .server
                .shutdown_drain_delay,
            Duration::ZERO
        );
    }

    #[test]
    fn sizes() {
        for (s, want) in [
            ("1048576", 1_048_576),
            ("100MB", 100_000_000),
            ("1MiB", 1 << 20),
            ("1mib", 1 << 20),
            ("2KB", 2000),
            ("3KiB", 3072),
            ("1GB", 1_000_000_000),
            ("1GiB", 1 << 30),
            ("64 MiB", 64 << 20),
            ("10Mi", 10 << 20),
        ] {
            assert_eq!(parse_size(s), Ok(want), "{s}");
        }
        for s in [
            "",
            "1.5MB",
            "MB",
            "12XB",
            "-1",
            "99999999999999999999",
            "99999999999TiB",
        ] {
            assert!(parse_size(s).is_err(), "{s}");
        }
        fails(&[("MAX_MESSAGE_SIZE", "512")], "MAX_MESSAGE_SIZE");
        fails(&[("MAX_MESSAGE_SIZE", "65MiB")], "MAX_MESSAGE_SIZE");
        assert!(fails(&[("UPLOAD_MAX_SIZE", "lots")], "UPLOAD_MAX_SIZE").contains("\"lots\""));
        assert_eq!(
            ok(&[("UPLOAD_MAX_SIZE", "1GB")]).uploads.max_size,
            1_000_000_000
        );
    }

    #[test]
    fn ports_and_counts() {
        for bad in ["0", "65536", "http", "-1", "80.5"] {
            fails(&[("SERVER_PORT", bad)], "SERVER_PORT");
            fails(&[("METRICS_PORT", bad)], "METRICS_PORT");
        }
        fails(&[("METRICS_PORT", "8080")], "METRICS_PORT");
        fails(
            &[("SERVER_PORT", "9090"), ("METRICS_PORT", "9090")],
            "METRICS_PORT",
        );
        assert_eq!(ok(&[("METRICS_PORT", "9090")]).metrics.port, Some(9090));
        for name in [
            "MAX_CONNECTIONS",
            "STORE_WORKERS",
            "RATE_LIMIT",
            "LLM_CONTEXT_MESSAGES",
        ] {
            fails(&[(name, "0")], name);
        }
        fails(&[("MAX_CONNECTIONS", "1000001")], "MAX_CONNECTIONS");
        assert_eq!(
            ok(&[("MAX_CONNECTIONS", "1000000")]).server.max_connections,
            1_000_000
        );
        fails(&[("SERVER_HOST", "localhost")], "SERVER_HOST");
    }

    #[test]
    fn booleans_and_log_level() {
        for (s, want) in [
            ("true", true),
            ("1", true),
            ("YES", true),
            ("False", false),
            ("0", false),
            ("no", false),
        ] {
            assert_eq!(ok(&[("REQUIRE_EXP", s)]).auth.require_exp, want, "{s}");
        }
        for bad in ["maybe", "on", "2"] {
            fails(&[("CHATBOX_ECHO", bad)], "CHATBOX_ECHO");
        }
        for (s, want) in [
            ("debug", LevelFilter::Debug),
            ("WARNING", LevelFilter::Warn),
            ("off", LevelFilter::Off),
            ("fatal", LevelFilter::Error),
        ] {
            assert_eq!(ok(&[("LOG_LEVEL", s)]).log_level, want, "{s}");
        }
        fails(&[("LOG_LEVEL", "verbose")], "LOG_LEVEL");
    }
}
