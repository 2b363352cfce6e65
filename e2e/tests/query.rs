//! The read API over a known workload: every endpoint's numbers equal values computed
//! here from the events sent (counts exact, percentiles within 1%, small unique counts
//! exact), before and after the day rows are rolled; auth, isolation between projects,
//! cache headers, ETags and the KV cache.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// The RFC 3339 form the API gives a bucket start.
fn stamp(ms: i64) -> String {
    let within = ms.rem_euclid(DAY);
    format!(
        "{}T{:02}:{:02}:00.000Z",
        date(ms),
        within / HOUR,
        within % HOUR / MINUTE
    )
}

/// The start of the ISO week (Monday) holding `ms`; 1970-01-01 was a Thursday.
fn monday(ms: i64) -> i64 {
    let days = ms.div_euclid(DAY);
    (days - (days + 3).rem_euclid(7)) * DAY
}

/// The workload, over the three whole UTC days before today (`d0` is the first):
/// 240 requests with routes of distinct popularity, errors of two classes (one without
/// a route), 404s and unclassified 503s; a marketing funnel; play/stop sessions. Every
/// event names its colo and country (else ingest fills in the local stack's own).
fn workload(run: u32, d0: i64) -> Vec<Value> {
    let mut events = Vec::new();
    for i in 0..240u32 {
        let at = d0
            + i64::from(i % 3) * DAY
            + i64::from(i / 3 % 24) * HOUR
            + i64::from(i * 7 % 60) * MINUTE;
        let route = match i % 15 {
            0..=4 => "/posts/:id",
            5..=8 => "/users",
            9..=11 => "/search",
            12 | 13 => "/feed",
            _ => "/admin",
        };
        let version = ["1.0", "1.1", "2.0"][(i / 2 % 3) as usize];
        let colo = ["FRA", "IAD", "SIN"][(i % 5 % 3) as usize];
        let country = ["DE", "US"][(i % 2) as usize];
        let mut e = json!({
            "event_id": event_id(run, i), "name": "request", "timestamp": at,
            "method": "GET", "route": route, "status": 200,
            "duration_ms": f64::from(i % 100 + 1),
            "user": format!("u{}", i % 12), "instance": format!("site-{}", i % 8),
            "version": version, "colo": colo, "country": country,
            "bytes": 100 * (i % 7),
        });
        if i % 10 == 0 {
            let class = if i / 10 % 3 == 0 {
                "Timeout"
            } else {
                "TypeError"
            };
            e["status"] = json!(500);
            e["error_class"] = json!(class);
            e["error_message"] = json!(format!("{class} at request {i}"));
        } else if i % 10 == 5 {
            e["status"] = json!(404);
        } else if i % 30 == 7 {
            e["status"] = json!(503);
        }
        if i == 100 {
            e.as_object_mut().unwrap().remove("route");
        }
        events.push(e);
    }
    // The funnel: ten users open; six click after opening (m6 clicks before, only);
    // three buy within the hour, m3 a day and an hour after opening.
    let mut n = 1000;
    let mut add = |name: &str, user: usize, at: i64| {
        n += 1;
        let source = if user < 7 { "newsletter" } else { "twitter" };
        let medium = if user < 7 { "email" } else { "social" };
        events.push(json!({
            "event_id": event_id(run, n), "name": name, "timestamp": at,
            "user": format!("m{user}"), "source": source, "medium": medium,
            "campaign": "spring", "colo": "AMS", "country": "NL",
        }));
    };
    for user in 0..10 {
        let opened = d0 + DAY + 10 * HOUR + user as i64 * MINUTE;
        add("open", user, opened);
        if user < 6 {
            add("click", user, opened + 10 * MINUTE);
        }
        if user == 6 {
            add("click", user, opened - 5 * MINUTE);
        }
        if user < 3 {
            add("purchase", user, opened + 20 * MINUTE);
        }
        if user == 3 {
            add("purchase", user, opened + DAY + HOUR);
        }
    }
    // Sessions: two closed on the second day, one on the third, one never stopped.
    for (k, (start, length)) in [
        (d0 + DAY + 12 * HOUR, Some(300_000)),
        (d0 + DAY + 13 * HOUR, Some(600_000)),
        (d0 + 2 * DAY + HOUR, Some(120_000)),
        (d0 + 2 * DAY + 2 * HOUR, None),
    ]
    .into_iter()
    .enumerate()
    {
        n += 1;
        events.push(json!({"event_id": event_id(run, n), "name": "play",
            "timestamp": start, "user": format!("s{k}"), "colo": "AMS", "country": "NL"}));
        if let Some(length) = length {
            n += 1;
            events.push(json!({"event_id": event_id(run, n), "name": "stop",
                "timestamp": start + length, "user": format!("s{k}"), "colo": "AMS",
                "country": "NL"}));
        }
    }
    events
}

