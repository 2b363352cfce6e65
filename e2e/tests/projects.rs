//! The project list at `/dashboard` (issue 19, across projects): the admin's roll-up of
//! every project's headline numbers and trend, over real HTTP and in headless Chromium —
//! who may see it, that its numbers are the query API's, that its admin session opens
//! each project's dashboard, and that it fits a phone.

use serde_json::{Value, json};

use crate::support::browser::{Browser, assert_pngs};
use crate::support::*;

/// A project with `n` events over the last three days, `errors` of them failing.
fn seeded(prefix: &str, n: u32, errors: u32) -> Project {
    let p = Project::new(prefix);
    let run = run_id();
    let now = now_ms();
    let events: Vec<Value> = (0..n)
        .map(|i| {
            json!({"event_id": event_id(run, i), "timestamp": now - i64::from(i) * 3_600_000,
                "name": "request", "route": "/api/items", "status": if i < errors { 500 } else { 200 },
                "duration_ms": 20, "user": format!("u{}", i % 4)})
        })
        .collect();
    let sent = send_events(&p, &Value::Array(events));
    assert_eq!(sent.status, 202, "{}", sent.json["accepted"]);
    wait_for_count(&p, u64::from(n));
    p
}

fn list(query: &str, headers: &[(&str, &str)]) -> Answer {
    request(
        "GET",
        &format!("{}/dashboard{query}", url("query")),
        headers,
        None,
    )
}

fn html(answer: &Answer) -> &str {
    answer.json.as_str().expect("an HTML page")
}

#[test]
fn the_project_list_is_the_admins_and_its_numbers_are_the_apis() {
    let busy = seeded("plist-busy", 40, 4);
    let quiet = seeded("plist-quiet", 6, 0);
    let admin_auth = format!("Bearer {}", admin_token());

    // Nobody else sees it: no token, a read token, a forged session.
    for headers in [
        vec![],
        vec![("authorization", busy.read_auth())],
        vec![(
            "cookie",
            format!(
                "tally.admin=sh_0000000000000000.9999999999.{}",
                "a".repeat(64)
            ),
        )],
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let refused = list("", &headers);
        assert_eq!(refused.status, 401, "{headers:?}");
        assert!(html(&refused).contains("Admin token"), "{headers:?}");
        assert!(!html(&refused).contains(&busy.slug));
    }

    // The admin token in a header: both projects, with the API's numbers.
    let answer = list("?days=7&q=plist-", &[("authorization", &admin_auth)]);
    assert_eq!(answer.status, 200, "{}", answer.json);
    let page = html(&answer);
    for (p, errors) in [(&busy, "4"), (&quiet, "0")] {
        let overview = overview(p);
        let events = overview.json["events"].as_u64().unwrap();
        let row = &page[page.find(&format!(r#"<tr id="p-{}">"#, p.slug)).unwrap()..];
        let row = &row[..row.find("</tr>").unwrap()];
        assert!(
            row.contains(&format!(r#"<td class="events">{events}</td>"#)),
            "{row}"
        );
        assert!(
            row.contains(&format!(r#"<td class="wide">{errors}</td>"#)),
            "{row}"
        );
        assert!(row.contains(&format!(r#"href="/dashboard/{}?days=7""#, p.slug)));
        assert!(row.contains("<svg class=\"spark\""));
    }
    let only_busy = list(
        &format!("?q={}", busy.slug),
        &[("authorization", &admin_auth)],
    );
    assert!(html(&only_busy).contains(&busy.slug) && !html(&only_busy).contains(&quiet.slug));

    // In a browser: sign in with the admin token, find the projects, open one.
    let browser = Browser::start();
    let query = url("query");
    browser.goto(&format!("{query}/dashboard"));
    browser.sign_in("not the admin token", "#login-error");
    browser.sign_in(&admin_token(), "#range");
    browser.goto(&format!("{query}/dashboard?days=7&q=plist-"));
    browser.wait_for("#project-list");
    assert_eq!(browser.text(&format!("#p-{} td.events", busy.slug)), "40");
    browser.assert_nothing_overflows("project list, 1280 px");
    let wide = browser.screenshot("projects-1280.png");
    browser.click(&format!("#p-{} a", busy.slug));
    browser.wait_for("#events .v");
    assert_eq!(browser.text("#events .v"), "40");
    assert!(browser.text("header").contains("All projects"));
    browser.click("#all-projects");
    browser.wait_for("#project-list");
    browser.emulate_phone(390, 844);
    browser.goto(&format!("{query}/dashboard?days=30&q=plist-"));
    browser.wait_for("#project-list");
    browser.assert_nothing_overflows("project list, 390 px");
    let phone = browser.screenshot("projects-390.png");
    assert_pngs(&[&wide, &phone], 5_000);

    // Signing out ends the admin session: the list and the private dashboards ask again.
    browser.click("header button[name=logout]");
    browser.wait_for("input[name=token]");
    browser.goto(&format!("{query}/dashboard/{}", quiet.slug));
    browser.wait_for("input[name=token]");
}
