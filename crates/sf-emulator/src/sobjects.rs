//! `sobjects/User`: create, retrieve, update, (no) delete, describe, and `updated` for replication;
//! `sobjects/<access object>`: retrieve and describe, and for `PermissionSetAssignment` and
//! `GroupMember` create and delete (an assignment's `ExpirationDate` is its only updateable field).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::{Map, Value, json};

use super::access::{self, Col, Obj};
use super::errors::{ApiError, DmlError};
use super::limits::Caller;
use super::org::{Org, SaveKind};
use super::pubsub::rest_origin;
use super::schema::{self, Field, Val, format_datetime, idx, parse_datetime};
use super::user_writes::{self, Actor};
use super::{Shared, ids, read, write};

/// At most this many ids from `updated` (Salesforce: 600,000, else `EXCEEDED_ID_LIMIT`).
const UPDATED_ID_LIMIT: usize = 600_000;

/// Only `User` is modelled; other sObjects do not exist here.
fn check_sobject(name: &str) -> Result<(), ApiError> {
    if name.eq_ignore_ascii_case("User") {
        Ok(())
    } else {
        Err(ApiError::not_found())
    }
}

/// The access object a path names, if it names one.
fn access_object(name: &str) -> Option<Obj> {
    Obj::named(name)
}

/// The methods a record resource of `obj` allows here.
fn allowed(obj: Obj) -> &'static str {
    match obj {
        Obj::PermissionSetAssignment => "HEAD,GET,PATCH,DELETE",
        Obj::GroupMember => "HEAD,GET,DELETE",
        _ => "HEAD,GET",
    }
}

/// `POST sobjects/<access object>`.
fn create_access(shared: &Shared, obj: Obj, body: &[u8]) -> Result<Response, ApiError> {
    let fields = parse_object(body)?;
    lock_fault(shared, None)?;
    let id = {
        let mut org = write(&shared.org);
        org.create_access(obj, &fields, Utc::now())?.0
    };
    Ok(created(shared, &id))
}

/// The row of an access record by path id (a malformed id and an unknown one are both 404).
fn find_access(org: &Org, obj: Obj, id: &str) -> Result<u32, ApiError> {
    let c = ids::canonical_15(id).ok_or_else(ApiError::not_found)?;
    let row = match obj {
        Obj::Profile => org
            .profiles
            .iter()
            .position(|p| p.id.starts_with(&c))
            .and_then(|i| u32::try_from(i).ok()),
        _ => org.access.find_of(obj, &c),
    };
    row.ok_or_else(ApiError::not_found)
}

/// Parses a JSON object body, with Salesforce's `JSON_PARSER_ERROR` for anything else.
pub fn parse_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => {
            let token = if other.is_array() {
                "START_ARRAY"
            } else {
                "VALUE_STRING"
            };
            Err(ApiError::json_parse(format!(
                "Cannot deserialize instance of User from {token} value [line:1, column:1]"
            )))
        }
        Err(e) => Err(ApiError::json_parse(format!(
            "Unexpected character: {} at [line:{}, column:{}]",
            e,
            e.line(),
            e.column()
        ))),
    }
}

fn lock_fault(shared: &Shared, id: Option<&str>) -> Result<(), ApiError> {
    if shared.rng.chance(shared.faults().rate_lock_row) {
        return Err(DmlError::unable_to_lock(id).into());
    }
    Ok(())
}

/// `POST sobjects/User` → 201 `{"id","success":true,"errors":[]}`.
pub async fn create(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path((_v, sobject)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    if let Some(o) = access_object(&sobject) {
        return create_access(&shared, o, &body);
    }
    check_sobject(&sobject)?;
    let obj = parse_object(&body)?;
    let changes = Org::parse_changes(&obj, SaveKind::Create)?;
    lock_fault(&shared, None)?;
    let origin = rest_origin(&caller.version, &headers);
    let id = user_writes::create(&shared, changes, origin, Actor::Integration)?;
    Ok(created(&shared, &id))
}

/// A created record's answer, counted as one write.
fn created(shared: &Shared, id: &str) -> Response {
    shared.stats.add_written(1);
    shared.mark_dirty();
    (
        StatusCode::CREATED,
        Json(json!({ "id": id, "success": true, "errors": [] })),
    )
        .into_response()
}

/// Looks a user up by path id: a malformed id and an unknown one are both 404, with different texts.
pub(crate) fn find(org: &Org, id: &str) -> Result<usize, ApiError> {
    if ids::canonical_15(id).is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("Provided external ID field does not exist or is not accessible: {id}"),
        ));
    }
    org.find(id).ok_or_else(ApiError::not_found)
}

