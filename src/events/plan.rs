//! What a gathered batch of change events asks for: the users to reconcile, the events that
//! need nothing (idm-sync's own writes coming back, other entities), whether Salesforce could
//! not describe some changes at all (`GAP_OVERFLOW`), and where the batch ends.

use std::collections::BTreeSet;
use std::time::Duration;

use sf_client::pubsub::{ChangeEvent, ChangeType};

/// The entity of the users' change events.
const USER: &str = "User";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Salesforce ids to reconcile, sorted.
    pub ids: Vec<String>,
    /// Events made by the connector's own integration user: their change came from idm-sync.
    pub echoes: usize,
    /// Events of other entities (a `/data/ChangeEvents` topic carries every selected entity).
    pub other_entities: usize,
    /// Changes Salesforce could not describe (`GAP_OVERFLOW`): only a full reconciliation
    /// finds them.
    pub overflow: bool,
    /// The replay id of the batch's last event: where to resume once it is applied.
    pub last_replay_id: Option<Vec<u8>>,
    /// The commit time (ms since the epoch) of each event that names users to reconcile, for
    /// its lag.
    pub commit_times: Vec<i64>,
}

impl Plan {
    /// `integration_user`: the id the connector's session acts as.
    pub fn of(events: &[ChangeEvent], integration_user: &str) -> Plan {
        let mut plan = Plan::default();
        let mut ids = BTreeSet::new();
        for event in events {
            plan.last_replay_id = Some(event.replay_id.clone());
            let header = &event.header;
            if !header.entity_name.eq_ignore_ascii_case(USER)
                && header.change_type != ChangeType::GapOverflow
            {
                plan.other_entities += 1;
                continue;
            }
            // A gap is Salesforce saying it cannot tell what changed: never an echo.
            let echo = !matches!(header.change_type, ChangeType::Gap(_))
                && !integration_user.is_empty()
                && header.commit_user == integration_user;
            match &header.change_type {
                ChangeType::GapOverflow => plan.overflow = true,
                _ if echo => plan.echoes += 1,
                _ => {
                    ids.extend(header.record_ids.iter().cloned());
                    plan.commit_times.push(header.commit_timestamp);
                }
            }
        }
        plan.ids = ids.into_iter().collect();
        plan
    }

    /// Events that name users to reconcile.
    pub fn applied(&self) -> usize {
        self.commit_times.len()
    }

    /// The commit time of the batch's last applied event.
    pub fn last_commit(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        let ms = *self.commit_times.iter().max()?;
        chrono::DateTime::from_timestamp_millis(ms)
    }

    /// Each applied event's lag, now that its writes committed.
    pub fn lags(&self, now: chrono::DateTime<chrono::Utc>) -> Vec<Duration> {
        let now_ms = now.timestamp_millis();
        self.commit_times
            .iter()
            .map(|t| Duration::from_millis(u64::try_from(now_ms - t).unwrap_or(0)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sf_client::pubsub::ChangeEventHeader;

    fn event(n: u8, entity: &str, kind: ChangeType, user: &str, ids: &[&str]) -> ChangeEvent {
        ChangeEvent {
            replay_id: vec![n],
            header: ChangeEventHeader {
                entity_name: entity.into(),
                record_ids: ids.iter().map(|s| s.to_string()).collect(),
                change_type: kind,
                change_origin: String::new(),
                transaction_key: String::new(),
                sequence_number: 1,
                commit_timestamp: 1_000 * i64::from(n),
                commit_number: i64::from(n),
                commit_user: user.into(),
            },
            fields: Default::default(),
            changed: Default::default(),
            nulled: Default::default(),
            diff: Default::default(),
        }
    }

    #[test]
    fn echoes_are_skipped_gaps_never_and_ids_are_distinct() {
        let me = "005INTEGRATION";
        let events = [
            event(1, "User", ChangeType::Update, "005ADMIN", &["005B", "005A"]),
            event(2, "User", ChangeType::Update, me, &["005C"]),
            event(
                3,
                "User",
                ChangeType::Gap("GAP_UPDATE".into()),
                me,
                &["005C"],
            ),
            event(4, "Account", ChangeType::Create, "005ADMIN", &["001X"]),
            event(5, "User", ChangeType::Create, "005ADMIN", &["005A"]),
        ];
        let plan = Plan::of(&events, me);
        assert_eq!(plan.ids, ["005A", "005B", "005C"]);
        assert_eq!(
            (plan.echoes, plan.other_entities, plan.applied()),
            (1, 1, 3)
        );
        assert!(!plan.overflow);
        assert_eq!(plan.last_replay_id, Some(vec![5]));
        assert_eq!(plan.commit_times, [1_000, 3_000, 5_000]);
        assert_eq!(
            plan.last_commit().map(|t| t.timestamp_millis()),
            Some(5_000)
        );
    }

    #[test]
    fn an_overflow_asks_for_a_full_reconciliation() {
        let events = [event(9, "User", ChangeType::GapOverflow, "", &[])];
        let plan = Plan::of(&events, "005ME");
        assert!(plan.overflow && plan.ids.is_empty());
        assert_eq!(plan.last_replay_id, Some(vec![9]));
    }
}
