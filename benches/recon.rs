//! Inbound reconciliation against the emulator (issue 4's figures), side by side with a
//! hand-written peer script (issue 19). One emulator process serves the same users to every run,
//! and each run writes into a fresh database of the same PostgreSQL server, in this order:
//!
//! 1. the peer (`benches/peer/peer_recon.py`: simple-salesforce pages the users out, psycopg
//!    upserts the managed users and links with two multi-row statements per 2,000-record page):
//!    a first pass into an empty database, then a second with no changes;
//! 2. idm-sync: a first recon into an empty repository, then a second with no changes — users/s,
//!    stage timings, Salesforce API calls, rows written per table (pg_stat_user_tables) and, when
//!    pg_stat_statements is loaded, the Postgres statements it issued per page;
//! 3. the peer again, as in 1, so that idm-sync's figures are bracketed by the peer's;
//!
//! then the floor: paging the same users out of the emulator plus bulk-inserting the same rows
//! with COPY. The floor is printed twice: COPY of the managed-user rows alone, and COPY of every
//! row the first recon wrote (the managed users, their outbox rows, links and audit entries,
//! copied back out of the database), since the recon must write all of them. The unchanged
//! re-recon is set against two reads: paging the users alone, and paging what the shipped
//! mapping reads (its query with the permission set assignments inline and the public group
//! memberships, one query per 2,000 users, as its runs read them). Last, a table of the
//! three runs with the ratio peer mean / idm-sync (above 1: idm-sync is faster).
//!
//! Run: `cargo bench --bench recon`. Environment:
//! - `BENCH_USERS`: users in the emulator (default 100000).
//! - `BENCH_PG_URL`: the server, without a database (default postgres://postgres@127.0.0.1:5432).
//!   The databases `idm_bench_recon`, `idm_bench_peer_before` and `idm_bench_peer_after` are
//!   dropped and re-created (the peer's are dropped again at the end; idm-sync's is kept).
//! - `BENCH_PG_PRIVATE=1`: run everything against a throw-away server of the bench's own instead
//!   (initdb of the newest /usr/lib/postgresql/*/bin into a temporary directory, as the
//!   `postgres` user when run as root, on a free loopback port, with
//!   `shared_preload_libraries=pg_stat_statements`, fsync on and the durability and memory
//!   settings of the BENCH_PG_URL server when it answers), stopped and deleted at the end, a
//!   panic included. Use it when the shared server has not loaded pg_stat_statements: the bench
//!   never reconfigures nor restarts it.
//! - `BENCH_OUTBOUND=0`: skip the outbound reconciliation (issue 15), which runs last, in a
//!   process of its own (the bench binary again, so its RSS is its own): Salesforce brought in
//!   step, then (a) nothing drifted, (b) 1% drifted and 1% new managed users.
//! - `BENCH_AUDIT_VARIANT=0`: skip the decision preview, a first recon whose recon audit leaves
//!   out creates (not the shipped default), into a database of its own dropped afterwards.
//! - `BENCH_PEER=0`: skip the peer. `BENCH_PYTHON`: the interpreter that makes the peer's
//!   virtual environment (default python3).
//!
//! The peer's virtual environment is `<cargo target dir>/bench-peer-venv`: made with
//! `python3 -m venv` and `pip install -r benches/peer/requirements.txt` (pinned versions) on the
//! first run, reused on later runs, re-installed when requirements.txt changes. Without python3,
//! venv or a working pip, one line says that the peer is skipped and why; idm-sync's part runs.
//! The emulator and the peer are processes of their own, so the RSS figures are idm-sync's alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/emulator.rs"]
mod emulator;
#[path = "support/inbound.rs"]
mod inbound;
use emulator::{free_port, start_emulator};
use inbound::{INBOUND, reconcile_inbound};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use idm_sync::audit_config::AuditConfig;
use idm_sync::config::Conf;
use idm_sync::connectors::Connectors;
use idm_sync::managed::ManagedObjects;
use idm_sync::mapping::SyncConfig;
use idm_sync::recon::{ReconEngine, ReconRequest, ReconSettings};
use idm_sync::repo::db::{self, DbSettings};
use idm_sync::salesforce::SalesforceClient;
use idm_sync::secrets::{KEY_LEN, Sealer};
use sqlx::{Connection, PgConnection};

const IDM_DB: &str = "idm_bench_recon";
const PEER_DB_BEFORE: &str = "idm_bench_peer_before";
const PEER_DB_AFTER: &str = "idm_bench_peer_after";
const NO_CREATE_AUDIT_DB: &str = "idm_bench_recon_no_create_audit";
const PEER_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/peer/peer_recon.py");
const PEER_REQUIREMENTS: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/benches/peer/requirements.txt");
const SOQL: &str = "SELECT Id, Username, Email, FirstName, LastName, ProfileId, IsActive, LastModifiedDate FROM User";
/// What the private server takes over from the BENCH_PG_URL server, when that one answers.
const MIRRORED_SETTINGS: [&str; 12] = [
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "wal_level",
    "shared_buffers",
    "max_wal_size",
    "min_wal_size",
    "checkpoint_timeout",
    "autovacuum",
    "work_mem",
    "maintenance_work_mem",
    "jit",
];

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn env_flag(name: &str) -> Option<bool> {
    std::env::var(name)
        .ok()
        .map(|v| !matches!(v.as_str(), "" | "0" | "false" | "no"))
}

fn last_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("(no output)")
        .trim()
        .to_owned()
}

/// Runs `cmd` to its end; Err carries the last line it printed.
fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", cmd.get_program().to_string_lossy()))?;
    if out.status.success() {
        return Ok(());
    }
    let said = if out.stderr.iter().any(|b| !b.is_ascii_whitespace()) {
        last_line(&out.stderr)
    } else {
        last_line(&out.stdout)
    };
    Err(format!(
        "{} failed ({}): {said}",
        cmd.get_program().to_string_lossy(),
        out.status
    ))
}

/// BENCH_PG_PRIVATE=1: a throw-away PostgreSQL with pg_stat_statements preloaded. Dropping it
/// (at the end, or while a panic unwinds) stops the server and deletes its directory.
struct PrivateServer {
    bin: PathBuf,
    dir: PathBuf,
    as_postgres: bool,
    port: u16,
}

