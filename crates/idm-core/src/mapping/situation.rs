//! The 13 synchronization situations, what each allows, and their assessment from facts.
//!
//! Assessment is a pure function of facts the caller gathers (validSource, the link table,
//! the target set, correlation), so the recon engine can gather them set-wise per page and the
//! outbound worker per event. The rules are IDM's (`SourceSyncOperation.assessSituation`,
//! `TargetSyncOperation.assessSituation`), including the implicit-sync delete table of IDM 7.3.

use std::fmt;

use super::action::Action;

/// A synchronization situation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Situation {
    /// Source qualifies, linked, linked target exists.
    Confirmed,
    /// Source qualifies, no link, exactly one correlated target, not linked to another source.
    Found,
    /// Source qualifies, no link, one correlated target that is already linked to another source.
    FoundAlreadyLinked,
    /// Source qualifies, no link, no correlated target (or no correlation configured).
    Absent,
    /// Source qualifies, no link, more than one correlated target.
    Ambiguous,
    /// Source qualifies, linked, but the linked target is gone.
    Missing,
    /// Target phase: target qualifies and is linked, but the linked source is gone.
    SourceMissing,
    /// Source does not qualify but has a link or correlated targets (or, target phase: the
    /// linked source exists but no longer qualifies).
    Unqualified,
    /// Target phase: target qualifies, no link (no source).
    Unassigned,
    /// A deleted source's link exists but its target is gone.
    LinkOnly,
    /// Target does not qualify (`validTarget` false).
    TargetIgnored,
    /// Source does not qualify and has no link and no target.
    SourceIgnored,
    /// A deleted source with no link and no correlatable target.
    AllGone,
}

impl Situation {
    pub const ALL: [Situation; 13] = [
        Situation::Confirmed,
        Situation::Found,
        Situation::FoundAlreadyLinked,
        Situation::Absent,
        Situation::Ambiguous,
        Situation::Missing,
        Situation::SourceMissing,
        Situation::Unqualified,
        Situation::Unassigned,
        Situation::LinkOnly,
        Situation::TargetIgnored,
        Situation::SourceIgnored,
        Situation::AllGone,
    ];

    /// The name as `sync.json`, the recon summary and the audit log spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Situation::Confirmed => "CONFIRMED",
            Situation::Found => "FOUND",
            Situation::FoundAlreadyLinked => "FOUND_ALREADY_LINKED",
            Situation::Absent => "ABSENT",
            Situation::Ambiguous => "AMBIGUOUS",
            Situation::Missing => "MISSING",
            Situation::SourceMissing => "SOURCE_MISSING",
            Situation::Unqualified => "UNQUALIFIED",
            Situation::Unassigned => "UNASSIGNED",
            Situation::LinkOnly => "LINK_ONLY",
            Situation::TargetIgnored => "TARGET_IGNORED",
            Situation::SourceIgnored => "SOURCE_IGNORED",
            Situation::AllGone => "ALL_GONE",
        }
    }

    /// Exact, upper-case name.
    pub fn from_name(name: &str) -> Option<Situation> {
        Situation::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The action when the mapping has no policy for this situation.
    ///
    /// IDM's documentation and its code disagree for three situations (code: REPORT for
    /// SOURCE_IGNORED and TARGET_IGNORED, NOREPORT for ALL_GONE); idm-sync follows the IDM 7
    /// documentation (IGNORE). Either way nothing is changed; only auditing differs.
    pub fn default_action(self) -> Action {
        match self {
            Situation::Confirmed | Situation::Found => Action::Update,
            Situation::Absent => Action::Create,
            Situation::Unqualified => Action::Delete,
            Situation::SourceIgnored | Situation::TargetIgnored | Situation::AllGone => {
                Action::Ignore
            }
            Situation::FoundAlreadyLinked
            | Situation::Ambiguous
            | Situation::Missing
            | Situation::SourceMissing
            | Situation::Unassigned
            | Situation::LinkOnly => Action::Exception,
        }
    }

    /// The actions that change data (CREATE, UPDATE, DELETE, LINK, UNLINK) this situation
    /// allows: those IDM documents for it (FOUND→LINK is in IDM's own example mapping).
    /// An action that needs an object the situation does not have (CREATE when the target
    /// exists, UPDATE with no target, ...) is refused at load time.
    pub fn allowed_data_actions(self) -> &'static [Action] {
        match self {
            Situation::Confirmed => &[Action::Update],
            Situation::Found => &[Action::Update, Action::Link],
            Situation::Absent => &[Action::Create],
            Situation::Missing => &[Action::Create, Action::Unlink],
            Situation::Unqualified | Situation::SourceMissing | Situation::TargetIgnored => {
                &[Action::Delete, Action::Unlink]
            }
            Situation::LinkOnly => &[Action::Unlink],
            Situation::FoundAlreadyLinked
            | Situation::Ambiguous
            | Situation::Unassigned
            | Situation::SourceIgnored
            | Situation::AllGone => &[],
        }
    }

    /// Whether `action` may be configured for this situation: the actions that change nothing
    /// (EXCEPTION, IGNORE, REPORT, NOREPORT, ASYNC) always, the others per
    /// [`allowed_data_actions`](Self::allowed_data_actions).
    pub fn allows(self, action: Action) -> bool {
        !action.changes_data() || self.allowed_data_actions().contains(&action)
    }
}

