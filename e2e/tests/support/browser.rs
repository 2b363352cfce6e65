//! A small WebDriver client: headless Debian Chromium driven through chromedriver's
//! HTTP API with ureq, for the tests that use the dashboard as a person would, and
//! for pages that run a tracker (served by `support::pages`). The dashboard's pages have
//! no JavaScript; the test talks to the browser through WebDriver's own commands.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// WebDriver's key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One headless Chromium session; dropping it ends the session and chromedriver.
#[derive(Debug)]
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    profile: PathBuf,
    http: ureq::Agent,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// Where screenshots and logs go: `TALLY_ARTIFACTS_DIR` (set by `cargo xtask test`), or
/// `target/e2e/artifacts`. Created if missing.
pub fn artifacts_dir() -> PathBuf {
    let dir = std::env::var_os("TALLY_ARTIFACTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/e2e/artifacts"));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session with a fresh
    /// profile, 1280 × 900.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// As [`Browser::start`], with more Chromium switches (`--user-agent=...`,
    /// `--host-resolver-rules=...`).
    pub fn start_with(extra: &[&str]) -> Self {
        let chromium = env_or("TALLY_CHROMIUM", "/usr/bin/chromium");
        let chromedriver = env_or("TALLY_CHROMEDRIVER", "/usr/bin/chromedriver");
        for path in [&chromium, &chromedriver] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: `cargo xtask test` installs Debian's chromium and chromium-driver"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = std::fs::File::create(artifacts_dir().join("chromedriver.log"))
            .expect("the chromedriver log");
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("a second handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {chromedriver}: {e}"));
        let profile = std::env::temp_dir().join(super::unique("tally-chromium"));
        std::fs::create_dir_all(&profile).expect("a profile directory");
        let http: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .http_status_as_error(false)
            .build()
            .into();
        let mut browser = Self {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            profile,
            http,
        };
        browser.wait_until_ready();
        let profile_switch = format!("--user-data-dir={}", browser.profile.display());
        let mut args = vec![
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            &profile_switch,
            "--window-size=1280,900",
        ];
        args.extend_from_slice(extra);
        let created = browser.call(
            "POST",
            "/session",
            Some(json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": chromium, "args": args},
                // The console's messages, for tests that check none is a blocked load.
                "goog:loggingPrefs": {"browser": "ALL"},
            }}})),
        );
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_owned();
        browser
    }

    fn wait_until_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = self
                .http
                .get(format!("{}/status", self.base))
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_json::<Value>().ok())
                .is_some_and(|v| v["value"]["ready"] == true);
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready within 20 s; see chromedriver.log in {}",
                artifacts_dir().display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A WebDriver command; answers its `value`, panicking on a WebDriver error.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        match self.send(method, path, body) {
            Ok(value) => value,
            Err(problem) => panic!("{problem}"),
        }
    }

    /// A WebDriver command; its `value`, or what went wrong.
    fn send(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let request = ureq::http::Request::builder().method(method).uri(&url);
        let sent = match body {
            Some(body) => self.http.run(
                request
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .expect("a request"),
            ),
            None => self.http.run(request.body(()).expect("a request")),
        };
        let mut response = sent.map_err(|e| format!("{method} {path}: {e}"))?;
        let status = response.status().as_u16();
        let body: Value = response
            .body_mut()
            .read_json()
            .map_err(|e| format!("{method} {path}: a body that is not JSON: {e}"))?;
        if status >= 300 {
            return Err(format!("{method} {path} answered {status}: {body}"));
        }
        Ok(body["value"].clone())
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    /// Loads a URL and waits for the page.
    pub fn goto(&self, url: &str) {
        self.call(
            "POST",
            &self.session_path("/url"),
            Some(json!({ "url": url })),
        );
    }

    /// The current URL.
    pub fn url(&self) -> String {
        self.call("GET", &self.session_path("/url"), None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits until the current URL contains `fragment` (a click on a form's button
    /// starts a navigation that may still be under way when the click returns), then
    /// until the new page has loaded.
    pub fn wait_for_url(&self, fragment: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let url = self.url();
            let loaded = self.script("return document.readyState", json!([])) == "complete";
            if url.contains(fragment) && loaded {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the browser did not reach a URL with {fragment:?}; it is at {url}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Waits until the page has an element matching `css` (after a click that navigates).
    pub fn wait_for(&self, css: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while self.count(css) == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "no {css:?} appeared; the browser is at {}",
                self.url()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// The page's HTML as the browser holds it.
    pub fn source(&self) -> String {
        self.call("GET", &self.session_path("/source"), None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The element a CSS selector finds first.
    pub fn find(&self, css: &str) -> String {
        let found = self.call(
            "POST",
            &self.session_path("/element"),
            Some(json!({"using": "css selector", "value": css})),
        );
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css:?}: {found}"))
            .to_owned()
    }

    /// How many elements a CSS selector finds.
    pub fn count(&self, css: &str) -> usize {
        self.call(
            "POST",
            &self.session_path("/elements"),
            Some(json!({"using": "css selector", "value": css})),
        )
        .as_array()
        .map_or(0, Vec::len)
    }

    /// The rendered text of the element a CSS selector finds.
    pub fn text(&self, css: &str) -> String {
        let id = self.find(css);
        self.call(
            "GET",
            &self.session_path(&format!("/element/{id}/text")),
            None,
        )
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// Clicks an element (and waits for a navigation it starts).
    pub fn click(&self, css: &str) {
        let id = self.find(css);
        self.call(
            "POST",
            &self.session_path(&format!("/element/{id}/click")),
            Some(json!({})),
        );
    }

    /// Types text into a field.
    pub fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.call(
            "POST",
            &self.session_path(&format!("/element/{id}/clear")),
            Some(json!({})),
        );
        self.call(
            "POST",
            &self.session_path(&format!("/element/{id}/value")),
            Some(json!({ "text": text })),
        );
    }

    /// Runs a script in the page (the test's, not the page's) and answers its result.
    pub fn script(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            &self.session_path("/execute/sync"),
            Some(json!({"script": script, "args": args})),
        )
    }

    /// Runs a script in the page, or `None` when WebDriver refuses it: while a page
    /// reloads itself there may be no document to run it in.
    pub fn try_script(&self, script: &str) -> Option<Value> {
        self.send(
            "POST",
            &self.session_path("/execute/sync"),
            Some(json!({"script": script, "args": []})),
        )
        .ok()
    }

    /// The browser console's messages since the last call (chromedriver's log of type
    /// `browser`, which the session asks for): a load the page's Content-Security-Policy
    /// blocks is reported there.
    pub fn console(&self) -> Vec<String> {
        self.call(
            "POST",
            &self.session_path("/se/log"),
            Some(json!({"type": "browser"})),
        )
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
    }

    /// The console messages since the last call that report a load the page's
    /// Content-Security-Policy blocked.
    pub fn blocked_by_policy(&self) -> Vec<String> {
        self.console()
            .into_iter()
            .filter(|m| m.contains("Content Security Policy"))
            .collect()
    }

    /// A Chrome DevTools command, through chromedriver.
    fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.call(
            "POST",
            &self.session_path("/goog/cdp/execute"),
            Some(json!({"cmd": cmd, "params": params})),
        )
    }

    /// Makes the page a phone's: `width` × `height` CSS pixels, touch, mobile viewport.
    pub fn emulate_phone(&self, width: u32, height: u32) {
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 2, "mobile": true}),
        );
    }

    /// Makes the page see the system's colour scheme as `scheme` (`light` or `dark`), as
    /// `prefers-color-scheme` reports it.
    pub fn emulate_color_scheme(&self, scheme: &str) {
        self.cdp(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme", "value": scheme}]}),
        );
    }

    /// Signs in on the login form the current page shows with `token`, and waits for
    /// `signed_in` (a selector of the page the form returns to).
    pub fn sign_in(&self, token: &str, signed_in: &str) {
        self.type_into("input[name=token]", token);
        self.click("form.login button[type=submit]");
        self.wait_for(signed_in);
    }

    /// Opens the dashboard page `page` signed in with the read token `token`: its login
    /// form returns to the dashboard, so the page is asked for again once signed in.
    pub fn open_signed_in(&self, page: &str, token: &str) {
        self.goto(page);
        self.sign_in(token, "#events .v");
        self.goto(page);
    }

    /// Saves a PNG of the whole page (beyond the window) and answers its path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let size = self.script(
            "const e = document.documentElement; return [e.scrollWidth, e.scrollHeight];",
            json!([]),
        );
        let (width, height) = (
            size[0].as_f64().unwrap_or(1280.0),
            size[1].as_f64().unwrap_or(900.0),
        );
        let shot = self.cdp(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true,
                   "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}}),
        );
        let data = shot["data"].as_str().expect("screenshot data");
        let path = artifacts_dir().join(name);
        std::fs::write(&path, base64(data)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        println!("screenshot: {}", path.display());
        path
    }
}

/// Asserts that each of `shots` is a PNG of more than `min_bytes` (a page drawn, not a
/// blank or an error).
pub fn assert_pngs(shots: &[&PathBuf], min_bytes: usize) {
    for shot in shots {
        let png = std::fs::read(shot).unwrap();
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > min_bytes,
            "{}",
            shot.display()
        );
    }
}

