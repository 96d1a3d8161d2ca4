//! `_queryFilter` over any relation shaped like `managed_objects`: columns `id text`,
//! `rev bigint`, `body jsonb`. The filter compiler ([`super::filter_sql`]) writes only those
//! three column names, so the link table (seen through a projection) and the recon audit
//! table answer the same filters as managed objects, with no second compiler.

use serde_json::{Map, Value};
use sqlx::types::Json;
use sqlx::{PgExecutor, Postgres, QueryBuilder};

use super::RepoError;
use super::filter_sql::push_filter;
use crate::filter::Filter;

/// A row as fetched: id, rev, body.
pub(crate) type RawRow = (String, i64, Json<Map<String, Value>>);

/// One row of such a relation.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: String,
    pub rev: i64,
    pub body: Map<String, Value>,
}

/// The rows of `relation` matching `filter`, in id order, after `after_id`, at most
/// `limit`. `relation` is SQL text written by this crate (a table name or a parenthesized
/// projection with an alias), never user input.
pub async fn query<'e>(
    db: impl PgExecutor<'e>,
    relation: &'static str,
    filter: &Filter,
    after_id: Option<&str>,
    limit: i64,
) -> Result<Vec<Row>, RepoError> {
    let mut qb = QueryBuilder::<Postgres>::new("SELECT id, rev, body FROM ");
    qb.push(relation);
    qb.push(" WHERE (");
    push_filter(&mut qb, filter);
    qb.push(")");
    if let Some(after) = after_id {
        qb.push(" AND id > ");
        qb.push_bind(after.to_owned());
    }
    qb.push(" ORDER BY id LIMIT ");
    qb.push_bind(limit);
    let rows: Vec<RawRow> = qb.build_query_as().fetch_all(db).await?;
    Ok(rows
        .into_iter()
        .map(|(id, rev, Json(body))| Row { id, rev, body })
        .collect())
}
