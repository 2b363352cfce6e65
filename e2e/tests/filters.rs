//! Filters on the read API against the running stack (local D1): overview, timeseries
//! and breakdown answers under single and combined filters (equals, `!=`, prefix)
//! equal an exact recomputation from the export's rows, on every path — rollups, raw
//! events and, past the stack's small row budget (`TALLY_FILTER_ROW_BUDGET`, the
//! query worker's `FILTER_ROW_BUDGET` var), a sample of users that says so; bad filters
//! are 400s naming the problem.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tally_core::testing::SplitMix64;

use crate::support::*;

const DAY: i64 = 86_400_000;

/// `n` events over the two days from `d0`: requests on API and web routes with
/// statuses, errors and durations, serves of items in variants, clicks; countries;
/// users, but not on every event. Deterministic in `seed`.
fn workload(run: u32, n: u32, d0: i64, seed: u64) -> Vec<Value> {
    // The same events every run of the test.
    let mut rng = SplitMix64(seed);
    let mut next = |m: u64| rng.next_u64() % m;
    (0..n)
        .map(|i| {
            let t = d0 + next(2 * DAY as u64) as i64;
            let mut e = match next(3) {
                0 => json!({
                    "name": "serve",
                    "item": format!("img-{}", next(4)),
                    "variant": (["orig", "thumb"][next(2) as usize]),
                    "bytes": next(10_000),
                }),
                1 => {
                    let status = [200, 200, 404, 503][next(4) as usize];
                    let route = ["/api/users", "/api/orders", "/web/home"][next(3) as usize];
                    let mut e = json!({"name": "request", "route": route, "status": status,
                                       "duration_ms": next(5_000) as f64 / 10.0});
                    if status == 503 {
                        e["error_class"] = json!("Timeout");
                    }
                    e
                }
                _ => json!({"name": "click", "campaign": (["spring", "été ☀"][next(2) as usize])}),
            };
            e["event_id"] = json!(event_id(run, i));
            e["timestamp"] = json!(t);
            e["country"] = json!(["US", "DE", "FR"][next(3) as usize]);
            if next(10) > 0 {
                e["user"] = json!(format!("u{}", next(300)));
            }
            e
        })
        .collect()
}

/// An exported event's value in a dimension, as filters compare it.
fn value_of(e: &Value, dimension: &str) -> Option<String> {
    match dimension {
        "status" => e["status"].as_u64().map(|s| format!("{}xx", s / 100)),
        _ => e[dimension].as_str().map(str::to_owned),
    }
}

/// Whether an exported event meets a filter as the API documents it: `:` equals,
/// `!=` differs (or has no value), a trailing `*` a prefix.
fn meets(e: &Value, filter: &str) -> bool {
    let (dimension, negated, operand) = match filter.split_once("!=") {
        Some((d, v)) if !d.contains(':') => (d, true, v),
        _ => {
            let (d, v) = filter.split_once(':').unwrap();
            (d, false, v)
        }
    };
    let value = value_of(e, dimension);
    let hit = match operand.strip_suffix('*') {
        Some(prefix) => value.is_some_and(|v| v.starts_with(prefix)),
        None => value.as_deref() == Some(operand),
    };
    hit != negated
}

