//! Manage > User: a searchable, paged list; a user's page (fields, the Salesforce link, the
//! last sync); edit, create and delete through the REST API's managed-object service, so
//! every change commits with its outbox row and implicit sync follows. Policy failures are
//! shown next to their fields.

use std::collections::HashMap;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::SecondsFormat;
use maud::{Markup, html};
use serde_json::{Map, Value};

use super::AdminState;
use super::error::AdminError;
use super::form::FormData;
use super::html::{self, Nav};
use super::signed_in::AdminSession;
use super::user_access;
use crate::filter::{CompareOp, Filter, Literal, Pointer};
use crate::managed::ManagedError;
use crate::managed::patch::PatchOperation;
use crate::managed::policy::Failure;
use crate::repo::links::LinkEnds;
use crate::repo::managed::StoredObject;
use crate::repo::query::{QueryRequest, SortKey, TotalPolicy};
use crate::repo::sync_failures::ListedFailure;
use crate::services::sync_status::{ObjectLink, ObjectSync};

const OBJECT_TYPE: &str = "user";

const PAGE_SIZE: u32 = 20;

/// The editable properties: name, label, input type.
const FIELDS: [(&str, &str, &str); 10] = [
    ("userName", "User name", "text"),
    ("givenName", "First name", "text"),
    ("sn", "Last name", "text"),
    ("mail", "Email address", "email"),
    ("telephoneNumber", "Telephone number", "text"),
    ("description", "Description", "text"),
    ("accountStatus", "Status (active / inactive)", "text"),
    ("profileId", "Salesforce profile id", "text"),
    ("city", "City", "text"),
    ("country", "Country", "text"),
];

fn field_pointer(name: &str) -> Pointer {
    Pointer::from_tokens(vec![name.to_owned()])
}

