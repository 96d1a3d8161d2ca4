//! What people see of a connector's change event subscription: its configuration and the
//! subscription's row (state, the subscriber holding it, how far it applied).

use chrono::{DateTime, Utc};

use crate::config::{ChangeEventsConfig, Conf};
use crate::repo::{Pool, RepoError, event_subscriptions};

#[derive(Debug, Clone, PartialEq)]
pub struct EventStatus {
    /// The connector's `changeevents-<connector>.json`, if there is one.
    pub config: Option<ChangeEventsConfig>,
    pub subscription: Option<event_subscriptions::Subscription>,
}

impl EventStatus {
    /// From Salesforce's commit of the last event applied to its managed writes.
    pub fn lag(&self) -> Option<chrono::Duration> {
        let s = self.subscription.as_ref()?;
        Some(s.last_applied_at? - s.last_commit_at?)
    }

    /// Whether the lease is held now.
    pub fn active(&self, now: DateTime<Utc>) -> bool {
        self.subscription
            .as_ref()
            .and_then(|s| s.lease_expires_at)
            .is_some_and(|t| t > now)
    }
}

pub async fn status(pool: &Pool, conf: &Conf, connector: &str) -> Result<EventStatus, RepoError> {
    let config = conf
        .change_events
        .iter()
        .find(|c| c.connector == connector)
        .cloned();
    let subscription = event_subscriptions::get(pool, connector).await?;
    Ok(EventStatus {
        config,
        subscription,
    })
}
