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
use maud::PreEscaped;
use serde_json::{Map, Value};

use super::AdminState;
use super::error::AdminError;
use super::form::FormData;
use super::html::{self, Nav, esc, td};
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

    let mut body = String::new();
    if query.get("done").map(String::as_str) == Some("deleted") {
        body.push_str(&html::notice_string("ok", "User deleted."));
    }
    body.push_str(&format!(
        "<section><form id=\"search-form\" method=\"get\" action=\"/admin/users\" role=\"search\">\
<label for=\"q\">Search by user name, email or last name</label>\
<input type=\"search\" id=\"q\" name=\"q\" value=\"{}\"> <button type=\"submit\" id=\"search\">Search</button> \
<a href=\"/admin/users/new\" id=\"new-user\">New user</a></form></section>",
        esc(&q)
    ));
    body.push_str(&format!(
        "<section><p class=\"muted\" id=\"user-count\">{total} users</p>\
<table id=\"user-table\"><thead><tr><th scope=\"col\">User name</th><th scope=\"col\">First name</th>\
<th scope=\"col\">Last name</th><th scope=\"col\">Email</th><th scope=\"col\">Status</th></tr></thead><tbody>"
    ));
    for user in &result.rows {
        body.push_str(&format!(
            "<tr><td><a href=\"/admin/users/{}\">{}</a></td>{}{}{}{}</tr>",
            html::url_encode(&user.id),
            esc(&text_of(&user.body, "userName")),
            td(&text_of(&user.body, "givenName")),
            td(&text_of(&user.body, "sn")),
            td(&text_of(&user.body, "mail")),
            td(&text_of(&user.body, "accountStatus")),
        ));
    }
    body.push_str("</tbody></table><nav class=\"pager\" aria-label=\"Pages\">");
    let link = |p: u64| format!("/admin/users?q={}&amp;page={p}", html::url_encode(&q));
    if page > 0 {
        body.push_str(&format!(
            "<a id=\"prev-page\" href=\"{}\">Previous</a>",
            link(page - 1)
        ));
    }
    body.push_str(&format!(
        "<span id=\"page-of\">Page {} of {pages}</span>",
        page + 1
    ));
    if page + 1 < pages {
        body.push_str(&format!(
            "<a id=\"next-page\" href=\"{}\">Next</a>",
            link(page + 1)
        ));
    }
    body.push_str("</nav></section>");
    Ok(html::page(&session, Nav::Users, "Users", PreEscaped(body)))
}

