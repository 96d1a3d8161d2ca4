//! Links (IDM's `repo/link`): which source object a target object belongs to, per mapping
//! (`link_type`) and link qualifier, and the managed snapshot last known to be in step with
//! the other side (delta sync: ARCHITECTURE.md invariant 4).
//!
//! # For the outbound worker
//!
//! The outbound mapping reuses the inbound mapping's links reversed: the managed user is
//! `second_id`, the Salesforce user `first_id`. Read the link with [`by_second_id`], compute
//! the delta between [`Link::synced_snapshot`] and the current managed user
//! (`Mapping::delta`), and after a successful Salesforce write call [`record_synced`] with the
//! managed body and revision that were sent: it only ever moves the snapshot forward in
//! revision order, so an older event delivered late cannot step it back. A new Salesforce
//! user gets its link from [`insert`] with the snapshot in the same call.

use std::collections::HashMap;

use serde_json::{Map, Value};
use sqlx::AssertSqlSafe;
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor};

use super::RepoError;
use super::relation_query::{self, Row};
use crate::filter::Filter;

/// One link.
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    pub id: String,
    pub rev: i64,
    pub link_type: String,
    pub link_qualifier: String,
    /// The defining mapping's source id (for the sample: the Salesforce user id).
    pub first_id: String,
    /// The defining mapping's target id (for the sample: the managed user id).
    pub second_id: String,
    /// The managed object last known to be in step with the other side; `None`: unknown.
    pub synced_snapshot: Option<Map<String, Value>>,
    /// The managed revision of that snapshot.
    pub synced_rev: Option<i64>,
    /// Recon's digest of the source record in step with the snapshot (see the migration).
    pub source_digest: Option<Vec<u8>>,
}

/// A link seen from one object: its type and both ids.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LinkEnds {
    pub link_type: String,
    pub first_id: String,
    pub second_id: String,
}

/// Every link that has `id` on either side, by link type.
pub async fn of_object<'e>(db: impl PgExecutor<'e>, id: &str) -> Result<Vec<LinkEnds>, RepoError> {
    Ok(sqlx::query_as(
        "SELECT link_type, first_id, second_id FROM links WHERE second_id = $1 OR first_id = $1 ORDER BY link_type",
    )
    .bind(id)
    .fetch_all(db)
    .await?)
}

/// Which id of a link a look-up is by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    First,
    Second,
}

impl Side {
    fn column(self) -> &'static str {
        match self {
            Side::First => "first_id",
            Side::Second => "second_id",
        }
    }
}

/// A snapshot to record with a link change.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot<'a> {
    pub body: &'a Map<String, Value>,
    pub rev: i64,
    /// Recon's digest of the source record this snapshot is in step with, if recon wrote it.
    pub source_digest: Option<&'a [u8]>,
}

/// A link to create.
#[derive(Debug, Clone)]
pub struct NewLink<'a> {
    pub first_id: &'a str,
    pub second_id: &'a str,
    pub snapshot: Option<Snapshot<'a>>,
}

type LinkRow = (
    String,
    i64,
    String,
    String,
    String,
    String,
    Option<Json<Map<String, Value>>>,
    Option<i64>,
    Option<Vec<u8>>,
);

const COLUMNS: &str = "id, rev, link_type, link_qualifier, first_id, second_id, synced_snapshot, synced_rev, source_digest";

fn from_row(row: LinkRow) -> Link {
    let (id, rev, link_type, link_qualifier, first_id, second_id, snapshot, synced_rev, digest) =
        row;
    Link {
        id,
        rev,
        link_type,
        link_qualifier,
        first_id,
        second_id,
        synced_snapshot: snapshot.map(|Json(s)| s),
        synced_rev,
        source_digest: digest,
    }
}

/// The links of `link_type`/`qualifier` whose `side` id is one of `ids` (one query for a
/// whole page).
pub async fn by_ids<'e>(
    db: impl PgExecutor<'e>,
    link_type: &str,
    qualifier: &str,
    side: Side,
    ids: &[String],
) -> Result<Vec<Link>, RepoError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT {COLUMNS} FROM links WHERE link_type = $1 AND link_qualifier = $2 AND {} = ANY($3)",
        side.column()
    );
    let rows: Vec<LinkRow> = sqlx::query_as(AssertSqlSafe(sql.as_str()))
        .bind(link_type)
        .bind(qualifier)
        .bind(ids)
        .fetch_all(db)
        .await?;
    Ok(rows.into_iter().map(from_row).collect())
}

