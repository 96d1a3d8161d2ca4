//! `query?q=` and `query/<locator>-<offset>`: SOQL results in pages.
//!
//! The first call runs the query once and keeps the matching record indexes as a cursor (a
//! snapshot of *which* records match; field values are read when each page is served). Pages are
//! serialized straight from the records into the response text, with no intermediate JSON tree.
//! Cursors expire after an idle time and the oldest are dropped beyond a cap, as Salesforce's
//! locators do (`INVALID_QUERY_LOCATOR`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Extension;
use axum::extract::{Path, Query as QueryParams, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::errors::ApiError;
use super::ids;
use super::limits::Caller;
use super::org::Org;
use super::schema::{Field, push_record};
use super::soql::Query;
use super::{Shared, lock, read};

/// Salesforce's default and maximum page size, and its minimum `batchSize`.
const DEFAULT_BATCH: usize = 2000;
const MIN_BATCH: usize = 200;

#[derive(Debug)]
struct Cursor {
    hits: Arc<Vec<u32>>,
    fields: Arc<Vec<Field>>,
    batch: usize,
    last_used: Instant,
}

/// Open query cursors by locator id.
#[derive(Debug, Default)]
pub struct CursorStore {
    map: HashMap<String, Cursor>,
}

impl CursorStore {
    fn purge(&mut self, idle: std::time::Duration) {
        let now = Instant::now();
        self.map
            .retain(|_, c| now.duration_since(c.last_used) < idle);
    }

    fn insert(&mut self, id: String, cursor: Cursor, max: usize) {
        while self.map.len() >= max {
            let oldest = self
                .map
                .iter()
                .min_by_key(|(_, c)| c.last_used)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => self.map.remove(&k),
                None => break,
            };
        }
        self.map.insert(id, cursor);
    }
}

/// `Sforce-Query-Options: batchSize=N`, clamped to 200..=2000 (Salesforce: "not guaranteed").
fn batch_size(headers: &HeaderMap) -> Option<usize> {
    let v = headers.get("Sforce-Query-Options")?.to_str().ok()?;
    v.split(',').find_map(|part| {
        let (k, n) = part.split_once('=')?;
        if k.trim().eq_ignore_ascii_case("batchSize") {
            n.trim()
                .parse::<usize>()
                .ok()
                .map(|n| n.clamp(MIN_BATCH, DEFAULT_BATCH))
        } else {
            None
        }
    })
}

fn json_response(body: String) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
        body,
    )
        .into_response()
}

/// Writes one page: `{"totalSize","done","nextRecordsUrl"?,"records":[…]}`.
fn page(
    org: &Org,
    version: &str,
    total: usize,
    slice: &[u32],
    fields: &[Field],
    next: Option<&str>,
) -> String {
    let mut out = String::with_capacity(64 + slice.len() * (120 + fields.len() * 40));
    out.push_str("{\"totalSize\":");
    out.push_str(&total.to_string());
    out.push_str(",\"done\":");
    out.push_str(if next.is_some() { "false" } else { "true" });
    if let Some(url) = next {
        out.push_str(",\"nextRecordsUrl\":\"");
        out.push_str(url);
        out.push('"');
    }
    out.push_str(",\"records\":[");
    for (n, &i) in slice.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        if let Some(rec) = org.users.get(i as usize) {
            push_record(&mut out, version, rec, fields);
        }
    }
    out.push_str("]}");
    out
}

/// `GET query?q=SOQL`.
pub async fn query(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    QueryParams(params): QueryParams<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let Some(q) = params.get("q").filter(|q| !q.trim().is_empty()) else {
        return Err(ApiError::bad_request(
            "MALFORMED_QUERY",
            "A query string has to be specified",
        ));
    };
    let parsed = Query::parse(q).map_err(|e| ApiError::bad_request(e.code, e.message))?;
    let batch = batch_size(&headers).unwrap_or(DEFAULT_BATCH);
    let org = read(&shared.org);
    let hits = parsed.run(&org);
    if parsed.count_only {
        return Ok(json_response(format!(
            "{{\"totalSize\":{},\"done\":true,\"records\":[]}}",
            hits.len()
        )));
    }
    let first = match hits.split_at_checked(batch) {
        Some((first, rest)) if !rest.is_empty() => first,
        _ => {
            return Ok(json_response(page(
                &org,
                &caller.version,
                hits.len(),
                &hits,
                &parsed.fields,
                None,
            )));
        }
    };
    let locator = format!("{}{}", ids::QUERY_LOCATOR_PREFIX, shared.random_token(15));
    let next = format!("/services/data/{}/query/{locator}-{batch}", caller.version);
    let body = page(
        &org,
        &caller.version,
        hits.len(),
        first,
        &parsed.fields,
        Some(&next),
    );
    drop(org);
    let cursor = Cursor {
        hits: Arc::new(hits),
        fields: Arc::new(parsed.fields),
        batch,
        last_used: Instant::now(),
    };
    let mut cursors = lock(&shared.cursors);
    cursors.purge(shared.config.cursor_idle_timeout);
    cursors.insert(locator, cursor, shared.config.max_open_cursors);
    Ok(json_response(body))
}

fn invalid_locator() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "INVALID_QUERY_LOCATOR",
        "invalid query locator",
    )
}

/// `GET query/<locator>-<offset>` (the `nextRecordsUrl`).
pub async fn query_more(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path((_v, locator)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (id, offset) = locator.rsplit_once('-').ok_or_else(invalid_locator)?;
    let offset: usize = offset.parse().map_err(|_| invalid_locator())?;
    let (hits, fields, batch) = {
        let mut cursors = lock(&shared.cursors);
        cursors.purge(shared.config.cursor_idle_timeout);
        let c = cursors.map.get_mut(id).ok_or_else(invalid_locator)?;
        c.last_used = Instant::now();
        (
            c.hits.clone(),
            c.fields.clone(),
            batch_size(&headers).unwrap_or(c.batch),
        )
    };
    if offset >= hits.len() {
        return Err(invalid_locator());
    }
    let end = (offset + batch).min(hits.len());
    let slice = hits.get(offset..end).ok_or_else(invalid_locator)?;
    let next =
        (end < hits.len()).then(|| format!("/services/data/{}/query/{id}-{end}", caller.version));
    let body = {
        let org = read(&shared.org);
        page(
            &org,
            &caller.version,
            hits.len(),
            slice,
            &fields,
            next.as_deref(),
        )
    };
    // The cursor stays after its last page (until idle expiry or the cap), so a client may retry
    // a page whose answer it lost, as Salesforce's long-lived locators allow.
    Ok(json_response(body))
}
