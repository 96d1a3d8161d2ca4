//! `GET /openidm/repo/link?_queryFilter=…`: the links, in IDM's query envelope, with the
//! fields `_id, _rev, linkType, linkQualifier, firstId, secondId`. The query helper here also
//! serves `audit/recon`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value};

use super::AppState;
use super::body::Params;
use super::error::ApiError;
use super::render;
use crate::filter;
use crate::repo::relation_query::Row;
use crate::repo::{audit, links, sync_audit, sync_failures};

const PARAMS: &[&str] = &[
    "_queryFilter",
    "_pageSize",
    "_pagedResultsCookie",
    "_prettyPrint",
];
/// Rows per round trip when the client does not page.
const CHUNK: i64 = 1_000;

/// The object sets answered through [`query`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Relation {
    Links,
    ReconAudit,
    SyncFailures,
    SyncAudit,
}

pub async fn query_links(
    State(state): State<AppState>,
    params: Params,
) -> Result<Response, ApiError> {
    query(&state, Relation::Links, &params).await
}

/// `_queryFilter` (required), `_pageSize` and `_pagedResultsCookie` (the last `_id` of the
/// previous page) over `relation`, answered in IDM's query envelope.
pub(crate) async fn query(
    state: &AppState,
    relation: Relation,
    params: &Params,
) -> Result<Response, ApiError> {
    params.allow_only(PARAMS)?;
    let text = params
        .get("_queryFilter")
        .ok_or_else(|| ApiError::bad_request("_queryFilter is required"))?;
    let filter = filter::parse(text)
        .map_err(|e| ApiError::bad_request(format!("Invalid _queryFilter {text:?}: {e}")))?;
    let page_size = match params.get("_pageSize") {
        None => None,
        Some(s) => match s.parse::<i64>() {
            Ok(n) if n > 0 => Some(n),
            Ok(_) => None,
            Err(_) => {
                return Err(ApiError::bad_request(format!(
                    "_pageSize must be a number, not {s:?}"
                )));
            }
        },
    };
    let mut after = params
        .get("_pagedResultsCookie")
        .filter(|c| !c.is_empty())
        .map(str::to_owned);
    let pool = state.managed.pool();
    let mut result = Vec::new();
    let mut cookie = None;
    loop {
        let want = page_size.map_or(CHUNK, |p| (p - result.len() as i64).min(CHUNK));
        // One more row than wanted tells whether another page follows.
        let limit = want + 1;
        let mut rows = match relation {
            Relation::Links => links::query(pool, &filter, after.as_deref(), limit).await?,
            Relation::ReconAudit => audit::query(pool, &filter, after.as_deref(), limit).await?,
            Relation::SyncFailures => {
                sync_failures::query(pool, &filter, after.as_deref(), limit).await?
            }
            Relation::SyncAudit => {
                sync_audit::query(pool, &filter, after.as_deref(), limit).await?
            }
        };
        let more = rows.len() as i64 > want;
        rows.truncate(want as usize);
        after = rows.last().map(|r| r.id.clone());
        result.extend(rows.into_iter().map(|r| item(relation, r)));
        if !more {
            break;
        }
        if page_size.is_some_and(|p| result.len() as i64 >= p) {
            cookie = after.clone();
            break;
        }
    }
    let mut envelope = Map::new();
    envelope.insert("resultCount".into(), Value::from(result.len()));
    envelope.insert("result".into(), Value::Array(result));
    envelope.insert(
        "pagedResultsCookie".into(),
        cookie.map_or(Value::Null, Value::from),
    );
    envelope.insert("totalPagedResultsPolicy".into(), "NONE".into());
    envelope.insert("totalPagedResults".into(), Value::from(-1));
    envelope.insert("remainingPagedResults".into(), Value::from(-1));
    // CREST writes `result` first.
    let mut ordered = Map::new();
    for key in [
        "result",
        "resultCount",
        "pagedResultsCookie",
        "totalPagedResultsPolicy",
        "totalPagedResults",
        "remainingPagedResults",
    ] {
        if let Some(v) = envelope.remove(key) {
            ordered.insert(key.into(), v);
        }
    }
    Ok(render::json(
        StatusCode::OK,
        &Value::Object(ordered),
        params.flag("_prettyPrint")?,
    ))
}

fn item(relation: Relation, row: Row) -> Value {
    let mut out = Map::with_capacity(row.body.len() + 2);
    out.insert("_id".into(), Value::from(row.id));
    if matches!(relation, Relation::Links | Relation::SyncFailures) {
        out.insert("_rev".into(), Value::from(row.rev.to_string()));
        // jsonb keeps keys in its own order; IDM's order is this one.
        let mut body = row.body;
        for key in ["linkType", "linkQualifier", "firstId", "secondId"] {
            if let Some(v) = body.remove(key) {
                out.insert(key.into(), v);
            }
        }
        out.extend(body);
        return Value::Object(out);
    }
    out.extend(row.body);
    Value::Object(out)
}
