//! JSON written by hand for the shapes on the hot paths (outbound chat frames, the
//! embedded store's session records), byte for byte what serde_json writes for them:
//! through serde_json every key went through its escaper byte by byte, which callgrind
//! showed as the largest cost of a chat exchange on the loop thread and the store lane.
//! Keys are constants here, and a string is copied as it is unless it holds a
//! character JSON escapes.

use serde::Serialize;

/// `,"key":`, the separator and key of every member but an object's first.
pub fn key(out: &mut String, key: &str) {
    out.push_str(",\"");
    out.push_str(key);
    out.push_str("\":");
}

/// A JSON string: copied between quotes when nothing in it needs escaping (serde_json
/// escapes only `"`, `\` and control characters), else serde_json's own escaping.
pub fn string(out: &mut String, value: &str) {
    if value.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(value);
        out.push('"');
    } else {
        serialized(out, value);
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

pub fn int(out: &mut String, value: i64) {
    if value < 0 {
        out.push('-');
    }
    uint(out, value.unsigned_abs());
}

pub fn uint(out: &mut String, mut value: u64) {
    let mut digits = [0_u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend(digits[start..].iter().map(|&d| char::from(d)));
}

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
