//! Funnels, sessions and the realtime view under filters against the running stack
//! (local D1): each answer equals an exact recomputation from the export's rows for a
//! single and a combined filter, on the exact path within the stack's small row budgets
//! (`TALLY_FUNNEL_ROW_BUDGET` for funnels, `TALLY_FILTER_ROW_BUDGET` for the others) and
//! past them on a sample of users that says so; a funnel over more step events than its
//! budget reads answers from that sample, no longer a 400.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use tally_core::testing::SplitMix64;
use tally_core::time::parse_timestamp;

use crate::support::*;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const STEPS: [&str; 3] = ["visit", "signup", "buy"];
const WINDOW: i64 = HOUR;

/// `users` users' play/stop sessions over the two days from `d0`: a play, then the
/// funnel's steps in order (each maybe), a request, and a stop (maybe), each event from
/// a country and on a route. Deterministic in `seed`.
fn workload(run: u32, users: u32, d0: i64, seed: u64) -> Vec<Value> {
    // The same events every run of the test.
    let mut rng = SplitMix64(seed);
    let mut next = |m: u64| rng.next_u64() % m;
    let mut events = Vec::new();
    for u in 0..users {
        for _ in 0..2 {
            let start = d0 + next((2 * DAY - 3 * HOUR) as u64) as i64;
            let length = 60_000 + next(2 * HOUR as u64) as i64;
            let mut at = start;
            let mut names = vec!["play"];
            names.extend(STEPS.iter().filter(|_| next(4) > 0));
            names.push("request");
            if next(10) > 0 {
                names.push("stop");
            }
            for (k, name) in names.iter().enumerate() {
                at = if *name == "stop" {
                    start + length
                } else {
                    at + next((length / 6) as u64) as i64 + i64::from(k > 0)
                };
                events.push(json!({
                    "event_id": event_id(run, events.len() as u32),
                    "timestamp": at,
                    "name": name,
                    "user": format!("u{u}"),
                    "country": (["US", "DE", "FR"][next(3) as usize]),
                    "route": (["/web/a", "/web/b", "/api/x"][next(3) as usize]),
                }));
            }
        }
    }
    events
}

/// An exported event as the recomputations need it.
struct Row {
    user: String,
    t: i64,
    name: String,
    country: String,
    route: String,
    bucket: u32,
}

/// The exported events of the range.
fn export(p: &Project, range: &str) -> Vec<Row> {
    p.exported(range)
        .iter()
        .map(|e| {
            let user = e["user"].as_str().unwrap().to_owned();
            Row {
                bucket: u32::from_str_radix(&user[user.len() - 2..], 16).unwrap(),
                user,
                t: parse_timestamp(&e["timestamp"]).unwrap(),
                name: e["name"].as_str().unwrap().to_owned(),
                country: e["country"].as_str().unwrap_or_default().to_owned(),
                route: e["route"].as_str().unwrap_or_default().to_owned(),
            }
        })
        .collect()
}

/// The filters these tests use, as the API reads them: `country` or `route`, equal
/// (`:`), different (`!=`) or a route prefix (`*`).
fn meets(r: &Row, filters: &[&str]) -> bool {
    filters.iter().all(|f| {
        let (dimension, negated, operand) = match f.split_once("!=") {
            Some((d, v)) => (d, true, v),
            None => {
                let (d, v) = f.split_once(':').unwrap();
                (d, false, v)
            }
        };
        let value = if dimension == "country" {
            &r.country
        } else {
            &r.route
        };
        let hit = match operand.strip_suffix('*') {
            Some(prefix) => value.starts_with(prefix),
            None => value == operand,
        };
        hit != negated
    })
}

fn query_of(filters: &[&str]) -> String {
    filters
        .iter()
        .map(|f| {
            let encoded = f
                .replace('/', "%2F")
                .replace('*', "%2A")
                .replace('=', "%3D")
                .replace('!', "%21");
            format!("&filter={encoded}")
        })
        .collect()
}

