//! Configure > Mappings: both mappings of `sync.json` with their properties and policies, a
//! Reconcile and an Analyze (dry run) button each, the run page (live progress by polling
//! [`run_status`], then the summary) and the run history.

use std::collections::HashMap;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde_json::Value;

use super::AdminState;
use super::error::AdminError;
use super::html::{self, Nav};
use super::signed_in::AdminSession;
use crate::mapping::{Mapping, Policy, PolicyAction, PropertyMapping};
use crate::recon::{ReconEngine, ReconError, ReconRequest};
use crate::services::{self, resync::ResyncError};

fn engine(state: &AdminState) -> Result<&ReconEngine, AdminError> {
    state.app.recon.as_ref().ok_or_else(|| {
        AdminError::Unavailable(
            "Synchronization is not configured (conf/sync.json and the Salesforce provisioner)."
                .into(),
        )
    })
}

fn text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

/// The buttons of a mapping: Reconcile and Analyze (dry run) for either direction; a mapping
/// from managed objects also has Re-queue, which re-enqueues every user not known to be in
/// step with Salesforce without reading it, as `POST /openidm/sync?_action=resync` does.
fn buttons(session: &AdminSession, m: &Mapping) -> Markup {
    let url = html::url_encode(&m.name);
    let name = &m.name;
    let action = |what: &str| format!("/admin/mappings/{url}/{what}");
    html! {
        form method="post" action=(action("reconcile")) class="inline" {
            (html::csrf_field(session))
            button type="submit" id={ "reconcile-" (name) } aria-label={ "Reconcile " (name) } { "Reconcile" }
        }
        " "
        form method="post" action=(action("analyze")) class="inline" {
            (html::csrf_field(session))
            button type="submit" class="secondary" id={ "analyze-" (name) } aria-label={ "Analyze " (name) " (dry run)" } { "Analyze" }
        }
        @if m.source.starts_with("managed/") {
            " "
            form method="post" action=(action("resync")) class="inline" {
                (html::csrf_field(session))
                button type="submit" class="secondary" id={ "resync-" (name) } aria-label={ "Re-queue " (name) ": push every lagging user" } { "Re-queue" }
            }
            " "
            span.muted { "Reconcile reads Salesforce and queues the users that differ; Re-queue queues every user whose link lags, without reading Salesforce." }
        }
    }
}

fn mapping_section(session: &AdminSession, m: &Mapping) -> Markup {
    let hooks = m.hooks.configured();
    html! {
        section id={ "mapping-" (m.name) } aria-labelledby={ "mh-" (m.name) } {
            h2 id={ "mh-" (m.name) } { (m.display_name.as_deref().unwrap_or(&m.name)) }
            p {
                code { (m.source) } " → " code { (m.target) }
                @if !m.enable_sync { " (sync disabled)" }
            }
            (buttons(session, m))
            h3 { "Properties" }
            (html::table(None, &["Source", "Target", "Transform / condition", "Default"], m.properties.iter().map(property_row)))
            h3 { "Policies" }
            (html::table(None, &["Situation", "Action", "Condition"], m.policies.iter().map(policy_row)))
            @if !hooks.is_empty() {
                h3 { "Event scripts" }
                p { (hooks.join(", ")) }
            }
        }
    }
}

fn property_row(p: &PropertyMapping) -> Markup {
    let mut extra = Vec::new();
    if p.transform.is_some() {
        extra.push("transform script");
    }
    if p.condition.is_some() {
        extra.push("condition");
    }
    html! {
        tr {
            td { (p.source.as_deref().unwrap_or("—")) }
            td { (p.target) }
            td { (extra.join(", ")) }
            td { (p.default.as_ref().map(text).unwrap_or_default()) }
        }
    }
}

fn policy_row(p: &Policy) -> Markup {
    let action = match &p.action {
        PolicyAction::Static(a) => a.as_str(),
        PolicyAction::Script(_) => "script",
    };
    html! {
        tr {
            td { (p.situation.as_str()) }
            td { (action) }
            td { (if p.condition.is_some() { "yes" } else { "" }) }
        }
    }
}

