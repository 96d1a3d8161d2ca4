//! The mass-change guard.
//!
//! A run never applies a DELETE when it decides it: every delete (UNQUALIFIED in the source
//! phase; SOURCE_MISSING, UNQUALIFIED or TARGET_IGNORED with DELETE in the target phase) is
//! held back in `recon_pending_deletes`. When both phases are done the run knows exactly how
//! many managed objects it would delete; if that is more than the allowed share of the
//! managed objects that existed when the run started, it deletes nothing and fails with the
//! reason, unless the request allowed a mass change. Creates and updates have been applied by
//! then; they are not the kind of change the guard protects against (an empty or wrong source
//! wiping the repository).
//!
//! The share comes from `IDM_RECON_MAX_DELETE_SHARE` (default 0.2); a request overrides the
//! guard with `allowMassChange=true`. `reconById` (one object) is never a mass change.

/// The default largest share of managed objects one run may delete.
pub const DEFAULT_MAX_DELETE_SHARE: f64 = 0.2;

/// `Err(reason)` when `planned` deletes out of `existing` objects exceed `max_share`.
pub fn check(planned: u64, existing: u64, max_share: f64, allowed: bool) -> Result<(), String> {
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
    Err(format!(
        "mass-change guard: this reconciliation would delete {planned} of {existing} managed objects ({:.1}%), more than the allowed {:.1}% (IDM_RECON_MAX_DELETE_SHARE); nothing was deleted. Run it again with allowMassChange=true to allow it.",
        share * 100.0,
        max_share * 100.0
    ))
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
}
