//! The seeds' own read paths on the query worker: each alias answers in its seed's shape
//! with the exact numbers of a workload sent through ingest, keeps its seed's errors,
//! and takes a read token.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

const HOUR: i64 = 3_600_000;
const MINUTE: i64 = 60_000;

/// `GET` a path of the query worker with an `Authorization` header (if any).
fn read(path: &str, auth: Option<&str>) -> Answer {
    let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
    request("GET", &format!("{}{path}", url("query")), &headers, None)
}

/// Sends events to ingest and checks that every one is accepted.
fn send(p: &Project, events: Vec<Value>) {
    let a = send_events(p, &Value::Array(events));
    assert_eq!(a.status, 202, "{}", a.json);
    assert_eq!(a.json["rejected"], 0, "{}", a.json);
}

fn assert_error(a: &Answer, status: u16, code: &str) {
    assert_eq!(a.status, status, "{}", a.json);
    assert_eq!(a.json["error"]["code"], code, "{}", a.json);
}

/// The value at rank ⌊q·(n − 1)⌋ of sorted values, as Tally's sketch defines a quantile.
fn order_statistic(sorted: &[f64], q: f64) -> f64 {
    sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
}

fn assert_near(got: &Value, exact: f64, what: &str) {
    let got = got
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: {got} is no number"));
    assert!(
        (got - exact).abs() <= exact * 0.01 + 1e-9,
        "{what}: {got} not within 1% of {exact}"
    );
}

