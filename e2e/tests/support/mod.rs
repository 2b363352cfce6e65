//! Helpers shared by the end-to-end tests: the stack's URLs, an HTTP client, polling.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

pub mod browser;
pub mod example_worker;
pub mod pages;
pub mod receiver;

/// The base URL of one worker of the running stack; `front` is the one host of both
/// APIs, which hands each path to ingest or query.
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

/// The query worker's `FILTER_ROW_BUDGET` in this stack, which `cargo xtask test` makes
/// small (and passes as `TALLY_FILTER_ROW_BUDGET`) so that sampled reads are reachable.
pub fn filter_row_budget() -> u64 {
    std::env::var("TALLY_FILTER_ROW_BUDGET")
        .expect("run with cargo xtask test")
        .parse()
        .expect("TALLY_FILTER_ROW_BUDGET is a whole number")
}

/// The query worker's `FUNNEL_ROW_BUDGET` in this stack, which `cargo xtask test` makes
/// small (and passes as `TALLY_FUNNEL_ROW_BUDGET`) so that sampled funnels are reachable.
pub fn funnel_row_budget() -> u64 {
    std::env::var("TALLY_FUNNEL_ROW_BUDGET")
        .expect("run with cargo xtask test")
        .parse()
        .expect("TALLY_FUNNEL_ROW_BUDGET is a whole number")
}

/// The UTC calendar date `(year, month, day)` of a day number (days since 1970-01-01),
/// by Howard Hinnant's `civil_from_days`, written here so that tests do not lean on
/// Tally's own dates.
pub fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// A UTC day in milliseconds.
pub const DAY: i64 = 86_400_000;

/// `YYYY-MM-DD` of the UTC day holding `ms`.
pub fn date(ms: i64) -> String {
    let (y, m, d) = civil(ms.div_euclid(DAY));
    format!("{y:04}-{m:02}-{d:02}")
}

/// The first day of the month holding `ms`, as `YYYY-MM-DD`.
pub fn month(ms: i64) -> String {
    let (y, m, _) = civil(ms.div_euclid(DAY));
    format!("{y:04}-{m:02}-01")
}

/// The Sunday that starts the week holding `ms`, as the track seed's weeks start (1970-01-01
/// was a Thursday).
pub fn sunday(ms: i64) -> i64 {
    let day = ms.div_euclid(DAY);
    (day - (day + 4).rem_euclid(7)) * DAY
}

/// The wall clock in epoch milliseconds, as event timestamps carry it.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
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
    request("GET", url, &[], None)
}

/// Any request, with headers and an optional body.
pub fn request(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&str>) -> Answer {
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let agent = agent();
    let response = match body {
        Some(body) => agent.run(builder.body(body.to_owned()).expect("a valid request")),
        None => agent.run(builder.body(()).expect("a valid request")),
    };
    answer(response)
}

/// Any request with a body of raw bytes (a compressed body, which is not text).
pub fn request_bytes(method: &str, url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    answer(agent().run(builder.body(body).expect("a valid request")))
}

/// `data` compressed as one gzip member, as an SDK sends it.
pub fn gzipped(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// A request over a plain TCP connection, for methods an HTTP client refuses to send
/// (ureq sends no `QUERY` or `PROPFIND`): HTTP/1.1 with `Connection: close`, the answer
/// read to its end.
pub fn raw_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Answer {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut stream = std::net::TcpStream::connect(host).expect("the worker listens");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("a timeout");
    let body = body.unwrap_or_default();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream
        .write_all(format!("{head}{body}").as_bytes())
        .expect("the request is sent");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("the answer is read");
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        unchunk(body)
    } else {
        body.to_owned()
    };
    let json = serde_json::from_str(&body).unwrap_or(Value::String(body));
    Answer {
        status,
        headers,
        json,
    }
}

/// The body of a chunked answer.
fn unchunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}

/// The admin token of the running stack.
pub fn admin_token() -> String {
    std::env::var("TALLY_ADMIN_TOKEN").unwrap_or_else(|_| {
        panic!("TALLY_ADMIN_TOKEN is not set: run the end-to-end tests with `cargo xtask test`")
    })
}

