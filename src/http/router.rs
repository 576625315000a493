//! Path → route. The public listener serves everything under the path prefix; the
//! internal listener (`METRICS_PORT`) serves probes and metrics at the root, for
//! scrapers and kubelets on an internal port.

use crate::http::web;
use crate::net::conn::ListenerKind;
use crate::net::http::Method;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Healthz,
    Readyz,
    /// The Prometheus scrape: `P/metrics/prometheus`, and `/metrics` on the internal port.
    Metrics,
    /// The chat WebSocket.
    Ws,
    /// The unauthenticated echo WebSocket (only when `CHATBOX_ECHO=true`).
    Echo,
    Sessions,
    Session,
    SessionEnd,
    SessionShare,
    Shared,
    Models,
    /// `P/admin/takeover/:id`: POST takes a session over, DELETE hands it back.
    AdminTakeover,
    /// `P/admin/sessions`: every user's sessions, filtered, sorted, paged.
    AdminSessions,
    /// `P/admin/sessions/:id`: one session of any owner, with a page of its messages.
    AdminSession,
    /// `P/admin/users/:user_id/sessions`: one user's sessions, as `AdminSessions`.
    AdminUserSessions,
    /// `P/admin/metrics`: the sessions of a time range, summed.
    AdminMetrics,
    /// `P/upload`: a multipart upload, its body streamed to the io lane.
    Upload,
    /// `P/files/:file_id`: GET a stored file (signed link or owner's token), DELETE it.
    File,
    /// The built-in pages (`P/`, `P/chat`, `P/admin`, …) and their assets (`http::web`).
    Web,
    NotFound,
}

/// Bodies of the POST routes are ignored, but clients send `{}`: accept a little.
const SMALL_BODY: usize = 1024;

impl Route {
    /// Every route, in declaration order (`route as usize` indexes it).
    pub const ALL: [Route; 20] = [
        Route::Healthz,
        Route::Readyz,
        Route::Metrics,
        Route::Ws,
        Route::Echo,
        Route::Sessions,
        Route::Session,
        Route::SessionEnd,
        Route::SessionShare,
        Route::Shared,
        Route::Models,
        Route::AdminTakeover,
        Route::AdminSessions,
        Route::AdminSession,
        Route::AdminUserSessions,
        Route::AdminMetrics,
        Route::Upload,
        Route::File,
        Route::Web,
        Route::NotFound,
    ];

    pub fn resolve(listener: ListenerKind, prefix: &str, path: &str, echo: bool) -> Route {
        match listener {
            ListenerKind::Internal => match path {
                "/healthz" => Route::Healthz,
                "/readyz" => Route::Readyz,
                "/metrics" => Route::Metrics,
                _ => Route::NotFound,
            },
            ListenerKind::Public => match path.strip_prefix(prefix) {
                Some("/healthz") => Route::Healthz,
                Some("/readyz") => Route::Readyz,
                Some("/metrics/prometheus") => Route::Metrics,
                Some("/ws") => Route::Ws,
                Some("/echo") if echo => Route::Echo,
                Some("/models") => Route::Models,
                Some("/sessions") => Route::Sessions,
                Some("/admin/sessions") => Route::AdminSessions,
                Some("/admin/metrics") => Route::AdminMetrics,
                Some("/upload") => Route::Upload,
                Some(rest) if web::is_web_path(rest) => Route::Web,
                Some(rest) => Route::with_param(rest),
                None => Route::NotFound,
            },
        }
    }

