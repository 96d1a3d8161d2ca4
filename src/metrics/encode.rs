//! The Prometheus text exposition format, version 0.0.4: `# HELP` and `# TYPE` lines, then one
//! `name{label="value"} number` line per sample. Label values escape `\`, `"` and newlines;
//! help text escapes `\` and newlines.

use std::borrow::Cow;
use std::fmt::Write;

use super::histogram::HistogramSnapshot;

/// The `Content-Type` of the format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// Accumulates the text of one scrape.
#[derive(Debug, Default)]
pub struct TextEncoder {
    out: String,
}

impl TextEncoder {
    pub fn new() -> TextEncoder {
        TextEncoder::default()
    }

    /// `# HELP` and `# TYPE`: once per metric family, before its samples.
    pub fn header(&mut self, name: &str, help: &str, kind: Kind) {
        // Writing to a String cannot fail.
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
    }

    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        self.labels(labels, None);
        let _ = writeln!(self.out, " {}", format_value(value));
    }

    /// An integer sample (counters), written without a fraction.
    pub fn sample_u64(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.out.push_str(name);
        self.labels(labels, None);
        let _ = writeln!(self.out, " {value}");
    }

    /// `_bucket` lines (cumulative, `le` last among the labels, ending with `+Inf`), `_sum`, `_count`.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &HistogramSnapshot) {
        for (bound, count) in &h.cumulative {
            let _ = write!(self.out, "{name}_bucket");
            self.labels(labels, Some(&format_value(*bound)));
            let _ = writeln!(self.out, " {count}");
        }
        let _ = write!(self.out, "{name}_sum");
        self.labels(labels, None);
        let _ = writeln!(self.out, " {}", format_value(h.sum));
        let _ = write!(self.out, "{name}_count");
        self.labels(labels, None);
        let _ = writeln!(self.out, " {}", h.count);
    }

    fn labels(&mut self, labels: &[(&str, &str)], le: Option<&str>) {
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.out.push('{');
        let mut first = true;
        for (k, v) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
            if !first {
                self.out.push(',');
            }
            first = false;
            let _ = write!(self.out, "{k}=\"{}\"", escape_label_value(v));
        }
        self.out.push('}');
    }

    pub fn finish(self) -> String {
        self.out
    }
}

pub fn escape_label_value(v: &str) -> Cow<'_, str> {
    if !v.contains(['\\', '"', '\n']) {
        return Cow::Borrowed(v);
    }
    let mut out = String::with_capacity(v.len() + 4);
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

pub fn escape_help(v: &str) -> Cow<'_, str> {
    if !v.contains(['\\', '\n']) {
        return Cow::Borrowed(v);
    }
    Cow::Owned(v.replace('\\', "\\\\").replace('\n', "\\n"))
}

/// Go's `ParseFloat` spellings for the special values; shortest round-trip text otherwise.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v == f64::INFINITY {
        "+Inf".to_owned()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::histogram::Histogram;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label_value("plain"), "plain");
        assert_eq!(escape_label_value("a\\b \"q\"\nz"), "a\\\\b \\\"q\\\"\\nz");
        let mut e = TextEncoder::new();
        e.sample_u64("x_total", &[("op", "say \"hi\"\n"), ("k", "c:\\")], 3);
        assert_eq!(
            e.finish(),
            "x_total{op=\"say \\\"hi\\\"\\n\",k=\"c:\\\\\"} 3\n"
        );
    }

    #[test]
    fn help_escapes_backslashes_and_newlines_only() {
        let mut e = TextEncoder::new();
        e.header("m", "a \"quoted\" \\ help\nline", Kind::Gauge);
        assert_eq!(
            e.finish(),
            "# HELP m a \"quoted\" \\\\ help\\nline\n# TYPE m gauge\n"
        );
    }

    #[test]
    fn special_values_use_prometheus_spellings() {
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(0.005), "0.005");
        assert_eq!(format_value(60.0), "60");
    }

    #[test]
    fn histograms_have_cumulative_buckets_inf_sum_and_count() {
        static BOUNDS: &[f64] = &[0.01, 0.1];
        let h = Histogram::new(BOUNDS);
        // Binary fractions, so that the sum is exact.
        h.observe(0.0078125);
        h.observe(0.0625);
        h.observe(0.0625);
        h.observe(2.0);
        let mut e = TextEncoder::new();
        e.histogram("lat_seconds", &[("m", "x")], &h.snapshot());
        let text = e.finish();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "lat_seconds_bucket{m=\"x\",le=\"0.01\"} 1",
                "lat_seconds_bucket{m=\"x\",le=\"0.1\"} 3",
                "lat_seconds_bucket{m=\"x\",le=\"+Inf\"} 4",
                "lat_seconds_sum{m=\"x\"} 2.1328125",
                "lat_seconds_count{m=\"x\"} 4",
            ]
        );
    }

    #[test]
    fn unlabelled_samples_have_no_braces() {
        let mut e = TextEncoder::new();
        e.sample("up", &[], 1.0);
        assert_eq!(e.finish(), "up 1\n");
    }
}
