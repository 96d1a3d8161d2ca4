//! A `User` create or update and its change event, under one write lock, so that events follow
//! commit order. Used by the REST sObject routes and the emulator's admin routes.

use chrono::Utc;

use super::errors::{ApiError, DmlError};
use super::org::{Changes, Org};
use super::pubsub::{Change, Transaction};
use super::{Shared, sobjects, write};

/// Whose write it is (`CreatedById`, `LastModifiedById`, the event's `commitUser`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// The user the OAuth tokens act as.
    Integration,
    /// Another user of the org, editing in Salesforce itself.
    Admin,
}

fn actor_id(org: &Org, actor: Actor) -> String {
    match actor {
        Actor::Integration => org.integration_user_id(),
        Actor::Admin => org.admin_user_id(),
    }
}

/// Creates a user; returns its id.
pub fn create(
    shared: &Shared,
    changes: Changes,
    origin: String,
    actor: Actor,
) -> Result<String, DmlError> {
    let now = Utc::now();
    let mut org = write(&shared.org);
    let actor = actor_id(&org, actor);
    let id = org.create(changes, now, &actor)?;
    let change = org
        .find(&id)
        .and_then(|i| org.users.get(i))
        .map(Change::created);
    let txn = Transaction {
        origin,
        commit_user: actor,
        changes: change.into_iter().collect(),
    };
    shared.pubsub.publish(&txn, now);
    Ok(id)
}

/// Updates the user with path id `id`.
pub fn update(
    shared: &Shared,
    id: &str,
    changes: Changes,
    origin: String,
    actor: Actor,
) -> Result<(), ApiError> {
    let now = Utc::now();
    let mut org = write(&shared.org);
    let i = sobjects::find(&org, id)?;
    let actor = actor_id(&org, actor);
    let old = org.update(i, changes, now, &actor)?;
    let change = org.users.get(i).and_then(|new| Change::updated(&old, new));
    let txn = Transaction {
        origin,
        commit_user: actor,
        changes: change.into_iter().collect(),
    };
    shared.pubsub.publish(&txn, now);
    Ok(())
}
