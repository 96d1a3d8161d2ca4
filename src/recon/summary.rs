//! A run's counters and IDM's summary shape (`GET /openidm/recon/{id}`), key for key:
//! `_id, mapping, state, stage, stageDescription, progress, situationSummary, statusSummary,
//! durationSummary, parameters, started, ended, duration`. `progress.*.existing.total` is a
//! string (`"?"` while unknown), every other count a number; `situationSummary` always lists
//! all 13 situations. Two keys are idm-sync's own: `resultScript` (when the mapping has one)
//! and, last, `auditSummary` (entries written to the recon audit, and those `conf/audit.json`
//! left out).

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use crate::mapping::Situation;
use crate::repo::recon_runs::RunRow;

/// IDM's `ReconStage`: the stage name and its description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Initialized,
    QueryEntries,
    ReconcilingSource,
    ReconcilingTarget,
    ApplyingDeletes,
    CompletedSuccess,
    CompletedCanceled,
    CompletedFailed,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Initialized => "ACTIVE_INITIALIZED",
            Stage::QueryEntries => "ACTIVE_QUERY_ENTRIES",
            Stage::ReconcilingSource => "ACTIVE_RECONCILING_SOURCE",
            Stage::ReconcilingTarget => "ACTIVE_RECONCILING_TARGET",
            // IDM has no stage for held-back deletes; link clean-up is the closest in spirit.
            Stage::ApplyingDeletes => "ACTIVE_LINK_CLEANUP",
            Stage::CompletedSuccess => "COMPLETED_SUCCESS",
            Stage::CompletedCanceled => "COMPLETED_CANCELED",
            Stage::CompletedFailed => "COMPLETED_FAILED",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Stage::Initialized => "initialized",
            Stage::QueryEntries => "querying sets of entries to reconcile",
            Stage::ReconcilingSource => "reconciling source entries",
            Stage::ReconcilingTarget => "reconciling target entries",
            Stage::ApplyingDeletes => "applying the deletes decided by the reconciliation",
            Stage::CompletedSuccess => "reconciliation completed.",
            Stage::CompletedCanceled => "reconciliation aborted.",
            Stage::CompletedFailed => "reconciliation failed",
        }
    }

    pub fn pair(self) -> (&'static str, &'static str) {
        (self.name(), self.description())
    }
}

/// Timings of one kind, in milliseconds (IDM's `durationSummary` entries).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Metric {
    count: u64,
    sum: f64,
    sum_sq: f64,
    min: f64,
    max: f64,
}

impl Metric {
    pub fn record(&mut self, d: Duration) {
        let ms = d.as_secs_f64() * 1000.0;
        if self.count == 0 || ms < self.min {
            self.min = ms;
        }
        if ms > self.max {
            self.max = ms;
        }
        self.count += 1;
        self.sum += ms;
        self.sum_sq += ms * ms;
    }

    fn to_json(self) -> Value {
        let n = self.count.max(1) as f64;
        let mean = self.sum / n;
        let var = (self.sum_sq / n - mean * mean).max(0.0);
        json!({
            "min": self.min.round() as u64,
            "max": self.max.round() as u64,
            "mean": mean.round() as u64,
            "count": self.count,
            "sum": self.sum.round() as u64,
            "stdDev": var.sqrt().round() as u64,
        })
    }
}

/// The timed parts of a run, as IDM names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timed {
    SourceQuery,
    SourcePhase,
    TargetQuery,
    TargetPhase,
    LinkQuery,
    CorrelationQuery,
    Apply,
    AuditLog,
}

impl Timed {
    const ALL: [Timed; 8] = [
        Timed::SourceQuery,
        Timed::SourcePhase,
        Timed::TargetQuery,
        Timed::TargetPhase,
        Timed::LinkQuery,
        Timed::CorrelationQuery,
        Timed::Apply,
        Timed::AuditLog,
    ];

    fn name(self) -> &'static str {
        match self {
            Timed::SourceQuery => "sourceQuery",
            Timed::SourcePhase => "sourcePhase",
            Timed::TargetQuery => "targetQuery",
            Timed::TargetPhase => "targetPhase",
            Timed::LinkQuery => "linkQuery",
            Timed::CorrelationQuery => "correlationQuery",
            Timed::Apply => "applyPage",
            Timed::AuditLog => "auditLog",
        }
    }
}

/// A run's counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub source_processed: u64,
    pub source_total: Option<u64>,
    pub target_processed: u64,
    pub target_total: Option<u64>,
    pub created: u64,
    pub unchanged: u64,
    pub updated: u64,
    pub deleted: u64,
    pub links_processed: u64,
    pub links_total: Option<u64>,
    pub links_created: u64,
    pub situations: [u64; 13],
    pub success: u64,
    pub failure: u64,
    /// Entries written to the recon audit, and those `conf/audit.json` left out.
    pub audit_written: u64,
    pub audit_filtered: u64,
    durations: [Metric; 8],
    /// The mapping's `result` script: `{"value": …}` or `{"error": "…"}` (an idm-sync key).
    pub result_script: Option<Value>,
}

impl Stats {
    pub fn situation(&mut self, s: Situation) {
        let i = Situation::ALL.iter().position(|x| *x == s);
        if let Some(n) = i.and_then(|i| self.situations.get_mut(i)) {
            *n += 1;
        }
    }

    pub fn situation_count(&self, s: Situation) -> u64 {
        Situation::ALL
            .iter()
            .position(|x| *x == s)
            .and_then(|i| self.situations.get(i).copied())
            .unwrap_or(0)
    }