/// As [`by_ids`], each link keyed by its id on `side` (at most one link per id and qualifier).
pub async fn by_ids_keyed<'e>(
    db: impl PgExecutor<'e>,
    link_type: &str,
    qualifier: &str,
    side: Side,
    ids: &[String],
) -> Result<HashMap<String, Link>, RepoError> {
    Ok(by_ids(db, link_type, qualifier, side, ids)
        .await?
        .into_iter()
        .map(|l| {
            let key = match side {
                Side::First => l.first_id.clone(),
                Side::Second => l.second_id.clone(),
            };
            (key, l)
        })
        .collect())
}

/// The link of a target (for the outbound mapping: of a managed user).
pub async fn by_second_id<'e>(
    db: impl PgExecutor<'e>,
    link_type: &str,
    qualifier: &str,
    second_id: &str,
) -> Result<Option<Link>, RepoError> {
    let mut links = by_ids(
        db,
        link_type,
        qualifier,
        Side::Second,
        &[second_id.to_owned()],
    )
    .await?;
    Ok(links.pop())
}

/// The link of a source (for the outbound mapping: of a Salesforce user).
pub async fn by_first_id<'e>(
    db: impl PgExecutor<'e>,
    link_type: &str,
    qualifier: &str,
    first_id: &str,
) -> Result<Option<Link>, RepoError> {
    let mut links = by_ids(
        db,
        link_type,
        qualifier,
        Side::First,
        &[first_id.to_owned()],
    )
    .await?;
    Ok(links.pop())
}

/// Creates one link; a link that already exists for either id is a
/// [`RepoError::Unique`] (`links_first` or `links_second`).
pub async fn insert(
    tx: &mut PgConnection,
    link_type: &str,
    qualifier: &str,
    link: &NewLink<'_>,
) -> Result<String, RepoError> {
    insert_many(tx, link_type, qualifier, std::slice::from_ref(link))
        .await?
        .pop()
        .ok_or_else(|| RepoError::Config("link insert returned no id".into()))
}

