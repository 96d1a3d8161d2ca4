//! `GET /openidm/system/{system}/{type}?_queryFilter=…`: an IDM query filter translated to SOQL,
//! answered in the same envelope as managed-object queries.
//!
//! # Translation
//!
//! | filter | SOQL |
//! |---|---|
//! | `true` (top level) | no `WHERE` |
//! | `a eq "x"` / `gt` `ge` `lt` `le` | `A = 'x'` / `>` `>=` `<` `<=` |
//! | `a co "x"` / `a sw "x"` | `A LIKE '%x%'` / `A LIKE 'x%'`, with `%` and `_` in `x` escaped |
//! | `a pr` | `A != null` |
//! | `and` / `or` / `!` | `(… AND …)` / `(… OR …)` / `(NOT (…))` |
//! | `a eq "x" or a eq "y"` | `(A IN ('x', 'y'))` |
//! | `_id` | `Id` |
//!
//! The translation is the Salesforce client's (`salesforce::soql_filter`, which recon and
//! correlation use too); this module resolves the fields. Fields must be attributes of the object type in the provisioner file (their `nativeName` is what
//! SOQL gets), so a filter cannot name a field the configuration does not expose, and nothing from
//! the request reaches the SOQL text except string literals written by the Salesforce client's
//! escaper ([`crate::salesforce::soql`]).
//!
//! Comparisons follow Salesforce, not Postgres: text comparisons are case-insensitive there (the
//! IDM connector left filtering to Salesforce too: `enableFilteredResultsHandler` is false).
//!
//! # Paging
//!
//! Paged queries are ordered by `Id`: `_pageSize=N` asks for `LIMIT N+1` (the extra record says
//! whether there is a next page without a further call), and the cookie is the last `Id` returned,
//! which the next page turns into `WHERE (…) AND Id > '<cookie>'`. Pages are capped at
//! [`MAX_PAGE_SIZE`] records: one Salesforce call at most. Unpaged queries stream every page.

use std::collections::BTreeSet;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::Response;
use futures_util::{Stream, StreamExt};
use serde_json::{Map, Value, json};

use super::body::Params;
use super::error::ApiError;
use super::render;
use super::salesforce_errors::sf_error;
use super::stream;
use crate::config::provisioner::AttributeConfig;
use crate::filter::{self, Filter, Pointer};
use crate::salesforce::soql_filter::{self, FieldKind, Fields, SoqlField};
use crate::salesforce::{QueryPage, Record, SalesforceClient, SalesforceError};

/// Why a filter or field list cannot become SOQL: each is the client's mistake, a 400.
pub use crate::salesforce::soql_filter::TranslateError as SoqlError;

pub const QUERY_PARAMS: &[&str] = &[
    "_queryFilter",
    "_queryId",
    "_fields",
    "_pageSize",
    "_pagedResultsCookie",
    "_pagedResultsOffset",
    "_totalPagedResultsPolicy",
    "_prettyPrint",
];

/// Largest page served: Salesforce's largest query batch, so a page is one API call.
pub const MAX_PAGE_SIZE: u32 = 2000;

/// SOQL `OFFSET` cannot exceed 2,000 (Salesforce's documented limit).
const MAX_OFFSET: u64 = 2000;

/// The field holding the revision (`_rev`), as IDM's Salesforce connector reported it.
pub const REV_FIELD: &str = "LastModifiedDate";

/// The object type's attributes, resolved for SOQL.
pub struct ObjectFields<'a> {
    pub object: String,
    pub attributes: &'a [AttributeConfig],
}

