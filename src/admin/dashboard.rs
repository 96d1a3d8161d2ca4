//! Dashboard / Sync health: the outbox backlog, recent sync failures with Retry (the REST
//! API's retry: an outbox row for the object's current revision, in one transaction), and the
//! schedules with their next firing.

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use chrono::{DateTime, SecondsFormat, Utc};
use maud::{Markup, Render, html};
use std::collections::HashMap;

use super::AdminState;
use super::error::AdminError;
use super::html::{self, Nav};
use super::signed_in::AdminSession;
use crate::repo::sync_failures::ListedFailure;
use crate::repo::workers::WorkerMember;
use crate::scheduler::Schedule;
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
    let oldest_text = match oldest {
        Some(s) => format!("{s:.1} s"),
        None => "—".to_owned(),
    };
    let body = html! {
        @match query.get("done").map(String::as_str) {
            Some("retried") => (html::notice("ok", "Queued for another sync.")),
            Some("retried-all") => (html::notice(
                "ok",
                &format!(
                    "Queued {} failures for another sync.",
                    query.get("n").map_or("0", |s| s)
                ),
            )),
            _ => {}
        }
        (html::section("outbox", "Outbox", html! {
            div.grid {
                (stat("outbox-backlog", backlog, "changes waiting to be published"))
                (stat("outbox-oldest", oldest_text, "age of the oldest unpublished change"))
                (stat("failure-count", total_failures, "sync failures"))
            }
        }))
        (failures_section(&session, &failures))
        (schedules_section(&state.app.schedules))
        (workers_section(&live_workers))
    };
    Ok(html::page(&session, Nav::Dashboard, "Sync health", body))
}

/// One figure of the outbox section, with what it counts.
fn stat(id: &str, value: impl Render, what: &str) -> Markup {
    html! { div { div.stat id=(id) { (value) } div.muted { (what) } } }
}

/// The newest sync failures, each with its Retry button, and Retry all.
fn failures_section(session: &AdminSession, failures: &[ListedFailure]) -> Markup {
    let rows = failures.iter().map(|f| failure_row(session, f));
    html::section(
        "failures",
        "Recent sync failures",
        html! {
            @if failures.is_empty() {
                p.muted id="no-failures" { "No sync failures." }
            } @else {
                form method="post" action="/admin/sync/retry-all" id="retry-all-form" {
                    (html::csrf_field(session))
                    button type="submit" id="retry-all" { "Retry all" }
                }
                (html::table(Some("failure-table"), &["User", "Revision", "Salesforce error", "Attempts", "Last failed", "Action"], rows))
            }
        },
    )
}

fn failure_row(session: &AdminSession, f: &ListedFailure) -> Markup {
    let error = match &f.error_code {
        Some(c) => format!("{c}: {}", f.message),
        None => f.message.clone(),
    };
    html! {
        tr id={ "failure-" (f.id) } {
            td.name { a href={ "/admin/users/" (html::url_encode(&f.object_id)) } { (f.user_name) } }
            td.nowrap { (f.object_rev) }
            td { (error) }
            td.nowrap { (f.attempts) }
            td.nowrap { (when(f.last_failed)) }
            td {
                form method="post" action={ "/admin/sync/failures/" (html::url_encode(&f.id)) "/retry" } class="inline" {
                    (html::csrf_field(session))
                    button type="submit" name="retry" aria-label={ "Retry the sync of " (f.user_name) } { "Retry" }
                }
            }
        }
    }
}

/// The schedules with their next firing.
fn schedules_section(schedules: &[Schedule]) -> Markup {
    let now = Utc::now();
    let rows = schedules.iter().map(|s| schedule_row(s, now));
    html::section(
        "schedules",
        "Schedules",
        html! {
            @if schedules.is_empty() {
                p.muted { "No schedules configured." }
            } @else {
                (html::table(Some("schedule-table"), &["Schedule", "Enabled", "Invokes", "Next firing"], rows))
            }
        },
    )
}

fn schedule_row(s: &Schedule, now: DateTime<Utc>) -> Markup {
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
    html! {
        tr id={ "schedule-" (s.id) } {
            td { (s.id) }
            td { (if s.enabled { "yes" } else { "no" }) }
            td { (invokes) }
            td { (next) }
        }
    }
}

/// The outbound workers whose lease is live, with the mapping (lane) and partitions each
/// consumes.
fn workers_section(members: &[WorkerMember]) -> Markup {
    html::section(
        "workers",
        "Workers connected",
        html! {
            @if members.is_empty() {
                p.muted id="workers-none" { "No outbound worker is running: changes wait in the queues until one starts." }
            } @else {
                (html::table(Some("worker-table"), &["Worker", "Host", "Mapping", "Since", "Last heartbeat", "Partitions"], members.iter().map(worker_row)))
            }
        },
    )
}

fn worker_row(m: &WorkerMember) -> Markup {
    let partitions: Vec<String> = m.partitions.iter().map(i32::to_string).collect();
    html! {
        tr {
            td { (m.worker_id) }
            td { (m.host) }
            td { (m.lane) }
            td { (when(m.started_at)) }
            td { (when(m.heartbeat_at)) }
            td { (partitions.join(", ")) }
        }
    }
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