fn query_of(filters: &[&str]) -> String {
    filters
        .iter()
        .map(|f| {
            let encoded: String = f
                .bytes()
                .map(|b| match b {
                    b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect();
            format!("&filter={encoded}")
        })
        .collect()
}

/// The sample bucket of an exported event: the last byte of its stored user hash, or of
/// its id without a user.
fn bucket(e: &Value) -> u32 {
    let hex = e["user"]
        .as_str()
        .unwrap_or_else(|| e["event_id"].as_str().unwrap());
    u32::from_str_radix(&hex[hex.len() - 2..], 16).unwrap()
}

/// Checks overview, daily timeseries and the route and variant breakdowns under
/// `filters` against `expected` (the exported events the answer must count, each
/// standing for `scale` events), and that the answer says it was served by `path`.
fn check(
    p: &Project,
    range: &str,
    d0: i64,
    filters: &[&str],
    expected: &[&Value],
    path: &str,
    scale: u64,
) {
    let q = query_of(filters);
    let what = format!("{filters:?}");
    let events = expected.len() as u64 * scale;
    let errors = expected
        .iter()
        .filter(|e| e["error_class"].is_string())
        .count() as u64
        * scale;
    let bytes: u64 = expected
        .iter()
        .filter_map(|e| e["bytes"].as_u64())
        .sum::<u64>()
        * scale;
    let durations = expected
        .iter()
        .filter(|e| e["duration_ms"].is_number())
        .count() as u64;

    let o = p.read(&format!("overview?{range}{q}"));
    assert_eq!(o.status, 200, "{what}: {}", o.json);
    assert_eq!(o.json["served_by"], path, "{what}: {}", o.json);
    assert_eq!(
        (
            o.json["events"].as_u64(),
            o.json["errors"].as_u64(),
            o.json["bytes"].as_u64()
        ),
        (Some(events), Some(errors), Some(bytes)),
        "{what}"
    );
    assert_eq!(o.json["duration_ms"]["count"], durations, "{what}");
    // Never more rows read than the budget allows, besides the rollup rows that
    // predicted the scan (as many as the unfiltered overview reads).
    let budget = filter_row_budget();
    let rows_read = |a: &Answer| -> u64 { a.header("x-tally-rows-read").unwrap().parse().unwrap() };
    let plain = p.read(&format!("overview?{range}"));
    assert!(
        rows_read(&o) <= budget + rows_read(&plain),
        "{what}: {} rows read",
        rows_read(&o)
    );
    let echoed: Vec<String> = o.json["filters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let value = f["value"].as_str().unwrap();
            match f["op"].as_str().unwrap() {
                "eq" => format!("{}:{value}", f["dimension"].as_str().unwrap()),
                "ne" => format!("{}!={value}", f["dimension"].as_str().unwrap()),
                "prefix" => format!("{}:{value}*", f["dimension"].as_str().unwrap()),
                _ => format!("{}!={value}*", f["dimension"].as_str().unwrap()),
            }
        })
        .collect();
    let mut sent: Vec<&str> = filters.to_vec();
    let mut got: Vec<&str> = echoed.iter().map(String::as_str).collect();
    sent.sort_unstable();
    got.sort_unstable();
    assert_eq!(got, sent, "{what}: the filters echoed");
    if path == "sampled" {
        let rate = 1.0 / scale as f64;
        assert_eq!(o.json["sample_rate"].as_f64(), Some(rate), "{what}");
    } else {
        assert!(o.json.get("sample_rate").is_none(), "{what}");
    }

    let t = p.read(&format!("timeseries?{range}&interval=day&metric=events{q}"));
    assert_eq!(t.status, 200, "{what}: {}", t.json);
    assert_eq!(t.json["served_by"], path);
    let days: Vec<u64> = t.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["events"].as_u64().unwrap())
        .collect();
    let per_day = |day: i64| {
        expected
            .iter()
            .filter(|e| {
                e["timestamp"]
                    .as_str()
                    .unwrap()
                    .starts_with(&date(d0 + day * DAY))
            })
            .count() as u64
            * scale
    };
    assert_eq!(days, [per_day(0), per_day(1)], "{what}");

    for dimension in ["route", "variant"] {
        let b = p.read(&format!("breakdown/{dimension}?{range}&limit=100{q}"));
        assert_eq!(b.status, 200, "{what}: {}", b.json);
        assert_eq!(b.json["events"], events, "{what}");
        let got = breakdown_events(&b.json);
        let mut want: BTreeMap<String, u64> = BTreeMap::new();
        for e in expected {
            if let Some(v) = value_of(e, dimension) {
                *want.entry(v).or_default() += scale;
            }
        }
        assert_eq!(got, want, "{what} by {dimension}");
        assert_eq!(b.json["other"], Value::Null, "{what}");
    }
}