    /// `/sessions/:id[/end|/share]`, `/shared/:token`, `/admin/sessions/:id` and
    /// `/admin/users/:user_id/sessions`.
    fn with_param(rest: &str) -> Route {
        let mut parts = rest.strip_prefix('/').unwrap_or_default().split('/');
        let first = (parts.next(), parts.next(), parts.next(), parts.next());
        let more = parts.next().is_some();
        match first {
            (Some("sessions"), Some(id), None, None) if !id.is_empty() => Route::Session,
            (Some("sessions"), Some(id), Some("end"), None) if !id.is_empty() => Route::SessionEnd,
            (Some("sessions"), Some(id), Some("share"), None) if !id.is_empty() => {
                Route::SessionShare
            }
            (Some("shared"), Some(token), None, None) if !token.is_empty() => Route::Shared,
            (Some("files"), Some(id), None, None) if !id.is_empty() => Route::File,
            (Some("admin"), Some("takeover"), Some(id), None) if !id.is_empty() => {
                Route::AdminTakeover
            }
            (Some("admin"), Some("sessions"), Some(id), None) if !id.is_empty() => {
                Route::AdminSession
            }
            (Some("admin"), Some("users"), Some(user), Some("sessions"))
                if !user.is_empty() && !more =>
            {
                Route::AdminUserSessions
            }
            _ => Route::NotFound,
        }
    }

