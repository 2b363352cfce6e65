//! Context for the dashboard's numbers (issue 19): each headline number is compared with
//! the previous period of the same length, and both sides equal what the query API
//! answers for those periods.

use serde_json::{Value, json};
use tally_core::time::{DAY_MS, date_label, date_of};

use crate::support::*;

/// The card `id` of a dashboard page: its value and, when shown, the previous period's
/// value (the change's tooltip) and the change's text.
fn card(html: &str, id: &str) -> (String, Option<String>, Option<String>) {
    let start = html
        .find(&format!(r#"<div class="card" id="{id}">"#))
        .unwrap_or_else(|| panic!("no card {id}"));
    let card = &html[start..];
    let card = &card[..card.find("</div></div>").map_or(card.len(), |end| end + 12)];
    let between = |open: &str, close: &str| {
        card.find(open).map(|at| {
            let rest = &card[at + open.len()..];
            rest[..rest.find(close).unwrap()].to_owned()
        })
    };
    (
        between(r#"<div class="v">"#, "<").expect("a value"),
        between(r#"title="previous period: "#, "\""),
        between(r#"">"#, "</div></div>").and_then(|d| d.rsplit('>').next().map(str::to_owned)),
    )
}

/// `1234` as the dashboard writes whole numbers: `1,234`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The answer of `path` (after the query host) for the whole days of `[from, to)`, read
/// with the project's read token.
fn dated(p: &Project, path: &str, from: i64, to: i64) -> Answer {
    request(
        "GET",
        &format!(
            "{}/{path}?from={}&to={}",
            url("query"),
            date_label(date_of(from)),
            date_label(date_of(to - 1))
        ),
        &[("authorization", &p.read_auth())],
        None,
    )
}

fn overview_of(p: &Project, from: i64, to: i64) -> Value {
    let answer = dated(p, &format!("v1/projects/{}/overview", p.slug), from, to);
    assert_eq!(answer.status, 200, "{}", answer.json);
    answer.json
}

#[test]
fn headline_numbers_compare_with_the_previous_period_as_the_api_answers_it() {
    let p = Project::new("context");
    let today = now_ms().div_euclid(DAY_MS) * DAY_MS;
    let run = run_id();
    // Day k before today (1..=14) holds 3k events at noon, k of them errors, from k
    // users: the last 7 days and the 7 before differ in every number.
    let mut events = Vec::new();
    for k in 1..=14i64 {
        for i in 0..3 * k {
            events.push(json!({
                "event_id": event_id(run, events.len() as u32),
                "timestamp": today - k * DAY_MS + 12 * 3_600_000 + i,
                "name": "request", "route": "/api/items", "status": if i < k { 500 } else { 200 },
                "duration_ms": 10 * (i + 1), "user": format!("u{}", i % k),
            }));
        }
    }
    let n = events.len() as u64;
    let sent = send_events(&p, &Value::Array(events));
    assert_eq!(sent.status, 202, "{}", sent.json["accepted"]);
    wait_for_count(&p, n);

    let (from, to) = (today - 7 * DAY_MS, today);
    let answer = dated(&p, &format!("dashboard/{}", p.slug), from, to);
    assert_eq!(answer.status, 200);
    let page = answer.json.as_str().expect("an HTML page").to_owned();
    let now = overview_of(&p, from, to);
    let before = overview_of(&p, from - 7 * DAY_MS, from);
    let count =
        |v: &Value, field: &str| v[field].as_u64().unwrap_or_else(|| panic!("{field}: {v}"));
    assert_eq!(count(&now, "events"), 3 * (1..=7).sum::<u64>());
    assert_eq!(count(&before, "events"), 3 * (8..=14).sum::<u64>());
    for (id, field) in [
        ("events", "events"),
        ("errors", "errors"),
        ("users", "unique_users"),
    ] {
        let (value, previous, change) = card(&page, id);
        let (a, b) = (count(&now, field), count(&before, field));
        assert_eq!(value, grouped(a), "{id} now");
        assert_eq!(previous.as_deref(), Some(&grouped(b)[..]), "{id} before");
        let change = change.unwrap_or_default();
        assert!(
            change.starts_with("▼ −") && change.contains(&grouped(b - a)),
            "{id}: {change} for {a} after {b}"
        );
    }
    let rate = |v: &Value| count(v, "errors") as f64 / count(v, "events") as f64;
    let (value, previous, _) = card(&page, "error-rate");
    assert_eq!(value, format!("{:.1}%", rate(&now) * 100.0));
    assert_eq!(previous.unwrap(), format!("{:.1}%", rate(&before) * 100.0));
    // The charts' table: each day beside the same day a week earlier (the faint line).
    let table = &page[page.find(r#"id="chart-table""#).expect("the charts' table")..];
    let table = &table[..table.find("</table>").unwrap()];
    let rows: Vec<Vec<&str>> = table
        .split("<tr>")
        .skip(2)
        .map(|row| {
            row.split("<td")
                .skip(1)
                .map(|cell| {
                    let cell = &cell[cell.find('>').unwrap() + 1..];
                    cell.split("</td>").next().unwrap()
                })
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), 7, "{table}");
    for (i, row) in rows.iter().enumerate() {
        let k = 7 - i as u64;
        assert_eq!(row[1], (3 * k).to_string(), "events of day -{k}: {row:?}");
        assert_eq!(row[5], (3 * (k + 7)).to_string(), "a week before: {row:?}");
    }
    assert_eq!(
        page.matches(r#"<path class="prev""#).count(),
        3,
        "on each time chart"
    );
    assert!(page.contains(&format!(
        "Changes compare with the period of the same length before: {} 00:00 – {} 00:00 UTC.",
        date_label(date_of(from - 7 * DAY_MS)),
        date_label(date_of(from))
    )));
}
