//! HTML building: the layout every page shares (head, nav bar with the log-out form, main) and
//! the small pieces many pages use. Pages are `maud` templates, which escape every value spliced
//! into them, so a value cannot become markup by being forgotten. Pages are well-formed HTML5
//! whose controls carry stable ids and names for browser tests.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::signed_in::AdminSession;

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
pub fn csrf_field(session: &AdminSession) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf_token); }
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

/// A full page for a logged-in user.
pub fn page(session: &AdminSession, active: Nav, title: &str, body: Markup) -> Response {
    page_with_status(StatusCode::OK, session, active, title, body)
}

pub fn page_with_status(
    status: StatusCode,
    session: &AdminSession,
    active: Nav,
    title: &str,
    body: Markup,
) -> Response {
    let nav = html! {
        nav aria-label="Main" {
            span.brand { "idm-sync" }
            ul {
                @for (section, href, id, label) in NAV {
                    li { a id=(id) href=(href) aria-current=[(section == active).then_some("page")] { (label) } }
                }
            }
            form id="logout-form" method="post" action="/admin/logout" {
                (csrf_field(session))
                span.who { (session.username) }
                " "
                button type="submit" id="logout" { "Logout" }
            }
        }
    };
    let head = html! {
        link rel="stylesheet" href="/admin/assets/admin.css";
        script src="/admin/assets/admin.js" defer {}
    };
    let body = html! {
        header { (nav) }
        main id="main" { h1 { (title) } (body) }
    };
    respond(status, document(title, head, body))
}

/// A page without the nav bar (log-in, errors, the OAuth callback).
pub fn bare_page(status: StatusCode, title: &str, body: Markup) -> Response {
    // Inlined: the stylesheet is served to logged-in users only. A constant compiled in, so
    // it needs no escaping (and escaping would break its quoted font names).
    let head = html! { style { (PreEscaped(super::assets::CSS)) } };
    let body = html! { main id="main" class="narrow" { h1 { (title) } (body) } };
    respond(status, document(title, head, body))
}

/// The document around a page: `head` goes after the title, `body` is the whole body.
fn document(title: &str, head: Markup, body: Markup) -> Markup {
    html! {
        (DOCTYPE) "\n"
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · idm-sync admin" }
                (head)
            }
            body { (body) }
        }
        "\n"
    }
}

fn respond(status: StatusCode, html: Markup) -> Response {
    let mut res = (status, html.into_string()).into_response();
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

/// A section of a page, headed by `heading`, which names it for assistive technology (its
/// id is the section's plus `-h`).
pub fn section(id: &str, heading: &str, content: Markup) -> Markup {
    let heading_id = format!("{id}-h");
    html! {
        section id=(id) aria-labelledby=(heading_id) {
            h2 id=(heading_id) { (heading) }
            (content)
        }
    }
}

/// A table with a header row of `columns`, then `rows` (each a `tr`).
pub fn table(id: Option<&str>, columns: &[&str], rows: impl IntoIterator<Item = Markup>) -> Markup {
    html! {
        table id=[id] {
            thead { tr { @for c in columns { th scope="col" { (c) } } } }
            tbody { @for row in rows { (row) } }
        }
    }
}

/// A success or error message shown at the top of a page.
pub fn notice(kind: &str, text: &str) -> Markup {
    html! { p class={ "notice " (kind) } id="notice" role="status" { (text) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_in_text_and_attributes() {
        let session = AdminSession {
            id: String::new(),
            username: String::new(),
            csrf_token: r#""><script>x</script>"#.into(),
        };
        assert_eq!(
            csrf_field(&session).into_string(),
            r#"<input type="hidden" name="csrf" value="&quot;&gt;&lt;script&gt;x&lt;/script&gt;">"#
        );
        // Already-escaped text is escaped again, not trusted.
        assert_eq!(
            notice("ok", "<b>&amp;</b>").into_string(),
            r#"<p class="notice ok" id="notice" role="status">&lt;b&gt;&amp;amp;&lt;/b&gt;</p>"#
        );
    }

    #[test]
    fn url_encodes_reserved_characters() {
        assert_eq!(url_encode("a b/c?d=é"), "a%20b%2Fc%3Fd%3D%C3%A9");
        assert_eq!(url_encode("abc-1.2_~"), "abc-1.2_~");
    }
}
