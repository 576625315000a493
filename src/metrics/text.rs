//! The Prometheus text exposition format, version 0.0.4: `# HELP` and `# TYPE` once per
//! family, then one line per sample; histograms as cumulative `_bucket{le="…"}` lines
//! ending in `+Inf`, then `_sum` and `_count`.

use std::fmt::Write;

use super::instruments::HistogramSnapshot;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// `(label name, label value)`; names are ours and never need escaping.
pub type Labels<'a> = &'a [(&'a str, &'a str)];

/// A sample value: counts stay integers so that they print without a float's noise.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    Int(u64),
    Signed(i64),
    Float(f64),
}

/// Builds one scrape's text. Writing to a `String` cannot fail, so the `fmt::Result`s
/// below are ignored on purpose.
#[derive(Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    pub fn into_string(self) -> String {
        self.out
    }

    /// Starts a family; its samples must follow before the next family starts.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let _ = write!(self.out, "# HELP {name} ");
        escape_into(&mut self.out, help, false);
        let _ = writeln!(self.out, "\n# TYPE {name} {}", kind.as_str());
    }

    pub fn sample(&mut self, name: &str, labels: Labels, value: Value) {
        self.out.push_str(name);
        self.labels(labels, None);
        self.out.push(' ');
        self.value(value);
        self.out.push('\n');
    }

    pub fn histogram(&mut self, name: &str, labels: Labels, snapshot: &HistogramSnapshot) {
        let bucket = format!("{name}_bucket");
        for &(bound, count) in &snapshot.buckets {
            self.out.push_str(&bucket);
            self.labels(labels, Some(Value::Float(bound)));
            let _ = writeln!(self.out, " {count}");
        }
        self.out.push_str(&bucket);
        self.labels(labels, Some(Value::Float(f64::INFINITY)));
        let _ = writeln!(self.out, " {}", snapshot.count);
        self.sample(
            &format!("{name}_sum"),
            labels,
            Value::Float(snapshot.sum_seconds),
        );
        self.sample(&format!("{name}_count"), labels, Value::Int(snapshot.count));
    }

    fn labels(&mut self, labels: Labels, le: Option<Value>) {
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.out.push('{');
        for (i, (name, value)) in labels.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            let _ = write!(self.out, "{name}=\"");
            escape_into(&mut self.out, value, true);
            self.out.push('"');
        }
        if let Some(le) = le {
            if !labels.is_empty() {
                self.out.push(',');
            }
            self.out.push_str("le=\"");
            self.value(le);
            self.out.push('"');
        }
        self.out.push('}');
    }

    fn value(&mut self, value: Value) {
        let _ = match value {
            Value::Int(n) => write!(self.out, "{n}"),
            Value::Signed(n) => write!(self.out, "{n}"),
            Value::Float(x) if x.is_nan() => write!(self.out, "NaN"),
            Value::Float(x) if x == f64::INFINITY => write!(self.out, "+Inf"),
            Value::Float(x) if x == f64::NEG_INFINITY => write!(self.out, "-Inf"),
            // Rust prints the shortest form that reads back exactly, never with an
            // exponent ("0.005", "1", "1700000000.25"): valid for the Go float parser.
            Value::Float(x) => write!(self.out, "{x}"),
        };
    }
}

/// Help text escapes `\` and newlines; label values also escape `"`.
fn escape_into(out: &mut String, text: &str, quote: bool) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_samples_and_escaping() {
        let mut text = Exposition::default();
        text.family(
            "demo_total",
            Kind::Counter,
            "Lines with \\ and\nbreaks \"kept\"",
        );
        text.sample("demo_total", &[], Value::Int(3));
        text.sample(
            "demo_total",
            &[("who", "a \"quoted\" \\ back\nslash"), ("lane", "io")],
            Value::Int(0),
        );
        text.family("demo_level", Kind::Gauge, "Level.");
        text.sample("demo_level", &[], Value::Signed(-2));
        text.sample("demo_level", &[], Value::Float(0.25));
        assert_eq!(
            text.into_string(),
            "# HELP demo_total Lines with \\\\ and\\nbreaks \"kept\"\n\
             # TYPE demo_total counter\n\
             demo_total 3\n\
             demo_total{who=\"a \\\"quoted\\\" \\\\ back\\nslash\",lane=\"io\"} 0\n\
             # HELP demo_level Level.\n\
             # TYPE demo_level gauge\n\
             demo_level -2\n\
             demo_level 0.25\n"
        );
    }

    #[test]
    fn histograms_end_in_inf_sum_and_count() {
        let snapshot = HistogramSnapshot {
            buckets: vec![(0.005, 1), (1.0, 3), (60.0, 3)],
            count: 4,
            sum_seconds: 75.5,
        };
        let mut text = Exposition::default();
        text.family("demo_seconds", Kind::Histogram, "Time.");
        text.histogram("demo_seconds", &[("op", "get")], &snapshot);
        text.histogram("demo_seconds", &[], &snapshot);
        let lines: Vec<String> = text.into_string().lines().map(str::to_owned).collect();
        assert_eq!(
            lines[2..],
            [
                "demo_seconds_bucket{op=\"get\",le=\"0.005\"} 1",
                "demo_seconds_bucket{op=\"get\",le=\"1\"} 3",
                "demo_seconds_bucket{op=\"get\",le=\"60\"} 3",
                "demo_seconds_bucket{op=\"get\",le=\"+Inf\"} 4",
                "demo_seconds_sum{op=\"get\"} 75.5",
                "demo_seconds_count{op=\"get\"} 4",
                "demo_seconds_bucket{le=\"0.005\"} 1",
                "demo_seconds_bucket{le=\"1\"} 3",
                "demo_seconds_bucket{le=\"60\"} 3",
                "demo_seconds_bucket{le=\"+Inf\"} 4",
                "demo_seconds_sum 75.5",
                "demo_seconds_count 4",
            ]
        );
    }
}