impl fmt::Display for Situation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The link of a source object, as the link table and the target set show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    Unlinked,
    /// Linked, and the linked target exists.
    LinkedTargetExists,
    /// Linked, but the linked target is gone (deleting a target does not delete its link).
    LinkedTargetGone,
}

/// What correlation found for an unlinked source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Correlation {
    /// The mapping has no `correlationQuery`/`correlationScript`, or correlation was skipped
    /// (the target set was empty at the start of the recon and `correlateEmptyTargetSet` is
    /// false).
    NotRun,
    /// The targets the correlation returned. `linked_to_another_source` matters only when
    /// `count == 1`: that target already has a link (from another source).
    Matches {
        count: usize,
        linked_to_another_source: bool,
    },
}

impl Correlation {
    fn count(self) -> usize {
        match self {
            Correlation::NotRun => 0,
            Correlation::Matches { count, .. } => count,
        }
    }
}

/// Facts about an existing source object: recon's source phase, `reconById`, implicit sync of
/// a created or updated managed user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceFacts {
    /// `validSource` and `sourceCondition` both hold (absent ones hold).
    pub qualifies: bool,
    pub link: LinkState,
    /// Only consulted when `link` is `Unlinked`: see [`SourceFacts::needs_correlation`].
    pub correlation: Correlation,
}

impl SourceFacts {
    /// Whether the assessment will read `correlation`: only for an unlinked source. A caller
    /// runs the correlation query only then.
    pub fn needs_correlation(link: LinkState) -> bool {
        link == LinkState::Unlinked
    }
}

/// Assesses an existing source object (IDM `SourceSyncOperation.assessSituation`).
pub fn assess_source(facts: SourceFacts) -> Situation {
    match (facts.qualifies, facts.link) {
        (true, LinkState::LinkedTargetExists) => Situation::Confirmed,
        (true, LinkState::LinkedTargetGone) => Situation::Missing,
        (true, LinkState::Unlinked) => match facts.correlation {
            Correlation::NotRun => Situation::Absent,
            Correlation::Matches { count: 0, .. } => Situation::Absent,
            Correlation::Matches {
                count: 1,
                linked_to_another_source: false,
            } => Situation::Found,
            Correlation::Matches { count: 1, .. } => Situation::FoundAlreadyLinked,
            Correlation::Matches { .. } => Situation::Ambiguous,
        },
        // A link makes an unqualified source UNQUALIFIED whether or not its target still
        // exists (IDM does not look at the target here).
        (false, LinkState::LinkedTargetExists | LinkState::LinkedTargetGone) => {
            Situation::Unqualified
        }
        (false, LinkState::Unlinked) => {
            if facts.correlation.count() == 0 {
                Situation::SourceIgnored
            } else {
                Situation::Unqualified
            }
        }
    }
}

