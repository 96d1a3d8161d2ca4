//! Log-in, log-out, the session cookie, idle expiry, and that nothing but the log-in page is
//! served without a session.

use reqwest::StatusCode;
use reqwest::header::COOKIE;

use super::support::{
    Browser, assert_well_formed, http, http_from, login_attempt, login_attempt_with, page, root,
};
use crate::helpers::{ADMIN, TestApp};

const PROTECTED: [&str; 13] = [
    "/admin",
    "/admin/",
    "/admin/users",
    "/admin/users/new",
    "/admin/users/someone",
    "/admin/mappings",
    "/admin/recon/some-run",
    "/admin/recon/some-run/status",
    "/admin/connectors",
    "/admin/assets/admin.css",
    "/admin/assets/admin.js",
    "/admin/no-such-page",
    "/admin/sync/retry-all",
];

#[tokio::test]
async fn nothing_but_the_login_page_without_a_session() {
    let app = TestApp::spawn().await;
    let root = root(&app);
    let http = http();
    for path in PROTECTED {
        for cookie in [None, Some("idm_admin_session=forged")] {
            let mut req = http.get(format!("{root}{path}"));
            if let Some(c) = cookie {
                req = req.header(COOKIE, c);
            }
            let p = page(req.send().await.unwrap()).await;
            assert_eq!(p.status, StatusCode::SEE_OTHER, "GET {path}");
            assert_eq!(p.location.as_deref(), Some("/admin/login"), "GET {path}");
            assert!(!p.body.contains("idm-sync"), "GET {path} leaked a page");
        }
    }
    // A POST without a session changes nothing either.
    let p = page(
        http.post(format!("{root}/admin/users"))
            .form(&[
                ("userName", "mallory"),
                ("sn", "M"),
                ("givenName", "M"),
                ("mail", "m@example.com"),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(p.location.as_deref(), Some("/admin/login"));
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM managed_objects")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(users, 0);

    let login = page(
        http.get(format!("{root}/admin/login"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(login.body.contains("id=\"login-form\""));
    assert!(login.body.contains("<label for=\"password\">"));
    assert_well_formed(&login.body);
}

#[tokio::test]
async fn wrong_password_fails_and_sets_no_cookie() {
    let app = TestApp::spawn().await;
    let root = root(&app);
    for (user, password) in [(ADMIN.0, "wrong"), ("root", ADMIN.1), ("", "")] {
        let p = page(
            http()
                .post(format!("{root}/admin/login"))
                .form(&[("username", user), ("password", password)])
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(p.status, StatusCode::UNAUTHORIZED);
        assert!(p.set_cookie.is_none());
        assert!(p.body.contains("Wrong user name or password"));
        assert!(!p.body.contains(password) || password.is_empty() || password == ADMIN.1);
    }
    let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM admin_sessions")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(sessions, 0);
}

#[tokio::test]
async fn login_renders_every_page_then_logout_ends_the_session() {
    let app = TestApp::spawn().await;
    let root = root(&app);
    let res = http()
        .post(format!("{root}/admin/login"))
        .form(&[("username", ADMIN.0), ("password", ADMIN.1)])
        .send()
        .await
        .unwrap();
    let set = page(res).await.set_cookie.unwrap();
    assert!(set.starts_with("idm_admin_session="));
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/admin"] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(!set.contains("Secure"), "no TLS here: {set}");
    // The table holds the token's hash, not the token.
    let token = set
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    let stored: String = sqlx::query_scalar("SELECT id FROM admin_sessions")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_ne!(stored, token);

    let b = Browser::login(&app).await;
    for path in [
        "/admin",
        "/admin/users",
        "/admin/users/new",
        "/admin/connectors",
    ] {
        let body = b.get_ok(path).await;
        assert_well_formed(&body);
        for nav in [
            "nav-dashboard",
            "nav-connectors",
            "nav-mappings",
            "nav-users",
            "id=\"logout\"",
        ] {
            assert!(body.contains(nav), "{path} lacks {nav}");
        }
    }
    // The shipped conf has sync.json and the connector, so the mappings page renders too.
    assert_well_formed(&b.get_ok("/admin/mappings").await);
    let css = b.get("/admin/assets/admin.css").await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.body.contains("nav"));
    let js = b.get("/admin/assets/admin.js").await;
    assert_eq!(js.status, StatusCode::OK);
    assert!(js.body.contains("data-status-url"));
    assert_eq!(
        b.get("/admin/no-such-page").await.status,
        StatusCode::NOT_FOUND
    );

    let out = b.post("/admin/logout", &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location.as_deref(), Some("/admin/login"));
    assert!(out.set_cookie.unwrap().contains("Max-Age=0"));
    let after = b.get("/admin").await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
    assert_eq!(after.location.as_deref(), Some("/admin/login"));
}

#[tokio::test]
async fn an_idle_session_expires() {
    let app = TestApp::spawn().await;
    let b = Browser::login(&app).await;
    b.get_ok("/admin").await;
    sqlx::query("UPDATE admin_sessions SET last_seen = now() - interval '31 minutes'")
        .execute(&app.db.pool)
        .await
        .unwrap();
    let p = b.get("/admin").await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(p.location.as_deref(), Some("/admin/login"));
}

#[tokio::test]
async fn csrf_missing_or_wrong_is_403_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let user = app.create_user("bjensen").await;
    let id = user["_id"].as_str().unwrap().to_owned();
    let b = Browser::login(&app).await;
    let outbox = app.outbox_count().await;
    let edit = [
        ("userName", "bjensen"),
        ("givenName", "Babs"),
        ("sn", "Jensen"),
        ("mail", "bjensen@example.com"),
    ];
    let other = Browser::login(&app).await;
    let other_token = super::support::csrf(&other.get_ok("/admin").await);
    for csrf in [None, Some("wrong"), Some(""), Some(other_token.as_str())] {
        let mut fields: Vec<(&str, &str)> = edit.to_vec();
        if let Some(t) = csrf {
            fields.push(("csrf", t));
        }
        for path in [
            format!("/admin/users/{id}"),
            "/admin/users".to_owned(),
            format!("/admin/users/{id}/delete"),
            "/admin/logout".to_owned(),
        ] {
            let p = b.post_raw(&path, &fields).await;
            assert_eq!(p.status, StatusCode::FORBIDDEN, "POST {path} with {csrf:?}");
        }
    }
    assert_eq!(app.outbox_count().await, outbox);
    let now: serde_json::Value = app.managed_user(&id).await;
    assert_eq!(now["givenName"], "Barbara");
    // The session survived the refused log-out.
    b.get_ok("/admin").await;
}

#[tokio::test]
async fn a_session_works_on_every_replica() {
    let app = TestApp::spawn().await;
    let b = Browser::login(&app).await;
    // A second `serve` over the same database knows the session (and its CSRF token).
    let settings = idm_sync::app::ServeSettings {
        conf_dir: std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf"),
        listen: "127.0.0.1:0".into(),
        database: crate::helpers::db_settings(&app.db.url),
        broker: None,
    };
    let second = idm_sync::app::Application::build(&settings).await.unwrap();
    let other = format!("http://127.0.0.1:{}", second.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(second.run_until(async move {
        let _ = stopped.await;
    }));
    let p = page(
        http()
            .get(format!("{other}/admin/users"))
            .header(COOKIE, &b.cookie)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(p.status, StatusCode::OK);
    let token = super::support::csrf(&p.body);
    let out = page(
        http()
            .post(format!("{other}/admin/logout"))
            .header(COOKIE, &b.cookie)
            .form(&[("csrf", token.as_str())])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    // Logged out there, logged out here.
    assert_eq!(b.get("/admin").await.status, StatusCode::SEE_OTHER);
    let _ = stop.send(());
}

#[tokio::test]
async fn failures_throttle_the_address_never_the_account() {
    let app = TestApp::spawn().await;
    // Four failures, then the right password: the address's count starts again.
    for _ in 0..4 {
        assert_eq!(
            login_attempt(&app, ADMIN.0, "guess").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login_attempt(&app, ADMIN.0, ADMIN.1).await.status,
        StatusCode::SEE_OTHER
    );
    for _ in 0..5 {
        assert_eq!(
            login_attempt(&app, ADMIN.0, "guess").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    // The sixth failure in a row blocks this address, whatever the name.
    let blocked = login_attempt(&app, "someone-else", "guess").await;
    assert_eq!(
        blocked.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        blocked.body
    );
    assert!(
        blocked
            .body
            .contains("Too many failed log-ins from your address. Try again in 1 second."),
        "{}",
        blocked.body
    );
    assert_well_formed(&blocked.body);
    // While blocked even the right password is not checked here: no session.
    let right = http()
        .post(format!("{}/admin/login", root(&app)))
        .form(&[("username", ADMIN.0), ("password", ADMIN.1)])
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        right.headers().get("set-cookie").is_none(),
        "no session while blocked"
    );
    let retry: u64 = right.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    // The account is not locked: the right password from another address logs in.
    let elsewhere = http_from("127.0.0.2".parse().unwrap());
    let other = login_attempt_with(&elsewhere, &app, ADMIN.0, ADMIN.1).await;
    assert_eq!(other.status, StatusCode::SEE_OTHER, "{}", other.body);
    assert!(other.set_cookie.is_some());
    // Nothing about failures is written to the database.
    let table: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('admin_login_failures')::text")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(table, None);
    // Once the block is over the right password works here again and clears the count.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        login_attempt(&app, ADMIN.0, ADMIN.1).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        login_attempt(&app, ADMIN.0, "guess").await.status,
        StatusCode::UNAUTHORIZED
    );
}
