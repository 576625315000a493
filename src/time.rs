//! Wall-clock formatting without a date crate: the service only ever prints UTC instants
//! (RFC 3339 for JSON, IMF-fixdate for the HTTP `Date` header).

use crate::decimal;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch; a clock set before 1970 reads as the epoch.
pub fn unix_now() -> u64 {
    unix_seconds(SystemTime::now())
}

/// Milliseconds since the Unix epoch (the resolution of stored timestamps).
pub fn unix_millis_now() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

pub fn unix_seconds(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    weekday: usize,
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil(unix: u64) -> Civil {
    let days = (unix / 86_400) as i64;
    let secs = (unix % 86_400) as u32;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        month,
        day,
        hour: secs / 3600,
        minute: secs / 60 % 60,
        second: secs % 60,
        // 1970-01-01 was a Thursday.
        weekday: ((days + 4).rem_euclid(7)) as usize,
    }
}

/// `2026-11-25T21:40:40.123Z`; instants before 1970 print as the epoch.
pub fn rfc3339_millis(millis: i64) -> String {
    let mut out = String::with_capacity(24);
    push_rfc3339_millis(&mut out, millis);
    out
}

/// [`rfc3339_millis`] appended to `out`. Every outbound chat frame carries one, written
/// straight into the frame: a `String` each was an allocation per frame, and the digits
/// are written by hand, since the `format!` machinery cost several times the rest of
/// the work (callgrind, release).
pub fn push_rfc3339_millis(out: &mut String, millis: i64) {
    let millis = millis.max(0);
    let c = civil((millis / 1000) as u64);
    let ms = (millis % 1000) as u32;
    let Some(year) = u32::try_from(c.year).ok().filter(|year| *year <= 9999) else {
        out.push_str(&formatted_millis(&c, ms));
        return;
    };
    let mut text = *b"0000-00-00T00:00:00.000Z";
    let fields = [
        (0, 4, year),
        (5, 2, c.month),
        (8, 2, c.day),
        (11, 2, c.hour),
        (14, 2, c.minute),
        (17, 2, c.second),
        (20, 3, ms),
    ];
    for (at, width, value) in fields {
        decimal::fixed_width(&mut text[at..at + width], u64::from(value));
    }
    // ASCII digits and separators: always UTF-8.
    if let Ok(text) = std::str::from_utf8(&text) {
        out.push_str(text);
    }
}

/// The general form, which widens the year past four digits.
fn formatted_millis(c: &Civil, ms: u32) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// Parses an RFC 3339 date-time (`2026-11-25T21:40:40Z`, with optional fraction and a
/// `Z` or `±hh:mm` offset) to milliseconds since the epoch.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = bytes.get(range)?;
        digits.iter().try_fold(0i64, |acc, &b| {
            b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
        })
    };
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if separators
        .iter()
        .any(|&(at, sep)| bytes.get(at) != Some(&sep))
        || !matches!(bytes.get(10), Some(b'T' | b't' | b' '))
    {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut at = 19;
    let mut millis = 0;
    if bytes.get(at) == Some(&b'.') {
        let start = at + 1;
        at = start;
        while bytes.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        if at == start {
            return None;
        }
        let fraction = number(start..(start + 3).min(at))?;
        millis = fraction * 10i64.pow(3 - (at - start).min(3) as u32);
    }
    let offset_minutes = match bytes.get(at..)? {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let hours = number(at + 1..at + 3)?;
            let minutes = number(at + 4..at + 6)?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let total = hours * 60 + minutes;
            if *sign == b'+' {
                total
            } else {
                -total
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset_minutes * 60;
    Some(seconds * 1000 + millis)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Howard Hinnant's days-from-civil, the inverse of `civil`.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2026-11-25T21:40:40Z`
pub fn rfc3339(unix: u64) -> String {
    let c = civil(unix);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// `Wed, 25 Nov 2026 21:40:40 GMT` (RFC 9110 IMF-fixdate).
pub fn http_date(unix: u64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let c = civil(unix);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAYS[c.weekday],
        c.day,
        MONTHS[(c.month - 1) as usize],
        c.year,
        c.hour,
        c.minute,
        c.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_parses_what_clients_send() {
        let base = parse_rfc3339("2026-11-25T21:40:40Z").expect("utc");
        assert_eq!(rfc3339_millis(base), "2026-11-25T21:40:40.000Z");
        assert_eq!(parse_rfc3339("2026-11-25T21:40:40.5Z"), Some(base + 500));
        assert_eq!(
            parse_rfc3339("2026-11-25T21:40:40.123456789Z"),
            Some(base + 123)
        );
        assert_eq!(parse_rfc3339("2026-11-25T23:40:40+02:00"), Some(base));
        assert_eq!(parse_rfc3339("2026-11-25T20:10:40-01:30"), Some(base));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2024-02-29T00:00:00Z").map(|ms| ms % 86_400_000),
            Some(0)
        );
        for bad in [
            "",
            "2026-11-25",
            "2026-11-25T21:40:40",
            "2026-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-11-25T24:00:00Z",
            "2026-11-25T21:40:40.Z",
            "2026-11-25T21:40:40+2:00",
            "2026-11-25T21:40:40Zjunk",
            "2026-1a-25T21:40:40Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        // RFC 9110's own example.
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_642_840), "2026-11-25T21:40:40Z");
    }

    #[test]
    fn millis_format_as_the_general_formatter_would() {
        let general = |millis: i64| {
            let millis = millis.max(0);
            formatted_millis(&civil((millis / 1000) as u64), (millis % 1000) as u32)
        };
        for millis in [
            -5,
            0,
            7,
            999,
            1_795_642_840_123,
            951_782_400_050,
            253_402_300_799_999,
            253_402_300_800_000,
            i64::MAX,
        ] {
            assert_eq!(rfc3339_millis(millis), general(millis), "{millis}");
        }
        assert_eq!(
            rfc3339_millis(1_795_642_840_123),
            "2026-11-25T21:40:40.123Z"
        );
    }
}
