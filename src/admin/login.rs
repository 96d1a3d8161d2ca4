//! Log-in (the admin account of the REST API, through the same [`Authenticator`]) and log-out.
//!
//! [`Authenticator`]: crate::api::auth::Authenticator

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use chrono::{DateTime, Utc};

use super::AdminState;
use super::error::AdminError;
use super::form::FormData;
use super::html;
use super::session::{self, AdminSession};
use super::throttle;
use crate::tls::OverTls;

fn login_page(status: StatusCode, message: Option<&str>, username: &str) -> Response {
    let error = message
        .map(|m| {
            format!(
                "<p class=\"error\" id=\"login-error\" role=\"alert\">{}</p>",
                html::esc(m)
            )
        })
        .unwrap_or_default();
    html::bare_page(
        status,
        "Log in",
        &format!(
            "{error}<form id=\"login-form\" method=\"post\" action=\"/admin/login\">\
<p><label for=\"username\">User name</label><input id=\"username\" name=\"username\" autocomplete=\"username\" value=\"{}\" required></p>\
<p><label for=\"password\">Password</label><input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required></p>\
<p><button type=\"submit\" id=\"login\">Log in</button></p></form>",
            html::esc(username)
        ),
    )
}

/// 429 with `Retry-After`: the name is locked until `until`, whatever the password.
fn locked_page(until: DateTime<Utc>, username: &str) -> Response {
    let seconds = (until - Utc::now()).num_seconds().max(1);
    let minutes = (seconds + 59) / 60;
    let mut res = login_page(
        StatusCode::TOO_MANY_REQUESTS,
        Some(&format!(
            "Too many failed log-ins for this user name. Try again in {minutes} minute{}.",
            if minutes == 1 { "" } else { "s" }
        )),
        username,
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    res
}

/// `GET /admin/login`
pub async fn form() -> Response {
    login_page(StatusCode::OK, None, "")
}

/// `POST /admin/login`: a new session (a new token every time: no fixation) and its cookie.
pub async fn submit(
    State(state): State<AdminState>,
    tls: Option<Extension<OverTls>>,
    body: Bytes,
) -> Result<Response, AdminError> {
    let form = FormData::parse(&body);
    let username = form.text("username");
    let password = form.get("password").unwrap_or_default();
    let pool = state.app.managed.pool();
    if let Some(until) = throttle::locked_until(pool, &username).await? {
        tracing::warn!("admin UI log-in refused: the user name is locked");
        return Ok(locked_page(until, &username));
    }
    if !state.app.auth.check(&username, password).await {
        let locked = throttle::record_failure(pool, &state.settings.throttle, &username).await?;
        if let Some(until) = locked {
            tracing::warn!(
                max_failures = state.settings.throttle.max_failures,
                "admin UI log-in refused; too many failures lock the user name"
            );
            return Ok(locked_page(until, &username));
        }
        tracing::warn!("admin UI log-in refused");
        return Ok(login_page(
            StatusCode::UNAUTHORIZED,
            Some("Wrong user name or password."),
            &username,
        ));
    }
    throttle::clear(pool, &username).await?;
    let token = session::create(state.app.managed.pool(), &state.settings, &username).await?;
    let mut res = html::see_other("/admin");
    res.headers_mut().insert(
        header::SET_COOKIE,
        session::set_cookie(&state.settings, Some(&token), tls.is_some()),
    );
    Ok(res)
}

/// `POST /admin/logout`
pub async fn logout(
    State(state): State<AdminState>,
    Extension(session): Extension<AdminSession>,
    tls: Option<Extension<OverTls>>,
) -> Result<Response, AdminError> {
    session::delete(state.app.managed.pool(), &session.id).await?;
    let mut res = html::see_other("/admin/login");
    res.headers_mut().insert(
        header::SET_COOKIE,
        session::set_cookie(&state.settings, None, tls.is_some()),
    );
    Ok(res)
}
