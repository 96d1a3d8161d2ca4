//! What a run writes to the recon audit about one object: whom it is about, whether
//! `conf/audit.json` admits it, and the entry in IDM's shape. Shared by both directions.

use chrono::{SecondsFormat, Utc};

use super::run_state::Run;
use crate::audit_config::{AuditEvent, Topic};
use crate::mapping::{Action, DEFAULT_LINK_QUALIFIER, Situation};
use crate::repo::audit::ReconAuditEntry;

/// Which phase assessed an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Source,
    Target,
}

impl Phase {
    /// IDM's `reconciling` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Source => "source",
            Phase::Target => "target",
        }
    }
}

/// Whom an audit entry is about: the phase, the two ids, the situation and the action.
#[derive(Clone, Copy)]
pub(crate) struct Audited<'a> {
    pub phase: Phase,
    pub source_id: Option<&'a str>,
    pub target_id: Option<&'a str>,
    pub situation: Option<Situation>,
    pub action: Option<Action>,
    pub status: &'static str,
    /// Its action changed nothing (the target was already in step).
    pub unchanged: bool,
}

impl Run {
    pub fn admits(&self, about: &Audited<'_>) -> bool {
        let event = AuditEvent {
            action: about.action.map(Action::as_str),
            situation: about.situation.map(Situation::as_str),
            status: about.status,
            reconciling: Some(about.phase.as_str()),
            mapping: &self.mapping().name,
            unchanged: about.unchanged,
        };
        self.inner.audit.admits(Topic::Recon, &event)
    }

    pub fn audit_entry(&self, about: &Audited<'_>, message: Option<String>) -> ReconAuditEntry {
        let Audited {
            phase,
            source_id,
            target_id,
            situation,
            action,
            status,
            unchanged: _,
        } = *about;
        ReconAuditEntry {
            event_name: "recon",
            entry_type: "entry",
            recon_id: self.id.clone(),
            mapping: self.mapping().name.clone(),
            timestamp: now(),
            reconciling: phase.as_str(),
            situation: situation.map(Situation::as_str),
            action: action.map(Action::as_str),
            status,
            message,
            source_object_id: source_id.map(|id| format!("{}/{id}", self.mapping().source)),
            target_object_id: target_id.map(|id| format!("{}/{id}", self.mapping().target)),
            link_qualifier: DEFAULT_LINK_QUALIFIER,
        }
    }
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}
