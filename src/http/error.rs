//! The JSON error body every route answers with (spec/http.md §Errors). Messages are
//! generic; details go to the log only.

use serde::Serialize;

use crate::net::http::Response;

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    code: &'a str,
}

/// The spec's code for a status; statuses the spec does not list get a descriptive one.
pub fn code_for(status: u16) -> &'static str {
    match status {
        400 => "BAD_REQUEST",
        401 => "UNAUTHORIZED",
        403 => "FORBIDDEN",
        404 => "NOT_FOUND",
        405 => "METHOD_NOT_ALLOWED",
        408 => "REQUEST_TIMEOUT",
        409 => "CONFLICT",
        411 => "LENGTH_REQUIRED",
        413 => "PAYLOAD_TOO_LARGE",
        415 => "UNSUPPORTED_MEDIA_TYPE",
        431 => "HEADERS_TOO_LARGE",
        503 => "UNAVAILABLE",
        _ => "INTERNAL_ERROR",
    }
}

pub fn json_error(status: u16, message: &str) -> Response {
    json_error_with_code(status, code_for(status), message)
}

pub fn json_error_with_code(status: u16, code: &str, message: &str) -> Response {
    json(
        status,
        &ErrorBody {
            error: message,
            code,
        },
    )
}

pub fn json(status: u16, body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => Response::new(status, "application/json", bytes),
        Err(error) => {
            log::error!("response serialisation failed: {error}");
            Response::new(
                500,
                "application/json",
                &br#"{"error":"An internal error occurred","code":"INTERNAL_ERROR"}"#[..],
            )
        }
    }
}

pub fn not_found() -> Response {
    json_error(404, "Not found")
}

pub fn method_not_allowed(allow: &'static str) -> Response {
    json_error(405, "Method not allowed").with_header("Allow", allow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_has_message_and_code() {
        let response = json_error(404, "Session not found");
        assert_eq!(response.status, 404);
        let body: serde_json::Value = serde_json::from_slice(&response.body).expect("json");
        assert_eq!(body["error"], "Session not found");
        assert_eq!(body["code"], "NOT_FOUND");
    }
}
