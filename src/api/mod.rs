//! The REST API under `/openidm`, in IDM's shapes. One file per resource.

pub mod access_log;
pub mod audit;
pub mod auth;
pub mod body;
pub mod client_addr;
pub mod error;
pub mod health;
pub mod idm_errors;
pub mod managed;
pub mod managed_query;
pub mod recon;
pub mod render;
pub mod repo_link;
pub mod salesforce_errors;
pub mod scheduler;
pub mod stream;
pub mod sync;
pub mod system;
pub mod system_catalog;
mod system_connector;
pub mod system_live_sync;
pub mod system_query;
pub mod url_guard;
pub mod version;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::{get, post};

use self::error::ApiError;
pub use crate::services::AppState;

pub fn router(state: AppState) -> Router {
    let authenticated = Router::new()
        .route(
            "/openidm/managed/{object_type}",
            get(managed_query::query)
                .post(managed::collection_action)
                .fallback(method_not_allowed),
        )
        .route(
            "/openidm/managed/{object_type}/{id}",
            get(managed::read)
                .put(managed::put)
                .patch(managed::patch)
                .delete(managed::delete)
                .post(managed::instance_action)
                .fallback(method_not_allowed),
        )
        .route(
            "/openidm/scheduler/job",
            get(scheduler::list).fallback(method_not_allowed),
        )
        .route(
            "/openidm/scheduler/job/{id}",
            get(scheduler::read).fallback(method_not_allowed),
        )
        .route(
            "/openidm/system",
            get(system::collection_get)
                .post(system::collection_action)
                .fallback(method_not_allowed),
        )
        .route(
            "/openidm/system/{system}",
            post(system::system_action).fallback(method_not_allowed),
        )
        .route(
            "/openidm/system/{system}/{object_type}",
            get(system::query)
                .post(system::type_action)
                .fallback(method_not_allowed),
        )
        .route(
            "/openidm/system/{system}/{object_type}/{id}",
            get(system::read)
                .put(system::update)
                .delete(system::deactivate)
                .fallback(method_not_allowed),
        )
        .route(
            "/openidm/recon",
            get(recon::list)
                .post(recon::start)
                .fallback(method_not_allowed),
        )
        .route(
            "/openidm/recon/{id}",
            get(recon::read)
                .post(recon::instance_action)
                .delete(recon::delete)
                .fallback(method_not_allowed),
        )
        .route(
            "/openidm/repo/link",
            get(repo_link::query_links).fallback(method_not_allowed),
        )
        .route(
            "/openidm/sync",
            post(sync::sync_action).fallback(method_not_allowed),
        )
        .route(
            "/openidm/sync/failures",
            get(sync::query_failures)
                .post(sync::collection_action)
                .fallback(method_not_allowed),
        )
        .route(
            "/openidm/sync/failures/{id}",
            post(sync::instance_action).fallback(method_not_allowed),
        )
        .route(
            "/openidm/audit/sync",
            get(sync::query_audit).fallback(method_not_allowed),
        )
        .route(
            "/openidm/audit/recon",
            get(audit::query_recon).fallback(method_not_allowed),
        )
        // `layer`, not `route_layer`: unknown paths also need credentials, so the API's
        // shape cannot be probed anonymously.
        .fallback(not_found)
        .layer(middleware::from_fn(idm_errors::in_idm_shape))
        .layer(middleware::from_fn_with_state(
            state.auth.clone(),
            auth::require_auth,
        ));

    Router::new()
        .route(
            "/openidm/info/ping",
            get(health::ping).fallback(method_not_allowed),
        )
        .merge(authenticated)
        .merge(crate::admin::router(&state))
        .layer(middleware::from_fn(version::check_api_version))
        .layer(middleware::from_fn(url_guard::refuse_nul))
        .layer(DefaultBodyLimit::max(crate::limits::MAX_BODY_BYTES))
        .layer(middleware::from_fn(access_log::log_request))
        .with_state(state)
}

async fn method_not_allowed() -> impl IntoResponse {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed on this resource",
    )
}

async fn not_found() -> impl IntoResponse {
    ApiError::not_found("Resource not found")
}
