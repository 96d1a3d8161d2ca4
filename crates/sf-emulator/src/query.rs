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

use super::access::{self, Col, Obj};
use super::errors::ApiError;
use super::ids;
use super::limits::Caller;
use super::org::Org;
use super::schema::{Field, push_record};
use super::soql::{self, Query, SoqlError};
use super::{Shared, lock, read};

/// Salesforce's default and maximum page size, and its minimum `batchSize`.
const DEFAULT_BATCH: usize = 2000;
const MIN_BATCH: usize = 200;

/// What a page shows of each hit: `User` fields, or the columns of an access object.
#[derive(Debug, Clone)]
enum Projection {
    Users(Arc<Vec<Field>>),
    Access(Obj, Arc<Vec<Col>>),
}

/// A parsed query of either kind.
enum Parsed {
    User(Query<Field>),
    Access(Obj, Query<Col>),
}

impl Parsed {
    /// Parses against the object FROM names: an access object's columns, else `User`'s (whose
    /// parser reports an unknown object).
    fn parse(q: &str) -> Result<Parsed, SoqlError> {
        if let Some(obj) = soql::from_object(q)?.and_then(|o| Obj::named(&o)) {
            let resolve = move |name: &str| Col::resolve(obj, name);
            return Ok(Parsed::Access(
                obj,
                Query::parse_with(q, obj.name(), &resolve)?,
            ));
        }
        Ok(Parsed::User(Query::parse(q)?))
    }

    fn count_only(&self) -> bool {
        match self {
            Parsed::User(q) => q.count_only,
            Parsed::Access(_, q) => q.count_only,
        }
    }

    fn run(self, org: &Org) -> (Vec<u32>, Projection) {
        match self {
            Parsed::User(q) => (q.run(org), Projection::Users(Arc::new(q.fields))),
            Parsed::Access(obj, q) => (
                access::query::run(org, obj, &q),
                Projection::Access(obj, Arc::new(q.fields)),
            ),
        }
    }
}

#[derive(Debug)]
struct Cursor {
    hits: Arc<Vec<u32>>,
    projection: Projection,
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
    projection: &Projection,
    next: Option<&str>,
) -> String {
    let width = match projection {
        Projection::Users(f) => f.len(),
        Projection::Access(_, c) => c.len(),
    };
    let mut out = String::with_capacity(64 + slice.len() * (120 + width * 40));
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
    let mut first = true;
    for &i in slice {
        // A record deleted since the query ran is left out of its page.
        let exists = match projection {
            Projection::Users(_) => org.users.get(i as usize).is_some(),
            Projection::Access(obj, _) => access::query::row_id(org, *obj, i).is_some(),
        };
        if !exists {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        match projection {
            Projection::Users(fields) => {
                if let Some(rec) = org.users.get(i as usize) {
                    push_record(&mut out, version, rec, fields);
                }
            }
            Projection::Access(obj, cols) => {
                access::query::push_row(&mut out, version, org, *obj, i, cols);
            }
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
    let parsed = Parsed::parse(q).map_err(|e| ApiError::bad_request(e.code, e.message))?;
    let batch = batch_size(&headers).unwrap_or(DEFAULT_BATCH);
    let org = read(&shared.org);
    let count_only = parsed.count_only();
    let (hits, projection) = parsed.run(&org);
    if count_only {
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
                &projection,
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
        &projection,
        Some(&next),
    );
    drop(org);
    let cursor = Cursor {
        hits: Arc::new(hits),
        projection,
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
    let (hits, projection, batch) = {
        let mut cursors = lock(&shared.cursors);
        cursors.purge(shared.config.cursor_idle_timeout);
        let c = cursors.map.get_mut(id).ok_or_else(invalid_locator)?;
        c.last_used = Instant::now();
        (
            c.hits.clone(),
            c.projection.clone(),
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
            &projection,
            next.as_deref(),
        )
    };
    // The cursor stays after its last page (until idle expiry or the cap), so a client may retry
    // a page whose answer it lost, as Salesforce's long-lived locators allow.
    Ok(json_response(body))
}
