//! sObject Collections: `POST composite/sobjects` (create), `PATCH composite/sobjects` (update) and
//! `DELETE composite/sobjects?ids=…` (delete), up to 200 records, one API call, per-record results
//! in request order. Records are `User`s, `PermissionSetAssignment`s or `GroupMember`s.
//!
//! With `allOrNone: false` each record succeeds or fails on its own. With `allOrNone: true` every
//! record is still attempted (so each failure reports its own error), then, if any failed, every
//! write is undone and the records that had succeeded report `ALL_OR_NONE_OPERATION_ROLLED_BACK`.
//! The whole batch runs under one write lock, so nothing else sees the intermediate state.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::Utc;
use serde_json::{Map, Value, json};

use super::access::Obj;
use super::access::dml::AccessUndo;
use super::errors::{ApiError, DmlError};
use super::limits::Caller;
use super::org::{Org, SaveKind};
use super::pubsub::{Change, Transaction, rest_origin};
use super::schema::{Record, idx};
use super::sobjects::parse_object;
use super::{Shared, write};

const MAX_RECORDS: usize = 200;

/// What a finished record write can be undone with.
enum Undo {
    Created,
    Updated(usize, Record),
    Access(AccessUndo),
}

/// The kinds of record a collection may carry.
#[derive(Clone, Copy)]
enum Kind {
    User,
    Access(Obj),
}

struct Batch {
    all_or_none: bool,
    records: Vec<Value>,
}

fn parse_batch(body: &[u8]) -> Result<Batch, ApiError> {
    let obj = parse_object(body)?;
    let all_or_none = match obj.get("allOrNone") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(ApiError::json_parse(format!(
                "Cannot deserialize instance of boolean from {other} value"
            )));
        }
    };
    let records = match obj.get("records") {
        Some(Value::Array(a)) => a.clone(),
        _ => {
            return Err(ApiError::json_parse(
                "Cannot deserialize instance of List from VALUE_NULL: records is required",
            ));
        }
    };
    if records.len() > MAX_RECORDS {
        // The answer Salesforce gives past 200 records in one call.
        return Err(ApiError::bad_request(
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 200 records into this call",
        ));
    }
    Ok(Batch {
        all_or_none,
        records,
    })
}

/// Checks a record's `attributes.type`; Salesforce's message when it is missing.
fn record_object(v: &Value) -> Result<(&Map<String, Value>, Kind), DmlError> {
    let Some(obj) = v.as_object() else {
        return Err(DmlError::new(
            "JSON_PARSER_ERROR",
            "Cannot deserialize instance of SObject",
            Vec::new(),
        ));
    };
    match obj
        .get("attributes")
        .and_then(|a| a.get("type"))
        .and_then(Value::as_str)
    {
        Some(t) if t.eq_ignore_ascii_case("User") => Ok((obj, Kind::User)),
        Some(t) if Obj::named(t).is_some_and(Obj::writable) => {
            Ok((obj, Obj::named(t).map_or(Kind::User, Kind::Access)))
        }
        Some(t) => Err(DmlError::new(
            "INVALID_TYPE",
            format!("sObject type '{t}' is not supported."),
            Vec::new(),
        )),
        None => Err(DmlError::new(
            "INVALID_TYPE",
            "Must send a concrete entity type.",
            Vec::new(),
        )),
    }
}

/// One record's write: its id, how to undo it, and the change event of a `User` write.
type Written = (String, Undo, Option<Change>);

fn one(
    shared: &Shared,
    org: &mut Org,
    v: &Value,
    kind: SaveKind,
    actor: &str,
) -> Result<Written, DmlError> {
    let (obj, object_kind) = record_object(v)?;
    let mut fields = obj.clone();
    let id = ["id", "Id", "ID"].iter().find_map(|k| fields.remove(*k));
    let id = match (kind, id) {
        (SaveKind::Create, Some(_)) => {
            return Err(DmlError::new(
                "INVALID_FIELD",
                "cannot specify Id in an insert call",
                vec!["Id".to_owned()],
            ));
        }
        (SaveKind::Create, None) => None,
        (SaveKind::Update, Some(Value::String(id))) => Some(id),
        (SaveKind::Update, _) => {
            return Err(DmlError::new(
                "MISSING_ARGUMENT",
                "Id not specified in an update call",
                Vec::new(),
            ));
        }
    };
    let now = Utc::now();
    if let Kind::Access(o) = object_kind {
        if shared.rng.chance(shared.faults().rate_lock_row) {
            return Err(DmlError::unable_to_lock(id.as_deref()));
        }
        return match id {
            None => {
                let (id, undo) = org.create_access(o, &fields, now)?;
                Ok((id, Undo::Access(undo), None))
            }
            Some(id) => {
                let undo = org.update_access(o, &id, &fields, now)?;
                let id = super::ids::canonical_15(&id)
                    .and_then(|c| super::ids::to_18(&c))
                    .unwrap_or(id);
                Ok((id, Undo::Access(undo), None))
            }
        };
    }
    let changes = Org::parse_changes(&fields, kind)?;
    if shared.rng.chance(shared.faults().rate_lock_row) {
        return Err(DmlError::unable_to_lock(id.as_deref()));
    }
    match id {
        None => {
            let id = org.create(changes, now, actor)?;
            let change = org.users.last().map(Change::created);
            Ok((id, Undo::Created, change))
        }
        Some(id) => {
            let Some(i) = org.find(&id) else {
                let code = if super::ids::canonical_15(&id).is_some() {
                    "ENTITY_IS_DELETED"
                } else {
                    "MALFORMED_ID"
                };
                let message = if code == "MALFORMED_ID" {
                    format!("malformed id {id}")
                } else {
                    "entity is deleted".to_owned()
                };
                return Err(DmlError::new(code, message, Vec::new()));
            };
            let old = org.update(i, changes, now, actor)?;
            let change = org.users.get(i).and_then(|new| Change::updated(&old, new));
            // `Id` is not updateable: the record had the id it has now.
            let id = old[idx::ID].as_str().unwrap_or_default().to_owned();
            Ok((id, Undo::Updated(i, old), change))
        }
    }
}

