//! `GET /openidm/repo/link?_queryFilter=…`: the links, in IDM's query envelope, with the
//! fields `_id, _rev, linkType, linkQualifier, firstId, secondId`. The query helper here also
//! serves `audit/recon`.

use axum::extract::State;
use axum::response::Response;
use serde_json::{Map, Value};

use super::AppState;
use super::body::Params;
use super::error::ApiError;
use super::stream::{self, Chunk, ChunkReader};
use crate::filter::{self, Filter};
use crate::repo::relation_query::Row;
use crate::services::paging_cookie::PagingCookies;
pub(crate) use crate::services::relations::Relation;
use crate::services::relations::Relations;

const PARAMS: &[&str] = &[
    "_queryFilter",
    "_pageSize",
    "_pagedResultsCookie",
    "_prettyPrint",
];

pub async fn query_links(
    State(state): State<AppState>,
    params: Params,
) -> Result<Response, ApiError> {
    query(&state, Relation::Links, &params).await
}

/// `_queryFilter` (required), `_pageSize` and `_pagedResultsCookie` (a signed cookie holding the
/// last `_id` of the previous page) over `relation`, answered in IDM's query envelope a chunk
/// of rows at a time ([`super::stream`]).
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
            Ok(n) if n > 0 => u64::try_from(n).ok(),
            Ok(_) => None,
            Err(_) => {
                return Err(ApiError::bad_request(format!(
                    "_pageSize must be a number, not {s:?}"
                )));
            }
        },
    };
    let start = match params.get("_pagedResultsCookie").filter(|c| !c.is_empty()) {
        None => None,
        Some(cookie) => Some(
            state
                .cookies
                .open(cookie)
                .and_then(|raw| String::from_utf8(raw).ok())
                .ok_or_else(|| {
                    ApiError::bad_request("_pagedResultsCookie is not a cookie this server issued")
                })?,
        ),
    };
    let reader = RelationReader {
        relations: state.relations(),
        relation,
        filter,
        start,
        cookies: state.cookies.clone(),
    };
    stream::answer(reader, page_size, params.flag("_prettyPrint")?).await
}

/// The rows of one relation query, in `_id` order; a cursor is the last `_id` read.
struct RelationReader {
    relations: Relations,
    relation: Relation,
    filter: Filter,
    /// Where the client's cookie says the page starts.
    start: Option<String>,
    cookies: PagingCookies,
}

impl ChunkReader for RelationReader {
    type Cursor = String;

    async fn read(
        &mut self,
        after: Option<&String>,
        limit: u32,
    ) -> Result<Chunk<String>, ApiError> {
        let after = after.or(self.start.as_ref()).map(String::as_str);
        // One more row than wanted tells whether more follow.
        let want = i64::from(limit) + 1;
        let mut rows = self
            .relations
            .page(self.relation, &self.filter, after, want)
            .await?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next = match more {
            true => rows.last().map(|r| r.id.clone()),
            false => None,
        };
        let relation = self.relation;
        Ok(Chunk {
            items: rows.into_iter().map(|r| item(relation, r)).collect(),
            next,
        })
    }

    fn cookie(&self, last_id: &String) -> String {
        self.cookies.issue(last_id.as_bytes())
    }

    fn trailer(&self, count: usize, cookie: Option<String>) -> Map<String, Value> {
        stream::envelope_trailer(count, cookie, "NONE", -1, -1)
    }
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
