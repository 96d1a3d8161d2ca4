//! Issue 13, item 2: slow and greedy clients. Every listener (plain HTTP, HTTPS, the roles'
//! `--metrics-listen`) cuts off slow headers, stalled or trickled bodies and idle kept-alive
//! connections, caps its connections, and shuts down without waiting on idle connections.
//! Each test then checks the server still answers an authenticated request.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::get;
use idm_sync::api::client_addr::ClientAddr;
use idm_sync::app::{Application, Listeners, ServeSettings};
use idm_sync::http_server::{ConnectionCap, HttpLimits, Server, Transport};
use idm_sync::ops::{self, Ops, listener::OpsListener};
use idm_sync::tls::{CertSource, TlsSettings};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{ADMIN, TempDir, TestApp, TestDb, db_settings};

/// Short limits, so each test takes about a second.
const HEADER: Duration = Duration::from_millis(600);
const BODY: Duration = Duration::from_millis(600);
/// What a loaded test machine may add to a limit before the close shows.
const SLACK: Duration = Duration::from_secs(3);

fn short_limits() -> HttpLimits {
    HttpLimits {
        header_read_timeout: HEADER,
        body_read_timeout: BODY,
        ..HttpLimits::default()
    }
}

/// An application served in the background with the limits given; shutdown on demand.
struct Served {
    /// Dropped with the server: the database outlives every request.
    _db: TestDb,
    http_port: u16,
    tls_port: Option<u16>,
    cert_pem: Option<String>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: Option<TempDir>,
}

impl Served {
    async fn start(limits: HttpLimits) -> Served {
        Self::start_with(Listeners {
            limits,
            ..Listeners::default()
        })
        .await
    }

    /// HTTP and HTTPS (a certificate for 127.0.0.1), the handshake limited to `handshake`.
    async fn start_tls(limits: HttpLimits, handshake: Duration) -> Served {
        let dir = TempDir::new("idm-http-limits");
        let generated = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, generated.cert.pem()).unwrap();
        std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
        let tls = TlsSettings {
            handshake_timeout: handshake,
            ..TlsSettings::new("127.0.0.1:0", CertSource::Files { cert, key })
        };
        let mut served = Self::start_with(Listeners {
            tls: Some(tls),
            limits,
            ..Listeners::default()
        })
        .await;
        served.cert_pem = Some(generated.cert.pem());
        served._dir = Some(dir);
        served
    }

    async fn start_with(listeners: Listeners) -> Served {
        let db = TestDb::new().await;
        let settings = ServeSettings {
            conf_dir: std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf"),
            listen: "127.0.0.1:0".into(),
            database: db_settings(&db.url),
            broker: None,
        };
        let app = Application::build_full(&settings, &listeners, Ops::isolated())
            .await
            .unwrap();
        let http_port = app.port();
        let tls_port = app.tls_addr().map(|a| a.port());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        Served {
            _db: db,
            http_port,
            tls_port,
            cert_pem: None,
            stop: Some(stop),
            task,
            _dir: None,
        }
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(("127.0.0.1", self.http_port))
            .await
            .unwrap()
    }

    /// An authenticated managed query answers: the server still serves.
    async fn assert_serving(&self) {
        assert_serving(&format!("http://127.0.0.1:{}", self.http_port)).await;
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.shutdown();
    }
}

async fn assert_serving(root: &str) {
    let res = crate::helpers::http_builder()
        .build()
        .unwrap()
        .get(format!("{root}/openidm/managed/user?_queryFilter=true"))
        .header("X-OpenIDM-Username", ADMIN.0)
        .header("X-OpenIDM-Password", ADMIN.1)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the server keeps serving");
}

const AUTH: &str = "X-OpenIDM-Username: openidm-admin\r\nX-OpenIDM-Password: openidm-admin\r\n";

fn ping_request() -> String {
    format!("GET /openidm/info/ping HTTP/1.1\r\nHost: 127.0.0.1\r\n{AUTH}\r\n")
}

/// How long the peer took to close `stream` (end of file or reset), reading and dropping
/// whatever it sends first; fails if it is still open after `bound`.
async fn closed_within<S: AsyncRead + Unpin>(stream: &mut S, bound: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(bound, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("still open after {bound:?}"));
    started.elapsed()
}

