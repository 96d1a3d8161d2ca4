//! Pass 3, the target phase: Salesforce users nothing links to and no correlation matched.
//! UNASSIGNED (or TARGET_IGNORED when `validTarget` refuses them); a DELETE deactivates them,
//! held for the guard like every delete.

use super::linked::{Decider, decide};
use super::{Entry, Outbound, Via, Work};
use crate::mapping::{Action, LinkedSource, assess_target};
use crate::recon::ReconError;
use crate::recon::audited::Phase;
use crate::repo::recon_runs::{self, Unlinked};

/// Entries written per transaction.
const PAGE: usize = 1000;

impl Outbound {
    pub(super) async fn unassigned_pass(&mut self) -> Result<(), ReconError> {
        let held = std::mem::take(&mut self.unlinked);
        self.unassigned(held).await?;
        if !self.unlinked_spilled {
            return Ok(());
        }
        let mut after: Option<String> = None;
        loop {
            let page =
                recon_runs::unlinked(self.run.pool(), &self.run.id, after.as_deref(), PAGE as i64)
                    .await?;
            let Some((last, _)) = page.last() else {
                return Ok(());
            };
            after = Some(last.clone());
            self.unassigned(page).await?;
        }
    }

    /// Assesses and writes unlinked Salesforce users, a page at a time.
    async fn unassigned(&mut self, unlinked: Vec<Unlinked>) -> Result<(), ReconError> {
        let inner = self.run.inner.clone();
        let mapping = self.run.mapping_of(&inner);
        let recon_id = self.run.id.clone();
        let decider = Decider {
            mapping,
            recon_id: &recon_id,
            analyze: self.run.req.analyze,
        };
        let mut entries = Vec::new();
        for (id, qualifies) in unlinked {
            if self.claimed.contains(&id) {
                continue;
            }
            let mut entry = Entry::new(Phase::Target, None, Some(id.clone()));
            match qualifies {
                Err(e) => entry.error = Some(e),
                Ok(q) => {
                    let situation = assess_target(q, LinkedSource::Unlinked);
                    if let Some(action) = decide(&decider, &mut entry, situation, None, None)
                        && action == Action::Delete
                    {
                        entry.work = Work::Hold(Via::Direct { target: id });
                    }
                }
            }
            entries.push(entry);
            if entries.len() >= PAGE {
                self.write(std::mem::take(&mut entries), &[]).await?;
            }
        }
        self.write(entries, &[]).await
    }
}
