//! Fault injection: 503 storms, row-lock errors, added latency, forced token expiry, a lowered daily
//! allowance. Set from CLI flags at start, from `POST /__emulator/faults`, or from an
//! [`super::EmulatorHandle`] in tests.

use serde::{Deserialize, Serialize};

/// The standing faults, applied to every call while set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultConfig {
    /// Probability (0..=1) that a data call answers 503 `SERVER_UNAVAILABLE` instead of running.
    #[serde(rename = "rate503")]
    pub rate_503: f64,
    /// Probability (0..=1) that a record write fails with `UNABLE_TO_LOCK_ROW` (per record in collections).
    pub rate_lock_row: f64,
    /// Milliseconds added to every Salesforce call (OAuth and data).
    pub latency_ms: u64,
    /// Refuse range comparisons (`<`, `<=`, `>`, `>=`) on `GroupMember.UserOrGroupId` with
    /// `INVALID_QUERY_FILTER_OPERATOR`, as an org that does not support them on this polymorphic
    /// reference would: clients must fall back to id lists.
    #[serde(default)]
    pub refuse_member_ranges: bool,
}

/// A partial update (`POST /__emulator/faults`): absent fields keep their value. `expireTokens` is an
/// action (expire every issued access token now), `dailyLimit` sets the allowance, `apiUsage` sets
/// the used-calls counter (e.g. 0 to start a fresh "day"), `subqueryInlineRows` the child rows a
/// subquery shows inline per parent (at least 1; small values make tests page child rows); the
/// `pubsub*` keys set the Pub/Sub API's knobs or inject its faults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultUpdate {
    #[serde(rename = "rate503")]
    pub rate_503: Option<f64>,
    pub rate_lock_row: Option<f64>,
    pub latency_ms: Option<u64>,
    pub expire_tokens: Option<bool>,
    pub daily_limit: Option<u64>,
    pub api_usage: Option<u64>,
    pub subquery_inline_rows: Option<usize>,
    pub refuse_member_ranges: Option<bool>,
    /// Seconds change events are kept (Pub/Sub API; default 72 hours).
    pub pubsub_retention_secs: Option<u64>,
    /// Milliseconds before a keepalive while a subscriber is owed events (default 270,000).
    pub pubsub_keepalive_ms: Option<u64>,
    /// Milliseconds a stream owed nothing waits for a request before closing (default 60,000).
    pub pubsub_idle_timeout_ms: Option<u64>,
    /// Action: end the open Pub/Sub streams with `UNAVAILABLE` after this many more events
    /// each (0: at once).
    pub pubsub_drop_streams: Option<u32>,
    /// Action: publish a gap event for these records.
    pub pubsub_gap: Option<GapOrder>,
    /// Action: publish an overflow event (`GAP_OVERFLOW`).
    pub pubsub_overflow: Option<bool>,
}

/// The kinds of gap event (Change Data Capture guide, "Gap Events").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GapType {
    GapCreate,
    GapUpdate,
    GapDelete,
    GapUndelete,
}

/// `{"changeType":"GAP_UPDATE","recordIds":["005…"]}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GapOrder {
    pub change_type: GapType,
    pub record_ids: Vec<String>,
}

impl FaultConfig {
    /// Applies the standing-fault part of an update; rates are clamped to `0..=1`.
    pub fn apply(&mut self, u: &FaultUpdate) {
        if let Some(r) = u.rate_503 {
            self.rate_503 = r.clamp(0.0, 1.0);
        }
        if let Some(r) = u.rate_lock_row {
            self.rate_lock_row = r.clamp(0.0, 1.0);
        }
        if let Some(l) = u.latency_ms {
            self.latency_ms = l;
        }
        if let Some(r) = u.refuse_member_ranges {
            self.refuse_member_ranges = r;
        }
    }
}
