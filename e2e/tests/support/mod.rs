//! Helpers shared by the end-to-end tests: the stack's URLs, an HTTP client, polling.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// The base URL of one worker of the running stack.
pub fn url(worker: &str) -> String {
    let var = format!("TALLY_{}_URL", worker.to_uppercase());
    std::env::var(&var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the end-to-end tests with `cargo xtask test`")
    })
}

/// A name unique to this test run, e.g. for a project slug.
pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{:x}-{}",
        nanos & 0xffff_ffff_ffff,
        std::process::id()
    )
}

/// A UUID that is unique to `run` and `i`.
pub fn event_id(run: u32, i: u32) -> String {
    format!("{run:08x}-0000-4000-8000-{i:012x}")
}

/// A random-enough 32-bit run id for event ids.
pub fn run_id() -> u32 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    nanos ^ std::process::id().rotate_left(16)
}

/// An HTTP answer: status and body (parsed as JSON when it is JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub json: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(20)))
        .http_status_as_error(false)
        .build()
        .into()
}

fn answer(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Answer {
    let mut response = response.expect("the worker answers over HTTP");
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .expect("the body is readable text");
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        headers,
        json,
    }
}

/// `GET` a URL.
pub fn get(url: &str) -> Answer {
    answer(agent().get(url).call())
}

/// `POST` a body with a content type.
pub fn post(url: &str, content_type: &str, body: &str) -> Answer {
    answer(
        agent()
            .post(url)
            .header("content-type", content_type)
            .send(body),
    )
}

/// `POST` JSON events to ingest.
pub fn send_events(events: &Value) -> Answer {
    post(
        &format!("{}/v1/events", url("ingest")),
        "application/json",
        &events.to_string(),
    )
}

/// The project's overview from the query worker.
pub fn overview(project: &str) -> Answer {
    get(&format!("{}/v1/projects/{project}/overview", url("query")))
}

/// Polls `probe` every 200 ms until it returns `Some`, or panics after `limit` with the
/// last thing it saw, described by `what`.
pub fn eventually<T>(
    what: &str,
    limit: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(last) if Instant::now() > deadline => {
                panic!("{what}: not reached within {limit:?}; last seen: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Waits until the overview of `project` counts exactly `n` events.
pub fn wait_for_count(project: &str, n: u64) {
    eventually(
        &format!("overview of {project} counts {n} events"),
        Duration::from_secs(30),
        || {
            let a = overview(project);
            match a.json["events"].as_u64() {
                Some(count) if a.status == 200 && count == n => Ok(()),
                _ => Err(format!("{} {}", a.status, a.json)),
            }
        },
    );
}

/// Runs `f` on the local D1 database file of the running stack (read-only), for checks
/// that no API exposes, such as what exactly is stored.
pub fn with_d1<T>(f: impl FnOnce(&rusqlite::Connection) -> T) -> T {
    open_d1(rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY, f)
}

/// Like [`with_d1`], writable: for settings that no API changes yet.
pub fn with_d1_writable<T>(f: impl FnOnce(&rusqlite::Connection) -> T) -> T {
    open_d1(rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE, f)
}

fn open_d1<T>(flags: rusqlite::OpenFlags, f: impl FnOnce(&rusqlite::Connection) -> T) -> T {
    let state = std::path::PathBuf::from(std::env::var("TALLY_STATE_DIR").unwrap_or_else(|_| {
        panic!("TALLY_STATE_DIR is not set: run the end-to-end tests with `cargo xtask test`")
    }));
    let d1 = state.join("v3/d1/miniflare-D1DatabaseObject");
    let file = std::fs::read_dir(&d1)
        .unwrap_or_else(|e| panic!("{}: {e}", d1.display()))
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.extension().is_some_and(|x| x == "sqlite")
                && p.file_stem().is_some_and(|s| s != "metadata")
        })
        .expect("the local D1 database file exists");
    let conn =
        rusqlite::Connection::open_with_flags(&file, flags).expect("the local D1 file opens");
    conn.busy_timeout(Duration::from_secs(10))
        .expect("a busy timeout");
    f(&conn)
}
