//! Filters on the dashboard in headless Chromium (issues 17 and 19): a route's value
//! links to the page filtered by it (a hostile value with `*`, `\`, `&`, `#` and
//! non-ASCII, escaped for the grammar and the URL), the filter shows as a chip and the
//! headline numbers equal the API's filtered overview; a country link adds a second
//! filter, a chip's link removes one, the range picker keeps them; no load is blocked by
//! the page's policy, and at 1280 and 390 px nothing overflows with the long chips
//! showing. A share link keeps its token in every filter link.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::browser::{Browser, assert_pngs};
use crate::support::*;

/// A route of 300 characters with everything the grammar or a URL could misread (a
/// hash route, which ingest keeps, so that the value holds a `#`).
fn hostile_route() -> String {
    let head = r"/files/a*b\c&d=é+2%20#/日本/*/";
    let filler: String = "segment-without-any-break-"
        .chars()
        .cycle()
        .take(300 - head.chars().count())
        .collect();
    format!("{head}{filler}")
}

/// A value as the filter grammar writes it: `*` and `\` escaped.
fn escaped(value: &str) -> String {
    let mut out = String::new();
    for c in value.chars() {
        if c == '*' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The decoded `filter` parameters of a URL's query.
fn filters_of(url: &str) -> Vec<String> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let query = query.split('#').next().unwrap_or_default();
    query
        .split('&')
        .filter_map(|pair| pair.strip_prefix("filter="))
        .map(decode)
        .collect()
}

/// Percent-decoding of a form-encoded value (`+` is a space).
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// The form encoding of a `filter` parameter, for the API.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The API's overview of the last 7 days under `filters` (grammar texts).
fn overview_under(p: &Project, filters: &[String]) -> Value {
    let query: String = filters
        .iter()
        .map(|f| format!("&filter={}", encode(f)))
        .collect();
    let a = p.read(&format!("overview?days=7{query}"));
    assert_eq!(a.status, 200, "{}", a.json);
    a.json
}

/// The headline numbers on the page equal the API's overview under the same filters,
/// which counts fewer events than `total`.
fn assert_headline_is_the_apis(browser: &Browser, p: &Project, filters: &[String], total: u64) {
    let api = overview_under(p, filters);
    let events = api["events"].as_u64().unwrap();
    assert!(0 < events && events < total, "{filters:?}: {api}");
    assert!(api["sample_rate"].is_null(), "{api}");
    for (id, field) in [
        ("events", "events"),
        ("errors", "errors"),
        ("users", "unique_users"),
        ("instances", "unique_instances"),
    ] {
        assert_eq!(
            browser.text(&format!("#{id} .v")),
            api[field].as_u64().unwrap().to_string(),
            "{id} under {filters:?}: {api}"
        );
    }
    // The numbers are exact, and the page says how they were read.
    let served = browser.script(
        "return document.getElementById('served-by').dataset.servedBy;",
        json!([]),
    );
    assert!(served == "rollups" || served == "raw", "{served}");
}

/// Clicks the link of the value whose cell's tooltip is `value` in the table `table`.
fn click_value(browser: &Browser, table: &str, value: &str) {
    let clicked = browser.script(
        "const cell = [...document.querySelectorAll(arguments[0] + ' td.t')].find(c => c.title === arguments[1]);\
         if (!cell || !cell.querySelector('a')) return false;\
         cell.querySelector('a').click(); return true;",
        json!([table, value]),
    );
    assert_eq!(clicked, true, "{table} links {value:?}");
}

fn chips(browser: &Browser) -> Vec<String> {
    let titles = browser.script(
        "return [...document.querySelectorAll('#filters .chip')].map(c => c.title);",
        json!([]),
    );
    titles
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn dashboard_filters_follow_value_links_and_chips_and_equal_the_apis_filtered_overview() {
    let p = Project::new("dash-filters");
    let route = hostile_route();
    let run = run_id();
    let now = now_ms();
    // 120 events of the last two hours: three routes (the hostile one on every third),
    // three countries, errors on every fifth, users on most.
    let events: Vec<Value> = (0..120u32)
        .map(|i| {
            let route = match i % 3 {
                0 => route.clone(),
                1 => "/api/users".to_owned(),
                _ => "/web/home".to_owned(),
            };
            let failed = i % 5 == 0;
            json!({
                "event_id": event_id(run, i), "timestamp": now - i64::from(i) * 60_000,
                "name": "request", "route": route, "status": if failed { 500 } else { 200 },
                "error_class": if failed { Some("Timeout") } else { None },
                "duration_ms": 10 + i, "country": (["DE", "US", "FR"][(i % 4 % 3) as usize]),
                "user": format!("u{}", i % 37), "instance": format!("i{}", i % 11),
            })
        })
        .collect();
    let n = events.len() as u64;
    let sent = send_events(&p, &Value::Array(events));
    assert_eq!(sent.status, 202, "{}", sent.json);
    assert_eq!(sent.json["accepted"], n, "{}", sent.json);
    wait_for_count(&p, n);

    let browser = Browser::start();
    let page = format!("{}/dashboard/{}?days=7", url("query"), p.slug);
    browser.open_signed_in(&page, &p.read_token);
    browser.wait_for("#route-table");
    assert_eq!(browser.count("#filters"), 0);
    assert_eq!(browser.text("#events .v"), n.to_string());

    // A route's value: its link carries the value escaped for the grammar.
    let by_route = format!("route:{}", escaped(&route));
    click_value(&browser, "#route-table", &route);
    browser.wait_for_url("filter=");
    browser.wait_for("#filters .chip");
    let here = browser.url();
    assert!(here.contains("days=7"), "{here}");
    assert_eq!(filters_of(&here), std::slice::from_ref(&by_route), "{here}");
    assert_eq!(chips(&browser), [format!("route is {route}")]);
    assert_headline_is_the_apis(&browser, &p, std::slice::from_ref(&by_route), n);

    // A country's value adds a second filter.
    click_value(&browser, "#country-table", "DE");
    browser.wait_for_url("country");
    let both = [by_route.clone(), "country:DE".to_owned()];
    assert_eq!(filters_of(&browser.url()), both);
    assert_eq!(chips(&browser).len(), 2);
    assert_headline_is_the_apis(&browser, &p, &both, n);

    // The long chips fit at both widths.
    browser.assert_nothing_overflows("1280 px, filtered");
    let wide = browser.screenshot("dashboard-filtered-1280.png");
    let filtered_page = browser.url();
    browser.emulate_phone(390, 844);
    browser.goto(&filtered_page);
    browser.wait_for("#filters .chip");
    browser.assert_nothing_overflows("390 px, filtered");
    let phone = browser.screenshot("dashboard-filtered-390.png");
    assert_pngs(&[&wide, &phone], 10_000);

    // Removing the route's chip leaves the country's.
    let removed = browser.script(
        "const chip = [...document.querySelectorAll('#filters .chip')].find(c => c.title.startsWith('route is'));\
         chip.querySelector('a').click(); return true;",
        json!([]),
    );
    assert_eq!(removed, true);
    eventually("the route's chip is gone", Duration::from_secs(15), || {
        let now = filters_of(&browser.url());
        if now == ["country:DE"] {
            Ok(())
        } else {
            Err(format!("{now:?}"))
        }
    });
    browser.wait_for("#events .v");
    assert_eq!(chips(&browser), ["country is DE"]);
    assert_headline_is_the_apis(&browser, &p, &["country:DE".to_owned()], n);

    // The range picker keeps the filter: every state is a URL.
    browser.click("#days button[value=\"30\"]");
    browser.wait_for_url("days=30");
    browser.wait_for("#filters .chip");
    assert_eq!(filters_of(&browser.url()), ["country:DE"]);

    let blocked = browser.blocked_by_policy();
    assert!(blocked.is_empty(), "{blocked:?}");

    // A share link keeps its token in the value links and the chips' links.
    let share = admin(
        "POST",
        &format!("/projects/{}/share", p.slug),
        Some(&json!({"expires_in_days": 1})),
    );
    assert_eq!(share.status, 201, "{}", share.json);
    let token = share.json["share"]["token"].as_str().unwrap();
    let shared = p.dashboard_anonymous(&format!("?days=7&filter=country%3ADE&share={token}"));
    assert_eq!(shared.status, 200);
    let html = shared.json.as_str().expect("an HTML page");
    let with_token = format!("filter=country%3ADE&amp;share={}", encode(token));
    assert!(html.contains(&with_token), "chips and links keep {token}");
    assert!(html.contains(r#"<span class="cv">country is DE</span>"#));
    assert!(html.contains(&format!(
        "filter=route%3A%2Fapi%2Fusers&amp;filter=country%3ADE&amp;share={}",
        encode(token)
    )));

    // A bad filter is the page's error, naming the problem.
    let bad = p.dashboard_anonymous(&format!("?filter=planet:mars&share={token}"));
    assert_eq!(bad.status, 400);
    let html = bad.json.as_str().expect("an HTML page");
    assert!(
        html.contains("there is no filter by &quot;planet&quot;"),
        "{html}"
    );
}

#[test]
fn a_sampled_dashboard_says_so_with_the_apis_rate_and_numbers() {
    let p = Project::new("dash-sampled");
    let budget = filter_row_budget();
    // As many events as the budget has rows: at two rows an event, a filter that
    // rollups cannot answer is read from a sample of users, on the page as in the API.
    let n = u32::try_from(budget).unwrap();
    let run = run_id();
    let now = now_ms();
    let events: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "event_id": event_id(run, i), "timestamp": now - i64::from(i) * 30_000,
                "name": "request", "route": format!("/r{}", i % 7), "status": 200,
                "country": (["DE", "US", "FR"][(i % 3) as usize]),
                "user": format!("u{}", i % 400), "duration_ms": i % 90,
            })
        })
        .collect();
    for batch in events.chunks(500) {
        let sent = send_events(&p, &Value::Array(batch.to_vec()));
        assert_eq!(sent.status, 202, "{}", sent.json);
    }
    wait_for_count(&p, u64::from(n));

    let by = ["country!=FR".to_owned()];
    let api = overview_under(&p, &by);
    assert_eq!(api["served_by"], "sampled", "{api}");
    let buckets = (api["sample_rate"].as_f64().unwrap() * 256.0).round() as u64;
    let page = p.dashboard("?days=7&filter=country%21%3DFR");
    assert_eq!(page.status, 200);
    let html = page.json.as_str().expect("an HTML page");
    assert!(
        html.contains(r#"id="served-by" data-served-by="sampled""#),
        "the page says it was sampled"
    );
    assert!(
        html.contains(&format!("(sample rate {buckets}/256)")),
        "at the API's rate, {buckets}/256"
    );
    // Beside the headline numbers, which are the API's sampled ones.
    let note = html.find(r#"id="served-by""#).unwrap();
    assert!(note < html.find(r#"class="cards""#).unwrap());
    for (id, field) in [("events", "events"), ("users", "unique_users")] {
        let value = api[field].as_u64().unwrap();
        let grouped = grouped(value);
        let card = &html[html
            .find(&format!(r#"<div class="card" id="{id}">"#))
            .unwrap()..];
        let shown = &card[card.find(r#"<div class="v">"#).unwrap() + 15..];
        assert_eq!(
            &shown[..shown.find('<').unwrap()],
            grouped,
            "{id} is the API's {value}"
        );
    }

    // The funnel section follows the filters as the API's `/funnels` does, sampled
    // alike (every event is a step here: at two rows each, and the seeks of three
    // names, more than the funnel's budget reads).
    let steps = "steps=request,signup,buy&window=1h";
    let funnel = p.read(&format!("funnels?days=7&{steps}&filter=country%21%3DFR"));
    assert_eq!(funnel.status, 200, "{}", funnel.json);
    assert_eq!(funnel.json["served_by"], "sampled", "{}", funnel.json);
    let page = p.dashboard(&format!("?days=7&{steps}&filter=country%21%3DFR"));
    assert_eq!(page.status, 200);
    let html = page.json.as_str().expect("an HTML page");
    let section = &html[html.find(r#"id="funnel""#).unwrap()..];
    assert!(section.contains(r#"id="funnel-filtered""#));
    assert!(section.contains(r#"id="funnel-sampled""#), "{section}");
    let table = &section[section.find(r#"<table id="funnel-steps">"#).unwrap()..];
    for step in funnel.json["steps"].as_array().unwrap() {
        let users = grouped(step["users"].as_u64().unwrap());
        assert!(
            table.contains(&format!("<td>{users}</td>")),
            "{users} in {table}"
        );
    }
    // The realtime link carries the filters, and the realtime page follows them.
    assert!(html.contains(&format!(
        r#"<a id="realtime-link" href="/dashboard/{}/realtime?filter=country%21%3DFR">"#,
        p.slug
    )));
    let live = p.dashboard("/realtime?filter=country%21%3DFR");
    assert_eq!(live.status, 200);
    let html = live.json.as_str().expect("an HTML page");
    assert!(
        html.contains(r#"id="rt-filters" data-served-by="raw""#),
        "{html}"
    );
    assert!(html.contains("Filtered by country!=FR"));
}

/// A count as the dashboard groups it: `1,234`.
fn grouped(value: u64) -> String {
    value
        .to_string()
        .as_bytes()
        .rchunks(3)
        .rev()
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(",")
}
