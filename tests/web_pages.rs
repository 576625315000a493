//! The built-in web pages (`web/`, `src/http/web.rs`): how the real binary serves them
//! (types, validators, the security headers, the bare prefix), and, in headless
//! Chromium, what a user and an admin do with them (`tests/browser/pages.cjs`).
//!
//! The browser scenarios need Chromium and `playwright-core`; `scripts/test` installs
//! both (Debian `chromium`, npm into `.tools/browser`) and runs them with `--ignored`,
//! as it does the static binary's test.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::llm_mock::{LlmMock, Script, Wire};
use common::{binary, Server, TempDir, JWT_SECRET};

fn token(user: &str, name: &str, roles: &[&str]) -> String {
    let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    chatbox::auth::mint(
        JWT_SECRET.as_bytes(),
        user,
        Some(name),
        &roles,
        now,
        Some(3600),
    )
    .expect("token")
}

#[test]
fn pages_and_assets_carry_their_type_policy_and_validator() {
    let server = Server::start(&[]);
    for (path, content_type) in [
        ("/chatbox/", "text/html; charset=utf-8"),
        ("/chatbox/chat", "text/html; charset=utf-8"),
        ("/chatbox/admin.html", "text/html; charset=utf-8"),
        ("/chatbox/sessions.html", "text/html; charset=utf-8"),
        ("/chatbox/assets/chat.js", "text/javascript; charset=utf-8"),
        ("/chatbox/assets/style.css", "text/css; charset=utf-8"),
    ] {
        let response = server.get(path);
        assert_eq!(response.status, 200, "{path}");
        assert_eq!(
            response.header("content-type"),
            Some(content_type),
            "{path}"
        );
        assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(response.header("cache-control"), Some("no-cache"));
        let policy = response.header("content-security-policy").expect("CSP");
        assert!(policy.contains("script-src 'self';"), "{policy}");
        assert!(!policy.contains("unsafe-inline"), "{policy}");
        let etag = response.header("etag").expect("ETag").to_owned();
        let again = server.request("GET", path, &format!("If-None-Match: {etag}\r\n"), "");
        assert_eq!(again.status, 304, "{path}");
        assert!(again.body.is_empty());
    }
}

#[test]
fn pages_have_no_inline_script_or_style() {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    for page in ["sessions.html", "chat.html", "admin.html"] {
        let html = std::fs::read_to_string(web.join(page)).expect("page");
        for (at, _) in html.match_indices("<script") {
            let tag = &html[at..at + html[at..].find('>').expect("tag end")];
            assert!(tag.contains(" src="), "{page}: inline script {tag}");
        }
        assert!(!html.contains("<style"), "{page}: inline <style>");
        assert!(!html.contains(" style="), "{page}: style attribute");
        let handler = html.match_indices(" on").find(|(at, _)| {
            let name: String = html[at + 3..]
                .chars()
                .take_while(char::is_ascii_lowercase)
                .collect();
            !name.is_empty() && html[at + 3 + name.len()..].starts_with('=')
        });
        assert!(handler.is_none(), "{page}: an inline event handler");
    }
}

#[test]
fn the_bare_prefix_redirects_and_the_api_keeps_its_paths() {
    let server = Server::start(&[]);
    let redirect = server.get("/chatbox?token=abc");
    assert_eq!(redirect.status, 308);
    assert_eq!(redirect.header("location"), Some("/chatbox/?token=abc"));
    // `P/sessions` is the API, `P/sessions.html` the page.
    assert_eq!(server.get("/chatbox/sessions").status, 401);
    assert_eq!(server.get("/chatbox/assets/missing.js").status, 404);
    let post = server.request("POST", "/chatbox/chat", "Content-Length: 0\r\n", "");
    assert_eq!(post.status, 405);
}