/// Creates links in one statement; returns their ids in order.
pub async fn insert_many(
    tx: &mut PgConnection,
    link_type: &str,
    qualifier: &str,
    links: &[NewLink<'_>],
) -> Result<Vec<String>, RepoError> {
    if links.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = links.iter().map(|_| super::new_id()).collect();
    let firsts: Vec<&str> = links.iter().map(|l| l.first_id).collect();
    let seconds: Vec<&str> = links.iter().map(|l| l.second_id).collect();
    let snapshots: Vec<Option<Json<&Map<String, Value>>>> = links
        .iter()
        .map(|l| l.snapshot.map(|s| Json(s.body)))
        .collect();
    let revs: Vec<Option<i64>> = links.iter().map(|l| l.snapshot.map(|s| s.rev)).collect();
    let digests: Vec<Option<&[u8]>> = links
        .iter()
        .map(|l| l.snapshot.and_then(|s| s.source_digest))
        .collect();
    sqlx::query(
        "INSERT INTO links (id, link_type, link_qualifier, first_id, second_id, synced_snapshot, synced_rev, source_digest)
         SELECT u.id, $1, $2, u.first_id, u.second_id, u.snapshot, u.rev, u.digest
         FROM unnest($3::text[], $4::text[], $5::text[], $6::jsonb[], $7::int8[], $8::bytea[])
              AS u(id, first_id, second_id, snapshot, rev, digest)",
    )
    .bind(link_type)
    .bind(qualifier)
    .bind(&ids)
    .bind(&firsts)
    .bind(&seconds)
    .bind(&snapshots)
    .bind(&revs)
    .bind(&digests)
    .execute(&mut *tx)
    .await
    .map_err(RepoError::from_write)?;
    Ok(ids)
}

/// Points a link at another target (recon's MISSING → CREATE), with the new snapshot.
pub async fn retarget(
    tx: &mut PgConnection,
    link_id: &str,
    second_id: &str,
    snapshot: Option<Snapshot<'_>>,
) -> Result<(), RepoError> {
    sqlx::query(
        "UPDATE links SET second_id = $2, synced_snapshot = $3, synced_rev = $4,
                          source_digest = $5, rev = rev + 1, updated_at = now()
         WHERE id = $1",
    )
    .bind(link_id)
    .bind(second_id)
    .bind(snapshot.map(|s| Json(s.body)))
    .bind(snapshot.map(|s| s.rev))
    .bind(snapshot.and_then(|s| s.source_digest))
    .execute(&mut *tx)
    .await
    .map_err(RepoError::from_write)?;
    Ok(())
}

/// Sets the snapshots of several links in one statement (recon: the managed objects a page
/// brought in step). Unconditional: recon writes it in the transaction that holds the
/// managed object's row lock, so it is the latest state.
pub async fn set_snapshots(
    tx: &mut PgConnection,
    updates: &[(String, Snapshot<'_>)],
) -> Result<(), RepoError> {
    if updates.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = updates.iter().map(|(id, _)| id.as_str()).collect();
    let bodies: Vec<Json<&Map<String, Value>>> =
        updates.iter().map(|(_, s)| Json(s.body)).collect();
    let revs: Vec<i64> = updates.iter().map(|(_, s)| s.rev).collect();
    let digests: Vec<Option<&[u8]>> = updates.iter().map(|(_, s)| s.source_digest).collect();
    sqlx::query(
        "UPDATE links l SET synced_snapshot = u.snapshot, synced_rev = u.rev,
                            source_digest = u.digest, rev = l.rev + 1, updated_at = now()
         FROM unnest($1::text[], $2::jsonb[], $3::int8[], $4::bytea[]) AS u(id, snapshot, rev, digest)
         WHERE l.id = u.id",
    )
    .bind(&ids)
    .bind(&bodies)
    .bind(&revs)
    .bind(&digests)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Records recon's source digests on links whose snapshot is already in step (an unchanged
/// object seen for the first time since the snapshot was written). Not a change of the link.
pub async fn set_digests(
    tx: &mut PgConnection,
    updates: &[(String, [u8; 32])],
) -> Result<(), RepoError> {
    if updates.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = updates.iter().map(|(id, _)| id.as_str()).collect();
    let digests: Vec<&[u8]> = updates.iter().map(|(_, d)| d.as_slice()).collect();
    sqlx::query(
        "UPDATE links l SET source_digest = u.digest
         FROM unnest($1::text[], $2::bytea[]) AS u(id, digest)
         WHERE l.id = u.id",
    )
    .bind(&ids)
    .bind(&digests)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Recon's fast path: of the page's `(source id, digest)` pairs, the links whose stored
/// digest matches and whose managed object is still at the snapshot's revision. Returns
/// `(first_id, second_id)`; nothing about these objects changed since recon last saw them.
/// One statement, two index probes per source (see the notes in `repo`).
pub async fn unchanged_since_digest<'e>(
    db: impl PgExecutor<'e>,
    link_type: &str,
    qualifier: &str,
    object_type: &str,
    sources: &[(&str, &[u8; 32])],
) -> Result<Vec<(String, String)>, RepoError> {
    if sources.is_empty() {
        return Ok(Vec::new());
    }
    let (ids, digests): (Vec<&str>, Vec<&[u8]>) =
        sources.iter().map(|(id, d)| (*id, d.as_slice())).unzip();
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT l.first_id, l.second_id FROM unnest($3::text[], $4::bytea[]) AS s(id, digest)
         CROSS JOIN LATERAL (SELECT first_id, second_id, synced_rev FROM links
                             WHERE link_type = $1 AND link_qualifier = $2 AND first_id = s.id
                               AND source_digest = s.digest LIMIT 1) l
         CROSS JOIN LATERAL (SELECT 1 FROM managed_objects
                             WHERE object_type = $5 AND id = l.second_id AND rev = l.synced_rev
                             LIMIT 1) m",
    )
    .bind(link_type)
    .bind(qualifier)
    .bind(&ids)
    .bind(&digests)
    .bind(object_type)
    .fetch_all(db)
    .await?;
    Ok(rows)
}

/// Recon's unchanged check made once per run instead of once per page: every link of
/// `link_type` that holds a source digest and whose managed object is still at the snapshot's
/// revision, handed to `f` as `(first_id, second_id, digest)` while the rows stream in (one
/// pass over both tables; nothing is held here). Returns how many.
pub async fn for_each_in_step(
    pool: &sqlx::PgPool,
    link_type: &str,
    qualifier: &str,
    object_type: &str,
    mut f: impl FnMut(&str, &str, &[u8]),
) -> Result<u64, RepoError> {
    use futures_util::TryStreamExt;
    let mut rows = sqlx::query_as::<_, (String, String, Vec<u8>)>(
        "SELECT l.first_id, l.second_id, l.source_digest FROM links l
         JOIN managed_objects m ON m.object_type = $3 AND m.id = l.second_id AND m.rev = l.synced_rev
         WHERE l.link_type = $1 AND l.link_qualifier = $2 AND l.source_digest IS NOT NULL",
    )
    .bind(link_type)
    .bind(qualifier)
    .bind(object_type)
    .fetch(pool);
    let mut n = 0;
    while let Some((first, second, digest)) = rows.try_next().await? {
        f(&first, &second, &digest);
        n += 1;
    }
    Ok(n)
}

/// One link now in step: its id, the managed object's body and revision.
pub type Synced<'a> = (String, &'a Map<String, Value>, i64);

/// The outbound worker, after a batch's successful writes: records, per link, that the
/// managed object at `rev` (`body`) is now in step, in one statement. Moves forward only: a
/// snapshot of a later revision already recorded is kept. Returns how many were recorded.
pub async fn record_synced<'e>(
    db: impl PgExecutor<'e>,
    synced: &[Synced<'_>],
) -> Result<u64, RepoError> {
    if synced.is_empty() {
        return Ok(0);
    }
    let ids: Vec<&str> = synced.iter().map(|(id, _, _)| id.as_str()).collect();
    let bodies: Vec<Json<&Map<String, Value>>> = synced.iter().map(|(_, b, _)| Json(*b)).collect();
    let revs: Vec<i64> = synced.iter().map(|(_, _, r)| *r).collect();
    let done = sqlx::query(
        "UPDATE links l SET synced_snapshot = v.body, synced_rev = v.rev, source_digest = NULL,
                            rev = l.rev + 1, updated_at = now()
         FROM unnest($1::text[], $2::jsonb[], $3::bigint[]) AS v(id, body, rev)
         WHERE l.id = v.id AND (l.synced_rev IS NULL OR l.synced_rev < v.rev)",
    )
    .bind(ids)
    .bind(bodies)
    .bind(revs)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Deletes links by id.
pub async fn delete_many(tx: &mut PgConnection, ids: &[String]) -> Result<(), RepoError> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query("DELETE FROM links WHERE id = ANY($1)")
        .bind(ids)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Deletes the link of a target (recon's DELETE: the managed object is gone).
pub async fn delete_by_second_id(
    tx: &mut PgConnection,
    link_type: &str,
    qualifier: &str,
    second_id: &str,
) -> Result<u64, RepoError> {
    let done = sqlx::query(
        "DELETE FROM links WHERE link_type = $1 AND link_qualifier = $2 AND second_id = $3",
    )
    .bind(link_type)
    .bind(qualifier)
    .bind(second_id)
    .execute(&mut *tx)
    .await?;
    Ok(done.rows_affected())
}

/// Number of links of a type (the recon summary's `links.existing.total`).
pub async fn count<'e>(db: impl PgExecutor<'e>, link_type: &str) -> Result<i64, RepoError> {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM links WHERE link_type = $1")
        .bind(link_type)
        .fetch_one(db)
        .await?;
    Ok(n)
}

/// Links as `repo/link` shows them (`linkType`, `linkQualifier`, `firstId`, `secondId`),
/// filtered with IDM's query filter, in id order.
pub async fn query<'e>(
    db: impl PgExecutor<'e>,
    filter: &Filter,
    after_id: Option<&str>,
    limit: i64,
) -> Result<Vec<Row>, RepoError> {
    relation_query::query(
        db,
        "(SELECT id, rev, jsonb_build_object('linkType', link_type, 'linkQualifier', link_qualifier,
                 'firstId', first_id, 'secondId', second_id) AS body FROM links) AS link",
        filter,
        after_id,
        limit,
    )
    .await
}

/// Where a managed object stands against its link (the dead-letter reader's question: is it
/// still behind?).
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct SyncState {
    /// The object's current revision; `None`: the object is gone.
    pub rev: Option<i64>,
    /// The revision of the link's snapshot; `None`: no link, or a link with no snapshot.
    pub synced_rev: Option<i64>,
    /// The link's other side (`first_id`); `None`: no link.
    pub first_id: Option<String>,
}

/// The current revision of a managed object and what its link of `link_type` last synced,
/// in one statement; all `None` when neither exists.
pub async fn sync_state<'e>(
    db: impl PgExecutor<'e>,
    object_type: &str,
    object_id: &str,
    link_type: &str,
) -> Result<SyncState, RepoError> {
    let state: Option<SyncState> = sqlx::query_as(
        "SELECT m.rev, l.synced_rev, l.first_id FROM (SELECT 1) one
         LEFT JOIN managed_objects m ON m.object_type = $1 AND m.id = $2
         LEFT JOIN links l ON l.link_type = $3 AND l.second_id = $2",
    )
    .bind(object_type)
    .bind(object_id)
    .bind(link_type)
    .fetch_optional(db)
    .await?;
    Ok(state.unwrap_or_default())
}
