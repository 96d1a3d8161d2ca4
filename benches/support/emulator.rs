//! The Salesforce emulator as a process of its own for the benchmarks (included by each with
//! `#[path]`): on a free loopback port (its Pub/Sub API too), with a daily limit no benchmark
//! reaches, killed when dropped (a panic included).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A child process (the emulator) that is killed when dropped.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An emulator process with `users` users (and `extra` arguments): the process, its URL.
pub fn start_emulator(users: usize, extra: &[&str]) -> (KillOnDrop, String) {
    let port = free_port();
    let started = Instant::now();
    let emulator = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_sf-emulator"))
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--users",
                &users.to_string(),
                "--daily-limit",
                "100000000",
            ])
            .args(extra)
            // Its Pub/Sub API on a free port too, unless asked for one: the default port is
            // one per host, and a bench may run two emulators at once.
            .args(match extra.contains(&"--pubsub-listen") {
                true => &[][..],
                false => &["--pubsub-listen", "127.0.0.1:0"][..],
            })
            .stdout(Stdio::null())
            .spawn()
            .expect("start sf-emulator"),
    );
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the emulator did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    println!(
        "emulator with {users} users {} ready in {:.1} s (a separate process)",
        extra.join(" "),
        started.elapsed().as_secs_f64()
    );
    (emulator, format!("http://127.0.0.1:{port}"))
}