#[test]
fn filtered_answers_equal_a_recomputation_from_the_export() {
    let p = Project::new("filters");
    let (d0, range) = two_whole_days();
    let budget = filter_row_budget();
    // Under the stack's budget, so raw reads are exact.
    let n = u32::try_from(budget * 2 / 5).unwrap();
    p.send_all_counted(&workload(run_id(), n, d0, 1), &range);
    let rows = p.exported(&range);
    assert_eq!(rows.len(), n as usize);
    for (filters, path) in [
        (&[][..], "rollups"),
        (&["country:US"][..], "rollups"),
        (&["status:5xx"][..], "rollups"),
        // Overview and timeseries from the item's rows (its breakdown by route is raw).
        (&["item:img-1"][..], "rollups"),
        (&["route:/api/*"][..], "raw"),
        (&["route!=/api/*"][..], "raw"),
        (&["country!=DE"][..], "raw"),
        (&["country:DE", "status!=2xx"][..], "raw"),
        (
            &["name:request", "route:/api/orders*", "country!=FR"][..],
            "raw",
        ),
    ] {
        let expected: Vec<&Value> = rows
            .iter()
            .filter(|e| filters.iter().all(|f| meets(e, f)))
            .collect();
        assert!(
            !expected.is_empty() || filters.is_empty(),
            "{filters:?} matches some"
        );
        check(&p, &range, d0, filters, &expected, path, 1);
    }
    // The variants of one item come from the item_variant rollups, exactly.
    let b = p.read(&format!("breakdown/variant?{range}&filter=item:img-2"));
    assert_eq!(b.json["served_by"], "rollups", "{}", b.json);
    let thumbs = rows
        .iter()
        .filter(|e| e["item"] == "img-2" && e["variant"] == "thumb")
        .count();
    let listed = b.json["values"].as_array().unwrap();
    let thumb = listed.iter().find(|v| v["value"] == "thumb").unwrap();
    assert_eq!(thumb["events"], thumbs as u64);
    // The export takes the same filters.
    let a = p.read(&format!(
        "export?{range}&filter=route:/api/*&filter=status:5xx"
    ));
    assert_eq!(a.status, 200);
    let exported = a.json.as_str().unwrap().lines().count();
    let want = rows
        .iter()
        .filter(|e| meets(e, "route:/api/*") && meets(e, "status:5xx"))
        .count();
    assert_eq!(exported, want);
    assert_eq!(
        a.header("x-tally-filters"),
        Some(
            r#"[{"dimension":"route","op":"prefix","value":"/api/"},{"dimension":"status","op":"eq","value":"5xx"}]"#
        )
    );
    // A header holds ASCII only: the echo escapes the rest, as JSON.
    let a = p.read(&format!("export?{range}{}", query_of(&["campaign:été ☀"])));
    assert_eq!(a.status, 200);
    assert_eq!(
        a.header("x-tally-filters"),
        Some(r#"[{"dimension":"campaign","op":"eq","value":"\u00e9t\u00e9 \u2600"}]"#)
    );
}

#[test]
fn past_the_row_budget_answers_come_from_a_sample_of_users_and_say_so() {
    let p = Project::new("filters-sampled");
    let (d0, range) = two_whole_days();
    let budget = filter_row_budget();
    let n = u32::try_from(budget * 5 / 2).unwrap();
    p.send_all_counted(&workload(run_id(), n, d0, 2), &range);
    let rows = p.exported(&range);
    assert_eq!(rows.len(), n as usize);
    let filters = ["route:/api/*", "country!=FR"];
    let o = p.read(&format!("overview?{range}{}", query_of(&filters)));
    assert_eq!(o.json["served_by"], "sampled", "{}", o.json);
    let rate = o.json["sample_rate"].as_f64().unwrap();
    // The answer is the sample's own answer, scaled: every user of the first buckets.
    let buckets = (rate * 256.0).round() as u32;
    assert!(buckets.is_power_of_two() && buckets < 256, "{rate}");
    let expected: Vec<&Value> = rows
        .iter()
        .filter(|e| bucket(e) < buckets && filters.iter().all(|f| meets(e, f)))
        .collect();
    check(
        &p,
        &range,
        d0,
        &filters,
        &expected,
        "sampled",
        u64::from(256 / buckets),
    );
    // D1 reports what it read: about the sample's events, not the range's.
    let read_rows: u64 = o.header("x-tally-rows-read").unwrap().parse().unwrap();
    let sample = rows.iter().filter(|e| bucket(e) < buckets).count() as u64;
    assert!(sample <= budget, "{sample} events in the sample");
    println!("sampled overview: {read_rows} rows read for {sample} events of {n}");
    assert!(
        read_rows < n as u64,
        "{read_rows} rows read, {n} events in the range"
    );
    // The same users every time.
    let again = p.read(&format!("overview?{range}{}", query_of(&filters)));
    assert_eq!(again.json["events"], o.json["events"]);
}

#[test]
fn bad_filters_are_400s_naming_the_problem_and_change_nothing() {
    let p = Project::new("filters-bad");
    let (d0, range) = two_whole_days();
    p.send_all_counted(&workload(run_id(), 50, d0, 3), &range);
    let before = p.read(&format!("overview?{range}"));
    let many: String = (0..11).map(|i| format!("&filter=name:a{i}")).collect();
    for (endpoint, query, says) in [
        (
            "overview",
            "&filter=planet:mars".to_owned(),
            "there is no filter by \"planet\"",
        ),
        (
            "timeseries",
            "&filter=country:".to_owned(),
            "has an empty value",
        ),
        (
            "breakdown/route",
            "&filter=country:U*".to_owned(),
            "country takes no prefix",
        ),
        ("errors", "&filter=country".to_owned(), "has no operator"),
        (
            "installs",
            "&filter=status:500".to_owned(),
            "status class such as 5xx",
        ),
        ("metrics", many.clone(), "at most 10 filters"),
        (
            "export",
            format!("&filter=route:/{}", "x".repeat(600)),
            "at most 512 characters",
        ),
        (
            "overview",
            "&filter=route:/a*/b".to_owned(),
            "* may only end a value",
        ),
    ] {
        let a = p.read(&format!("{endpoint}?{range}{query}"));
        assert_eq!(a.status, 400, "{endpoint}{query}: {}", a.json);
        assert_eq!(a.json["error"]["code"], "invalid_filter", "{endpoint}");
        assert_eq!(a.json["field"], "filter", "{endpoint}");
        let message = a.json["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{endpoint}: {message}");
    }
    // Sessions, funnels and realtime read the same grammar.
    for endpoint in ["sessions?x=1", "funnels?steps=a,b", "realtime?x=1"] {
        let a = p.read(&format!("{endpoint}&filter=country:U*"));
        assert_eq!(a.status, 400, "{endpoint}: {}", a.json);
        assert_eq!(a.json["error"]["code"], "invalid_filter", "{endpoint}");
        let message = a.json["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("country takes no prefix"),
            "{endpoint}: {message}"
        );
    }
    let after = p.read(&format!("overview?{range}"));
    assert_eq!(after.json, before.json, "nothing changed");
    assert_eq!(p.exported(&range).len(), 50);
}
