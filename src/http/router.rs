//! Path → route. The public listener serves everything under the path prefix; the
//! internal listener (`METRICS_PORT`) serves probes (and metrics) at the root, for
//! scrapers and kubelets on an internal port.

use crate::net::conn::ListenerKind;
use crate::net::http::Method;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Healthz,
    Readyz,
    NotFound,
}

impl Route {
    pub fn resolve(listener: ListenerKind, prefix: &str, path: &str) -> Route {
        let local = match listener {
            ListenerKind::Internal => Some(path),
            ListenerKind::Public => path.strip_prefix(prefix),
        };
        match local {
            Some("/healthz") => Route::Healthz,
            Some("/readyz") => Route::Readyz,
            _ => Route::NotFound,
        }
    }

    /// The `Allow` header value, and whether `method` is in it.
    pub fn allows(self, method: Method) -> Result<(), &'static str> {
        match self {
            Route::Healthz | Route::Readyz if matches!(method, Method::Get | Method::Head) => {
                Ok(())
            }
            Route::Healthz | Route::Readyz => Err("GET, HEAD"),
            Route::NotFound => Ok(()),
        }
    }

    /// Probes take no body; everything else is bounded per route as routes arrive.
    pub fn body_limit(self) -> usize {
        match self {
            Route::Healthz | Route::Readyz | Route::NotFound => 0,
        }
    }

    /// Route template, the `endpoint` label of request metrics.
    pub fn template(self) -> &'static str {
        match self {
            Route::Healthz => "/healthz",
            Route::Readyz => "/readyz",
            Route::NotFound => "unmatched",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_applies_to_the_public_listener_only() {
        assert_eq!(
            Route::resolve(ListenerKind::Public, "/chatbox", "/chatbox/healthz"),
            Route::Healthz
        );
        assert_eq!(
            Route::resolve(ListenerKind::Public, "/chatbox", "/healthz"),
            Route::NotFound
        );
        assert_eq!(
            Route::resolve(ListenerKind::Public, "/chatbox", "/chatboxhealthz"),
            Route::NotFound
        );
        assert_eq!(
            Route::resolve(ListenerKind::Internal, "/chatbox", "/readyz"),
            Route::Readyz
        );
    }
}