/// `GET /admin/mappings`
pub async fn page(
    State(state): State<AdminState>,
    Extension(session): Extension<AdminSession>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, AdminError> {
    let engine = engine(&state)?;
    let runs = engine.list(20).await?;
    let body = html! {
        @if query.get("done").map(String::as_str) == Some("resync") {
            (resync_notice(query.get("n").and_then(|n| n.parse().ok()).unwrap_or(0)))
        }
        @if query.get("error").map(String::as_str) == Some("running") {
            (html::notice("error", "A reconciliation of that mapping is already running."))
        }
        @for m in &engine.sync_config().mappings {
            (mapping_section(&session, m))
        }
        (html::section("history", "Run history", html::table(
            Some("run-table"),
            &["Run", "Mapping", "State", "Started", "Duration", "Succeeded / failed"],
            runs.iter().map(run_row),
        )))
    };
    Ok(html::page(&session, Nav::Mappings, "Mappings", body))
}

fn resync_notice(n: u64) -> Markup {
    html::notice(
        "ok",
        &format!(
            "{n} user{} queued for Salesforce.",
            if n == 1 { "" } else { "s" }
        ),
    )
}

/// A run of the history: its summary as the REST API answers it.
fn run_row(run: &Value) -> Markup {
    let id = text(&run["_id"]);
    let analyze = run["parameters"]["analyze"].as_bool() == Some(true);
    html! {
        tr {
            td {
                a href={ "/admin/recon/" (html::url_encode(&id)) } { (id) }
                @if analyze { " (analyze)" }
            }
            td { (text(&run["mapping"])) }
            td { (text(&run["state"])) }
            td { (text(&run["started"])) }
            td { (text(&run["duration"])) " ms" }
            td { (text(&run["statusSummary"]["SUCCESS"])) " / " (text(&run["statusSummary"]["FAILURE"])) }
        }
    }
}

/// `POST /admin/mappings/{name}/reconcile|analyze`: starts a run, then shows its page.
pub async fn start(
    State(state): State<AdminState>,
    Path((name, action)): Path<(String, String)>,
) -> Result<Response, AdminError> {
    let analyze = match action.as_str() {
        "reconcile" => false,
        "analyze" => true,
        "resync" => return resync(&state, &name).await,
        _ => return Err(AdminError::NotFound("No such action.".into())),
    };
    let request = ReconRequest {
        mapping: name,
        analyze,
        ..ReconRequest::default()
    };
    match engine(&state)?.start(request).await {
        Ok(started) => Ok(html::see_other(&format!(
            "/admin/recon/{}",
            html::url_encode(&started.id)
        ))),
        Err(ReconError::AlreadyRunning(_)) => Ok(html::see_other("/admin/mappings?error=running")),
        Err(ReconError::UnknownMapping(m)) => {
            Err(AdminError::NotFound(format!("Mapping {m} not found.")))
        }
        Err(ReconError::BadRequest(m)) => Err(AdminError::BadRequest(m)),
        Err(e @ ReconError::ConnectorDisabled(_)) => Err(AdminError::Unavailable(e.to_string())),
        Err(e) => Err(e.into()),
    }
}

/// Re-enqueues the users of an outbound mapping not known to be in step with Salesforce.
async fn resync(state: &AdminState, name: &str) -> Result<Response, AdminError> {
    let n = services::resync::resync(&state.app, name)
        .await
        .map_err(|e| match e {
            ResyncError::NotConfigured => AdminError::Unavailable(format!("{e}.")),
            ResyncError::UnknownMapping(_) => AdminError::NotFound(format!("{e}.")),
            ResyncError::NotFromManaged(_) => AdminError::BadRequest(format!("{e}.")),
            ResyncError::Repo(e) => e.into(),
        })?;
    Ok(html::see_other(&format!(
        "/admin/mappings?done=resync&n={n}"
    )))
}

async fn summary(state: &AdminState, id: &str) -> Result<Value, AdminError> {
    match engine(state)?.get(id).await {
        Ok(s) => Ok(s),
        Err(ReconError::NotFound(_)) => Err(AdminError::NotFound(format!("Run {id} not found."))),
        Err(e) => Err(e.into()),
    }
}

/// `GET /admin/recon/{id}`
pub async fn run_page(
    State(state): State<AdminState>,
    Extension(session): Extension<AdminSession>,
    Path(id): Path<String>,
) -> Result<Response, AdminError> {
    let s = summary(&state, &id).await?;
    let run_state = text(&s["state"]);
    let src = &s["progress"]["source"]["existing"];
    let body = html! {
        section id="run" data-state=(run_state) data-status-url={ "/admin/recon/" (html::url_encode(&id)) "/status" } aria-live="polite" {
            p {
                "Mapping " strong id="run-mapping" { (text(&s["mapping"])) }
                @if s["parameters"]["analyze"].as_bool() == Some(true) { " (analyze: nothing is changed)" }
            }
            p {
                "State: " strong id="run-state" { (run_state) }
                " · " span id="run-stage" { (text(&s["stageDescription"])) }
            }
            p {
                "Source processed: " span id="run-processed" { (text(&src["processed"])) " / " (text(&src["total"])) }
                " · Duration: " span id="run-duration" { (format!("{:.1}", s["duration"].as_f64().unwrap_or(0.0) / 1000.0)) " s" }
            }
        }
        @if run_state != "ACTIVE" { (summary_section(&s)) }
        p { a href="/admin/mappings" { "Back to the mappings" } }
    };
    Ok(html::page(&session, Nav::Mappings, "Reconciliation", body))
}

/// A finished run's situations, statuses and targets.
fn summary_section(s: &Value) -> Markup {
    let t = &s["progress"]["target"];
    html::section(
        "summary",
        "Summary",
        html! {
            div.grid {
                div {
                    h3 { "Situations" }
                    table id="situations" { tbody { (counts("situation", &s["situationSummary"])) } }
                }
                div {
                    h3 { "Statuses" }
                    table id="statuses" { tbody { (counts("status", &s["statusSummary"])) } }
                    h3 { "Targets" }
                    table id="targets" {
                        tbody {
                            @for k in ["created", "updated", "unchanged", "deleted"] {
                                (count_row(Some(&format!("target-{k}")), k, &t[k]))
                            }
                            (count_row(None, "links created", &s["progress"]["links"]["created"]))
                        }
                    }
                }
            }
            p {
                "Started " (text(&s["started"])) " · ended " (text(&s["ended"])) " · "
                span id="run-total-duration" { (text(&s["duration"])) " ms" }
            }
        },
    )
}

/// A row a key of a summary's object of counts; `kind` prefixes the rows' ids.
fn counts(kind: &str, map: &Value) -> Markup {
    html! {
        @if let Some(map) = map.as_object() {
            @for (k, v) in map {
                (count_row(Some(&format!("{kind}-{k}")), k, v))
            }
        }
    }
}

fn count_row(id: Option<&str>, heading: &str, count: &Value) -> Markup {
    html! { tr id=[id] { th scope="row" { (heading) } td { (text(count)) } } }
}

/// `GET /admin/recon/{id}/status`: the run's summary as JSON, for the run page's script.
pub async fn run_status(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Response, AdminError> {
    let s = summary(&state, &id).await?;
    let mut res = axum::Json(s).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}