fn text<'a>(e: &'a Value, field: &str) -> Option<&'a str> {
    e[field].as_str()
}

fn is_error(e: &Value) -> bool {
    e["status"].as_u64().is_some_and(|s| s >= 500) || e["error_class"].is_string()
}

/// The measures the API gives for a set of events, computed directly.
#[derive(Debug, Default)]
struct Expected {
    events: u64,
    errors: u64,
    bytes: u64,
    durations: Vec<f64>,
    users: BTreeSet<String>,
    instances: BTreeSet<String>,
}

impl Expected {
    fn of<'a>(events: impl IntoIterator<Item = &'a Value>) -> Self {
        let mut x = Self::default();
        for e in events {
            x.events += 1;
            x.errors += u64::from(is_error(e));
            x.bytes += e["bytes"].as_u64().unwrap_or(0);
            x.durations.extend(e["duration_ms"].as_f64());
            x.users.extend(text(e, "user").map(str::to_owned));
            x.instances.extend(text(e, "instance").map(str::to_owned));
        }
        x.durations.sort_by(f64::total_cmp);
        x
    }

    fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.durations.len();
        (n > 0).then(|| self.durations[(q * (n - 1) as f64).floor() as usize])
    }

    /// Checks an answer's measures (breakdown entries and time-series points).
    fn check(&self, got: &Value, what: &str) {
        assert_eq!(got["events"], self.events, "{what} events: {got}");
        assert_eq!(got["errors"], self.errors, "{what} errors: {got}");
        assert_eq!(got["bytes"], self.bytes, "{what} bytes: {got}");
        let rate = if self.events == 0 {
            0.0
        } else {
            self.errors as f64 / self.events as f64
        };
        assert_close(&got["error_rate"], rate, 1e-9, what);
        for (q, name) in [(0.5, "p50"), (0.95, "p95"), (0.99, "p99")] {
            match self.quantile(q) {
                Some(want) => assert_close(&got[name], want, 0.01, what),
                None => assert_eq!(got[name], Value::Null, "{what} {name}: {got}"),
            }
        }
        assert_eq!(got["unique_users"], self.users.len(), "{what}: {got}");
        assert_eq!(
            got["unique_instances"],
            self.instances.len(),
            "{what}: {got}"
        );
    }
}

fn assert_close(got: &Value, want: f64, relative: f64, what: &str) {
    let value = got
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: {got} is not a number"));
    assert!(
        (value - want).abs() <= relative * want.abs() + 1e-12,
        "{what}: {value} is not within {relative} of {want}"
    );
}

/// `GET` a read endpoint of `project` with a read token (`None`: no token).
fn read(project: &str, token: Option<&str>, path: &str) -> Answer {
    read_with(project, token, path, &[])
}

fn read_with(project: &str, token: Option<&str>, path: &str, extra: &[(&str, &str)]) -> Answer {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers: Vec<(&str, &str)> = extra.to_vec();
    if let Some(auth) = &auth {
        headers.push(("authorization", auth));
    }
    request(
        "GET",
        &format!("{}/v1/projects/{project}/{path}", url("query")),
        &headers,
        None,
    )
}

fn ok(answer: Answer, what: &str) -> Value {
    assert_eq!(answer.status, 200, "{what}: {}", answer.json);
    answer.json
}

/// Sends a project's events and waits until they are all counted.
fn seed(p: &Project, events: &[Value]) {
    let sent = send_events(p, &Value::Array(events.to_vec()));
    assert_eq!(sent.status, 202, "{}", sent.json);
    assert_eq!(sent.json["accepted"], events.len(), "{}", sent.json);
    wait_for_count(p, events.len() as u64);
}

