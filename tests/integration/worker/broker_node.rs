//! A private RabbitMQ node for one test, so that test can restart its broker without
//! disturbing the shared one the other tests use. Started from the local installation with
//! its own node name, ports, data, logs and Erlang cookie under a temporary directory; stopped
//! and removed on drop, also after a panic.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub struct BrokerNode {
    pub node: String,
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

/// The directory holding `rabbitmq-server` and `rabbitmqctl` (the Debian package's, whose
/// `/usr/sbin` wrappers would switch to the `rabbitmq` user and its settings, or on PATH).
fn rabbitmq_bin() -> PathBuf {
    let debian = Path::new("/usr/lib/rabbitmq/bin");
    if debian.join("rabbitmq-server").exists() {
        return debian.to_owned();
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths).find(|d| d.join("rabbitmq-server").exists())
        })
        .expect("this test starts a private RabbitMQ node: rabbitmq-server must be installed")
}

fn free_port(addr: &str) -> u16 {
    TcpListener::bind(addr)
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl BrokerNode {
    /// Starts the node and waits until it accepts AMQP connections.
    pub fn start() -> BrokerNode {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let dir = std::env::temp_dir().join(format!("idm-sync-rabbit-{id}"));
        std::fs::create_dir_all(dir.join("mnesia")).unwrap();
        std::fs::create_dir_all(dir.join("log")).unwrap();
        let port = free_port("127.0.0.1:0");
        // The distribution port listens on every interface.
        let dist_port = free_port("0.0.0.0:0");
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!("listeners.tcp.local = 127.0.0.1:{port}\n"),
        )
        .unwrap();
        std::fs::write(dir.join("enabled_plugins"), "[].\n").unwrap();
        std::fs::write(dir.join("rabbitmq-env.conf"), "").unwrap();
        let node = BrokerNode {
            node: format!("idmtest-{}-{}@localhost", std::process::id(), &id[..8]),
            port,
            dir,
            bin: rabbitmq_bin(),
        };
        let status = node
            .command("rabbitmq-server")
            .arg("-detached")
            .env("RABBITMQ_NODE_PORT", port.to_string())
            .env("RABBITMQ_DIST_PORT", dist_port.to_string())
            .env("RABBITMQ_CONFIG_FILE", node.dir.join("rabbitmq.conf"))
            .env("RABBITMQ_MNESIA_BASE", node.dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", node.dir.join("log"))
            .env(
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                node.dir.join("enabled_plugins"),
            )
            .env("RABBITMQ_PID_FILE", node.dir.join("pid"))
            .status()
            .unwrap();
        assert!(status.success(), "rabbitmq-server -detached failed");
        node.wait_ready();
        node
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// A command of the installation, pointed at this node's cookie and environment.
    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(self.bin.join(program));
        c.env("HOME", &self.dir)
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_CONF_ENV_FILE", self.dir.join("rabbitmq-env.conf"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        c
    }

    fn ctl(&self, args: &[&str]) -> bool {
        self.command("rabbitmqctl")
            .args(["-n", &self.node])
            .args(args)
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Waits until the node runs and its AMQP port answers.
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if self.ctl(&["-q", "await_startup", "--timeout", "10"])
                && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the private RabbitMQ node {} did not start; logs in {}",
                self.node,
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Stops the broker application (every connection drops), keeping the node and its data.
    pub fn stop_app(&self) {
        assert!(self.ctl(&["stop_app"]), "rabbitmqctl stop_app failed");
    }

    /// Starts the broker application again and waits until it accepts connections.
    pub fn start_app(&self) {
        assert!(self.ctl(&["start_app"]), "rabbitmqctl start_app failed");
        self.wait_ready();
    }
}

impl Drop for BrokerNode {
    fn drop(&mut self) {
        let pid = std::fs::read_to_string(self.dir.join("pid")).ok();
        if !self.ctl(&["stop"]) {
            if let Some(pid) = pid {
                // The shell's builtin `kill`: no procps needed.
                let signal = format!("kill -9 {}", pid.trim());
                let _ = Command::new("sh").args(["-c", &signal]).status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
