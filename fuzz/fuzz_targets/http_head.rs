//! Fuzzes `chatbox::net::http::parse_head`, the resumable HTTP/1.1 request-head parser.
//!
//! Input layout: `[split] request-bytes...`
//! - `split` (first byte) picks where the request bytes are cut for the resumability
//!   check: the prefix is `split * len / 255` bytes long, so 0 is "nothing has arrived",
//!   255 is "everything has", and 128 ('\x80') is about half. Seed files start with a
//!   printable byte so they stay readable ('@' = 64: a quarter).
//! - the rest is what a client sent on the connection: one head or several pipelined
//!   ones, each followed by the body its `Content-Length` declares.
//!
//! `CHATBOX_FUZZ_TRACE=1` prints each parse result to stderr (for triage: run the target
//! binary on one input file).
//!
//! Invariants (any failure aborts, and libFuzzer saves the input):
//! - `parse_head` never panics, on any input;
//! - a complete head: `used <= input.len()`, `used <= MAX_HEAD_BYTES`, the path starts
//!   with '/', and re-parsing exactly `&input[..used]` gives the same head and `used`;
//! - `query_param` and `header` never panic;
//! - resumable: parsing a prefix gives `Ok(None)` ("not yet") or exactly what the whole
//!   input gives; a complete head inside the prefix parses identically;
//! - pipelining: heads after the first (past its body) obey the same rules.
#![no_main]

use chatbox::net::http::{parse_head, HeadError, RequestHead, MAX_HEAD_BYTES};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// Enough pipelined heads to reach the interesting cases, few enough to stay fast.
const MAX_PIPELINED: usize = 8;

/// Whether `CHATBOX_FUZZ_TRACE` is set (read once).
fn tracing() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("CHATBOX_FUZZ_TRACE").is_some_and(|v| v != "0"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, input)) = data.split_first() else {
        return;
    };
    let whole = parse_head(input);
    if tracing() {
        eprintln!(
            "{} bytes, prefix {}: {whole:?}",
            input.len(),
            prefix_len(split, input.len())
        );
    }
    check_prefix(input, prefix_len(split, input.len()), &whole);

    let mut rest = input;
    let mut parsed = whole;
    for _ in 0..MAX_PIPELINED {
        let Ok(Some((head, used))) = parsed else {
            return;
        };
        check_complete(rest, &head, used);
        // The connection skips the body the head declares, then parses the next head.
        let Some(next) = used
            .checked_add(head.content_length)
            .and_then(|end| rest.get(end..))
        else {
            return;
        };
        rest = next;
        parsed = parse_head(rest);
        if tracing() {
            eprintln!("next head, {} bytes left: {parsed:?}", rest.len());
        }
    }
});

/// `split` scaled to the input's length: every cut point is reachable for inputs of up to
/// 255 bytes, and cuts spread evenly over longer ones.
fn prefix_len(split: u8, len: usize) -> usize {
    len * usize::from(split) / 255
}

/// Everything that must hold for a complete head that took `used` bytes of `input`.
fn check_complete(input: &[u8], head: &RequestHead, used: usize) {
    assert!(used <= input.len(), "used {used} > input {}", input.len());
    assert!(
        used <= MAX_HEAD_BYTES,
        "used {used} > MAX_HEAD_BYTES {MAX_HEAD_BYTES}"
    );
    assert!(used > 0, "a complete head took no bytes");
    assert!(
        head.path.starts_with('/'),
        "path {:?} does not start with '/'",
        head.path
    );
    assert!(
        !head.path.contains('?'),
        "path {:?} still has its query",
        head.path
    );
    for (name, _) in &head.headers {
        assert!(
            !name.bytes().any(|b| b.is_ascii_uppercase()),
            "header name {name:?} is not lower case"
        );
    }

    // The head's own bytes are enough, and give the same answer.
    match parse_head(&input[..used]) {
        Ok(Some((again, used_again))) => {
            assert_eq!(
                used_again, used,
                "re-parsing the head's bytes took a different length"
            );
            assert_same(&again, head, "re-parsing the head's bytes");
        }
        other => panic!(
            "re-parsing the head's {used} bytes gave {:?}",
            other.map(|o| o.map(|(_, n)| n))
        ),
    }

    // The accessors the routes use: any name, any query.
    let _ = head.query_param("token");
    let _ = head.query_param("");
    let _ = head.header("host");
    let _ = head.header("sec-websocket-key");
}

/// A prefix of the input is "not yet", or exactly what the whole input is.
fn check_prefix(input: &[u8], cut: usize, whole: &Result<Option<(RequestHead, usize)>, HeadError>) {
    let prefix = parse_head(&input[..cut]);
    match (&prefix, whole) {
        (Ok(None), _) => {}
        (Ok(Some((a, used_a))), Ok(Some((b, used_b)))) => {
            assert_eq!(
                used_a, used_b,
                "a complete head in the first {cut} bytes took a different length than in the whole"
            );
            assert_same(a, b, "prefix vs whole");
        }
        (Err(a), Err(b)) => assert_eq!(a, b, "the first {cut} bytes failed differently"),
        (prefix, whole) => panic!(
            "the first {cut} of {} bytes gave {:?}, the whole gave {:?}",
            input.len(),
            summary(prefix),
            summary(whole)
        ),
    }
}

fn summary(r: &Result<Option<(RequestHead, usize)>, HeadError>) -> String {
    match r {
        Ok(None) => "Ok(None)".to_owned(),
        Ok(Some((_, used))) => format!("a head of {used} bytes"),
        Err(e) => format!("Err({e:?})"),
    }
}

/// `RequestHead` has no `PartialEq`; its `Debug` form covers every field, including any
/// added later.
fn assert_same(a: &RequestHead, b: &RequestHead, what: &str) {
    let (a, b) = (format!("{a:?}"), format!("{b:?}"));
    assert_eq!(a, b, "{what}: heads differ");
}