/// `GET sobjects/User/{id}[?fields=a,b]`.
pub async fn get_one(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path((_v, sobject, id)): Path<(String, String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    if let Some(o) = access_object(&sobject) {
        return get_access(&shared, &caller.version, o, &id, params.get("fields"));
    }
    check_sobject(&sobject)?;
    let fields: Vec<Field> = match params.get("fields") {
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(|f| {
                Field::named(f).ok_or_else(|| {
                    ApiError::bad_request("INVALID_FIELD", format!("No such column '{f}' on entity 'User'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names."))
                })
            })
            .collect::<Result<_, _>>()?,
        None => Field::all().collect(),
    };
    let mut body = String::with_capacity(1024);
    {
        let org = read(&shared.org);
        let i = find(&org, &id)?;
        let rec = org.users.get(i).ok_or_else(ApiError::not_found)?;
        schema::push_record(&mut body, &caller.version, rec, &fields);
    }
    Ok((
        [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
        body,
    )
        .into_response())
}

/// `GET sobjects/<access object>/{id}[?fields=a,b]`.
fn get_access(
    shared: &Shared,
    version: &str,
    obj: Obj,
    id: &str,
    fields: Option<&String>,
) -> Result<Response, ApiError> {
    let cols: Vec<Col> = match fields {
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(|f| Col::resolve(obj, f).map_err(|m| ApiError::bad_request("INVALID_FIELD", m)))
            .collect::<Result<_, _>>()?,
        None => access::query::all_columns(obj),
    };
    let mut body = String::with_capacity(512);
    {
        let org = read(&shared.org);
        let row = find_access(&org, obj, id)?;
        access::query::push_row(&mut body, version, &org, obj, row, &cols);
    }
    Ok((
        [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
        body,
    )
        .into_response())
}

/// `PATCH sobjects/PermissionSetAssignment/{id}` (its `ExpirationDate`) → 204.
fn update_access(shared: &Shared, obj: Obj, id: &str, body: &[u8]) -> Result<Response, ApiError> {
    if obj != Obj::PermissionSetAssignment {
        return Err(ApiError::method_not_allowed("PATCH", allowed(obj)));
    }
    let fields = parse_object(body)?;
    find_access(&read(&shared.org), obj, id)?;
    lock_fault(shared, Some(id))?;
    write(&shared.org).update_access(obj, id, &fields, Utc::now())?;
    shared.stats.add_written(1);
    shared.mark_dirty();
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE sobjects/<PermissionSetAssignment|GroupMember>/{id}` → 204.
fn delete_access(shared: &Shared, obj: Obj, id: &str) -> Result<Response, ApiError> {
    if !obj.writable() {
        return Err(ApiError::method_not_allowed("DELETE", allowed(obj)));
    }
    find_access(&read(&shared.org), obj, id)?;
    lock_fault(shared, Some(id))?;
    {
        let mut org = write(&shared.org);
        // Found above, but another call may have deleted it since.
        find_access(&org, obj, id)?;
        org.delete_access(id)?;
    }
    shared.stats.add_written(1);
    shared.mark_dirty();
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `PATCH sobjects/User/{id}` → 204.
pub async fn update(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path((_v, sobject, id)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    if let Some(o) = access_object(&sobject) {
        return update_access(&shared, o, &id, &body);
    }
    check_sobject(&sobject)?;
    let obj = parse_object(&body)?;
    let changes = Org::parse_changes(&obj, SaveKind::Update)?;
    {
        let org = read(&shared.org);
        find(&org, &id)?;
    }
    lock_fault(&shared, Some(&id))?;
    let origin = rest_origin(&caller.version, &headers);
    user_writes::update(&shared, &id, changes, origin, Actor::Integration)?;
    shared.stats.add_written(1);
    shared.mark_dirty();
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE sobjects/User/{id}`: User has no delete call (object reference: "Supported Calls" lists
/// no `delete()`). Salesforce answers the method as not allowed for the resource — 405
/// `METHOD_NOT_ALLOWED` "HTTP Method 'DELETE' not allowed. Allowed are HEAD,GET,PATCH" — the same
/// shape it uses for other disallowed methods; the exact text for User is observed, not documented.
pub async fn delete(
    State(shared): State<Arc<Shared>>,
    Path((_v, sobject, id)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    if let Some(o) = access_object(&sobject) {
        return delete_access(&shared, o, &id);
    }
    check_sobject(&sobject)?;
    Err(ApiError::method_not_allowed("DELETE", "HEAD,GET,PATCH"))
}

/// `POST sobjects/User/{id}`: only as the `?_HttpMethod=PATCH` override some clients use.
pub async fn post_on_id(
    state: State<Arc<Shared>>,
    caller: Extension<Caller>,
    headers: HeaderMap,
    path: Path<(String, String, String)>,
    Query(params): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    if params
        .get("_HttpMethod")
        .is_some_and(|m| m.eq_ignore_ascii_case("PATCH"))
    {
        return update(state, caller, headers, path, body).await;
    }
    if let Some(o) = access_object(&path.1) {
        return Err(ApiError::method_not_allowed("POST", allowed(o)));
    }
    check_sobject(&path.1)?;
    Err(ApiError::method_not_allowed("POST", "HEAD,GET,PATCH"))
}

/// `GET sobjects/User/describe`.
pub async fn describe(
    Extension(caller): Extension<Caller>,
    Path((_v, sobject)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    if let Some(o) = access_object(&sobject) {
        return Ok(Json(access_describe(&caller.version, o)));
    }
    check_sobject(&sobject)?;
    Ok(Json(schema::describe(&caller.version)))
}

fn replication_error(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("INVALID_REPLICATION_DATE", message)
}

fn parse_param(params: &HashMap<String, String>, name: &str) -> Result<DateTime<Utc>, ApiError> {
    let raw = params.get(name).ok_or_else(|| {
        // Salesforce's exact answer to a missing parameter is not documented; this is our closest.
        ApiError::bad_request("MISSING_ARGUMENT", format!("{name} parameter is required"))
    })?;
    // A `+` that was not URL-encoded arrives as a space.
    let fixed = raw.replace(' ', "+");
    let d = parse_datetime(&fixed)
        .ok_or_else(|| replication_error(format!("Invalid date/time: {raw}")))?;
    // Salesforce truncates seconds: 12:30:15 counts as 12:30:00.
    Ok(d.duration_trunc(Duration::minutes(1)).unwrap_or(d))
}

/// `GET sobjects/User/updated/?start=&end=` → `{"ids":[…],"latestDateCovered":"…"}`.
pub async fn updated(
    State(shared): State<Arc<Shared>>,
    Path((_v, sobject)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    check_sobject(&sobject)?;
    let start = parse_param(&params, "start")?;
    let end = parse_param(&params, "end")?;
    let now = Utc::now();
    if start >= end {
        // Documented rule (getUpdated): start must chronologically precede end.
        return Err(replication_error(
            "startDate must chronologically precede endDate",
        ));
    }
    // Documented rule: no more than 30 days before the day of the call.
    let floor = (now - Duration::days(30))
        .duration_trunc(Duration::days(1))
        .unwrap_or(now - Duration::days(30));
    if start < floor {
        return Err(replication_error(
            "startDate cannot be more than 30 days ago",
        ));
    }
    let now_minute = now.duration_trunc(Duration::minutes(1)).unwrap_or(now);
    let covered = end.min(now_minute);
    let ids: Vec<String> = {
        let org = read(&shared.org);
        org.users
            .iter()
            .filter(|r| matches!(r[idx::SYSTEM_MODSTAMP], Val::DateTime(d) if d >= start && d < covered))
            .filter_map(|r| r[idx::ID].as_str().map(str::to_owned))
            .collect()
    };
    if ids.len() > UPDATED_ID_LIMIT {
        return Err(ApiError::bad_request(
            "EXCEEDED_ID_LIMIT",
            "record limit reached. choose start and end dates that are closer together",
        ));
    }
    Ok(Json(
        json!({ "ids": ids, "latestDateCovered": format_datetime(covered) }),
    ))
}

/// A short `describe` of an access object: its key prefix, which calls it allows here, and its
/// fields with their types, write flags and relationships.
fn access_describe(version: &str, obj: Obj) -> Value {
    let fields: Vec<Value> = obj
        .fields()
        .iter()
        .map(|f| {
            json!({
                "name": f.name,
                "type": f.ty.describe_name(),
                "createable": f.createable,
                "updateable": f.updateable,
                "nillable": f.name != "Id",
                "filterable": true,
                "referenceTo": f.rel.map(|(_, to)| vec![to.name()]).unwrap_or_default(),
                "relationshipName": f.rel.map(|(name, _)| name),
            })
        })
        .collect();
    let base = format!("/services/data/{version}/sobjects/{}", obj.name());
    json!({
        "name": obj.name(),
        "label": obj.name(),
        "keyPrefix": obj.prefix(),
        "custom": false,
        "createable": obj.writable(),
        "updateable": obj == Obj::PermissionSetAssignment,
        "deletable": obj.writable(),
        "queryable": true,
        "retrieveable": true,
        "fields": fields,
        "urls": {
            "sobject": base,
            "describe": format!("{base}/describe"),
            "rowTemplate": format!("{base}/{{ID}}"),
        },
    })
}
