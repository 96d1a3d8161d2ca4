//! `GET /openidm/managed/{type}?_queryFilter=…`: IDM's query parameters, the result envelope
//! and signed keyset paging cookies. Pages of any size, and unpaged results, are read and
//! written in chunks ([`super::stream`]), so memory does not grow with the number of matches.

use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::AppState;
use super::body::Params;
use super::error::ApiError;
use super::render::{self, Fields};
use super::stream::{self, Chunk, ChunkReader};
use crate::config::managed::ManagedObjectConfig;
use crate::filter::{self, Filter, Pointer};
use crate::limits::MAX_SORT_KEYS;
use crate::managed::ManagedObjects;
use crate::repo::query::{Keyset, QueryRequest, SortKey, TotalPolicy};
use crate::services::paging_cookie::PagingCookies;

const QUERY_PARAMS: &[&str] = &[
    "_queryFilter",
    "_queryId",
    "_queryExpression",
    "_fields",
    "_sortKeys",
    "_pageSize",
    "_pagedResultsCookie",
    "_pagedResultsOffset",
    "_totalPagedResultsPolicy",
    "_prettyPrint",
];

/// A query request, parsed and validated.
struct QuerySpec {
    object_type: String,
    filter: Filter,
    fields: Fields,
    sort_text: String,
    sort: Vec<SortKey>,
    /// `None`: every match (streamed like any page).
    page_size: Option<u64>,
    after: Option<Keyset>,
    offset: u64,
    total: TotalPolicy,
    pretty: bool,
}

impl QuerySpec {
    fn request<'a>(
        &'a self,
        page_size: Option<u32>,
        after: Option<&'a Keyset>,
        offset: u64,
        total: TotalPolicy,
    ) -> QueryRequest<'a> {
        QueryRequest {
            object_type: &self.object_type,
            filter: &self.filter,
            sort: &self.sort,
            page_size,
            after,
            offset,
            total,
        }
    }

    fn policy_name(&self) -> &'static str {
        match self.total {
            TotalPolicy::None => "NONE",
            TotalPolicy::Exact => "EXACT",
            TotalPolicy::Estimate => "ESTIMATE",
        }
    }

    /// IDM reports the remaining count only when it is known: an exact total and offset paging.
    fn remaining(&self, total: i64, returned: usize) -> i64 {
        match (self.total, &self.after) {
            (TotalPolicy::Exact, None) => (total - self.offset as i64 - returned as i64).max(0),
            _ => -1,
        }
    }
}

pub async fn query(
    State(state): State<AppState>,
    Path(object_type): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    params.allow_only(QUERY_PARAMS)?;
    let schema = state.managed.schema(&object_type)?.clone();
    let spec = parse(object_type, &params, &state.cookies)?;
    let (page_size, pretty) = (spec.page_size, spec.pretty);
    let reader = ManagedReader {
        managed: state.managed.clone(),
        schema,
        spec,
        cookies: state.cookies.clone(),
        total: None,
    };
    stream::answer(reader, page_size, pretty).await
}

/// The rows of one managed-object query: the first chunk where the request says (cookie or
/// offset), the next ones by keyset.
struct ManagedReader {
    managed: ManagedObjects,
    schema: ManagedObjectConfig,
    spec: QuerySpec,
    cookies: PagingCookies,
    /// Counted (or estimated) with the first chunk, when the request asks for it.
    total: Option<i64>,
}

impl ChunkReader for ManagedReader {
    type Cursor = Keyset;

    async fn read(
        &mut self,
        after: Option<&Keyset>,
        limit: u32,
    ) -> Result<Chunk<Keyset>, ApiError> {
        let spec = &self.spec;
        let request = match after {
            None => spec.request(Some(limit), spec.after.as_ref(), spec.offset, spec.total),
            Some(at) => spec.request(Some(limit), Some(at), 0, TotalPolicy::None),
        };
        let page = self.managed.query(&request).await?;
        if after.is_none() {
            self.total = page.total;
        }
        let items = page
            .rows
            .iter()
            .map(|o| render::object(o, &self.schema, &spec.fields))
            .collect();
        Ok(Chunk {
            items,
            next: page.next,
        })
    }

    fn cookie(&self, keyset: &Keyset) -> String {
        encode_cookie(&self.cookies, &self.spec.sort_text, keyset)
    }

    fn trailer(&self, count: usize, cookie: Option<String>) -> Map<String, Value> {
        let total = self.total.unwrap_or(-1);
        let remaining = self.spec.remaining(total, count);
        stream::envelope_trailer(count, cookie, self.spec.policy_name(), total, remaining)
    }
}

