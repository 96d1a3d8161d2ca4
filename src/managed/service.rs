//! The managed-object operations behind `/openidm/managed/{type}`. Every write runs in one
//! Postgres transaction that also records the change in the outbox; a write that changes
//! nothing makes no revision and no outbox row.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::hashing;
use super::patch::{self, PatchError, PatchOperation};
use super::policy::{self, Failure};
use crate::config::ManagedConfig;
use crate::config::managed::ManagedObjectConfig;
use crate::repo::managed::{self as store, StoredObject};
use crate::repo::outbox::{self, NewChange, Operation};
use crate::repo::query::{self, QueryPage, QueryRequest};
use crate::repo::{self, Conn, Pool, RepoError};

/// Puts changes into a body: what [`ManagedObjects::merge_in`] stores, and what recon's analyze
/// mode predicts with.
pub use idm_core::planner::merge;

/// Revision preconditions from `If-Match` / `If-None-Match`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// Neither header: create or replace.
    None,
    /// `If-Match: *` (`None`) or `If-Match: "<rev>"`: the object must exist (at that revision).
    IfMatch(Option<String>),
    /// `If-None-Match: *`: the object must not exist.
    IfNoneMatchAny,
}

#[derive(Debug, thiserror::Error)]
pub enum ManagedError {
    #[error("Managed object type {0} is not configured")]
    UnknownType(String),
    #[error("Object {0} not found in {1}")]
    NotFound(String, String),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("Policy validation failed")]
    Policy(Vec<Failure>),
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Patch(#[from] PatchError),
    /// The object would break a size, depth or character limit.
    #[error(transparent)]
    Limit(#[from] crate::limits::LimitError),
    #[error("password hashing failed")]
    Hashing,
    #[error(transparent)]
    Repo(#[from] RepoError),
}

/// The managed object sets configured in `managed.json`, over one Postgres pool.
#[derive(Clone)]
pub struct ManagedObjects {
    pool: Pool,
    conf: Arc<ManagedConfig>,
}

impl ManagedObjects {
    pub fn new(pool: Pool, conf: Arc<ManagedConfig>) -> Self {
        Self { pool, conf }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub fn schema(&self, object_type: &str) -> Result<&ManagedObjectConfig, ManagedError> {
        self.conf
            .object(object_type)
            .ok_or_else(|| ManagedError::UnknownType(object_type.to_owned()))
    }

    pub async fn read(&self, object_type: &str, id: &str) -> Result<StoredObject, ManagedError> {
        self.schema(object_type)?;
        store::get(&self.pool, object_type, id)
            .await?
            .ok_or_else(|| not_found(object_type, id))
    }

    pub async fn query(&self, req: &QueryRequest<'_>) -> Result<QueryPage, ManagedError> {
        self.schema(req.object_type)?;
        Ok(query::query(&self.pool, req).await?)
    }

    /// `POST ?_action=create`: a new object, with the given id or a fresh UUID.
    pub async fn create(
        &self,
        object_type: &str,
        id: Option<String>,
        body: Map<String, Value>,
    ) -> Result<StoredObject, ManagedError> {
        let id = match id {
            Some(id) => id,
            None => crate::repo::new_id(),
        };
        let (object, _) = self
            .put(object_type, &id, body, Precondition::IfNoneMatchAny)
            .await?;
        Ok(object)
    }

    /// `PUT /{id}`: create or full replace under `pre`; returns the object and whether it was created.
    pub async fn put(
        &self,
        object_type: &str,
        id: &str,
        body: Map<String, Value>,
        pre: Precondition,
    ) -> Result<(StoredObject, bool), ManagedError> {
        let schema = self.schema(object_type)?;
        check_id(id)?;
        let body = strip_meta(body);
        let mut tx = repo::begin(&self.pool).await?;
        // A create-only write needs no read: the insert itself detects an existing id.
        let current = match pre {
            Precondition::IfNoneMatchAny => None,
            _ => store::get_for_update(&mut tx, object_type, id).await?,
        };
        match (&pre, &current) {
            (Precondition::IfNoneMatchAny, Some(_)) => return Err(exists(id)),
            (Precondition::IfMatch(_), None) => return Err(not_found(object_type, id)),
            (Precondition::IfMatch(Some(rev)), Some(cur)) => check_rev(cur, rev)?,
            _ => {}
        }
        let created = current.is_none();
        let object = write(&mut tx, schema, object_type, id, current, body).await?;
        repo::commit(tx).await?;
        Ok((object, created))
    }

    /// `PATCH /{id}`: applies the operations to the current object under `If-Match`.
    pub async fn patch(
        &self,
        object_type: &str,
        id: &str,
        operations: &[PatchOperation],
        if_match: Option<String>,
    ) -> Result<StoredObject, ManagedError> {
        let schema = self.schema(object_type)?;
        let mut tx = repo::begin(&self.pool).await?;
        let current = store::get_for_update(&mut tx, object_type, id)
            .await?
            .ok_or_else(|| not_found(object_type, id))?;
        if let Some(rev) = &if_match {
            check_rev(&current, rev)?;
        }
        let body = patch::apply(&current.body, operations)?;
        let object = write(&mut tx, schema, object_type, id, Some(current), body).await?;
        repo::commit(tx).await?;
        Ok(object)
    }

    /// `_action=triggerSyncCheck`: queues the object at its current revision for implicit sync
    /// (an outbox row, committed); the worker then pushes its whole mapped state.
    pub async fn trigger_sync(&self, object_type: &str, id: &str) -> Result<(), ManagedError> {
        self.schema(object_type)?;
        let mut tx = repo::begin(&self.pool).await?;
        if !outbox::enqueue_sync(&mut tx, object_type, id, None, None).await? {
            return Err(not_found(object_type, id));
        }
        repo::commit(tx).await?;
        Ok(())
    }

    /// `DELETE /{id}`: removes the object and returns it as it was.
    pub async fn delete(
        &self,
        object_type: &str,
        id: &str,
        if_match: Option<String>,
    ) -> Result<StoredObject, ManagedError> {
        let mut tx = repo::begin(&self.pool).await?;
        let deleted = self
            .delete_in(&mut tx, object_type, id, if_match.as_deref())
            .await?
            .ok_or_else(|| not_found(object_type, id))?;
        repo::commit(tx).await?;
        Ok(deleted)
    }

    // The `*_in` operations run inside the caller's transaction, through the same validation,
    // revision and outbox path as the REST operations above. Recon uses them to write a page
    // of objects, their outbox rows and their links in one transaction.

    /// Creates `id` with `body` (policies validated, outbox row written). Fails with a
    /// precondition error when the id exists, with a policy failure on a duplicate userName.
    pub async fn create_in(
        &self,
        tx: &mut Conn,
        object_type: &str,
        id: &str,
        body: Map<String, Value>,
    ) -> Result<StoredObject, ManagedError> {
        let schema = self.schema(object_type)?;
        check_id(id)?;
        write(tx, schema, object_type, id, None, strip_meta(body)).await
    }

    /// Creates several objects in the caller's transaction with the validation, revisions and
    /// outbox rows of [`Self::create_in`], but in two statements (objects, outbox rows) instead
    /// of two per object: recon's first run into an empty repository is mostly creates.
    /// Returns the objects in the order given. All or nothing: the first failing object fails
    /// the call, and a duplicate userName aborts the caller's transaction, so a caller that
    /// must isolate failures per object replays them one by one with [`Self::create_in`].
    pub async fn create_many_in(
        &self,
        tx: &mut Conn,
        object_type: &str,
        objects: Vec<(String, Map<String, Value>)>,
    ) -> Result<Vec<StoredObject>, ManagedError> {
        let schema = self.schema(object_type)?;
        let mut ids = Vec::with_capacity(objects.len());
        let mut bodies = Vec::with_capacity(objects.len());
        // Unique properties other than userName are checked by look-up, against the table and
        // (since none of the batch is stored yet) against the batch itself.
        let mut batch_values: std::collections::HashSet<(String, String)> =
            std::collections::HashSet::new();
        for (id, body) in objects {
            check_id(&id)?;
            let body = validate_new(tx, schema, object_type, &id, strip_meta(body)).await?;
            for (property, value) in
                policy::unique_properties(schema, &body).filter(|(p, _)| *p != "userName")
            {
                if !batch_values.insert((property.to_owned(), value.to_owned())) {
                    return Err(ManagedError::Policy(vec![policy::unique_failure(property)]));
                }
            }
            ids.push(id);
            bodies.push(body);
        }
        let revs = store::insert_many(tx, object_type, &ids, &bodies)
            .await
            .map_err(unique_to_policy)?;
        let mut stored = Vec::with_capacity(ids.len());
        for (id, body) in ids.into_iter().zip(bodies) {
            // A missing revision: the insert skipped an id that exists already.
            let rev = *revs.get(&id).ok_or_else(|| exists(&id))?;
            stored.push(StoredObject { id, rev, body });
        }
        let changes: Vec<NewChange<'_>> = stored
            .iter()
            .map(|o| NewChange {
                object_type,
                object_id: &o.id,
                rev: o.rev,
                operation: Operation::Create,
                changed: changed_fields(None, Some(&o.body)),
            })
            .collect();
        outbox::record_many(tx, &changes).await?;
        Ok(stored)
    }

    /// Sets the properties in `changes` on the current object (objects are merged key by key,
    /// so a mapped `/name/givenName` keeps `/name/sn`), reading it under a row lock first so a
    /// concurrent REST write is never overwritten blindly. `Ok(None)` when the object is gone.
    /// A merge that changes nothing writes nothing: same revision, no outbox row.
    pub async fn merge_in(
        &self,
        tx: &mut Conn,
        object_type: &str,
        id: &str,
        changes: &Map<String, Value>,
    ) -> Result<Option<Merged>, ManagedError> {
        let schema = self.schema(object_type)?;
        let Some(current) = store::get_for_update(tx, object_type, id).await? else {
            return Ok(None);
        };
        let before_rev = current.rev;
        let mut body = current.body.clone();
        merge(&mut body, changes);
        let object = write(tx, schema, object_type, id, Some(current), body).await?;
        Ok(Some(Merged {
            changed: object.rev != before_rev,
            object,
        }))
    }

    /// [`ManagedObjects::merge_in`] for a batch of distinct objects: read and locked in one
    /// query, merged and validated one by one, the changed ones written in one statement and
    /// their outbox rows in another. One result per item, in order (`None`: the object is
    /// gone). Any failure fails the batch; a caller that must know which object failed
    /// replays the items one by one. Repeated ids are merged one by one.
    pub async fn merge_many_in(
        &self,
        tx: &mut Conn,
        object_type: &str,
        items: &[(&str, &Map<String, Value>)],
    ) -> Result<Vec<Option<Merged>>, ManagedError> {
        let ids: Vec<&str> = items.iter().map(|(id, _)| *id).collect();
        let distinct: std::collections::HashSet<&str> = ids.iter().copied().collect();
        if distinct.len() != ids.len() {
            let mut out = Vec::with_capacity(items.len());
            for (id, changes) in items {
                out.push(self.merge_in(tx, object_type, id, changes).await?);
            }
            return Ok(out);
        }
        let schema = self.schema(object_type)?;
        let mut current: std::collections::HashMap<String, StoredObject> =
            store::get_many_for_update(tx, object_type, &ids)
                .await?
                .into_iter()
                .map(|o| (o.id.clone(), o))
                .collect();
        // Per item: the object as it was, and the body to write when it changes.
        type Planned = Option<(StoredObject, Option<Map<String, Value>>)>;
        let mut merged: Vec<Planned> = Vec::with_capacity(items.len());
        for (id, changes) in items {
            let Some(cur) = current.remove(*id) else {
                merged.push(None);
                continue;
            };
            let mut body = cur.body.clone();
            merge(&mut body, changes);
            let (mut body, unchanged_hashes) =
                validate(tx, schema, object_type, id, Some(&cur), body).await?;
            if cur.body == body {
                merged.push(Some((cur, None)));
                continue;
            }
            hash_new_values(schema, &mut body, &unchanged_hashes).await?;
            merged.push(Some((cur, Some(body))));
        }
        let (write_ids, write_bodies): (Vec<&str>, Vec<&Map<String, Value>>) = merged
            .iter()
            .flatten()
            .filter_map(|(cur, body)| Some((cur.id.as_str(), body.as_ref()?)))
            .unzip();
        let revs = store::update_many(tx, object_type, &write_ids, &write_bodies)
            .await
            .map_err(unique_to_policy)?;
        let changes: Vec<NewChange<'_>> = merged
            .iter()
            .flatten()
            .filter_map(|(cur, body)| {
                let body = body.as_ref()?;
                Some(NewChange {
                    object_type,
                    object_id: &cur.id,
                    rev: *revs.get(&cur.id)?,
                    operation: Operation::Update,
                    changed: changed_fields(Some(&cur.body), Some(body)),
                })
            })
            .collect();
        if changes.len() != write_ids.len() {
            // Locked above, so an update cannot miss; if it did, nothing of it may stand.
            return Err(ManagedError::Repo(RepoError::Config(
                "a locked object was not updated".into(),
            )));
        }
        outbox::record_many(tx, &changes).await?;
        drop(changes);
        Ok(merged
            .into_iter()
            .map(|m| {
                m.map(|(cur, body)| match body {
                    None => Merged {
                        object: cur,
                        changed: false,
                    },
                    Some(body) => Merged {
                        object: StoredObject {
                            rev: revs.get(&cur.id).copied().unwrap_or(cur.rev),
                            id: cur.id,
                            body,
                        },
                        changed: true,
                    },
                })
            })
            .collect())
    }

    /// Deletes `id` (with its outbox row) under an optional revision precondition; returns
    /// the object as it was, `Ok(None)` when it does not exist.
    pub async fn delete_in(
        &self,
        tx: &mut Conn,
        object_type: &str,
        id: &str,
        if_match: Option<&str>,
    ) -> Result<Option<StoredObject>, ManagedError> {
        self.schema(object_type)?;
        let Some(current) = store::get_for_update(tx, object_type, id).await? else {
            return Ok(None);
        };
        if let Some(rev) = if_match {
            check_rev(&current, rev)?;
        }
        let rev = store::delete(tx, object_type, id).await?;
        outbox::record(
            tx,
            &NewChange {
                object_type,
                object_id: id,
                rev,
                operation: Operation::Delete,
                changed: Vec::new(),
            },
        )
        .await?;
        Ok(Some(current))
    }
}

/// The outcome of [`ManagedObjects::merge_in`].
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    /// The object after the merge (the stored one, unchanged, when nothing changed).
    pub object: StoredObject,
    pub changed: bool,
}

/// The top-level fields that differ between two states of an object (all of `after`'s for a
/// create), in `after`'s order, then those removed.
fn changed_fields<'a>(
    before: Option<&'a Map<String, Value>>,
    after: Option<&'a Map<String, Value>>,
) -> Vec<&'a str> {
    let was = |k: &str| before.and_then(|b| b.get(k));
    let is_kept = |k: &str| after.is_some_and(|a| a.contains_key(k));
    let set_or_changed = after
        .into_iter()
        .flatten()
        .filter(|(k, v)| was(k) != Some(*v))
        .map(|(k, _)| k.as_str());
    let removed = before
        .into_iter()
        .flat_map(|b| b.keys())
        .filter(|k| !is_kept(k))
        .map(String::as_str);
    set_or_changed.chain(removed).collect()
}