impl ObjectFields<'_> {
    /// The Salesforce field behind an attribute. `__NAME__` (ICF's name attribute) is `Username`.
    fn native_of(attr: &AttributeConfig) -> Result<String, SoqlError> {
        let native = if attr.native_name == "__NAME__" {
            "Username"
        } else {
            attr.native_name.as_str()
        };
        // Configuration is trusted, but it is still text going into a query: only field names.
        if native.is_empty()
            || !native
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(SoqlError::BadNativeName(attr.name.clone()));
        }
        Ok(native.to_owned())
    }

    /// `_fields` → the attributes to return (`None`: all of them), each `(attribute, native)`.
    pub fn selection(&self, fields: Option<&str>) -> Result<Vec<(String, String)>, SoqlError> {
        let requested: Option<Vec<&str>> = fields
            .map(|f| {
                f.split(',')
                    .map(str::trim)
                    .filter(|f| !f.is_empty())
                    .collect::<Vec<_>>()
            })
            .filter(|f| !f.is_empty() && !f.iter().any(|x| *x == "*" || *x == "/*"));
        let mut out = Vec::new();
        match requested {
            None => {
                for attr in self.attributes {
                    out.push((attr.name.clone(), Self::native_of(attr)?));
                }
            }
            Some(list) => {
                for raw in list {
                    let name = raw.strip_prefix('/').unwrap_or(raw);
                    if name == "_id" || name == "_rev" {
                        continue;
                    }
                    if name.contains('/') {
                        return Err(SoqlError::NestedField(raw.to_owned()));
                    }
                    let attr =
                        self.attributes
                            .iter()
                            .find(|a| a.name == name)
                            .ok_or_else(|| SoqlError::UnknownField {
                                field: name.to_owned(),
                                object: self.object.clone(),
                            })?;
                    out.push((attr.name.clone(), Self::native_of(attr)?));
                }
            }
        }
        Ok(out)
    }

    /// The `WHERE` condition for `filter`, or `None` for "everything".
    pub fn where_clause(&self, filter: &Filter) -> Result<Option<String>, SoqlError> {
        soql_filter::where_clause_in(filter, self)
    }
}

impl Fields for ObjectFields<'_> {
    fn resolve(&self, pointer: &Pointer) -> Result<SoqlField, SoqlError> {
        let [name] = pointer.tokens() else {
            return Err(SoqlError::NestedField(pointer.to_string()));
        };
        if name == "_id" {
            return Ok(SoqlField {
                name: name.clone(),
                native: "Id".into(),
                kind: FieldKind::Id,
                kind_name: "id".into(),
            });
        }
        let attr = self
            .attributes
            .iter()
            .find(|a| &a.name == name)
            .ok_or_else(|| SoqlError::UnknownField {
                field: name.clone(),
                object: self.object.clone(),
            })?;
        let native = Self::native_of(attr)?;
        let kind = if native == "Id" {
            FieldKind::Id
        } else {
            match attr.kind.as_str() {
                "string" => FieldKind::Text,
                "boolean" => FieldKind::Boolean,
                "integer" | "number" => FieldKind::Number,
                _ => FieldKind::Compound,
            }
        };
        Ok(SoqlField {
            name: name.clone(),
            native,
            kind,
            kind_name: attr.kind.clone(),
        })
    }
}

/// A query request, parsed and validated.
pub struct QuerySpec {
    /// The `WHERE` condition of the filter (`None`: everything), built before any Salesforce call.
    condition: Option<String>,
    select: Vec<(String, String)>,
    page_size: Option<u32>,
    after: Option<String>,
    offset: u64,
    exact_total: bool,
    pretty: bool,
}