    pub fn time(&mut self, what: Timed, d: Duration) {
        let i = Timed::ALL.iter().position(|x| *x == what);
        if let Some(metric) = i.and_then(|i| self.durations.get_mut(i)) {
            metric.record(d);
        }
    }

    /// The counters as stored with the run (the summary's middle part).
    pub fn to_json(&self) -> Map<String, Value> {
        let total = |t: Option<u64>| t.map_or_else(|| "?".to_owned(), |t| t.to_string());
        let mut situations = Map::new();
        for (s, n) in Situation::ALL.iter().zip(self.situations) {
            situations.insert(s.as_str().to_owned(), Value::from(n));
        }
        let mut durations = Map::new();
        for (t, m) in Timed::ALL.iter().zip(self.durations) {
            if m.count > 0 {
                durations.insert(t.name().to_owned(), m.to_json());
            }
        }
        let mut out = Map::new();
        out.insert(
            "progress".into(),
            json!({
                "source": {"existing": {"processed": self.source_processed, "total": total(self.source_total)}},
                "target": {
                    "existing": {"processed": self.target_processed, "total": total(self.target_total)},
                    "created": self.created,
                    "unchanged": self.unchanged,
                    "updated": self.updated,
                    "deleted": self.deleted,
                },
                "links": {
                    "existing": {"processed": self.links_processed, "total": total(self.links_total)},
                    "created": self.links_created,
                },
            }),
        );
        out.insert("situationSummary".into(), Value::Object(situations));
        out.insert(
            "statusSummary".into(),
            json!({"SUCCESS": self.success, "FAILURE": self.failure}),
        );
        out.insert("durationSummary".into(), Value::Object(durations));
        out.insert(
            "auditSummary".into(),
            json!({"written": self.audit_written, "filtered": self.audit_filtered}),
        );
        if let Some(result) = &self.result_script {
            out.insert("resultScript".into(), result.clone());
        }
        out
    }
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The full summary of a stored run.
pub fn render(run: &RunRow) -> Value {
    let mut out = Map::new();
    out.insert("_id".into(), Value::from(run.id.clone()));
    out.insert("mapping".into(), Value::from(run.mapping.clone()));
    out.insert("state".into(), Value::from(run.state.clone()));
    out.insert("stage".into(), Value::from(run.stage.clone()));
    out.insert(
        "stageDescription".into(),
        Value::from(run.stage_description.clone()),
    );
    // Stored as jsonb, which keeps keys in its own order: put IDM's order back.
    let stored = Value::Object(run.summary.clone());
    let at = |pointer: &str| stored.pointer(pointer).cloned().unwrap_or(Value::from(0));
    let existing = |side: &str| {
        json!({
            "processed": at(&format!("/progress/{side}/existing/processed")),
            "total": stored
                .pointer(&format!("/progress/{side}/existing/total"))
                .cloned()
                .unwrap_or(Value::from("?")),
        })
    };
    out.insert(
        "progress".into(),
        json!({
            "source": {"existing": existing("source")},
            "target": {
                "existing": existing("target"),
                "created": at("/progress/target/created"),
                "unchanged": at("/progress/target/unchanged"),
                "updated": at("/progress/target/updated"),
                "deleted": at("/progress/target/deleted"),
            },
            "links": {"existing": existing("links"), "created": at("/progress/links/created")},
        }),
    );
    let mut situations = Map::new();
    for s in Situation::ALL {
        situations.insert(
            s.as_str().into(),
            at(&format!("/situationSummary/{}", s.as_str())),
        );
    }
    out.insert("situationSummary".into(), Value::Object(situations));
    out.insert(
        "statusSummary".into(),
        json!({"SUCCESS": at("/statusSummary/SUCCESS"), "FAILURE": at("/statusSummary/FAILURE")}),
    );
    let mut durations = Map::new();
    if let Some(Value::Object(stored)) = stored.get("durationSummary") {
        for (name, m) in stored {
            let mut metric = Map::new();
            for key in ["min", "max", "mean", "count", "sum", "stdDev"] {
                metric.insert(key.into(), m.get(key).cloned().unwrap_or(Value::from(0)));
            }
            durations.insert(name.clone(), Value::Object(metric));
        }
    }
    out.insert("durationSummary".into(), Value::Object(durations));
    if let Some(result) = stored.get("resultScript") {
        out.insert("resultScript".into(), result.clone());
    }
    out.insert("parameters".into(), run.parameters.clone());
    out.insert("started".into(), Value::from(timestamp(run.started)));
    out.insert(
        "ended".into(),
        Value::from(run.ended.map(timestamp).unwrap_or_default()),
    );
    let end = run.ended.unwrap_or_else(Utc::now);
    out.insert(
        "duration".into(),
        Value::from((end - run.started).num_milliseconds().max(0)),
    );
    // idm-sync's own, after IDM's keys.
    out.insert(
        "auditSummary".into(),
        json!({"written": at("/auditSummary/written"), "filtered": at("/auditSummary/filtered")}),
    );
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_have_idm_shape() {
        let mut stats = Stats::default();
        stats.situation(Situation::Absent);
        stats.source_total = Some(2);
        stats.time(Timed::SourceQuery, Duration::from_millis(42));
        let json = Value::Object(stats.to_json());
        assert_eq!(json["progress"]["source"]["existing"]["total"], "2");
        assert_eq!(json["progress"]["target"]["existing"]["total"], "?");
        assert_eq!(json["situationSummary"].as_object().unwrap().len(), 13);
        assert_eq!(json["situationSummary"]["ABSENT"], 1);
        assert_eq!(json["durationSummary"]["sourceQuery"]["sum"], 42);
        assert_eq!(json["statusSummary"], json!({"SUCCESS": 0, "FAILURE": 0}));
    }
}