struct RawResponse {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// One HTTP/1.1 response with a Content-Length body, within `bound`.
async fn read_response<S: AsyncRead + Unpin>(stream: &mut S, bound: Duration) -> RawResponse {
    tokio::time::timeout(bound, async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(
                n > 0,
                "closed before a response: {:?}",
                String::from_utf8_lossy(&buf)
            );
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let mut response = RawResponse {
            status,
            head,
            body: buf[head_end..].to_vec(),
        };
        let length: usize = response
            .header("content-length")
            .map(|v| v.parse().unwrap())
            .unwrap_or(0);
        while response.body.len() < length {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed inside the body");
            response.body.extend_from_slice(&chunk[..n]);
        }
        response
    })
    .await
    .unwrap_or_else(|_| panic!("no response within {bound:?}"))
}

/// Writes `bytes` one at a time, `gap` apart, ignoring a closed connection.
fn trickle<W: AsyncWrite + Unpin + Send + 'static>(
    mut writer: W,
    bytes: Vec<u8>,
    gap: Duration,
) -> tokio::task::JoinHandle<W> {
    tokio::spawn(async move {
        for b in bytes {
            tokio::time::sleep(gap).await;
            if writer.write_all(&[b]).await.is_err() {
                break;
            }
        }
        writer
    })
}

fn assert_cut_at(elapsed: Duration, limit: Duration) {
    assert!(
        elapsed >= limit / 2,
        "closed after {elapsed:?}, before the {limit:?} limit could fire"
    );
    assert!(elapsed <= limit + SLACK, "closed only after {elapsed:?}");
}