pub fn parse(params: &Params, fields: &ObjectFields<'_>) -> Result<QuerySpec, ApiError> {
    let mut field_list = params.get("_fields");
    let filter = match (params.get("_queryFilter"), params.get("_queryId")) {
        (Some(text), None) => {
            filter::parse(text).map_err(|e| ApiError::bad_request(e.to_string()))?
        }
        (None, Some("query-all-ids")) => {
            field_list = Some("_id");
            Filter::True
        }
        (None, Some(other)) => {
            return Err(ApiError::bad_request(format!(
                "Unknown _queryId {other:?}: use _queryFilter (query-all-ids is also accepted)"
            )));
        }
        (None, None) => {
            return Err(ApiError::bad_request(
                "A query needs _queryFilter (for example _queryFilter=true)",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "_queryFilter and _queryId are mutually exclusive",
            ));
        }
    };
    let page_size = match params.whole("_pageSize")? {
        None | Some(0) => None,
        Some(n) => Some(n.min(u64::from(MAX_PAGE_SIZE)) as u32),
    };
    let after = match params.get("_pagedResultsCookie").filter(|c| !c.is_empty()) {
        None => None,
        // The cookie is the last id of the previous page: a Salesforce id or nothing.
        Some(c) if matches!(c.len(), 15 | 18) && c.bytes().all(|b| b.is_ascii_alphanumeric()) => {
            Some(c.to_owned())
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "_pagedResultsCookie is not a cookie this server issued",
            ));
        }
    };
    let offset = params.whole("_pagedResultsOffset")?.unwrap_or(0);
    if offset > MAX_OFFSET {
        return Err(ApiError::bad_request(format!(
            "_pagedResultsOffset cannot exceed {MAX_OFFSET} on system objects (a Salesforce limit): page with _pagedResultsCookie"
        )));
    }
    let exact_total = match params.get("_totalPagedResultsPolicy").unwrap_or("NONE") {
        "NONE" | "ESTIMATE" => false,
        "EXACT" => true,
        other => {
            return Err(ApiError::bad_request(format!(
                "_totalPagedResultsPolicy must be NONE, EXACT or ESTIMATE, not {other:?}"
            )));
        }
    };
    let select = fields
        .selection(field_list)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let condition = fields
        .where_clause(&filter)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(QuerySpec {
        condition,
        select,
        page_size,
        after,
        offset,
        exact_total,
        pretty: params.flag("_prettyPrint")?,
    })
}

/// What a query reads: the sObject, the field behind `_rev`, a condition every answer keeps,
/// and whether the org's describe decides which configured fields exist (the provisioner's
/// `User` attributes; fixed catalogs are not described).
pub struct Source<'a> {
    pub native_type: &'a str,
    pub rev_field: Option<&'static str>,
    pub base: Option<&'static str>,
    pub described: bool,
}

