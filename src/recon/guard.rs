//! The mass-change guard.
//!
//! A run never applies a DELETE when it decides it: every delete (UNQUALIFIED in the source
//! phase; SOURCE_MISSING, UNQUALIFIED or TARGET_IGNORED with DELETE in the target phase) is
//! held back in `recon_pending_deletes`, and so is every deactivation (an UPDATE that turns
//! `accountStatus` to `inactive`; its other changes are applied at once). When both phases
//! are done the run knows exactly how many managed objects it would delete or deactivate; if
//! that is more than the allowed share of the managed objects that existed when the run
//! started, it applies none of them and fails with the reason, unless the request allowed a
//! mass change. Creates and other updates have been applied by then; they are not the kind of
//! change the guard protects against (an empty or wrong source wiping or disabling the
//! repository).
//!
//! The share comes from `IDM_RECON_MAX_DELETE_SHARE` (default 0.2); a request overrides the
//! guard with `allowMassChange=true`. `reconById` (one object) is never a mass change, nor
//! is a single delete or deactivation in a run over the users Salesforce reported changed
//! (liveSync, change events: `by_ids`), however few managed users there are.

use serde_json::{Map, Value};

/// The default largest share of managed objects one run may delete or deactivate.
pub const DEFAULT_MAX_DELETE_SHARE: f64 = 0.2;

/// The managed user's status property and its disabled value (IDM's managed user schema).
pub const STATUS_PROPERTY: &str = "accountStatus";
pub const INACTIVE: &str = "inactive";

/// Whether an UPDATE with `changes` deactivates the object that is `current` now.
pub fn deactivates(current: &Map<String, Value>, changes: &Map<String, Value>) -> bool {
    changes.get(STATUS_PROPERTY).and_then(Value::as_str) == Some(INACTIVE)
        && current.get(STATUS_PROPERTY).and_then(Value::as_str) != Some(INACTIVE)
}

/// A run that would delete or deactivate more than the allowed share: the reason it fails.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "mass-change guard: this reconciliation would delete or deactivate {planned} of {existing} managed objects ({:.1}%), more than the allowed {:.1}% (IDM_RECON_MAX_DELETE_SHARE); nothing was deleted or deactivated. Run it again with allowMassChange=true to allow it.",
    share * 100.0,
    max_share * 100.0
)]
pub struct MassChange {
    pub planned: u64,
    pub existing: u64,
    pub share: f64,
    pub max_share: f64,
}

/// [`MassChange`] when `planned` deletes and deactivations out of `existing` objects exceed
/// `max_share`.
pub fn check(planned: u64, existing: u64, max_share: f64, allowed: bool) -> Result<(), MassChange> {
    if allowed || planned == 0 {
        return Ok(());
    }
    let share = if existing == 0 {
        1.0
    } else {
        planned as f64 / existing as f64
    };
    if share <= max_share {
        return Ok(());
    }
    Err(MassChange {
        planned,
        existing,
        share,
        max_share,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_up_to_the_share() {
        assert!(check(2, 10, 0.2, false).is_ok());
        assert!(check(3, 10, 0.2, false).is_err());
        assert!(check(3, 10, 0.2, true).is_ok());
        assert!(check(0, 0, 0.2, false).is_ok());
        assert!(check(1, 0, 0.2, false).is_err());
    }

    #[test]
    fn a_deactivation_turns_status_to_inactive() {
        let obj = |v: Value| v.as_object().cloned().unwrap();
        let active = obj(serde_json::json!({"accountStatus": "active"}));
        let inactive = obj(serde_json::json!({"accountStatus": "inactive"}));
        let other = obj(serde_json::json!({"sn": "x"}));
        assert!(deactivates(&active, &inactive));
        assert!(deactivates(&other, &inactive));
        assert!(!deactivates(&inactive, &inactive));
        assert!(!deactivates(&active, &other));
        assert!(!deactivates(&inactive, &active));
    }
}
