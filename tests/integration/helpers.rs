//! Shared test fixtures: a fresh Postgres database per test, dropped when the test ends.

use std::sync::OnceLock;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// Base URL of the Postgres server the tests use (a database name is appended per test).
pub fn pg_server_url() -> String {
    std::env::var("TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

fn init_tracing() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        if std::env::var("TEST_LOG").is_ok() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter("info,idm_sync=debug")
                .with_test_writer()
                .try_init();
        }
    });
}

/// The secrets key of every test server and of the token stores tests build beside them.
pub const TEST_SECRETS_KEY: [u8; idm_sync::secrets::KEY_LEN] = [42; idm_sync::secrets::KEY_LEN];

/// [`TEST_SECRETS_KEY`] as `IDM_SECRETS_KEY` takes it, for roles run as processes.
pub fn test_secrets_key_base64() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(TEST_SECRETS_KEY)
}

/// Settings of a server on the database at `url`, sealing under [`TEST_SECRETS_KEY`].
pub fn db_settings(url: &str) -> idm_sync::repo::db::DbSettings {
    idm_sync::repo::db::DbSettings {
        secrets: idm_sync::secrets::KeySource::Key(TEST_SECRETS_KEY),
        ..idm_sync::repo::db::DbSettings::new(url)
    }
}

/// A token store over `pool` that the test servers' roles can read, and read back.
pub fn token_store(pool: &PgPool) -> idm_sync::salesforce::TokenStore {
    idm_sync::repo::salesforce_store::postgres(
        pool.clone(),
        idm_sync::secrets::Sealer::new(&TEST_SECRETS_KEY).unwrap(),
    )
}

/// A migrated database of its own, dropped (with its connections) when this value is dropped.
pub struct TestDb {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
}

impl TestDb {
    pub async fn new() -> TestDb {
        init_tracing();
        let name = format!("idm_test_{}", uuid::Uuid::new_v4().simple());
        let url = format!("{}/{}", pg_server_url(), name);
        let pool = idm_sync::repo::db::connect(&db_settings(&url))
            .await
            .expect("connect to the test database");
        idm_sync::repo::db::migrate(&pool)
            .await
            .expect("migrate the test database");
        TestDb { name, url, pool }
    }

    /// A second, independent pool on the same database (for concurrency tests).
    pub async fn another_pool(&self) -> PgPool {
        PgPoolOptions::new()
            .max_connections(8)
            .connect(&self.url)
            .await
            .expect("second pool")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        drop_database(&self.name);
    }
}

/// Drops database `name` (with its connections), from sync code such as a `Drop`.
pub fn drop_database(name: &str) {
    let name = name.to_owned();
    let server = pg_server_url();
    block_on_own_thread(async move {
        if let Ok(pool) = PgPoolOptions::new()
            .max_connections(1)
            .connect(&format!("{server}/postgres"))
            .await
        {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
            )))
            .execute(&pool)
            .await;
            pool.close().await;
        }
    });
}

/// Runs `work` to its end on a thread with a runtime of its own: cleanup from a `Drop`, which
/// may run inside a runtime or outside one.
fn block_on_own_thread(work: impl std::future::Future<Output = ()> + Send + 'static) {
    let _ = std::thread::spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            rt.block_on(work);
        }
    })
    .join();
}

/// A free loopback port (free when asked: another process may take it before it is used).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `serve` on a random port over its own database.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub db: TestDb,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

