//! HTML building: one escape function for every value put into a page, and the layout every
//! page shares (head, nav bar with the log-out form, main). Pages are well-formed HTML5 whose
//! controls carry stable ids and names for browser tests.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::signed_in::AdminSession;

/// Escapes text for HTML element content and double- or single-quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Everything but RFC 3986's unreserved characters.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes a path segment or query value (everything but unreserved characters).
pub fn url_encode(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

/// The hidden CSRF field every form of a session carries.
pub fn csrf_field(session: &AdminSession) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(&session.csrf_token)
    )
}

/// The sections of the nav bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Dashboard,
    Connectors,
    Mappings,
    Users,
}

const NAV: [(Nav, &str, &str, &str); 4] = [
    (Nav::Dashboard, "/admin", "nav-dashboard", "Dashboard"),
    (
        Nav::Connectors,
        "/admin/connectors",
        "nav-connectors",
        "Connectors",
    ),
    (Nav::Mappings, "/admin/mappings", "nav-mappings", "Mappings"),
    (Nav::Users, "/admin/users", "nav-users", "Users"),
];

/// A full page for a logged-in user; `body` is already-escaped HTML.
pub fn page(session: &AdminSession, active: Nav, title: &str, body: &str) -> Response {
    page_with_status(StatusCode::OK, session, active, title, body)
}

pub fn page_with_status(
    status: StatusCode,
    session: &AdminSession,
    active: Nav,
    title: &str,
    body: &str,
) -> Response {
    let mut nav = String::new();
    for (section, href, id, label) in NAV {
        let current = if section == active {
            " aria-current=\"page\""
        } else {
            ""
        };
        nav.push_str(&format!(
            "<li><a id=\"{id}\" href=\"{href}\"{current}>{label}</a></li>"
        ));
    }
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title} · idm-sync admin</title>\
<link rel=\"stylesheet\" href=\"/admin/assets/admin.css\">\
<script src=\"/admin/assets/admin.js\" defer></script></head>\
<body><header><nav aria-label=\"Main\"><span class=\"brand\">idm-sync</span><ul>{nav}</ul>\
<form id=\"logout-form\" method=\"post\" action=\"/admin/logout\">{csrf}\
<span class=\"who\">{user}</span> <button type=\"submit\" id=\"logout\">Logout</button></form></nav></header>\
<main id=\"main\"><h1>{title}</h1>{body}</main></body></html>\n",
        title = esc(title),
        csrf = csrf_field(session),
        user = esc(&session.username),
    );
    respond(status, html)
}

/// A page without the nav bar (log-in, errors, the OAuth callback).
pub fn bare_page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title} · idm-sync admin</title><style>{css}</style></head>\
<body><main id=\"main\" class=\"narrow\"><h1>{title}</h1>{body}</main></body></html>\n",
        title = esc(title),
        // Inlined: the stylesheet is served to logged-in users only.
        css = super::assets::CSS,
    );
    respond(status, html)
}

fn respond(status: StatusCode, html: String) -> Response {
    let mut res = (status, html).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    no_store_and_frame_guard(h);
    res
}

/// Pages hold user data and CSRF tokens: never cached, never framed.
pub fn no_store_and_frame_guard(h: &mut axum::http::HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

/// `303 See Other` to `location` (after every successful POST).
pub fn see_other(location: &str) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

/// A success or error message shown at the top of a page.
pub fn notice(kind: &str, text: &str) -> String {
    format!(
        "<p class=\"notice {kind}\" id=\"notice\" role=\"status\">{}</p>",
        esc(text)
    )
}

/// A `<td>` of escaped text.
pub fn td(text: &str) -> String {
    format!("<td>{}</td>", esc(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_every_special_character() {
        assert_eq!(
            esc(r#"<script>alert("x") & 'y'</script>"#),
            "&lt;script&gt;alert(&quot;x&quot;) &amp; &#39;y&#39;&lt;/script&gt;"
        );
        assert_eq!(esc("plain ünïcode"), "plain ünïcode");
        assert_eq!(esc(""), "");
        // Already-escaped text is escaped again, not trusted.
        assert_eq!(esc("&amp;"), "&amp;amp;");
    }

    #[test]
    fn url_encodes_reserved_characters() {
        assert_eq!(url_encode("a b/c?d=é"), "a%20b%2Fc%3Fd%3D%C3%A9");
        assert_eq!(url_encode("abc-1.2_~"), "abc-1.2_~");
    }
}
