//! A small W3C WebDriver client over reqwest: one chromedriver process and one headless
//! Chromium session per test, screenshots kept under `target/tmp/browser-artifacts/`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use crate::helpers::free_port;

/// How long a wait for an element or a condition lasts before the test fails.
const WAIT: Duration = Duration::from_secs(30);

/// The W3C key for "the element" in a find response.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

fn program(var: &str, default: &str, package: &str) -> PathBuf {
    let path = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    assert!(
        path.exists(),
        "{} not found: the browser tests need Debian's {package} (scripts/test installs it; \
         or set {var} to its path)",
        path.display()
    );
    path
}

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    artifacts: PathBuf,
    shots: AtomicUsize,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium 1280 px wide; screenshots go to
    /// `target/tmp/browser-artifacts/<name>/`.
    pub async fn start(name: &str) -> Browser {
        let chromedriver = program("CHROMEDRIVER", "/usr/bin/chromedriver", "chromium-driver");
        let chromium = program("CHROMIUM", "/usr/bin/chromium", "chromium");
        let port = free_port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let http = crate::helpers::http_builder().build().unwrap();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let ready = match http.get(format!("{base}/status")).send().await {
                Ok(r) => r
                    .json::<Value>()
                    .await
                    .ok()
                    .map(|v| v["value"]["ready"] == true),
                Err(_) => None,
            };
            if ready == Some(true) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver did not become ready on port {port}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless", "--no-sandbox", "--disable-gpu",
                         "--disable-background-networking", "--window-size=1280,900"],
            },
        }}});
        let res: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = res["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {res}"))
            .to_owned();
        let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("browser-artifacts")
            .join(name);
        let _ = std::fs::remove_dir_all(&artifacts);
        std::fs::create_dir_all(&artifacts).unwrap();
        Browser {
            driver,
            base,
            session,
            http,
            artifacts,
            shots: AtomicUsize::new(0),
        }
    }

    /// One WebDriver command; its `value`, or a panic with the driver's error.
    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let v: Value = res.json().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {v}");
        v["value"].clone()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.command(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    pub async fn url(&self) -> String {
        let v = self.command(reqwest::Method::GET, "/url", None).await;
        v.as_str().unwrap_or_default().to_owned()
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its result.
    pub async fn script(&self, script: &str, args: Value) -> Value {
        self.post("/execute/sync", json!({ "script": script, "args": args }))
            .await
    }

    async fn try_find(&self, css: &str) -> Option<String> {
        let url = format!("{}/session/{}/elements", self.base, self.session);
        let v: Value = self
            .http
            .post(url)
            .json(&json!({"using": "css selector", "value": css}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["value"]
            .as_array()
            .and_then(|a| a.first())
            .and_then(|e| e[ELEMENT_KEY].as_str())
            .map(str::to_owned)
    }

    /// The first element matching `css`, waiting for it to appear.
    pub async fn find(&self, css: &str) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(e) = self.try_find(css).await {
                return e;
            }
            if tokio::time::Instant::now() >= deadline {
                self.screenshot("missing-element").await;
                panic!("no element {css} on {}", self.url().await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.post(&format!("/element/{e}/click"), json!({})).await;
    }

    /// Clears a field and types `text` into it, as a person would.
    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.post(&format!("/element/{e}/clear"), json!({})).await;
        self.post(&format!("/element/{e}/value"), json!({ "text": text }))
            .await;
    }

    pub async fn text(&self, css: &str) -> String {
        let e = self.find(css).await;
        let v = self
            .command(reqwest::Method::GET, &format!("/element/{e}/text"), None)
            .await;
        v.as_str().unwrap_or_default().to_owned()
    }

    /// The text of the first element matching `css`, if there is one and it is still on the
    /// page when read (a page that re-renders itself may replace it in between).
    async fn try_text(&self, css: &str) -> Option<String> {
        let e = self.try_find(css).await?;
        let url = format!("{}/session/{}/element/{e}/text", self.base, self.session);
        let res = self.http.get(url).send().await.unwrap();
        if !res.status().is_success() {
            return None;
        }
        let v: Value = res.json().await.unwrap();
        Some(v["value"].as_str().unwrap_or_default().to_owned())
    }

    /// Waits until the text of `css` satisfies `ok`; returns it.
    pub async fn wait_text(&self, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(t) = self.try_text(css).await
                && ok(&t)
            {
                return t;
            }
            if tokio::time::Instant::now() >= deadline {
                self.screenshot("timed-out").await;
                panic!("{css} never showed {what} on {}", self.url().await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a PNG of the viewport as the next numbered artifact.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let v = self
            .command(reqwest::Method::GET, "/screenshot", None)
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        let n = self.shots.fetch_add(1, Ordering::Relaxed) + 1;
        let path = self.artifacts.join(format!("{n:02}-{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Screenshots an Admin UI page and checks what every page owes a person: no horizontal
    /// scrolling at 1280 px and an accessible name on every control.
    pub async fn check_page(&self, name: &str) {
        self.screenshot(name).await;
        let report = self
            .script(
                "const bad = [];\
                 for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea, button')) {\
                   const named = el.getAttribute('aria-label') || el.getAttribute('aria-labelledby')\
                     || (el.id && document.querySelector('label[for=\"' + CSS.escape(el.id) + '\"]'))\
                     || el.closest('label') || (el.tagName === 'BUTTON' && el.textContent.trim());\
                   if (!named) { bad.push(el.outerHTML.slice(0, 160)); }\
                 }\
                 return { bad: bad, scroll: document.documentElement.scrollWidth,\
                          width: document.documentElement.clientWidth, window: window.innerWidth };",
                json!([]),
            )
            .await;
        assert_eq!(
            report["bad"],
            json!([]),
            "{name}: controls without an accessible name"
        );
        let (scroll, width) = (report["scroll"].as_u64(), report["width"].as_u64());
        assert_eq!(
            report["window"].as_u64(),
            Some(1280),
            "{name}: the window is 1280 px wide"
        );
        assert!(
            scroll <= width,
            "{name}: scrolls horizontally ({scroll:?} px of content in {width:?})"
        );
    }

    /// Ends the session and the driver.
    pub async fn close(mut self) {
        let url = format!("{}/session/{}", self.base, self.session);
        let _ = self.http.delete(url).send().await;
        self.session.clear();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A failed test never reached close(): end the session with a plain request so
        // Chromium exits with its driver.
        if !self.session.is_empty() {
            let addr = self.base.trim_start_matches("http://");
            if let Ok(mut s) = TcpStream::connect(addr) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                let req = format!(
                    "DELETE /session/{} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    self.session
                );
                if s.write_all(req.as_bytes()).is_ok() {
                    let _ = s.read_to_end(&mut Vec::new());
                }
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
