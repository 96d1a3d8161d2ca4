//! Credential guarding (issue 13, item 3): one throttle for REST and the Admin UI keyed by
//! client address, never locking the account; slow hashes under a cap and remembered by
//! digest; the default password only from loopback; sessions with an absolute lifetime that
//! end when the admin password changes; credentials never printed by `--help`.
//!
//! Other clients are other source addresses: 127.0.0.x over real HTTP (every 127/8 address is
//! loopback and bindable on Linux), or any `ClientAddr` (10.x, IPv6) through the router with
//! `tower::ServiceExt::oneshot`.

use std::net::IpAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode};
use futures_util::future::join_all;
use idm_sync::api::client_addr::ClientAddr;
use idm_sync::app::{Application, ServeSettings};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::admin::support::{Browser, http_from, login_attempt_with};
use crate::helpers::{ADMIN, TempConf, TestApp, TestDb, db_settings};

const STRONG: &str = "Str0ng-admin-pw";

/// An application built but not listening: requests go through its router with the peer
/// address the test chooses.
struct Routed {
    app: Application,
    db: TestDb,
    _conf: Option<TempConf>,
}

impl Routed {
    async fn build(conf: Option<TempConf>) -> Routed {
        let db = TestDb::new().await;
        let app = build_on(&db.url, conf.as_ref()).await;
        Routed {
            app,
            db,
            _conf: conf,
        }
    }

    /// With the admin password `password` in `conf/authentication.json`.
    async fn with_password(password: &str) -> Routed {
        Self::build(Some(conf_with_password(password))).await
    }

    async fn send(&self, request: Request<Body>) -> Answer {
        let res = self.app.router().oneshot(request).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }
}

async fn build_on(url: &str, conf: Option<&TempConf>) -> Application {
    let conf_dir = conf
        .map(|c| c.dir.clone())
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf"));
    let settings = ServeSettings {
        conf_dir,
        listen: "127.0.0.1:0".into(),
        database: db_settings(url),
        broker: None,
    };
    Application::build_with_ops(&settings, idm_sync::ops::Ops::isolated())
        .await
        .unwrap()
}

fn conf_with_password(password: &str) -> TempConf {
    TempConf::with_files(&[(
        "authentication.json",
        &json!({"adminAccount": {"username": ADMIN.0, "password": password}}),
    )])
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    fn retry_after(&self) -> Option<u64> {
        self.headers
            .get("retry-after")
            .map(|v| v.to_str().unwrap().parse().unwrap())
    }
}

fn with_peer(request: Request<Body>, addr: Option<&str>) -> Request<Body> {
    let mut request = request;
    if let Some(addr) = addr {
        request
            .extensions_mut()
            .insert(ConnectInfo(ClientAddr(addr.parse().unwrap())));
    }
    request
}

/// A REST query with these credentials, from `addr` (`None`: no peer address known).
fn rest(addr: Option<&str>, user: &str, password: &str) -> Request<Body> {
    with_peer(
        Request::get("/openidm/managed/user?_queryFilter=true&_pageSize=1")
            .header("X-OpenIDM-Username", user)
            .header("X-OpenIDM-Password", password)
            .body(Body::empty())
            .unwrap(),
        addr,
    )
}