#[tokio::test]
async fn slow_headers_are_cut_off_at_the_header_timeout() {
    let served = Served::start(short_limits()).await;

    // A request line and part of the headers, then nothing.
    let mut partial = served.connect().await;
    partial
        .write_all(b"GET /openidm/info/ping HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await
        .unwrap();
    assert_cut_at(closed_within(&mut partial, HEADER + SLACK).await, HEADER);

    // A byte now and then does not move the limit.
    let (mut read, write) = served.connect().await.into_split();
    let trickling = trickle(write, ping_request().into_bytes(), HEADER / 6);
    assert_cut_at(closed_within(&mut read, HEADER + SLACK).await, HEADER);
    trickling.abort();

    // Connected, never a byte.
    let mut silent = served.connect().await;
    assert_cut_at(closed_within(&mut silent, HEADER + SLACK).await, HEADER);

    served.assert_serving().await;
}

#[tokio::test]
async fn oversized_headers_answer_431() {
    let app = TestApp::spawn().await;
    let port = reqwest::Url::parse(&app.base).unwrap().port().unwrap();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let big = "a".repeat(HttpLimits::default().max_header_bytes + 1024);
    stream
        .write_all(
            format!("GET /openidm/info/ping HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {big}\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let response = read_response(&mut stream, SLACK).await;
    assert_eq!(response.status, 431, "{}", response.head);
    let res = app
        .get("/managed/user?_queryFilter=true")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

/// POST …?_action=create announcing `length` body bytes.
fn create_head(length: usize) -> String {
    format!(
        "POST /openidm/managed/user?_action=create HTTP/1.1\r\nHost: 127.0.0.1\r\n{AUTH}Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
}

fn assert_body_timeout_answer(response: &RawResponse) {
    assert_eq!(response.status, 408, "{}", response.head);
    let body = response.json();
    assert_eq!(body["code"], 408, "{body}");
    assert_eq!(body["reason"], "Request Timeout", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("body read timeout"),
        "the answer names the limit: {body}"
    );
    assert_eq!(response.header("connection"), Some("close"));
}

#[tokio::test]
async fn a_stalled_body_answers_408_and_the_connection_closes() {
    let served = Served::start(short_limits()).await;
    let mut stream = served.connect().await;
    stream
        .write_all(create_head(1000).as_bytes())
        .await
        .unwrap();
    stream.write_all(b"{\"userName\"").await.unwrap();
    let started = Instant::now();
    let response = read_response(&mut stream, BODY + SLACK).await;
    assert_cut_at(started.elapsed(), BODY);
    assert_body_timeout_answer(&response);
    closed_within(&mut stream, SLACK).await;
    served.assert_serving().await;
}

#[tokio::test]
async fn a_trickled_body_is_cut_off_at_the_deadline() {
    let served = Served::start(short_limits()).await;
    let (mut read, mut write) = served.connect().await.into_split();
    write.write_all(create_head(1000).as_bytes()).await.unwrap();
    let started = Instant::now();
    // 1000 bytes at one per BODY/6 would take 100 limits: each byte arrives in time, the
    // body does not.
    let trickling = trickle(write, vec![b' '; 1000], BODY / 6);
    let response = read_response(&mut read, BODY + SLACK).await;
    assert_cut_at(started.elapsed(), BODY);
    assert_body_timeout_answer(&response);
    trickling.abort();
    served.assert_serving().await;
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed() {
    let served = Served::start(short_limits()).await;
    let mut stream = served.connect().await;
    // Two requests on one connection: keep-alive works...
    for _ in 0..2 {
        stream.write_all(ping_request().as_bytes()).await.unwrap();
        let response = read_response(&mut stream, SLACK).await;
        assert_eq!(response.status, 200, "{}", response.head);
    }
    // ...and an idle connection is closed once the wait for the next headers runs out.
    assert_cut_at(closed_within(&mut stream, HEADER + SLACK).await, HEADER);
    served.assert_serving().await;
}

/// Log lines written while the returned guard lives on this thread (a `#[tokio::test]` runs
/// the server's tasks on its own thread).
fn capture_logs() -> (Arc<Mutex<Vec<u8>>>, tracing::subscriber::DefaultGuard) {
    #[derive(Clone)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let logs = Arc::new(Mutex::new(Vec::new()));
    let sink = Sink(logs.clone());
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    (logs, tracing::subscriber::set_default(subscriber))
}

fn count(logs: &Mutex<Vec<u8>>, needle: &str) -> usize {
    String::from_utf8_lossy(&logs.lock().unwrap())
        .matches(needle)
        .count()
}

/// Writes a ping and expects no answer for a while: the connection waits at the cap.
async fn assert_waiting(stream: &mut TcpStream) {
    stream.write_all(ping_request().as_bytes()).await.unwrap();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_millis(700), stream.read(&mut byte)).await;
    assert!(
        read.is_err(),
        "answered while the cap was reached: {read:?}"
    );
}

#[tokio::test]
async fn the_connection_cap_holds_extra_connections_until_one_closes() {
    let (logs, _guard) = capture_logs();
    // Long header limit: the two holders stay open for the whole test.
    let served = Served::start(HttpLimits {
        header_read_timeout: Duration::from_secs(20),
        max_connections: 2,
        ..HttpLimits::default()
    })
    .await;
    let a = served.connect().await;
    let b = served.connect().await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut c = served.connect().await;
    assert_waiting(&mut c).await;
    drop(a);
    let response = read_response(&mut c, SLACK).await;
    assert_eq!(response.status, 200, "served once a slot freed");

    // b and c hold both slots (c kept alive): the next one waits again, same episode.
    let mut d = served.connect().await;
    assert_waiting(&mut d).await;
    drop(b);
    assert_eq!(read_response(&mut d, SLACK).await.status, 200);

    drop((c, d));
    served.assert_serving().await;
    assert_eq!(
        count(&logs, "connection cap reached"),
        1,
        "one warning per episode at the cap: {}",
        String::from_utf8_lossy(&logs.lock().unwrap())
    );
}

#[tokio::test]
async fn shutdown_finishes_requests_in_flight_and_closes_idle_connections() {
    let mut served = Served::start(HttpLimits {
        header_read_timeout: Duration::from_secs(20),
        body_read_timeout: Duration::from_secs(20),
        ..HttpLimits::default()
    })
    .await;
    // A kept-alive connection after one answer, and one that never sent a byte.
    let mut idle = served.connect().await;
    idle.write_all(ping_request().as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut idle, SLACK).await.status, 200);
    let mut silent = served.connect().await;
    // A create whose body is half sent.
    let body = serde_json::to_vec(&crate::helpers::user_body("in-flight")).unwrap();
    let (first, rest) = body.split_at(body.len() / 2);
    let mut in_flight = served.connect().await;
    in_flight
        .write_all(create_head(body.len()).as_bytes())
        .await
        .unwrap();
    in_flight.write_all(first).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    served.shutdown();
    // Idle connections are not waited for: closed at once, long before their 20 s limit.
    assert!(closed_within(&mut idle, SLACK).await < Duration::from_secs(2));
    assert!(closed_within(&mut silent, SLACK).await < Duration::from_secs(2));
    assert!(!served.task.is_finished(), "a request is still in flight");

    in_flight.write_all(rest).await.unwrap();
    let response = read_response(&mut in_flight, SLACK).await;
    assert_eq!(response.status, 201, "the request in flight completes");
    assert_eq!(response.json()["userName"], "in-flight");
    let finished = Instant::now();
    tokio::time::timeout(SLACK, &mut served.task)
        .await
        .expect("shutdown completes once the last request is answered")
        .unwrap()
        .unwrap();
    assert!(finished.elapsed() < Duration::from_secs(2));
    assert!(
        TcpStream::connect(("127.0.0.1", served.http_port))
            .await
            .is_err(),
        "the listener is closed"
    );
}

/// A TLS client trusting only `cert_pem`.
fn tls_connector(cert_pem: &str) -> tokio_rustls::TlsConnector {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn tls_cuts_off_silent_handshakes_and_slow_headers() {
    let handshake = Duration::from_millis(600);
    let served = Served::start_tls(short_limits(), handshake).await;
    let port = served.tls_port.unwrap();

    // TCP, then no ClientHello.
    let mut silent = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    assert_cut_at(
        closed_within(&mut silent, handshake + SLACK).await,
        handshake,
    );

    // A handshake, then half a request.
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = tls_connector(served.cert_pem.as_deref().unwrap())
        .connect(name, tcp)
        .await
        .unwrap();
    tls.write_all(b"GET /openidm/info/ping HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    tls.flush().await.unwrap();
    assert_cut_at(closed_within(&mut tls, HEADER + SLACK).await, HEADER);

    assert_serving_https(&served).await;
    served.assert_serving().await;
}

/// [`assert_serving`] over HTTPS, trusting the test certificate.
async fn assert_serving_https(served: &Served) {
    let port = served.tls_port.unwrap();
    let res = https_client(served)
        .get(format!(
            "https://127.0.0.1:{port}/openidm/managed/user?_queryFilter=true"
        ))
        .header("X-OpenIDM-Username", ADMIN.0)
        .header("X-OpenIDM-Password", ADMIN.1)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "HTTPS keeps serving");
}

fn https_client(served: &Served) -> reqwest::Client {
    let pem = served.cert_pem.as_deref().unwrap().as_bytes();
    crate::helpers::http_builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem).unwrap())
        .build()
        .unwrap()
}

#[tokio::test]
async fn https_answers_carry_hsts_and_plain_http_answers_do_not() {
    let served = Served::start_tls(HttpLimits::default(), Duration::from_secs(10)).await;
    let https = https_client(&served);
    let tls_root = format!("https://127.0.0.1:{}/openidm", served.tls_port.unwrap());
    let plain_root = format!("http://127.0.0.1:{}/openidm", served.http_port);
    for path in ["/info/ping", "/managed/user?_queryFilter=true"] {
        // The second answers 401 (no credentials): errors carry it too.
        let res = https.get(format!("{tls_root}{path}")).send().await.unwrap();
        assert_eq!(
            res.headers()["strict-transport-security"],
            "max-age=31536000",
            "{path}: {}",
            res.status()
        );
        let res = reqwest::get(format!("{plain_root}{path}")).await.unwrap();
        assert!(
            !res.headers().contains_key("strict-transport-security"),
            "{path} over plain HTTP"
        );
    }
}

#[tokio::test]
async fn the_metrics_listener_applies_the_header_timeout() {
    let db = TestDb::new().await;
    let listener = OpsListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .with_limits(short_limits());
    let addr = listener.local_addr;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(listener.serve(
        ops::router(Ops::isolated(), db.pool.clone()),
        async move {
            let _ = stopped.await;
        },
    ));
    let mut partial = TcpStream::connect(addr).await.unwrap();
    partial
        .write_all(b"GET /metrics HTTP/1.1\r\n")
        .await
        .unwrap();
    assert_cut_at(closed_within(&mut partial, HEADER + SLACK).await, HEADER);
    let res = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the metrics listener keeps serving");
    let _ = stop.send(());
    server.await.unwrap();
}

/// `ConnectInfo<ClientAddr>` reaches handlers on plain and TLS connections: the credential
/// throttle and the loopback-only default password depend on it.
#[tokio::test]
async fn handlers_see_the_peer_address_on_both_transports() {
    let router = Router::new().route(
        "/peer",
        get(|ConnectInfo(ClientAddr(peer)): ConnectInfo<ClientAddr>| async move {
            peer.to_string()
        }),
    );
    let dir = TempDir::new("idm-peer");
    let generated = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    let config = idm_sync::tls::server_config(&CertSource::Files { cert, key }).unwrap();
    let transports = [
        Transport::Plain,
        Transport::tls(config, Duration::from_secs(5), Duration::from_secs(60)),
    ];
    for transport in transports {
        let tls = matches!(transport, Transport::Tls(_));
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = Server::new(
            tcp,
            transport,
            HttpLimits::default(),
            ConnectionCap::new(8, "test"),
        );
        let port = server.local_addr().unwrap().port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.serve(router.clone(), async move {
            let _ = stopped.await;
        }));
        let client = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let me = client.local_addr().unwrap().to_string();
        let request = b"GET /peer HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
        let response = if tls {
            let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
            let mut stream = tls_connector(&generated.cert.pem())
                .connect(name, client)
                .await
                .unwrap();
            stream.write_all(request).await.unwrap();
            let response = read_response(&mut stream, SLACK).await;
            assert_eq!(
                response.header("strict-transport-security"),
                Some("max-age=60")
            );
            response
        } else {
            let mut stream = client;
            stream.write_all(request).await.unwrap();
            read_response(&mut stream, SLACK).await
        };
        assert_eq!(response.status, 200, "{}", response.head);
        assert_eq!(String::from_utf8(response.body).unwrap(), me, "tls: {tls}");
        let _ = stop.send(());
        serving.await.unwrap();
    }
}

/// A client that asks for a large answer and stops reading it loses its connection after the
/// send timeout, and with it its slot under the cap.
#[tokio::test]
async fn a_client_that_stops_reading_loses_its_connection() {
    use futures_util::StreamExt;
    let send_timeout = Duration::from_millis(600);
    let router = Router::new().route(
        "/large",
        get(|| async {
            // 256 MiB, streamed: far more than the socket buffers hold.
            let chunk = axum::body::Bytes::from(vec![b'x'; 64 * 1024]);
            let chunks = futures_util::stream::repeat(chunk)
                .take(4096)
                .map(Ok::<_, std::io::Error>);
            axum::body::Body::from_stream(chunks)
        }),
    );
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let limits = HttpLimits {
        send_timeout,
        max_connections: 1,
        ..HttpLimits::default()
    };
    let server = Server::new(tcp, Transport::Plain, limits, ConnectionCap::new(1, "test"));
    let port = server.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(router, async move {
        let _ = stopped.await;
    }));

    let mut reader = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    reader
        .write_all(b"GET /large HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    // The only slot is taken: the next client waits until the stalled one is let go.
    let started = Instant::now();
    let mut next = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    next.write_all(b"GET /nothing HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let response = read_response(&mut next, send_timeout + SLACK).await;
    assert_eq!(response.status, 404);
    assert!(
        started.elapsed() >= send_timeout / 2,
        "{:?}",
        started.elapsed()
    );
    // What the stalled client finally reads ends well short of the answer.
    let mut received = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => received += n,
        }
    }
    assert!(received < 256 << 20, "cut off after {received} bytes");
    let _ = stop.send(());
    serving.await.unwrap();
}
