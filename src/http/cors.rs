//! CORS (spec/http.md §CORS): off unless `CORS_ALLOWED_ORIGINS` is set; then listed
//! origins are echoed back with credentials, unlisted ones are refused, and requests
//! without `Origin` (same-origin, curl, probes) pass untouched.

use crate::http::error;
use crate::net::http::{Method, RequestHead, Response};

pub struct Cors {
    allowed: Option<Vec<String>>,
}

pub enum Verdict {
    /// No CORS handling applies.
    Pass,
    /// A listed origin: answer normally and decorate the response.
    Allowed(String),
    /// A preflight from a listed origin: answer with this response.
    Preflight(Response),
    Forbidden,
}

const ALLOW_METHODS: &str = "GET,POST,PUT,PATCH,DELETE,OPTIONS";
const ALLOW_HEADERS: &str = "Origin,Content-Type,Accept,Authorization";
const MAX_AGE_SECS: &str = "43200";

impl Cors {
    pub fn new(allowed: Option<Vec<String>>) -> Cors {
        Cors { allowed }
    }

    pub fn check(&self, head: &RequestHead) -> Verdict {
        let (Some(allowed), Some(origin)) = (&self.allowed, head.header("origin")) else {
            return Verdict::Pass;
        };
        if is_same_origin(origin, head) {
            // Our own pages (`http::web`): browsers send `Origin` on their POSTs too.
            return Verdict::Pass;
        }
        if !allowed.iter().any(|entry| entry == origin) {
            return Verdict::Forbidden;
        }
        if head.method == Method::Options && head.header("access-control-request-method").is_some()
        {
            return Verdict::Preflight(
                Self::decorate(Response::empty(204), origin)
                    .with_header("Access-Control-Allow-Methods", ALLOW_METHODS)
                    .with_header("Access-Control-Allow-Headers", ALLOW_HEADERS)
                    .with_header("Access-Control-Max-Age", MAX_AGE_SECS),
            );
        }
        Verdict::Allowed(origin.to_owned())
    }

    /// The answer to [`Verdict::Forbidden`]: the spec's generic 403 (http.md §Errors),
    /// which names no origin and no rule.
    pub fn forbidden() -> Response {
        error::json_error(403, "Insufficient permissions")
    }

    pub fn decorate(response: Response, origin: &str) -> Response {
        response
            .with_header("Access-Control-Allow-Origin", origin)
            .with_header("Access-Control-Allow-Credentials", "true")
            .with_header("Vary", "Origin")
    }
}

/// An `Origin` naming the host the request was sent to: not cross-origin at all.
fn is_same_origin(origin: &str, head: &RequestHead) -> bool {
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    authority.is_some_and(|authority| head.header("host") == Some(authority))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::http::test_head as head;

    #[test]
    fn off_when_unconfigured_and_for_requests_without_origin() {
        let off = Cors::new(None);
        assert!(matches!(
            off.check(&head("GET / HTTP/1.1\r\nOrigin: https://a\r\n\r\n")),
            Verdict::Pass
        ));
        let on = Cors::new(Some(vec!["https://a".into()]));
        assert!(matches!(
            on.check(&head("GET / HTTP/1.1\r\n\r\n")),
            Verdict::Pass
        ));
    }

    #[test]
    fn listed_origin_preflight_and_unlisted_refusal() {
        let cors = Cors::new(Some(vec!["https://a".into()]));
        let preflight =
            head("OPTIONS /x HTTP/1.1\r\nOrigin: https://a\r\nAccess-Control-Request-Method: POST\r\n\r\n");
        let Verdict::Preflight(response) = cors.check(&preflight) else {
            panic!("preflight expected");
        };
        assert_eq!(response.status, 204);
        assert!(response
            .headers
            .contains(&("Access-Control-Allow-Origin", "https://a".to_owned())));
        assert!(matches!(
            cors.check(&head("GET / HTTP/1.1\r\nOrigin: https://a\r\n\r\n")),
            Verdict::Allowed(origin) if origin == "https://a"
        ));
        assert!(matches!(
            cors.check(&head("GET / HTTP/1.1\r\nOrigin: https://evil\r\n\r\n")),
            Verdict::Forbidden
        ));
    }

    #[test]
    fn the_servers_own_pages_pass() {
        let cors = Cors::new(Some(vec!["https://a".into()]));
        let own = "POST /x HTTP/1.1\r\nHost: edge:8080\r\nOrigin: http://edge:8080\r\n\r\n";
        assert!(matches!(cors.check(&head(own)), Verdict::Pass));
        let other = "POST /x HTTP/1.1\r\nHost: edge:8080\r\nOrigin: http://edge:9090\r\n\r\n";
        assert!(matches!(cors.check(&head(other)), Verdict::Forbidden));
    }

    #[test]
    fn refusals_are_the_specs_forbidden() {
        let refusal = Cors::forbidden();
        assert_eq!(refusal.status, 403);
        let body: serde_json::Value = serde_json::from_slice(&refusal.body).expect("json");
        assert_eq!(
            body,
            serde_json::json!({"error": "Insufficient permissions", "code": "FORBIDDEN"})
        );
    }
}
