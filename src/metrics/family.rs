//! A metric family: one name, help text, fixed label names, and one series per set of label
//! values, created on first use. `N` is the number of labels (0 for a single series).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::counter::{Counter, Gauge};
use super::encode::{Kind, TextEncoder};
use super::histogram::Histogram;

/// A kind of series that can be encoded.
pub trait Series: Send + Sync + 'static {
    const KIND: Kind;
    fn encode(&self, name: &str, labels: &[(&str, &str)], out: &mut TextEncoder);
}

impl Series for Counter {
    const KIND: Kind = Kind::Counter;
    fn encode(&self, name: &str, labels: &[(&str, &str)], out: &mut TextEncoder) {
        out.sample_u64(name, labels, self.get());
    }
}

impl Series for Gauge {
    const KIND: Kind = Kind::Gauge;
    fn encode(&self, name: &str, labels: &[(&str, &str)], out: &mut TextEncoder) {
        out.sample(name, labels, self.get());
    }
}

impl Series for Histogram {
    const KIND: Kind = Kind::Histogram;
    fn encode(&self, name: &str, labels: &[(&str, &str)], out: &mut TextEncoder) {
        out.histogram(name, labels, &self.snapshot());
    }
}

type Make<M> = Box<dyn Fn() -> M + Send + Sync>;

pub struct Family<M: Series, const N: usize> {
    name: &'static str,
    help: &'static str,
    labels: [&'static str; N],
    make: Make<M>,
    series: Mutex<BTreeMap<[String; N], Arc<M>>>,
}

impl<M: Series, const N: usize> Family<M, N> {
    pub fn new(
        name: &'static str,
        help: &'static str,
        labels: [&'static str; N],
        make: impl Fn() -> M + Send + Sync + 'static,
    ) -> Family<M, N> {
        Family {
            name,
            help,
            labels,
            make: Box::new(make),
            series: Mutex::new(BTreeMap::new()),
        }
    }

    /// The series for these label values, created at zero if new.
    pub fn with(&self, values: [&str; N]) -> Arc<M> {
        let key: [String; N] = values.map(str::to_owned);
        // A poisoned lock only means a panic elsewhere while inserting; the map is intact.
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        series
            .entry(key)
            .or_insert_with(|| Arc::new((self.make)()))
            .clone()
    }

    /// Removes every series (for gauges whose label sets come and go).
    pub fn clear(&self) {
        self.series
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

impl<M: Series + Default, const N: usize> Family<M, N> {
    pub fn with_default(
        name: &'static str,
        help: &'static str,
        labels: [&'static str; N],
    ) -> Family<M, N> {
        Family::new(name, help, labels, M::default)
    }
}

/// Anything the registry can write out.
pub trait Collect: Send + Sync {
    fn collect(&self, out: &mut TextEncoder);
}

impl<M: Series, const N: usize> Collect for Family<M, N> {
    fn collect(&self, out: &mut TextEncoder) {
        let series: Vec<([String; N], Arc<M>)> = self
            .series
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        out.header(self.name, self.help, M::KIND);
        for (values, m) in &series {
            let labels: Vec<(&str, &str)> = self
                .labels
                .iter()
                .copied()
                .zip(values.iter().map(String::as_str))
                .collect();
            m.encode(self.name, &labels, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_per_label_set_and_sorted() {
        let f: Family<Counter, 2> =
            Family::with_default("calls_total", "Calls.", ["op", "outcome"]);
        f.with(["query", "success"]).inc();
        f.with(["create", "success"]).inc_by(2);
        f.with(["query", "success"]).inc();
        let mut out = TextEncoder::new();
        f.collect(&mut out);
        assert_eq!(
            out.finish(),
            "# HELP calls_total Calls.\n# TYPE calls_total counter\n\
             calls_total{op=\"create\",outcome=\"success\"} 2\n\
             calls_total{op=\"query\",outcome=\"success\"} 2\n"
        );
    }
}
