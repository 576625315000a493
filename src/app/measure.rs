//! What the application records, put in the terms of `metrics`. Metrics is a leaf: it
//! knows label values and counts, not routes, listeners, providers or the chat core's
//! tally, so the translation lives here, in the one layer that knows both sides.
//!
//! The label values are the old service's where it had them (`spec/integrations.md`
//! §Metrics): its dashboards and alerts select on them. `docs/METRICS.md` lists them.

use crate::chat::engine::Tally;
use crate::config::ProviderConfig;
use crate::http::router::Route;
use crate::metrics::{ChatCounts, Llm, Metrics, NotifyChannel, RequestTimer};
use crate::net::conn::ListenerKind;
use crate::net::http::Method;
use crate::notify::Channel;

/// The routes of the internal port (`METRICS_PORT`), which serves them at the root, not
/// under the prefix: each is labelled by its own path, so that a kubelet's probes and a
/// scraper's requests there are told apart from the same routes on the public port.
const INTERNAL: [(Route, &str); 3] = [
    (Route::Healthz, "/healthz"),
    (Route::Readyz, "/readyz"),
    (Route::Metrics, "/metrics"),
];

/// The registry: a series for every provider type (`provider_types`, one per
/// configured provider, so a type may come more than once), and an HTTP request cell
/// for every endpoint × method.
pub fn metrics_registry(prefix: &str, provider_types: &[&str]) -> Metrics {
    Metrics::new(provider_types)
        .with_requests(endpoint_labels(prefix), Method::ALL.map(Method::as_str))
}

/// Starts timing a request under its `endpoint` and `method` labels.
pub fn request_timer(listener: ListenerKind, route: Route, method: Method) -> RequestTimer {
    // `Method::ALL` is in declaration order, so a method's position is its discriminant.
    RequestTimer::start(endpoint(listener, route), method as usize)
}

/// The series a reply of this provider counts in: its type's, like the old service,
/// whose providers were one per type. Providers of one type add up in it.
pub fn llm_series<'m>(metrics: &'m Metrics, provider: &ProviderConfig) -> Option<&'m Llm> {
    metrics.llm(provider.kind.as_str())
}

/// Every `endpoint` label value, at the position [`endpoint`] gives: the public routes
/// in [`Route::ALL`] order (`route as usize`), then the internal port's. All distinct:
/// public labels start with the prefix and a further segment, internal ones are one
/// segment, and the empty one is there once.
fn endpoint_labels(prefix: &str) -> Vec<String> {
    let public = Route::ALL.map(|route| match template(route) {
        Some(template) => format!("{prefix}{template}"),
        None => String::new(),
    });
    public
        .into_iter()
        .chain(INTERNAL.map(|(_, path)| path.to_owned()))
        .collect()
}

/// The position of a request's label in [`endpoint_labels`]. A path that is no route
/// has the empty label on either port.
fn endpoint(listener: ListenerKind, route: Route) -> usize {
    let internal = match listener {
        ListenerKind::Internal => INTERNAL.iter().position(|&(r, _)| r == route),
        ListenerKind::Public => None,
    };
    internal.map_or(route as usize, |i| Route::ALL.len() + i)
}

/// A public route's template after the prefix, with the old router's parameter names;
/// routes the old service did not have name theirs in the same style. `None` for a
/// path that is no route: one empty label however many paths are tried, so the number
/// of series has a bound.
fn template(route: Route) -> Option<&'static str> {
    Some(match route {
        Route::Healthz => "/healthz",
        Route::Readyz => "/readyz",
        Route::Metrics => "/metrics/prometheus",
        Route::Ws => "/ws",
        Route::Echo => "/echo",
        Route::Sessions => "/sessions",
        Route::Session => "/sessions/:sessionID",
        Route::SessionEnd => "/sessions/:sessionID/end",
        Route::SessionShare => "/sessions/:sessionID/share",
        Route::Shared => "/shared/:token",
        Route::Models => "/models",
        Route::AdminTakeover => "/admin/takeover/:sessionID",
        Route::AdminSessions => "/admin/sessions",
        Route::AdminSession => "/admin/sessions/:sessionID",
        Route::AdminUserSessions => "/admin/users/:userID/sessions",
        Route::AdminMetrics => "/admin/metrics",
        Route::Upload => "/upload",
        Route::File => "/files/:fileID",
        // One label for every page and asset: a bounded set either way, and the
        // dashboards care about the API.
        Route::Web => "/web",
        Route::NotFound => return None,
    })
}

pub fn chat_counts(tally: Tally) -> ChatCounts {
    // Taken apart field by field: a count the chat core adds must not be dropped here
    // without the compiler saying so.
    let Tally {
        error_frames,
        rate_limited,
        sessions_created,
        sessions_ended,
        takeovers,
    } = tally;
    ChatCounts {
        error_frames,
        rate_limited,
        sessions_created,
        sessions_ended,
        admin_takeovers: takeovers,
    }
}

