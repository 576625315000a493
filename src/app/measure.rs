//! What the application records, put in the terms of `metrics`. Metrics is a leaf: it
//! knows label values and counts, not routes, methods or the chat core's tally, so the
//! translation lives here, in the one layer that knows both sides.

use crate::chat::engine::Tally;
use crate::http::router::Route;
use crate::metrics::{ChatCounts, Metrics, RequestTimer};
use crate::net::http::Method;

/// The registry, with an HTTP request cell for every route template × method.
pub fn metrics_registry(providers: &[&str]) -> Metrics {
    Metrics::new(providers).with_requests(
        Route::ALL.map(Route::template),
        Method::ALL.map(Method::as_str),
    )
}

/// Starts timing a request under its route template, the `endpoint` label.
pub fn request_timer(route: Route, method: Method) -> RequestTimer {
    RequestTimer::start(route.template(), method.as_str())
}

pub fn chat_counts(tally: Tally) -> ChatCounts {
    // Taken apart field by field: a count the chat core adds must not be dropped here
    // without the compiler saying so.
    let Tally {
        error_frames,
        rate_limited,
        sessions_created,
        sessions_ended,
    } = tally;
    ChatCounts {
        error_frames,
        rate_limited,
        sessions_created,
        sessions_ended,
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

    #[test]
    fn http_durations_show_the_cells_in_use_by_route_template() {
        let metrics = metrics_registry(&[]);
        let timer = request_timer(Route::Session, Method::Get);
        metrics.answered(timer);
        metrics.answered(timer);
        let scrape = metrics.render(&State::default());
        assert_eq!(
            value_of(
                &scrape,
                r#"chatbox_http_request_duration_seconds_count{endpoint="/sessions/:id",method="GET"}"#
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
        let metrics = metrics_registry(&[]);
        for route in Route::ALL {
            for method in Method::ALL {
                metrics.answered(request_timer(route, method));
            }
        }
        let scrape = metrics.render(&State::default());
        let cells = scrape
            .lines()
            .filter(|l| l.starts_with("chatbox_http_request_duration_seconds_count"))
            .count();
        assert_eq!(cells, Route::ALL.len() * Method::ALL.len());
    }

    #[test]
    fn the_chat_tally_keeps_each_count_in_its_place() {
        let tally = Tally {
            error_frames: 1,
            rate_limited: 2,
            sessions_created: 3,
            sessions_ended: 4,
        };
        assert_eq!(
            chat_counts(tally),
            ChatCounts {
                error_frames: 1,
                rate_limited: 2,
                sessions_created: 3,
                sessions_ended: 4,
            }
        );
    }
}