impl PrivateServer {
    fn start(mirrored: &[(String, String)]) -> Result<Self, String> {
        let bin = newest_pg_bin()?;
        let as_postgres = running_as_root();
        let dir = std::env::temp_dir().join(format!("idm-bench-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        let server = Self {
            bin,
            dir,
            as_postgres,
            port: free_port(),
        };
        if as_postgres {
            let (uid, gid) = postgres_ids()?;
            std::os::unix::fs::chown(&server.dir, Some(uid), Some(gid))
                .map_err(|e| format!("chown {}: {e}", server.dir.display()))?;
        }
        let data = server.dir.join("data");
        // --no-sync: initdb's own files need no fsync on a throw-away directory; the server
        // itself runs with fsync on.
        run(server.command("initdb").arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ]))?;
        let mut options = format!(
            "-c port={} -c listen_addresses=127.0.0.1 -c unix_socket_directories={}",
            server.port,
            server.dir.display()
        );
        for (name, value) in mirrored.iter().filter(|(n, _)| n != "fsync") {
            options.push_str(&format!(" -c {name}={value}"));
        }
        options.push_str(" -c shared_preload_libraries=pg_stat_statements -c fsync=on");
        let started = run(server
            .command("pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(server.dir.join("server.log"))
            .args(["-w", "-t", "120", "-o", &options, "start"]));
        if let Err(e) = started {
            let log = std::fs::read(server.dir.join("server.log")).unwrap_or_default();
            return Err(format!("{e}; server log: {}", last_line(&log)));
        }
        println!(
            "private PostgreSQL ({}) on 127.0.0.1:{} in {}, with {options}",
            server.bin.display(),
            server.port,
            server.dir.display()
        );
        Ok(server)
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    fn command(&self, tool: &str) -> Command {
        if self.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(self.bin.join(tool));
            cmd
        } else {
            Command::new(self.bin.join(tool))
        }
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        if data.join("postmaster.pid").exists() {
            let _ = self
                .command("pg_ctl")
                .arg("-D")
                .arg(&data)
                .args(["-m", "fast", "-w", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The newest /usr/lib/postgresql/N/bin that has initdb and pg_stat_statements.
fn newest_pg_bin() -> Result<PathBuf, String> {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .map_err(|e| format!("{}: {e}", root.display()))?
        .filter_map(Result::ok)
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path())))
        .filter(|(_, p)| p.join("bin/initdb").is_file() && p.join("bin/pg_ctl").is_file())
        .filter(|(_, p)| p.join("lib/pg_stat_statements.so").is_file())
        .collect();
    versions.sort();
    versions.pop().map(|(_, p)| p.join("bin")).ok_or_else(|| {
        "no /usr/lib/postgresql/*/bin with initdb, pg_ctl and pg_stat_statements".into()
    })
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        == Some("0")
}

/// The `postgres` user's uid and gid (initdb refuses to run as root).
fn postgres_ids() -> Result<(u32, u32), String> {
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| format!("/etc/passwd: {e}"))?;
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&"postgres"))
        .and_then(|f| Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?)))
        .ok_or_else(|| "running as root, and there is no `postgres` user to run initdb as".into())
}

/// The cargo target directory this bench was built into (where the peer's venv lives).
fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            exe.ancestors()
                .find(|d| d.join("CACHEDIR.TAG").is_file())
                .map(Path::to_path_buf)
        })
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// The peer's interpreter: `<target>/bench-peer-venv`, made on the first run (Err: why the peer
/// is skipped).
fn peer_python() -> Result<PathBuf, String> {
    let venv = target_dir().join("bench-peer-venv");
    let python = venv.join("bin/python");
    let stamp = venv.join("idm-bench-requirements.txt");
    let requirements = std::fs::read_to_string(PEER_REQUIREMENTS)
        .map_err(|e| format!("{PEER_REQUIREMENTS}: {e}"))?;
    if python.is_file()
        && std::fs::read_to_string(&stamp).ok().as_deref() == Some(requirements.as_str())
    {
        return Ok(python);
    }
    if !python.is_file() {
        let python3 = std::env::var("BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
        run(Command::new(&python3).arg("--version"))
            .map_err(|e| format!("no usable interpreter: {e}"))?;
        let _ = std::fs::remove_dir_all(&venv);
        if let Err(e) = run(Command::new(&python3).args(["-m", "venv"]).arg(&venv)) {
            let _ = std::fs::remove_dir_all(&venv);
            return Err(format!("no virtual environment: {e}"));
        }
    }
    println!(
        "peer: installing benches/peer/requirements.txt into {} (once; reused by later runs)",
        venv.display()
    );
    let t = Instant::now();
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--quiet",
            "-r",
        ])
        .arg(PEER_REQUIREMENTS))
    .map_err(|e| format!("pip install -r benches/peer/requirements.txt: {e}"))?;
    std::fs::write(&stamp, requirements).map_err(|e| format!("{}: {e}", stamp.display()))?;
    println!("peer: installed in {:.0} s", t.elapsed().as_secs_f64());
    Ok(python)
}

/// One pass of the peer script, as its PEER_RESULT line reports it.
#[derive(Clone, Copy)]
struct PeerPass {
    secs: f64,
    db_secs: f64,
    users: u64,
    written: u64,
    links: u64,
    pages: u64,
    wall: f64,
}

fn peer_pass(python: &Path, base: &str, db_url: &str) -> Result<PeerPass, String> {
    let t = Instant::now();
    let out = Command::new(python)
        .arg(PEER_SCRIPT)
        .arg(base)
        .arg(db_url)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("{}: {e}", python.display()))?;
    let wall = t.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!("peer_recon.py exited with {}", out.status));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("PEER_RESULT "))
        .ok_or("peer_recon.py printed no PEER_RESULT line")?;
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("PEER_RESULT: {e}"))?;
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    Ok(PeerPass {
        secs: v["seconds"].as_f64().ok_or("PEER_RESULT without seconds")?,
        db_secs: v["db_seconds"].as_f64().unwrap_or(0.0),
        users: n("users"),
        written: n("written"),
        links: n("links_written"),
        pages: n("pages"),
        wall,
    })
}

async fn fresh_db(server: &str, name: &str) {
    drop_db(server, name).await;
    let mut admin = PgConnection::connect(&format!("{server}/postgres"))
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
}

async fn drop_db(server: &str, name: &str) {
    let mut admin = PgConnection::connect(&format!("{server}/postgres"))
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    admin.close().await.unwrap();
}