/// What overflows on the current page, one line per problem: the page wider than the
/// window, a table, panel or scroll box whose content is wider than it, a chart wider than
/// its panel, a cell whose text spills out (unless it truncates on purpose, class `t`,
/// with its full value as `title`), or a cell squeezed onto several lines.
const OVERFLOWS: &str = r#"
const bad = [];
const name = e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
    (e.className && typeof e.className === 'string' ? '.' + e.className.split(' ').join('.') : '') +
    (e.closest('[id]') ? ' in #' + e.closest('[id]').id : '');
const page = document.documentElement;
if (page.scrollWidth > window.innerWidth) bad.push('page ' + page.scrollWidth + ' > ' + window.innerWidth);
for (const e of document.querySelectorAll('header, main, .grid, .panel, .card, .scroll, table')) {
    if (e.scrollWidth > e.clientWidth + 1) bad.push(name(e) + ' scrolls ' + e.scrollWidth + ' > ' + e.clientWidth);
}
for (const e of document.querySelectorAll('svg')) {
    const box = e.getBoundingClientRect(), panel = e.closest('.panel').getBoundingClientRect();
    if (box.left < panel.left - 1 || box.right > panel.right + 1) bad.push(name(e) + ' leaves its panel');
}
for (const c of document.querySelectorAll('td, th')) {
    if (c.classList.contains('t')) {
        if (!c.title) bad.push(name(c) + ' truncates without a title');
    } else if (c.scrollWidth > c.clientWidth + 1) {
        bad.push(name(c) + ' spills ' + c.scrollWidth + ' > ' + c.clientWidth + ': ' + c.textContent.slice(0, 40));
    }
    if (c.getBoundingClientRect().height > 2.5 * parseFloat(getComputedStyle(c).lineHeight) + 12) {
        bad.push(name(c) + ' squeezed to ' + c.getBoundingClientRect().height + ' px: ' + c.textContent.slice(0, 40));
    }
}
return bad;
"#;

impl Browser {
    /// Asserts that nothing on the current page overflows ([`OVERFLOWS`]); `at` names
    /// the width and theme in the message.
    pub fn assert_nothing_overflows(&self, at: &str) {
        let problems = self.script(OVERFLOWS, json!([]));
        let problems = problems.as_array().expect("a list of problems");
        assert!(
            problems.is_empty(),
            "{at}: {} problems, first ones: {:#?}",
            problems.len(),
            &problems[..problems.len().min(12)]
        );
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self
                .http
                .delete(format!("{}/session/{}", self.base, self.session))
                .call();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Decodes standard base64 (with or without padding).
pub fn base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut bits, mut n) = (0u32, 0);
    for v in text.bytes().filter_map(value) {
        bits = bits << 6 | u32::from(v);
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    out
}

#[test]
fn base64_decodes() {
    assert_eq!(base64("aGVsbG8="), b"hello");
    assert_eq!(base64("aGVsbG8h"), b"hello!");
    assert_eq!(base64("iVBORw0KGgo"), b"\x89PNG\r\n\x1a\n");
}
