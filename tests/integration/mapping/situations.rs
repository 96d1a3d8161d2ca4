//! Every situation is reached by assessment facts, as IDM assesses it.

use std::collections::HashSet;

use idm_sync::mapping::{
    Correlation, DeletedSourceFacts, LinkState, LinkedSource, Situation, SourceFacts,
    assess_deleted_source, assess_source, assess_target,
};

fn matches(count: usize) -> Correlation {
    Correlation::Matches {
        count,
        linked_to_another_source: false,
    }
}

fn src(qualifies: bool, link: LinkState, correlation: Correlation) -> Situation {
    assess_source(SourceFacts {
        qualifies,
        link,
        correlation,
    })
}

#[test]
fn source_phase() {
    use LinkState::*;
    assert_eq!(
        src(true, LinkedTargetExists, Correlation::NotRun),
        Situation::Confirmed
    );
    assert_eq!(
        src(true, LinkedTargetGone, Correlation::NotRun),
        Situation::Missing
    );
    assert_eq!(src(true, Unlinked, Correlation::NotRun), Situation::Absent);
    assert_eq!(src(true, Unlinked, matches(0)), Situation::Absent);
    assert_eq!(src(true, Unlinked, matches(1)), Situation::Found);
    assert_eq!(
        src(
            true,
            Unlinked,
            Correlation::Matches {
                count: 1,
                linked_to_another_source: true
            }
        ),
        Situation::FoundAlreadyLinked
    );
    assert_eq!(src(true, Unlinked, matches(2)), Situation::Ambiguous);
    assert_eq!(
        src(false, LinkedTargetExists, Correlation::NotRun),
        Situation::Unqualified
    );
    assert_eq!(
        src(false, LinkedTargetGone, Correlation::NotRun),
        Situation::Unqualified
    );
    assert_eq!(src(false, Unlinked, matches(1)), Situation::Unqualified);
    assert_eq!(src(false, Unlinked, matches(3)), Situation::Unqualified);
    assert_eq!(src(false, Unlinked, matches(0)), Situation::SourceIgnored);
    assert_eq!(
        src(false, Unlinked, Correlation::NotRun),
        Situation::SourceIgnored
    );
    assert!(SourceFacts::needs_correlation(Unlinked));
    assert!(!SourceFacts::needs_correlation(LinkedTargetGone));
}

#[test]
fn target_phase() {
    assert_eq!(
        assess_target(false, LinkedSource::Unlinked),
        Situation::TargetIgnored
    );
    assert_eq!(
        assess_target(false, LinkedSource::Gone),
        Situation::TargetIgnored
    );
    assert_eq!(
        assess_target(true, LinkedSource::Unlinked),
        Situation::Unassigned
    );
    assert_eq!(
        assess_target(true, LinkedSource::Gone),
        Situation::SourceMissing
    );
    assert_eq!(
        assess_target(true, LinkedSource::Exists { qualifies: false }),
        Situation::Unqualified
    );
    assert_eq!(
        assess_target(true, LinkedSource::Exists { qualifies: true }),
        Situation::Confirmed
    );
}

#[test]
fn deleted_source_follows_idm_73_table() {
    use DeletedSourceFacts::*;
    let del = assess_deleted_source;
    assert_eq!(
        del(Linked {
            target_qualifies: None
        }),
        Situation::LinkOnly
    );
    assert_eq!(
        del(Linked {
            target_qualifies: Some(true)
        }),
        Situation::SourceMissing
    );
    assert_eq!(
        del(Linked {
            target_qualifies: Some(false)
        }),
        Situation::TargetIgnored
    );
    assert_eq!(
        del(Unlinked {
            old_source_qualifies: None,
            correlation: matches(1)
        }),
        Situation::AllGone
    );
    assert_eq!(
        del(Unlinked {
            old_source_qualifies: Some(true),
            correlation: matches(0)
        }),
        Situation::AllGone
    );
    assert_eq!(
        del(Unlinked {
            old_source_qualifies: Some(true),
            correlation: Correlation::NotRun
        }),
        Situation::AllGone
    );
    assert_eq!(
        del(Unlinked {
            old_source_qualifies: Some(true),
            correlation: matches(1)
        }),
        Situation::Unassigned
    );
    assert_eq!(
        del(Unlinked {
            old_source_qualifies: Some(false),
            correlation: matches(1)
        }),
        Situation::TargetIgnored
    );
    assert_eq!(
        del(Unlinked {
            old_source_qualifies: Some(true),
            correlation: matches(2)
        }),
        Situation::Ambiguous
    );
    assert_eq!(
        del(Unlinked {
            old_source_qualifies: Some(false),
            correlation: matches(2)
        }),
        Situation::Unqualified
    );
}

#[test]
fn all_thirteen_situations_are_reachable() {
    use LinkState::*;
    let mut seen = HashSet::new();
    for q in [true, false] {
        for link in [Unlinked, LinkedTargetExists, LinkedTargetGone] {
            for c in [
                Correlation::NotRun,
                matches(0),
                matches(1),
                matches(2),
                Correlation::Matches {
                    count: 1,
                    linked_to_another_source: true,
                },
            ] {
                seen.insert(src(q, link, c));
            }
        }
    }
    for q in [true, false] {
        for s in [
            LinkedSource::Unlinked,
            LinkedSource::Gone,
            LinkedSource::Exists { qualifies: true },
            LinkedSource::Exists { qualifies: false },
        ] {
            seen.insert(assess_target(q, s));
        }
    }
    for t in [None, Some(true), Some(false)] {
        seen.insert(assess_deleted_source(DeletedSourceFacts::Linked {
            target_qualifies: t,
        }));
    }
    seen.insert(assess_deleted_source(DeletedSourceFacts::Unlinked {
        old_source_qualifies: None,
        correlation: Correlation::NotRun,
    }));
    assert_eq!(seen.len(), 13, "{seen:?}");
    for s in Situation::ALL {
        assert!(seen.contains(&s), "{s}");
    }
}
