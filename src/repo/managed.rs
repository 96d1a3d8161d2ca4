//! Managed objects in the `managed_objects` table. Writes take a connection inside the
//! caller's transaction, so the object and its outbox row commit together.

use serde_json::{Map, Value};
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor};

use super::RepoError;

/// A managed object as stored: its properties without `_id` and `_rev`.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredObject {
    pub id: String,
    pub rev: i64,
    pub body: Map<String, Value>,
}

impl StoredObject {
    /// The whole object as IDM shows it to scripts: `_id`, `_rev`, then its properties.
    pub fn to_value(&self) -> Value {
        let mut out = Map::with_capacity(self.body.len() + 2);
        out.insert("_id".into(), Value::from(self.id.clone()));
        out.insert("_rev".into(), Value::from(self.rev.to_string()));
        for (k, v) in &self.body {
            out.insert(k.clone(), v.clone());
        }
        Value::Object(out)
    }
}

type Row = (String, i64, Json<Map<String, Value>>);

fn from_row((id, rev, Json(body)): Row) -> StoredObject {
    StoredObject { id, rev, body }
}

/// Reads one object.
pub async fn get<'e>(
    db: impl PgExecutor<'e>,
    object_type: &str,
    id: &str,
) -> Result<Option<StoredObject>, RepoError> {
    let row: Option<Row> = sqlx::query_as(
        "SELECT id, rev, body FROM managed_objects WHERE object_type = $1 AND id = $2",
    )
    .bind(object_type)
    .bind(id)
    .fetch_optional(db)
    .await?;
    Ok(row.map(from_row))
}

/// Reads one object and locks it until the transaction ends, so that a read-check-write
/// sequence (revision preconditions, patches) cannot interleave with another writer.
pub async fn get_for_update(
    tx: &mut PgConnection,
    object_type: &str,
    id: &str,
) -> Result<Option<StoredObject>, RepoError> {
    let row: Option<Row> = sqlx::query_as(
        "SELECT id, rev, body FROM managed_objects WHERE object_type = $1 AND id = $2 FOR UPDATE",
    )
    .bind(object_type)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    Ok(row.map(from_row))
}

/// [`get_for_update`] for a batch in one query: the objects among `ids` that exist, locked in
/// id order (so two batches that share objects wait for each other instead of deadlocking).
pub async fn get_many_for_update(
    tx: &mut PgConnection,
    object_type: &str,
    ids: &[&str],
) -> Result<Vec<StoredObject>, RepoError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, rev, body FROM managed_objects WHERE object_type = $1 AND id = ANY($2)
         ORDER BY id FOR UPDATE",
    )
    .bind(object_type)
    .bind(ids)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows.into_iter().map(from_row).collect())
}

/// Reads the objects of `object_type` among `ids` (one query for a batch); ids that do not
/// exist are left out.
pub async fn by_ids<'e>(
    db: impl PgExecutor<'e>,
    object_type: &str,
    ids: &[String],
) -> Result<Vec<StoredObject>, RepoError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, rev, body FROM managed_objects WHERE object_type = $1 AND id = ANY($2)",
    )
    .bind(object_type)
    .bind(ids)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(from_row).collect())
}

/// Inserts a new object with a fresh revision; `None` when the id is taken.
pub async fn insert(
    tx: &mut PgConnection,
    object_type: &str,
    id: &str,
    body: &Map<String, Value>,
) -> Result<Option<i64>, RepoError> {
    let rev: Option<i64> = sqlx::query_scalar(
        "INSERT INTO managed_objects (object_type, id, rev, body)
         VALUES ($1, $2, nextval('managed_object_rev_seq'), $3)
         ON CONFLICT (object_type, id) DO NOTHING
         RETURNING rev",
    )
    .bind(object_type)
    .bind(id)
    .bind(Json(body))
    .fetch_optional(&mut *tx)
    .await
    .map_err(RepoError::from_write)?;
    Ok(rev)
}