#[test]
fn plugin_aliases_answer_in_the_seed_shape_with_exact_numbers() {
    let p = Project::new("alias-plugin");
    let other = Project::new("alias-plugin-other");
    let run = run_id();
    let hour = now_ms() / HOUR * HOUR;
    let (h1, h2) = (hour - 30 * HOUR, hour - 5 * HOUR);
    // Hour h1: 10 requests, 2 of them 500s, 3 instances, 10..=100 ms, routes /a and /b.
    // Hour h2: 20 requests, one error by class, 5 instances, 1..=20 ms, routes /a and /c.
    let mut events = Vec::new();
    let mut durations = Vec::new();
    for i in 0..10 {
        let d = f64::from((i + 1) * 10);
        durations.push(d);
        events.push(json!({
            "event_id": event_id(run, i), "name": "request", "method": "GET",
            "timestamp": h1 + i64::from(i) * MINUTE,
            "route": if i < 6 { "/a" } else { "/b" },
            "status": if i < 2 { 500 } else { 200 },
            "duration_ms": d, "instance": format!("site-{}", i % 3),
        }));
    }
    for i in 0..20 {
        let d = f64::from(i + 1);
        durations.push(d);
        let mut e = json!({
            "event_id": event_id(run, 100 + i), "name": "request", "method": "POST",
            "timestamp": h2 + i64::from(i) * MINUTE,
            "route": if i < 5 { "/a" } else { "/c" }, "status": 200,
            "duration_ms": d, "instance": format!("site-{}", i % 5),
        });
        if i == 0 {
            e["error_class"] = json!("TypeError");
        }
        events.push(e);
    }
    send(&p, events);
    wait_for_count(&p, 30);
    durations.sort_by(f64::total_cmp);
    let auth = p.read_auth();
    let base = format!("/api/plugins/{}/analytics", p.slug);

    let o = read(&format!("{base}/overview?days=7"), Some(&auth));
    assert_eq!(o.status, 200, "{}", o.json);
    assert_eq!(o.header("cache-control"), Some("private, max-age=60"));
    let j = &o.json;
    assert_eq!(j["total_requests"], 30, "{j}");
    assert_eq!(j["total_errors"], 3, "{j}");
    let mean = durations.iter().sum::<f64>() / 30.0;
    assert!(
        (j["avg_latency"].as_f64().unwrap() - mean).abs() < 1e-9,
        "{j}"
    );
    assert_eq!(
        j["peak_instances"], 5,
        "the most instances in one hour: {j}"
    );
    assert_eq!(j["unique_instances"], 5, "{j}");
    assert!(
        (j["error_rate"].as_f64().unwrap() - 0.1).abs() < 1e-12,
        "{j}"
    );
    for (name, q) in [
        ("p50_latency", 0.5),
        ("p95_latency", 0.95),
        ("p99_latency", 0.99),
    ] {
        assert_near(&j[name], order_statistic(&durations, q), name);
    }
    assert_eq!(j["plugin"], p.slug.as_str());

    let t = read(&format!("{base}/timeseries?days=7"), Some(&auth));
    assert_eq!(t.status, 200, "{}", t.json);
    assert_eq!(t.header("cache-control"), Some("private, max-age=300"));
    let rows = t.json["timeseries"].as_array().unwrap();
    let pick = |row: &Value| {
        json!([
            row["hour"],
            row["request_count"],
            row["error_count"],
            row["avg_duration_ms"],
            row["unique_instances"]
        ])
    };
    assert_eq!(
        rows.iter().map(pick).collect::<Vec<_>>(),
        [json!([h1, 10, 2, 55.0, 3]), json!([h2, 20, 1, 10.5, 5])],
        "{}",
        t.json
    );
    assert_eq!(
        rows[1]["p50_duration_ms"].as_f64().map(f64::round),
        Some(10.0)
    );
    // Daily buckets hold the same requests, one row per day with any.
    let daily = read(
        &format!("{base}/timeseries?days=7&interval=day"),
        Some(&auth),
    );
    let mut per_day: BTreeMap<i64, u64> = BTreeMap::new();
    *per_day.entry(h1 / DAY * DAY).or_default() += 10;
    *per_day.entry(h2 / DAY * DAY).or_default() += 20;
    let got: Vec<(i64, u64)> = daily.json["timeseries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["hour"].as_i64().unwrap(),
                r["request_count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        per_day.into_iter().collect::<Vec<_>>(),
        "{}",
        daily.json
    );
    assert_error(
        &read(
            &format!("{base}/timeseries?interval=fortnight"),
            Some(&auth),
        ),
        400,
        "invalid_interval",
    );

    // Endpoints: the latest hours first; by default only the last 24 hours.
    let e = read(&format!("{base}/endpoints"), Some(&auth));
    assert_eq!(e.status, 200, "{}", e.json);
    assert_eq!(
        e.json["endpoints"],
        json!([{"hour": h2, "time": e.json["endpoints"][0]["time"],
                "endpoint_breakdown": {"/a": 5, "/c": 15}}]),
    );
    let e = read(&format!("{base}/endpoints?days=7"), Some(&auth));
    let breakdowns: Vec<(Value, Value)> = e.json["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["hour"].clone(), r["endpoint_breakdown"].clone()))
        .collect();
    assert_eq!(
        breakdowns,
        [
            (json!(h2), json!({"/a": 5, "/c": 15})),
            (json!(h1), json!({"/a": 6, "/b": 4}))
        ]
    );

    // A read token of this project, and no other.
    for path in ["overview", "timeseries", "endpoints"] {
        let path = format!("{base}/{path}");
        assert_error(&read(&path, None), 401, "missing_token");
        assert_error(&read(&path, Some(&other.read_auth())), 403, "wrong_project");
        assert_error(&read(&path, Some(&p.write_auth())), 401, "wrong_key_kind");
        let post = request(
            "POST",
            &format!("{}{path}", url("query")),
            &[("authorization", &auth)],
            None,
        );
        assert_error(&post, 405, "method_not_allowed");
    }
    assert_error(
        &read(&format!("{base}/overview?days=91"), Some(&auth)),
        400,
        "invalid_range",
    );
}

/// One kind of image request in the CDN workload: days before today, image, variant,
/// country, status, bytes per request, and how many.
type Serve = (
    i64,
    &'static str,
    Option<&'static str>,
    &'static str,
    u16,
    u64,
    u32,
);

const SERVES: [Serve; 8] = [
    (3, "img-1", Some("w640"), "DE", 200, 1000, 3),
    (3, "img-1", Some("thumb"), "US", 200, 100, 2),
    (2, "img-1", Some("w640"), "US", 404, 0, 1),
    (2, "img-10", Some("orig"), "DE", 200, 5000, 4),
    (2, "img-2", None, "DE", 200, 700, 1),
    (1, "img-1", Some("orig"), "FR", 200, 4000, 2),
    (1, "img-2", Some("w640"), "DE", 200, 1500, 5),
    (1, "cat ü.jpg", Some("thumb"), "JP", 200, 300, 1),
];

/// Requests and bytes per key over the serves `keep` picks, as the CDN answers list
/// them: most requests first, then by key.
fn breakdown(
    name: &str,
    keep: impl Fn(&Serve) -> bool,
    key: impl Fn(&Serve) -> Option<String>,
) -> Value {
    let mut sums: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for s in SERVES.iter().filter(|s| keep(s)) {
        if let Some(k) = key(s) {
            let e = sums.entry(k).or_default();
            e.0 += u64::from(s.6);
            e.1 += u64::from(s.6) * s.5;
        }
    }
    let mut rows: Vec<(String, (u64, u64))> = sums.into_iter().collect();
    rows.sort_by(|(a, x), (b, y)| y.0.cmp(&x.0).then_with(|| a.cmp(b)));
    rows.into_iter()
        .map(|(k, (n, b))| json!({name: k, "requests": n, "bandwidth_bytes": b}))
        .collect()
}

#[test]
fn cdn_aliases_answer_for_the_tokens_project_with_exact_numbers() {
    let p = Project::new("alias-cdn");
    let other = Project::new("alias-cdn-other");
    let run = run_id();
    let today = now_ms() / DAY * DAY;
    let mut events = Vec::new();
    for (k, s) in SERVES.iter().enumerate() {
        for i in 0..s.6 {
            let mut e = json!({
                "event_id": event_id(run, (k as u32) * 100 + i), "name": "serve",
                "timestamp": today - s.0 * DAY + 12 * HOUR + i64::from(i) * MINUTE,
                "item": s.1, "country": s.3, "status": s.4, "bytes": s.5,
            });
            if let Some(v) = s.2 {
                e["variant"] = json!(v);
            }
            events.push(e);
        }
    }
    send(&p, events);
    let total: u32 = SERVES.iter().map(|s| s.6).sum();
    wait_for_count(&p, u64::from(total));
    let auth = p.read_auth();
    let get = |path: &str| {
        let a = read(path, Some(&auth));
        assert_eq!(a.status, 200, "{path}: {}", a.json);
        a.json
    };

    let all = |_: &Serve| true;
    let expected_overview = json!({
        "start": date(today - 29 * DAY), "end": date(today), "days": 30,
        "requests": total,
        "bandwidth_bytes": SERVES.iter().map(|s| u64::from(s.6) * s.5).sum::<u64>(),
        "top_images": breakdown("image_id", all, |s| Some(s.1.to_owned())),
        "countries": breakdown("country", all, |s| Some(s.3.to_owned())),
        "variants": breakdown("variant", all, |s| s.2.map(str::to_owned)),
        "statuses": breakdown("status", all, |s| Some(format!("{}xx", s.4 / 100))),
    });
    let overview = get("/v1/analytics/overview?days=30");
    assert_eq!(overview, expected_overview);
    assert_eq!(
        get("/v1/analytics/overview"),
        expected_overview,
        "30 days by default"
    );
    assert_eq!(
        overview["top_images"][0],
        json!({"image_id": "img-1", "requests": 8, "bandwidth_bytes": 11_200})
    );

    // One image: by variant, by country, and every day of the range.
    let image = |id: &str, keep: &dyn Fn(&Serve) -> bool, days: &[i64]| {
        let mine = |s: &Serve| s.1 == id && keep(s);
        let series: Vec<Value> = days
            .iter()
            .map(|&ago| {
                let day = |s: &Serve| mine(s) && s.0 == ago;
                let (n, b) = SERVES.iter().filter(|s| day(s)).fold((0, 0), |(n, b), s| {
                    (n + u64::from(s.6), b + u64::from(s.6) * s.5)
                });
                json!({"date": date(today - ago * DAY), "requests": n, "bandwidth_bytes": b})
            })
            .collect();
        let (n, b) = SERVES.iter().filter(|s| mine(s)).fold((0, 0), |(n, b), s| {
            (n + u64::from(s.6), b + u64::from(s.6) * s.5)
        });
        json!({
            "image_id": id,
            "start": date(today - days[0] * DAY), "end": date(today - days[days.len() - 1] * DAY),
            "days": days.len(), "requests": n, "bandwidth_bytes": b,
            "variants": breakdown("variant", mine, |s| s.2.map(str::to_owned)),
            "countries": breakdown("country", mine, |s| Some(s.3.to_owned())),
            "timeseries": series,
        })
    };
    let week: Vec<i64> = (0..7).rev().collect();
    let img1 = get("/v1/analytics/images/img-1?days=7");
    assert_eq!(img1, image("img-1", &all, &week));
    assert_eq!(img1["requests"], 8, "img-10 is not img-1");
    assert_eq!(
        img1["variants"],
        json!([{"variant": "w640", "requests": 4, "bandwidth_bytes": 3000},
               {"variant": "orig", "requests": 2, "bandwidth_bytes": 8000},
               {"variant": "thumb", "requests": 2, "bandwidth_bytes": 200}])
    );
    assert_eq!(
        get("/v1/analytics/images/img-10?days=7"),
        image("img-10", &all, &week)
    );
    assert_eq!(
        get("/v1/analytics/images/img-2?days=7"),
        image("img-2", &all, &week),
        "a request without a variant counts for its image only"
    );
    assert_eq!(
        get("/v1/analytics/images/cat%20%C3%BC.jpg?days=7"),
        image("cat ü.jpg", &all, &week)
    );
    let (from, to) = (date(today - 3 * DAY), date(today - 2 * DAY));
    let dated = get(&format!("/v1/analytics/images/img-1?start={from}&end={to}"));
    assert_eq!(dated, image("img-1", &|s: &Serve| s.0 >= 2, &[3, 2]));
    assert_eq!(dated["requests"], 6);

    // Rolling the days from their hours changes no answer.
    let project = p.slug.clone();
    after_cron(
        "* * * * *",
        "the three days are rolled",
        Duration::from_secs(60),
        || {
            let (days, dirty): (i64, i64) = with_d1(&project, |db| {
                db.query_row(
                    "SELECT (SELECT COUNT(*) FROM rollups WHERE project = ?1 AND period = 'day'
                         AND dimension = 'all'),
                        (SELECT COUNT(*) FROM dirty_periods WHERE project = ?1 AND period = 'day')",
                    [&project],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap()
            });
            if days == 3 && dirty == 0 {
                Ok(())
            } else {
                Err(format!("{days} day rows, {dirty} dirty"))
            }
        },
    );
    assert_eq!(get("/v1/analytics/overview?days=30"), expected_overview);
    assert_eq!(
        get("/v1/analytics/images/img-1?days=7"),
        image("img-1", &all, &week)
    );

    // Bad ranges are refused, saying what to fix.
    for bad in [
        "?days=0",
        "?days=91",
        "?days=ten",
        "?start=2025-13-01",
        "?start=yesterday",
        "?days=7&start=2025-01-01",
        "?start=2025-02-01&end=2025-01-01",
        "?start=2024-01-01&end=2024-12-31",
    ] {
        let a = read(&format!("/v1/analytics/overview{bad}"), Some(&auth));
        assert_error(&a, 400, "invalid_range");
        let a = read(&format!("/v1/analytics/images/img-1{bad}"), Some(&auth));
        assert_error(&a, 400, "invalid_range");
    }
    assert_eq!(get("/v1/analytics/overview?days=90")["days"], 90);

    // The token names the project: another project's token reads that project.
    for path in ["/v1/analytics/overview", "/v1/analytics/images/img-1"] {
        assert_error(&read(path, None), 401, "missing_token");
        assert_error(&read(path, Some(&p.write_auth())), 401, "wrong_key_kind");
        let admin = format!("Bearer {}", admin_token());
        assert_error(&read(path, Some(&admin)), 401, "read_token_required");
        let theirs = read(path, Some(&other.read_auth()));
        assert_eq!((theirs.status, &theirs.json["requests"]), (200, &json!(0)));
    }
}

/// A track API event: name, user, and time.
#[derive(Clone)]
struct Track {
    name: &'static str,
    user: &'static str,
    at: i64,
}

#[test]
fn track_aliases_answer_in_the_seed_shape_with_sunday_weeks_and_users() {
    let p = Project::new("alias-track");
    let run = run_id();
    // A Saturday, the Sunday after it and that Monday, all in the past.
    let sun = sunday(now_ms() - 2 * DAY);
    let (sat, mon) = (sun - DAY, sun + DAY);
    let at = |day: i64, h: i64, m: i64, s: i64| day + h * HOUR + m * MINUTE + s * 1000;
    let t = |name, user, at| Track { name, user, at };
    let events = [
        t("play", "alice", at(sat, 10, 0, 0)),
        t("stop", "alice", at(sat, 10, 2, 0)),
        t("play", "bob", at(sat, 11, 0, 0)),
        t("stop", "bob", at(sat, 11, 10, 0)),
        t("pause", "alice", at(sat, 12, 0, 0)),
        t("play", "alice", at(sun, 9, 0, 0)),
        t("stop", "alice", at(sun, 9, 30, 0)),
        t("pause", "bob", at(sun, 13, 0, 0)),
        // Closed the next morning: a session of Sunday.
        t("play", "bob", at(sun, 14, 0, 0)),
        t("play", "alice", at(mon, 8, 0, 0)),
        t("stop", "alice", at(mon, 8, 1, 30)),
        t("stop", "bob", at(mon, 8, 5, 0)),
        // A stop without a play makes no session.
        t("stop", "carol", at(mon, 9, 0, 0)),
    ];
    let sent: Vec<Value> = events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            json!({"event_id": event_id(run, i as u32), "name": e.name, "user": e.user,
                   "timestamp": e.at})
        })
        .collect();
    send(&p, sent);
    // One more through the seed's own endpoint.
    let tracked = request(
        "POST",
        &format!("{}/track", url("ingest")),
        &[
            ("content-type", "application/json"),
            ("authorization", &p.write_auth()),
        ],
        Some(
            &json!({"event": "pause", "user_id": "alice", "timestamp": at(mon, 12, 0, 0)})
                .to_string(),
        ),
    );
    assert_eq!(
        tracked.json,
        json!({"status": "success", "message": "Event logged."})
    );
    let mut events = events.to_vec();
    events.push(t("pause", "alice", at(mon, 12, 0, 0)));
    wait_for_count(&p, events.len() as u64);

    let auth = p.read_auth();
    let (start, end) = (date(sat), date(mon));
    let get = |path: &str| {
        let a = read(path, Some(&auth));
        assert_eq!(a.status, 200, "{path}: {}", a.json);
        assert_eq!(a.json["status"], "success", "{path}: {}", a.json);
        a.json["data"].clone()
    };
    // The seed's rows, counted here from the events themselves.
    let metrics = |bucket: &dyn Fn(i64) -> String, user: Option<&str>| {
        let mut rows: BTreeMap<String, BTreeMap<&str, u64>> = BTreeMap::new();
        for e in events.iter().filter(|e| user.is_none_or(|u| u == e.user)) {
            *rows
                .entry(bucket(e.at))
                .or_default()
                .entry(e.name)
                .or_default() += 1;
        }
        Value::Array(
            rows.into_iter()
                .map(|(date, names)| {
                    let mut row = json!(names);
                    row["date"] = json!(date);
                    row
                })
                .collect(),
        )
    };
    let q = format!("start_date={start}&end_date={end}");
    let by_day = get(&format!("/metrics?{q}"));
    assert_eq!(by_day, metrics(&date, None));
    assert_eq!(
        by_day[0],
        json!({"date": date(sat), "play": 2, "stop": 2, "pause": 1})
    );
    assert_eq!(get(&format!("/metrics?{q}&group_by=day")), by_day);
    let by_week = get(&format!("/metrics?{q}&group_by=week"));
    assert_eq!(by_week, metrics(&|ms| date(sunday(ms)), None));
    assert_eq!(
        by_week,
        json!([{"date": date(sun - 7 * DAY), "play": 2, "stop": 2, "pause": 1},
               {"date": date(sun), "play": 3, "stop": 4, "pause": 2}]),
        "Saturday ends a week; Sunday starts the next"
    );
    assert_eq!(
        get(&format!("/metrics?{q}&group_by=month")),
        metrics(&month, None)
    );
    assert_eq!(
        get(&format!("/metrics?{q}&user_id=alice")),
        metrics(&date, Some("alice"))
    );
    assert_eq!(
        get(&format!("/metrics?{q}&group_by=week&user_id=bob")),
        metrics(&|ms| date(sunday(ms)), Some("bob"))
    );
    assert_eq!(get(&format!("/metrics?{q}&user_id=nobody")), json!([]));
    let only_sunday = format!("start_date={}&end_date={}", date(sun), date(sun));
    assert_eq!(
        get(&format!("/metrics?{only_sunday}")),
        json!([metrics(&date, None)[1].clone()])
    );

    // Sessions, in seconds: alice 120 s, bob 600 s on Saturday; alice 1,800 s and bob
    // 14:00 to 08:05 the next day (65,100 s) on Sunday; alice 90 s on Monday.
    let row = |day: i64, total: i64, count: i64| {
        json!({"date": date(day), "totalDuration": total, "sessionCount": count,
               "averageDuration": total / count})
    };
    assert_eq!(
        get(&format!("/sessions?{q}")),
        json!([row(sat, 720, 2), row(sun, 66_900, 2), row(mon, 90, 1)])
    );
    assert_eq!(
        get(&format!("/sessions?{q}&group_by=week")),
        json!([row(sun - 7 * DAY, 720, 2), row(sun, 66_990, 3)])
    );
    assert_eq!(
        get(&format!("/sessions?{q}&user_id=alice")),
        json!([row(sat, 120, 1), row(sun, 1800, 1), row(mon, 90, 1)])
    );
    assert_eq!(
        get(&format!("/sessions?{q}&user_id=bob&group_by=week")),
        json!([row(sun - 7 * DAY, 600, 1), row(sun, 65_100, 1)])
    );
    let months = get(&format!("/sessions?{q}&group_by=month"));
    let total: i64 = months
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["totalDuration"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 720 + 66_900 + 90, "{months}");
    assert_eq!(months[0]["date"], month(sat));

    // The seed's errors, verbatim, in its shape.
    let error = |path: &str, status: u16, message: &str| {
        let a = read(path, Some(&auth));
        assert_eq!(a.status, status, "{path}: {}", a.json);
        assert_eq!(a.json["status"], "error", "{path}: {}", a.json);
        assert_eq!(a.json["message"], message, "{path}: {}", a.json);
    };
    for path in ["/metrics", "/sessions"] {
        let required = "start_date and end_date are required";
        error(path, 400, required);
        error(&format!("{path}?start_date={start}"), 400, required);
        error(
            &format!("{path}?end_date={end}&group_by=week"),
            400,
            required,
        );
        let format = "Invalid date format. Use YYYY-MM-DD";
        error(
            &format!("{path}?start_date=2025/01/01&end_date={end}"),
            400,
            format,
        );
        error(
            &format!("{path}?start_date={start}&end_date=tomorrow"),
            400,
            format,
        );
        error(
            &format!("{path}?start_date={start}&end_date=2025-02-30"),
            400,
            format,
        );
        let a = read(&format!("{path}?{q}&group_by=year"), Some(&auth));
        assert_eq!(
            (a.status, &a.json["status"]),
            (400, &json!("error")),
            "{}",
            a.json
        );
        let a = read(
            &format!("{path}?start_date={end}&end_date={start}"),
            Some(&auth),
        );
        assert_eq!(
            (a.status, &a.json["status"]),
            (400, &json!("error")),
            "{}",
            a.json
        );
        let a = read(&format!("{path}?{q}"), None);
        assert_eq!(a.status, 401, "{}", a.json);
        assert_eq!(a.json["status"], "error");
        assert_eq!(a.json["code"], "missing_token");
        let a = read(&format!("{path}?{q}"), Some(&p.write_auth()));
        assert_eq!((a.status, &a.json["code"]), (401, &json!("wrong_key_kind")));
    }
    // Another project's token reads its own, empty, project.
    let other = Project::new("alias-track-other");
    let a = read(&format!("/metrics?{q}"), Some(&other.read_auth()));
    assert_eq!(a.json, json!({"status": "success", "data": []}));
}
