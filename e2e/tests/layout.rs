//! The dashboard's layout against real data of hostile length (issue 19): 500-character
//! routes, 256-character campaigns, sources, items and error classes, 120-character event
//! names, long alert rule names and 200 values per table. At 1280 px (light and dark) and
//! at a phone's 390 px, no table, chart or panel overflows its box, no cell is squeezed
//! onto several lines, and every truncated value keeps its full text in a tooltip.

use serde_json::{Value, json};

use crate::support::browser::{Browser, assert_pngs};
use crate::support::*;

/// A value of exactly `len` characters with no space to break it at, unique by `i`.
fn long(prefix: &str, i: usize, len: usize) -> String {
    let head = format!("{prefix}{i:03}-");
    let filler: String = "segment-without-any-break-"
        .chars()
        .cycle()
        .take(len - head.len())
        .collect();
    format!("{head}{filler}")
}

/// 200 routes, sources, campaigns, items, versions and error classes of the longest
/// lengths ingest accepts, and funnel steps named at the longest event-name length.
fn hostile_workload(run: u32, now: i64) -> (Vec<Value>, Vec<String>) {
    let steps: Vec<String> = (0..3).map(|i| long("step-", i, 120)).collect();
    let mut events = Vec::new();
    for i in 0..200 {
        let failed = i % 4 == 0;
        events.push(json!({
            "name": "request", "method": "GET", "route": long("/api/", i, 512),
            "status": if failed { 500 } else { 200 },
            "error_class": if failed { Some(long("Error", i % 20, 256)) } else { None },
            "duration_ms": 10 + i, "instance": format!("instance-{i}"),
            "version": long("1.0.", i % 50, 64), "colo": "FRA",
            "source": long("source-", i, 256), "medium": long("medium-", i % 30, 256),
            "campaign": long("campaign-", i, 256), "user": format!("u{i}"),
            "item": long("item-", i, 256), "variant": long("variant-", i % 40, 256),
            "bytes": 1000 + i,
        }));
    }
    for (n, step) in steps.iter().enumerate() {
        for u in 0..(30 - 10 * n) {
            events.push(json!({"name": step, "user": format!("u{u}")}));
        }
    }
    for (i, event) in events.iter_mut().enumerate() {
        event["event_id"] = json!(event_id(run, i as u32));
        event["timestamp"] = json!(now - i as i64 * 60_000);
    }
    (events, steps)
}

#[test]
fn long_values_overflow_nothing_at_desktop_and_phone_width_in_light_and_dark() {
    let p = Project::new("layout");
    let (events, steps) = hostile_workload(run_id(), now_ms());
    let n = events.len() as u64;
    let sent = send_events(&p, &Value::Array(events));
    let first_refusal = sent.json["results"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["status"] != "accepted"));
    assert_eq!(sent.status, 202, "{first_refusal:?}");
    assert_eq!(sent.json["accepted"], n, "{first_refusal:?}");
    wait_for_count(&p, n);
    let long_route = long("/api/", 0, 512);
    let long_campaign = long("campaign-", 7, 256);
    for (name, route) in [
        ("upload errors", long("/api/", 1, 500)),
        (
            &long("a rule whose name is long ", 1, 100)[..],
            long("/api/", 4, 500),
        ),
    ] {
        let rule = json!({"name": name, "metric": {"type": "error_rate"},
            "filter": {"dimension": "route", "value": route}, "comparator": ">",
            "threshold": 0.5, "window_minutes": 5, "min_volume": 100_000});
        p.create_rule(&rule);
    }
    p.pause_campaign(&long_campaign, &long("the budget ran out ", 0, 200));

    let browser = Browser::start();
    let page = format!(
        "{}/dashboard/{}?days=7&steps={}",
        url("query"),
        p.slug,
        steps.join(",")
    );
    browser.open_signed_in(&page, &p.read_token);
    browser.wait_for("#funnel-steps td");
    assert_eq!(browser.text("#events .v"), n.to_string());

    browser.assert_nothing_overflows("1280 px, light");
    // Truncated values keep their whole text for the tooltip.
    let titles = browser.script(
        "return [...document.querySelectorAll('#failing-routes td.t, #campaign-table td.t, #rule-states td.t')].map(c => c.title);",
        json!([]),
    );
    let titles: Vec<&str> = titles
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for whole in [&long_route, &long_campaign, "upload errors"] {
        assert!(
            titles.contains(&whole),
            "{whole:?} is a tooltip: {titles:?}"
        );
    }

    let light = browser.screenshot("layout-1280.png");
    browser.emulate_color_scheme("dark");
    browser.goto(&page);
    let background = browser.script(
        "return getComputedStyle(document.body).backgroundColor;",
        json!([]),
    );
    assert_ne!(
        background, "rgb(248, 250, 252)",
        "the page follows the system's dark setting"
    );
    browser.assert_nothing_overflows("1280 px, dark");
    let dark = browser.screenshot("layout-1280-dark.png");
    browser.emulate_color_scheme("light");
    browser.emulate_phone(390, 844);
    browser.goto(&page);
    browser.wait_for("#funnel-steps td");
    browser.assert_nothing_overflows("390 px");
    let phone = browser.screenshot("layout-390.png");
    assert_pngs(&[&light, &dark, &phone], 10_000);
}