/// The `channel` label of a notification that failed.
pub fn notify_channel(channel: Channel) -> NotifyChannel {
    match channel {
        Channel::Email => NotifyChannel::Email,
        Channel::Sms => NotifyChannel::Sms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::State;

    fn value_of<'s>(scrape: &'s str, series: &str) -> &'s str {
        scrape
            .lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("{series} missing from:\n{scrape}"))
    }

    const PUBLIC: ListenerKind = ListenerKind::Public;
    const INTERNAL_PORT: ListenerKind = ListenerKind::Internal;

    #[test]
    fn http_durations_show_the_cells_in_use_by_route_template() {
        let metrics = metrics_registry("/chatbox", &[]);
        let timer = request_timer(PUBLIC, Route::Session, Method::Get);
        metrics.answered(timer);
        metrics.answered(timer);
        let scrape = metrics.render(&State::default());
        assert_eq!(
            value_of(
                &scrape,
                r#"chatbox_http_request_duration_seconds_count{endpoint="/chatbox/sessions/:sessionID",method="GET"}"#
            ),
            "2"
        );
        let cells = scrape
            .lines()
            .filter(|l| l.starts_with("chatbox_http_request_duration_seconds_count"))
            .count();
        assert_eq!(cells, 1, "unused route × method cells are not shown");
    }

    #[test]
    fn every_route_and_method_has_a_cell() {
        let metrics = metrics_registry("/chatbox", &[]);
        for route in Route::ALL {
            for method in Method::ALL {
                metrics.answered(request_timer(PUBLIC, route, method));
            }
        }
        let scrape = metrics.render(&State::default());
        let cells = scrape
            .lines()
            .filter(|l| l.starts_with("chatbox_http_request_duration_seconds_count"))
            .count();
        assert_eq!(cells, Route::ALL.len() * Method::ALL.len());
    }

    /// The label a request on `listener` at `route` is recorded under.
    fn label(prefix: &str, listener: ListenerKind, route: Route) -> String {
        let metrics = metrics_registry(prefix, &[]);
        metrics.answered(request_timer(listener, route, Method::Get));
        let scrape = metrics.render(&State::default());
        let series = "chatbox_http_request_duration_seconds_count{endpoint=\"";
        let line = scrape
            .lines()
            .find_map(|l| l.strip_prefix(series))
            .unwrap_or_else(|| panic!("{route:?} recorded:\n{scrape}"));
        line.split_once('"').expect("a quoted label").0.to_owned()
    }

    #[test]
    fn endpoints_are_the_old_routers_templates_with_the_prefix() {
        let cases = [
            (Route::Healthz, "/chatbox/healthz"),
            (Route::Readyz, "/chatbox/readyz"),
            (Route::Metrics, "/chatbox/metrics/prometheus"),
            (Route::Ws, "/chatbox/ws"),
            (Route::Echo, "/chatbox/echo"),
            (Route::Sessions, "/chatbox/sessions"),
            (Route::Session, "/chatbox/sessions/:sessionID"),
            (Route::SessionEnd, "/chatbox/sessions/:sessionID/end"),
            (Route::SessionShare, "/chatbox/sessions/:sessionID/share"),
            (Route::Shared, "/chatbox/shared/:token"),
            (Route::Models, "/chatbox/models"),
            (Route::AdminTakeover, "/chatbox/admin/takeover/:sessionID"),
            (Route::AdminSessions, "/chatbox/admin/sessions"),
            (Route::AdminSession, "/chatbox/admin/sessions/:sessionID"),
            (
                Route::AdminUserSessions,
                "/chatbox/admin/users/:userID/sessions",
            ),
            (Route::AdminMetrics, "/chatbox/admin/metrics"),
            (Route::Upload, "/chatbox/upload"),
            (Route::File, "/chatbox/files/:fileID"),
            (Route::Web, "/chatbox/web"),
            (Route::NotFound, ""),
        ];
        assert_eq!(cases.len(), Route::ALL.len(), "every route has its case");
        for (route, want) in cases {
            assert_eq!(label("/chatbox", PUBLIC, route), want, "{route:?}");
        }
        assert_eq!(
            label("/api/chat-v2", PUBLIC, Route::Session),
            "/api/chat-v2/sessions/:sessionID",
            "the configured prefix"
        );
    }

    #[test]
    fn the_internal_port_labels_its_routes_by_their_own_paths() {
        for (route, want) in [
            (Route::Healthz, "/healthz"),
            (Route::Readyz, "/readyz"),
            (Route::Metrics, "/metrics"),
            (Route::NotFound, ""),
        ] {
            assert_eq!(label("/chatbox", INTERNAL_PORT, route), want, "{route:?}");
        }
    }

    #[test]
    fn endpoint_labels_are_distinct_whatever_the_prefix() {
        for prefix in ["/chatbox", "/metrics", "/healthz", "/a/b"] {
            let mut labels = endpoint_labels(prefix);
            let all = labels.len();
            labels.sort();
            labels.dedup();
            assert_eq!(labels.len(), all, "{prefix}: {labels:?}");
        }
    }

    #[test]
    fn the_chat_tally_keeps_each_count_in_its_place() {
        let tally = Tally {
            error_frames: 1,
            rate_limited: 2,
            sessions_created: 3,
            sessions_ended: 4,
            takeovers: 5,
        };
        assert_eq!(
            chat_counts(tally),
            ChatCounts {
                error_frames: 1,
                rate_limited: 2,
                sessions_created: 3,
                sessions_ended: 4,
                admin_takeovers: 5,
            }
        );
    }
}
