//! `chatbox_http_request_duration_seconds{endpoint,method}`. The grid of label values is
//! the application's (its endpoint labels and methods, handed in once at start-up);
//! metrics keeps one histogram per cell and shows a cell once it is used.

use std::time::Instant;

use super::instruments::Histogram;
use super::text::{Exposition, Kind};

const NAME: &str = "chatbox_http_request_duration_seconds";

/// Answers from the loop take microseconds; those from a lane include its queue.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// An HTTP request being served: the cell its duration is recorded in, and since when.
#[derive(Clone, Copy, Debug)]
pub struct RequestTimer {
    endpoint: usize,
    method: usize,
    started: Instant,
}

impl RequestTimer {
    /// `endpoint` and `method` are positions in the lists of label values the grid was
    /// made with ([`super::Metrics::with_requests`]). Positions rather than the values
    /// themselves: endpoint labels carry the configured path prefix, so they are built
    /// at start-up, and a position is what a timer can carry without a borrow or an
    /// allocation per request.
    pub fn start(endpoint: usize, method: usize) -> RequestTimer {
        RequestTimer {
            endpoint,
            method,
            started: Instant::now(),
        }
    }
}

/// The endpoint × method grid; empty (records nothing) until the application gives it
/// its label values.
#[derive(Debug, Default)]
pub struct RequestTimings {
    endpoints: Box<[String]>,
    methods: Box<[&'static str]>,
    /// Indexed by `endpoint * methods.len() + method`, the positions in the lists above.
    cells: Box<[Histogram]>,
}

impl RequestTimings {
    /// Allocates every cell now, so that recording is an index and an atomic add.
    pub fn new(
        endpoints: impl IntoIterator<Item = String>,
        methods: impl IntoIterator<Item = &'static str>,
    ) -> RequestTimings {
        let endpoints: Box<[String]> = endpoints.into_iter().collect();
        let methods: Box<[&str]> = methods.into_iter().collect();
        let cells = (0..endpoints.len() * methods.len())
            .map(|_| Histogram::new(&BUCKETS))
            .collect();
        RequestTimings {
            endpoints,
            methods,
            cells,
        }
    }

    /// The request was answered. A position outside the grid is not recorded.
    pub fn answered(&self, timer: RequestTimer) {
        if timer.endpoint < self.endpoints.len() && timer.method < self.methods.len() {
            let cell = timer.endpoint * self.methods.len() + timer.method;
            self.cells[cell].observe(timer.started.elapsed());
        }
    }

    pub(super) fn render(&self, out: &mut Exposition) {
        out.family(
            NAME,
            Kind::Histogram,
            "Time from a complete HTTP request to its response, by route template.",
        );
        let grid = self.endpoints.iter().flat_map(|endpoint| {
            self.methods
                .iter()
                .map(move |&method| [("endpoint", endpoint.as_str()), ("method", method)])
        });
        for (labels, timing) in grid.zip(self.cells.iter()) {
            let snapshot = timing.snapshot();
            if snapshot.count > 0 {
                out.histogram(NAME, &labels, &snapshot);
            }
        }
    }
}
