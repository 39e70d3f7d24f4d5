//! A real headless Chromium driven over WebDriver (chromedriver on loopback), and the web
//! service served on a loopback port for it to open.
//!
//! Chromium and chromedriver come from Debian's packages, installed by `./scripts/test`
//! (`scripts/lib/chromium.sh`); `CHROMIUM` and `CHROMEDRIVER` name them (by default
//! `/usr/bin/chromium` and `/usr/bin/chromedriver`). A test that finds them missing fails and
//! says so. Screenshots go to `$TEST_OUTPUT_DIR/screenshots/` (`TEST_OUTPUT_DIR` defaults to
//! `target/test-output` under the repository; `./scripts/test` sets it beside its test log).

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::Method;
use fantoccini::elements::Element;
use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use super::{ChildGuard, free_port};

/// How long a wait for something on the page lasts before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// The desktop window every session starts with.
pub const DESKTOP: (u32, u32) = (1280, 900);
/// A phone-sized window, for one screenshot at a time.
pub const PHONE: (u32, u32) = (390, 844);

/// The web service's router, served on a free loopback port until dropped.
pub struct WebServer {
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl WebServer {
    /// Serves `router` with the peer address the middleware reads (`ConnectInfo`).
    pub async fn start(router: Router) -> WebServer {
        Self::start_with(|_| router).await
    }

    /// Serves the router `make` builds for the server's own URL (for services that must
    /// know where they are reached, such as sign-in callbacks).
    pub async fn start_with(make: impl FnOnce(&str) -> Router) -> WebServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = make(&format!("http://{addr}"));
        let task = tokio::spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        WebServer {
            url: format!("http://{addr}"),
            task,
        }
    }

    /// The absolute URL of `path` (which starts with `/`).
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The program named by `variable`, or `default`; fails the test when it is not there.
fn program(variable: &str, default: &str, package: &str) -> PathBuf {
    let path = PathBuf::from(std::env::var(variable).unwrap_or_else(|_| default.to_string()));
    assert!(
        path.is_file(),
        "{} is missing: the browser tests need Debian's `{package}` package. Run the tests \
         through ./scripts/test, which installs it, or `apt-get install chromium \
         chromium-driver`, or set {variable} to the program",
        path.display()
    );
    path
}

/// Where screenshots are kept: `$TEST_OUTPUT_DIR/screenshots/`, with `TEST_OUTPUT_DIR`
/// defaulting to `target/test-output` under the repository.
pub fn screenshot_dir() -> PathBuf {
    let output = match std::env::var_os("TEST_OUTPUT_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-output"),
    };
    let dir = output.join("screenshots");
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create the screenshot directory {dir:?}: {e}"));
    dir
}

/// How many Chromium sessions run at once in one test binary. The tests run four at a time,
/// and four browsers on a two-core machine starve each other's pages; a test holds one
/// session at a time (so waiting for a slot cannot deadlock).
static SESSIONS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// One Chromium session with its own chromedriver and profile; both end when it is dropped.
pub struct Browser {
    client: Client,
    _slot: tokio::sync::SemaphorePermit<'static>,
    /// chromedriver, leader of a process group that also holds the browser it started.
    driver: ChildGuard,
    _profile: tempfile::TempDir,
    screenshots: PathBuf,
    /// Console messages read while opening pages, kept for [`Browser::console`].
    console_kept: std::sync::Mutex<Vec<String>>,
}