/// Users per step, recomputed: a user reaches step `k` when some visit starts a chain of
/// the steps in order, each at or after the one before and within the window of the
/// visit, among their events that meet the filters.
fn funnel_users(rows: &[&Row]) -> Vec<u64> {
    let mut by_user: BTreeMap<&str, Vec<(i64, usize)>> = BTreeMap::new();
    for r in rows {
        if let Some(k) = STEPS.iter().position(|s| *s == r.name) {
            by_user.entry(&r.user).or_default().push((r.t, k));
        }
    }
    let mut users = [0u64; 3];
    for hits in by_user.values_mut() {
        hits.sort_unstable();
        let mut best = 0;
        for &(start, k) in hits.iter() {
            if k != 0 {
                continue;
            }
            let (mut reached, mut last) = (1, start);
            for &(t, k) in hits.iter() {
                if k == reached && t >= last && t - start <= WINDOW {
                    reached += 1;
                    last = t;
                }
            }
            best = best.max(reached);
        }
        for u in users.iter_mut().take(best) {
            *u += 1;
        }
    }
    users.to_vec()
}

/// Sessions recomputed: a stop closes its user's most recent open play; a session that
/// starts in the range and lasts at most a day is kept when one of its user's events
/// from its play to its stop meets the filters. `(sessions, total ms)`.
fn kept_sessions(
    rows: &[Row],
    filters: &[&str],
    buckets: u32,
    (from, to): (i64, i64),
) -> (u64, i64) {
    let mut marks: Vec<&Row> = rows
        .iter()
        .filter(|r| r.bucket < buckets && (r.name == "play" || r.name == "stop"))
        .collect();
    marks.sort_by_key(|r| (r.user.clone(), r.t, r.name == "stop"));
    let mut open: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    let (mut sessions, mut total) = (0, 0);
    for m in marks {
        if m.name == "play" {
            open.entry(&m.user).or_default().push(m.t);
            continue;
        }
        let Some(start) = open.get_mut(m.user.as_str()).and_then(Vec::pop) else {
            continue;
        };
        let kept = rows
            .iter()
            .any(|r| r.user == m.user && (start..=m.t).contains(&r.t) && meets(r, filters));
        if kept && (from..to).contains(&start) && m.t - start <= DAY {
            sessions += 1;
            total += m.t - start;
        }
    }
    (sessions, total)
}

fn check_sessions(p: &Project, range: &str, rows: &[Row], d0: i64, filters: &[&str], path: &str) {
    let a = p.read(&format!("sessions?{range}{}", query_of(filters)));
    assert_eq!(a.status, 200, "{filters:?}: {}", a.json);
    assert_eq!(a.json["served_by"], path, "{filters:?}: {}", a.json);
    assert_eq!(a.json["filters"].as_array().unwrap().len(), filters.len());
    let (buckets, scale) = sample_of(&a.json);
    let (sessions, total) = kept_sessions(rows, filters, buckets, (d0, d0 + 2 * DAY));
    assert_eq!(
        (
            a.json["totals"]["sessions"].as_u64(),
            a.json["totals"]["total_duration_ms"].as_i64()
        ),
        (Some(sessions * scale), Some(total * scale as i64)),
        "{filters:?}"
    );
    if !filters.is_empty() && scale == 1 {
        assert!(sessions > 0, "{filters:?} keeps some");
    }
}

/// The sample buckets and scale an answer says it was computed on (all 256 and 1 when
/// it is not sampled).
fn sample_of(answer: &Value) -> (u32, u64) {
    match answer["sample_rate"].as_f64() {
        Some(rate) => {
            assert_eq!(answer["served_by"], "sampled");
            let buckets = (rate * 256.0).round() as u32;
            assert!(buckets.is_power_of_two() && buckets < 256, "{rate}");
            (buckets, u64::from(256 / buckets))
        }
        None => (256, 1),
    }
}