/// Validates and stores `body` as the new state of the object, with its outbox row.
async fn write(
    tx: &mut Conn,
    schema: &ManagedObjectConfig,
    object_type: &str,
    id: &str,
    current: Option<StoredObject>,
    body: Map<String, Value>,
) -> Result<StoredObject, ManagedError> {
    let (mut body, unchanged_hashes) =
        validate(tx, schema, object_type, id, current.as_ref(), body).await?;
    let current = match current {
        Some(cur) if cur.body == body => return Ok(cur),
        other => other,
    };
    hash_new_values(schema, &mut body, &unchanged_hashes).await?;

    let (rev, operation) = match &current {
        None => {
            let rev = store::insert(tx, object_type, id, &body)
                .await
                .map_err(unique_to_policy)?
                .ok_or_else(|| exists(id))?;
            (rev, Operation::Create)
        }
        Some(_) => (
            store::update(tx, object_type, id, &body)
                .await
                .map_err(unique_to_policy)?,
            Operation::Update,
        ),
    };
    outbox::record(
        tx,
        &NewChange {
            object_type,
            object_id: id,
            rev,
            operation,
            changed: changed_fields(current.as_ref().map(|c| &c.body), Some(&body)),
        },
    )
    .await?;
    Ok(StoredObject {
        id: id.to_owned(),
        rev,
        body,
    })
}

