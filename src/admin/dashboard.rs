//! Dashboard / Sync health: the outbox backlog, recent sync failures with Retry (the REST
//! API's retry: an outbox row for the object's current revision, in one transaction), and the
//! schedules with their next firing.

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use chrono::{DateTime, SecondsFormat, Utc};
use maud::PreEscaped;
use std::collections::HashMap;

use super::AdminState;
use super::error::AdminError;
use super::html::{self, Nav, esc, td};
use super::signed_in::AdminSession;
use crate::repo::sync_failures::ListedFailure;
use crate::repo::workers::WorkerMember;
use crate::services::sync_status::SyncHealth;

fn when(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `GET /admin`
pub async fn page(
    State(state): State<AdminState>,
    Extension(session): Extension<AdminSession>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, AdminError> {
    let SyncHealth {
        backlog,
        oldest_unpublished_secs: oldest,
        open_failures: total_failures,
        recent_failures: failures,
        live_workers,
    } = state.app.sync_health(50).await?;

    let mut body = String::new();
    match query.get("done").map(String::as_str) {
        Some("retried") => body.push_str(&html::notice_string("ok", "Queued for another sync.")),
        Some("retried-all") => body.push_str(&html::notice_string(
            "ok",
            &format!(
                "Queued {} failures for another sync.",
                query.get("n").map_or("0", |s| s)
            ),
        )),
        _ => {}
    }
    let oldest_text = match oldest {
        Some(s) => format!("{s:.1} s"),
        None => "—".to_owned(),
    };
    body.push_str(&format!(
        "<section id=\"outbox\" aria-labelledby=\"outbox-h\"><h2 id=\"outbox-h\">Outbox</h2><div class=\"grid\">\
<div><div class=\"stat\" id=\"outbox-backlog\">{backlog}</div><div class=\"muted\">changes waiting to be published</div></div>\
<div><div class=\"stat\" id=\"outbox-oldest\">{}</div><div class=\"muted\">age of the oldest unpublished change</div></div>\
<div><div class=\"stat\" id=\"failure-count\">{total_failures}</div><div class=\"muted\">sync failures</div></div></div></section>",
        esc(&oldest_text)
    ));

    body.push_str("<section id=\"failures\" aria-labelledby=\"failures-h\"><h2 id=\"failures-h\">Recent sync failures</h2>");
    if failures.is_empty() {
        body.push_str("<p class=\"muted\" id=\"no-failures\">No sync failures.</p>");
    } else {
        body.push_str(&format!(
            "<form method=\"post\" action=\"/admin/sync/retry-all\" id=\"retry-all-form\">{}\
<button type=\"submit\" id=\"retry-all\">Retry all</button></form>\
<table id=\"failure-table\"><thead><tr><th scope=\"col\">User</th><th scope=\"col\">Revision</th>\
<th scope=\"col\">Salesforce error</th><th scope=\"col\">Attempts</th><th scope=\"col\">Last failed</th><th scope=\"col\">Action</th></tr></thead><tbody>",
            html::csrf_field(&session).into_string()
        ));
        for ListedFailure {
            id,
            object_id,
            user_name,
            object_rev: rev,
            error_code: code,
            message,
            attempts,
            last_failed: last,
        } in &failures
        {
            let error = match code {
                Some(c) => format!("{c}: {message}"),
                None => message.clone(),
            };
            body.push_str(&format!(
                "<tr id=\"failure-{idesc}\"><td class=\"name\"><a href=\"/admin/users/{uid}\">{name}</a></td><td class=\"nowrap\">{rev}</td>{}<td class=\"nowrap\">{attempts}</td><td class=\"nowrap\">{}</td>\
<td><form method=\"post\" action=\"/admin/sync/failures/{iurl}/retry\" class=\"inline\">{csrf}\
<button type=\"submit\" name=\"retry\" aria-label=\"Retry the sync of {name}\">Retry</button></form></td></tr>",
                td(&error),
                esc(&when(*last)),
                idesc = esc(id),
                iurl = html::url_encode(id),
                uid = html::url_encode(object_id),
                name = esc(user_name),
                csrf = html::csrf_field(&session).into_string(),
            ));
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section>");

    body.push_str("<section id=\"schedules\" aria-labelledby=\"schedules-h\"><h2 id=\"schedules-h\">Schedules</h2>");
    if state.app.schedules.is_empty() {
        body.push_str("<p class=\"muted\">No schedules configured.</p>");
    } else {
        body.push_str("<table id=\"schedule-table\"><thead><tr><th scope=\"col\">Schedule</th><th scope=\"col\">Enabled</th><th scope=\"col\">Invokes</th><th scope=\"col\">Next firing</th></tr></thead><tbody>");
        let now = Utc::now();
        for s in state.app.schedules.iter() {
            let next = if s.enabled {
                s.next_after(now)
                    .map(when)
                    .unwrap_or_else(|| "never".into())
            } else {
                "—".into()
            };
            let invokes = s
                .source
                .get("invokeContext")
                .map(|c| c.to_string())
                .unwrap_or_default();
            body.push_str(&format!(
                "<tr id=\"schedule-{}\">{}{}{}{}</tr>",
                esc(&s.id),
                td(&s.id),
                td(if s.enabled { "yes" } else { "no" }),
                td(&invokes),
                td(&next)
            ));
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section>");
    body.push_str(&workers_section(&live_workers));
    Ok(html::page(
        &session,
        Nav::Dashboard,
        "Sync health",
        PreEscaped(body),
    ))
}

/// The outbound workers whose lease is live, with the mapping (lane) and partitions each
/// consumes.
fn workers_section(members: &[WorkerMember]) -> String {
    let mut out = String::from(
        "<section id=\"workers\" aria-labelledby=\"workers-h\"><h2 id=\"workers-h\">Workers connected</h2>",
    );
    if members.is_empty() {
        out.push_str("<p class=\"muted\" id=\"workers-none\">No outbound worker is running: changes wait in the queues until one starts.</p>");
    } else {
        out.push_str("<table id=\"worker-table\"><thead><tr><th scope=\"col\">Worker</th><th scope=\"col\">Host</th><th scope=\"col\">Mapping</th><th scope=\"col\">Since</th><th scope=\"col\">Last heartbeat</th><th scope=\"col\">Partitions</th></tr></thead><tbody>");
        for m in members {
            let partitions: Vec<String> = m.partitions.iter().map(i32::to_string).collect();
            out.push_str(&format!(
                "<tr>{}{}{}{}{}{}</tr>",
                td(&m.worker_id),
                td(&m.host),
                td(&m.lane),
                td(&when(m.started_at)),
                td(&when(m.heartbeat_at)),
                td(&partitions.join(", "))
            ));
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</section>");
    out
}

/// `POST /admin/sync/failures/{id}/retry`
pub async fn retry(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Response, AdminError> {
    if !state.app.sync_failures().retry(&id).await? {
        return Err(AdminError::NotFound(format!(
            "Sync failure {id} not found (it may have been cleared)."
        )));
    }
    Ok(html::see_other("/admin?done=retried"))
}

/// `POST /admin/sync/retry-all`
pub async fn retry_all(State(state): State<AdminState>) -> Result<Response, AdminError> {
    let n = state.app.sync_failures().retry_all().await?;
    Ok(html::see_other(&format!("/admin?done=retried-all&n={n}")))
}