    /// The `:id` / `:token` segment of a route that has one.
    pub fn param<'p>(self, prefix: &str, path: &'p str) -> Option<&'p str> {
        match self {
            Route::Session
            | Route::SessionEnd
            | Route::SessionShare
            | Route::Shared
            | Route::File => path
                .strip_prefix(prefix)?
                .strip_prefix('/')?
                .split('/')
                .nth(1),
            Route::AdminTakeover => path.strip_prefix(prefix)?.split('/').nth(3),
            Route::AdminSession | Route::AdminUserSessions => {
                path.strip_prefix(prefix)?.split('/').nth(3)
            }
            _ => None,
        }
    }

    pub fn is_websocket(self) -> bool {
        matches!(self, Route::Ws | Route::Echo)
    }

    /// The `Allow` header value, and whether `method` is in it.
    pub fn allows(self, method: Method) -> Result<(), &'static str> {
        match self {
            Route::Healthz | Route::Readyz | Route::Metrics
                if matches!(method, Method::Get | Method::Head) =>
            {
                Ok(())
            }
            Route::Healthz | Route::Readyz | Route::Metrics => Err("GET, HEAD"),
            Route::Web if matches!(method, Method::Get | Method::Head) => Ok(()),
            Route::Web => Err("GET, HEAD"),
            Route::Ws | Route::Echo | Route::Sessions | Route::Session | Route::Shared
                if method == Method::Get =>
            {
                Ok(())
            }
            Route::AdminSessions
            | Route::AdminSession
            | Route::AdminUserSessions
            | Route::AdminMetrics
                if method == Method::Get =>
            {
                Ok(())
            }
            Route::AdminSessions
            | Route::AdminSession
            | Route::AdminUserSessions
            | Route::AdminMetrics => Err("GET"),
            Route::Models if matches!(method, Method::Get | Method::Head) => Ok(()),
            Route::Models => Err("GET, HEAD"),
            Route::Ws | Route::Echo | Route::Sessions | Route::Session | Route::Shared => {
                Err("GET")
            }
            Route::SessionEnd if method == Method::Post => Ok(()),
            Route::SessionEnd => Err("POST"),
            Route::SessionShare if matches!(method, Method::Post | Method::Delete) => Ok(()),
            Route::SessionShare => Err("POST, DELETE"),
            Route::AdminTakeover if matches!(method, Method::Post | Method::Delete) => Ok(()),
            Route::AdminTakeover => Err("POST, DELETE"),
            Route::Upload if method == Method::Post => Ok(()),
            Route::Upload => Err("POST"),
            Route::File if matches!(method, Method::Get | Method::Head | Method::Delete) => Ok(()),
            Route::File => Err("GET, HEAD, DELETE"),
            Route::NotFound => Ok(()),
        }
    }

    pub fn body_limit(self) -> usize {
        match self {
            Route::SessionEnd | Route::SessionShare | Route::AdminTakeover => SMALL_BODY,
            _ => 0,
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
    fn metrics_live_at_different_paths_on_each_listener() {
        let resolve = |listener, path| Route::resolve(listener, "/chatbox", path, false);
        let public = ListenerKind::Public;
        assert_eq!(
            resolve(public, "/chatbox/metrics/prometheus"),
            Route::Metrics
        );
        assert_eq!(resolve(public, "/chatbox/metrics"), Route::NotFound);
        assert_eq!(resolve(ListenerKind::Internal, "/metrics"), Route::Metrics);
        assert_eq!(
            resolve(ListenerKind::Internal, "/chatbox/metrics/prometheus"),
            Route::NotFound
        );
        assert_eq!(Route::Metrics.allows(Method::Post), Err("GET, HEAD"));
    }

    #[test]
    fn all_lists_every_route_at_its_index() {
        for (i, route) in Route::ALL.iter().enumerate() {
            assert_eq!(*route as usize, i, "{route:?}");
        }
    }

    #[test]
    fn session_routes_and_their_parameter() {
        let resolve = |path| Route::resolve(ListenerKind::Public, "/chatbox", path, false);
        let cases = [
            ("/chatbox/sessions", Route::Sessions, None),
            ("/chatbox/sessions/abc", Route::Session, Some("abc")),
            ("/chatbox/sessions/abc/end", Route::SessionEnd, Some("abc")),
            (
                "/chatbox/sessions/abc/share",
                Route::SessionShare,
                Some("abc"),
            ),
            ("/chatbox/shared/tok", Route::Shared, Some("tok")),
            ("/chatbox/models", Route::Models, None),
            ("/chatbox/sessions/", Route::NotFound, None),
            ("/chatbox/sessions/abc/other", Route::NotFound, None),
            ("/chatbox/sessions/abc/end/x", Route::NotFound, None),
            ("/chatbox/shared/", Route::NotFound, None),
            ("/chatbox/upload", Route::Upload, None),
            ("/chatbox/files/f1", Route::File, Some("f1")),
            ("/chatbox/files/", Route::NotFound, None),
            ("/chatbox/files/f1/x", Route::NotFound, None),
            (
                "/chatbox/admin/takeover/abc",
                Route::AdminTakeover,
                Some("abc"),
            ),
            ("/chatbox/admin/takeover/", Route::NotFound, None),
            ("/chatbox/admin/takeover/abc/x", Route::NotFound, None),
            ("/chatbox/admin/sessions", Route::AdminSessions, None),
            ("/chatbox/admin/metrics", Route::AdminMetrics, None),
            (
                "/chatbox/admin/sessions/abc",
                Route::AdminSession,
                Some("abc"),
            ),
            ("/chatbox/admin/sessions/", Route::NotFound, None),
            ("/chatbox/admin/sessions/abc/x", Route::NotFound, None),
            (
                "/chatbox/admin/users/u1/sessions",
                Route::AdminUserSessions,
                Some("u1"),
            ),
            ("/chatbox/admin/users//sessions", Route::NotFound, None),
            ("/chatbox/admin/users/u1", Route::NotFound, None),
            ("/chatbox/admin/users/u1/sessions/x", Route::NotFound, None),
            ("/chatbox/admin", Route::Web, None),
            ("/chatbox/admin.html", Route::Web, None),
            ("/chatbox/", Route::Web, None),
            ("/chatbox", Route::Web, None),
            ("/chatbox/chat", Route::Web, None),
            ("/chatbox/assets/chat.js", Route::Web, None),
            ("/chatbox/assets/", Route::NotFound, None),
            ("/chatbox/chat/x", Route::NotFound, None),
        ];
        for (path, route, param) in cases {
            assert_eq!(resolve(path), route, "{path}");
            assert_eq!(route.param("/chatbox", path), param, "{path}");
        }
    }

    #[test]
    fn echo_exists_only_when_enabled() {
        let resolve =
            |echo| Route::resolve(ListenerKind::Public, "/chatbox", "/chatbox/echo", echo);
        assert_eq!(resolve(false), Route::NotFound);
        assert_eq!(resolve(true), Route::Echo);
    }
}