fn check_funnel(p: &Project, range: &str, rows: &[Row], filters: &[&str], path: &str) {
    let a = p.read(&format!(
        "funnels?{range}&steps=visit,signup,buy&window=1h{}",
        query_of(filters)
    ));
    assert_eq!(a.status, 200, "{filters:?}: {}", a.json);
    assert_eq!(a.json["served_by"], path, "{filters:?}: {}", a.json);
    assert_eq!(a.json["filters"].as_array().unwrap().len(), filters.len());
    // Within the funnel's budget as D1 counts rows, besides the `name` rollup rows that
    // predicted the read: no more than the name breakdown of the range reads (every
    // name's rows, the lookups of the project and the token included).
    let rows_read = |a: &Answer| -> u64 { a.header("x-tally-rows-read").unwrap().parse().unwrap() };
    let names = p.read(&format!("breakdown/name?{range}"));
    assert_eq!(names.status, 200, "{}", names.json);
    let steps = rows
        .iter()
        .filter(|r| STEPS.contains(&r.name.as_str()) && !r.user.is_empty())
        .count();
    println!(
        "funnel {filters:?}: {steps} step events, {} rows read, {}; name breakdown {}",
        rows_read(&a),
        a.json["served_by"],
        rows_read(&names)
    );
    assert!(
        rows_read(&a) <= funnel_row_budget() + rows_read(&names),
        "{filters:?}: {} rows read",
        rows_read(&a)
    );
    let (buckets, scale) = sample_of(&a.json);
    let matching: Vec<&Row> = rows
        .iter()
        .filter(|r| r.bucket < buckets && meets(r, filters))
        .collect();
    let want: Vec<u64> = funnel_users(&matching).iter().map(|u| u * scale).collect();
    let got: Vec<u64> = a.json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["users"].as_u64().unwrap())
        .collect();
    assert_eq!(got, want, "{filters:?}");
    // A sample's users depend on the stack's identifier secret: only a whole answer is
    // known to reach the second step.
    if scale == 1 {
        assert!(want[1] > 0, "{filters:?}: {want:?}");
    }
}

#[test]
fn filtered_funnels_and_sessions_equal_a_recomputation_from_the_export() {
    let (d0, range) = two_whole_days();
    let budget = filter_row_budget();
    // Within the stack's budget: exact.
    let p = Project::new("freports");
    let events = workload(run_id(), 40, d0, 5);
    assert!((events.len() as u64) * 2 < budget, "{}", events.len());
    p.send_all_counted(&events, &range);
    let rows = export(&p, &range);
    assert_eq!(rows.len(), events.len());
    for filters in [
        &[][..],
        &["country:DE"][..],
        &["route:/web/*", "country!=FR"][..],
    ] {
        check_funnel(&p, &range, &rows, filters, "raw");
    }
    for (filters, path) in [
        (&[][..], "rollups"),
        (&["route:/api/x"][..], "raw"),
        (&["route:/web/*", "country!=FR"][..], "raw"),
    ] {
        check_sessions(&p, &range, &rows, d0, filters, path);
    }

    // Past it: the steps' events alone fit the funnel's budget (one row each, some
    // 1,100, and 1,794 rows of seeks), the filtered ones do not (two rows each),
    // and the sessions' window does not fit the filtered reads' budget: a sample of
    // users, the users every filtered report samples.
    let p = Project::new("freports-sampled");
    let events = workload(run_id(), 250, d0, 6);
    p.send_all_counted(&events, &range);
    let rows = export(&p, &range);
    assert_eq!(rows.len(), events.len());
    for (filters, path) in [
        (&[][..], "raw"),
        (&["country:DE"][..], "sampled"),
        (&["route:/web/*", "country!=FR"][..], "sampled"),
    ] {
        check_funnel(&p, &range, &rows, filters, path);
    }
    for filters in [&["route:/api/x"][..], &["route:/web/*", "country!=FR"][..]] {
        check_sessions(&p, &range, &rows, d0, filters, "sampled");
    }
    let overview = p.read(&format!("overview?{range}{}", query_of(&["country!=FR"])));
    let funnel = p.read(&format!(
        "funnels?{range}&steps=visit,signup,buy{}",
        query_of(&["country!=FR"])
    ));
    // The same users in the same order, as many as or more than the overview's: the
    // funnel reads only its steps' events of each.
    let (overview, _) = sample_of(&overview.json);
    let (funnel, _) = sample_of(&funnel.json);
    assert!(funnel >= overview, "{funnel} buckets against {overview}");
}