fn text_of(body: &Map<String, Value>, name: &str) -> String {
    match body.get(name) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// `userName`, `mail` or `sn` contains `q`.
fn search_filter(q: &str) -> Filter {
    if q.is_empty() {
        return Filter::True;
    }
    Filter::Or(
        ["userName", "mail", "sn"]
            .iter()
            .map(|f| Filter::Compare {
                field: field_pointer(f),
                op: CompareOp::Co,
                value: Literal::String(q.to_owned()),
            })
            .collect(),
    )
}

/// `GET /admin/users?q=&page=`
pub async fn list(
    State(state): State<AdminState>,
    Extension(session): Extension<AdminSession>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, AdminError> {
    let q = query
        .get("q")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let page: u64 = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(0);
    let filter = search_filter(&q);
    let sort = [SortKey {
        field: field_pointer("userName"),
        ascending: true,
    }];
    let result = state
        .app
        .managed
        .query(&QueryRequest {
            object_type: OBJECT_TYPE,
            filter: &filter,
            sort: &sort,
            page_size: Some(PAGE_SIZE),
            after: None,
            offset: page * u64::from(PAGE_SIZE),
            total: TotalPolicy::Exact,
        })
        .await?;
    let total = result.total.unwrap_or(0).max(0) as u64;
    let pages = total.div_ceil(u64::from(PAGE_SIZE)).max(1);

    let body = html! {
        @if query.get("done").map(String::as_str) == Some("deleted") {
            (html::notice("ok", "User deleted."))
        }
        section {
            form id="search-form" method="get" action="/admin/users" role="search" {
                label for="q" { "Search by user name, email or last name" }
                input type="search" id="q" name="q" value=(q);
                " "
                button type="submit" id="search" { "Search" }
                " "
                a href="/admin/users/new" id="new-user" { "New user" }
            }
        }
        section {
            p.muted id="user-count" { (total) " users" }
            (html::table(
                Some("user-table"),
                &["User name", "First name", "Last name", "Email", "Status"],
                result.rows.iter().map(user_row),
            ))
            (pager(&q, page, pages))
        }
    };
    Ok(html::page(&session, Nav::Users, "Users", body))
}

fn user_row(user: &StoredObject) -> Markup {
    html! {
        tr {
            td { a href={ "/admin/users/" (html::url_encode(&user.id)) } { (text_of(&user.body, "userName")) } }
            @for name in ["givenName", "sn", "mail", "accountStatus"] {
                td { (text_of(&user.body, name)) }
            }
        }
    }
}

/// Previous, "Page n of m", Next: `page` counts from 0.
fn pager(q: &str, page: u64, pages: u64) -> Markup {
    let link = |p: u64| format!("/admin/users?q={}&page={p}", html::url_encode(q));
    html! {
        nav.pager aria-label="Pages" {
            @if page > 0 {
                a id="prev-page" href=(link(page - 1)) { "Previous" }
            }
            span id="page-of" { "Page " (page + 1) " of " (pages) }
            @if page + 1 < pages {
                a id="next-page" href=(link(page + 1)) { "Next" }
            }
        }
    }
}

/// The edit/create form. `values` are what to show, `errors` the policy failures by property.
fn user_form(
    session: &AdminSession,
    action: &str,
    rev: Option<i64>,
    values: &HashMap<String, String>,
    errors: &[Failure],
    button: &str,
) -> Markup {
    let unplaced = errors
        .iter()
        .filter(|f| !FIELDS.iter().any(|(n, _, _)| *n == f.property) && f.property != "password");
    html! {
        @if !errors.is_empty() {
            (html::notice("error", "The user was not saved: fix the fields marked below."))
        }
        @for f in unplaced {
            p.field-error { (describe(f)) }
        }
        form id="user-form" method="post" action=(action) novalidate {
            (html::csrf_field(session))
            @if let Some(rev) = rev {
                input type="hidden" name="rev" value=(rev);
            }
            @for (name, label, kind) in FIELDS {
                (field(name, label, kind, values.get(name).map_or("", String::as_str), errors))
            }
            // Write-only: never rendered back.
            (field("password", "Password (leave empty to keep)", "password", "", errors))
            p { button type="submit" id="save" { (button) } }
        }
    }
}

/// A labelled input, with the policy failures of its property below it.
fn field(name: &str, label: &str, kind: &str, value: &str, errors: &[Failure]) -> Markup {
    let errs: Vec<String> = errors
        .iter()
        .filter(|f| f.property == name)
        .map(describe)
        .collect();
    let error_id = format!("err-{name}");
    let invalid = !errs.is_empty();
    html! {
        div.form-row {
            label for={ "f-" (name) } { (label) }
            input type=(kind) id={ "f-" (name) } name=(name) value=(value)
                aria-invalid=[invalid.then_some("true")] aria-describedby=[invalid.then_some(&error_id)];
            @if invalid {
                p.field-error id=(error_id) { (errs.join("; ")) }
            }
        }
    }
}

fn describe(f: &Failure) -> String {
    let params = match &f.params {
        Some(Value::Object(m)) if !m.is_empty() => format!(
            " ({})",
            m.iter()
                .map(|(k, v)| format!(
                    "{k}: {}",
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => String::new(),
    };
    format!("{}: {}{params}", f.property, f.requirement)
}

fn values_of(body: &Map<String, Value>) -> HashMap<String, String> {
    FIELDS
        .iter()
        .map(|(n, _, _)| ((*n).to_owned(), text_of(body, n)))
        .collect()
}

fn values_from_form(form: &FormData) -> HashMap<String, String> {
    FIELDS
        .iter()
        .map(|(n, _, _)| ((*n).to_owned(), form.text(n)))
        .collect()
}

/// `GET /admin/users/new`
pub async fn new_form(Extension(session): Extension<AdminSession>) -> Response {
    let body = user_form(
        &session,
        "/admin/users",
        None,
        &HashMap::new(),
        &[],
        "Create",
    );
    html::page(&session, Nav::Users, "New user", body)
}

/// `POST /admin/users`
pub async fn create(
    State(state): State<AdminState>,
    Extension(session): Extension<AdminSession>,
    body: Bytes,
) -> Result<Response, AdminError> {
    let form = FormData::parse(&body);
    let mut object = Map::new();
    for (name, _, _) in FIELDS {
        let v = form.text(name);
        if !v.is_empty() {
            object.insert(name.to_owned(), Value::String(v));
        }
    }
    if let Some(p) = form.get("password").filter(|p| !p.is_empty()) {
        object.insert("password".into(), Value::String(p.to_owned()));
    }
    match state.app.managed.create(OBJECT_TYPE, None, object).await {
        Ok(created) => Ok(html::see_other(&format!(
            "/admin/users/{}?done=created",
            html::url_encode(&created.id)
        ))),
        Err(
            e @ (ManagedError::Policy(_)
            | ManagedError::BadRequest(_)
            | ManagedError::PreconditionFailed(_)
            | ManagedError::Limit(_)),
        ) => {
            // Shown again with what was entered: policy failures beside their fields, any
            // other refusal as a notice above the form.
            let (notice, failures) = match e {
                ManagedError::Policy(failures) => (None, failures),
                ManagedError::BadRequest(m) | ManagedError::PreconditionFailed(m) => {
                    (Some(html::notice("error", &m)), Vec::new())
                }
                ManagedError::Limit(l) => (Some(html::notice("error", &l.to_string())), Vec::new()),
                _ => (None, Vec::new()),
            };
            let form = user_form(
                &session,
                "/admin/users",
                None,
                &values_from_form(&form),
                &failures,
                "Create",
            );
            Ok(html::page_with_status(
                StatusCode::BAD_REQUEST,
                &session,
                Nav::Users,
                "New user",
                html! { @if let Some(n) = notice { (n) } (form) },
            ))
        }
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn read_user(state: &AdminState, id: &str) -> Result<StoredObject, AdminError> {
    match state.app.managed.read(OBJECT_TYPE, id).await {
        Ok(u) => Ok(u),
        Err(ManagedError::NotFound(..)) => {
            Err(AdminError::NotFound(format!("User {id} not found.")))
        }
        Err(e) => Err(e.into()),
    }
}

/// The Salesforce side of a user: link, last sync, open failure.
async fn sync_panel(
    state: &AdminState,
    session: &AdminSession,
    id: &str,
) -> Result<Markup, AdminError> {
    let ObjectSync {
        links,
        last_sync,
        open_failure,
    } = state.app.object_sync(OBJECT_TYPE, id).await?;
    Ok(html! {
        section id="salesforce" aria-labelledby="sf-h" {
            h2 id="sf-h" { "Salesforce" }
            @if links.is_empty() {
                p.muted id="sf-link" { "Not linked to a Salesforce user." }
            }
            @for link in &links { (link_line(link, id)) }
            (last_sync_line(last_sync.as_ref()))
            @if let Some(failure) = &open_failure { (failure_lines(session, failure)) }
        }
    })
}

/// A link of the user's, to its Salesforce user's page when the instance URL is known.
fn link_line(link: &ObjectLink, id: &str) -> Markup {
    let ObjectLink {
        link:
            LinkEnds {
                link_type,
                first_id: first,
                second_id: second,
            },
        system,
        instance_url,
    } = link;
    let sf_id = if second == id { first } else { second };
    html! {
        p {
            "Linked ("
            @if let Some(system) = system { (system) ", " }
            (link_type) "): "
            @match instance_url {
                Some(base) => a id="sf-link" href={ (base.trim_end_matches('/')) "/" (html::url_encode(sf_id)) } rel="noopener" { (sf_id) },
                None => span id="sf-link" { (sf_id) },
            }
        }
    }
}

/// The newest implicit-sync audit entry about the user.
fn last_sync_line(audit: Option<&Value>) -> Markup {
    let Some(a) = audit else {
        return html! { p.muted id="last-sync" { "No implicit sync recorded yet." } };
    };
    let s = |k: &str| {
        a.get(k)
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .unwrap_or_default()
    };
    html! {
        p id="last-sync" {
            "Last sync: " strong { (s("status")) }
            " (" (s("situation")) " " (s("action")) ", revision " (s("revision")) ") at " (s("timestamp"))
            @if let Some(m) = a.get("message").and_then(Value::as_str) { ": " (m) }
        }
    }
}

/// The user's open sync failure and its Retry button.
fn failure_lines(session: &AdminSession, failure: &ListedFailure) -> Markup {
    html! {
        p.error id="sync-failure" {
            "Sync failed (" (failure.attempts) " attempts, last "
            (failure.last_failed.to_rfc3339_opts(SecondsFormat::Secs, true)) "): "
            (failure.error_code.as_deref().unwrap_or("")) " " (failure.message)
        }
        form method="post" action={ "/admin/sync/failures/" (html::url_encode(&failure.id)) "/retry" } {
            (html::csrf_field(session))
            button type="submit" id="retry-user" { "Retry" }
        }
    }
}

/// The properties the form does not edit, read-only (`password` is never shown).
fn other_properties(body: &Map<String, Value>) -> Markup {
    let names: Vec<&String> = body
        .keys()
        .filter(|k| {
            !k.starts_with('_')
                && *k != "password"
                && !FIELDS.iter().any(|(n, _, _)| n == k)
                && !user_access::shows(k)
        })
        .collect();
    html! {
        @if !names.is_empty() {
            section aria-labelledby="other-h" {
                h2 id="other-h" { "Other properties" }
                table id="other-properties" {
                    tbody {
                        @for k in names {
                            tr {
                                th scope="row" { (k) }
                                td { (text_of(body, k).chars().take(500).collect::<String>()) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The sections between a user's id and its form: Salesforce, then access.
async fn panels(
    state: &AdminState,
    session: &AdminSession,
    user: &StoredObject,
) -> Result<Markup, AdminError> {
    let sync = sync_panel(state, session, &user.id).await?;
    let access = user_access::section(state, session, &user.id, user.rev, &user.body).await;
    Ok(html! { (sync) (access) })
}

fn detail_page(
    session: &AdminSession,
    user: &StoredObject,
    panels: Markup,
    values: &HashMap<String, String>,
    errors: &[Failure],
    notice: Option<Markup>,
    status: StatusCode,
) -> Response {
    let url = format!("/admin/users/{}", html::url_encode(&user.id));
    let body = html! {
        @if let Some(n) = notice { (n) }
        p.muted { "Id " code id="user-id" { (user.id) } ", revision " span id="user-rev" { (user.rev) } }
        (panels)
        (other_properties(&user.body))
        section aria-labelledby="edit-h" {
            h2 id="edit-h" { "Edit" }
            (user_form(session, &url, Some(user.rev), values, errors, "Save"))
        }
        section aria-labelledby="delete-h" {
            h2 id="delete-h" { "Delete" }
            form id="delete-form" method="post" action={ (url) "/delete" } {
                (html::csrf_field(session))
                button type="submit" class="danger" id="delete" { "Delete this user" }
                " "
                span.muted { "Its Salesforce user is deactivated (Salesforce users cannot be deleted)." }
            }
        }
    };
    let title = format!("User {}", text_of(&user.body, "userName"));
    html::page_with_status(status, session, Nav::Users, &title, body)
}

/// `GET /admin/users/{id}`
pub async fn detail(
    State(state): State<AdminState>,
    Extension(session): Extension<AdminSession>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, AdminError> {
    let user = read_user(&state, &id).await?;
    let notice = match query.get("done").map(String::as_str) {
        Some("saved") => Some(html::notice(
            "ok",
            "Saved. The change is queued for Salesforce.",
        )),
        Some("stale") => Some(html::notice(
            "error",
            "Someone else changed this user since the page was loaded: nothing was saved. Check the access below and save again.",
        )),
        Some("created") => Some(html::notice(
            "ok",
            "Created. The user is queued for Salesforce.",
        )),
        _ => None,
    };
    Ok(detail_page(
        &session,
        &user,
        panels(&state, &session, &user).await?,
        &values_of(&user.body),
        &[],
        notice,
        StatusCode::OK,
    ))
}

/// The patch that turns `current` into the form's values: replace what changed, remove what
/// was emptied, set the password only when one was typed.
fn changes(current: &Map<String, Value>, form: &FormData) -> Vec<PatchOperation> {
    let mut ops = Vec::new();
    for (name, _, _) in FIELDS {
        let new = form.text(name);
        let old = text_of(current, name);
        if new == old {
            continue;
        }
        let (operation, value) = if new.is_empty() {
            ("remove", None)
        } else {
            ("replace", Some(Value::String(new)))
        };
        ops.push(PatchOperation {
            operation: operation.to_owned(),
            field: format!("/{name}"),
            value,
            from: None,
        });
    }
    if let Some(p) = form.get("password").filter(|p| !p.is_empty()) {
        ops.push(PatchOperation::replace(
            "/password",
            Value::String(p.to_owned()),
        ));
    }
    ops
}

/// `POST /admin/users/{id}`: a patch at the revision the form was rendered from.
pub async fn save(
    State(state): State<AdminState>,
    Extension(session): Extension<AdminSession>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, AdminError> {
    let form = FormData::parse(&body);
    let user = read_user(&state, &id).await?;
    let rev = form.text("rev");
    let ops = changes(&user.body, &form);
    if ops.is_empty() {
        return Ok(html::see_other(&format!(
            "/admin/users/{}?done=saved",
            html::url_encode(&id)
        )));
    }
    let if_match = (!rev.is_empty()).then_some(rev);
    match state
        .app
        .managed
        .patch(OBJECT_TYPE, &id, &ops, if_match)
        .await
    {
        Ok(_) => Ok(html::see_other(&format!(
            "/admin/users/{}?done=saved",
            html::url_encode(&id)
        ))),
        Err(ManagedError::Policy(errors)) => {
            rerender(&state, &session, &user, &form, &errors, None).await
        }
        Err(ManagedError::PreconditionFailed(_)) => {
            let n = html::notice(
                "error",
                "Someone else changed this user since the page was loaded: nothing was saved. Reload to see their change.",
            );
            rerender(&state, &session, &user, &form, &[], Some(n)).await
        }
        Err(ManagedError::BadRequest(m)) => {
            let n = html::notice("error", &m);
            rerender(&state, &session, &user, &form, &[], Some(n)).await
        }
        Err(ManagedError::Patch(e)) => {
            let n = html::notice("error", &e.to_string());
            rerender(&state, &session, &user, &form, &[], Some(n)).await
        }
        Err(ManagedError::Limit(e)) => {
            let n = html::notice("error", &e.to_string());
            rerender(&state, &session, &user, &form, &[], Some(n)).await
        }
        Err(e) => Err(e.into()),
    }
}

/// The user's page again with the submitted values and what was wrong (400).
async fn rerender(
    state: &AdminState,
    session: &AdminSession,
    user: &StoredObject,
    form: &FormData,
    errors: &[Failure],
    notice: Option<Markup>,
) -> Result<Response, AdminError> {
    Ok(detail_page(
        session,
        user,
        panels(state, session, user).await?,
        &values_from_form(form),
        errors,
        notice,
        StatusCode::BAD_REQUEST,
    ))
}

/// `POST /admin/users/{id}/delete`
pub async fn delete(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Response, AdminError> {
    match state.app.managed.delete(OBJECT_TYPE, &id, None).await {
        Ok(_) => Ok(html::see_other("/admin/users?done=deleted")),
        Err(ManagedError::NotFound(..)) => {
            Err(AdminError::NotFound(format!("User {id} not found.")))
        }
        Err(e) => Err(e.into()),
    }
}
