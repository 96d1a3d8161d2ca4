//! `GET /openidm/managed/{type}?_queryFilter=…`: IDM's query parameters, the result envelope,
//! keyset paging cookies, and unpaged results streamed in chunks so that memory does not grow
//! with the number of matches.

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

use super::AppState;
use super::body::Params;
use super::error::ApiError;
use super::render::{self, Fields};
use crate::config::managed::ManagedObjectConfig;
use crate::filter::{self, Filter, Pointer};
use crate::managed::ManagedObjects;
use crate::repo::query::{Keyset, QueryPage, QueryRequest, SortKey, TotalPolicy};

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

/// Rows fetched per round trip when an unpaged query is streamed.
const STREAM_CHUNK: u32 = 1_000;

/// A query request, parsed and validated.
struct QuerySpec {
    object_type: String,
    filter: Filter,
    fields: Fields,
    sort_text: String,
    sort: Vec<SortKey>,
    page_size: Option<u32>,
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
    let spec = parse(object_type, &params)?;
    if spec.page_size.is_some() {
        paged(&state.managed, &schema, &spec).await
    } else {
        streamed(state.managed.clone(), schema, spec).await
    }
}

async fn paged(
    managed: &ManagedObjects,
    schema: &ManagedObjectConfig,
    spec: &QuerySpec,
) -> Result<Response, ApiError> {
    let page = managed
        .query(&spec.request(spec.page_size, spec.after.as_ref(), spec.offset, spec.total))
        .await?;
    Ok(one_page(schema, spec, &page))
}

/// The envelope around one page, built in memory.
fn one_page(schema: &ManagedObjectConfig, spec: &QuerySpec, page: &QueryPage) -> Response {
    let result: Vec<Value> = page
        .rows
        .iter()
        .map(|o| render::object(o, schema, &spec.fields))
        .collect();
    let count = result.len();
    let total = page.total.unwrap_or(-1);
    let body = json!({
        "result": result,
        "resultCount": count,
        "pagedResultsCookie": page.next.as_ref().map(|k| encode_cookie(&spec.sort_text, k)),
        "totalPagedResultsPolicy": spec.policy_name(),
        "totalPagedResults": total,
        "remainingPagedResults": spec.remaining(total, count),
    });
    render::json(StatusCode::OK, &body, spec.pretty)
}

/// Every match, written as it is read, a chunk of rows at a time. Should a later chunk fail,
/// the answer ends as CREST ends a partly failed query: the results so far and an `error`.
async fn streamed(
    managed: ManagedObjects,
    schema: ManagedObjectConfig,
    spec: QuerySpec,
) -> Result<Response, ApiError> {
    // The first chunk (and the total) is read before answering, so that an error
    // before any result is an ordinary error response.
    let first = managed
        .query(&spec.request(
            Some(STREAM_CHUNK),
            spec.after.as_ref(),
            spec.offset,
            spec.total,
        ))
        .await?;
    if first.next.is_none() {
        // Everything fits in one chunk: an ordinary answer, with a Content-Length.
        return Ok(one_page(&schema, &spec, &first));
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        let total = first.total.unwrap_or(-1);
        let mut out = String::from("{\"result\":[");
        let mut count = 0usize;
        let mut page = Ok(first);
        let failure = loop {
            let current = match page {
                Ok(p) => p,
                Err(e) => break Some(e),
            };
            for row in &current.rows {
                if count > 0 {
                    out.push(',');
                }
                push_json(
                    &mut out,
                    &render::object(row, &schema, &spec.fields),
                    spec.pretty,
                );
                count += 1;
            }
            if out.len() >= 64 * 1024
                && tx
                    .send(Ok(Bytes::from(std::mem::take(&mut out))))
                    .await
                    .is_err()
            {
                return; // the client went away
            }
            let Some(next) = current.next else { break None };
            page = managed
                .query(&spec.request(Some(STREAM_CHUNK), Some(&next), 0, TotalPolicy::None))
                .await;
        };
        out.push_str("],");
        let mut trailer = json!({
            "resultCount": count,
            "pagedResultsCookie": null,
            "totalPagedResultsPolicy": spec.policy_name(),
            "totalPagedResults": total,
            "remainingPagedResults": spec.remaining(total, count),
        });
        if let Some(e) = failure {
            trailer["error"] = ApiError::from(e).body();
        }
        let trailer = trailer.to_string();
        out.push_str(trailer.trim_start_matches('{'));
        let _ = tx.send(Ok(Bytes::from(out))).await;
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let mut response = Body::from_stream(stream).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    Ok(response)
}

fn push_json(out: &mut String, value: &Value, pretty: bool) {
    let text = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    };
    // Serialising a `Value` cannot fail (its keys are strings); an empty item never happens.
    if let Ok(text) = text {
        out.push_str(&text);
    }
}

fn parse(object_type: String, params: &Params) -> Result<QuerySpec, ApiError> {
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
    let page_size = match params.whole("_pageSize")? {
        None | Some(0) => None,
        Some(n) => {
            Some(u32::try_from(n).map_err(|_| ApiError::bad_request("_pageSize is too large"))?)
        }
    };
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
        .map(|c| decode_cookie(c, &sort_text, sort.len()))
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

/// The paged-results cookie: where the last page ended, tied to the sort keys it was made for.
fn encode_cookie(sort_text: &str, keyset: &Keyset) -> String {
    let raw = json!({"s": sort_text, "v": keyset.values, "i": keyset.id}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_cookie(cookie: &str, sort_text: &str, keys: usize) -> Result<Keyset, ApiError> {
    let invalid =
        || ApiError::bad_request("_pagedResultsCookie is not a cookie this server issued");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cookie)
        .map_err(|_| invalid())?;
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
