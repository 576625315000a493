//! The built-in web pages (`web/`): sessions, chat and admin desk, compiled in with
//! `include_bytes!` so a `FROM scratch` image and an offline edge node serve them with
//! nothing beside the binary. No templating: the pages find the API and the WebSocket
//! from their own address, so the bytes are the same for every deployment, and so is
//! each one's ETag (a hash of the bytes, taken at compile time).
//!
//! Every answer carries a strict `Content-Security-Policy`: scripts and styles from our
//! own files only (no inline script, no `eval`), connections to our own origin (HTTP and
//! WebSocket), images and audio from our origin, `blob:` (a recording before it is sent)
//! and the S3 origin presigned file links point to; framing only by the embedders
//! `CORS_ALLOWED_ORIGINS` lists (where `X-Frame-Options: DENY` would forbid it, a browser
//! that knows `frame-ancestors` follows it instead).

use serde_json::json;

use crate::config::S3Config;
use crate::http::error;
use crate::net::http::{RequestHead, Response};

/// One file of `web/` and how it is served.
struct Asset {
    /// The path after the prefix.
    paths: &'static [&'static str],
    content_type: &'static str,
    bytes: &'static [u8],
    etag: u64,
}

/// FNV-1a, 64 bits: a validator, not a defence; `const` so it costs nothing at run time.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

macro_rules! asset {
    ([$($path:literal),+], $file:literal, $type:expr) => {{
        const BYTES: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/", $file));
        Asset {
            paths: &[$($path),+],
            content_type: $type,
            bytes: BYTES,
            etag: fnv1a(BYTES),
        }
    }};
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// spec/http.md, last route row: `P/` is the sessions page.
static ASSETS: [Asset; 12] = [
    asset!(["/", "/sessions.html"], "sessions.html", HTML),
    asset!(["/chat", "/chat.html"], "chat.html", HTML),
    asset!(["/admin", "/admin.html"], "admin.html", HTML),
    asset!(["/assets/style.css"], "style.css", CSS),
    asset!(["/assets/common.js"], "common.js", JS),
    asset!(["/assets/markdown.js"], "markdown.js", JS),
    asset!(["/assets/sessions.js"], "sessions.js", JS),
    asset!(["/assets/chat.js"], "chat.js", JS),
    asset!(["/assets/admin.js"], "admin.js", JS),
    asset!(["/assets/transcript.js"], "transcript.js", JS),
    asset!(["/assets/attach.js"], "attach.js", JS),
    asset!(["/assets/favicon.svg"], "favicon.svg", "image/svg+xml"),
];

/// The generated one: which embedding pages may hand a token over by `postMessage`.
const EMBEDDERS_PATH: &str = "/assets/embedders.json";

/// Is `rest` (the path after the prefix) a page or an asset of ours? The bare prefix
/// is one too: it is redirected to `P/`, where the pages' relative links resolve.
pub fn is_web_path(rest: &str) -> bool {
    rest.is_empty() || rest == EMBEDDERS_PATH || find(rest).is_some()
}

fn find(rest: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|asset| asset.paths.contains(&rest))
}

/// What the pages are served with; built once at start-up from the configuration.
pub struct Web {
    prefix: String,
    /// The policy without its `connect-src`, which names the request's own host.
    policy: String,
    embedders: Vec<u8>,
}

impl Web {
    pub fn new(prefix: &str, embedders: Option<&[String]>, s3: Option<&S3Config>) -> Web {
        let embedders = embedders.unwrap_or_default();
        let files = s3
            .map(|s3| format!(" {}", s3_origin(s3)))
            .unwrap_or_default();
        let ancestors = std::iter::once("'self'")
            .chain(embedders.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ");
        let policy = format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; \
             img-src 'self' blob: data:{files}; media-src 'self' blob:{files}; \
             form-action 'none'; base-uri 'none'; frame-ancestors {ancestors}"
        );
        let body = json!({ "origins": embedders });
        Web {
            prefix: prefix.to_owned(),
            policy,
            embedders: serde_json::to_vec(&body).unwrap_or_default(),
        }
    }

    /// Answers a GET or HEAD for a path [`is_web_path`] accepted.
    pub fn serve(&self, head: &RequestHead) -> Response {
        let rest = head.path.strip_prefix(&self.prefix).unwrap_or_default();
        if rest.is_empty() {
            // Keeps `?token=` and the rest of the query for the page.
            let query = head.query.as_deref().map(|q| format!("?{q}"));
            return Response::empty(308).with_header(
                "Location",
                format!("{}/{}", self.prefix, query.unwrap_or_default()),
            );
        }
        let (content_type, bytes, etag) = match (rest, find(rest)) {
            (_, Some(asset)) => (asset.content_type, asset.bytes, asset.etag),
            (EMBEDDERS_PATH, None) => (
                "application/json",
                self.embedders.as_slice(),
                fnv1a(&self.embedders),
            ),
            (_, None) => return error::not_found(),
        };
        let etag = format!("\"{etag:016x}\"");
        let fresh = head
            .header("if-none-match")
            .is_some_and(|tags| tags.split(',').any(|tag| tag.trim() == etag));
        let response = if fresh {
            Response::empty(304)
        } else {
            Response::new(200, content_type, bytes)
        };
        response
            .with_header("ETag", etag)
            // Revalidate every time: an upgrade changes the pages and their scripts
            // together, and an unchanged file costs a 304 with no body.
            .with_header("Cache-Control", "no-cache")
            .with_header("Content-Security-Policy", self.policy_for(head))
    }