impl<'a> Source<'a> {
    /// The provisioner's user object type.
    pub fn of_users(native_type: &'a str) -> Source<'a> {
        Source {
            native_type,
            rev_field: Some(REV_FIELD),
            base: None,
            described: true,
        }
    }
}

/// The SOQL for a request. `available` holds the fields the org has (from describe, lower-cased;
/// `None`: all): configured attributes the org lacks are left out of the `SELECT`, as absent
/// attributes.
fn soql(
    spec: &QuerySpec,
    source: &Source<'_>,
    available: Option<&BTreeSet<String>>,
    count_only: bool,
) -> String {
    let mut conditions = Vec::new();
    if let Some(base) = source.base {
        conditions.push(format!("({base})"));
    }
    if let Some(c) = &spec.condition {
        conditions.push(c.clone());
    }
    if let Some(after) = &spec.after {
        // Checked to be letters and digits when parsed.
        conditions.push(format!("Id > '{after}'"));
    }
    let mut q = String::from("SELECT ");
    if count_only {
        q.push_str("COUNT()");
    } else {
        let mut seen = BTreeSet::new();
        let mut list = vec!["Id".to_owned()];
        seen.insert("id".to_owned());
        if let Some(rev) = source.rev_field {
            list.push(rev.to_owned());
            seen.insert(rev.to_ascii_lowercase());
        }
        for (_, native) in &spec.select {
            let key = native.to_ascii_lowercase();
            if available.is_none_or(|a| a.contains(&key)) && seen.insert(key) {
                list.push(native.clone());
            }
        }
        q.push_str(&list.join(", "));
    }
    q.push_str(" FROM ");
    q.push_str(source.native_type);
    if !conditions.is_empty() {
        q.push_str(" WHERE ");
        q.push_str(&conditions.join(" AND "));
    }
    if count_only {
        return q;
    }
    if let Some(n) = spec.page_size {
        // One more than asked: its presence says there is a next page.
        q.push_str(&format!(" ORDER BY Id LIMIT {}", u64::from(n) + 1));
    }
    if spec.offset > 0 {
        q.push_str(&format!(" OFFSET {}", spec.offset));
    }
    q
}

/// Answers a parsed query of `source` on `client`.
pub async fn answer(
    client: &SalesforceClient,
    spec: &QuerySpec,
    source: &Source<'_>,
) -> Result<Response, ApiError> {
    let available = match source.described {
        true => Some(client.user_field_names().await.map_err(sf_error)?),
        false => None,
    };
    let text = soql(spec, source, available.as_deref(), false);
    let total = if spec.exact_total {
        let count = soql(spec, source, available.as_deref(), true);
        Some(count_of(client, &count).await?)
    } else {
        None
    };
    let render = Renderer {
        select: spec.select.clone(),
        rev: source.rev_field,
    };
    match spec.page_size {
        Some(n) => paged(client, &text, n, &render, total, spec.pretty).await,
        None => streamed(client, &text, render, total, spec.pretty).await,
    }
}

/// The object `id` of `source` (not described) with the `_fields` selection of `params`;
/// `None` when there is none (or `id` cannot be a Salesforce id).
pub async fn by_id(
    client: &SalesforceClient,
    fields: &ObjectFields<'_>,
    source: &Source<'_>,
    id: &str,
    params: &Params,
) -> Result<Option<Value>, ApiError> {
    if !(matches!(id.len(), 15 | 18) && id.bytes().all(|b| b.is_ascii_alphanumeric())) {
        return Ok(None);
    }
    let select = fields
        .selection(params.get("_fields"))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let spec = QuerySpec {
        // Checked to be letters and digits above.
        condition: Some(format!("Id = '{id}'")),
        select,
        page_size: None,
        after: None,
        offset: 0,
        exact_total: false,
        pretty: false,
    };
    let text = soql(&spec, source, None, false);
    let render = Renderer {
        select: spec.select,
        rev: source.rev_field,
    };
    let mut pages = std::pin::pin!(client.query(&text));
    match pages.next().await {
        Some(Ok(page)) => Ok(page.records.first().map(|r| render.object(r))),
        Some(Err(e)) => Err(sf_error(e)),
        None => Ok(None),
    }
}

async fn count_of(client: &SalesforceClient, soql: &str) -> Result<i64, ApiError> {
    let mut pages = std::pin::pin!(client.query(soql));
    match pages.next().await {
        Some(Ok(page)) => Ok(i64::try_from(page.total_size).unwrap_or(i64::MAX)),
        Some(Err(e)) => Err(sf_error(e)),
        None => Ok(0),
    }
}

/// Turns Salesforce records into IDM objects: `_id`, `_rev`, then the selected attributes.
#[derive(Clone)]
pub struct Renderer {
    pub select: Vec<(String, String)>,
    /// The field behind `_rev` (`None`: `_rev` is null).
    pub rev: Option<&'static str>,
}

impl Renderer {
    pub fn object(&self, record: &Record) -> Value {
        let mut out = Map::with_capacity(self.select.len() + 2);
        let get = |name: &str| {
            record.get(name).or_else(|| {
                record
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v)
            })
        };
        out.insert("_id".into(), get("Id").cloned().unwrap_or(Value::Null));
        out.insert(
            "_rev".into(),
            self.rev.and_then(get).cloned().unwrap_or(Value::Null),
        );
        for (attr, native) in &self.select {
            if let Some(v) = get(native) {
                out.insert(attr.clone(), v.clone());
            }
        }
        Value::Object(out)
    }
}

