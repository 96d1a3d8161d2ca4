//! Configure > Mappings: both mappings of `sync.json` with their properties and policies, a
//! Reconcile and an Analyze (dry run) button each, the run page (live progress by polling
//! [`run_status`], then the summary) and the run history.

use std::collections::HashMap;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use maud::PreEscaped;
use serde_json::Value;

use super::AdminState;
use super::error::AdminError;
use super::html::{self, Nav, esc, td};
use super::signed_in::AdminSession;
use crate::mapping::{Mapping, PolicyAction};
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
fn buttons(session: &AdminSession, m: &Mapping) -> String {
    let name = esc(&m.name);
    let url = html::url_encode(&m.name);
    let csrf = html::csrf_field(session).into_string();
    let mut out = format!(
        "<form method=\"post\" action=\"/admin/mappings/{url}/reconcile\" class=\"inline\">{csrf}\
<button type=\"submit\" id=\"reconcile-{name}\" aria-label=\"Reconcile {name}\">Reconcile</button></form> \
<form method=\"post\" action=\"/admin/mappings/{url}/analyze\" class=\"inline\">{csrf}\
<button type=\"submit\" class=\"secondary\" id=\"analyze-{name}\" aria-label=\"Analyze {name} (dry run)\">Analyze</button></form>"
    );
    if m.source.starts_with("managed/") {
        out.push_str(&format!(
            " <form method=\"post\" action=\"/admin/mappings/{url}/resync\" class=\"inline\">{csrf}\
<button type=\"submit\" class=\"secondary\" id=\"resync-{name}\" aria-label=\"Re-queue {name}: push every lagging user\">Re-queue</button></form> \
<span class=\"muted\">Reconcile reads Salesforce and queues the users that differ; Re-queue queues every user whose link lags, without reading Salesforce.</span>"
        ));
    }
    out
}

fn mapping_section(session: &AdminSession, m: &Mapping) -> String {
    let name = esc(&m.name);
    let mut out = format!(
        "<section id=\"mapping-{name}\" aria-labelledby=\"mh-{name}\"><h2 id=\"mh-{name}\">{}</h2>\
<p><code>{}</code> → <code>{}</code>{}</p>{}",
        esc(m.display_name.as_deref().unwrap_or(&m.name)),
        esc(&m.source),
        esc(&m.target),
        if m.enable_sync {
            ""
        } else {
            " (sync disabled)"
        },
        buttons(session, m),
    );
    out.push_str("<h3>Properties</h3><table><thead><tr><th scope=\"col\">Source</th><th scope=\"col\">Target</th><th scope=\"col\">Transform / condition</th><th scope=\"col\">Default</th></tr></thead><tbody>");
    for p in &m.properties {
        let mut extra = Vec::new();
        if p.transform.is_some() {
            extra.push("transform script");
        }
        if p.condition.is_some() {
            extra.push("condition");
        }
        out.push_str(&format!(
            "<tr>{}{}{}{}</tr>",
            td(p.source.as_deref().unwrap_or("—")),
            td(&p.target),
            td(&extra.join(", ")),
            td(&p.default.as_ref().map(text).unwrap_or_default()),
        ));
    }
    out.push_str("</tbody></table><h3>Policies</h3><table><thead><tr><th scope=\"col\">Situation</th><th scope=\"col\">Action</th><th scope=\"col\">Condition</th></tr></thead><tbody>");
    for p in &m.policies {
        let action = match &p.action {
            PolicyAction::Static(a) => a.as_str().to_owned(),
            PolicyAction::Script(_) => "script".to_owned(),
        };
        out.push_str(&format!(
            "<tr>{}{}{}</tr>",
            td(p.situation.as_str()),
            td(&action),
            td(if p.condition.is_some() { "yes" } else { "" })
        ));
    }
    out.push_str("</tbody></table>");
    let hooks = m.hooks.configured();
    if !hooks.is_empty() {
        out.push_str(&format!(
            "<h3>Event scripts</h3><p>{}</p>",
            esc(&hooks.join(", "))
        ));
    }
    out.push_str("</section>");
    out
}

