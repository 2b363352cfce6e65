//! The funnel end to end: the dashboard's funnel table, read in headless Chromium, is
//! the query API's `/funnels` answer for the same steps, range and window (users who
//! went through the steps in order, their share of step 1 and of the step before), not
//! the steps' event counts.

use serde_json::{Value, json};

use crate::support::browser::Browser;
use crate::support::*;

const MINUTE: i64 = 60_000;

/// Users who make each step count or not, within a window of one hour, from `t0`:
///
/// - u0: visit, signup 10 min later, purchase 10 min after that: all three steps.
/// - u1: visit, two signups, a purchase two hours later (past the window): two steps.
/// - u2: a signup half an hour *before* the visit: the visit only.
/// - u3: two visits, a signup 50 minutes after the second: two steps.
/// - u4: a purchase only: nothing.
/// - u5: a visit only: one step.
/// - u6: visit and signup at the same millisecond: the earlier step counts first, two.
/// - three visits without a user, and another name, which no funnel counts.
///
/// Users per step: 6, 4, 1; events per step: 10, 6, 3.
fn workload(run: u32, t0: i64) -> Vec<Value> {
    let mut events = Vec::new();
    let mut push = |name: &str, user: Option<&str>, at: i64| {
        let mut e = json!({"name": name, "timestamp": at,
                           "event_id": event_id(run, events.len() as u32)});
        if let Some(user) = user {
            e["user"] = json!(user);
        }
        events.push(e);
    };
    let u = Some;
    push("visit", u("u0"), t0);
    push("signup", u("u0"), t0 + 10 * MINUTE);
    push("purchase", u("u0"), t0 + 20 * MINUTE);
    push("visit", u("u1"), t0 + MINUTE);
    push("signup", u("u1"), t0 + 6 * MINUTE);
    push("signup", u("u1"), t0 + 7 * MINUTE);
    push("purchase", u("u1"), t0 + 121 * MINUTE);
    push("signup", u("u2"), t0 - 30 * MINUTE);
    push("visit", u("u2"), t0);
    push("visit", u("u3"), t0 + 2 * MINUTE);
    push("visit", u("u3"), t0 + 3 * MINUTE);
    push("signup", u("u3"), t0 + 53 * MINUTE);
    push("purchase", u("u4"), t0 + 5 * MINUTE);
    push("visit", u("u5"), t0 + 9 * MINUTE);
    push("visit", u("u6"), t0 + 11 * MINUTE);
    push("signup", u("u6"), t0 + 11 * MINUTE);
    for i in 0..3 {
        push("visit", None, t0 + i * MINUTE);
    }
    push("pageview", u("u0"), t0 + 4 * MINUTE);
    events
}

/// A share as the dashboard writes it: tenths of a percent, rounded, `–` of nothing.
fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "–".into();
    }
    let tenths = (part as f64 * 1000.0 / whole as f64).round() as u64;
    format!("{}.{}%", tenths / 10, tenths % 10)
}

#[test]
fn the_dashboard_funnel_table_is_the_apis_answer_per_user() {
    let p = Project::new("funnel");
    let events = workload(run_id(), now_ms() - 4 * 60 * MINUTE);
    let n = events.len() as u64;
    let sent = send_events(&p, &Value::Array(events));
    assert_eq!(sent.status, 202, "{}", sent.json);
    assert_eq!(sent.json["accepted"], n, "{}", sent.json);
    wait_for_count(&p, n);
    let query = url("query");
    let asked = "days=7&steps=visit,signup,purchase&window=1h";

    let answer = p.read(&format!("funnels?{asked}"));
    assert_eq!(answer.status, 200, "{}", answer.json);
    let steps = answer.json["steps"].as_array().unwrap();
    let users: Vec<u64> = steps.iter().map(|s| s["users"].as_u64().unwrap()).collect();
    assert_eq!(users, [6, 4, 1], "per user, in order, within the window");
    // What the API answers, as the dashboard writes it.
    let first = steps[0]["users"].as_u64().unwrap();
    let expected: Vec<Vec<String>> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let users = s["users"].as_u64().unwrap();
            let previous = if i == 0 {
                users
            } else {
                steps[i - 1]["users"].as_u64().unwrap()
            };
            assert_eq!(
                s["conversion"].as_f64(),
                Some(users as f64 / first as f64),
                "{s}"
            );
            vec![
                format!("{}. {}", i + 1, s["name"].as_str().unwrap()),
                users.to_string(),
                percent(users, first),
                percent(users, previous),
            ]
        })
        .collect();

    let browser = Browser::start();
    let page = format!("{query}/dashboard/{}?{asked}", p.slug);
    browser.open_signed_in(&page, &p.read_token);
    browser.wait_for("#funnel-steps td");
    let rows = browser.script(
        "return [...document.querySelectorAll('#funnel-steps tbody tr')]\
         .map(tr => [...tr.cells].map(c => c.textContent));",
        json!([]),
    );
    let rows: Vec<Vec<String>> = serde_json::from_value(rows).unwrap();
    assert_eq!(rows, expected, "the dashboard's table is the API's answer");
    let head = browser.text("#funnel-steps thead");
    assert_eq!(head, "Step Users Of step 1 Of the step before");
    assert!(
        browser
            .text("#funnel")
            .contains("each within 1h of their first step"),
        "{}",
        browser.text("#funnel")
    );
    // The form shows what was asked, so the view is its URL.
    let fields = browser.script(
        "return ['steps', 'window'].map(n => document.querySelector('#funnel input[name=' + n + ']').value);",
        json!([]),
    );
    assert_eq!(fields, json!(["visit,signup,purchase", "1h"]));
    let blocked = browser.blocked_by_policy();
    assert!(blocked.is_empty(), "{blocked:?}");
    browser.screenshot("funnel-1280.png");

    // A window the API refuses is refused in the section, and the page still answers.
    let refused = request(
        "GET",
        &format!(
            "{query}/dashboard/{}?days=7&steps=visit,signup&window=2w",
            p.slug
        ),
        &[("authorization", &p.read_auth())],
        None,
    );
    assert_eq!(refused.status, 200);
    let body = refused.json.as_str().unwrap_or_default();
    assert!(
        body.contains(
            r#"<p class="empty" id="funnel-steps">Window &quot;2w&quot; is not a duration"#
        ),
        "{body}"
    );
}