pub const ADMIN: (&str, &str) = ("openidm-admin", "openidm-admin");

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with_conf(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf")).await
    }

    pub async fn spawn_with_conf(conf_dir: std::path::PathBuf) -> TestApp {
        Self::spawn_with_ops(conf_dir, idm_sync::ops::Ops::isolated()).await
    }

    /// With a metrics registry and readiness checks of the caller's (shared with its roles).
    pub async fn spawn_with_ops(conf_dir: std::path::PathBuf, ops: idm_sync::ops::Ops) -> TestApp {
        Self::spawn_full(conf_dir, ops, None, |_| {}).await
    }

    /// The shipped conf/, its ping reporting `broker` as the status of a relay in its process.
    pub async fn spawn_with_broker_status(
        broker: idm_sync::outbound::broker::BrokerStatus,
    ) -> TestApp {
        let conf_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
        Self::spawn_full(
            conf_dir,
            idm_sync::ops::Ops::isolated(),
            Some(broker),
            |_| {},
        )
        .await
    }

    /// The shipped conf/, with database settings changed by `edit` (time limits, pool size).
    pub async fn spawn_with_db(edit: impl FnOnce(&mut idm_sync::repo::db::DbSettings)) -> TestApp {
        let conf_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
        Self::spawn_full(conf_dir, idm_sync::ops::Ops::isolated(), None, edit).await
    }

    async fn spawn_full(
        conf_dir: std::path::PathBuf,
        ops: idm_sync::ops::Ops,
        broker: Option<idm_sync::outbound::broker::BrokerStatus>,
        edit: impl FnOnce(&mut idm_sync::repo::db::DbSettings),
    ) -> TestApp {
        let db = TestDb::new().await;
        let mut database = db_settings(&db.url);
        edit(&mut database);
        let settings = idm_sync::app::ServeSettings {
            conf_dir,
            listen: "127.0.0.1:0".into(),
            database,
            broker,
        };
        let app = idm_sync::app::Application::build_with_ops(&settings, ops)
            .await
            .expect("build the application");
        let base = format!("http://127.0.0.1:{}/openidm", app.port());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        TestApp {
            base,
            client: crate::helpers::http_builder().build().unwrap(),
            db,
            shutdown: Some(tx),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A request with the admin's `X-OpenIDM-*` headers.
    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .header("X-OpenIDM-Username", ADMIN.0)
            .header("X-OpenIDM-Password", ADMIN.1)
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.req(reqwest::Method::GET, path)
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.req(reqwest::Method::POST, path)
    }

    pub fn put(&self, path: &str) -> reqwest::RequestBuilder {
        self.req(reqwest::Method::PUT, path)
    }

    pub fn patch(&self, path: &str) -> reqwest::RequestBuilder {
        self.req(reqwest::Method::PATCH, path)
    }

    pub fn delete(&self, path: &str) -> reqwest::RequestBuilder {
        self.req(reqwest::Method::DELETE, path)
    }

    /// `GET /managed/user/{id}` as JSON (whatever the status).
    pub async fn managed_user(&self, id: &str) -> serde_json::Value {
        let res = self
            .get(&format!("/managed/user/{id}"))
            .send()
            .await
            .unwrap();
        res.json().await.unwrap()
    }

    /// Creates a valid user and returns its JSON.
    pub async fn create_user(&self, user_name: &str) -> serde_json::Value {
        let res = self
            .post("/managed/user?_action=create")
            .json(&user_body(user_name))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "{:?}", res.text().await);
        res.json().await.unwrap()
    }

    /// Outbox rows for one object, oldest first: (operation, rev).
    pub async fn outbox_for(&self, id: &str) -> Vec<(String, i64)> {
        sqlx::query_as("SELECT operation, rev FROM outbox WHERE object_id = $1 ORDER BY id")
            .bind(id)
            .fetch_all(&self.db.pool)
            .await
            .unwrap()
    }

    pub async fn outbox_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(&self.db.pool)
            .await
            .unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub fn user_body(user_name: &str) -> serde_json::Value {
    serde_json::json!({
        "userName": user_name,
        "givenName": "Barbara",
        "sn": "Jensen",
        "mail": format!("{user_name}@example.com"),
    })
}

/// A copy of the shipped `conf/` in a directory of its own, with some files replaced or added;
/// removed when dropped. For tests that need another configuration than the sample's.
pub struct TempConf {
    pub dir: std::path::PathBuf,
}

impl TempConf {
    pub fn with_files(files: &[(&str, &serde_json::Value)]) -> TempConf {
        let dir =
            std::env::temp_dir().join(format!("idm-sync-conf-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
        for entry in std::fs::read_dir(&shipped).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
            }
        }
        for (name, value) in files {
            std::fs::write(dir.join(name), serde_json::to_vec_pretty(value).unwrap()).unwrap();
        }
        TempConf { dir }
    }

    /// A shipped file, parsed.
    pub fn shipped(name: &str) -> serde_json::Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("conf")
            .join(name);
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }
}