/// `chatbox --dev` prints one link per page, saying which page and as whom: each
/// answers with its page, and its token works for that page's API calls.
#[test]
fn dev_links_name_and_open_each_page_logged_in() {
    let data = TempDir::new();
    let path = data.path().to_path_buf();
    let server = Server::launch(
        |port| {
            let mut command = Command::new(binary());
            command
                .arg("--dev")
                .env_clear()
                .env("SERVER_PORT", port.to_string())
                .env("DATA_DIR", &path)
                .env("LOG_LEVEL", "info");
            command
        },
        data,
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let link = |label: &str| loop {
        let found = server.logs().iter().find_map(|line| {
            let (_, rest) = line.split_once(label)?;
            Some(rest.trim().to_owned())
        });
        if let Some(url) = found {
            break url;
        }
        assert!(std::time::Instant::now() < deadline, "no {label} link");
        std::thread::sleep(Duration::from_millis(20));
    };
    let origin = format!("http://{}", server.addr());
    for (label, page, api) in [
        (
            "chat page, logged in as dev-user:",
            "/chatbox/chat",
            "/chatbox/sessions",
        ),
        (
            "sessions page, logged in as dev-user:",
            "/chatbox/",
            "/chatbox/sessions",
        ),
        (
            "admin desk, logged in as dev-admin:",
            "/chatbox/admin",
            "/chatbox/admin/metrics",
        ),
    ] {
        let url = link(label);
        let (path, token) = url
            .strip_prefix(&origin)
            .and_then(|rest| rest.split_once("?token="))
            .unwrap_or_else(|| panic!("{label} {url}"));
        assert_eq!(path, page, "{label}");
        let html = server.get(path);
        assert_eq!(html.status, 200, "{label}");
        assert_eq!(
            html.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        let call = server.request(
            "GET",
            api,
            &format!("Authorization: Bearer {token}\r\n"),
            "",
        );
        assert_eq!(call.status, 200, "{label}: {api} with its token");
    }
}

/// The slow model's reply: word by word, slow enough to stop or reload in the middle.
const SLOW_WORDS: [&str; 24] = [
    "One ",
    "two ",
    "three ",
    "four ",
    "five ",
    "six ",
    "seven ",
    "eight ",
    "nine ",
    "ten ",
    "eleven ",
    "twelve ",
    "thirteen ",
    "fourteen ",
    "fifteen ",
    "sixteen ",
    "seventeen ",
    "eighteen ",
    "nineteen ",
    "twenty ",
    "twenty-one ",
    "twenty-two ",
    "twenty-three ",
    "done.",
];

/// A page on a loopback origin of its own (Chromium lets only loopback pages frame
/// loopback ones) that frames the address after its `#`: an embedder of the chat page.
/// Its origin, for `CORS_ALLOWED_ORIGINS`.
fn embedding_page() -> String {
    const PAGE: &str = "<!doctype html><title>embedder</title>\
        <iframe id=\"chat\" width=\"800\" height=\"600\"></iframe>\
        <script>document.getElementById('chat').src = location.hash.slice(1);</script>";
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let origin = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                head.push(byte[0]);
            }
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{PAGE}",
                PAGE.len()
            );
        }
    });
    origin
}

fn tools() -> PathBuf {
    std::env::var_os("CHATBOX_TEST_NODE_MODULES").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/browser/node_modules"),
        PathBuf::from,
    )
}

#[test]
#[ignore = "needs Chromium and playwright-core: scripts/test installs them and runs it"]
fn browser_scenarios() {
    let modules = tools();
    assert!(
        modules.join("playwright-core").is_dir(),
        "no playwright-core in {} (scripts/test installs it)",
        modules.display()
    );
    // Enough slow replies for every scenario that picks the slow model.
    let slow = Script::slow(&SLOW_WORDS, Duration::from_millis(250));
    let mock = LlmMock::start(Wire::OpenAi, vec![slow; 6]);
    let endpoint = mock.endpoint();
    let embedder = embedding_page();
    let stranger = embedding_page();
    let server = Server::start(&[
        ("LLM_PROVIDER_1_ID", "echo"),
        ("LLM_PROVIDER_1_TYPE", "echo"),
        ("LLM_PROVIDER_1_NAME", "Echo (offline)"),
        ("LLM_PROVIDER_2_ID", "slow"),
        ("LLM_PROVIDER_2_TYPE", "openai"),
        ("LLM_PROVIDER_2_NAME", "Slow upstream"),
        ("LLM_PROVIDER_2_ENDPOINT", &endpoint),
        ("LLM_PROVIDER_2_MODEL", "upstream-model"),
        ("DEFAULT_MODEL", "echo"),
        // The embedding scenario's page; the pages' own origin must pass as well.
        ("CORS_ALLOWED_ORIGINS", &embedder),
        ("ADMIN_RATE_LIMIT", "1000"),
        ("LOG_LEVEL", "info"),
    ]);
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("browser-screenshots");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/pages.cjs");
    let output = Command::new(std::env::var("CHATBOX_TEST_NODE").unwrap_or("node".into()))
        .arg(&script)
        .env("NODE_PATH", &modules)
        .env("CHATBOX_URL", format!("http://{}/chatbox/", server.addr()))
        .env("USER_TOKEN", token("ann", "Ann", &[]))
        .env("OTHER_TOKEN", token("bob", "Bob", &[]))
        .env("ADMIN_TOKEN", token("ada", "Ada", &["admin"]))
        .env("SLOW_REPLY", SLOW_WORDS.concat())
        .env("EMBEDDER", &embedder)
        .env("STRANGER", &stranger)
        .env("UPLOADS", "1")
        .env("SCREENSHOTS", &shots)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "browser scenarios failed:\n{stdout}\n{stderr}\nserver log (tail):\n{}",
        server
            .logs()
            .iter()
            .rev()
            .take(60)
            .rev()
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    println!("screenshots in {}", shots.display());
}
