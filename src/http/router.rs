//! Path → route. The public listener serves everything under the path prefix; the
//! internal listener (`METRICS_PORT`) serves probes (and metrics) at the root, for
//! scrapers and kubelets on an internal port.

use crate::net::conn::ListenerKind;
use crate::net::http::Method;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Healthz,
    Readyz,
    /// The chat WebSocket.
    Ws,
    /// The unauthenticated echo WebSocket (only when `CHATBOX_ECHO=true`).
    Echo,
    NotFound,
}

impl Route {
    pub fn resolve(listener: ListenerKind, prefix: &str, path: &str, echo: bool) -> Route {
        match listener {
            ListenerKind::Internal => match path {
                "/healthz" => Route::Healthz,
                "/readyz" => Route::Readyz,
                _ => Route::NotFound,
            },
            ListenerKind::Public => match path.strip_prefix(prefix) {
                Some("/healthz") => Route::Healthz,
                Some("/readyz") => Route::Readyz,
                Some("/ws") => Route::Ws,
                Some("/echo") if echo => Route::Echo,
                _ => Route::NotFound,
            },
        }
    }

    pub fn is_websocket(self) -> bool {
        matches!(self, Route::Ws | Route::Echo)
    }

    /// The `Allow` header value, and whether `method` is in it.
    pub fn allows(self, method: Method) -> Result<(), &'static str> {
        match self {
            Route::Healthz | Route::Readyz if matches!(method, Method::Get | Method::Head) => {
                Ok(())
            }
            Route::Healthz | Route::Readyz => Err("GET, HEAD"),
            Route::Ws | Route::Echo if method == Method::Get => Ok(()),
            Route::Ws | Route::Echo => Err("GET"),
            Route::NotFound => Ok(()),
        }
    }

    /// Probes take no body; everything else is bounded per route as routes arrive.
    pub fn body_limit(self) -> usize {
        match self {
            Route::Healthz | Route::Readyz | Route::Ws | Route::Echo | Route::NotFound => 0,
        }
    }

    /// Route template, the `endpoint` label of request metrics.
    pub fn template(self) -> &'static str {
        match self {
            Route::Healthz => "/healthz",
            Route::Readyz => "/readyz",
            Route::Ws => "/ws",
            Route::Echo => "/echo",
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
            Route::resolve(ListenerKind::Public, "/chatbox", "/chatbox/healthz", false),
            Route::Healthz
        );
        assert_eq!(
            Route::resolve(ListenerKind::Public, "/chatbox", "/healthz", false),
            Route::NotFound
        );
        assert_eq!(
            Route::resolve(ListenerKind::Public, "/chatbox", "/chatboxhealthz", false),
            Route::NotFound
        );
        assert_eq!(
            Route::resolve(ListenerKind::Internal, "/chatbox", "/readyz", false),
            Route::Readyz
        );
        assert_eq!(
            Route::resolve(ListenerKind::Internal, "/chatbox", "/ws", true),
            Route::NotFound,
            "no WebSockets on the internal port"
        );
    }

    #[test]
    fn echo_exists_only_when_enabled() {
        let resolve =
            |echo| Route::resolve(ListenerKind::Public, "/chatbox", "/chatbox/echo", echo);
        assert_eq!(resolve(false), Route::NotFound);
        assert_eq!(resolve(true), Route::Echo);
    }
}