/// The edit/create form. `values` are what to show, `errors` the policy failures by property.
fn user_form(
    session: &AdminSession,
    action: &str,
    rev: Option<i64>,
    values: &HashMap<String, String>,
    errors: &[Failure],
    button: &str,
) -> String {
    let mut out = String::new();
    let unplaced: Vec<&Failure> = errors
        .iter()
        .filter(|f| !FIELDS.iter().any(|(n, _, _)| *n == f.property) && f.property != "password")
        .collect();
    if !errors.is_empty() {
        out.push_str(&html::notice_string(
            "error",
            "The user was not saved: fix the fields marked below.",
        ));
    }
    for f in unplaced {
        out.push_str(&format!(
            "<p class=\"field-error\">{}</p>",
            esc(&describe(f))
        ));
    }
    out.push_str(&format!(
        "<form id=\"user-form\" method=\"post\" action=\"{}\" novalidate>{}",
        esc(action),
        html::csrf_field(session).into_string()
    ));
    if let Some(rev) = rev {
        out.push_str(&format!(
            "<input type=\"hidden\" name=\"rev\" value=\"{rev}\">"
        ));
    }
    let mut field = |name: &str, label: &str, kind: &str, value: &str| {
        let errs: Vec<String> = errors
            .iter()
            .filter(|f| f.property == name)
            .map(describe)
            .collect();
        let invalid = if errs.is_empty() {
            String::new()
        } else {
            format!(" aria-invalid=\"true\" aria-describedby=\"err-{name}\"")
        };
        out.push_str(&format!(
            "<div class=\"form-row\"><label for=\"f-{name}\">{}</label>\
<input type=\"{kind}\" id=\"f-{name}\" name=\"{name}\" value=\"{}\"{invalid}>",
            esc(label),
            esc(value)
        ));
        if !errs.is_empty() {
            out.push_str(&format!(
                "<p class=\"field-error\" id=\"err-{name}\">{}</p>",
                esc(&errs.join("; "))
            ));
        }
        out.push_str("</div>");
    };
    for (name, label, kind) in FIELDS {
        field(
            name,
            label,
            kind,
            values.get(name).map_or("", String::as_str),
        );
    }
    // Write-only: never rendered back.
    field("password", "Password (leave empty to keep)", "password", "");
    out.push_str(&format!(
        "<p><button type=\"submit\" id=\"save\">{}</button></p></form>",
        esc(button)
    ));
    out
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
    html::page(&session, Nav::Users, "New user", PreEscaped(body))
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
                ManagedError::Policy(failures) => (String::new(), failures),
                ManagedError::BadRequest(m) | ManagedError::PreconditionFailed(m) => {
                    (html::notice_string("error", &m), Vec::new())
                }
                ManagedError::Limit(l) => {
                    (html::notice_string("error", &l.to_string()), Vec::new())
                }
                _ => (String::new(), Vec::new()),
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
                PreEscaped(format!("{notice}{form}")),
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
) -> Result<String, AdminError> {
    let ObjectSync {
        links,
        last_sync: audit,
        open_failure: failure,
    } = state.app.object_sync(OBJECT_TYPE, id).await?;
    let mut out = String::from(
        "<section id=\"salesforce\" aria-labelledby=\"sf-h\"><h2 id=\"sf-h\">Salesforce</h2>",
    );
    if links.is_empty() {
        out.push_str("<p class=\"muted\" id=\"sf-link\">Not linked to a Salesforce user.</p>");
    }
    for ObjectLink {
        link:
            LinkEnds {
                link_type,
                first_id: first,
                second_id: second,
            },
        system,
        instance_url,
    } in &links
    {
        let sf_id = if second == id { first } else { second };
        let shown = match instance_url {
            Some(base) => format!(
                "<a id=\"sf-link\" href=\"{}/{}\" rel=\"noopener\">{}</a>",
                esc(base.trim_end_matches('/')),
                html::url_encode(sf_id),
                esc(sf_id)
            ),
            None => format!("<span id=\"sf-link\">{}</span>", esc(sf_id)),
        };
        let via = match system {
            Some(system) => format!("{}, {}", esc(system), esc(link_type)),
            None => esc(link_type),
        };
        out.push_str(&format!("<p>Linked ({via}): {shown}</p>"));
    }
    match audit {
        Some(a) => {
            let s = |k: &str| {
                a.get(k)
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                    .unwrap_or_default()
            };
            out.push_str(&format!(
                "<p id=\"last-sync\">Last sync: <strong>{}</strong> ({} {}, revision {}) at {}{}</p>",
                esc(&s("status")),
                esc(&s("situation")),
                esc(&s("action")),
                esc(&s("revision")),
                esc(&s("timestamp")),
                match a.get("message").and_then(Value::as_str) {
                    Some(m) => format!(": {}", esc(m)),
                    None => String::new(),
                }
            ));
        }
        None => {
            out.push_str("<p class=\"muted\" id=\"last-sync\">No implicit sync recorded yet.</p>")
        }
    }
    if let Some(ListedFailure {
        id: fid,
        error_code: code,
        message,
        attempts,
        last_failed: last,
        ..
    }) = failure
    {
        out.push_str(&format!(
            "<p class=\"error\" id=\"sync-failure\">Sync failed ({} attempts, last {}): {}{}</p>",
            attempts,
            esc(&last.to_rfc3339_opts(SecondsFormat::Secs, true)),
            esc(code.as_deref().unwrap_or("")),
            esc(&format!(" {message}")),
        ));
        out.push_str(&format!(
            "<form method=\"post\" action=\"/admin/sync/failures/{}/retry\">{}<button type=\"submit\" id=\"retry-user\">Retry</button></form>",
            html::url_encode(&fid),
            html::csrf_field(session).into_string()
        ));
    }
    out.push_str("</section>");
    Ok(out)
}

