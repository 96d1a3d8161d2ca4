//! A user's access in Salesforce on its page: the permission sets, permission set groups,
//! public groups and role the managed user names, edited with pick lists from the connector's
//! catalog (`services::access_catalog`). Saving patches only the kinds whose selection
//! changed, so a user who names none of a kind never starts to want "exactly none" of it.

use std::collections::BTreeSet;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::{Map, Value};

use super::AdminState;
use super::error::AdminError;
use super::form::FormData;
use super::html::{self, esc};
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
) -> String {
    let catalog = state.app.access_catalog().await;
    let mut out = String::from(
        "<section aria-labelledby=\"access-h\"><h2 id=\"access-h\">Access in Salesforce</h2>",
    );
    let catalog = match catalog {
        Ok((system, catalog)) => {
            out.push_str(&format!(
                "<p class=\"muted\">Picked from the catalog of <code>system/{}</code>; saving queues the grants for Salesforce.</p>",
                esc(&system)
            ));
            Some(catalog)
        }
        Err(e) => {
            out.push_str(&html::notice_string(
                "error",
                &format!("The catalog cannot be read ({e}): only what the user holds is listed."),
            ));
            None
        }
    };
    out.push_str(&format!(
        "<form id=\"access-form\" method=\"post\" action=\"/admin/users/{}/access\">{}\
<input type=\"hidden\" name=\"rev\" value=\"{rev}\">",
        html::url_encode(user_id),
        html::csrf_field(session).into_string()
    ));
    for (property, heading) in SETS {
        let holds = held(body, property);
        let offers = catalog.as_ref().map(|c| offered(c, property));
        let mut names: BTreeSet<&str> = holds.iter().map(String::as_str).collect();
        names.extend(offers.iter().flatten());
        out.push_str(&format!(
            "<fieldset id=\"{property}\"><legend>{heading}</legend>"
        ));
        if names.is_empty() {
            out.push_str("<p class=\"muted\">None to pick.</p>");
        }
        for (n, name) in names.iter().enumerate() {
            let checked = if holds.contains(*name) {
                " checked"
            } else {
                ""
            };
            let unknown = match &offers {
                Some(offers) if !offers.contains(name) => {
                    " <span class=\"field-error\">(not in Salesforce)</span>"
                }
                _ => "",
            };
            out.push_str(&format!(
                "<div><input type=\"checkbox\" id=\"{property}-{n}\" name=\"{property}\" value=\"{}\"{checked}> <label for=\"{property}-{n}\">{}</label>{unknown}</div>",
                esc(name),
                esc(name)
            ));
        }
        out.push_str("</fieldset>");
    }
    let role = role_of(body);
    let mut roles: BTreeSet<&str> = catalog
        .as_ref()
        .map(|c| c.roles.keys().map(String::as_str).collect())
        .unwrap_or_default();
    if !role.is_empty() {
        roles.insert(&role);
    }
    out.push_str(
        "<div class=\"form-row\"><label for=\"f-userRole\">Role</label><select id=\"f-userRole\" name=\"userRole\"><option value=\"\">(none)</option>",
    );
    for name in roles {
        let selected = if name == role { " selected" } else { "" };
        out.push_str(&format!(
            "<option value=\"{}\"{selected}>{}</option>",
            esc(name),
            esc(name)
        ));
    }
    out.push_str("</select></div><p><button type=\"submit\" id=\"save-access\">Save access</button></p></form></section>");
    out
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
            ops.push(PatchOperation {
                operation: "replace".into(),
                field: format!("/{property}"),
                value: Some(Value::Array(picked.into_iter().map(Value::from).collect())),
                from: None,
            });
        }
    }
    let role = form.text(ROLE);
    if role != role_of(current) {
        ops.push(PatchOperation {
            operation: "replace".into(),
            field: format!("/{ROLE}"),
            value: Some(match role.is_empty() {
                true => Value::Null,
                false => Value::String(role),
            }),
            from: None,
        });
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