fn parse(
    object_type: String,
    params: &Params,
    cookies: &PagingCookies,
) -> Result<QuerySpec, ApiError> {
    let mut fields = params.get("_fields");
    let filter = match (
        params.get("_queryFilter"),
        params.get("_queryId"),
        params.get("_queryExpression"),
    ) {
        (Some(text), None, None) => {
            filter::parse(text).map_err(|e| ApiError::bad_request(e.to_string()))?
        }
        (None, Some("query-all-ids"), None) => {
            fields = Some("_id");
            Filter::True
        }
        (None, Some("query-all"), None) => Filter::True,
        (None, Some(other), None) => {
            return Err(ApiError::bad_request(format!(
                "Unknown _queryId {other:?}: use _queryFilter (query-all-ids and query-all are also accepted)"
            )));
        }
        (None, None, Some(_)) => {
            return Err(ApiError::bad_request(
                "_queryExpression (native SQL) is not supported: use _queryFilter",
            ));
        }
        (None, None, None) => {
            return Err(ApiError::bad_request(
                "A query needs _queryFilter (for example _queryFilter=true)",
            ));
        }
        _ => {
            return Err(ApiError::bad_request(
                "_queryFilter, _queryId and _queryExpression are mutually exclusive",
            ));
        }
    };
    let sort_text = params.get("_sortKeys").unwrap_or("").to_owned();
    let sort = parse_sort_keys(&sort_text)?;
    // Any size: pages are read and written a chunk at a time.
    let page_size = params.whole("_pageSize")?.filter(|&n| n > 0);
    let total = match params.get("_totalPagedResultsPolicy").unwrap_or("NONE") {
        "NONE" => TotalPolicy::None,
        "EXACT" => TotalPolicy::Exact,
        "ESTIMATE" => TotalPolicy::Estimate,
        other => {
            return Err(ApiError::bad_request(format!(
                "_totalPagedResultsPolicy must be NONE, EXACT or ESTIMATE, not {other:?}"
            )));
        }
    };
    let after = params
        .get("_pagedResultsCookie")
        .filter(|c| !c.is_empty())
        .map(|c| decode_cookie(cookies, c, &sort_text, sort.len()))
        .transpose()?;
    Ok(QuerySpec {
        object_type,
        filter,
        fields: Fields::parse(fields)?,
        sort_text,
        sort,
        page_size,
        after,
        offset: params.whole("_pagedResultsOffset")?.unwrap_or(0),
        total,
        pretty: params.flag("_prettyPrint")?,
    })
}

fn parse_sort_keys(text: &str) -> Result<Vec<SortKey>, ApiError> {
    let count = text.split(',').filter(|k| !k.trim().is_empty()).count();
    if count > MAX_SORT_KEYS {
        return Err(ApiError::bad_request(format!(
            "_sortKeys has {count} keys; the limit is {MAX_SORT_KEYS}"
        )));
    }
    text.split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(|key| {
            let (ascending, field) = if let Some(f) = key.strip_prefix('-') {
                (false, f)
            } else {
                (true, key.strip_prefix('+').unwrap_or(key))
            };
            let field = Pointer::parse(field).map_err(|e| {
                ApiError::bad_request(format!("_sortKeys: {key:?} is not a valid field: {e}"))
            })?;
            Ok(SortKey { field, ascending })
        })
        .collect()
}

/// The paged-results cookie: where the last page ended, tied to the sort keys it was made for,
/// signed (see [`PagingCookies`]).
fn encode_cookie(cookies: &PagingCookies, sort_text: &str, keyset: &Keyset) -> String {
    let raw = json!({"s": sort_text, "v": keyset.values, "i": keyset.id}).to_string();
    cookies.issue(raw.as_bytes())
}

fn decode_cookie(
    cookies: &PagingCookies,
    cookie: &str,
    sort_text: &str,
    keys: usize,
) -> Result<Keyset, ApiError> {
    let invalid =
        || ApiError::bad_request("_pagedResultsCookie is not a cookie this server issued");
    let raw = cookies.open(cookie).ok_or_else(invalid)?;
    let value: Value = serde_json::from_slice(&raw).map_err(|_| invalid())?;
    if value.get("s").and_then(Value::as_str) != Some(sort_text) {
        return Err(ApiError::bad_request(
            "_pagedResultsCookie was issued for other _sortKeys: repeat the query's _sortKeys",
        ));
    }
    let values = value
        .get("v")
        .and_then(Value::as_array)
        .ok_or_else(invalid)?
        .clone();
    let id = value
        .get("i")
        .and_then(Value::as_str)
        .ok_or_else(invalid)?
        .to_owned();
    if values.len() != keys {
        return Err(invalid());
    }
    Ok(Keyset { values, id })
}
