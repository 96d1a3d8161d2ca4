//! HTTPS: `--tls-listen` with PEM files, the self-signed certificate kept under the data
//! directory and reused, and clear errors for a bad certificate path or no listener at all.

use std::path::{Path, PathBuf};

use idm_sync::app::{Application, Listeners, ServeSettings, StartError};
use idm_sync::tls::{CertSource, TlsSettings};

use crate::helpers::TestDb;

fn settings(db: &TestDb) -> ServeSettings {
    ServeSettings {
        conf_dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("conf"),
        listen: "127.0.0.1:0".into(),
        database: crate::helpers::db_settings(&db.url),
        broker: None,
    }
}

fn tls(cert: CertSource) -> Listeners {
    Listeners {
        tls: Some(TlsSettings::new("127.0.0.1:0", cert)),
        ..Listeners::default()
    }
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("idm-tls-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Serves `app` in the background; dropping the sender stops it.
fn serve(app: Application) -> tokio::sync::oneshot::Sender<()> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    tx
}

/// `serve` over HTTP and HTTPS with a certificate for 127.0.0.1 written to PEM files; serving
/// until dropped.
struct ServedWithCert {
    http_port: u16,
    tls_port: u16,
    /// The certificate (PEM), for a client to trust.
    cert_pem: String,
    dir: PathBuf,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl ServedWithCert {
    async fn start(db: &TestDb) -> ServedWithCert {
        let dir = temp_dir();
        let generated = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, generated.cert.pem()).unwrap();
        std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
        let app = Application::build_with(&settings(db), &tls(CertSource::Files { cert, key }))
            .await
            .unwrap();
        let (http_port, tls_port) = (app.port(), app.tls_addr().unwrap().port());
        ServedWithCert {
            http_port,
            tls_port,
            cert_pem: generated.cert.pem(),
            dir,
            _stop: serve(app),
        }
    }
}

/// GET /openidm/info/ping over HTTPS, trusting only `cert_pem`.
async fn https_ping(port: u16, cert_pem: &[u8]) -> serde_json::Value {
    let client = crate::helpers::http_builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem).unwrap())
        .build()
        .unwrap();
    let res = client
        .get(format!("https://127.0.0.1:{port}/openidm/info/ping"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

#[tokio::test]
async fn https_serves_the_api_with_a_given_certificate() {
    let db = TestDb::new().await;
    let served = ServedWithCert::start(&db).await;
    let (http_port, tls_port, dir) = (served.http_port, served.tls_port, served.dir.clone());

    let ping = https_ping(tls_port, served.cert_pem.as_bytes()).await;
    assert_eq!(ping["state"], "ACTIVE_READY");
    // The plain listener serves the same router beside it.
    let plain = reqwest::get(format!("http://127.0.0.1:{http_port}/openidm/info/ping"))
        .await
        .unwrap();
    assert_eq!(plain.status(), 200);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn the_self_signed_certificate_is_generated_once_and_reused() {
    let db = TestDb::new().await;
    let data_dir = temp_dir();
    let source = CertSource::SelfSigned {
        data_dir: data_dir.clone(),
    };
    let cert_path = data_dir.join("tls/cert.pem");

    let first = Application::build_with(&settings(&db), &tls(source.clone()))
        .await
        .unwrap();
    let first_pem = std::fs::read(&cert_path).unwrap();
    drop(first);

    // Without HTTP this time: the HTTPS listener alone.
    let listeners = Listeners {
        http: false,
        ..tls(source)
    };
    let second = Application::build_with(&settings(&db), &listeners)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&cert_path).unwrap(), first_pem, "reused");
    let port = second.tls_addr().unwrap().port();
    assert_eq!(
        second.port(),
        port,
        "without HTTP the app's address is the HTTPS one"
    );
    let _stop = serve(second);
    let ping = https_ping(port, &first_pem).await;
    assert_eq!(ping["state"], "ACTIVE_READY");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data_dir.join("tls/key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the private key is readable by its owner only"
        );
    }
    std::fs::remove_dir_all(&data_dir).unwrap();
}

#[tokio::test]
async fn a_bad_certificate_path_is_a_clear_error() {
    let db = TestDb::new().await;
    let missing = PathBuf::from("/nonexistent/idm-sync/cert.pem");
    let source = CertSource::Files {
        cert: missing.clone(),
        key: PathBuf::from("/nonexistent/idm-sync/key.pem"),
    };
    let Err(err) = Application::build_with(&settings(&db), &tls(source)).await else {
        panic!("a missing certificate must fail the start");
    };
    let message = idm_sync::telemetry::error_chain(&err);
    assert!(matches!(err, StartError::Tls(_)), "{message}");
    assert!(
        message.contains("/nonexistent/idm-sync/cert.pem"),
        "{message}"
    );
    assert!(message.contains("TLS certificate"), "{message}");
}

#[tokio::test]
async fn no_http_without_tls_leaves_no_listener() {
    let db = TestDb::new().await;
    let listeners = Listeners {
        http: false,
        tls: None,
        ..Listeners::default()
    };
    let Err(err) = Application::build_with(&settings(&db), &listeners).await else {
        panic!("no listener must fail the start");
    };
    assert!(err.to_string().contains("--tls-listen"), "{err}");
}

/// The Admin UI's session cookie is `Secure` on the HTTPS listener and not on plain HTTP
/// (where a browser would drop a `Secure` cookie), without any setting.
#[tokio::test]
async fn the_admin_session_cookie_is_secure_over_https_only() {
    let db = TestDb::new().await;
    let served = ServedWithCert::start(&db).await;
    let (http_port, tls_port, dir) = (served.http_port, served.tls_port, served.dir.clone());

    let client = crate::helpers::http_builder()
        .add_root_certificate(reqwest::Certificate::from_pem(served.cert_pem.as_bytes()).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = async |base: String| {
        let res = client
            .post(format!("{base}/admin/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("username=openidm-admin&password=openidm-admin")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303);
        res.headers()["set-cookie"].to_str().unwrap().to_owned()
    };
    let over_tls = login(format!("https://127.0.0.1:{tls_port}")).await;
    assert!(over_tls.ends_with("; Secure"), "{over_tls}");
    let plain = login(format!("http://127.0.0.1:{http_port}")).await;
    assert!(!plain.contains("Secure"), "{plain}");
    std::fs::remove_dir_all(&dir).unwrap();
}
