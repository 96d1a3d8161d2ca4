//! `GET /services/oauth2/userinfo`: OpenID Connect's UserInfo endpoint as Salesforce serves it
//! (Salesforce Help, "Query for User Information"): claims about the user the bearer token acts
//! as, including `user_id` and `organization_id` (a Pub/Sub API client's `tenantid`).
//! A missing or dead token is 403 with the identity service's plain-text codes.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::SecondsFormat;
use serde_json::{Value, json};

use super::schema::{Record, Val, idx};
use super::{Shared, lock, oauth, read};

fn text(r: &Record, f: crate::schema::Field) -> Value {
    r[f].as_str()
        .map_or(Value::Null, |s| Value::String(s.to_owned()))
}

pub async fn userinfo(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let Some(token) = oauth::bearer(&headers) else {
        return (StatusCode::FORBIDDEN, "Missing_OAuth_Token").into_response();
    };
    let live = lock(&shared.tokens).is_live(
        token,
        chrono::Utc::now(),
        shared.config.access_token_max_uses,
    );
    if !live {
        return (StatusCode::FORBIDDEN, "Bad_OAuth_Token").into_response();
    }
    let org = read(&shared.org);
    let user_id = org.integration_user_id();
    let Some(r) = org.find(&user_id).and_then(|i| org.users.get(i)) else {
        return (StatusCode::NOT_FOUND, "Bad_Id").into_response();
    };
    let base = &shared.config.base_url;
    let org_id = &org.org_id;
    let updated_at = match r[idx::LAST_MODIFIED_DATE] {
        Val::DateTime(d) => Value::String(d.to_rfc3339_opts(SecondsFormat::Secs, true)),
        _ => Value::Null,
    };
    Json(json!({
        "sub": format!("{base}/id/{org_id}/{user_id}"),
        "user_id": user_id,
        "organization_id": org_id,
        "preferred_username": text(r, idx::USERNAME),
        "nickname": text(r, idx::COMMUNITY_NICKNAME),
        "name": text(r, idx::NAME),
        "email": text(r, idx::EMAIL),
        "email_verified": true,
        "given_name": text(r, idx::FIRST_NAME),
        "family_name": text(r, idx::LAST_NAME),
        "zoneinfo": text(r, idx::TIME_ZONE),
        "active": r[idx::IS_ACTIVE] == Val::Bool(true),
        "user_type": "STANDARD",
        "language": text(r, idx::LANGUAGE),
        "locale": text(r, idx::LOCALE),
        "updated_at": updated_at,
        "is_app_installed": true,
        "urls": {
            "rest": format!("{base}/services/data/v{{version}}/"),
            "sobjects": format!("{base}/services/data/v{{version}}/sobjects/"),
            "query": format!("{base}/services/data/v{{version}}/query/"),
            "profile": format!("{base}/{user_id}"),
            "custom_domain": base,
        },
        "utcOffset": 0,
    }))
    .into_response()
}