impl Drop for TempConf {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The RabbitMQ the tests use.
pub fn amqp_url() -> String {
    std::env::var("TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// A broker topology under a name prefix of its own, whose exchanges and queues (every lane's)
/// are deleted when the value is dropped — also when the test panics.
pub struct TestTopology(pub idm_sync::outbound::topology::Topology);

impl TestTopology {
    /// One lane: the shipped outbound mapping's.
    pub fn new(partitions: u16) -> TestTopology {
        TestTopology::with_lanes(partitions, [idm_sync::outbound::worker::OUTBOUND_MAPPING])
    }

    pub fn with_lanes(
        partitions: u16,
        lanes: impl IntoIterator<Item = &'static str>,
    ) -> TestTopology {
        TestTopology(
            idm_sync::outbound::topology::Topology::new(
                format!("test-{}", uuid::Uuid::new_v4().simple()),
                partitions,
            )
            .with_lanes(lanes),
        )
    }
}

impl std::ops::Deref for TestTopology {
    type Target = idm_sync::outbound::topology::Topology;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Drop for TestTopology {
    fn drop(&mut self) {
        use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
        let topology = self.0.clone();
        block_on_own_thread(async move {
            let Ok(conn) =
                lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
                    .await
            else {
                return;
            };
            let Ok(channel) = conn.create_channel().await else {
                return;
            };
            let mut queues = topology.queues();
            queues.push(topology.dead_letter_queue());
            for q in queues {
                let _ = channel
                    .queue_delete(q.into(), QueueDeleteOptions::default())
                    .await;
            }
            for e in [topology.exchange(), topology.dead_letter_exchange()] {
                let _ = channel
                    .exchange_delete(e.into(), ExchangeDeleteOptions::default())
                    .await;
            }
            let _ = conn.close(200, "bye".into()).await;
        });
    }
}

/// A managed user the outbound mapping can create in Salesforce (it needs a profile).
pub fn sf_user_body(user_name: &str, profile: &str) -> serde_json::Value {
    serde_json::json!({
        "userName": user_name,
        "givenName": "Barbara",
        "sn": "Jensen",
        "mail": format!("{}@example.com", user_name.split('@').next().unwrap_or("x")),
        "profileId": profile,
    })
}

/// Creates a managed user over REST; returns its id.
pub async fn create_managed(app: &TestApp, body: &serde_json::Value) -> String {
    let res = app
        .post("/managed/user?_action=create")
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    let v: serde_json::Value = res.json().await.unwrap();
    v["_id"].as_str().unwrap().to_owned()
}

/// A directory of a test's own under the system's temporary directory, removed when the test
/// ends (so runs leave nothing behind).
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;

    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

/// Ready messages in the named queues of the broker at `url`, added up.
pub async fn queued_messages(url: &str, queues: &[String]) -> u32 {
    let conn = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    let mut total = 0;
    for queue in queues {
        let q = channel
            .queue_declare(
                queue.as_str().into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..lapin::options::QueueDeclareOptions::default()
                },
                lapin::types::FieldTable::default(),
            )
            .await
            .unwrap();
        total += q.message_count();
    }
    let _ = conn.close(200, "bye".into()).await;
    total
}

/// An `idm-sync <role>` child process, the way compose runs the roles: over the database at
/// `db_url`, with `conf` and the test secrets key. Its output shows with `TEST_LOG`.
/// SIGKILLed on drop if still running.
pub struct RoleProcess(pub std::process::Child);

impl RoleProcess {
    /// The command, for a caller to add its flags and variables before [`RoleProcess::spawn`].
    pub fn command(role: &str, conf: &std::path::Path, db_url: &str) -> std::process::Command {
        let output = || {
            if std::env::var("TEST_LOG").is_ok() {
                std::process::Stdio::inherit()
            } else {
                std::process::Stdio::null()
            }
        };
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_idm-sync"));
        command
            .arg(role)
            .arg("--conf")
            .arg(conf)
            .env("DATABASE_URL", db_url)
            .env("IDM_SECRETS_KEY", test_secrets_key_base64())
            .env("RUST_LOG", "info")
            // Off unless a test asks: the roles' default ports are one per host.
            .env("IDM_METRICS_LISTEN", "off")
            .stdout(output())
            .stderr(output());
        command
    }

    pub fn spawn(mut command: std::process::Command) -> RoleProcess {
        RoleProcess(command.spawn().expect("start an idm-sync role"))
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// SIGKILL: no goodbye to the broker or the database.
    pub fn kill(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for RoleProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A reqwest client builder, after making ring the process's TLS provider (reqwest 0.13 needs
/// one installed before a client is built).
pub fn http_builder() -> reqwest::ClientBuilder {
    idm_sync::salesforce::use_ring_for_tls();
    reqwest::Client::builder()
}
