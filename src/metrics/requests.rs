//! `chatbox_http_request_duration_seconds{endpoint,method}`. The grid of label values is
//! the application's (its route templates and methods, handed in once at start-up);
//! metrics keeps one histogram per cell and shows a cell once it is used.

use std::time::Instant;

use super::instruments::Histogram;
use super::text::{Exposition, Kind};

const NAME: &str = "chatbox_http_request_duration_seconds";

/// Answers from the loop take microseconds; those from a lane include its queue.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// An HTTP request being served: the label values its duration is recorded under, and
/// since when.
#[derive(Clone, Copy, Debug)]
pub struct RequestTimer {
    endpoint: &'static str,
    method: &'static str,
    started: Instant,
}

impl RequestTimer {
    pub fn start(endpoint: &'static str, method: &'static str) -> RequestTimer {
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
    endpoints: Box<[&'static str]>,
    methods: Box<[&'static str]>,
    /// Indexed by `endpoint * methods.len() + method`, the positions in the lists above.
    cells: Box<[Histogram]>,
}

impl RequestTimings {
    /// Allocates every cell now, so that recording is an index and an atomic add.
    pub fn new(
        endpoints: impl IntoIterator<Item = &'static str>,
        methods: impl IntoIterator<Item = &'static str>,
    ) -> RequestTimings {
        let endpoints: Box<[&str]> = endpoints.into_iter().collect();
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

    /// The request was answered. A label value outside the grid is not recorded; the
    /// lookup is a few short comparisons on the loop, no allocation, no lock.
    pub fn answered(&self, timer: RequestTimer) {
        let endpoint = self.endpoints.iter().position(|&e| e == timer.endpoint);
        let method = self.methods.iter().position(|&m| m == timer.method);
        if let (Some(endpoint), Some(method)) = (endpoint, method) {
            let cell = endpoint * self.methods.len() + method;
            self.cells[cell].observe(timer.started.elapsed());
        }
    }

    pub(super) fn render(&self, out: &mut Exposition) {
        out.family(
            NAME,
            Kind::Histogram,
            "Time from a complete HTTP request to its response, by route template.",
        );
        let grid = self.endpoints.iter().flat_map(|&endpoint| {
            self.methods
                .iter()
                .map(move |&method| [("endpoint", endpoint), ("method", method)])
        });
        for (labels, timing) in grid.zip(self.cells.iter()) {
            let snapshot = timing.snapshot();
            if snapshot.count > 0 {
                out.histogram(NAME, &labels, &snapshot);
            }
        }
    }
}
