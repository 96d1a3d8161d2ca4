//! Queries over managed objects: a compiled filter, sort keys, and keyset paging
//! (a page boundary is the last row's sort values, so inserts between pages neither
//! repeat nor skip rows that were there before).

use serde_json::{Map, Value};
use sqlx::types::Json;
use sqlx::{PgPool, Postgres, QueryBuilder};

use super::RepoError;
use super::filter_sql::{push_filter, push_json_field};
use super::managed::StoredObject;
use crate::filter::{Filter, Pointer};

#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    pub field: Pointer,
    pub ascending: bool,
}

/// Where the previous page ended: the sort values of its last row, then its id.
#[derive(Debug, Clone, PartialEq)]
pub struct Keyset {
    pub values: Vec<Value>,
    pub id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotalPolicy {
    None,
    Exact,
    Estimate,
}

#[derive(Debug)]
pub struct QueryRequest<'a> {
    pub object_type: &'a str,
    pub filter: &'a Filter,
    pub sort: &'a [SortKey],
    /// `None`: every result in one answer.
    pub page_size: Option<u32>,
    pub after: Option<&'a Keyset>,
    pub offset: u64,
    pub total: TotalPolicy,
}

#[derive(Debug)]
pub struct QueryPage {
    pub rows: Vec<StoredObject>,
    /// Set when more rows follow this page.
    pub next: Option<Keyset>,
    /// Total matches (exact or estimated), when asked for.
    pub total: Option<i64>,
}

pub async fn query(pool: &PgPool, req: &QueryRequest<'_>) -> Result<QueryPage, RepoError> {
    let mut qb = QueryBuilder::<Postgres>::new("SELECT id, rev, body");
    for key in req.sort {
        qb.push(", ");
        push_sort_expr(&mut qb, &key.field);
    }
    push_from_where(&mut qb, req.object_type, req.filter);
    if let Some(after) = req.after {
        qb.push(" AND ");
        push_keyset(&mut qb, req.sort, after);
    }
    qb.push(" ORDER BY ");
    for key in req.sort {
        push_sort_expr(&mut qb, &key.field);
        qb.push(if key.ascending { " ASC, " } else { " DESC, " });
    }
    qb.push("id ASC");
    if let Some(size) = req.page_size {
        qb.push(" LIMIT ");
        qb.push_bind(i64::from(size) + 1);
    }
    if req.offset > 0 {
        qb.push(" OFFSET ");
        qb.push_bind(i64::try_from(req.offset).unwrap_or(i64::MAX));
    }

    let mut rows = Vec::new();
    let mut sort_values = Vec::new();
    for row in qb.build().fetch_all(pool).await? {
        use sqlx::Row;
        let id: String = row.try_get(0)?;
        let rev: i64 = row.try_get(1)?;
        let Json(body): Json<Map<String, Value>> = row.try_get(2)?;
        let mut values = Vec::with_capacity(req.sort.len());
        for i in 0..req.sort.len() {
            let Json(v): Json<Value> = row.try_get(3 + i)?;
            values.push(v);
        }
        rows.push(StoredObject { id, rev, body });
        sort_values.push(values);
    }

    let mut next = None;
    if let Some(size) = req.page_size {
        let size = size as usize;
        if rows.len() > size {
            rows.truncate(size);
            sort_values.truncate(size);
            if let (Some(last), Some(values)) = (rows.last(), sort_values.pop()) {
                next = Some(Keyset {
                    values,
                    id: last.id.clone(),
                });
            }
        }
    }
    let total = match req.total {
        TotalPolicy::None => None,
        TotalPolicy::Exact => Some(count(pool, req).await?),
        TotalPolicy::Estimate => Some(estimate(pool, req).await?),
    };
    Ok(QueryPage { rows, next, total })
}

fn push_from_where(qb: &mut QueryBuilder<Postgres>, object_type: &str, filter: &Filter) {
    qb.push(" FROM managed_objects WHERE object_type = ");
    qb.push_bind(object_type.to_owned());
    qb.push(" AND (");
    push_filter(qb, filter);
    qb.push(")");
}

/// A missing property sorts as JSON null, so every row has a comparable sort value.
fn push_sort_expr(qb: &mut QueryBuilder<Postgres>, field: &Pointer) {
    qb.push("COALESCE(");
    push_json_field(qb, field);
    qb.push(", 'null'::jsonb)");
}

/// `(k1 > v1) OR (k1 = v1 AND k2 < v2) OR … OR (k1 = v1 AND … AND id > last_id)`,
/// with `<` for descending keys.
fn push_keyset(qb: &mut QueryBuilder<Postgres>, sort: &[SortKey], after: &Keyset) {
    qb.push("(");
    for level in 0..=sort.len() {
        if level > 0 {
            qb.push(" OR ");
        }
        qb.push("(");
        for (key, value) in sort.iter().zip(&after.values).take(level) {
            push_sort_expr(qb, &key.field);
            qb.push(" = ");
            qb.push_bind(Json(value.clone()));
            qb.push(" AND ");
        }
        match sort.get(level) {
            Some(key) => {
                push_sort_expr(qb, &key.field);
                qb.push(if key.ascending { " > " } else { " < " });
                qb.push_bind(Json(
                    after.values.get(level).cloned().unwrap_or(Value::Null),
                ));
            }
            None => {
                qb.push("id > ");
                qb.push_bind(after.id.clone());
            }
        }
        qb.push(")");
    }
    qb.push(")");
}

async fn count(pool: &PgPool, req: &QueryRequest<'_>) -> Result<i64, RepoError> {
    let mut qb = QueryBuilder::<Postgres>::new("SELECT count(*)");
    push_from_where(&mut qb, req.object_type, req.filter);
    Ok(qb.build_query_scalar().fetch_one(pool).await?)
}

/// The planner's row estimate: cheap at any table size, as `ESTIMATE` promises.
async fn estimate(pool: &PgPool, req: &QueryRequest<'_>) -> Result<i64, RepoError> {
    let mut qb = QueryBuilder::<Postgres>::new("EXPLAIN (FORMAT JSON) SELECT 1");
    push_from_where(&mut qb, req.object_type, req.filter);
    let Json(plan): Json<Value> = qb.build_query_scalar().fetch_one(pool).await?;
    Ok(plan
        .pointer("/0/Plan/Plan Rows")
        .and_then(Value::as_f64)
        .map(|rows| rows.round() as i64)
        .unwrap_or(-1))
}
