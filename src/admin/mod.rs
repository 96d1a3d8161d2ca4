//! The Admin UI under `/admin`: server-rendered pages for the sample's walk-through (log in,
//! connect Salesforce, mappings and reconciliation, users, sync health). Served by `serve` on the
//! API's listener; no build step, one CSS and one JS file compiled into the binary.
//!
//! | file | responsibility |
//! |---|---|
//! | `settings.rs` | cookie `Secure`, idle and absolute session expiry, public URL (environment) |
//! | `signed_in.rs` | who is signed in (`AdminSession`), the request extension pages read |
//! | `session.rs` | sessions (stored through `repo::admin_sessions`), the cookie, the guard that also checks CSRF on every POST |
//! | `login.rs` | log-in (through the shared `credentials::Authenticator`) and log-out |
//! | `html.rs` | the page layout (nav bar) and the pieces pages share; pages are `maud` templates, which escape every value |
//! | `form.rs` | `application/x-www-form-urlencoded` bodies |
//! | `assets.rs` | the CSS and JS files |
//! | `dashboard.rs` | Sync health: outbox, failures and retry, schedules |
//! | `users.rs` | Manage > User: search, page, view, edit, create, delete |
//! | `user_access.rs` | a user's grants in Salesforce, picked from the connector's catalog |
//! | `mappings.rs` | Mappings, Reconcile / Analyze, the live run page, history |
//! | `connectors.rs` | the Salesforce connector: state, test, settings and the OAuth flow |
//! | `error.rs` | the UI's error type and error page |

mod assets;
mod connectors;
mod dashboard;
mod error;
pub mod form;
pub mod html;
mod login;
// Reads of serde_json::Value run summaries (Null when absent) are the only indexing there.
#[allow(clippy::indexing_slicing)]
mod mappings;
mod session;
pub mod settings;
mod signed_in;
mod user_access;
mod users;

use std::sync::Arc;

use axum::Router;
use axum::middleware;
use axum::routing::{any, get, post};

use crate::services::AppState;
pub use settings::AdminSettings;

/// What every admin handler sees.
#[derive(Clone)]
pub struct AdminState {
    pub app: AppState,
    pub settings: Arc<AdminSettings>,
    /// The latest connector test run from this process's UI.
    pub last_test: Arc<connectors::LastTest>,
}

/// The `/admin` routes, for the API router to merge.
pub fn router(app: &AppState) -> Router<AppState> {
    let state = AdminState {
        app: app.clone(),
        settings: Arc::new(AdminSettings::from_env()),
        last_test: Arc::default(),
    };
    let protected = Router::new()
        .route("/admin", get(dashboard::page))
        .route("/admin/", get(dashboard::page))
        .route("/admin/assets/admin.css", get(assets::css))
        .route("/admin/assets/admin.js", get(assets::js))
        .route("/admin/logout", post(login::logout))
        .route("/admin/sync/failures/{id}/retry", post(dashboard::retry))
        .route("/admin/sync/retry-all", post(dashboard::retry_all))
        .route("/admin/users", get(users::list).post(users::create))
        .route("/admin/users/new", get(users::new_form))
        .route("/admin/users/{id}", get(users::detail).post(users::save))
        .route("/admin/users/{id}/delete", post(users::delete))
        .route("/admin/users/{id}/access", post(user_access::save))
        .route("/admin/mappings", get(mappings::page))
        .route("/admin/mappings/{name}/{action}", post(mappings::start))
        .route("/admin/recon/{id}", get(mappings::run_page))
        .route("/admin/recon/{id}/status", get(mappings::run_status))
        .route("/admin/connectors", get(connectors::page))
        .route(
            "/admin/connectors/{system}",
            get(connectors::system_page).post(connectors::save),
        )
        .route("/admin/connectors/{system}/test", post(connectors::test))
        .route(
            "/admin/connectors/{system}/enabled",
            post(connectors::set_enabled),
        )
        .route("/admin/{*rest}", any(error::not_found))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            session::require_session,
        ));
    Router::new()
        .route("/admin/login", get(login::form).post(login::submit))
        // Authenticated by its single-use `state` (see connectors.rs): a SameSite=Strict cookie
        // is not sent on the redirect back from Salesforce's site.
        .route("/admin/oauth", get(connectors::callback))
        .merge(protected)
        .with_state(state)
}
