//! The change event published for each outbox row: identifiers only, never property values,
//! so no secret crosses the broker; the worker reads the current object from Postgres.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::repo::outbox::{Operation, OutboxRow};

/// The managed object type the outbound mapping reads: the worker applies its events only.
pub const OBJECT_TYPE: &str = "user";
/// Its resource, the source of every outbound mapping.
pub const OBJECT_RESOURCE: &str = "managed/user";

/// Bumped when the message's meaning changes; sent as the `x-schema-version` header. `repair`
/// is an optional addition (absent when empty, ignored by readers that do not know it), so the
/// version stays 1. (Sending 2 measured about 20% slower bulk sync in `cargo bench --bench
/// implicit_sync`, reproducibly, for a reason not yet understood.)
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeEvent {
    /// The outbox row id (also the AMQP `message_id`): duplicates share it.
    pub event_id: i64,
    pub object_type: String,
    pub object_id: String,
    pub rev: i64,
    pub operation: String,
    pub timestamp: DateTime<Utc>,
    /// On a `sync` a reconciliation queued: the target fields it found different in the target
    /// system, sent besides what changed since the link's snapshot. Field names, never values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repair: Vec<String>,
}

impl ChangeEvent {
    pub fn from_row(row: &OutboxRow) -> ChangeEvent {
        ChangeEvent {
            event_id: row.id,
            object_type: row.object_type.clone(),
            object_id: row.object_id.clone(),
            rev: row.rev,
            operation: row.operation.as_str().to_owned(),
            timestamp: row.created_at,
            repair: match row.operation {
                Operation::Sync => row.fields.clone(),
                _ => Vec::new(),
            },
        }
    }

    pub fn operation(&self) -> Option<Operation> {
        Operation::parse(&self.operation)
    }
}