/// A call to the admin API.
pub fn admin(method: &str, path: &str, body: Option<&Value>) -> Answer {
    let auth = format!("Bearer {}", admin_token());
    let text = body.map(Value::to_string);
    request(
        method,
        &format!("{}/v1/admin{path}", url("query")),
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        text.as_deref(),
    )
}

/// A project made for one test through the admin API, with a write key and a read token.
#[derive(Debug, Clone)]
pub struct Project {
    pub slug: String,
    pub write_key: String,
    pub read_token: String,
}

impl Project {
    /// A new project with a unique slug and no rate limit.
    pub fn new(prefix: &str) -> Self {
        Self::with(prefix, &serde_json::json!({"rate_limit": "off"}))
    }

    /// A new project with a unique slug and the given settings.
    pub fn with(prefix: &str, settings: &Value) -> Self {
        let slug = unique(prefix);
        let mut body = settings.clone();
        body["slug"] = Value::String(slug.clone());
        let made = admin("POST", "/projects", Some(&body));
        assert_eq!(made.status, 201, "creating {slug}: {}", made.json);
        let key = |kind: &str| {
            let a = admin(
                "POST",
                &format!("/projects/{slug}/keys"),
                Some(&serde_json::json!({ "kind": kind })),
            );
            assert_eq!(a.status, 201, "creating a {kind} key: {}", a.json);
            a.json["key"]["secret"].as_str().unwrap().to_owned()
        };
        Self {
            write_key: key("write"),
            read_token: key("read"),
            slug,
        }
    }

    pub fn write_auth(&self) -> String {
        format!("Bearer {}", self.write_key)
    }

    pub fn read_auth(&self) -> String {
        format!("Bearer {}", self.read_token)
    }

    /// `GET /v1/projects/{slug}/{path}` of the query worker with the read token.
    pub fn read(&self, path: &str) -> Answer {
        request(
            "GET",
            &format!("{}/v1/projects/{}/{path}", url("query"), self.slug),
            &[("authorization", &self.read_auth())],
            None,
        )
    }

    /// The dashboard page `/dashboard/{slug}{rest}` (`rest` is a subpath or a query),
    /// read with the project's read token.
    pub fn dashboard(&self, rest: &str) -> Answer {
        self.dashboard_with(rest, &[("authorization", &self.read_auth())])
    }

    /// The dashboard page `/dashboard/{slug}{rest}` as a visitor without a token reads it
    /// (through a share link in `rest`, or refused).
    pub fn dashboard_anonymous(&self, rest: &str) -> Answer {
        self.dashboard_with(rest, &[])
    }

    fn dashboard_with(&self, rest: &str, headers: &[(&str, &str)]) -> Answer {
        let path = format!("{}/dashboard/{}{rest}", url("query"), self.slug);
        request("GET", &path, headers, None)
    }

