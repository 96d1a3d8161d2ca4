//! `query?q=` and `query/<locator>-<offset>`: SOQL results in pages.
//!
//! The first call runs the query once and keeps the matching record indexes as a cursor (a
//! snapshot of *which* records match; field values are read when each page is served). Pages are
//! serialized straight from the records into the response text, with no intermediate JSON tree.
//! Cursors expire after an idle time and the oldest are dropped beyond a cap, as Salesforce's
//! locators do (`INVALID_QUERY_LOCATOR`).
//!
//! A `User` query may carry the `PermissionSetAssignments` subquery: each user record then holds
//! its own query result of assignments, the first rows inline and, past those, a child locator
//! (`<query locator><user position>-<offset>`) that pages the rest through this same endpoint.
//! The child rows of such users are kept in the query's cursor, so a child locator lives as long
//! as its query's.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Extension;
use axum::extract::{Path, Query as QueryParams, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::access::children::{self, ChildQuery};
use super::access::{self, Col, Obj};
use super::errors::ApiError;
use super::ids;
use super::limits::Caller;
use super::org::Org;
use super::schema::{self, Field, push_record};
use super::soql::{self, Query, SoqlError};
use super::{Shared, lock, read};

/// Salesforce's default and maximum page size, and its minimum `batchSize`.
const DEFAULT_BATCH: usize = 2000;
const MIN_BATCH: usize = 200;

/// Length of a query's locator id: the `01g` prefix and 15 random characters. A child locator
/// appends a user's position to it.
const LOCATOR_LEN: usize = 18;

/// What a page shows of each hit: `User` fields (and maybe each user's assignments), or the
/// columns of an access object.
#[derive(Debug, Clone)]
enum Projection {
    Users(Arc<UserProjection>),
    Access(Obj, Arc<Vec<Col>>),
}

#[derive(Debug)]
struct UserProjection {
    fields: Vec<Field>,
    child: Option<ChildQuery>,
}

/// A parsed query of either kind.
enum Parsed {
    User(Query<Field>, Option<ChildQuery>),
    Access(Obj, Query<Col>),
}

impl Parsed {
    /// Parses against the object FROM names: an access object's columns, else `User`'s (whose
    /// parser reports an unknown object).
    fn parse(q: &str) -> Result<Parsed, SoqlError> {
        if let Some(obj) = soql::from_object(q)?.and_then(|o| Obj::named(&o)) {
            let resolve = move |name: &str| Col::resolve(obj, name);
            let parsed = Query::parse_with(q, obj.name(), &resolve)?;
            if let Some(sub) = parsed.subqueries.first() {
                return Err(children::refuse(q, sub));
            }
            return Ok(Parsed::Access(obj, parsed));
        }
        let parsed = Query::parse(q)?;
        let mut child = None;
        for sub in &parsed.subqueries {
            let c = ChildQuery::parse(q, sub)?;
            if child.is_some() {
                // Salesforce allows up to 20; the emulator models one relationship, once.
                return Err(SoqlError::at(
                    q,
                    sub.pos,
                    "MALFORMED_QUERY",
                    "The emulator serves one parent-to-child subquery per query".to_owned(),
                ));
            }
            child = Some(c);
        }
        Ok(Parsed::User(parsed, child))
    }

    fn count_only(&self) -> bool {
        match self {
            Parsed::User(q, _) => q.count_only,
            Parsed::Access(_, q) => q.count_only,
        }
    }

    fn run(self, org: &Org) -> (Vec<u32>, Projection) {
        match self {
            Parsed::User(q, child) => {
                let hits = q.run(org);
                let projection = UserProjection {
                    fields: q.fields,
                    child,
                };
                (hits, Projection::Users(Arc::new(projection)))
            }
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
    /// All child rows of each user whose rows did not fit inline in a served page: what that
    /// user's child locator pages (a snapshot, as `hits` is).
    children: HashMap<u32, Arc<Vec<u32>>>,
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

/// A locator id's query id, and the user whose child rows it pages if it is a child locator.
fn split_locator(id: &str) -> Option<(&str, Option<u32>)> {
    let (query, user) = id.split_at_checked(LOCATOR_LEN)?;
    if user.is_empty() {
        return Some((query, None));
    }
    if !user.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((query, Some(user.parse().ok()?)))
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

/// What serving a page needs besides its hits.
struct PageCtx<'a> {
    org: &'a Org,
    version: &'a str,
    /// The query's locator id, which child locators extend.
    locator: &'a str,
    /// Child rows shown inline per parent; the rest go behind a child locator.
    inline: usize,
}

/// One page's records, how many hits it took, and the users whose child rows it left over.
struct Rendered {
    records: String,
    taken: usize,
    overflow: Vec<(u32, Arc<Vec<u32>>)>,
}

/// Writes the records of the page that starts at `hits[0]`: at most `batch` records, where the
/// child rows shown inline count toward the batch as Salesforce documents ("Child objects count
/// toward the number of records for the batch size"), and at least one hit.
fn render(ctx: &PageCtx<'_>, hits: &[u32], projection: &Projection, batch: usize) -> Rendered {
    match projection {
        Projection::Users(p) => match &p.child {
            Some(child) => render_with_children(ctx, hits, &p.fields, child, batch),
            None => render_plain(ctx, hits, projection, batch),
        },
        Projection::Access(..) => render_plain(ctx, hits, projection, batch),
    }
}

fn render_plain(
    ctx: &PageCtx<'_>,
    hits: &[u32],
    projection: &Projection,
    batch: usize,
) -> Rendered {
    let org = ctx.org;
    let taken = hits.len().min(batch);
    let mut out = String::with_capacity(64 + taken * 400);
    let mut first = true;
    for &i in hits.iter().take(taken) {
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
            Projection::Users(p) => {
                if let Some(rec) = org.users.get(i as usize) {
                    push_record(&mut out, ctx.version, rec, &p.fields);
                }
            }
            Projection::Access(obj, cols) => {
                access::query::push_row(&mut out, ctx.version, org, *obj, i, cols);
            }
        }
    }
    Rendered {
        records: out,
        taken,
        overflow: Vec::new(),
    }
}

/// Users with their `PermissionSetAssignments` result at the subquery's place in the record.
fn render_with_children(
    ctx: &PageCtx<'_>,
    hits: &[u32],
    fields: &[Field],
    child: &ChildQuery,
    batch: usize,
) -> Rendered {
    let org = ctx.org;
    let (before, after) = fields.split_at(child.at.min(fields.len()));
    let mut out = String::with_capacity(64 + hits.len().min(batch) * 600);
    let mut overflow = Vec::new();
    let (mut taken, mut counted) = (0usize, 0usize);
    for &i in hits {
        let Some(rec) = org.users.get(i as usize) else {
            taken += 1;
            continue;
        };
        let rows = child.rows(org, i);
        let shown = rows.len().min(ctx.inline);
        if counted > 0 && counted + 1 + shown > batch {
            break;
        }
        if counted > 0 {
            out.push(',');
        }
        taken += 1;
        counted += 1 + shown;
        schema::push_record_start(&mut out, ctx.version, rec);
        schema::push_fields(&mut out, rec, before);
        out.push_str(",\"");
        out.push_str(children::PERMISSION_SET_ASSIGNMENTS);
        out.push_str("\":");
        let next = (rows.len() > shown).then(|| {
            format!(
                "/services/data/{}/query/{}{i}-{shown}",
                ctx.version, ctx.locator
            )
        });
        children::push_result(
            &mut out,
            ctx.version,
            org,
            &rows,
            shown,
            &child.cols,
            next.as_deref(),
        );
        schema::push_fields(&mut out, rec, after);
        out.push('}');
        if next.is_some() {
            overflow.push((i, Arc::new(rows)));
        }
    }
    Rendered {
        records: out,
        taken,
        overflow,
    }
}

/// A page: `{"totalSize","done","nextRecordsUrl"?,"records":[…]}`.
fn page_body(total: usize, next: Option<&str>, records: &str) -> String {
    let mut out = String::with_capacity(96 + records.len());
    push_result_head(&mut out, total, next);
    out.push_str(records);
    out.push_str("]}");
    out
}

/// A query result up to its records' opening bracket (a page's, or a child relationship's):
/// `{"totalSize":…,"done":…,"nextRecordsUrl":…?,"records":[`.
pub(crate) fn push_result_head(out: &mut String, total: usize, next: Option<&str>) {
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
    if shared.faults().refuse_member_ranges && refers_to_member_range(q) {
        return Err(ApiError::bad_request(
            "INVALID_QUERY_FILTER_OPERATOR",
            "invalid operator on UserOrGroupId (injected fault)",
        ));
    }
    let parsed = Parsed::parse(q).map_err(|e| ApiError::bad_request(e.code, e.message))?;
    let batch = batch_size(&headers).unwrap_or(DEFAULT_BATCH);
    let inline = shared.subquery_inline_rows.load(Ordering::Relaxed).max(1);
    let locator = format!("{}{}", ids::QUERY_LOCATOR_PREFIX, shared.random_token(15));
    let org = read(&shared.org);
    let count_only = parsed.count_only();
    let (hits, projection) = parsed.run(&org);
    if count_only {
        return Ok(json_response(format!(
            "{{\"totalSize\":{},\"done\":true,\"records\":[]}}",
            hits.len()
        )));
    }
    let ctx = PageCtx {
        org: &org,
        version: &caller.version,
        locator: &locator,
        inline,
    };
    let page = render(&ctx, &hits, &projection, batch);
    let next = (page.taken < hits.len()).then(|| {
        format!(
            "/services/data/{}/query/{locator}-{}",
            caller.version, page.taken
        )
    });
    let body = page_body(hits.len(), next.as_deref(), &page.records);
    drop(org);
    // A cursor is kept for the next page, and for the child locators of this one.
    if next.is_some() || !page.overflow.is_empty() {
        let cursor = Cursor {
            hits: Arc::new(hits),
            projection,
            batch,
            last_used: Instant::now(),
            children: page.overflow.into_iter().collect(),
        };
        let mut cursors = lock(&shared.cursors);
        cursors.purge(shared.config.cursor_idle_timeout);
        cursors.insert(locator, cursor, shared.config.max_open_cursors);
    }
    Ok(json_response(body))
}

fn invalid_locator() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "INVALID_QUERY_LOCATOR",
        "invalid query locator",
    )
}

/// `GET query/<locator>-<offset>` (the `nextRecordsUrl`, of a query or of a user's child rows).
/// Whether a query compares `UserOrGroupId` by range (the refuse-member-ranges fault).
fn refers_to_member_range(q: &str) -> bool {
    let upper = q.to_ascii_uppercase();
    let compact: String = upper.split_whitespace().collect();
    ["USERORGROUPID>", "USERORGROUPID<"]
        .iter()
        .any(|op| compact.contains(op))
}

pub async fn query_more(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path((_v, locator)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (id, offset) = locator.rsplit_once('-').ok_or_else(invalid_locator)?;
    let offset: usize = offset.parse().map_err(|_| invalid_locator())?;
    let (query_id, child_of) = split_locator(id).ok_or_else(invalid_locator)?;
    let (hits, projection, batch) = {
        let mut cursors = lock(&shared.cursors);
        cursors.purge(shared.config.cursor_idle_timeout);
        let c = cursors.map.get_mut(query_id).ok_or_else(invalid_locator)?;
        c.last_used = Instant::now();
        let batch = batch_size(&headers).unwrap_or(c.batch);
        match child_of {
            None => (c.hits.clone(), c.projection.clone(), batch),
            // One user's remaining assignments: pages of the child object.
            Some(user) => {
                let rows = c.children.get(&user).cloned().ok_or_else(invalid_locator)?;
                let cols = match &c.projection {
                    Projection::Users(p) => p.child.as_ref().map(|ch| ch.cols.clone()),
                    Projection::Access(..) => None,
                }
                .ok_or_else(invalid_locator)?;
                let projection = Projection::Access(Obj::PermissionSetAssignment, cols);
                (rows, projection, batch)
            }
        }
    };
    let rest = hits
        .get(offset..)
        .filter(|r| !r.is_empty())
        .ok_or_else(invalid_locator)?;
    let inline = shared.subquery_inline_rows.load(Ordering::Relaxed).max(1);
    let (body, overflow) = {
        let org = read(&shared.org);
        let ctx = PageCtx {
            org: &org,
            version: &caller.version,
            locator: query_id,
            inline,
        };
        let page = render(&ctx, rest, &projection, batch);
        let end = offset + page.taken;
        let next = (end < hits.len())
            .then(|| format!("/services/data/{}/query/{id}-{end}", caller.version));
        let body = page_body(hits.len(), next.as_deref(), &page.records);
        (body, page.overflow)
    };
    if !overflow.is_empty()
        && let Some(c) = lock(&shared.cursors).map.get_mut(query_id)
    {
        c.children.extend(overflow);
    }
    // The cursor stays after its last page (until idle expiry or the cap), so a client may retry
    // a page whose answer it lost, as Salesforce's long-lived locators allow.
    Ok(json_response(body))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::AccessConfig;

    const SUB: &str = "SELECT Id, (SELECT Id FROM PermissionSetAssignments WHERE PermissionSet.IsOwnedByProfile = false), Username FROM User ORDER BY Id";

    fn org() -> Org {
        let access = AccessConfig {
            assignments_per_user: 3,
            ..AccessConfig::default()
        };
        let now = chrono::Utc.with_ymd_and_hms(2024, 6, 1, 0, 0, 0).unwrap();
        crate::seed::generate_with(30, 11, now, &access)
    }

    /// Records of a page, and what each one counts toward the batch.
    fn costs(records: &str) -> Vec<(serde_json::Value, usize)> {
        let v: serde_json::Value = serde_json::from_str(&format!("[{records}]")).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let inline = r["PermissionSetAssignments"]["records"]
                    .as_array()
                    .map_or(0, Vec::len);
                (r.clone(), 1 + inline)
            })
            .collect()
    }

    #[test]
    fn inline_children_count_toward_the_batch() {
        let org = org();
        let child = ChildQuery::parse(SUB, &Query::parse(SUB).unwrap().subqueries[0]).unwrap();
        let rows_of = |i: u32| child.rows(&org, i);
        let (hits, projection) = Parsed::parse(SUB).unwrap().run(&org);
        let ctx = PageCtx {
            org: &org,
            version: "v62.0",
            locator: "01gAAAAAAAAAAAAAAA",
            inline: 2,
        };
        let mut offset = 0;
        let mut seen = Vec::new();
        while offset < hits.len() {
            let page = render(&ctx, &hits[offset..], &projection, 10);
            let costs = costs(&page.records);
            assert_eq!(costs.len(), page.taken);
            let used: usize = costs.iter().map(|c| c.1).sum();
            assert!(used <= 10 || page.taken == 1, "{used}");
            if let Some(&next) = hits.get(offset + page.taken) {
                let cost = 1 + rows_of(next).len().min(2);
                assert!(used + cost > 10, "the next user fitted: {used} + {cost}");
            }
            for (r, _) in &costs {
                let u = org.find(r["Id"].as_str().unwrap()).unwrap() as u32;
                let rows = rows_of(u);
                let sub = &r["PermissionSetAssignments"];
                if rows.is_empty() {
                    assert!(sub.is_null(), "{r}");
                    continue;
                }
                assert_eq!(sub["totalSize"], rows.len());
                assert_eq!(sub["done"], rows.len() <= 2);
                if rows.len() > 2 {
                    assert_eq!(
                        sub["nextRecordsUrl"],
                        format!("/services/data/v62.0/query/01gAAAAAAAAAAAAAAA{u}-2")
                    );
                }
            }
            let overflowed: Vec<u32> = page.overflow.iter().map(|o| o.0).collect();
            for (u, rows) in &page.overflow {
                assert_eq!(**rows, rows_of(*u));
            }
            let expected: Vec<u32> = hits[offset..offset + page.taken]
                .iter()
                .copied()
                .filter(|&u| rows_of(u).len() > 2)
                .collect();
            assert_eq!(overflowed, expected);
            seen.extend_from_slice(&hits[offset..offset + page.taken]);
            offset += page.taken;
        }
        assert_eq!(seen, hits, "every user once, in order");
        assert!(hits.len() == 30);
    }

    #[test]
    fn the_subquery_sits_at_its_place_in_the_record() {
        let org = org();
        let (hits, projection) = Parsed::parse(SUB).unwrap().run(&org);
        let ctx = PageCtx {
            org: &org,
            version: "v62.0",
            locator: "01gAAAAAAAAAAAAAAA",
            inline: 200,
        };
        let page = render(&ctx, &hits, &projection, 2000);
        assert_eq!(page.taken, 30);
        assert!(page.overflow.is_empty());
        // First occurrences: the first user's keys.
        let first = &page.records;
        let at = |key: &str| {
            first
                .find(key)
                .unwrap_or_else(|| panic!("{key} in {first}"))
        };
        assert!(at("\"Id\":") < at("\"PermissionSetAssignments\":"));
        assert!(at("\"PermissionSetAssignments\":") < at("\"Username\":"));
    }

    #[test]
    fn subqueries_outside_user_or_beyond_one_are_refused() {
        let err = |q: &str| Parsed::parse(q).err().unwrap();
        let e = err("SELECT Id, (SELECT Id FROM Assignments) FROM PermissionSet");
        assert_eq!(e.code, "INVALID_TYPE");
        let e = err(
            "SELECT Id, (SELECT Id FROM PermissionSetAssignments), (SELECT Id FROM PermissionSetAssignments) FROM User",
        );
        assert_eq!(e.code, "MALFORMED_QUERY");
        assert!(e.message.contains("Column:55"), "{}", e.message);
    }

    #[test]
    fn locators_split_into_query_and_child() {
        let q = "01gAbCdEfGhIjKlMnO";
        assert_eq!(split_locator(q), Some((q, None)));
        assert_eq!(split_locator(&format!("{q}42")), Some((q, Some(42))));
        assert_eq!(split_locator(&format!("{q}4x")), None);
        assert_eq!(split_locator(&format!("{q}+4")), None);
        assert_eq!(split_locator("short"), None);
    }
}
