//! A user's access in Salesforce on its page: the permission sets, permission set groups,
//! public groups and role the managed user names, edited with pick lists from the connector's
//! catalog (`services::access_catalog`). Saving patches only the kinds whose selection
//! changed, so a user who names none of a kind never starts to want "exactly none" of it.

use std::collections::BTreeSet;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use maud::{Markup, html};
use serde_json::{Map, Value};

use super::AdminState;
use super::error::AdminError;
use super::form::FormData;
use super::html;
use super::signed_in::AdminSession;
use crate::managed::ManagedError;
use crate::managed::patch::PatchOperation;
use crate::salesforce::access::{AccessCatalog, grant_names};

/// The multi-valued kinds: managed property, heading.
const SETS: [(&str, &str); 3] = [
    ("permissionSets", "Permission sets"),
    ("permissionSetGroups", "Permission set groups"),
    ("publicGroups", "Public groups"),
];
const ROLE: &str = "userRole";

/// Whether `property` is shown (and edited) in this section.
pub fn shows(property: &str) -> bool {
    property == ROLE || SETS.iter().any(|(p, _)| *p == property)
}

/// The names a property holds (an array of strings, or one string).
fn held(body: &Map<String, Value>, property: &str) -> BTreeSet<String> {
    body.get(property).map(grant_names).unwrap_or_default()
}

fn role_of(body: &Map<String, Value>) -> String {
    body.get(ROLE)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// The names the catalog offers for a kind.
fn offered<'a>(catalog: &'a AccessCatalog, property: &str) -> BTreeSet<&'a str> {
    match property {
        "permissionSets" => catalog.permission_sets.keys().map(String::as_str).collect(),
        "permissionSetGroups" => catalog
            .permission_set_groups
            .keys()
            .map(String::as_str)
            .collect(),
        _ => catalog.public_groups.keys().map(String::as_str).collect(),
    }
}

/// The section on a user's page.
pub async fn section(
    state: &AdminState,
    session: &AdminSession,
    user_id: &str,
    rev: i64,
    body: &Map<String, Value>,
) -> Markup {
    let (source, catalog) = match state.app.access_catalog().await {
        Ok((system, catalog)) => (
            html! {
                p.muted {
                    "Picked from the catalog of " code { "system/" (system) }
                    "; saving queues the grants for Salesforce."
                }
            },
            Some(catalog),
        ),
        Err(e) => (
            html::notice(
                "error",
                &format!("The catalog cannot be read ({e}): only what the user holds is listed."),
            ),
            None,
        ),
    };
    html! {
        section aria-labelledby="access-h" {
            h2 id="access-h" { "Access in Salesforce" }
            (source)
            form id="access-form" method="post" action={ "/admin/users/" (html::url_encode(user_id)) "/access" } {
                (html::csrf_field(session))
                input type="hidden" name="rev" value=(rev);
                @for (property, heading) in SETS {
                    (check_boxes(property, heading, body, catalog.as_deref()))
                }
                (role_select(body, catalog.as_deref()))
                p { button type="submit" id="save-access" { "Save access" } }
            }
        }
    }
}

/// A kind's check boxes: what the user holds (flagged when the catalog lacks it) and what the
/// catalog offers.
fn check_boxes(
    property: &str,
    heading: &str,
    body: &Map<String, Value>,
    catalog: Option<&AccessCatalog>,
) -> Markup {
    let holds = held(body, property);
    let offers = catalog.map(|c| offered(c, property));
    let mut names: BTreeSet<&str> = holds.iter().map(String::as_str).collect();
    names.extend(offers.iter().flatten());
    html! {
        fieldset id=(property) {
            legend { (heading) }
            @if names.is_empty() {
                p.muted { "None to pick." }
            }
            @for (n, name) in names.iter().enumerate() {
                div {
                    input type="checkbox" id={ (property) "-" (n) } name=(property) value=(name) checked[holds.contains(*name)];
                    " "
                    label for={ (property) "-" (n) } { (name) }
                    @if offers.as_ref().is_some_and(|offers| !offers.contains(name)) {
                        " "
                        span.field-error { "(not in Salesforce)" }
                    }
                }
            }
        }
    }
}

/// The role pick list: the catalog's roles and the one the user names.
fn role_select(body: &Map<String, Value>, catalog: Option<&AccessCatalog>) -> Markup {
    let role = role_of(body);
    let mut roles: BTreeSet<&str> = catalog
        .map(|c| c.roles.keys().map(String::as_str).collect())
        .unwrap_or_default();
    if !role.is_empty() {
        roles.insert(&role);
    }
    html! {
        div.form-row {
            label for="f-userRole" { "Role" }
            select id="f-userRole" name="userRole" {
                option value="" { "(none)" }
                @for name in roles {
                    option value=(name) selected[name == role] { (name) }
                }
            }
        }
    }
}

/// The patch from what `current` names to the form's selection: only the kinds that changed.
fn changes(current: &Map<String, Value>, form: &FormData) -> Vec<PatchOperation> {
    let mut ops = Vec::new();
    for (property, _) in SETS {
        let picked: BTreeSet<String> = form
            .all(property)
            .into_iter()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if picked != held(current, property) {
            let picked = Value::Array(picked.into_iter().map(Value::from).collect());
            ops.push(PatchOperation::replace(format!("/{property}"), picked));
        }
    }
    let role = form.text(ROLE);
    if role != role_of(current) {
        let role = match role.is_empty() {
            true => Value::Null,
            false => Value::String(role),
        };
        ops.push(PatchOperation::replace(format!("/{ROLE}"), role));
    }
    ops
}

/// `POST /admin/users/{id}/access`
pub async fn save(
    State(state): State<AdminState>,
    Extension(_session): Extension<AdminSession>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, AdminError> {
    let form = FormData::parse(&body);
    let user = super::users::read_user(&state, &id).await?;
    let back = |done: &str| {
        html::see_other(&format!(
            "/admin/users/{}?done={done}",
            html::url_encode(&id)
        ))
    };
    let ops = changes(&user.body, &form);
    if ops.is_empty() {
        return Ok(back("saved"));
    }
    let rev = form.text("rev");
    let if_match = (!rev.is_empty()).then_some(rev);
    match state.app.managed.patch("user", &id, &ops, if_match).await {
        Ok(_) => Ok(back("saved")),
        Err(ManagedError::PreconditionFailed(_)) => Ok(back("stale")),
        Err(ManagedError::Policy(failures)) => Err(AdminError::BadRequest(
            failures
                .iter()
                .map(|f| format!("{}: {}", f.property, f.requirement))
                .collect::<Vec<_>>()
                .join("; "),
        )),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_kinds_whose_selection_changed_are_patched() {
        let current = json!({"permissionSets": ["A", "B"], "userRole": "CEO"});
        let current = current.as_object().cloned().unwrap_or_default();
        let form =
            FormData::parse(b"permissionSets=B&permissionSets=A&publicGroups=G&userRole=CEO&rev=3");
        let ops = changes(&current, &form);
        assert_eq!(ops.len(), 1);
        assert_eq!(ops[0].field, "/publicGroups");
        assert_eq!(ops[0].value, Some(json!(["G"])));
        // Nothing picked where nothing was named: no wish, no patch; the role cleared.
        let ops = changes(
            &current,
            &FormData::parse(b"permissionSets=A&permissionSets=B"),
        );
        assert_eq!(ops.len(), 1);
        assert_eq!(ops[0].field, "/userRole");
        assert_eq!(ops[0].value, Some(Value::Null));
    }
}
