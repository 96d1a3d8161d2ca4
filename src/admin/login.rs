//! Log-in (the admin account of the REST API, through the same [`Authenticator`]: the same
//! throttle, hash cap and loopback rule for the default password) and log-out.
//!
//! [`Authenticator`]: crate::credentials::Authenticator

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use maud::html;

use super::AdminState;
use super::error::AdminError;
use super::form::FormData;
use super::html;
use super::session;
use super::signed_in::AdminSession;
use crate::api::client_addr::ClientAddr;
use crate::credentials::{DEFAULT_PASSWORD_REFUSED, Refusal};
use crate::tls::OverTls;

fn login_page(status: StatusCode, message: Option<&str>, username: &str) -> Response {
    let body = html! {
        @if let Some(message) = message {
            p.error #login-error role="alert" { (message) }
        }
        form id="login-form" method="post" action="/admin/login" {
            p {
                label for="username" { "User name" }
                input id="username" name="username" autocomplete="username" value=(username) required;
            }
            p {
                label for="password" { "Password" }
                input id="password" name="password" type="password" autocomplete="current-password" required;
            }
            p { button type="submit" id="login" { "Log in" } }
        }
    };
    html::bare_page(status, "Log in", body)
}

/// The log-in page again, saying why: 401 wrong credentials, 429 (address throttled) and 503
/// (every hash slot busy) with `Retry-After`, 403 the default password from afar.
fn refused_page(refusal: &Refusal, username: &str) -> Response {
    let (status, message) = match refusal {
        Refusal::Wrong => (
            StatusCode::UNAUTHORIZED,
            "Wrong user name or password.".to_owned(),
        ),
        Refusal::Throttled { .. } => {
            let seconds = refusal.retry_after_secs().unwrap_or(1);
            (
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "Too many failed log-ins from your address. Try again in {}.",
                    wait_text(seconds)
                ),
            )
        }
        Refusal::Busy { .. } => (
            StatusCode::SERVICE_UNAVAILABLE,
            "The server is busy checking passwords. Try again in a moment.".to_owned(),
        ),
        Refusal::DefaultPasswordRemote => {
            (StatusCode::FORBIDDEN, DEFAULT_PASSWORD_REFUSED.to_owned())
        }
    };
    let mut res = login_page(status, Some(&message), username);
    if let Some(seconds) = refusal.retry_after_secs() {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    res
}

fn wait_text(seconds: u64) -> String {
    if seconds < 60 {
        format!("{seconds} second{}", if seconds == 1 { "" } else { "s" })
    } else {
        let minutes = seconds.div_ceil(60);
        format!("{minutes} minute{}", if minutes == 1 { "" } else { "s" })
    }
}

/// `GET /admin/login`
pub async fn form() -> Response {
    login_page(StatusCode::OK, None, "")
}

/// `POST /admin/login`: a new session (a new token every time: no fixation) and its cookie.
pub async fn submit(
    State(state): State<AdminState>,
    tls: Option<Extension<OverTls>>,
    client: Option<Extension<ConnectInfo<ClientAddr>>>,
    body: Bytes,
) -> Result<Response, AdminError> {
    let form = FormData::parse(&body);
    let username = form.text("username");
    let password = form.get("password").unwrap_or_default();
    let client = client.map(|Extension(ConnectInfo(addr))| addr);
    if let Err(refusal) = state
        .app
        .auth
        .authenticate(client, &username, password)
        .await
    {
        return Ok(refused_page(&refusal, &username));
    }
    let token = session::create(
        state.app.managed.pool(),
        &state.settings,
        state.app.auth.credential_fingerprint(),
        &username,
    )
    .await?;
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