/// The source side of a target object, in recon's target phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkedSource {
    /// No link for this target.
    Unlinked,
    /// Linked, but the source is gone.
    Gone,
    /// Linked, and the source exists; `qualifies` is its validSource/sourceCondition.
    Exists { qualifies: bool },
}

/// Assesses a target the source phase did not touch (IDM `TargetSyncOperation.assessSituation`).
/// `target_qualifies` is `validTarget` (true when absent); an unqualified target is
/// TARGET_IGNORED whatever its link.
pub fn assess_target(target_qualifies: bool, source: LinkedSource) -> Situation {
    if !target_qualifies {
        return Situation::TargetIgnored;
    }
    match source {
        LinkedSource::Unlinked => Situation::Unassigned,
        LinkedSource::Gone => Situation::SourceMissing,
        LinkedSource::Exists { qualifies: false } => Situation::Unqualified,
        LinkedSource::Exists { qualifies: true } => Situation::Confirmed,
    }
}

/// Facts about a deleted source (implicit sync or liveSync of a delete).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletedSourceFacts {
    /// The deleted source had a link.
    Linked {
        /// `None`: the linked target is gone; `Some(q)`: it exists and `validTarget` is `q`.
        target_qualifies: Option<bool>,
    },
    /// No link. `old_source_qualifies` is validSource of the deleted object's last value
    /// (`None` when that value is unknown: nothing to correlate with); `correlation` is what
    /// correlating that old value found.
    Unlinked {
        old_source_qualifies: Option<bool>,
        correlation: Correlation,
    },
}

/// Assesses a deleted source (IDM 7.3 implicit-sync delete table).
pub fn assess_deleted_source(facts: DeletedSourceFacts) -> Situation {
    match facts {
        DeletedSourceFacts::Linked {
            target_qualifies: None,
        } => Situation::LinkOnly,
        DeletedSourceFacts::Linked {
            target_qualifies: Some(true),
        } => Situation::SourceMissing,
        DeletedSourceFacts::Linked {
            target_qualifies: Some(false),
        } => Situation::TargetIgnored,
        DeletedSourceFacts::Unlinked {
            old_source_qualifies: None,
            ..
        } => Situation::AllGone,
        DeletedSourceFacts::Unlinked {
            old_source_qualifies: Some(valid),
            correlation,
        } => match (correlation.count(), valid) {
            (0, _) => Situation::AllGone,
            (1, true) => Situation::Unassigned,
            (1, false) => Situation::TargetIgnored,
            (_, true) => Situation::Ambiguous,
            (_, false) => Situation::Unqualified,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in Situation::ALL {
            assert_eq!(Situation::from_name(s.as_str()), Some(s));
            assert!(s.allows(s.default_action()), "{s}");
        }
        assert_eq!(Situation::from_name("confirmed"), None);
    }

    #[test]
    fn allowed_actions_follow_the_table() {
        assert!(!Situation::Confirmed.allows(Action::Create));
        assert!(!Situation::Confirmed.allows(Action::Delete));
        assert!(Situation::Confirmed.allows(Action::Report));
        assert!(Situation::Found.allows(Action::Link));
        assert!(Situation::Missing.allows(Action::Create));
        assert!(Situation::SourceMissing.allows(Action::Delete));
        assert!(!Situation::Absent.allows(Action::Update));
        assert!(Situation::LinkOnly.allows(Action::Unlink));
        assert!(!Situation::AllGone.allows(Action::Delete));
    }
}