#[test]
fn the_read_api_answers_exactly_over_a_known_workload() {
    let now = now_ms();
    let d0 = (now.div_euclid(DAY) - 3) * DAY;
    let d3 = d0 + 3 * DAY;
    let p = Project::new("qapi");
    let run = run_id();
    let events = workload(run, d0);
    seed(&p, &events);
    let token = Some(p.read_token.as_str());
    let range = format!("from={}&to={}", date(d0), date(d0 + 2 * DAY));

    let rolled_up = |label: &str| -> BTreeMap<&'static str, Value> {
        let mut answers = BTreeMap::new();
        for (key, path) in [
            ("day", format!("timeseries?{range}&interval=day")),
            ("week", format!("timeseries?{range}&interval=week")),
            ("route", format!("breakdown/route?{range}&limit=3")),
            ("source", format!("breakdown/source?{range}")),
            ("errors", format!("errors?{range}")),
            ("installs", format!("installs?{range}")),
            ("metrics", format!("metrics?{range}")),
        ] {
            answers.insert(
                key,
                ok(read(&p.slug, token, &path), &format!("{label} {path}")),
            );
        }
        answers
    };
    let before = rolled_up("hours");
    check_rollup_answers(&before, &events, d0);

    // Roll the day rows: the same questions now read day rows and must answer the same,
    // byte for byte (sketches and HyperLogLogs merge exactly).
    wait_days_rolled(&p.slug, 3);
    let after = rolled_up("days");
    for (key, answer) in &before {
        assert_eq!(&after[key], answer, "{key} differs once days are rolled");
    }

    check_hourly_and_monthly(&p, &events, d0);
    check_raw_endpoints(&p, &events, d0, d3, &range);
}