/// Runs a batch as one transaction: its `User` changes are published together (nothing when it
/// is rolled back).
fn run(shared: &Shared, batch: Batch, kind: SaveKind, origin: String) -> Vec<Value> {
    let mut outcomes: Vec<(Option<String>, Result<String, DmlError>)> =
        Vec::with_capacity(batch.records.len());
    let mut undo: Vec<Undo> = Vec::new();
    let mut changes: Vec<Change> = Vec::new();
    let written;
    {
        let mut org = write(&shared.org);
        let actor = org.integration_user_id();
        for rec in &batch.records {
            let given_id = rec
                .get("id")
                .or_else(|| rec.get("Id"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            match one(shared, &mut org, rec, kind, &actor) {
                Ok((id, u, change)) => {
                    undo.push(u);
                    changes.extend(change);
                    outcomes.push((given_id, Ok(id)));
                }
                Err(e) => outcomes.push((given_id, Err(e))),
            }
        }
        let failed = outcomes.iter().any(|(_, r)| r.is_err());
        if batch.all_or_none && failed {
            // Undo newest first, so popped creates are always the last users.
            for u in undo.into_iter().rev() {
                match u {
                    Undo::Created => {
                        org.pop_user();
                    }
                    Undo::Updated(i, old) => {
                        org.replace(i, old);
                    }
                    Undo::Access(a) => org.undo_access(a),
                }
            }
            for (_, r) in &mut outcomes {
                if r.is_ok() {
                    *r = Err(DmlError::rolled_back());
                }
            }
            written = 0;
        } else {
            written = outcomes.iter().filter(|(_, r)| r.is_ok()).count();
            let txn = Transaction {
                origin,
                commit_user: actor,
                changes,
            };
            shared.pubsub.publish(&txn, Utc::now());
        }
    }
    if written > 0 {
        shared.stats.add_written(written as u64);
        shared.mark_dirty();
    }
    outcomes
        .into_iter()
        .map(|(given, r)| match r {
            Ok(id) => json!({ "id": id, "success": true, "errors": [] }),
            Err(e) => {
                let mut v = json!({ "success": false, "errors": [e.to_collection_json()] });
                if let (Some(id), Some(obj)) = (given, v.as_object_mut()) {
                    obj.insert("id".to_owned(), json!(id));
                }
                v
            }
        })
        .collect()
}

/// `POST composite/sobjects` (create) and `PATCH composite/sobjects` (update).
pub async fn save(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let kind = match method {
        Method::PATCH => SaveKind::Update,
        _ => SaveKind::Create,
    };
    let batch = parse_batch(&body)?;
    let origin = rest_origin(&caller.version, &headers);
    Ok(Json(run(&shared, batch, kind, origin)).into_response())
}

/// `DELETE composite/sobjects?ids=a,b[&allOrNone=true]`: assignments and memberships (users have
/// no delete call; the catalog is read-only here).
pub async fn delete(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let ids: Vec<String> = params
        .get("ids")
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if ids.is_empty() {
        // Salesforce's exact answer is not documented; this is our closest.
        return Err(ApiError::bad_request(
            "MISSING_ARGUMENT",
            "ids parameter is required",
        ));
    }
    if ids.len() > MAX_RECORDS {
        return Err(ApiError::bad_request(
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 200 records into this call",
        ));
    }
    let all_or_none = params
        .get("allOrNone")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let mut outcomes: Vec<Result<(), DmlError>> = Vec::with_capacity(ids.len());
    let mut undo: Vec<AccessUndo> = Vec::new();
    let written;
    {
        let mut org = write(&shared.org);
        for id in &ids {
            if shared.rng.chance(shared.faults().rate_lock_row) {
                outcomes.push(Err(DmlError::unable_to_lock(Some(id))));
                continue;
            }
            match org.delete_access(id) {
                Ok((_, u)) => {
                    undo.push(u);
                    outcomes.push(Ok(()));
                }
                Err(e) => outcomes.push(Err(e)),
            }
        }
        if all_or_none && outcomes.iter().any(Result::is_err) {
            for u in undo.into_iter().rev() {
                org.undo_access(u);
            }
            for r in &mut outcomes {
                if r.is_ok() {
                    *r = Err(DmlError::rolled_back());
                }
            }
            written = 0;
        } else {
            written = outcomes.iter().filter(|r| r.is_ok()).count();
        }
    }
    if written > 0 {
        shared.stats.add_written(written as u64);
        shared.mark_dirty();
    }
    let results: Vec<Value> = ids
        .into_iter()
        .zip(outcomes)
        .map(|(id, r)| match r {
            Ok(()) => json!({ "id": id, "success": true, "errors": [] }),
            Err(e) => json!({ "id": id, "success": false, "errors": [e.to_collection_json()] }),
        })
        .collect();
    Ok(Json(results).into_response())
}
