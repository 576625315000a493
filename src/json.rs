//! JSON written by hand for the shapes on the hot paths (outbound chat frames, the
//! embedded store's session records), byte for byte what serde_json writes for them:
//! through serde_json every key went through its escaper byte by byte, which callgrind
//! showed as the largest cost of a chat exchange on the loop thread and the store lane.
//! Keys are constants here, and a string is copied as it is unless it holds a
//! character JSON escapes.

use serde::Serialize;

/// `,"name":`, the separator and key of every member but an object's first, made one
/// constant at compile time: one copy where three (a function writing the comma, the
/// name and the colon) cost ~160 instructions a member (callgrind).
macro_rules! member {
    ($name:literal) => {
        concat!(",\"", $name, "\":")
    };
}
pub(crate) use member;

/// A JSON string: copied between quotes when nothing in it needs escaping (serde_json
/// escapes only `"`, `\` and control characters), else serde_json's own escaping.
pub fn string(out: &mut String, value: &str) {
    if !needs_escape(value.as_bytes()) {
        out.push('"');
        out.push_str(value);
        out.push('"');
    } else {
        serialized(out, value);
    }
}

/// Members that may be absent, in the order given: each present one as `,"name":value`,
/// as serde_json writes an `Option` skipped when `None`. `name` is a [`member!`].
pub fn optional_strings<'a>(
    out: &mut String,
    members: impl IntoIterator<Item = (&'static str, Option<&'a str>)>,
) {
    for (name, value) in members {
        if let Some(value) = value {
            out.push_str(name);
            string(out, value);
        }
    }
}

/// As [`optional_strings`], for numbers.
pub fn optional_ints(
    out: &mut String,
    members: impl IntoIterator<Item = (&'static str, Option<i64>)>,
) {
    for (name, value) in members {
        if let Some(value) = value {
            out.push_str(name);
            int(out, value);
        }
    }
}

/// An object of strings, in the order given (a `BTreeMap`'s, as serde_json writes it).
pub fn string_map<'a>(out: &mut String, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) {
    out.push('{');
    for (n, (name, value)) in pairs.into_iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        string(out, name);
        out.push(':');
        string(out, value);
    }
    out.push('}');
}

/// Whether any byte is one serde_json escapes: a control character, `"` or `\\`. Eight
/// bytes a step: a byte a step was ~6k instructions of a chat exchange (every string of
/// four frames). Each test is exact: `(w - k) & !w & 0x80…` has a byte's high bit set
/// only where some byte of `w` is below `k`.
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = ONES * 0x80;
    let below = |w: u64, k: u8| w.wrapping_sub(ONES * u64::from(k)) & !w & HIGHS != 0;
    let (words, tail) = bytes.as_chunks::<8>();
    for &word in words {
        let w = u64::from_le_bytes(word);
        if below(w, 0x20)
            || below(w ^ (ONES * u64::from(b'"')), 1)
            || below(w ^ (ONES * u64::from(b'\\')), 1)
        {
            return true;
        }
    }
    tail.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

pub fn int(out: &mut String, value: i64) {
    if value < 0 {
        out.push('-');
    }
    uint(out, value.unsigned_abs());
}

pub use crate::decimal::uint;

pub fn boolean(out: &mut String, value: bool) {
    out.push_str(if value { "true" } else { "false" });
}

/// The rare parts (lists, nested objects, strings to escape) as serde_json writes them.
pub fn serialized<T: Serialize + ?Sized>(out: &mut String, value: &T) {
    // Strings, maps, numbers and booleans only: serialisation cannot fail.
    if let Ok(json) = serde_json::to_string(value) {
        out.push_str(&json);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn scalars_as_serde_json_writes_them() {
        for value in [0, 7, -1, 10, 999, -1_000, i64::MAX, i64::MIN] {
            let mut out = String::new();
            int(&mut out, value);
            assert_eq!(out, serde_json::to_string(&value).unwrap());
        }
        let mut out = String::new();
        uint(&mut out, u64::MAX);
        assert_eq!(out, u64::MAX.to_string());
        for text in ["", "plain ünï 🚀", "q\"b\\t\tn\n\u{1}\u{7f}</script>"] {
            let mut out = String::new();
            string(&mut out, text);
            assert_eq!(out, serde_json::to_string(text).unwrap());
        }
        // Every byte that needs escaping, at every place in and around the 8-byte words,
        // among bytes that do not (non-ASCII included).
        for special in (0..0x20).chain([b'"', b'\\']) {
            for at in 0..20 {
                let mut bytes = "ab\u{7f}dé🚀xyz0123456789".as_bytes()[..20].to_vec();
                bytes[at] = special;
                let text = String::from_utf8_lossy(&bytes);
                let mut out = String::new();
                string(&mut out, &text);
                assert_eq!(
                    out,
                    serde_json::to_string(&text).unwrap(),
                    "{special} at {at}"
                );
            }
        }
        assert_eq!(member!("respMs"), ",\"respMs\":");
        let maps = [
            BTreeMap::new(),
            BTreeMap::from([("k", "v")]),
            BTreeMap::from([("a\"", "\n"), ("b", ""), ("ü", "🚀")]),
        ];
        for map in maps {
            let mut out = String::new();
            string_map(&mut out, map.iter().map(|(k, v)| (*k, *v)));
            assert_eq!(out, serde_json::to_string(&map).unwrap());
        }
    }
}
