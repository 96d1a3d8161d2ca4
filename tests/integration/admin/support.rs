//! A logged-in browser for the Admin UI.

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

use crate::helpers::{ADMIN, TestApp};

pub struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    pub set_cookie: Option<String>,
    pub body: String,
}

/// A client that never follows redirects.
pub fn http() -> reqwest::Client {
    crate::helpers::http_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `http://127.0.0.1:<port>` of an app.
pub fn root(app: &TestApp) -> String {
    app.base.trim_end_matches("/openidm").to_owned()
}

pub async fn page(res: reqwest::Response) -> Page {
    let header = |name| {
        res.headers()
            .get(name)
            .map(|v: &reqwest::header::HeaderValue| v.to_str().unwrap().to_owned())
    };
    let location = header(LOCATION);
    let set_cookie = header(SET_COOKIE);
    let status = res.status();
    let body = res.text().await.unwrap();
    Page {
        status,
        location,
        set_cookie,
        body,
    }
}

/// A client that never follows redirects, whose connections come from `local` (another
/// loopback address such as 127.0.0.2 is another client to the throttle).
pub fn http_from(local: std::net::IpAddr) -> reqwest::Client {
    crate::helpers::http_builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(local)
        .build()
        .unwrap()
}

/// One log-in form submitted, its answer (no cookie kept).
pub async fn login_attempt(app: &TestApp, username: &str, password: &str) -> Page {
    login_attempt_with(&http(), app, username, password).await
}

/// One log-in form submitted by `client`.
pub async fn login_attempt_with(
    client: &reqwest::Client,
    app: &TestApp,
    username: &str,
    password: &str,
) -> Page {
    let res = client
        .post(format!("{}/admin/login", root(app)))
        .form(&[("username", username), ("password", password)])
        .send()
        .await
        .unwrap();
    page(res).await
}

pub struct Browser {
    pub root: String,
    pub http: reqwest::Client,
    pub cookie: String,
    /// Every page body seen, to check that no secret was ever rendered.
    pub seen: std::sync::Mutex<Vec<String>>,
}

impl Browser {
    /// Logs in as the admin.
    pub async fn login(app: &TestApp) -> Browser {
        let root = root(app);
        let http = http();
        let p = login_attempt(app, ADMIN.0, ADMIN.1).await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
        assert_eq!(p.location.as_deref(), Some("/admin"));
        let set = p.set_cookie.expect("a session cookie");
        let cookie = set.split(';').next().unwrap().to_owned();
        Browser {
            root,
            http,
            cookie,
            seen: Default::default(),
        }
    }

    fn remember(&self, p: &Page) {
        self.seen.lock().unwrap().push(p.body.clone());
    }

    pub async fn get(&self, path: &str) -> Page {
        let res = self
            .http
            .get(format!("{}{path}", self.root))
            .header(COOKIE, &self.cookie)
            .send()
            .await
            .unwrap();
        let p = page(res).await;
        self.remember(&p);
        p
    }

    /// A page that must render (200), its body.
    pub async fn get_ok(&self, path: &str) -> String {
        let p = self.get(path).await;
        assert_eq!(p.status, StatusCode::OK, "GET {path}: {}", p.body);
        p.body
    }

    /// A form POST without any CSRF field added.
    pub async fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let res = self
            .http
            .post(format!("{}{path}", self.root))
            .header(COOKIE, &self.cookie)
            .form(fields)
            .send()
            .await
            .unwrap();
        let p = page(res).await;
        self.remember(&p);
        p
    }

    /// A form POST with the session's CSRF token (read from `from`, a page of the session).
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let token = csrf(&self.get_ok("/admin").await);
        let mut all: Vec<(&str, &str)> = vec![("csrf", token.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(path, &all).await
    }

    /// Every body seen contains none of `secrets`.
    pub fn assert_never_shown(&self, secrets: &[&str]) {
        for body in self.seen.lock().unwrap().iter() {
            for s in secrets {
                assert!(!body.contains(s), "a page showed a secret: {s}");
            }
        }
    }
}

/// The value of the first `name="<name>" value="…"` input in `html` (unescaped).
pub fn input_value(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\"");
    let at = html.find(&marker)?;
    let rest = &html[at..];
    let end = rest.find('>')?;
    let tag = &rest[..end];
    let v = tag.split("value=\"").nth(1)?;
    let v = &v[..v.find('"')?];
    Some(
        v.replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

pub fn csrf(html: &str) -> String {
    input_value(html, "csrf").expect("a CSRF field")
}

/// A crude well-formedness check: the document has its frame and every opened tag of the
/// common kinds is closed.
pub fn assert_well_formed(html: &str) {
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(html.trim_end().ends_with("</html>"));
    for tag in [
        "html", "head", "body", "main", "section", "table", "thead", "tbody", "tr", "form", "p",
        "ul", "li", "nav", "h1", "h2", "h3", "td", "th", "fieldset", "label", "button", "a",
    ] {
        let opened =
            html.matches(&format!("<{tag}>")).count() + html.matches(&format!("<{tag} ")).count();
        let closed = html.matches(&format!("</{tag}>")).count();
        assert_eq!(opened, closed, "<{tag}> opened {opened}, closed {closed}");
    }
}
