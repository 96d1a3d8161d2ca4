//! Issue 13: hostile and careless input. Each rule asserts the answer and that the process
//! keeps serving.

mod credentials;
mod http_limits;
mod input;
mod paging;

use std::time::Duration;

use crate::helpers::{ADMIN, RoleProcess, TestApp};

/// An authenticated query still answers: the request before did not stop the server.
pub async fn assert_still_serving(app: &TestApp) {
    let res = app
        .get("/managed/user?_queryFilter=true&_pageSize=1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the server still serves");
}

/// A process's peak resident set (`VmHWM`), in KiB. Linux refreshes the high-water mark lazily,
/// so a later reading can be lower than an earlier one: compare with `saturating_sub`.
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

/// `idm-sync serve --no-relay` as a child process over the database at `db_url`, so memory is
/// measured on the server alone.
pub struct ServeProcess {
    process: RoleProcess,
    pub base: String,
    pub client: reqwest::Client,
}

impl ServeProcess {
    pub async fn spawn(db_url: &str) -> ServeProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
        let mut command = RoleProcess::command("serve", &conf, db_url);
        command
            .args(["--no-relay", "--listen", &format!("127.0.0.1:{port}")])
            .env("IDM_AUDIT_RETENTION_DAYS", "0")
            .env("RUST_LOG", "warn");
        let server = ServeProcess {
            process: RoleProcess::spawn(command),
            base: format!("http://127.0.0.1:{port}/openidm"),
            client: crate::helpers::http_builder().build().unwrap(),
        };
        for _ in 0..300 {
            if let Ok(res) = server.client.get(server.url("/info/ping")).send().await {
                if res.status().is_success() {
                    return server;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("idm-sync serve did not answer its ping within 30 s");
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .get(self.url(path))
            .header("X-OpenIDM-Username", ADMIN.0)
            .header("X-OpenIDM-Password", ADMIN.1)
    }
}
