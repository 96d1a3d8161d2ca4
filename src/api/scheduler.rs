//! `GET /openidm/scheduler/job`: the configured schedules with their next and previous run.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};

use super::AppState;
use super::body::Params;
use super::error::ApiError;
use super::render;
use crate::scheduler::Schedule;

pub async fn list(State(state): State<AppState>, params: Params) -> Result<Response, ApiError> {
    params.allow_only(&["_queryFilter", "_prettyPrint", "_fields"])?;
    let filter = match params.get("_queryFilter") {
        Some(text) => {
            crate::filter::parse(text).map_err(|e| ApiError::bad_request(e.to_string()))?
        }
        None => crate::filter::Filter::True,
    };
    let previous = state.last_firings().await?;
    let jobs: Vec<Value> = state
        .schedules
        .iter()
        .map(|s| {
            job(
                s,
                previous.iter().find(|(id, _)| *id == s.id).map(|(_, t)| *t),
            )
        })
        .filter(|j| filter.matches(j))
        .collect();
    let body = json!({
        "result": jobs,
        "resultCount": jobs.len(),
        "pagedResultsCookie": null,
        "totalPagedResultsPolicy": "NONE",
        "totalPagedResults": -1,
        "remainingPagedResults": -1,
    });
    Ok(render::json(
        StatusCode::OK,
        &body,
        params.flag("_prettyPrint")?,
    ))
}

pub async fn read(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    params.allow_only(&["_prettyPrint"])?;
    let schedule = state
        .schedules
        .iter()
        .find(|s| s.id == id)
        .ok_or_else(|| ApiError::not_found(format!("Schedule {id} not found")))?;
    let previous = state.last_firings().await?;
    let last = previous.iter().find(|(p, _)| *p == id).map(|(_, t)| *t);
    Ok(render::json(
        StatusCode::OK,
        &job(schedule, last),
        params.flag("_prettyPrint")?,
    ))
}

/// The schedule file as written, with IDM's `_id`, `nextRunDate` and `previousRunDate`.
fn job(schedule: &Schedule, previous: Option<chrono::DateTime<Utc>>) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("_id".into(), Value::from(schedule.id.clone()));
    if let Value::Object(source) = &schedule.source {
        for (k, v) in source {
            out.insert(k.clone(), v.clone());
        }
    }
    out.insert("enabled".into(), Value::from(schedule.enabled));
    let next = schedule
        .enabled
        .then(|| schedule.next_after(Utc::now()))
        .flatten()
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true));
    out.insert("nextRunDate".into(), next.map_or(Value::Null, Value::from));
    out.insert(
        "previousRunDate".into(),
        previous.map_or(Value::Null, |t| {
            Value::from(t.to_rfc3339_opts(SecondsFormat::Millis, true))
        }),
    );
    Value::Object(out)
}