/// What every write checks before storing `body` over `current`: bounds, policies, unique
/// look-ups. Returns the body with unchanged password hashes kept, and the properties whose
/// hash was kept (not to be hashed again).
async fn validate(
    tx: &mut Conn,
    schema: &ManagedObjectConfig,
    object_type: &str,
    id: &str,
    current: Option<&StoredObject>,
    mut body: Map<String, Value>,
) -> Result<(Map<String, Value>, Vec<String>), ManagedError> {
    // Whatever produced the body (a request, a patch, a recon), nothing oversized, too deep
    // or unstorable reaches the database.
    crate::limits::check_object(&body)?;
    let unchanged_hashes = keep_unchanged_hashes(schema, current, &mut body).await;
    check_policies(tx, schema, object_type, id, &body, &unchanged_hashes).await?;
    Ok((body, unchanged_hashes))
}

/// What [`write`] does before storing a new object (no current state): checks, then hashing.
/// Returns the body to store.
async fn validate_new(
    tx: &mut Conn,
    schema: &ManagedObjectConfig,
    object_type: &str,
    id: &str,
    body: Map<String, Value>,
) -> Result<Map<String, Value>, ManagedError> {
    let (mut body, unchanged_hashes) = validate(tx, schema, object_type, id, None, body).await?;
    hash_new_values(schema, &mut body, &unchanged_hashes).await?;
    Ok(body)
}