async fn paged(
    client: &SalesforceClient,
    soql: &str,
    page_size: u32,
    render: &Renderer,
    total: Option<i64>,
    pretty: bool,
) -> Result<Response, ApiError> {
    let wanted = page_size as usize + 1;
    let mut records: Vec<Record> = Vec::with_capacity(wanted.min(256));
    let batch = (page_size + 1).clamp(200, 2000);
    let mut pages = std::pin::pin!(client.query_with_batch_size(soql, batch));
    while records.len() < wanted {
        match pages.next().await {
            Some(Ok(page)) => records.extend(page.records),
            Some(Err(e)) => return Err(sf_error(e)),
            None => break,
        }
    }
    let more = records.len() > page_size as usize;
    records.truncate(page_size as usize);
    let cookie = if more {
        records
            .last()
            .and_then(|r| r.get("Id"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    } else {
        None
    };
    let result: Vec<Value> = records.iter().map(|r| render.object(r)).collect();
    let body = envelope(result, cookie, total);
    Ok(render::json(StatusCode::OK, &body, pretty))
}

fn envelope(result: Vec<Value>, cookie: Option<String>, total: Option<i64>) -> Value {
    let count = result.len();
    json!({
        "result": result,
        "resultCount": count,
        "pagedResultsCookie": cookie,
        "totalPagedResultsPolicy": if total.is_some() { "EXACT" } else { "NONE" },
        "totalPagedResults": total.unwrap_or(-1),
        "remainingPagedResults": -1,
    })
}

/// Every match, written page by page as Salesforce returns them (memory holds one page). The
/// first page is read before answering, so an error before any result is an ordinary error
/// answer; a later failure ends the body as CREST ends a partly failed query, with `error`.
async fn streamed(
    client: &SalesforceClient,
    soql: &str,
    render: Renderer,
    total: Option<i64>,
    pretty: bool,
) -> Result<Response, ApiError> {
    let mut pages = Box::pin(client.query(soql));
    let first = match pages.next().await {
        Some(Ok(page)) => page,
        Some(Err(e)) => return Err(sf_error(e)),
        None => QueryPage {
            records: Vec::new(),
            total_size: 0,
            done: true,
        },
    };
    let total = total.or(Some(i64::try_from(first.total_size).unwrap_or(i64::MAX)));
    if first.done {
        let result = first.records.iter().map(|r| render.object(r)).collect();
        return Ok(render::json(
            StatusCode::OK,
            &envelope(result, None, total),
            pretty,
        ));
    }
    let (tx, rx) = stream::channel();
    tokio::spawn(write_pages(first, pages, render, total, pretty, tx));
    Ok(stream::json_body(rx))
}

async fn write_pages(
    first: QueryPage,
    mut pages: std::pin::Pin<Box<impl Stream<Item = Result<QueryPage, SalesforceError>>>>,
    render: Renderer,
    total: Option<i64>,
    pretty: bool,
    tx: stream::BodySender,
) {
    let mut out = String::from("{\"result\":[");
    let mut count = 0usize;
    let mut page = Some(Ok(first));
    let failure = loop {
        let current = match page {
            Some(Ok(p)) => p,
            Some(Err(e)) => break Some(e),
            None => break None,
        };
        for record in &current.records {
            if count > 0 {
                out.push(',');
            }
            let item = render.object(record);
            let text = if pretty {
                serde_json::to_string_pretty(&item)
            } else {
                serde_json::to_string(&item)
            };
            // Serialising a `Value` cannot fail (its keys are strings).
            if let Ok(text) = text {
                out.push_str(&text);
            }
            count += 1;
        }
        if tx
            .send(Ok(Bytes::from(std::mem::take(&mut out))))
            .await
            .is_err()
        {
            return; // the client went away: stop reading Salesforce
        }
        page = pages.next().await;
    };
    let mut trailer = json!({
        "resultCount": count,
        "pagedResultsCookie": null,
        "totalPagedResultsPolicy": if total.is_some() { "EXACT" } else { "NONE" },
        "totalPagedResults": total.unwrap_or(-1),
        "remainingPagedResults": -1,
    });
    if let (Some(e), Some(trailer)) = (failure, trailer.as_object_mut()) {
        trailer.insert("error".into(), sf_error(e).body());
    }
    out.push_str("],");
    out.push_str(trailer.to_string().trim_start_matches('{'));
    let _ = tx.send(Ok(Bytes::from(out))).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(name: &str, kind: &str) -> AttributeConfig {
        AttributeConfig {
            name: name.into(),
            kind: kind.into(),
            native_name: name.into(),
            native_type: kind.into(),
            required: false,
        }
    }

    fn attrs() -> Vec<AttributeConfig> {
        vec![
            attr("__NAME__", "string"),
            attr("Id", "string"),
            attr("Username", "string"),
            attr("LastName", "string"),
            attr("Email", "string"),
            attr("IsActive", "boolean"),
            attr("Address", "object"),
            attr("NumberOfFailedLogins", "integer"),
        ]
    }

    fn translate(filter: &str) -> Result<Option<String>, SoqlError> {
        let a = attrs();
        let fields = ObjectFields {
            object: "system/salesforce/User".into(),
            attributes: &a,
        };
        fields.where_clause(&filter::parse(filter).unwrap())
    }

    fn ok(filter: &str) -> String {
        translate(filter).unwrap().unwrap()
    }

    #[test]
    fn true_means_no_where_clause() {
        assert_eq!(translate("true").unwrap(), None);
        assert_eq!(ok("false"), "Id = null");
    }

    #[test]
    fn comparisons_map_onto_soql_operators() {
        assert_eq!(ok(r#"LastName eq "Smith""#), "LastName = 'Smith'");
        assert_eq!(ok(r#"LastName gt "M""#), "LastName > 'M'");
        assert_eq!(ok(r#"LastName ge "M""#), "LastName >= 'M'");
        assert_eq!(ok(r#"LastName lt "M""#), "LastName < 'M'");
        assert_eq!(ok(r#"LastName le "M""#), "LastName <= 'M'");
        assert_eq!(ok(r#"Email co "example""#), "Email LIKE '%example%'");
        assert_eq!(ok(r#"Email sw "ann""#), "Email LIKE 'ann%'");
        assert_eq!(ok("Email pr"), "Email != null");
        assert_eq!(ok("IsActive eq false"), "IsActive = false");
        assert_eq!(ok("NumberOfFailedLogins ge 3"), "NumberOfFailedLogins >= 3");
        assert_eq!(
            ok(r#"_id eq "005000000000001AAA""#),
            "Id = '005000000000001AAA'"
        );
        assert_eq!(ok(r#"__NAME__ eq "a@b.c""#), "Username = 'a@b.c'");
    }

    #[test]
    fn boolean_structure_is_parenthesised() {
        assert_eq!(
            ok(r#"(LastName eq "A" or Email eq "B") and IsActive eq true"#),
            "((LastName = 'A' OR Email = 'B') AND IsActive = true)"
        );
        assert_eq!(
            ok(r#"LastName eq "A" or LastName eq "B""#),
            "(LastName IN ('A', 'B'))"
        );
        assert_eq!(
            ok(r#"!(Email sw "autoproc")"#),
            "(NOT (Email LIKE 'autoproc%'))"
        );
        assert_eq!(
            ok(r#"true and LastName eq "A""#),
            "(Id != null AND LastName = 'A')"
        );
    }

    #[test]
    fn hostile_string_literals_stay_inside_their_quotes() {
        // A quote must not close the literal; a backslash must not escape the closing quote.
        assert_eq!(
            ok(r#"LastName eq "x' OR Username != null OR LastName = 'y""#),
            r"LastName = 'x\' OR Username != null OR LastName = \'y'"
        );
        assert_eq!(ok(r#"LastName eq "x\\""#), r"LastName = 'x\\'");
        assert_eq!(ok(r#"LastName eq "x\\'""#), r"LastName = 'x\\\''");
        assert_eq!(
            ok("LastName eq \"a\\nb\\tc\\\"d\""),
            r#"LastName = 'a\nb\tc\"d'"#
        );
        // Outside LIKE, % and _ are ordinary characters and stay as they are.
        assert_eq!(ok(r#"LastName eq "100%_x""#), "LastName = '100%_x'");
    }

    #[test]
    fn like_wildcards_in_values_are_escaped() {
        assert_eq!(ok(r#"Email sw "100%""#), r"Email LIKE '100\%%'");
        assert_eq!(ok(r#"Email co "a_b""#), r"Email LIKE '%a\_b%'");
        assert_eq!(ok(r#"Email co "%""#), r"Email LIKE '%\%%'");
        assert_eq!(ok(r#"Email sw "o'\\%""#), r"Email LIKE 'o\'\\\%%'");
    }

    #[test]
    fn fields_must_be_attributes_of_the_object_type() {
        let e = translate(r#"Password eq "x""#).unwrap_err();
        assert_eq!(
            e,
            SoqlError::UnknownField {
                field: "Password".into(),
                object: "system/salesforce/User".into()
            }
        );
        assert!(e.to_string().contains("'Password'"));
        // Case matters, as attribute names do in IDM.
        assert!(translate(r#"lastname eq "x""#).is_err());
        // A field name cannot smuggle SOQL either: it is looked up, never copied.
        assert!(translate(r#"/LastName~1x eq "x""#).is_err());
        assert!(matches!(
            translate(r#"/Address/city eq "x""#),
            Err(SoqlError::NestedField(_))
        ));
        assert!(matches!(
            translate("_rev pr"),
            Err(SoqlError::UnknownField { .. })
        ));
    }

    #[test]
    fn literal_types_must_fit_the_attribute() {
        for bad in [
            "LastName eq 3",
            "LastName eq true",
            r#"IsActive eq "true""#,
            "IsActive gt true",
            r#"NumberOfFailedLogins eq "3""#,
            "NumberOfFailedLogins co 3",
            r#"Address eq "x""#,
            r#"_id co "005""#,
        ] {
            assert!(
                matches!(translate(bad), Err(SoqlError::Type { .. })),
                "{bad}: {:?}",
                translate(bad)
            );
        }
    }

    #[test]
    fn bad_native_names_are_refused() {
        let mut a = attrs();
        a.push(AttributeConfig {
            native_name: "Email FROM User--".into(),
            ..attr("Evil", "string")
        });
        let fields = ObjectFields {
            object: "User".into(),
            attributes: &a,
        };
        let f = filter::parse("Evil pr").unwrap();
        assert_eq!(
            fields.where_clause(&f),
            Err(SoqlError::BadNativeName("Evil".into()))
        );
    }

    #[test]
    fn soql_with_paging_cookie_and_selection() {
        let a = attrs();
        let fields = ObjectFields {
            object: "User".into(),
            attributes: &a,
        };
        let spec = QuerySpec {
            condition: fields
                .where_clause(&filter::parse(r#"LastName eq "O'Hara""#).unwrap())
                .unwrap(),
            select: fields.selection(Some("_id,Username,Address")).unwrap(),
            page_size: Some(10),
            after: Some("005000000000001AAA".into()),
            offset: 0,
            exact_total: false,
            pretty: false,
        };
        // The org has no Address: it is left out of the SELECT.
        let available: BTreeSet<String> = ["id", "username", "lastmodifieddate"]
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(
            soql(&spec, &Source::of_users("User"), Some(&available), false),
            r"SELECT Id, LastModifiedDate, Username FROM User WHERE LastName = 'O\'Hara' AND Id > '005000000000001AAA' ORDER BY Id LIMIT 11"
        );
        assert_eq!(
            soql(&spec, &Source::of_users("User"), Some(&available), true),
            r"SELECT COUNT() FROM User WHERE LastName = 'O\'Hara' AND Id > '005000000000001AAA'"
        );
        // A catalog: its condition kept, no `_rev` field, no describe.
        let catalog = Source {
            native_type: "Group",
            rev_field: None,
            base: Some("Type = 'Regular'"),
            described: false,
        };
        assert_eq!(
            soql(&spec, &catalog, None, false),
            r"SELECT Id, Username, Address FROM Group WHERE (Type = 'Regular') AND LastName = 'O\'Hara' AND Id > '005000000000001AAA' ORDER BY Id LIMIT 11"
        );
        assert!(matches!(
            fields.selection(Some("Password")),
            Err(SoqlError::UnknownField { .. })
        ));
        assert_eq!(fields.selection(Some("*")).unwrap().len(), a.len());
    }

    #[test]
    fn records_render_with_id_and_rev_first() {
        let r = Renderer {
            select: vec![
                ("__NAME__".into(), "Username".into()),
                ("Username".into(), "Username".into()),
                ("Email".into(), "Email".into()),
            ],
            rev: Some(REV_FIELD),
        };
        let rec: Record = serde_json::from_value(json!({
            "Id": "005000000000001AAA", "LastModifiedDate": "2024-01-01T00:00:00.000+0000",
            "Username": "a@b.c"
        }))
        .unwrap();
        assert_eq!(
            serde_json::to_string(&r.object(&rec)).unwrap(),
            r#"{"_id":"005000000000001AAA","_rev":"2024-01-01T00:00:00.000+0000","__NAME__":"a@b.c","Username":"a@b.c"}"#
        );
    }
}