/// Inserts new objects in one statement, each with a fresh revision; returns the revision
/// of each id inserted (an id that is taken is skipped, so absent from the map).
pub async fn insert_many(
    tx: &mut PgConnection,
    object_type: &str,
    ids: &[String],
    bodies: &[Map<String, Value>],
) -> Result<std::collections::HashMap<String, i64>, RepoError> {
    if ids.is_empty() {
        return Ok(std::collections::HashMap::new());
    }
    let bodies: Vec<Json<&Map<String, Value>>> = bodies.iter().map(Json).collect();
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "INSERT INTO managed_objects (object_type, id, rev, body)
         SELECT $1, u.id, nextval('managed_object_rev_seq'), u.body
         FROM unnest($2::text[], $3::jsonb[]) WITH ORDINALITY AS u(id, body, ord)
         ORDER BY u.ord
         ON CONFLICT (object_type, id) DO NOTHING
         RETURNING id, rev",
    )
    .bind(object_type)
    .bind(ids)
    .bind(&bodies)
    .fetch_all(&mut *tx)
    .await
    .map_err(RepoError::from_write)?;
    Ok(rows.into_iter().collect())
}

/// [`update`] for a batch in one statement; returns the new revision of each id updated.
pub async fn update_many(
    tx: &mut PgConnection,
    object_type: &str,
    ids: &[&str],
    bodies: &[&Map<String, Value>],
) -> Result<std::collections::HashMap<String, i64>, RepoError> {
    if ids.is_empty() {
        return Ok(std::collections::HashMap::new());
    }
    let bodies: Vec<Json<&Map<String, Value>>> = bodies.iter().map(|b| Json(*b)).collect();
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "UPDATE managed_objects m
         SET body = u.body, rev = nextval('managed_object_rev_seq'), updated_at = now()
         FROM unnest($2::text[], $3::jsonb[]) AS u(id, body)
         WHERE m.object_type = $1 AND m.id = u.id
         RETURNING m.id, m.rev",
    )
    .bind(object_type)
    .bind(ids)
    .bind(&bodies)
    .fetch_all(&mut *tx)
    .await
    .map_err(RepoError::from_write)?;
    Ok(rows.into_iter().collect())
}

/// Replaces an existing object's properties; returns the new revision.
pub async fn update(
    tx: &mut PgConnection,
    object_type: &str,
    id: &str,
    body: &Map<String, Value>,
) -> Result<i64, RepoError> {
    let rev: i64 = sqlx::query_scalar(
        "UPDATE managed_objects
         SET body = $3, rev = nextval('managed_object_rev_seq'), updated_at = now()
         WHERE object_type = $1 AND id = $2
         RETURNING rev",
    )
    .bind(object_type)
    .bind(id)
    .bind(Json(body))
    .fetch_one(&mut *tx)
    .await
    .map_err(RepoError::from_write)?;
    Ok(rev)
}

/// Deletes an object; returns a fresh revision that stands for the deletion in the outbox.
pub async fn delete(tx: &mut PgConnection, object_type: &str, id: &str) -> Result<i64, RepoError> {
    let rev: i64 = sqlx::query_scalar(
        "WITH gone AS (DELETE FROM managed_objects WHERE object_type = $1 AND id = $2)
         SELECT nextval('managed_object_rev_seq')",
    )
    .bind(object_type)
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    Ok(rev)
}

/// Whether an object other than `except_id` has `property == value` (for `unique` policies).
/// Uses the same filter compiler as queries, so indexed properties are looked up by index.
pub async fn value_taken(
    tx: &mut PgConnection,
    object_type: &str,
    property: &str,
    value: &str,
    except_id: Option<&str>,
) -> Result<bool, RepoError> {
    use crate::filter::{CompareOp, Filter, Literal, Pointer};
    let filter = Filter::Compare {
        field: Pointer::parse(property).map_err(|e| RepoError::Config(e.to_string()))?,
        op: CompareOp::Eq,
        value: Literal::String(value.to_owned()),
    };
    let mut qb = sqlx::QueryBuilder::new(
        "SELECT EXISTS (SELECT 1 FROM managed_objects WHERE object_type = ",
    );
    qb.push_bind(object_type);
    qb.push(" AND id IS DISTINCT FROM ");
    qb.push_bind(except_id);
    qb.push(" AND ");
    super::filter_sql::push_filter(&mut qb, &filter);
    qb.push(")");
    let taken: bool = qb.build_query_scalar().fetch_one(&mut *tx).await?;
    Ok(taken)
}