impl Browser {
    /// Starts chromedriver on a free loopback port and a headless Chromium session that can
    /// reach nothing but loopback.
    pub async fn start() -> Browser {
        let slot = SESSIONS
            .acquire()
            .await
            .unwrap_or_else(|e| panic!("the browser slots are closed: {e}"));
        let chromium = program("CHROMIUM", "/usr/bin/chromium", "chromium");
        let chromedriver = program("CHROMEDRIVER", "/usr/bin/chromedriver", "chromium-driver");
        let profile = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut command = Command::new(&chromedriver);
        command
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .arg(format!(
                "--log-path={}",
                profile.path().join("chromedriver.log").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // A group of its own, so that dropping the session ends the browser too.
            .process_group(0);
        let driver = ChildGuard(
            command
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display())),
        );
        let webdriver = format!("http://127.0.0.1:{port}");
        super::wait_for("chromedriver to listen", WAIT, || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ())
        })
        .await;

        let (width, height) = DESKTOP;
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--no-default-browser-check",
                    "--disable-extensions",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--metrics-recording-only",
                    "--hide-scrollbars",
                    "--force-device-scale-factor=1",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.path().join("profile").display()),
                    // No name resolves but loopback's, so nothing beyond this machine is reached.
                    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
                    "--proxy-server=direct://",
                ],
            },
            // Console messages, read by `console_errors`.
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let capabilities: Capabilities = capabilities;
        // chromedriver is plain HTTP on loopback: no TLS is involved.
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&webdriver)
            .await
            .unwrap_or_else(|e| {
                let log = std::fs::read_to_string(profile.path().join("chromedriver.log"))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                panic!(
                    "cannot start a Chromium session through {}: {e}\nchromedriver's log ends:\n{}",
                    chromedriver.display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            });
        Browser {
            client,
            _slot: slot,
            driver,
            _profile: profile,
            screenshots: screenshot_dir(),
            console_kept: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The WebDriver client, for what the helpers do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Opens `url` and waits for the document (and the modules it imports) to load.
    ///
    /// Chromium aborts its requests, loopback's too, with `ERR_NETWORK_CHANGED` when a network
    /// interface comes or goes, as Docker's do while other tests start sandboxes: a load so
    /// aborted is made again, a few times at most. Nothing else is retried.
    pub async fn goto(&self, url: &str) {
        const ATTEMPTS: usize = 3;
        for attempt in 1..=ATTEMPTS {
            let opened = self.client.goto(url).await;
            let lines = self.read_console().await;
            let aborted = match &opened {
                Ok(()) => lines
                    .iter()
                    .any(|line| line.contains("ERR_NETWORK_CHANGED")),
                Err(e) => e.to_string().contains("ERR_NETWORK_CHANGED"),
            };
            if aborted && attempt < ATTEMPTS {
                continue;
            }
            opened.unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
            self.console_kept.lock().unwrap().extend(lines);
            return;
        }
    }

    /// The page's current path (and query).
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_string(),
        }
    }

    /// Waits until an element matches `css` and is displayed; fails after [`WAIT`].
    pub async fn wait(&self, css: &str) -> Element {
        let started = Instant::now();
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await
                && element.is_displayed().await.unwrap_or(false)
            {
                return element;
            }
            if started.elapsed() > WAIT {
                let main = self.text_of("#main").await.unwrap_or_default();
                panic!(
                    "timed out after {WAIT:?} waiting for `{css}` on {}; the page shows:\n{main}\n\
                     the console says:\n{}",
                    self.path().await,
                    self.console_for_failure().await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the text of the element matching `css` contains `expected`; its text.
    pub async fn wait_for_text(&self, css: &str, expected: &str) -> String {
        let started = Instant::now();
        loop {
            let text = self.text_of(css).await;
            if let Some(text) = &text
                && text.contains(expected)
            {
                return text.clone();
            }
            if started.elapsed() > WAIT {
                panic!(
                    "timed out after {WAIT:?} waiting for `{css}` on {} to contain {expected:?}; \
                     it shows: {text:?}\nthe console says:\n{}",
                    self.path().await,
                    self.console_for_failure().await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the page's path is `path`.
    pub async fn wait_for_path(&self, path: &str) {
        let started = Instant::now();
        loop {
            let now = self.path().await;
            if now == path {
                return;
            }
            if started.elapsed() > WAIT {
                panic!("timed out after {WAIT:?} waiting for the page {path}; it is at {now}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The text of the first element matching `css`, if there is one now.
    pub async fn text_of(&self, css: &str) -> Option<String> {
        let element = self.client.find(Locator::Css(css)).await.ok()?;
        element.text().await.ok()
    }

    /// Waits for the element matching `css` and reads its text.
    pub async fn text(&self, css: &str) -> String {
        self.wait(css).await.text().await.unwrap()
    }

    /// Waits for the element matching `css` and clicks it.
    pub async fn click(&self, css: &str) {
        self.wait(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("cannot click `{css}`: {e}"));
    }

    /// Waits for the field matching `css` and types `text` into it.
    pub async fn type_text(&self, css: &str, text: &str) {
        self.wait(css)
            .await
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("cannot type into `{css}`: {e}"));
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page; its result.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Saves a PNG of the window as `{name}.png` in the screenshot directory; its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.unwrap();
        let path = self.screenshots.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("cannot write {path:?}: {e}"));
        path
    }

    /// Like [`Browser::screenshot`], with the window phone-sized for the shot.
    pub async fn phone_screenshot(&self, name: &str) -> PathBuf {
        self.resize(PHONE).await;
        let path = self.screenshot(name).await;
        self.resize(DESKTOP).await;
        path
    }

    /// Resizes the window and waits until the page sees the new width.
    pub async fn resize(&self, (width, height): (u32, u32)) {
        self.client.set_window_size(width, height).await.unwrap();
        let started = Instant::now();
        loop {
            let seen = self.execute("return window.innerWidth;", vec![]).await;
            if seen.as_u64() == Some(u64::from(width)) {
                return;
            }
            if started.elapsed() > WAIT {
                panic!("the window did not become {width} wide; the page sees {seen}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Makes the page see `prefers-color-scheme: dark` (or light), as a reader's system would
    /// ask for it; through Chromium's DevTools protocol, which chromedriver passes on.
    pub async fn prefer_color_scheme(&self, scheme: &str) {
        self.client
            .issue_cmd(DevTools {
                cmd: "Emulation.setEmulatedMedia",
                params: json!({"features": [{"name": "prefers-color-scheme", "value": scheme}]}),
            })
            .await
            .unwrap_or_else(|e| panic!("cannot ask for the {scheme} colour scheme: {e}"));
        let seen = self
            .execute(
                "return matchMedia(`(prefers-color-scheme: ${arguments[0]})`).matches;",
                vec![json!(scheme)],
            )
            .await;
        assert_eq!(
            seen, true,
            "the page does not see the {scheme} colour scheme"
        );
    }

    /// Lets the page read and write the clipboard without asking (as a reader who allowed it
    /// would); through the DevTools protocol. An error when Chromium refuses.
    pub async fn grant_clipboard(&self) -> Result<(), String> {
        self.client
            .issue_cmd(DevTools {
                cmd: "Browser.grantPermissions",
                params: json!({"permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]}),
            })
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// The console's messages since the last call (each read once), as `LEVEL message`.
    pub async fn console(&self) -> Vec<String> {
        let fresh = self.read_console().await;
        let mut lines = std::mem::take(&mut *self.console_kept.lock().unwrap());
        lines.extend(fresh);
        lines
    }

    /// The messages chromedriver has not handed out yet.
    async fn read_console(&self) -> Vec<String> {
        let answer = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .unwrap_or_else(|e| panic!("cannot read the browser's console: {e}"));
        log_lines(&answer)
    }

    /// The console's messages for a failure report (an unreadable console is said, not fatal).
    async fn console_for_failure(&self) -> String {
        let mut lines = self.console_kept.lock().unwrap().clone();
        match self.client.issue_cmd(BrowserLog).await {
            Ok(answer) => lines.extend(log_lines(&answer)),
            Err(e) => lines.push(format!("(unreadable: {e})")),
        }
        lines.join("\n")
    }

    /// The console's errors since the last read (a Content-Security-Policy violation is one).
    pub async fn console_errors(&self) -> Vec<String> {
        self.console()
            .await
            .into_iter()
            .filter(|line| line.starts_with("SEVERE") || line.contains("Content Security Policy"))
            .collect()
    }

    /// Ends the session and the browser.
    pub async fn close(self) {
        let _ = tokio::time::timeout(Duration::from_secs(10), self.client.clone().close()).await;
        // Dropping ends chromedriver and whatever is left of the browser.
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        end_group(&mut self.driver);
    }
}

/// chromedriver's log entries as `LEVEL message` lines.
fn log_lines(answer: &Value) -> Vec<String> {
    answer
        .as_array()
        .into_iter()
        .flatten()
        .map(|entry| {
            format!(
                "{} {}",
                entry["level"].as_str().unwrap_or("?"),
                entry["message"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// Kills chromedriver's process group (the browser with it) and reaps chromedriver.
fn end_group(driver: &mut ChildGuard) {
    let pgid = driver.pid();
    // Only while chromedriver itself is unreaped, so the group id cannot have been reused;
    // and never a group id of 0 or 1, which would reach far more than this session.
    if pgid > 1 && matches!(driver.0.try_wait(), Ok(None)) {
        // SAFETY: killpg takes plain integers and has no memory effects.
        unsafe {
            libc::killpg(pgid, libc::SIGKILL);
        }
    }
    let _ = driver.0.kill();
    let _ = driver.0.wait();
}

/// chromedriver's console log command (`POST /session/{id}/se/log` with `{"type":"browser"}`).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (Method, Option<String>) {
        (Method::POST, Some(json!({"type": "browser"}).to_string()))
    }
}

/// A command of Chromium's DevTools protocol (`POST /session/{id}/goog/cdp/execute`).
#[derive(Debug)]
struct DevTools {
    cmd: &'static str,
    params: Value,
}

impl WebDriverCompatibleCommand for DevTools {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (Method, Option<String>) {
        (
            Method::POST,
            Some(json!({"cmd": self.cmd, "params": self.params}).to_string()),
        )
    }
}
