//! `Cipher` against an independent AES-GCM: Python's `cryptography` (OpenSSL), which is
//! what the old service's data format must stay readable by. The interpreter comes from
//! `CHATBOX_TEST_PYTHON` (default `python3`); `scripts/test` points it at a venv that has
//! `cryptography`.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use chatbox::crypto::Cipher;
use common::python;
use serde_json::{json, Value};

const KEY: [u8; 32] = *b"interop-key-0123456789-abcdefghi";

/// Reads `{"key": hex, "op": "seal"|"open", "texts": [...]}` and prints a JSON list:
/// each text sealed in the stored format, or each stored value opened.
const SCRIPT: &str = r#"
import base64, json, os, sys
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

job = json.load(sys.stdin)
aead = AESGCM(bytes.fromhex(job["key"]))
out = []
for text in job["texts"]:
    if job["op"] == "seal":
        nonce = os.urandom(12)
        sealed = nonce + aead.encrypt(nonce, text.encode("utf-8"), None)
        out.append(base64.b64encode(sealed).decode("ascii"))
    else:
        raw = base64.b64decode(text, validate=True)
        out.append(aead.decrypt(raw[:12], raw[12:], None).decode("utf-8"))
json.dump(out, sys.stdout)
"#;

fn texts() -> Vec<String> {
    [
        "hello",
        "",
        "Grüße, 世界 🚀 — \"quoted\"\nnew line\ttab",
        "NUL \0 inside",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(["long ".repeat(20_000)])
    .collect()
}

/// Runs [`SCRIPT`] on `texts`; panics with a hint when `cryptography` is missing.
fn python_aead(op: &str, key: &[u8; 32], texts: &[String]) -> Vec<String> {
    let python = python();
    let probe = Command::new(&python)
        .args(["-c", "import cryptography.hazmat.primitives.ciphers.aead"])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "{python} cannot import the `cryptography` package ({}); run scripts/test, which \
             creates .venv-tools with it, or set CHATBOX_TEST_PYTHON=$PWD/.venv-tools/bin/python",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ),
        Err(err) => panic!(
            "cannot run {python} ({err}); run scripts/test, which creates .venv-tools, or set \
             CHATBOX_TEST_PYTHON"
        ),
    }
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let job = json!({ "key": hex, "op": op, "texts": texts });
    let mut child = Command::new(&python)
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(job.to_string().as_bytes())
        .expect("write job");
    let out = child.wait_with_output().expect("python output");
    assert!(
        out.status.success(),
        "python {op} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Value = serde_json::from_slice(&out.stdout).expect("python prints JSON");
    list.as_array()
        .expect("a JSON list")
        .iter()
        .map(|v| v.as_str().expect("strings").to_owned())
        .collect()
}

#[test]
fn rust_opens_what_python_sealed() {
    let texts = texts();
    let sealed = python_aead("seal", &KEY, &texts);
    let cipher = Cipher::new(&KEY);
    for (text, stored) in texts.iter().zip(&sealed) {
        assert_ne!(stored, text);
        assert_eq!(&cipher.open(stored), text);
    }
    // Under another key the values do not authenticate, so they come back as stored.
    let other = Cipher::new(&[9; 32]);
    for stored in &sealed {
        assert_eq!(&other.open(stored), stored);
    }
}

#[test]
fn python_opens_what_rust_sealed() {
    let texts = texts();
    let cipher = Cipher::new(&KEY);
    let sealed: Vec<String> = texts
        .iter()
        .map(|t| cipher.seal(t).expect("seal"))
        .collect();
    assert_eq!(python_aead("open", &KEY, &sealed), texts);
}
