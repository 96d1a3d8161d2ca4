//! The README's main command, `idm-sync demo`, as a process: every step of its walk-through
//! succeeds against a database, broker prefix and data directory of the test's own, and
//! Ctrl-C stops it cleanly.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::helpers::{TempDir, TestTopology, amqp_url, drop_database, free_port, pg_server_url};

/// Drops the demo's database when the test ends, however it ends.
struct DemoDb(String);

impl Drop for DemoDb {
    fn drop(&mut self) {
        drop_database(&self.0);
    }
}

#[test]
fn the_demo_walks_through_every_step_and_stops_on_ctrl_c() {
    let db = DemoDb(format!("idm_demo_test_{}", uuid::Uuid::new_v4().simple()));
    let topology = TestTopology::new(4);
    let data = TempDir::new("idm-demo-test");
    let listen = format!("127.0.0.1:{}", free_port());
    let conf = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
    let mut child = Command::new(env!("CARGO_BIN_EXE_idm-sync"))
        .arg("demo")
        .args(["--users", "200", "--listen", &listen, "--partitions", "4"])
        .args(["--broker-prefix", &topology.prefix])
        .arg("--conf")
        .arg(&conf)
        .arg("--data-dir")
        .arg(&*data)
        .env(
            "IDM_DEMO_DATABASE_URL",
            format!("{}/{}", pg_server_url(), db.0),
        )
        .env("AMQP_URL", amqp_url())
        .env("IDM_METRICS_LISTEN", "off")
        .env_remove("IDM_ADMIN_PASSWORD")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut printed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    let running = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                let done = line.contains("idm-sync demo is running");
                printed.push(line);
                if done {
                    break true;
                }
            }
            Err(_) => break false,
        }
    };
    let text = printed.join("\n");
    if !running {
        let _ = child.kill();
        panic!("the demo did not finish its walk-through:\n{text}");
    }
    for done in [
        "=> preflight",
        "=> emulator",
        "=> start",
        "=> reconcile Salesforce users are managed users now",
        "=> edit implicit sync pushed the edit",
        "=> create implicit sync created the Salesforce user",
        "=> inbound a change event brought the edit in",
    ] {
        assert!(text.contains(done), "{done:?} not in\n{text}");
    }
    assert!(text.contains("[7/7] inbound"), "{text}");

    // Ctrl-C: every role stops and the process says so. The shell's own `kill` (a builtin
    // everywhere), so a machine without procps runs this test too.
    let signal = format!("kill -INT {}", child.id());
    assert!(
        Command::new("sh")
            .args(["-c", &signal])
            .status()
            .unwrap()
            .success()
    );
    let stopped = loop {
        match lines.recv_timeout(Duration::from_secs(30)) {
            Ok(line) if line.contains("idm-sync demo stopped") => break true,
            Ok(_) => {}
            Err(_) => break false,
        }
    };
    let status = child.wait().unwrap();
    assert!(stopped, "no 'demo stopped' line after SIGINT");
    assert!(status.success(), "{status}");
}