/// The Admin UI's log-in form, from `addr`.
fn ui_login(addr: Option<&str>, user: &str, password: &str) -> Request<Body> {
    let form = format!(
        "username={}&password={}",
        urlencode(user),
        urlencode(password)
    );
    with_peer(
        Request::post("/admin/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(form))
            .unwrap(),
        addr,
    )
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// This process's peak resident set, in KiB.
fn peak_rss_kib() -> u64 {
    super::peak_rss_kib(std::process::id())
}

/// A REST client whose connections come from `local`.
fn rest_client(local: &str) -> reqwest::Client {
    crate::helpers::http_builder()
        .local_address(local.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

async fn rest_over_http(
    client: &reqwest::Client,
    app: &TestApp,
    password: &str,
) -> reqwest::Response {
    client
        .get(app.url("/managed/user?_queryFilter=true&_pageSize=1"))
        .header("X-OpenIDM-Username", ADMIN.0)
        .header("X-OpenIDM-Password", password)
        .send()
        .await
        .unwrap()
}

fn assert_throttled_shape(status: StatusCode, retry_after: Option<u64>, body: &Value) {
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(
        retry_after.is_some_and(|s| s >= 1),
        "Retry-After {retry_after:?}"
    );
    assert_eq!(body["code"], 429, "{body}");
    assert_eq!(body["reason"], "Too Many Requests", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Too many failed authentication attempts from this address"),
        "{body}"
    );
}

#[tokio::test]
async fn a_flood_from_one_address_gets_429_while_the_right_password_works_from_another() {
    let app = TestApp::spawn().await;
    let attacker = rest_client("127.0.0.1");
    // Five free failures, then 429 with Retry-After in IDM's shape.
    for attempt in 1..=8 {
        let res = rest_over_http(&attacker, &app, "guess").await;
        let status = res.status();
        let retry_after = res
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
        let body: Value = res.json().await.unwrap();
        if attempt <= 5 {
            assert_eq!(status, 401, "attempt {attempt}: {body}");
        } else {
            assert_throttled_shape(status, retry_after, &body);
        }
    }
    // A flood from the same address, and meanwhile the admin from another one.
    let flood = join_all((0..300).map(|_| {
        let attacker = attacker.clone();
        let app = &app;
        async move { rest_over_http(&attacker, app, "guess").await.status() }
    }));
    let admin = rest_client("127.0.0.2");
    let during = async {
        tokio::time::sleep(Duration::from_millis(5)).await;
        (
            rest_over_http(&admin, &app, ADMIN.1).await.status(),
            app.client
                .get(app.url("/info/ping"))
                .send()
                .await
                .unwrap()
                .status(),
        )
    };
    let (statuses, (admin_status, ping)) = tokio::join!(flood, during);
    assert_eq!(admin_status, 200, "the right password from a clean address");
    assert_eq!(ping, 200);
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(checked + throttled, 300, "{statuses:?}");
    // Only attempts arriving as a block ends are checked (each doubles the next block: 1 s,
    // 2 s, 4 s…): a few of 300, however long the flood takes on a loaded machine.
    assert!(
        checked <= 8,
        "{checked} guesses were checked during the flood"
    );
    // The process keeps serving: the admin still gets in from its own address.
    assert_eq!(rest_over_http(&admin, &app, ADMIN.1).await.status(), 200);
}

#[tokio::test]
async fn rest_and_the_admin_ui_share_one_throttle() {
    let app = TestApp::spawn().await;
    // REST failures block the address for the UI's log-in...
    let rest_side = rest_client("127.0.0.3");
    for _ in 0..5 {
        assert_eq!(
            rest_over_http(&rest_side, &app, "guess").await.status(),
            401
        );
    }
    let ui = http_from("127.0.0.3".parse().unwrap());
    let page = login_attempt_with(&ui, &app, "anyone", "guess").await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS, "{}", page.body);
    assert!(
        page.body
            .contains("Too many failed log-ins from your address")
    );
    let page = login_attempt_with(&ui, &app, ADMIN.0, ADMIN.1).await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(page.set_cookie.is_none());

    // ...and UI failures block it for REST.
    let ui = http_from("127.0.0.4".parse().unwrap());
    for _ in 0..5 {
        let p = login_attempt_with(&ui, &app, ADMIN.0, "guess").await;
        assert_eq!(p.status, StatusCode::UNAUTHORIZED);
    }
    let res = rest_over_http(&rest_client("127.0.0.4"), &app, "guess").await;
    let status = res.status();
    let retry_after = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
    assert_throttled_shape(status, retry_after, &res.json().await.unwrap());

    // Neither locked the account.
    let clean = http_from("127.0.0.5".parse().unwrap());
    let p = login_attempt_with(&clean, &app, ADMIN.0, ADMIN.1).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(
        rest_over_http(&rest_client("127.0.0.5"), &app, ADMIN.1)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn strangers_never_lock_the_account_out() {
    let r = Routed::with_password(STRONG).await;
    // A botnet: 30 addresses, one guess each, puts the name under attack.
    for n in 1..=30 {
        let addr = format!("10.1.0.{n}:4000");
        assert_eq!(
            r.send(rest(Some(&addr), ADMIN.0, "guess")).await.status,
            401
        );
    }
    // Each of them has had its one free failure against that name now.
    let again = r.send(rest(Some("10.1.0.1:4000"), ADMIN.0, "guess")).await;
    assert_eq!(again.status, 429);
    // The right password from a clean address is checked, and works.
    let ok = r.send(rest(Some("10.2.0.1:4000"), ADMIN.0, STRONG)).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let ok = r
        .send(ui_login(Some("10.2.0.1:4000"), ADMIN.0, STRONG))
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    // With the name under attack, each address gets one free failure.
    assert_eq!(
        r.send(rest(Some("10.2.0.2:1"), ADMIN.0, "guess"))
            .await
            .status,
        401
    );
    let second = r.send(rest(Some("10.2.0.2:1"), ADMIN.0, "guess")).await;
    assert_eq!(second.status, 429, "{}", second.body);
    assert!(second.retry_after().is_some());
    // IPv6 counts by /64: six addresses of one /64 are one client.
    for n in 1..=5 {
        let addr = format!("[2001:db8:0:1::{n}]:1");
        let a = r.send(rest(Some(&addr), "someone", "guess")).await;
        assert_eq!(a.status, 401, "{addr}");
    }
    let a = r
        .send(rest(Some("[2001:db8:0:1::6]:1"), "someone", "guess"))
        .await;
    assert_eq!(a.status, 429);
    let ok = r
        .send(rest(Some("[2001:db8:0:2::1]:1"), ADMIN.0, STRONG))
        .await;
    assert_eq!(ok.status, 200);
}

#[tokio::test]
async fn the_default_password_works_only_from_loopback() {
    let r = Routed::build(None).await;
    for remote in [Some("10.0.0.1:5555"), Some("[2001:db8::1]:5555"), None] {
        let a = r.send(rest(remote, ADMIN.0, ADMIN.1)).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{remote:?}: {}", a.body);
        let body = a.json();
        assert_eq!(body["code"], 403);
        assert_eq!(body["reason"], "Forbidden");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("Set IDM_ADMIN_PASSWORD"), "{message}");
        assert!(message.contains("loopback"), "{message}");
        // The Admin UI says the same and opens no session.
        let p = r.send(ui_login(remote, ADMIN.0, ADMIN.1)).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{remote:?}");
        assert!(p.body.contains("IDM_ADMIN_PASSWORD"), "{}", p.body);
        assert!(p.headers.get("set-cookie").is_none());
    }
    // A wrong password from afar is an ordinary failure.
    assert_eq!(
        r.send(rest(Some("10.0.0.2:1"), ADMIN.0, "guess"))
            .await
            .status,
        401
    );
    for local in ["127.0.0.1:5555", "[::1]:5555", "[::ffff:127.0.0.1]:5555"] {
        assert_eq!(
            r.send(rest(Some(local), ADMIN.0, ADMIN.1)).await.status,
            200,
            "{local}"
        );
    }
    let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM admin_sessions")
        .fetch_one(&r.db.pool)
        .await
        .unwrap();
    assert_eq!(sessions, 0);

    // Over a real socket too, when this machine has a non-loopback address to send from.
    if let Some(source) = non_loopback_source() {
        let app = TestApp::spawn().await;
        let client = crate::helpers::http_builder()
            .local_address(source)
            .build()
            .unwrap();
        match client
            .get(app.url("/managed/user?_queryFilter=true"))
            .header("X-OpenIDM-Username", ADMIN.0)
            .header("X-OpenIDM-Password", ADMIN.1)
            .send()
            .await
        {
            Ok(res) => {
                assert_eq!(res.status(), 403, "from {source}");
                let body: Value = res.json().await.unwrap();
                assert!(
                    body["message"]
                        .as_str()
                        .unwrap()
                        .contains("IDM_ADMIN_PASSWORD")
                );
            }
            Err(e) => {
                eprintln!("no route from {source} to the test server ({e}); socket check skipped")
            }
        }
    } else {
        eprintln!("no non-loopback address on this machine; socket check skipped");
    }
}

/// A local address that is not loopback, if the machine has one (the one it would send from
/// towards a documentation network; no packet is sent).
fn non_loopback_source() -> Option<IpAddr> {
    ["192.0.2.1:9", "10.255.255.1:9", "8.8.8.8:53"]
        .iter()
        .find_map(|target| {
            let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
            socket.connect(target).ok()?;
            let ip = socket.local_addr().ok()?.ip();
            (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
        })
}

/// An argon2id hash of `password` costing `kib` KiB of memory per verification.
fn argon2_hash(password: &str, kib: u32) -> String {
    use argon2::password_hash::PasswordHasher;
    let params = argon2::Params::new(kib, 1, 1, None).unwrap();
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(password.as_bytes())
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn parallel_wrong_attempts_never_hash_more_than_the_cap() {
    const KIB: u32 = 8 * 1024;
    let r = Routed::with_password(&argon2_hash(STRONG, KIB)).await;
    let before = peak_rss_kib();
    // 64 guesses at once, each from an address of its own (so the throttle lets each through).
    let answers = join_all((0..64).map(|n| {
        let addr = format!("10.3.{}.{}:1", n / 200, n % 200 + 1);
        let r = &r;
        async move {
            r.send(rest(Some(&addr), ADMIN.0, &format!("guess-{n}")))
                .await
        }
    }))
    .await;
    let stats = r.app.authenticator().hash_stats();
    assert!(stats.max_running >= 1);
    assert!(
        stats.max_running <= stats.cap,
        "{} hashes ran at once, cap {}",
        stats.max_running,
        stats.cap
    );
    assert_eq!(stats.running, 0);
    let mut busy = 0;
    for a in &answers {
        match a.status.as_u16() {
            401 => {}
            503 => {
                busy += 1;
                assert_eq!(a.retry_after(), Some(1));
                assert_eq!(a.json()["code"], 503);
                assert_eq!(a.json()["reason"], "Service Unavailable");
            }
            other => panic!("unexpected {other}: {}", a.body),
        }
    }
    assert_eq!(
        stats.hashed + busy,
        64,
        "every guess was hashed or refused at once"
    );
    // Memory follows the cap, not the flood (64 × 8 MiB uncapped).
    let grown_mib = peak_rss_kib().saturating_sub(before) / 1024;
    // One buffer per hashing thread, and slack for the rest of the process.
    let bound = stats.cap as u64 * u64::from(KIB / 1024) + 32;
    assert!(
        grown_mib <= bound,
        "peak RSS grew {grown_mib} MiB (bound {bound})"
    );

    // The right password pays one hash, then is remembered (by digest) for later requests.
    let hashed = stats.hashed;
    for _ in 0..10 {
        let ok = r.send(rest(Some("10.4.0.1:1"), ADMIN.0, STRONG)).await;
        assert_eq!(ok.status, 200, "{}", ok.body);
    }
    assert_eq!(r.app.authenticator().hash_stats().hashed, hashed + 1);
    assert_eq!(r.app.authenticator().tracked().1, 1);
    // A wrong password still costs a check: nothing but successes is remembered.
    assert_eq!(
        r.send(rest(Some("10.4.0.2:1"), ADMIN.0, "guess"))
            .await
            .status,
        401
    );
    assert_eq!(r.app.authenticator().hash_stats().hashed, hashed + 2);
}

#[tokio::test]
async fn memory_stays_bounded_when_addresses_and_names_are_cycled() {
    let r = Routed::with_password(STRONG).await;
    let before = peak_rss_kib();
    for n in 0u32..12_000 {
        let addr = if n % 2 == 0 {
            format!("10.{}.{}.{}:1", 8 + (n >> 16), (n >> 8) & 255, n & 255)
        } else {
            format!("[2001:db8:{:x}:{:x}::1]:1", n >> 16, n & 0xffff)
        };
        let a = r
            .send(rest(Some(&addr), &format!("user-{n}"), "guess"))
            .await;
        assert_eq!(a.status, 401);
    }
    let (tracked, remembered) = r.app.authenticator().tracked();
    assert!(tracked.addresses <= 10_000, "{tracked:?}");
    assert!(tracked.names <= 1_000, "{tracked:?}");
    assert_eq!(remembered, 0);
    let grown_mib = peak_rss_kib().saturating_sub(before) / 1024;
    assert!(grown_mib <= 32, "peak RSS grew {grown_mib} MiB");
    let ok = r.send(rest(Some("10.99.0.1:1"), ADMIN.0, STRONG)).await;
    assert_eq!(ok.status, 200);
}

#[tokio::test]
async fn a_session_ends_at_its_absolute_lifetime() {
    let app = TestApp::spawn().await;
    let b = Browser::login(&app).await;
    // Busy all day: the idle time never runs out, the lifetime (12 h by default) does.
    sqlx::query("UPDATE admin_sessions SET created_at = now() - interval '11 hours 59 minutes'")
        .execute(&app.db.pool)
        .await
        .unwrap();
    b.get_ok("/admin").await;
    sqlx::query(
        "UPDATE admin_sessions SET created_at = now() - interval '12 hours 1 minute', last_seen = now()",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    let p = b.get("/admin").await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(p.location.as_deref(), Some("/admin/login"));
    // A new log-in purges the dead session.
    Browser::login(&app).await;
    let left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM admin_sessions WHERE created_at < now() - interval '12 hours'",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn a_session_ends_when_the_admin_password_changes() {
    let app = TestApp::spawn().await;
    let b = Browser::login(&app).await;
    // The row holds a keyed fingerprint of the credential, not the password.
    let stored: String = sqlx::query_scalar("SELECT credential FROM admin_sessions")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(stored.len(), 64);
    assert!(stored.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(!stored.contains(ADMIN.1));

    let get_admin = || {
        Request::get("/admin")
            .header("cookie", &b.cookie)
            .body(Body::empty())
            .unwrap()
    };
    let send = |app: &Application, req: Request<Body>| {
        let router = app.router();
        async move {
            router
                .oneshot(with_peer(req, Some("127.0.0.1:1")))
                .await
                .unwrap()
        }
    };
    // A replica with the same configuration knows the session...
    let same = build_on(&app.db.url, None).await;
    assert_eq!(send(&same, get_admin()).await.status(), StatusCode::OK);
    // ...one restarted with another admin password does not.
    let conf = conf_with_password(STRONG);
    let changed = build_on(&app.db.url, Some(&conf)).await;
    let res = send(&changed, get_admin()).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/admin/login");
    // The same password hashed is another credential too.
    let hashed = conf_with_password(&argon2_hash(ADMIN.1, 1024));
    let rehashed = build_on(&app.db.url, Some(&hashed)).await;
    assert_eq!(
        send(&rehashed, get_admin()).await.status(),
        StatusCode::SEE_OTHER
    );
    // Logging in under the new password gives a session that works there.
    let login = send(&changed, ui_login(None, ADMIN.0, STRONG)).await;
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let req = Request::get("/admin")
        .header("cookie", &cookie)
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&changed, req).await.status(), StatusCode::OK);
}

#[test]
fn help_never_prints_credentials() {
    use base64::Engine;
    let key = base64::engine::general_purpose::STANDARD.encode([0x5au8; 32]);
    let secrets = [
        (
            "DATABASE_URL",
            "postgres://idm:Pg-Secret-1@db:5432/idm".to_owned(),
        ),
        (
            "AMQP_URL",
            "amqp://idm:Amqp-Secret-2@mq:5672/%2f".to_owned(),
        ),
        (
            "IDM_DEMO_DATABASE_URL",
            "postgres://idm:Demo-Secret-3@db:5432/idm_demo".to_owned(),
        ),
        ("IDM_SECRETS_KEY", key.clone()),
        ("SF_EMULATOR_CONSUMER_SECRET", "Emu-Secret-4".to_owned()),
        ("SF_EMULATOR_REFRESH_TOKEN", "Emu-Secret-5".to_owned()),
    ];
    let idm = env!("CARGO_BIN_EXE_idm-sync");
    let emulator = env!("CARGO_BIN_EXE_sf-emulator");
    let runs: Vec<(&str, Vec<&str>)> = vec![
        (idm, vec![]),
        (idm, vec!["serve"]),
        (idm, vec!["all"]),
        (idm, vec!["relay"]),
        (idm, vec!["worker"]),
        (idm, vec!["scheduler"]),
        (idm, vec!["migrate"]),
        (idm, vec!["recon"]),
        (idm, vec!["demo"]),
        (idm, vec!["salesforce"]),
        (idm, vec!["salesforce", "authorize"]),
        (emulator, vec![]),
    ];
    for (bin, args) in runs {
        let out = std::process::Command::new(bin)
            .args(&args)
            .arg("--help")
            .envs(secrets.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .unwrap();
        assert!(out.status.success(), "{bin} {args:?} --help");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for secret in [
            "Pg-Secret-1",
            "Amqp-Secret-2",
            "Demo-Secret-3",
            key.as_str(),
            "Emu-Secret-4",
            "Emu-Secret-5",
        ] {
            assert!(
                !text.contains(secret),
                "{bin} {args:?} --help prints {secret}:\n{text}"
            );
        }
    }
    // The variables are still named, so operators know what is read.
    let out = std::process::Command::new(idm)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("[env: DATABASE_URL"), "{text}");
    assert!(text.contains("[env: AMQP_URL"), "{text}");
}