fn check_rollup_answers(answers: &BTreeMap<&str, Value>, events: &[Value], d0: i64) {
    let day_of = |e: &Value| e["timestamp"].as_i64().unwrap().div_euclid(DAY) * DAY;
    let total = Expected::of(events);

    // Time series by day: three buckets, each exact.
    let series = &answers["day"];
    assert_eq!(series["interval"], "day");
    assert_eq!(series["from"], stamp(d0));
    assert_eq!(series["to"], stamp(d0 + 3 * DAY));
    let data = series["data"].as_array().unwrap();
    assert_eq!(data.len(), 3, "{series}");
    for (k, point) in data.iter().enumerate() {
        let start = d0 + k as i64 * DAY;
        assert_eq!(point["start"], stamp(start));
        Expected::of(events.iter().filter(|e| day_of(e) == start)).check(point, &stamp(start));
    }
    // By ISO week: the weeks the three days fall in, each bucket exact.
    let weeks: BTreeSet<i64> = (0..3).map(|k| monday(d0 + k * DAY)).collect();
    let data = answers["week"]["data"].as_array().unwrap();
    assert_eq!(data.len(), weeks.len());
    for (point, week) in data.iter().zip(&weeks) {
        assert_eq!(point["start"], stamp(*week));
        let of_week = events.iter().filter(|e| monday(day_of(e)) == *week);
        Expected::of(of_week).check(point, "week");
    }

    // Routes: the top three, the other two merged, and the events without a route.
    let routes = &answers["route"];
    assert_eq!(routes["events"], total.events);
    let values = routes["values"].as_array().unwrap();
    let names: Vec<&str> = values
        .iter()
        .map(|v| v["value"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["/posts/:id", "/users", "/search"], "{routes}");
    for v in values {
        let route = v["value"].as_str();
        let expected = Expected::of(events.iter().filter(|e| text(e, "route") == route));
        expected.check(v, route.unwrap());
        assert_close(
            &v["share"],
            expected.events as f64 / total.events as f64,
            1e-9,
            "share",
        );
    }
    let rest = |e: &&Value| matches!(text(e, "route"), Some("/feed" | "/admin"));
    let other = &routes["other"];
    assert_eq!(other["values"], 2, "{other}");
    Expected::of(events.iter().filter(rest)).check(other, "other routes");
    let without = events.iter().filter(|e| text(e, "route").is_none()).count();
    assert_eq!(routes["without_value"], without);
    assert_eq!(
        without,
        1 + 21 + 7,
        "the routeless error, the funnel and the sessions"
    );

    // Sources: every value, no other.
    let sources = &answers["source"];
    assert_eq!(sources["other"], Value::Null);
    let values = sources["values"].as_array().unwrap();
    assert_eq!(values.len(), 2);
    for v in values {
        let source = v["value"].as_str();
        Expected::of(events.iter().filter(|e| text(e, "source") == source)).check(v, "source");
    }
    assert_eq!(values[0]["value"], "newsletter");
    assert_eq!(values[0]["events"], 7 + 7 + 4);

    // Errors by class.
    let errors = &answers["errors"];
    assert_eq!(errors["errors"], total.errors, "{errors}");
    let unclassified = events
        .iter()
        .filter(|e| is_error(e) && !e["error_class"].is_string())
        .count();
    assert_eq!(errors["unclassified"], unclassified);
    assert_eq!(unclassified, 8);
    let classes = errors["classes"].as_array().unwrap();
    let class_names: Vec<&str> = classes
        .iter()
        .map(|c| c["error_class"].as_str().unwrap())
        .collect();
    assert_eq!(class_names, ["TypeError", "Timeout"]);
    for c in classes {
        let class = c["error_class"].as_str();
        let of: Vec<&Value> = events
            .iter()
            .filter(|e| text(e, "error_class") == class)
            .collect();
        assert_eq!(c["count"], of.len());
        assert_close(
            &c["share"],
            of.len() as f64 / total.errors as f64,
            1e-9,
            "share",
        );
        let hours: Vec<i64> = of
            .iter()
            .map(|e| e["timestamp"].as_i64().unwrap().div_euclid(HOUR) * HOUR)
            .collect();
        assert_eq!(c["first_seen"], stamp(*hours.iter().min().unwrap()));
        assert_eq!(c["last_seen"], stamp(*hours.iter().max().unwrap()));
        let last = of
            .iter()
            .max_by_key(|e| e["timestamp"].as_i64().unwrap())
            .unwrap();
        assert_eq!(c["last_message"]["message"], last["error_message"], "{c}");
        let mut routes: BTreeMap<Option<&str>, u64> = BTreeMap::new();
        for e in &of {
            *routes.entry(text(e, "route")).or_default() += 1;
        }
        let got: BTreeMap<Option<&str>, u64> = c["routes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["route"].as_str(), r["count"].as_u64().unwrap()))
            .collect();
        assert_eq!(got, routes, "{c}");
        assert_eq!(c["other_routes"], 0);
    }
    let type_errors = &classes[0]["routes"];
    assert!(
        type_errors
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["route"].is_null()),
        "the error without a route: {type_errors}"
    );

    // Installs: distinct instances per day and over the range, versions and colos.
    let installs = &answers["installs"];
    assert_eq!(installs["instances"], total.instances.len());
    assert_eq!(total.instances.len(), 8);
    for (k, point) in installs["active"].as_array().unwrap().iter().enumerate() {
        let start = d0 + k as i64 * DAY;
        let expected = Expected::of(events.iter().filter(|e| day_of(e) == start));
        assert_eq!(point["instances"], expected.instances.len(), "{point}");
    }
    for (list, field, n) in [("versions", "version", 3), ("colos", "colo", 4)] {
        let entries = installs[list].as_array().unwrap();
        assert_eq!(entries.len(), n, "{installs}");
        for entry in entries {
            let value = entry[field].as_str();
            let expected = Expected::of(events.iter().filter(|e| text(e, field) == value));
            assert_eq!(entry["instances"], expected.instances.len(), "{entry}");
            assert_eq!(entry["events"], expected.events, "{entry}");
        }
    }

    // Metrics: counts per name per day, every name in every day.
    let metrics = &answers["metrics"];
    let names: BTreeSet<&str> = events.iter().filter_map(|e| text(e, "name")).collect();
    let listed: BTreeSet<&str> = metrics["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert_eq!(listed, names);
    for (k, point) in metrics["data"].as_array().unwrap().iter().enumerate() {
        let start = d0 + k as i64 * DAY;
        for name in &names {
            let n = events
                .iter()
                .filter(|e| day_of(e) == start && text(e, "name") == Some(name))
                .count();
            assert_eq!(point["counts"][name], n, "{name} on day {k}: {point}");
        }
    }
    assert_eq!(metrics["totals"]["request"], 240);
    assert_eq!(metrics["totals"]["purchase"], 4);
}

fn check_hourly_and_monthly(p: &Project, events: &[Value], d0: i64) {
    let token = Some(p.read_token.as_str());
    // The first day by the hour, with the empty day before it: 48 buckets.
    let day = d0;
    let path = format!(
        "timeseries?from={}&to={}&interval=hour&metric=events,p95,unique_users",
        date(day - DAY),
        date(day)
    );
    let series = ok(read(&p.slug, token, &path), &path);
    assert_eq!(series["metrics"], json!(["events", "p95", "unique_users"]));
    let data = series["data"].as_array().unwrap();
    assert_eq!(data.len(), 48);
    for (k, point) in data.iter().enumerate() {
        let start = day - DAY + k as i64 * HOUR;
        assert_eq!(point["start"], stamp(start));
        let of = Expected::of(events.iter().filter(|e| {
            let t = e["timestamp"].as_i64().unwrap();
            (start..start + HOUR).contains(&t)
        }));
        assert_eq!(point["events"], of.events, "{point}");
        assert_eq!(point["unique_users"], of.users.len(), "{point}");
        match of.quantile(0.95) {
            Some(want) => assert_close(&point["p95"], want, 0.01, "hourly p95"),
            None => assert_eq!(point["p95"], Value::Null),
        }
        assert_eq!(
            point.as_object().unwrap().len(),
            4,
            "only the metrics asked for"
        );
    }
    let empty = data[..24].iter().filter(|p| p["events"] == 0).count();
    assert_eq!(empty, 24, "the day before is zero-filled");
    // By month, requests as the plugin seed names them.
    let path = format!(
        "timeseries?from={}&to={}&interval=month&metric=requests",
        date(d0),
        date(d0 + 2 * DAY)
    );
    let months = ok(read(&p.slug, token, &path), &path);
    let total: u64 = months["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(total, events.len() as u64);
}

fn check_raw_endpoints(p: &Project, events: &[Value], d0: i64, d3: i64, range: &str) {
    let token = Some(p.read_token.as_str());

    // Sessions per day.
    let sessions = ok(
        read(&p.slug, token, &format!("sessions?{range}")),
        "sessions",
    );
    let data = sessions["data"].as_array().unwrap();
    let got: Vec<(u64, i64, Option<f64>)> = data
        .iter()
        .map(|d| {
            (
                d["sessions"].as_u64().unwrap(),
                d["total_duration_ms"].as_i64().unwrap(),
                d["average_duration_ms"].as_f64(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (0, 0, None),
            (2, 900_000, Some(450_000.0)),
            (1, 120_000, Some(120_000.0))
        ],
        "{sessions}"
    );
    assert_eq!(sessions["totals"]["sessions"], 3);
    assert_eq!(sessions["from"], stamp(d0));

    // Funnels: within a day m3's purchase is too late; within two days it counts.
    for (window, expected) in [("1d", [10, 6, 3]), ("2d", [10, 6, 4])] {
        let path = format!("funnels?{range}&steps=open,click,purchase&window={window}");
        let funnel = ok(read(&p.slug, token, &path), &path);
        let steps = funnel["steps"].as_array().unwrap();
        let users: Vec<u64> = steps.iter().map(|s| s["users"].as_u64().unwrap()).collect();
        assert_eq!(users, expected, "{funnel}");
        assert_close(
            &steps[2]["conversion"],
            expected[2] as f64 / 10.0,
            1e-9,
            "conversion",
        );
        assert_close(
            &steps[1]["from_previous"],
            0.6,
            1e-9,
            "conversion from the step before",
        );
    }

    // Export: every event once, identifiers hashed, in NDJSON and CSV.
    let sent: BTreeSet<String> = events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_owned())
        .collect();
    let ndjson = read(&p.slug, token, &format!("export?{range}"));
    assert_eq!(ndjson.status, 200, "{}", ndjson.json);
    assert_eq!(ndjson.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(ndjson.header("x-tally-from"), Some(stamp(d0).as_str()));
    assert_eq!(ndjson.header("x-tally-to"), Some(stamp(d3).as_str()));
    let body = ndjson.json.as_str().expect("NDJSON is not one JSON value");
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: BTreeSet<String> = lines
        .iter()
        .map(|l| l["event_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(lines.len(), events.len());
    assert_eq!(ids, sent);
    let first = lines.iter().find(|l| l["name"] == "request").unwrap();
    let user = first["user"].as_str().unwrap();
    assert!(
        user.len() == 16 && user.bytes().all(|b| b.is_ascii_hexdigit()),
        "a hash, not the raw id: {user}"
    );
    for raw in ["\"u1\"", "site-3", "\"m4\""] {
        assert!(!body.contains(raw), "a raw identifier {raw} was exported");
    }
    let errors_out = lines
        .iter()
        .filter(|l| l["error_class"].is_string())
        .count();
    assert_eq!(errors_out, 24);

    let csv = read(&p.slug, token, &format!("export?{range}&format=csv"));
    assert_eq!(csv.status, 200);
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    let body = csv.json.as_str().unwrap();
    let mut rows = body.lines();
    assert!(rows.next().unwrap().starts_with("event_id,timestamp,name,"));
    assert_eq!(
        rows.count(),
        events.len(),
        "one row per event (no field has a line break)"
    );
}

#[test]
fn reads_need_a_token_of_the_project_and_stay_within_it() {
    let now = now_ms();
    let d0 = (now.div_euclid(DAY) - 3) * DAY;
    let (a, b) = (Project::new("qauth-a"), Project::new("qauth-b"));
    let run = run_id();
    let only = |route: &str, n: u32, ms: f64| -> Vec<Value> {
        (0..n)
            .map(|i| {
                json!({"event_id": event_id(run, i), "name": "request", "route": route,
                    "timestamp": d0 + DAY + i64::from(i) * MINUTE, "duration_ms": ms,
                    "user": "same-user"})
            })
            .collect()
    };
    // The same event ids in both projects: different events.
    seed(&a, &only("/a-only", 6, 10.0));
    seed(&b, &only("/b-only", 4, 500.0));

    let paths = [
        "overview",
        "timeseries",
        "breakdown/route",
        "errors",
        "installs",
        "metrics",
        "sessions",
        "funnels?steps=a,b",
        "export",
    ];
    for path in paths {
        let none = read(&a.slug, None, path);
        assert_eq!(none.status, 401, "{path}: {}", none.json);
        assert_eq!(none.json["error"]["code"], "missing_token");
        let other = read(&a.slug, Some(&b.read_token), path);
        assert_eq!(other.status, 403, "{path}: {}", other.json);
        assert_eq!(other.json["error"]["code"], "wrong_project");
        let write = read(&a.slug, Some(&a.write_key), path);
        assert_eq!(write.status, 401, "{path}: {}", write.json);
    }

    let routes = |p: &Project| {
        let answer = ok(
            read(&p.slug, Some(&p.read_token), "breakdown/route?days=7"),
            "routes",
        );
        breakdown_events(&answer)
    };
    assert_eq!(routes(&a), BTreeMap::from([("/a-only".to_owned(), 6)]));
    assert_eq!(routes(&b), BTreeMap::from([("/b-only".to_owned(), 4)]));

    // The KV cache: a long range is kept per project and query, never crossing over.
    let long = "timeseries?days=10&metric=events,p50";
    let series = |p: &Project| read(&p.slug, Some(&p.read_token), long);
    let first = series(&a);
    assert_eq!(first.status, 200, "{}", first.json);
    assert_eq!(first.header("x-tally-cache"), Some("miss"));
    let hit = eventually(
        "a repeated long query is answered from KV",
        Duration::from_secs(10),
        || {
            let again = series(&a);
            match again.header("x-tally-cache") {
                Some("hit") => Ok(again),
                other => Err(format!("{other:?}")),
            }
        },
    );
    assert_eq!(hit.json, first.json);
    let sum = |a: &Answer| -> u64 {
        a.json["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["events"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(sum(&hit), 6);
    let other = series(&b);
    assert_eq!(other.header("x-tally-cache"), Some("miss"), "B's first ask");
    assert_eq!(sum(&other), 4, "B's events, not A's cached ones");
    let day = other.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["events"] == 4)
        .expect("B's day");
    assert_close(&day["p50"], 500.0, 0.01, "B's p50");
    assert_eq!(
        series(&a).header("x-tally-cache"),
        Some("hit"),
        "A's entry stays A's"
    );
    let short = ok(
        read(&a.slug, Some(&a.read_token), "timeseries?days=2"),
        "short",
    );
    assert_eq!(short["data"].as_array().unwrap().len(), 2);
}

/// The rows D1 read for an answer, from its `x-tally-rows-read` header.
fn rows_read(answer: &Answer, what: &str) -> u64 {
    let header = answer
        .header("x-tally-rows-read")
        .unwrap_or_else(|| panic!("{what}: no x-tally-rows-read header"));
    header
        .parse()
        .unwrap_or_else(|_| panic!("{what}: x-tally-rows-read is {header:?}"))
}

#[test]
fn answers_say_how_many_rows_d1_read() {
    let p = Project::new("qrows");
    let run = run_id();
    seed(
        &p,
        &[json!({"event_id": event_id(run, 1), "name": "request", "duration_ms": 5.0})],
    );
    let token = Some(p.read_token.as_str());
    for path in [
        "overview",
        "timeseries?days=30",
        "breakdown/name?days=30",
        "errors",
        "installs",
        "metrics",
        "sessions",
        "funnels?steps=request,request",
        "export",
    ] {
        let answer = read(&p.slug, token, path);
        assert_eq!(answer.status, 200, "{path}: {}", answer.json);
        assert!(rows_read(&answer, path) > 0, "{path}: {:?}", answer.headers);
    }
    // The header counts the whole request: a KV hit still looks the token up.
    let hit = eventually(
        "a repeated long query is answered from KV",
        Duration::from_secs(10),
        || {
            let again = read(&p.slug, token, "timeseries?days=30");
            match again.header("x-tally-cache") {
                Some("hit") => Ok(again),
                other => Err(format!("{other:?}")),
            }
        },
    );
    assert!(rows_read(&hit, "a KV hit") > 0);
    // An answer that touches no D1 says so.
    let spec = get(&format!("{}/openapi.json", url("query")));
    assert_eq!(rows_read(&spec, "openapi.json"), 0);
}

#[test]
fn answers_carry_cache_headers_and_etags() {
    let p = Project::new("qcache");
    let run = run_id();
    seed(
        &p,
        &[json!({"event_id": event_id(run, 1), "name": "request", "duration_ms": 5.0})],
    );
    let token = Some(p.read_token.as_str());
    for (path, max_age) in [
        ("overview", 60),
        ("timeseries?days=2", 300),
        ("breakdown/name?days=2", 300),
        ("errors", 60),
        ("installs", 300),
        ("metrics", 300),
        ("sessions", 300),
        ("funnels?steps=request,request", 300),
    ] {
        let first = read(&p.slug, token, path);
        assert_eq!(first.status, 200, "{path}: {}", first.json);
        let control = format!("private, max-age={max_age}");
        assert_eq!(
            first.header("cache-control"),
            Some(control.as_str()),
            "{path}"
        );
        let etag = first.header("etag").expect("an ETag").to_owned();
        assert!(
            etag.starts_with('"') && !etag.starts_with("W/"),
            "strong: {etag}"
        );
        let again = read_with(&p.slug, token, path, &[("if-none-match", &etag)]);
        assert_eq!(again.status, 304, "{path}");
        assert_eq!(again.json, Value::String(String::new()), "no body");
        assert_eq!(again.header("etag"), Some(etag.as_str()));
        let stale = read_with(&p.slug, token, path, &[("if-none-match", "\"other\"")]);
        assert_eq!(stale.status, 200, "{path}");
        assert_eq!(stale.json, first.json);
    }
    let export = read(&p.slug, token, "export");
    assert_eq!(export.header("cache-control"), Some("private, no-store"));

    // Bad parameters are 400s that say what to fix.
    for (path, code) in [
        ("timeseries?days=0", "invalid_range"),
        ("timeseries?from=2025-13-01", "invalid_range"),
        ("timeseries?from=2025-01-10&days=3", "invalid_range"),
        ("overview?from=2025-02-01&to=2025-01-01", "invalid_range"),
        ("sessions?from=2020-01-01&to=2020-02-01", "invalid_range"),
        ("timeseries?interval=fortnight", "invalid_interval"),
        ("timeseries?days=60&interval=hour", "invalid_interval"),
        ("timeseries?metric=latency", "invalid_metric"),
        ("breakdown/route?limit=0", "invalid_limit"),
        ("funnels?steps=open", "invalid_steps"),
        ("funnels?steps=open,buy&window=1w", "invalid_window"),
        ("export?format=xml", "invalid_format"),
    ] {
        let answer = read(&p.slug, token, path);
        assert_eq!(answer.status, 400, "{path}: {}", answer.json);
        assert_eq!(
            answer.json["error"]["code"], code,
            "{path}: {}",
            answer.json
        );
        let message = answer.json["error"]["message"].as_str().unwrap();
        assert!(message.len() > 15, "{path}: {message}");
    }
    let unknown = read(&p.slug, token, "breakdown/colour");
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json["error"]["code"], "unknown_dimension");
    let no_dimension = read(&p.slug, token, "breakdown");
    assert_eq!(no_dimension.status, 404, "{}", no_dimension.json);
    let auth = p.read_auth();
    for path in ["timeseries", "breakdown/route", "export"] {
        let url = format!("{}/v1/projects/{}/{path}", url("query"), p.slug);
        let post = request("POST", &url, &[("authorization", &auth)], Some("{}"));
        assert_eq!(post.status, 405, "{path}: {}", post.json);
        assert_eq!(post.json["error"]["code"], "method_not_allowed");
        assert_eq!(post.header("allow"), Some("GET, OPTIONS"), "{path}");
    }
}

/// Sessions of days that are over are paired once by the cron into stored day rows,
/// through real D1's number binding, and read back equal to pairing them live, from
/// far fewer rows.
#[test]
fn sessions_of_past_days_are_paired_once_and_read_back_the_same() {
    let p = Project::new("qsessdays");
    let run = run_id();
    let d0 = (now_ms().div_euclid(DAY) - 6) * DAY;
    let mut events = Vec::new();
    let mut expected: BTreeMap<i64, (u64, i64)> = BTreeMap::new();
    // Each closed session's start and length.
    let mut closed: Vec<(i64, i64)> = Vec::new();
    let mut mark = |name: &str, user: u32, t: i64| {
        let i = events.len() as u32;
        events.push(json!({"event_id": event_id(run, i), "name": name,
            "user": format!("listener-{user}"), "timestamp": t}));
    };
    // 40 listeners, two sessions a day each over three days, of 1 to 80 minutes.
    for day in 0..3 {
        for user in 0..40 {
            for k in 0..2 {
                let start = d0 + day * DAY + i64::from(user) * 11 * MINUTE + k * 10 * HOUR;
                let length = (i64::from(user) * 7 + k * 13 + day) % 80 * MINUTE + MINUTE;
                mark("play", user, start);
                mark("stop", user, start + length);
                let sum = expected.entry(d0 + day * DAY).or_default();
                *sum = (sum.0 + 1, sum.1 + length);
                closed.push((start, length));
            }
        }
    }
    // A start closed more than a day later counts as never stopped.
    mark("play", 99, d0 + HOUR);
    mark("stop", 99, d0 + DAY + 2 * HOUR);
    seed(&p, &events);

    let token = Some(p.read_token.as_str());
    let path = format!("sessions?from={}&to={}", date(d0), date(d0 + 2 * DAY));
    let live = read(&p.slug, token, &path);
    let live_rows = rows_read(&live, "sessions paired live");
    let live = ok(live, &path);
    // An answer's sessions and total duration per day, its days from `d0` on.
    let by_day = |answer: &Value| -> BTreeMap<i64, (u64, i64)> {
        answer["data"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let sessions = d["sessions"].as_u64().unwrap();
                (
                    d0 + i as i64 * DAY,
                    (sessions, d["total_duration_ms"].as_i64().unwrap()),
                )
            })
            .collect()
    };
    assert_eq!(by_day(&live), expected, "{live}");

    let stored_days = || {
        with_d1(&p.slug, |c| {
            c.query_row(
                "SELECT count(*), coalesce(sum(sessions), 0), coalesce(sum(total_ms), 0)
                 FROM session_days
                 WHERE project_id = (SELECT id FROM projects WHERE slug = ?1)
                   AND day >= ?2 AND day < ?3",
                rusqlite::params![p.slug, d0, d0 + 3 * DAY],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                },
            )
            .unwrap()
        })
    };
    let (days, sessions, total_ms) = after_cron(
        "* * * * *",
        "the project's three session days are paired and stored",
        Duration::from_secs(90),
        || match stored_days() {
            (3, sessions, total) => Ok((3, sessions, total)),
            other => Err(format!("{other:?}")),
        },
    );
    assert_eq!(days, 3);
    assert_eq!(sessions as u64, expected.values().map(|e| e.0).sum::<u64>());
    assert_eq!(total_ms, expected.values().map(|e| e.1).sum::<i64>());

    let stored = read(&p.slug, token, &path);
    let stored_rows = rows_read(&stored, "sessions from stored days");
    assert_eq!(
        ok(stored, &path),
        live,
        "stored days answer as pairing live did"
    );
    assert!(
        stored_rows * 4 < live_rows,
        "stored days read {stored_rows} rows, pairing live read {live_rows}"
    );

    // A range that starts and ends within days, on whole hours: its partial days are
    // added up from the stored days' hours, not paired from their marks.
    let (from, to) = (d0 + 6 * HOUR, d0 + DAY + 20 * HOUR);
    let rfc3339 = |ms: i64| format!("{}T{:02}:00:00Z", date(ms), ms.rem_euclid(DAY) / HOUR);
    let path = format!("sessions?from={}&to={}", rfc3339(from), rfc3339(to));
    let partial = read(&p.slug, token, &path);
    let partial_rows = rows_read(&partial, "sessions of partial days");
    let partial = ok(partial, &path);
    let mut want: BTreeMap<i64, (u64, i64)> = BTreeMap::new();
    for &(start, length) in closed
        .iter()
        .filter(|(start, _)| (from..to).contains(start))
    {
        let sum = want.entry(start.div_euclid(DAY) * DAY).or_default();
        *sum = (sum.0 + 1, sum.1 + length);
    }
    assert_eq!(by_day(&partial), want, "{partial}");
    assert!(
        partial_rows * 4 < live_rows,
        "partial days read {partial_rows} rows, pairing live read {live_rows}"
    );
}