    fn policy_for(&self, head: &RequestHead) -> String {
        // `'self'` covers ws: and wss: in CSP level 3 browsers; older ones need the
        // host named. A Host that is not a plain host[:port] is left out, never echoed.
        let sockets = head
            .header("host")
            .filter(|host| is_plain_host(host))
            .map(|host| format!(" ws://{host} wss://{host}"))
            .unwrap_or_default();
        format!("{}; connect-src 'self'{sockets}", self.policy)
    }
}

fn is_plain_host(host: &str) -> bool {
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

/// Where presigned links of this bucket point: the custom endpoint's origin, else AWS's
/// virtual-hosted and path-style hosts of the region (and the global one).
fn s3_origin(s3: &S3Config) -> String {
    match &s3.endpoint {
        Some(endpoint) => origin_of(endpoint).to_owned(),
        None => format!(
            "https://{bucket}.s3.{region}.amazonaws.com https://s3.{region}.amazonaws.com \
             https://{bucket}.s3.amazonaws.com",
            bucket = s3.bucket,
            region = s3.region
        ),
    }
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> &str {
    let authority_start = url.find("://").map_or(0, |i| i + 3);
    let end = url[authority_start..]
        .find('/')
        .map_or(url.len(), |i| authority_start + i);
    &url[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::http::test_head;

    fn web() -> Web {
        Web::new(
            "/chatbox",
            Some(&["https://portal.example".to_owned()]),
            None,
        )
    }

    fn get(path: &str, extra: &str) -> Response {
        web().serve(&test_head(&format!(
            "GET {path} HTTP/1.1\r\nHost: edge.local:8080\r\n{extra}\r\n"
        )))
    }

    fn header<'r>(response: &'r Response, name: &str) -> Option<&'r str> {
        response
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn every_page_and_asset_is_served_with_its_type_and_policy() {
        for asset in &ASSETS {
            for path in asset.paths {
                let response = get(&format!("/chatbox{path}"), "");
                assert_eq!(response.status, 200, "{path}");
                assert_eq!(header(&response, "content-type"), Some(asset.content_type));
                let policy = header(&response, "content-security-policy").expect("csp");
                assert!(policy.contains("script-src 'self';"), "{policy}");
                assert!(!policy.contains("unsafe"), "{policy}");
                assert!(policy.contains("wss://edge.local:8080"), "{policy}");
                assert!(
                    policy.contains("frame-ancestors 'self' https://portal.example"),
                    "{policy}"
                );
            }
        }
    }

    #[test]
    fn a_matching_etag_is_a_304_without_body() {
        let first = get("/chatbox/chat", "");
        let etag = header(&first, "etag").expect("etag").to_owned();
        let again = get(
            "/chatbox/chat",
            &format!("If-None-Match: W/\"x\", {etag}\r\n"),
        );
        assert_eq!(again.status, 304);
        assert!(again.body.is_empty());
        let changed = get("/chatbox/chat", "If-None-Match: \"0\"\r\n");
        assert_eq!(changed.status, 200);
    }

    #[test]
    fn the_bare_prefix_redirects_with_its_query() {
        let response = get("/chatbox?token=abc", "");
        assert_eq!(response.status, 308);
        assert_eq!(header(&response, "location"), Some("/chatbox/?token=abc"));
    }

    #[test]
    fn a_strange_host_is_not_echoed_into_the_policy() {
        let response = web().serve(&test_head(
            "GET /chatbox/ HTTP/1.1\r\nHost: a;script-src *\r\n\r\n",
        ));
        let policy = header(&response, "content-security-policy").expect("csp");
        assert!(policy.ends_with("connect-src 'self'"), "{policy}");
    }

    #[test]
    fn embedders_and_file_origins_come_from_the_configuration() {
        let body: serde_json::Value =
            serde_json::from_slice(&get("/chatbox/assets/embedders.json", "").body).expect("json");
        assert_eq!(body["origins"][0], "https://portal.example");
        assert_eq!(
            origin_of("https://minio.local:9000/x/y"),
            "https://minio.local:9000"
        );
        assert!(is_web_path(""));
        assert!(!is_web_path("/sessions"), "the API, not a page");
        assert!(!is_web_path("/assets/nope.js"));
    }
}
