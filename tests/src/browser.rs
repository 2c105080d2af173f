//! Headless Chromium driven over WebDriver, for the console's browser
//! tests: Debian's `chromium` and `chromedriver` (installed by
//! `scripts/setup.sh --python`), spoken to with `fantoccini`.
//!
//! Every wait polls an observable state of the page with a generous
//! ceiling; when one runs out the test fails with the page's text, the
//! browser's console errors and a screenshot, so a failure on CI says what
//! the page showed. Each test also leaves its final screenshot under
//! `target/console-screenshots/`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::wd::TimeoutConfiguration;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::repo_root;

/// How long a wait for a page state may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(45);

/// At most two browsers at a time: each is a few processes and a few
/// hundred MB, and the suite runs on two cores.
static BROWSERS: Semaphore = Semaphore::const_new(2);

/// One headless Chromium session on its own chromedriver.
pub struct Browser {
    client: Client,
    driver: Child,
    driver_port: u16,
    session: String,
    base: String,
    name: String,
    _profile: tempfile::TempDir,
    _permit: SemaphorePermit<'static>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Whether WebDriver refused an element because the page replaced it.
fn is_stale(err: &fantoccini::error::CmdError) -> bool {
    err.to_string().contains("stale element")
}

/// Where the screenshots go: `target/console-screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    let dir = repo_root().join("target").join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Browser {
    /// Starts chromedriver and a 1280×900 headless Chromium on `base` (the
    /// server's root URL). `name` names the screenshots.
    pub async fn open(name: &str, base: &str) -> Browser {
        let permit = BROWSERS.acquire().await.unwrap();
        let driver_port = free_port();
        let mut command = Command::new("chromedriver");
        command
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own process group, so Drop can end the browsers it started too.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let driver = command
            .spawn()
            .expect("chromedriver is not installed: run scripts/setup.sh --python (it installs chromium-driver)");
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1280,900", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        });
        let Value::Object(caps) = caps else { unreachable!() };
        let url = format!("http://127.0.0.1:{driver_port}");
        let started = Instant::now();
        let client = loop {
            match ClientBuilder::new(HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(_) if started.elapsed() < PATIENCE => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("no WebDriver session from chromedriver on {url}: {e}"),
            }
        };
        // A page that never finishes loading fails its step, not the run.
        client
            .update_timeouts(TimeoutConfiguration::new(
                Some(Duration::from_secs(20)),
                Some(Duration::from_secs(30)),
                Some(Duration::ZERO),
            ))
            .await
            .expect("chromedriver takes timeouts");
        let session = client.session_id().await.unwrap().expect("a session id");
        Browser {
            client,
            driver,
            driver_port,
            session,
            base: base.trim_end_matches('/').to_string(),
            name: name.to_string(),
            _profile: profile,
            _permit: permit,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Navigates to `path` on the server.
    pub async fn go(&self, path: &str) {
        let url = format!("{}{path}", self.base);
        if let Err(e) = self.client.goto(&url).await {
            panic!("{}", self.report(&format!("opening {url}: {e}")).await);
        }
    }

    /// The current URL's path and query.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        }
    }

    /// Waits until the page's path is no longer `from` (a form's redirect
    /// has landed), and returns the new one.
    pub async fn wait_path_change(&self, from: &str) -> String {
        let started = Instant::now();
        loop {
            let now = self.path().await;
            if now != from {
                return now;
            }
            if started.elapsed() > PATIENCE {
                panic!("{}", self.report(&format!("still on {from} after {PATIENCE:?}")).await);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `css` matches an element, and returns it.
    pub async fn wait(&self, css: &str) -> Element {
        let started = Instant::now();
        loop {
            if let Ok(e) = self.client.find(Locator::Css(css)).await {
                return e;
            }
            if started.elapsed() > PATIENCE {
                panic!("{}", self.report(&format!("waited {PATIENCE:?} for `{css}`")).await);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `css` matches nothing.
    pub async fn wait_gone(&self, css: &str) {
        let started = Instant::now();
        while self.client.find(Locator::Css(css)).await.is_ok() {
            if started.elapsed() > PATIENCE {
                panic!(
                    "{}",
                    self.report(&format!("waited {PATIENCE:?} for `{css}` to go")).await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clicks the element `css` matches (waiting for it first). A live
    /// refresh may swap the element out between finding and clicking it
    /// (a stale reference): then it is found again.
    pub async fn click(&self, css: &str) {
        let started = Instant::now();
        loop {
            let e = self.wait(css).await;
            match e.click().await {
                Ok(()) => return,
                Err(err) if is_stale(&err) && started.elapsed() < PATIENCE => continue,
                Err(err) => panic!("{}", self.report(&format!("clicking `{css}`: {err}")).await),
            }
        }
    }

    /// Replaces the text of the field `css` matches.
    pub async fn fill(&self, css: &str, text: &str) {
        let e = self.wait(css).await;
        e.clear().await.unwrap();
        if let Err(err) = e.send_keys(text).await {
            panic!("{}", self.report(&format!("typing into `{css}`: {err}")).await);
        }
    }

    /// Picks the option with `value` in the select `css` matches.
    pub async fn select(&self, css: &str, value: &str) {
        let e = self.wait(css).await;
        if let Err(err) = e.select_by_value(value).await {
            panic!("{}", self.report(&format!("choosing {value} in `{css}`: {err}")).await);
        }
    }

    /// The visible text of the element `css` matches.
    pub async fn text(&self, css: &str) -> String {
        let started = Instant::now();
        loop {
            match self.wait(css).await.text().await {
                Ok(t) => return t,
                Err(err) if is_stale(&err) && started.elapsed() < PATIENCE => continue,
                Err(err) => panic!("{}", self.report(&format!("reading `{css}`: {err}")).await),
            }
        }
    }

    /// Sets a marker on the current document; [`Browser::same_document`]
    /// tells whether the page was reloaded since.
    pub async fn mark_document(&self) {
        self.client
            .execute("window.__wasmfcTestMark = 'kept';", vec![])
            .await
            .unwrap();
    }

    /// Whether the document marked by [`Browser::mark_document`] is still
    /// the one shown (no navigation or reload happened).
    pub async fn same_document(&self) -> bool {
        let v = self
            .client
            .execute("return window.__wasmfcTestMark || null;", vec![])
            .await
            .unwrap();
        v == json!("kept")
    }

    /// The browser console's errors since the last call (chromedriver's
    /// `browser` log, at SEVERE level).
    pub async fn console_errors(&self) -> Vec<String> {
        let url = format!("http://127.0.0.1:{}/session/{}/se/log", self.driver_port, self.session);
        let Ok(r) = reqwest::Client::new()
            .post(url)
            .json(&json!({"type": "browser"}))
            .send()
            .await
        else {
            return vec!["(chromedriver's log could not be read)".into()];
        };
        let v: Value = r.json().await.unwrap_or_default();
        v["value"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Saves a screenshot as `target/console-screenshots/<name>-<step>.png`.
    pub async fn screenshot(&self, step: &str) -> PathBuf {
        let path = screenshot_dir().join(format!("{}-{step}.png", self.name));
        if let Ok(png) = self.client.screenshot().await {
            std::fs::write(&path, png).unwrap();
        }
        path
    }

    /// `why`, with what the page shows: for the panic that fails a test.
    pub async fn report(&self, why: &str) -> String {
        let shot = self.screenshot("failure").await;
        let url = self
            .client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default();
        let text = match self.client.find(Locator::Css("body")).await {
            Ok(b) => b.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let errors = self.console_errors().await;
        format!(
            "{why}\n  page: {url}\n  screenshot: {}\n  console errors: {errors:?}\n  page text:\n{text}",
            shot.display()
        )
    }

    /// Ends the session: a last screenshot, and no console errors allowed.
    pub async fn finish(self) {
        self.screenshot("final").await;
        let errors = self.console_errors().await;
        if !errors.is_empty() {
            panic!(
                "{}",
                self.report(&format!("the browser console logged errors: {errors:?}"))
                    .await
            );
        }
        // No `close()`: it waits for every handle of the client to go, and
        // Drop ends chromedriver and its browsers anyway.
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The group holds chromedriver and every Chromium it started. Signalled
        // directly: procps' `kill -9 -PGID` here sent SIGKILL to pid -1, which
        // is every process we may signal.
        if let Ok(group) = i32::try_from(self.driver.id())
            && group > 1
        {
            // SAFETY: kill(2) with a negative pid signals that process group
            // only; no memory is involved.
            unsafe {
                libc::kill(-group, libc::SIGKILL);
            }
        }
        let _ = self.driver.wait();
    }
}
