//! What the demo prints: one header per step with what it did and how long it took, and
//! indented detail lines. Standard output, so the logs (standard error) stay apart.

use std::time::{Duration, Instant};

use serde_json::Value;

/// A step being timed; `done` prints its closing line.
pub struct Step {
    name: &'static str,
    started: Instant,
}

impl Step {
    pub fn start(number: usize, total: usize, name: &'static str, what: &str) -> Step {
        println!("\n[{number}/{total}] {name}: {what}");
        Step {
            name,
            started: Instant::now(),
        }
    }

    pub fn done(self, outcome: &str) -> Duration {
        let took = self.started.elapsed();
        println!("      => {} {outcome} ({})", self.name, ms(took));
        took
    }
}

pub fn line(text: &str) {
    println!("      {text}");
}

/// `12 ms` below a second, `1.23 s` above.
pub fn ms(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// The parts of IDM's recon summary an operator reads first: non-zero situations, statuses,
/// what was created/updated, and where the time went.
pub fn recon_summary(summary: &Value) {
    line(&format!(
        "reconciliation {}: {} in {} ms",
        summary["_id"].as_str().unwrap_or("?"),
        summary["state"].as_str().unwrap_or("?"),
        summary["duration"]
    ));
    line(&format!(
        "situations: {}",
        nonzero(&summary["situationSummary"])
    ));
    line(&format!(
        "statuses:   {}",
        nonzero(&summary["statusSummary"])
    ));
    let target = &summary["progress"]["target"];
    line(&format!(
        "managed users: {} created, {} updated, {} unchanged, {} deleted; links created: {}",
        target["created"],
        target["updated"],
        target["unchanged"],
        target["deleted"],
        summary["progress"]["links"]["created"]
    ));
    if let Some(durations) = summary["durationSummary"].as_object() {
        let parts: Vec<String> = durations
            .iter()
            .map(|(name, m)| format!("{name} {} ms (x{})", m["sum"], m["count"]))
            .collect();
        line(&format!("durations:  {}", parts.join(", ")));
    }
}

/// `A 3, B 1` for the non-zero counters of an object; `none` when all are zero.
fn nonzero(counters: &Value) -> String {
    let parts: Vec<String> = counters
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, n)| n.as_u64().is_some_and(|n| n > 0))
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}