    /// The project's raw events that `export?{query}` answers, one JSON value each.
    pub fn exported(&self, query: &str) -> Vec<Value> {
        let a = self.read(&format!("export?{query}"));
        assert_eq!(a.status, 200, "{}", a.json);
        let Value::String(body) = &a.json else {
            // One event is one JSON line; a single line parses as JSON.
            return vec![a.json];
        };
        body.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The ids of the project's raw events over the last `days` days, from the export,
    /// sorted.
    pub fn exported_ids(&self, days: u32) -> Vec<String> {
        let mut ids: Vec<String> = self
            .exported(&format!("days={days}"))
            .iter()
            .map(|e| e["event_id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    }

    /// Sends `events` in batches of 500 and waits until the overview of `range` (a
    /// query string) counts them all.
    pub fn send_all_counted(&self, events: &[Value], range: &str) {
        for batch in events.chunks(500) {
            let sent = send_events(self, &Value::Array(batch.to_vec()));
            assert_eq!(sent.status, 202, "{}", sent.json);
        }
        let n = events.len() as u64;
        eventually(
            &format!("{} counts {n} events", self.slug),
            Duration::from_secs(60),
            || {
                let a = self.read(&format!("overview?{range}"));
                match a.json["events"].as_u64() {
                    Some(count) if count == n => Ok(()),
                    _ => Err(format!("{} {}", a.status, a.json)),
                }
            },
        );
    }

    /// Creates the alert rule `rule` through the admin API; the answer is its 201.
    pub fn create_rule(&self, rule: &Value) -> Answer {
        let made = admin(
            "POST",
            &format!("/projects/{}/alert-rules", self.slug),
            Some(rule),
        );
        assert_eq!(made.status, 201, "{}", made.json);
        made
    }

    /// Pauses `campaign` by hand, saying `reason`.
    pub fn pause_campaign(&self, campaign: &str, reason: &str) {
        let paused = admin(
            "PUT",
            &format!("/projects/{}/campaigns/{campaign}", self.slug),
            Some(&serde_json::json!({"status": "paused", "reason": reason})),
        );
        assert_eq!(paused.status, 200, "{}", paused.json);
    }
}

/// `POST` JSON events to ingest with the project's write key.
pub fn send_events(project: &Project, events: &Value) -> Answer {
    request(
        "POST",
        &format!("{}/v1/events", url("ingest")),
        &[
            ("content-type", "application/json"),
            ("authorization", &project.write_auth()),
        ],
        Some(&events.to_string()),
    )
}

/// The project's overview from the query worker, read with its read token.
pub fn overview(project: &Project) -> Answer {
    overview_at(&url("query"), project)
}

/// The project's overview from the worker at `base` (the query worker or the front).
pub fn overview_at(base: &str, project: &Project) -> Answer {
    request(
        "GET",
        &format!("{base}/v1/projects/{}/overview", project.slug),
        &[("authorization", &project.read_auth())],
        None,
    )
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

/// Fires the aggregator's cron `cron` (e.g. `* * * * *`) and polls `probe` until it
/// holds, firing again every 3 s, as the real schedule would run it again. (Locally the
/// workers are separate processes on one SQLite file, so a job can meet a busy database
/// while other tests write; D1 itself serializes writes.)
pub fn after_cron<T>(
    cron: &str,
    what: &str,
    limit: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let mut fired = Instant::now() - Duration::from_secs(60);
    eventually(what, limit, || {
        if fired.elapsed() >= Duration::from_secs(3) {
            let trigger = get(&format!(
                "{}/cdn-cgi/handler/scheduled?cron={}",
                url("aggregator"),
                cron.replace(' ', "+")
            ));
            assert!(trigger.status < 300, "{} {}", trigger.status, trigger.json);
            fired = Instant::now();
        }
        probe()
    })
}

/// Fires the minutely cron until `project` has exactly `days` day rows and no dirty day:
/// its days are rolled from their hours.
pub fn wait_days_rolled(project: &str, days: i64) {
    after_cron(
        "* * * * *",
        &format!("{days} days of {project} are rolled"),
        Duration::from_secs(60),
        || {
            let (rolled, dirty): (i64, i64) = with_d1(project, |db| {
                db.query_row(
                    "SELECT (SELECT COUNT(*) FROM rollups WHERE project = ?1 AND period = 'day'
                             AND dimension = 'all'),
                            (SELECT COUNT(*) FROM dirty_periods WHERE project = ?1
                             AND period = 'day')",
                    [project],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap()
            });
            if rolled == days && dirty == 0 {
                Ok(())
            } else {
                Err(format!("{rolled} day rows, {dirty} dirty days"))
            }
        },
    );
}

/// A breakdown answer's `values` as value → events.
pub fn breakdown_events(answer: &Value) -> BTreeMap<String, u64> {
    answer["values"]
        .as_array()
        .unwrap_or_else(|| panic!("no values: {answer}"))
        .iter()
        .map(|v| {
            (
                v["value"].as_str().unwrap().to_owned(),
                v["events"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The start of the two whole UTC days before yesterday, and their range as query
/// parameters.
pub fn two_whole_days() -> (i64, String) {
    const DAY: i64 = 86_400_000;
    let d0 = now_ms().div_euclid(DAY) * DAY - 3 * DAY;
    let range = format!(
        "from={}T00:00:00Z&to={}T00:00:00Z",
        date(d0),
        date(d0 + 2 * DAY)
    );
    (d0, range)
}

/// Waits until the overview of `project` counts exactly `n` events.
pub fn wait_for_count(project: &Project, n: u64) {
    wait_for_count_at(&url("query"), project, n);
}

/// Waits until the overview of `project`, read at `base`, counts exactly `n` events.
pub fn wait_for_count_at(base: &str, project: &Project, n: u64) {
    wait_for_count_within(base, project, n, Duration::from_secs(30));
}

/// Waits up to `limit` until the overview of `project`, read at `base`, counts exactly
/// `n` events.
pub fn wait_for_count_within(base: &str, project: &Project, n: u64, limit: Duration) {
    eventually(
        &format!("overview of {} counts {n} events", project.slug),
        limit,
        || {
            let a = overview_at(base, project);
            match a.json["events"].as_u64() {
                Some(count) if a.status == 200 && count == n => Ok(()),
                _ => Err(format!("{} {}", a.status, a.json)),
            }
        },
    );
}

/// The raw events stored for the project `slug`, counted in the database itself.
pub fn stored_raw_events(slug: &str) -> u64 {
    with_d1(slug, |db| {
        db.query_row(
            "SELECT COUNT(*) FROM raw_events
             WHERE project_id = (SELECT id FROM projects WHERE slug = ?1)",
            [slug],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
        .try_into()
        .unwrap()
    })
}

/// Runs `f` on the local D1 database file that holds `project`'s data (read-only), for
/// checks that no API exposes, such as what exactly is stored.
pub fn with_d1<T>(project: &str, f: impl FnOnce(&rusqlite::Connection) -> T) -> T {
    open_d1(project, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY, f)
}

/// Runs `f` on the local D1 database file that holds `project`'s data, writable: for
/// tests that break a shard on purpose.
#[allow(dead_code)] // Each test binary uses what it needs of this module.
pub fn with_d1_writable<T>(project: &str, f: impl FnOnce(&rusqlite::Connection) -> T) -> T {
    open_d1(project, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE, f)
}

/// Runs `f` on every local D1 database file of the stack (read-only), in file order:
/// for checks that a project's rows are in one database only.
#[allow(dead_code)] // Each test binary uses what it needs of this module.
pub fn with_every_d1<T>(f: impl Fn(&rusqlite::Connection) -> T) -> Vec<T> {
    d1_files()
        .iter()
        .map(|file| f(&connect(file, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)))
        .collect()
}

/// Every local D1 database file of the running stack: the control database (which is
/// also shard 0) and the other data shards.
fn d1_files() -> Vec<std::path::PathBuf> {
    let state = std::path::PathBuf::from(std::env::var("TALLY_STATE_DIR").unwrap_or_else(|_| {
        panic!("TALLY_STATE_DIR is not set: run the end-to-end tests with `cargo xtask test`")
    }));
    let d1 = state.join("v3/d1/miniflare-D1DatabaseObject");
    let mut files: Vec<_> = std::fs::read_dir(&d1)
        .unwrap_or_else(|e| panic!("{}: {e}", d1.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "sqlite")
                && p.file_stem().is_some_and(|s| s != "metadata")
        })
        .collect();
    files.sort();
    files
}

fn connect(file: &std::path::Path, flags: rusqlite::OpenFlags) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open_with_flags(file, flags).expect("the local D1 file opens");
    conn.busy_timeout(Duration::from_secs(10))
        .expect("a busy timeout");
    conn
}

/// Opens the file of `project`'s shard. Every database has a `projects` table: the
/// control database holds every project, a data shard the projects placed on it (their
/// ids there). So the project's shard is the one file besides the control database that
/// names it, or the control database itself (shard 0) when no other does; the control
/// database is the one that holds keys.
fn open_d1<T>(
    project: &str,
    flags: rusqlite::OpenFlags,
    f: impl FnOnce(&rusqlite::Connection) -> T,
) -> T {
    let count = |conn: &rusqlite::Connection, sql: &str, param: &str| -> i64 {
        conn.query_row(sql, [param], |r| r.get(0)).unwrap_or(0)
    };
    let mut control = None;
    let mut shard = None;
    for file in d1_files() {
        let conn = connect(&file, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY);
        let names = count(
            &conn,
            "SELECT count(*) FROM projects WHERE slug = ?1",
            project,
        );
        let keys = count(
            &conn,
            "SELECT count(*) FROM api_keys WHERE ?1 = ?1",
            project,
        );
        if keys > 0 {
            control = Some(file);
        } else if names > 0 {
            assert!(shard.is_none(), "{project} is named on two shards");
            shard = Some(file);
        }
    }
    let file = shard
        .or(control)
        .unwrap_or_else(|| panic!("no local D1 file holds {project}"));
    f(&connect(&file, flags))
}