/// Whether pg_stat_statements works in `server`: CREATE EXTENSION and a read of the view, in a
/// database made for the probe and dropped after it.
async fn statements_loaded(server: &str) -> bool {
    fresh_db(server, "idm_bench_probe").await;
    let mut conn = PgConnection::connect(&format!("{server}/idm_bench_probe"))
        .await
        .unwrap();
    let ok = sqlx::raw_sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .execute(&mut conn)
        .await
        .is_ok()
        && sqlx::query_scalar::<_, i64>("SELECT count(*) FROM pg_stat_statements")
            .fetch_one(&mut conn)
            .await
            .is_ok();
    conn.close().await.unwrap();
    drop_db(server, "idm_bench_probe").await;
    ok
}

async fn server_settings(server: &str) -> Result<Vec<(String, String)>, sqlx::Error> {
    let mut conn = PgConnection::connect(&format!("{server}/postgres")).await?;
    let names: Vec<String> = MIRRORED_SETTINGS.iter().map(|s| (*s).to_owned()).collect();
    let settings =
        sqlx::query_as("SELECT name, current_setting(name) FROM unnest($1::text[]) AS name")
            .bind(names)
            .fetch_all(&mut conn)
            .await?;
    conn.close().await?;
    Ok(settings)
}

/// inserted, updated, deleted rows per table.
type TableCounts = BTreeMap<String, [i64; 3]>;

/// A connection to a bench database that watches what the runs do to it: table counters, and
/// pg_stat_statements when it is loaded (its own statements are not tracked).
struct Observer {
    conn: PgConnection,
    statements: bool,
}

impl Observer {
    async fn open(server: &str, db: &str, statements: bool) -> Self {
        let mut conn = PgConnection::connect(&format!("{server}/{db}"))
            .await
            .unwrap();
        if statements {
            sqlx::raw_sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                .execute(&mut conn)
                .await
                .unwrap();
            // Superusers only: without it, the observer's few reads show among the statements.
            let _ = sqlx::raw_sql("SET pg_stat_statements.track = 'none'")
                .execute(&mut conn)
                .await;
        }
        Self { conn, statements }
    }