/// The properties the form does not edit, read-only (`password` is never shown).
fn other_properties(body: &Map<String, Value>) -> String {
    let rows: Vec<String> = body
        .iter()
        .filter(|(k, _)| {
            !k.starts_with('_')
                && *k != "password"
                && !FIELDS.iter().any(|(n, _, _)| n == k)
                && !user_access::shows(k)
        })
        .map(|(k, _)| {
            format!(
                "<tr><th scope=\"row\">{}</th>{}</tr>",
                esc(k),
                td(&text_of(body, k).chars().take(500).collect::<String>())
            )
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    format!(
        "<section aria-labelledby=\"other-h\"><h2 id=\"other-h\">Other properties</h2><table id=\"other-properties\"><tbody>{}</tbody></table></section>",
        rows.concat()
    )
}

fn detail_page(
    session: &AdminSession,
    user: &StoredObject,
    panel: &str,
    values: &HashMap<String, String>,
    errors: &[Failure],
    notice: &str,
    status: StatusCode,
) -> Response {
    let url = format!("/admin/users/{}", html::url_encode(&user.id));
    let mut body = String::from(notice);
    body.push_str(&format!(
        "<p class=\"muted\">Id <code id=\"user-id\">{}</code>, revision <span id=\"user-rev\">{}</span></p>",
        esc(&user.id),
        user.rev
    ));
    body.push_str(panel);
    body.push_str(&other_properties(&user.body));
    body.push_str("<section aria-labelledby=\"edit-h\"><h2 id=\"edit-h\">Edit</h2>");
    body.push_str(&user_form(
        session,
        &url,
        Some(user.rev),
        values,
        errors,
        "Save",
    ));
    body.push_str("</section>");
    body.push_str(&format!(
        "<section aria-labelledby=\"delete-h\"><h2 id=\"delete-h\">Delete</h2>\
<form id=\"delete-form\" method=\"post\" action=\"{url}/delete\">{}\
<button type=\"submit\" class=\"danger\" id=\"delete\">Delete this user</button> \
<span class=\"muted\">Its Salesforce user is deactivated (Salesforce users cannot be deleted).</span></form></section>",
        html::csrf_field(session).into_string()
    ));
    let title = format!("User {}", text_of(&user.body, "userName"));
    html::page_with_status(status, session, Nav::Users, &title, PreEscaped(body))
}

/// `GET /admin/users/{id}`
pub async fn detail(
    State(state): State<AdminState>,
    Extension(session): Extension<AdminSession>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, AdminError> {
    let user = read_user(&state, &id).await?;
    let mut panel = sync_panel(&state, &session, &id).await?;
    panel.push_str(&user_access::section(&state, &session, &id, user.rev, &user.body).await);
    let notice = match query.get("done").map(String::as_str) {
        Some("saved") => html::notice_string("ok", "Saved. The change is queued for Salesforce."),
        Some("stale") => html::notice_string(
            "error",
            "Someone else changed this user since the page was loaded: nothing was saved. Check the access below and save again.",
        ),
        Some("created") => html::notice_string("ok", "Created. The user is queued for Salesforce."),
        _ => String::new(),
    };
    Ok(detail_page(
        &session,
        &user,
        &panel,
        &values_of(&user.body),
        &[],
        &notice,
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
        ops.push(PatchOperation {
            operation: "replace".into(),
            field: "/password".into(),
            value: Some(Value::String(p.to_owned())),
            from: None,
        });
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
            rerender(&state, &session, &user, &form, &errors, String::new()).await
        }
        Err(ManagedError::PreconditionFailed(_)) => {
            let n = html::notice_string(
                "error",
                "Someone else changed this user since the page was loaded: nothing was saved. Reload to see their change.",
            );
            rerender(&state, &session, &user, &form, &[], n).await
        }
        Err(ManagedError::BadRequest(m)) => {
            rerender(
                &state,
                &session,
                &user,
                &form,
                &[],
                html::notice_string("error", &m),
            )
            .await
        }
        Err(ManagedError::Patch(e)) => {
            let n = html::notice_string("error", &e.to_string());
            rerender(&state, &session, &user, &form, &[], n).await
        }
        Err(ManagedError::Limit(e)) => {
            let n = html::notice_string("error", &e.to_string());
            rerender(&state, &session, &user, &form, &[], n).await
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
    notice: String,
) -> Result<Response, AdminError> {
    let mut panel = sync_panel(state, session, &user.id).await?;
    panel.push_str(&user_access::section(state, session, &user.id, user.rev, &user.body).await);
    Ok(detail_page(
        session,
        user,
        &panel,
        &values_from_form(form),
        errors,
        &notice,
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