#[test]
fn the_filtered_realtime_view_counts_the_matching_events_of_its_minutes() {
    let p = Project::new("freports-rt");
    let now = now_ms();
    let run = run_id();
    let events: Vec<Value> = (0..60u32)
        .map(|i| {
            let i64i = i64::from(i);
            let mut e = json!({
                "event_id": event_id(run, i),
                "timestamp": now - (i64i * 17 % 20) * MINUTE - i64i * 311 % MINUTE,
                "name": "pageview",
                "user": format!("u{}", i % 13),
                "country": (["US", "DE", "FR"][(i % 3) as usize]),
                "route": (["/web/a", "/web/b", "/api/x"][(i * 7 % 3) as usize]),
            });
            if i % 5 == 0 {
                e["status"] = json!(503);
                e["error_class"] = json!("Timeout");
            }
            e
        })
        .collect();
    let sent = send_events(&p, &Value::Array(events));
    assert_eq!(sent.status, 202, "{}", sent.json);
    eventually(
        "the realtime view counts 60 events",
        std::time::Duration::from_secs(60),
        || {
            let a = p.read("realtime");
            let events: u64 = a.json["minutes"]
                .as_array()
                .map_or(0, |m| m.iter().map(|m| m["events"].as_u64().unwrap()).sum());
            if events == 60 {
                Ok(())
            } else {
                Err(a.json.to_string())
            }
        },
    );
    let rows = export(&p, "days=1");
    assert_eq!(rows.len(), 60);
    for filters in [&["country:DE"][..], &["route:/web/*", "country!=FR"][..]] {
        let a = p.read(&format!("realtime?{}", &query_of(filters)[1..]));
        assert_eq!(a.status, 200, "{filters:?}: {}", a.json);
        assert_eq!(a.header("cache-control"), Some("no-store"));
        assert_eq!(a.json["served_by"], "raw", "{filters:?}: {}", a.json);
        assert_eq!(a.json["filters"].as_array().unwrap().len(), filters.len());
        let from = parse_timestamp(&a.json["from"]).unwrap();
        let at = parse_timestamp(&a.json["now"]).unwrap();
        let matching: Vec<&Row> = rows
            .iter()
            .filter(|r| r.t >= from && meets(r, filters))
            .collect();
        for minute in a.json["minutes"].as_array().unwrap() {
            let start = parse_timestamp(&minute["start"]).unwrap();
            let n = matching
                .iter()
                .filter(|r| (start..start + MINUTE).contains(&r.t))
                .count() as u64;
            assert_eq!(minute["events"].as_u64(), Some(n), "{filters:?} at {start}");
        }
        let visitors: BTreeSet<&str> = matching
            .iter()
            .filter(|r| r.t >= at - 5 * MINUTE)
            .map(|r| r.user.as_str())
            .collect();
        assert_eq!(
            a.json["visitors"]["count"],
            visitors.len() as u64,
            "{filters:?}"
        );
        let mut routes: BTreeMap<&str, u64> = BTreeMap::new();
        for r in &matching {
            *routes.entry(r.route.as_str()).or_default() += 1;
        }
        let got: BTreeMap<&str, u64> = a.json["top"]["routes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["value"].as_str().unwrap(), t["events"].as_u64().unwrap()))
            .collect();
        assert_eq!(got, routes, "{filters:?}");
    }
    let bad = p.read("realtime?filter=planet:mars");
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json["error"]["code"], "invalid_filter");
}