/// `GET /admin/mappings`
pub async fn page(
    State(state): State<AdminState>,
    Extension(session): Extension<AdminSession>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, AdminError> {
    let engine = engine(&state)?;
    let mut body = String::new();
    if query.get("done").map(String::as_str) == Some("resync") {
        let n: u64 = query.get("n").and_then(|n| n.parse().ok()).unwrap_or(0);
        body.push_str(&html::notice_string(
            "ok",
            &format!(
                "{n} user{} queued for Salesforce.",
                if n == 1 { "" } else { "s" }
            ),
        ));
    }
    if query.get("error").map(String::as_str) == Some("running") {
        body.push_str(&html::notice_string(
            "error",
            "A reconciliation of that mapping is already running.",
        ));
    }
    for m in &engine.sync_config().mappings {
        body.push_str(&mapping_section(&session, m));
    }
    body.push_str("<section id=\"history\" aria-labelledby=\"history-h\"><h2 id=\"history-h\">Run history</h2>\
<table id=\"run-table\"><thead><tr><th scope=\"col\">Run</th><th scope=\"col\">Mapping</th><th scope=\"col\">State</th>\
<th scope=\"col\">Started</th><th scope=\"col\">Duration</th><th scope=\"col\">Succeeded / failed</th></tr></thead><tbody>");
    for run in engine.list(20).await? {
        let id = text(&run["_id"]);
        let analyze = run["parameters"]["analyze"].as_bool() == Some(true);
        body.push_str(&format!(
            "<tr><td><a href=\"/admin/recon/{}\">{}</a>{}</td>{}{}{}{}{}</tr>",
            html::url_encode(&id),
            esc(&id),
            if analyze { " (analyze)" } else { "" },
            td(&text(&run["mapping"])),
            td(&text(&run["state"])),
            td(&text(&run["started"])),
            td(&format!("{} ms", text(&run["duration"]))),
            td(&format!(
                "{} / {}",
                text(&run["statusSummary"]["SUCCESS"]),
                text(&run["statusSummary"]["FAILURE"])
            )),
        ));
    }
    body.push_str("</tbody></table></section>");
    Ok(html::page(
        &session,
        Nav::Mappings,
        "Mappings",
        PreEscaped(body),
    ))
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
    let mut body = format!(
        "<section id=\"run\" data-state=\"{}\" data-status-url=\"/admin/recon/{}/status\" aria-live=\"polite\">\
<p>Mapping <strong id=\"run-mapping\">{}</strong>{}</p>\
<p>State: <strong id=\"run-state\">{}</strong> · <span id=\"run-stage\">{}</span></p>\
<p>Source processed: <span id=\"run-processed\">{} / {}</span> · Duration: <span id=\"run-duration\">{:.1} s</span></p></section>",
        esc(&run_state),
        html::url_encode(&id),
        esc(&text(&s["mapping"])),
        if s["parameters"]["analyze"].as_bool() == Some(true) {
            " (analyze: nothing is changed)"
        } else {
            ""
        },
        esc(&run_state),
        esc(&text(&s["stageDescription"])),
        esc(&text(&src["processed"])),
        esc(&text(&src["total"])),
        s["duration"].as_f64().unwrap_or(0.0) / 1000.0,
    );
    if run_state != "ACTIVE" {
        body.push_str("<section id=\"summary\" aria-labelledby=\"summary-h\"><h2 id=\"summary-h\">Summary</h2><div class=\"grid\"><div><h3>Situations</h3><table id=\"situations\"><tbody>");
        if let Some(map) = s["situationSummary"].as_object() {
            for (k, v) in map {
                body.push_str(&format!(
                    "<tr id=\"situation-{}\"><th scope=\"row\">{}</th>{}</tr>",
                    esc(k),
                    esc(k),
                    td(&text(v))
                ));
            }
        }
        body.push_str("</tbody></table></div><div><h3>Statuses</h3><table id=\"statuses\"><tbody>");
        if let Some(map) = s["statusSummary"].as_object() {
            for (k, v) in map {
                body.push_str(&format!(
                    "<tr id=\"status-{}\"><th scope=\"row\">{}</th>{}</tr>",
                    esc(k),
                    esc(k),
                    td(&text(v))
                ));
            }
        }
        let t = &s["progress"]["target"];
        body.push_str("</tbody></table><h3>Targets</h3><table id=\"targets\"><tbody>");
        for k in ["created", "updated", "unchanged", "deleted"] {
            body.push_str(&format!(
                "<tr id=\"target-{k}\"><th scope=\"row\">{k}</th>{}</tr>",
                td(&text(&t[k]))
            ));
        }
        body.push_str(&format!(
            "<tr><th scope=\"row\">links created</th>{}</tr></tbody></table></div></div>\
<p>Started {} · ended {} · <span id=\"run-total-duration\">{} ms</span></p></section>",
            td(&text(&s["progress"]["links"]["created"])),
            esc(&text(&s["started"])),
            esc(&text(&s["ended"])),
            esc(&text(&s["duration"])),
        ));
    }
    body.push_str("<p><a href=\"/admin/mappings\">Back to the mappings</a></p>");
    Ok(html::page(
        &session,
        Nav::Mappings,
        "Reconciliation",
        PreEscaped(body),
    ))
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