/// Policy validation, then (when it passes) the look-ups of unique properties.
async fn check_policies(
    tx: &mut Conn,
    schema: &ManagedObjectConfig,
    object_type: &str,
    id: &str,
    body: &Map<String, Value>,
    unchanged_hashes: &[String],
) -> Result<(), ManagedError> {
    let mut failures: Vec<Failure> = policy::validate(schema, body)
        .into_iter()
        .filter(|f| !unchanged_hashes.contains(&f.property))
        .collect();
    if failures.is_empty() {
        // userName has a unique index (see the migrations): the insert or update reports a
        // duplicate itself, so only other unique properties need a look-up first.
        for (property, value) in
            policy::unique_properties(schema, body).filter(|(p, _)| *p != "userName")
        {
            if store::value_taken(tx, object_type, property, value, Some(id)).await? {
                failures.push(policy::unique_failure(property));
            }
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(ManagedError::Policy(failures))
    }
}

/// A clear-text value equal to the stored hash's password keeps the stored hash, so
/// re-sending the same password is not a change. Returns the properties left as stored hashes.
async fn keep_unchanged_hashes(
    schema: &ManagedObjectConfig,
    current: Option<&StoredObject>,
    body: &mut Map<String, Value>,
) -> Vec<String> {
    let mut unchanged = Vec::new();
    for property in schema.properties.iter().filter(|p| p.hashed) {
        let Some(Value::String(new)) = body.get(&property.name) else {
            continue;
        };
        let stored = current
            .and_then(|c| c.body.get(&property.name))
            .and_then(Value::as_str);
        let same = match stored {
            Some(stored) if stored == new => true,
            Some(stored) if hashing::is_hash(stored) && !hashing::is_hash(new) => {
                let (clear, stored) = (new.clone(), stored.to_owned());
                tokio::task::spawn_blocking(move || hashing::verify(&clear, &stored))
                    .await
                    .unwrap_or(false)
            }
            _ => false,
        };
        if same {
            if let Some(stored) = stored {
                body.insert(property.name.clone(), Value::String(stored.to_owned()));
            }
            unchanged.push(property.name.clone());
        } else if hashing::is_hash(new) {
            // A pre-hashed value (an import) is stored as given; policies cannot see its clear text.
            unchanged.push(property.name.clone());
        }
    }
    unchanged
}

async fn hash_new_values(
    schema: &ManagedObjectConfig,
    body: &mut Map<String, Value>,
    unchanged: &[String],
) -> Result<(), ManagedError> {
    for property in schema.properties.iter().filter(|p| p.hashed) {
        if unchanged.contains(&property.name) {
            continue;
        }
        if let Some(Value::String(clear)) = body.get(&property.name) {
            let clear = clear.clone();
            let hashed = tokio::task::spawn_blocking(move || hashing::hash(&clear))
                .await
                .map_err(|_| ManagedError::Hashing)?
                .map_err(|_| ManagedError::Hashing)?;
            body.insert(property.name.clone(), Value::String(hashed));
        }
    }
    Ok(())
}

fn unique_to_policy(e: RepoError) -> ManagedError {
    match e {
        RepoError::Unique { constraint } if constraint == "managed_objects_user_name" => {
            ManagedError::Policy(vec![policy::unique_failure("userName")])
        }
        other => ManagedError::Repo(other),
    }
}

/// `_id` and `_rev` live in their own columns; a body's copies are ignored, as IDM does.
fn strip_meta(mut body: Map<String, Value>) -> Map<String, Value> {
    body.shift_remove("_id");
    body.shift_remove("_rev");
    body
}

fn check_id(id: &str) -> Result<(), ManagedError> {
    if id.is_empty() || id.len() > 255 || id.contains('/') || id.chars().any(char::is_control) {
        return Err(ManagedError::BadRequest(format!(
            "Invalid object id {id:?}: it must be 1 to 255 characters, without '/' or control characters"
        )));
    }
    Ok(())
}

fn check_rev(current: &StoredObject, expected: &str) -> Result<(), ManagedError> {
    if current.rev.to_string() == expected {
        Ok(())
    } else {
        Err(ManagedError::PreconditionFailed(format!(
            "Update rejected as current Object revision {} is different than expected by caller ({expected}), the object has changed since retrieval.",
            current.rev
        )))
    }
}

fn exists(id: &str) -> ManagedError {
    ManagedError::PreconditionFailed(format!(
        "Create rejected as Object with same ID already exists. {id}"
    ))
}

fn not_found(object_type: &str, id: &str) -> ManagedError {
    ManagedError::NotFound(id.to_owned(), format!("managed/{object_type}"))
}

#[cfg(test)]
mod tests {
    use super::changed_fields;
    use serde_json::{Map, Value, json};

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn changed_fields_name_what_was_set_changed_or_removed() {
        let before = map(json!({"sn": "A", "mail": "m", "gone": 1}));
        let after = map(json!({"sn": "B", "mail": "m", "new": true}));
        assert_eq!(
            changed_fields(Some(&before), Some(&after)),
            ["sn", "new", "gone"]
        );
        assert_eq!(changed_fields(None, Some(&after)), ["sn", "mail", "new"]);
        assert!(changed_fields(Some(&after), Some(&after)).is_empty());
    }
}
