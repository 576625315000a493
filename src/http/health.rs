//! Liveness and readiness (spec/http.md, spec/integrations.md §Health and shutdown).
//!
//! `healthz` answers whenever the loop runs and is never rate limited. `readyz` reports a
//! registry of named checks that other parts keep current (the store, the LLM providers);
//! the loop's drain turns it 503 the moment SIGTERM arrives. Checks are cached states,
//! never probes run here: a blocking ping on the loop would stall every connection.

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::http::error;
use crate::net::http::Response;
use crate::time;

#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub ready: bool,
    /// Extra fields shown next to `status` (`reason`, `providers_count`, …).
    pub detail: Map<String, Value>,
    /// Shown, but not part of the verdict: a dependency the pod works without (Redis:
    /// an outage must not take every pod out of the Service at once).
    pub advisory: bool,
}

impl Check {
    pub fn ready() -> Check {
        Check {
            ready: true,
            detail: Map::new(),
            advisory: false,
        }
    }

    pub fn not_ready(reason: impl Into<String>) -> Check {
        let mut detail = Map::new();
        detail.insert("reason".into(), Value::String(reason.into()));
        Check {
            ready: false,
            detail,
            advisory: false,
        }
    }

    /// This check is reported but never makes the pod unready.
    pub fn advisory(mut self) -> Check {
        self.advisory = true;
        self
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Check {
        self.detail.insert(key.into(), value.into());
        self
    }

    fn to_json(&self) -> Value {
        let mut object = Map::new();
        let status = if self.ready { "ready" } else { "not ready" };
        object.insert("status".into(), Value::String(status.into()));
        object.extend(self.detail.clone());
        Value::Object(object)
    }
}

/// Named readiness checks, in registration order.
#[derive(Default)]
pub struct Readiness {
    checks: Vec<(&'static str, Check)>,
}

impl Readiness {
    pub fn set(&mut self, name: &'static str, check: Check) {
        match self.checks.iter_mut().find(|(n, _)| *n == name) {
            Some((_, slot)) => *slot = check,
            None => self.checks.push((name, check)),
        }
    }

    pub fn is_ready(&self, draining: bool) -> bool {
        !draining
            && self
                .checks
                .iter()
                .all(|(_, check)| check.ready || check.advisory)
    }

    pub fn respond(&self, draining: bool, unix: u64) -> Response {
        let mut checks = Map::new();
        for (name, check) in &self.checks {
            checks.insert((*name).into(), check.to_json());
        }
        if draining {
            checks.insert("shutdown".into(), json!({"status": "draining"}));
        }
        let ready = self.is_ready(draining);
        let body = json!({
            "status": if ready { "ready" } else { "not ready" },
            "timestamp": time::rfc3339(unix),
            "checks": checks,
        });
        let response = error::json(if ready { 200 } else { 503 }, &body);
        if ready {
            response
        } else {
            response.with_header("Retry-After", "5")
        }
    }
}

/// The liveness body. A struct, not `json!`: probes and keep-alive load call this on
/// every request, and a `Value` map cost four allocations and most of the request's CPU.
#[derive(Serialize)]
struct Health {
    status: &'static str,
    timestamp: String,
}

pub fn healthz(unix: u64) -> Response {
    error::json(
        200,
        &Health {
            status: "healthy",
            timestamp: time::rfc3339(unix),
        },
    )
}

/// The liveness answer, made once a second: its body changes only with the timestamp's
/// second, and keep-alive load asks for it thousands of times in between.
#[derive(Default)]
pub struct Healthz {
    made: Option<(u64, Response)>,
}

impl Healthz {
    pub fn respond(&mut self, unix: u64) -> Response {
        match &self.made {
            Some((at, response)) if *at == unix => response.clone(),
            _ => {
                let response = healthz(unix);
                self.made = Some((unix, response.clone()));
                response
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(response: &Response) -> Value {
        serde_json::from_slice(&response.body).expect("json")
    }

    #[test]
    fn healthz_is_the_spec_body_byte_for_byte() {
        let response = healthz(1_764_106_840);
        assert_eq!(response.status, 200);
        assert_eq!(
            std::str::from_utf8(&response.body).expect("utf-8"),
            r#"{"status":"healthy","timestamp":"2025-11-25T21:40:40Z"}"#
        );
    }

    #[test]
    fn the_made_answer_follows_the_clock() {
        let mut made = Healthz::default();
        for unix in [1_764_106_840, 1_764_106_840, 1_764_106_841, 1_764_106_839] {
            assert_eq!(made.respond(unix).body, healthz(unix).body, "at {unix}");
        }
    }

    #[test]
    fn ready_until_a_check_fails_or_the_drain_starts() {
        let mut readiness = Readiness::default();
        readiness.set("llm", Check::ready().with("providers_count", 1));
        let ok = readiness.respond(false, 0);
        assert_eq!(ok.status, 200);
        assert_eq!(body(&ok)["checks"]["llm"]["providers_count"], 1);

        let draining = readiness.respond(true, 0);
        assert_eq!(draining.status, 503);
        assert_eq!(body(&draining)["checks"]["shutdown"]["status"], "draining");

        readiness.set("store", Check::not_ready("connection refused"));
        let down = readiness.respond(false, 0);
        assert_eq!(down.status, 503);
        assert_eq!(body(&down)["status"], "not ready");
        assert_eq!(
            body(&down)["checks"]["store"]["reason"],
            "connection refused"
        );
    }

    #[test]
    fn an_advisory_check_is_shown_but_never_decides() {
        let mut readiness = Readiness::default();
        readiness.set("store", Check::ready());
        readiness.set("redis", Check::not_ready("unreachable").advisory());
        let response = readiness.respond(false, 0);
        assert_eq!(response.status, 200);
        assert_eq!(body(&response)["checks"]["redis"]["status"], "not ready");
        readiness.set("store", Check::not_ready("down"));
        assert_eq!(readiness.respond(false, 0).status, 503);
    }
}
