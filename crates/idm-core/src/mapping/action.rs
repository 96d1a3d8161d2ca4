//! The actions a policy can take (IDM's `ReconAction`).

use std::fmt;

/// What to do about an assessed situation. The caller (recon engine, outbound worker)
/// carries it out; this crate only decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Create the target from the mapped source, and link the two.
    Create,
    /// Update the target from the mapped source (linking it if not yet linked).
    Update,
    /// Delete the target and its link (on Salesforce `User`: deactivate, as users cannot be deleted).
    Delete,
    /// Link the correlated target, without changing it.
    Link,
    /// Remove the link, leave both objects alone.
    Unlink,
    /// Flag as an exception: audit status FAILURE, nothing changed.
    Exception,
    /// Do nothing, record nothing, no postAction.
    Ignore,
    /// Do nothing; report it, then run the postAction.
    Report,
    /// Do nothing, report nothing; run the postAction only.
    NoReport,
    /// An asynchronous process (a workflow) took over: nothing else happens.
    Async,
}

impl Action {
    pub const ALL: [Action; 10] = [
        Action::Create,
        Action::Update,
        Action::Delete,
        Action::Link,
        Action::Unlink,
        Action::Exception,
        Action::Ignore,
        Action::Report,
        Action::NoReport,
        Action::Async,
    ];

    /// The name as `sync.json` and the audit log spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "CREATE",
            Action::Update => "UPDATE",
            Action::Delete => "DELETE",
            Action::Link => "LINK",
            Action::Unlink => "UNLINK",
            Action::Exception => "EXCEPTION",
            Action::Ignore => "IGNORE",
            Action::Report => "REPORT",
            Action::NoReport => "NOREPORT",
            Action::Async => "ASYNC",
        }
    }

    /// Exact, upper-case name (IDM uses Java's `Enum.valueOf`, which is case-sensitive).
    pub fn from_name(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == name)
    }

    /// True for the actions that change a target object or a link.
    pub fn changes_data(self) -> bool {
        matches!(
            self,
            Action::Create | Action::Update | Action::Delete | Action::Link | Action::Unlink
        )
    }

    /// Whether a policy's `postAction` runs after this action (IDM: not for IGNORE and ASYNC).
    pub fn runs_post_action(self) -> bool {
        !matches!(self, Action::Ignore | Action::Async)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_case_sensitive() {
        for a in Action::ALL {
            assert_eq!(Action::from_name(a.as_str()), Some(a));
        }
        assert_eq!(Action::from_name("create"), None);
        assert_eq!(Action::from_name("NOREPORT"), Some(Action::NoReport));
    }
}