    /// Waits until the run's sessions have flushed their table counters: a backend flushes them
    /// when it exits, and while it lives at most once a second, or 10 s after it went idle. So
    /// wait until no other session is connected, or every one left has been idle for 11 s.
    async fn wait_idle(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (recent, left, last): (i64, i64, String) = sqlx::query_as(
                "SELECT count(*) FILTER (WHERE state IS DISTINCT FROM 'idle' \
                                           OR state_change > now() - interval '11 seconds'), \
                        count(*), \
                        coalesce(string_agg(DISTINCT left(query, 60), ' | '), '') \
                 FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            .fetch_one(&mut self.conn)
            .await
            .unwrap();
            if left == 0 {
                break;
            }
            if recent == 0 {
                println!(
                    "  ({left} session(s) still open after the pool closed, idle for 11 s, so flushed; last query: {last})"
                );
                break;
            }
            if Instant::now() > deadline {
                println!(
                    "  ({left} session(s) still busy on the database: the row counts may be short)"
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    async fn tables(&mut self) -> TableCounts {
        sqlx::raw_sql("SELECT pg_stat_clear_snapshot()")
            .execute(&mut self.conn)
            .await
            .unwrap();
        let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
            "SELECT relname::text, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables",
        )
        .fetch_all(&mut self.conn)
        .await
        .unwrap();
        rows.into_iter()
            .map(|(t, i, u, d)| (t, [i, u, d]))
            .collect()
    }

    /// Forgets this database's statements (the other databases' stay).
    async fn reset_statements(&mut self) {
        if self.statements {
            sqlx::raw_sql(
                "SELECT pg_stat_statements_reset(0, oid, 0) FROM pg_database WHERE datname = current_database()",
            )
            .execute(&mut self.conn)
            .await
            .unwrap();
        }
    }

    /// Prints the statements issued against this database since the reset: the total per page
    /// and the `top` most called.
    async fn print_statements(&mut self, pages: u64, top: usize) {
        if !self.statements {
            return;
        }
        let rows: Vec<(i64, i64, String)> = sqlx::query_as(
            "SELECT calls, rows, query FROM pg_stat_statements \
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             ORDER BY calls DESC, query",
        )
        .fetch_all(&mut self.conn)
        .await
        .unwrap();
        let total: i64 = rows.iter().map(|r| r.0).sum();
        println!(
            "  statements (pg_stat_statements): {total} calls of {} distinct statements over {pages} pages = {:.1} per page; top {} by calls:",
            rows.len(),
            total as f64 / pages.max(1) as f64,
            top.min(rows.len())
        );
        for (calls, n, query) in rows.iter().take(top) {
            let text = query.split_whitespace().collect::<Vec<_>>().join(" ");
            let short: String = text.chars().take(110).collect();
            let more = if short.len() < text.len() { "…" } else { "" };
            println!("    {calls:>7} calls {n:>8} rows  {short}{more}");
        }
    }
}

fn print_table_counts(before: &TableCounts, after: &TableCounts) {
    let mut parts = Vec::new();
    for (table, a) in after {
        let b = before.get(table).copied().unwrap_or_default();
        let [ins, upd, del] = [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
        if ins == 0 && upd == 0 && del == 0 {
            continue;
        }
        let others: Vec<String> = [(upd, "updated"), (del, "deleted")]
            .into_iter()
            .filter(|(n, _)| *n != 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect();
        if others.is_empty() {
            parts.push(format!("{table} {ins}"));
        } else {
            parts.push(format!("{table} {ins} ({})", others.join(", ")));
        }
    }
    let parts = if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    };
    println!(
        "  rows inserted per table (pg_stat_user_tables n_tup_ins; other changes in brackets): {parts}"
    );
}

/// The emulator's call counters: (query pages, other data calls, token calls).
async fn emulator_calls(http: &reqwest::Client, base: &str) -> (u64, u64, u64) {
    let s: serde_json::Value = http
        .get(format!("{base}/__emulator/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (mut pages, mut data) = (0, 0);
    for (k, v) in s["calls"].as_object().unwrap() {
        if k.contains("/services/data/") {
            let n = v.as_u64().unwrap();
            data += n;
            if k.contains("/query") {
                pages += n;
            }
        }
    }
    let tokens = s["tokenCalls"]
        .as_u64()
        .or_else(|| s["token_calls"].as_u64())
        .unwrap_or(0);
    (pages, data, tokens)
}

struct Bench {
    server: String,
    base: String,
    http: reqwest::Client,
    statements: bool,
}

/// The peer's two passes into a fresh database `db` (None when a pass failed: said why).
async fn peer_bracket(b: &Bench, python: &Path, label: &str, db: &str) -> Option<[PeerPass; 2]> {
    fresh_db(&b.server, db).await;
    let mut observer = Observer::open(&b.server, db, b.statements).await;
    let mut passes = Vec::new();
    for pass in ["first pass (empty database)", "second pass (no changes)"] {
        let tables = observer.tables().await;
        observer.reset_statements().await;
        let (python, base, url) = (
            python.to_owned(),
            b.base.clone(),
            format!("{}/{db}", b.server),
        );
        let result = tokio::task::spawn_blocking(move || peer_pass(&python, &base, &url))
            .await
            .unwrap();
        let p = match result {
            Ok(p) => p,
            Err(e) => {
                println!("peer {label}, {pass}: failed: {e}; the peer's figures are left out");
                return None;
            }
        };
        println!(
            "peer {label}, {pass}: {} users in {:.2} s = {:.0} users/s; wrote {} users, {} links; {} pages; in Postgres {:.2} s; process {:.2} s",
            p.users,
            p.secs,
            p.users as f64 / p.secs,
            p.written,
            p.links,
            p.pages,
            p.db_secs,
            p.wall
        );
        observer.wait_idle().await;
        print_table_counts(&tables, &observer.tables().await);
        observer.print_statements(p.pages, 5).await;
        passes.push(p);
    }
    observer.conn.close().await.unwrap();
    passes.try_into().ok()
}

/// What idm-sync's part hands to the floor and the table.
struct IdmResult {
    /// Seconds of the first recon and of the unchanged re-recon.
    secs: [f64; 2],
    users: [u64; 2],
    first_run: String,
}

async fn idm_recons(b: &Bench, conf: &Conf, conf_dir: &Path) -> IdmResult {
    fresh_db(&b.server, IDM_DB).await;
    let url = format!("{}/{IDM_DB}", b.server);
    let pool = db::connect(&DbSettings::new(url.clone())).await.unwrap();
    db::migrate(&pool).await.unwrap();
    pool.close().await;
    let mut observer = Observer::open(&b.server, IDM_DB, b.statements).await;
    let sync = Arc::new(SyncConfig::load(conf_dir).unwrap());
    let request = ReconRequest {
        mapping: INBOUND.into(),
        ..ReconRequest::default()
    };
    let rss_before = status_kib("VmRSS:");
    let mut result = IdmResult {
        secs: [0.0; 2],
        users: [0; 2],
        first_run: String::new(),
    };
    for (i, (label, expect_created)) in [
        ("first recon (empty repository)", true),
        ("second recon (no changes)", false),
    ]
    .into_iter()
    .enumerate()
    {
        // A pool of its own per recon, closed after it: its sessions end, and with them the
        // table counters they have not flushed yet.
        let pool = db::connect(&DbSettings::new(url.clone())).await.unwrap();
        let engine = engine_over(&pool, conf, sync.clone());
        let tables = observer.tables().await;
        observer.reset_statements().await;
        let (p0, d0, t0) = emulator_calls(&b.http, &b.base).await;
        let t = Instant::now();
        let summary = engine.run(request.clone()).await.unwrap();
        let secs = t.elapsed().as_secs_f64();
        let (p1, d1, t1) = emulator_calls(&b.http, &b.base).await;
        drop(engine);
        tokio::time::timeout(Duration::from_secs(60), pool.close())
            .await
            .expect("close the recon's pool");
        assert_eq!(summary["state"], "SUCCESS", "{summary}");
        let processed = summary["progress"]["source"]["existing"]["processed"]
            .as_u64()
            .unwrap();
        let created = summary["progress"]["target"]["created"]
            .as_u64()
            .unwrap_or(0);
        assert_eq!(created > 0, expect_created, "{summary}");
        if expect_created {
            result.first_run = summary["_id"].as_str().unwrap().to_owned();
        }
        result.secs[i] = secs;
        result.users[i] = processed;
        println!(
            "idm-sync {label}: {processed} users in {secs:.2} s = {:.0} users/s; created {created}; Salesforce calls: {} data ({} query pages) + {} token",
            processed as f64 / secs,
            d1 - d0,
            p1 - p0,
            t1 - t0
        );
        // Where the time went (ms summed over pages), from the run's own duration summary.
        if let Some(d) = summary["durationSummary"].as_object() {
            let parts: Vec<String> = d.iter().map(|(k, v)| format!("{k} {}", v["sum"])).collect();
            println!("  stages (ms): {}", parts.join(", "));
        }
        observer.wait_idle().await;
        print_table_counts(&tables, &observer.tables().await);
        observer.print_statements(p1 - p0, 15).await;
    }
    let peak = status_kib("VmHWM:");
    println!(
        "idm-sync RSS: {} MiB before the recons, peak {} MiB",
        rss_before / 1024,
        peak / 1024
    );
    let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&mut observer.conn)
        .await
        .unwrap();
    println!("outbox rows written: {outbox} (one per created user; none by the second recon)");
    observer.conn.close().await.unwrap();
    result
}

/// A first recon into a fresh database with the shipped conf but an `audit.json` whose recon
/// filter leaves out `create` (it keeps update, delete, link, unlink, exception, report): what
/// that product decision (issue 19) would buy. The shipped default audits creates.
async fn first_recon_without_create_audit(b: &Bench, conf: &Conf, conf_dir: &Path) -> f64 {
    fresh_db(&b.server, NO_CREATE_AUDIT_DB).await;
    let pool = db::connect(&DbSettings::new(format!(
        "{}/{NO_CREATE_AUDIT_DB}",
        b.server
    )))
    .await
    .unwrap();
    db::migrate(&pool).await.unwrap();
    let audit = AuditConfig::from_json(&serde_json::json!({
        "eventHandlers": [{"config": {"name": "repo", "topics": ["recon", "sync"]}}],
        "eventTopics": {"recon": {"filter": {"actions": ["update", "delete", "link", "unlink", "exception", "report"]}}}
    }))
    .unwrap();
    let engine =
        engine_over(&pool, conf, Arc::new(SyncConfig::load(conf_dir).unwrap())).with_audit(audit);
    let (_, secs) = reconcile_inbound(&engine).await;
    drop(engine);
    pool.close().await;
    drop_db(&b.server, NO_CREATE_AUDIT_DB).await;
    secs
}

/// Paging what the shipped inbound mapping reads, the way its runs read it (its own query, the
/// assignments inline, one membership query per 2,000 users gathered): what an unchanged
/// re-recon cannot do without. Returns the seconds and the query calls.
async fn mapping_paging(b: &Bench, conf: &Conf, conf_dir: &Path) -> (f64, u64) {
    let sync = SyncConfig::load(conf_dir).unwrap();
    let mapping = sync.mappings.iter().find(|m| m.name == INBOUND).unwrap();
    let soql = idm_sync::recon::soql::build(mapping, None, None).unwrap();
    let pool = db::connect(&DbSettings::new(format!("{}/{IDM_DB}", b.server)))
        .await
        .unwrap();
    let client = salesforce_client(&pool, conf);
    let (calls_before, _, _) = emulator_calls(&b.http, &b.base).await;
    let mut state = idm_sync::salesforce::access_read::ReadState::default();
    let t = Instant::now();
    let mut pages = std::pin::pin!(client.query_with_batch_size(&soql.text, 2000));
    let mut gathered = Vec::new();
    loop {
        let page = pages.try_next().await.unwrap();
        let done = page.is_none();
        gathered.extend(page.into_iter().flat_map(|p| p.records));
        if gathered.len() >= 2000 || (done && !gathered.is_empty()) {
            client
                .complete_access(&mut gathered, soql.access, &mut state, soql.ranged)
                .await
                .unwrap();
            gathered.clear();
        }
        if done {
            break;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let (calls_after, _, _) = emulator_calls(&b.http, &b.base).await;
    pool.close().await;
    (secs, calls_after - calls_before)
}

/// The floor: page the same users out, then COPY the same rows into an identical table.
/// Returns (paging seconds, managed-rows floor seconds, every-row floor seconds).
async fn floors(b: &Bench, conf: &Conf, users: usize, first_run: &str) -> (f64, f64, f64) {
    let pool = db::connect(&DbSettings::new(format!("{}/{IDM_DB}", b.server)))
        .await
        .unwrap();
    let client = salesforce_client(&pool, conf);
    let t = Instant::now();
    let mut rows: Vec<serde_json::Map<String, serde_json::Value>> = Vec::with_capacity(users);
    let mut pages = std::pin::pin!(client.query(SOQL));
    while let Some(page) = pages.try_next().await.unwrap() {
        rows.extend(page.records);
    }
    let paging = t.elapsed().as_secs_f64();
    let mut text = String::with_capacity(rows.len() * 256);
    for (i, r) in rows.iter().enumerate() {
        let body = serde_json::json!({"userName": r["Username"], "mail": r["Email"], "givenName": r["FirstName"],
            "sn": r["LastName"], "profileId": r["ProfileId"], "accountStatus": "active"});
        let json = body.to_string().replace('\\', "\\\\");
        text.push_str(&format!("user\tcopy-{i}\t{i}\t{json}\n"));
    }
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("CREATE TABLE bench_copy (LIKE managed_objects INCLUDING ALL)")
        .execute(&mut *conn)
        .await
        .unwrap();
    let t = Instant::now();
    let mut copy = conn
        .copy_in_raw("COPY bench_copy (object_type, id, rev, body) FROM STDIN")
        .await
        .unwrap();
    copy.send(text.into_bytes()).await.unwrap();
    let copied = copy.finish().await.unwrap();
    let copying = t.elapsed().as_secs_f64();
    let floor = paging + copying;
    println!(
        "floor (managed rows): paging {} users {paging:.2} s + COPY of {copied} rows {copying:.2} s = {floor:.2} s ({:.0} users/s)",
        rows.len(),
        rows.len() as f64 / floor
    );
    // Every row the first recon wrote, copied out (untimed) and COPYed into twin tables.
    let tables = [
        ("managed_objects", "TRUE".to_owned()),
        ("outbox", "TRUE".to_owned()),
        ("links", "TRUE".to_owned()),
        ("recon_audit", format!("recon_id = '{first_run}'")),
    ];
    let mut all = paging;
    let mut parts = Vec::new();
    for (table, filter) in tables {
        let mut out = conn
            .copy_out_raw(&format!(
                "COPY (SELECT * FROM {table} WHERE {filter}) TO STDOUT"
            ))
            .await
            .unwrap();
        let mut data = Vec::new();
        while let Some(chunk) = out.try_next().await.unwrap() {
            data.extend_from_slice(&chunk);
        }
        drop(out);
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE floor_{table} (LIKE {table} INCLUDING ALL)"
        )))
        .execute(&mut *conn)
        .await
        .unwrap();
        let t = Instant::now();
        let mut copy = conn
            .copy_in_raw(&format!("COPY floor_{table} FROM STDIN"))
            .await
            .unwrap();
        copy.send(data).await.unwrap();
        let n = copy.finish().await.unwrap();
        let secs = t.elapsed().as_secs_f64();
        all += secs;
        parts.push(format!("{table} {n} rows {secs:.2} s"));
    }
    println!(
        "floor (every row the first recon wrote): paging {paging:.2} s + COPY of {} = {all:.2} s",
        parts.join(", ")
    );
    drop(conn);
    pool.close().await;
    (paging, floor, all)
}

fn cell(secs: Option<f64>, users: u64) -> String {
    match secs {
        Some(s) => format!("{s:.2} s ({:.0}/s)", users as f64 / s),
        None => "-".to_owned(),
    }
}

fn print_side_by_side(
    idm: &IdmResult,
    before: Option<&[PeerPass; 2]>,
    after: Option<&[PeerPass; 2]>,
) {
    println!();
    println!("side by side (seconds, users/s), same emulator and server, fresh databases:");
    println!(
        "  {:<20} {:>20} {:>20} {:>20} {:>22}",
        "", "peer before", "idm-sync", "peer after", "peer mean / idm-sync"
    );
    for (i, label) in ["first recon", "unchanged re-recon"]
        .into_iter()
        .enumerate()
    {
        let b = before.and_then(|p| p.get(i).copied());
        let a = after.and_then(|p| p.get(i).copied());
        let peers: Vec<f64> = [b, a].iter().flatten().map(|p| p.secs).collect();
        let ratio = if peers.is_empty() {
            "-".to_owned()
        } else {
            format!(
                "{:.2}x",
                peers.iter().sum::<f64>() / peers.len() as f64 / idm.secs[i]
            )
        };
        println!(
            "  {label:<20} {:>20} {:>20} {:>20} {ratio:>22}",
            cell(b.map(|p| p.secs), b.map_or(0, |p| p.users)),
            cell(Some(idm.secs[i]), idm.users[i]),
            cell(a.map(|p| p.secs), a.map_or(0, |p| p.users)),
        );
    }
    println!("  (ratio above 1: idm-sync is faster than the peer)");
}

/// Set by the parent for the process that runs the outbound part alone (its RSS is its own).
const CHILD_BASE: &str = "BENCH_OUTBOUND_CHILD_BASE";
const CHILD_PG: &str = "BENCH_OUTBOUND_CHILD_PG";

fn main() {
    idm_sync::salesforce::use_ring_for_tls();
    let users: usize = std::env::var("BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    if let (Ok(base), Ok(server)) = (std::env::var(CHILD_BASE), std::env::var(CHILD_PG)) {
        outbound_child(&base, &server, users);
        return;
    }
    if let Ok(server) = std::env::var(CHILD_GRANTS_PG) {
        grants_child(&server, users);
        return;
    }
    let shared = std::env::var("BENCH_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let rt = runtime();

    // Declared before the emulator, so dropped after it.
    let private = if env_flag("BENCH_PG_PRIVATE") == Some(true) {
        let mirrored = rt.block_on(server_settings(&shared)).unwrap_or_else(|e| {
            println!(
                "private PostgreSQL: {shared} did not answer ({e}); its settings are not mirrored"
            );
            Vec::new()
        });
        Some(PrivateServer::start(&mirrored).unwrap_or_else(|e| panic!("BENCH_PG_PRIVATE=1: {e}")))
    } else {
        None
    };
    let server = private.as_ref().map_or(shared, PrivateServer::url);

    let peer = if env_flag("BENCH_PEER") == Some(false) {
        Err("BENCH_PEER=0".to_owned())
    } else {
        peer_python()
    };
    if let Err(why) = &peer {
        println!("peer: skipped ({why}); idm-sync's part runs alone");
    }

    let (_emulator, base) = start_emulator(users, &[]);

    rt.block_on(async {
        let statements = statements_loaded(&server).await;
        if !statements {
            println!("statement counts: pg_stat_statements not loaded; BENCH_PG_PRIVATE=1 runs a private server with it");
        }
        let b = Bench { server: server.clone(), base: base.clone(), http: reqwest::Client::new(), statements };
        let (conf_dir, conf) = shipped_conf(&base);

        let before = match &peer {
            Ok(python) => peer_bracket(&b, python, "before", PEER_DB_BEFORE).await,
            Err(_) => None,
        };
        let idm = idm_recons(&b, &conf, &conf_dir).await;
        let after = match &peer {
            Ok(python) => peer_bracket(&b, python, "after", PEER_DB_AFTER).await,
            Err(_) => None,
        };
        for db in [PEER_DB_BEFORE, PEER_DB_AFTER] {
            drop_db(&server, db).await;
        }

        let (paging, floor, all) = floors(&b, &conf, users, &idm.first_run).await;
        println!(
            "first recon / floor: {:.2}x (managed rows), {:.2}x (every row)",
            idm.secs[0] / floor,
            idm.secs[0] / all
        );
        println!(
            "unchanged re-recon / paging floor: {:.2}x (paging alone {paging:.2} s)",
            idm.secs[1] / paging
        );
        let (mapping_paging, calls) = mapping_paging(&b, &conf, &conf_dir).await;
        println!(
            "unchanged re-recon / paging what the mapping reads (its query with the assignments inline, and the memberships: {calls} query calls): {:.2}x (paging {mapping_paging:.2} s)",
            idm.secs[1] / mapping_paging
        );
        print_side_by_side(&idm, before.as_ref(), after.as_ref());
        if env_flag("BENCH_AUDIT_VARIANT") != Some(false) {
            let secs = first_recon_without_create_audit(&b, &conf, &conf_dir).await;
            let peers: Vec<f64> = [&before, &after]
                .into_iter()
                .flatten()
                .map(|p| p[0].secs)
                .collect();
            let versus_peer = match peers.is_empty() {
                true => String::new(),
                false => format!(
                    "; peer mean / it {:.2}x",
                    peers.iter().sum::<f64>() / peers.len() as f64 / secs
                ),
            };
            println!(
                "decision preview (not the shipped default): first recon with a recon audit filter without create: {secs:.2} s{versus_peer}; / managed-rows floor {:.2}x",
                secs / floor
            );
        }
        if env_flag("BENCH_OUTBOUND") != Some(false) {
            // A process of its own, so its peak RSS is the outbound runs' alone (this one still
            // holds what the floors allocated).
            let status = Command::new(std::env::current_exe().unwrap())
                .env(CHILD_BASE, &base)
                .env(CHILD_PG, &server)
                .env("BENCH_USERS", users.to_string())
                .status()
                .expect("run the outbound part");
            assert!(status.success(), "the outbound part failed: {status}");
        }
        if env_flag("BENCH_GRANTS") != Some(false) {
            let status = Command::new(std::env::current_exe().unwrap())
                .env(CHILD_GRANTS_PG, &server)
                .env("BENCH_USERS", users.to_string())
                .status()
                .expect("run the grants part");
            assert!(status.success(), "the grants part failed: {status}");
        }
    });
}

const CHILD_GRANTS_PG: &str = "BENCH_GRANTS_CHILD_PG";
const GRANTS_DB: &str = "idm_bench_grants";

/// Issue 16's inbound figure, in a process of its own with an emulator of its own: `users`
/// users holding 3 assignments (permission sets or groups) and 1 public group each, read by
/// the shipped mapping (grants inline in the users' query, one membership query per page, the
/// roles once): the first recon's users/s and query calls against 2 × ⌈N/2000⌉ + 4, then an
/// unchanged re-run (nothing written).
fn grants_child(server: &str, users: usize) {
    let (_emulator, base) = start_emulator(
        users,
        &["--assignments-per-user", "3", "--memberships-per-user", "1"],
    );
    let rt = runtime();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let (conf_dir, conf) = shipped_conf(&base);
        fresh_db(server, GRANTS_DB).await;
        let url = format!("{server}/{GRANTS_DB}");
        let pool = db::connect(&DbSettings::new(url)).await.unwrap();
        db::migrate(&pool).await.unwrap();
        let engine = engine_over(&pool, &conf, Arc::new(SyncConfig::load(&conf_dir).unwrap()));
        let request = ReconRequest {
            mapping: INBOUND.into(),
            ..ReconRequest::default()
        };
        for label in ["first recon", "unchanged re-recon"] {
            let rev: i64 = sqlx::query_scalar("SELECT coalesce(max(rev), 0) FROM managed_objects")
                .fetch_one(&pool)
                .await
                .unwrap();
            let (p0, d0, _) = emulator_calls(&http, &base).await;
            let t = Instant::now();
            let summary = engine.run(request.clone()).await.unwrap();
            let secs = t.elapsed().as_secs_f64();
            let (p1, d1, _) = emulator_calls(&http, &base).await;
            assert_eq!(summary["state"], "SUCCESS", "{summary}");
            let processed = summary["progress"]["source"]["existing"]["processed"]
                .as_u64()
                .unwrap();
            let written: i64 = sqlx::query_scalar("SELECT count(*) FROM managed_objects WHERE rev > $1")
                .bind(rev)
                .fetch_one(&pool)
                .await
                .unwrap();
            println!(
                "grants, {label}: {processed} users in {secs:.2} s = {:.0} users/s; query calls {} (2 × ⌈N/2000⌉ + 4 = {}), data calls {}; managed users written {}",
                processed as f64 / secs,
                p1 - p0,
                2 * (processed as usize).div_ceil(2000) + 4,
                d1 - d0,
                written
            );
        }
        let (sets, groups, public, roles): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE body->'permissionSets' NOT IN ('[]', 'null')), \
                    count(*) FILTER (WHERE body->'permissionSetGroups' NOT IN ('[]', 'null')), \
                    count(*) FILTER (WHERE body->'publicGroups' NOT IN ('[]', 'null')), \
                    count(*) FILTER (WHERE body->>'userRole' IS NOT NULL) \
             FROM managed_objects",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        println!(
            "  managed users holding permission sets {sets}, permission set groups {groups}, public groups {public}, a role {roles}"
        );
        // Salesforce counts child rows toward a page's batch size: a page carries at most
        // 2,000 users, assignments and memberships together, whatever the query plan.
        let grants: i64 = sqlx::query_scalar(
            "SELECT coalesce(sum(jsonb_array_length(body->'permissionSets') \
                + jsonb_array_length(body->'permissionSetGroups') \
                + jsonb_array_length(body->'publicGroups')), 0)::bigint \
             FROM managed_objects WHERE jsonb_typeof(body->'permissionSets') = 'array'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        println!(
            "  records read per run: {users} users + {grants} grants; at 2,000 records a page they need at least {} query calls, plus 1 for the roles",
            (users as u64 + grants.unsigned_abs()).div_ceil(2000)
        );
        drop(engine);
        pool.close().await;
        drop_db(server, GRANTS_DB).await;
    });
}

/// The shipped conf/ with its provisioner pointed at the emulator at `base`.
fn shipped_conf(base: &str) -> (PathBuf, Conf) {
    let conf_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
    let token_url = format!("{base}/services/oauth2/token");
    let conf = Conf::load_with(&conf_dir, &|name| match name {
        "SF_LOGIN_URL" => Some(token_url.clone()),
        other => std::env::var(other).ok(),
    })
    .unwrap();
    (conf_dir, conf)
}

/// The outbound part in a process of its own, against the parent's emulator and database.
fn outbound_child(base: &str, server: &str, users: usize) {
    let rt = runtime();
    rt.block_on(async {
        let b = Bench {
            server: server.to_owned(),
            base: base.to_owned(),
            http: reqwest::Client::new(),
            statements: false,
        };
        let (conf_dir, conf) = shipped_conf(base);
        outbound_recons(&b, &conf, &conf_dir, users).await;
    });
}

const OUTBOUND: &str = "managedUser_systemSalesforceUser";

/// One outbound recon of the users the inbound recons left in `IDM_DB`: its summary, seconds,
/// Salesforce (query, data) calls and the `sync` rows it queued.
async fn outbound_recon(
    b: &Bench,
    engine: &ReconEngine,
) -> (serde_json::Value, f64, u64, u64, i64) {
    let pool = engine_pool(b).await;
    let rows = sync_rows(&pool).await;
    let (p0, d0, _) = emulator_calls(&b.http, &b.base).await;
    let t = Instant::now();
    let summary = engine
        .run(ReconRequest {
            mapping: OUTBOUND.into(),
            ..ReconRequest::default()
        })
        .await
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    let (p1, d1, _) = emulator_calls(&b.http, &b.base).await;
    assert_eq!(summary["state"], "SUCCESS", "{summary}");
    let queued = sync_rows(&pool).await - rows;
    pool.close().await;
    (summary, secs, p1 - p0, d1 - d0, queued)
}

async fn engine_pool(b: &Bench) -> sqlx::PgPool {
    db::connect(&DbSettings::new(format!("{}/{IDM_DB}", b.server)))
        .await
        .unwrap()
}

async fn sync_rows(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE operation = 'sync'")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Applies the `sync` rows after `after_id` with the worker's sync engine, 200 users per batch
/// (as a worker's batch): returns (users, seconds, Salesforce query calls, other data calls,
/// records written).
async fn drain(
    b: &Bench,
    sync: &idm_sync::outbound::sync::SyncEngine,
    pool: &sqlx::PgPool,
    after_id: i64,
) -> (usize, f64, u64, u64) {
    let rows: Vec<(String, i64, Vec<String>)> = sqlx::query_as(
        "SELECT object_id, rev, changed_fields FROM outbox WHERE operation = 'sync' AND id > $1 ORDER BY object_id, id",
    )
    .bind(after_id)
    .fetch_all(pool)
    .await
    .unwrap();
    // One change per user, collapsed as the worker collapses a user's events.
    let mut changes: Vec<idm_sync::outbound::sync::UserChange> = Vec::new();
    for (id, rev, repair) in rows {
        let change = idm_sync::outbound::sync::UserChange {
            object_id: id,
            rev,
            force: true,
            repair,
            committed_at: chrono::Utc::now(),
            attempts: 0,
            last_attempt: true,
        };
        match changes.last_mut() {
            Some(last) if last.object_id == change.object_id => last.absorb(&change),
            _ => changes.push(change),
        }
    }
    let (p0, d0, _) = emulator_calls(&b.http, &b.base).await;
    let t = Instant::now();
    for chunk in changes.chunks(200) {
        let outcomes = sync.apply(chunk).await.unwrap();
        assert!(
            outcomes
                .iter()
                .all(|o| *o == idm_sync::outbound::sync::Outcome::Done),
            "{outcomes:?}"
        );
    }
    let secs = t.elapsed().as_secs_f64();
    let (p1, d1, _) = emulator_calls(&b.http, &b.base).await;
    (changes.len(), secs, p1 - p0, (d1 - d0) - (p1 - p0))
}

async fn max_outbox_id(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM outbox")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The outbound reconciliation (issue 15): after the inbound recons, Salesforce is brought in
/// step (a first outbound recon, its queue applied by the worker's sync engine); then (a) a run
/// with nothing drifted, (b) a run after 1% of the Salesforce users drifted and 1% new managed
/// users appeared (implicit sync off), its queue applied and the write calls counted.
async fn outbound_recons(b: &Bench, conf: &Conf, conf_dir: &Path, users: usize) {
    let pool = engine_pool(b).await;
    let client = salesforce_client(&pool, conf);
    let sync = Arc::new(SyncConfig::load(conf_dir).unwrap());
    let managed = ManagedObjects::new(pool.clone(), Arc::new(conf.managed.clone()));
    let engine = ReconEngine::new(
        managed.clone(),
        sync.clone(),
        Connectors::from_clients([client.clone()]),
        ReconSettings::default(),
    );
    let writer = idm_sync::outbound::sync::SyncEngine::new(
        pool.clone(),
        sync.clone(),
        OUTBOUND,
        client.clone(),
    )
    .unwrap();

    let mark = max_outbox_id(&pool).await;
    let (summary, secs, _, _, queued) = outbound_recon(b, &engine).await;
    let (n, dsecs, q, w) = drain(b, &writer, &pool, mark).await;
    println!(
        "outbound setup: first run {secs:.2} s queued {queued} ({} CONFIRMED); the queue ({n} users) applied in {dsecs:.2} s with {w} write calls, {q} query calls",
        summary["situationSummary"]["CONFIRMED"]
    );

    let failures: Vec<String> = sqlx::query_scalar("SELECT message FROM sync_failures")
        .fetch_all(&pool)
        .await
        .unwrap();
    println!(
        "  sync failures left by the setup ({}; each is queued again by every run): {failures:?}",
        failures.len()
    );

    // (a) nothing drifted. The peak so far is the setup's: count (a) and (b) afresh (Linux:
    // 5 > /proc/self/clear_refs resets VmHWM).
    let setup_peak = status_kib("VmHWM:");
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let (summary, secs, pages, data, queued) = outbound_recon(b, &engine).await;
    let processed = summary["progress"]["source"]["existing"]["processed"]
        .as_u64()
        .unwrap();
    println!(
        "outbound recon (a) nothing drifted: {processed} users in {secs:.2} s = {:.0} users/s; queued {queued}; Salesforce calls: {data} data ({pages} query pages; ⌈N/2000⌉ + 2 = {})",
        processed as f64 / secs,
        users.div_ceil(2000) + 2
    );
    if let Some(d) = summary["durationSummary"].as_object() {
        let parts: Vec<String> = d.iter().map(|(k, v)| format!("{k} {}", v["sum"])).collect();
        println!("  stages (ms): {}", parts.join(", "));
    }

    // (b) 1% drifted in Salesforce, 1% new managed users.
    let share = (users / 100).max(1);
    let linked: Vec<String> = sqlx::query_scalar(
        "SELECT first_id FROM links WHERE link_type = 'systemSalesforceUser_managedUser' ORDER BY first_id LIMIT $1",
    )
    .bind(share as i64)
    .fetch_all(&pool)
    .await
    .unwrap();
    let drifted: Vec<(String, idm_sync::salesforce::Record)> = linked
        .iter()
        .map(|id| {
            let mut r = idm_sync::salesforce::Record::new();
            r.insert("LastName".into(), serde_json::json!("Drifted"));
            (id.clone(), r)
        })
        .collect();
    for chunk in drifted.chunks(200) {
        assert!(client.update_many(chunk).await.iter().all(Result::is_ok));
    }
    let profile: String = {
        let pages: Vec<_> = client
            .query("SELECT ProfileId FROM User LIMIT 1")
            .try_collect()
            .await
            .unwrap();
        pages[0].records[0]["ProfileId"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    for i in 0..share {
        let body = serde_json::json!({
            "userName": format!("bench.new.{i}@idm-sync.test"),
            "givenName": "Bench",
            "sn": format!("New{i}"),
            "mail": format!("bench.new.{i}@example.com"),
            "profileId": profile,
        });
        managed
            .create("user", None, body.as_object().unwrap().clone())
            .await
            .unwrap();
    }
    let mark = max_outbox_id(&pool).await;
    let (summary, secs, pages, data, queued) = outbound_recon(b, &engine).await;
    let processed = summary["progress"]["source"]["existing"]["processed"]
        .as_u64()
        .unwrap();
    let (n, dsecs, q, w) = drain(b, &writer, &pool, mark).await;
    println!(
        "outbound recon (b) {share} drifted + {share} new: {processed} users in {secs:.2} s = {:.0} users/s; queued {queued} (ABSENT {}, CONFIRMED {}); Salesforce calls: {data} data ({pages} query pages)",
        processed as f64 / secs,
        summary["situationSummary"]["ABSENT"],
        summary["situationSummary"]["CONFIRMED"],
    );
    println!(
        "  its queue ({n} users) applied in {dsecs:.2} s: {w} write calls (⌈(drifted + new)/200⌉ + 2 = {}), {q} correlation query calls",
        (2 * share).div_ceil(200) + 2
    );
    let peak = status_kib("VmHWM:");
    println!(
        "outbound process RSS (its own process): peak {} MiB over (a) and (b){}; {} MiB during the setup (a first run and 100,000 changes applied)",
        peak / 1024,
        if reset {
            ""
        } else {
            " (could not reset the peak: this is the process's whole life)"
        },
        setup_peak / 1024
    );
    drop(engine);
    pool.close().await;
}

/// The shipped connector's client over `pool`'s token store (the bench's fixed secrets key).
/// The inbound recon engine over `pool` with the shipped conf and `sync` (its connector's
/// session stored in `pool`).
fn engine_over(pool: &sqlx::PgPool, conf: &Conf, sync: Arc<SyncConfig>) -> ReconEngine {
    ReconEngine::new(
        ManagedObjects::new(pool.clone(), Arc::new(conf.managed.clone())),
        sync,
        Connectors::from_clients([salesforce_client(pool, conf)]),
        ReconSettings::default(),
    )
}

fn salesforce_client(pool: &sqlx::PgPool, conf: &Conf) -> SalesforceClient {
    let store = idm_sync::repo::salesforce_store::postgres(
        pool.clone(),
        Sealer::new(&[7; KEY_LEN]).unwrap(),
    );
    SalesforceClient::new(conf.system("salesforce").unwrap().client.clone(), store).unwrap()
}

/// The runtime every part of the bench runs on: two workers, as the machine has two cores.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
