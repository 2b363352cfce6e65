//! The realtime view end to end: events through ingest, the queue and the consumer's
//! minute rows, read back from `GET /v1/projects/{p}/realtime` (exact counts of the
//! current minute, visitors, top routes and sources, nothing older than 30 minutes,
//! `no-store`, refusals), and `/dashboard/{p}/realtime` in headless Chromium showing a
//! fresh event after reloading itself, with no console report of a blocked load.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::support::browser::{Browser, artifacts_dir};
use crate::support::*;

const MINUTE: i64 = 60_000;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Waits, if need be, until the current minute has at least `seconds` left, so events
/// sent now are still in the current minute when they are read back.
fn with_minute_left(seconds: i64) -> i64 {
    let now = now_ms();
    let left = MINUTE - now.rem_euclid(MINUTE);
    if left < seconds * 1000 {
        std::thread::sleep(Duration::from_millis(left as u64 + 50));
    }
    now_ms()
}

fn realtime(project: &str, auth: Option<&str>) -> Answer {
    let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
    request(
        "GET",
        &format!("{}/v1/projects/{project}/realtime", url("query")),
        &headers,
        None,
    )
}

/// The `(value, events, errors)` of a top list.
fn top(list: &Value) -> Vec<(String, u64, u64)> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["value"].as_str().unwrap().to_owned(),
                t["events"].as_u64().unwrap(),
                t["errors"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn realtime_counts_the_current_minute_visitors_and_top_routes_but_nothing_older_than_30_minutes() {
    let p = Project::new("rt");
    let now = with_minute_left(25);
    let event = |name: &str, at: i64, user: Option<&str>, route: &str| {
        let mut e = json!({"name": name, "timestamp": at, "route": route, "duration_ms": 20});
        if let Some(user) = user {
            e["user"] = json!(user);
        }
        e
    };
    let mut error = event("request", now, Some("u2"), "/home");
    error["status"] = json!(500);
    error["error_class"] = json!("Timeout");
    error["duration_ms"] = json!(900);
    let mut from_hn = event("pageview", now, Some("u1"), "/home");
    from_hn["source"] = json!("hn");
    from_hn["duration_ms"] = json!(40);
    let mut also_hn = event("pageview", now, Some("u3"), "/pricing");
    also_hn["source"] = json!("hn");
    also_hn["duration_ms"] = json!(60);
    let mut second = event("pageview", now, Some("u1"), "/home");
    second["duration_ms"] = json!(80);
    let events = json!([
        // This minute: three users (and an event without one), an error, two from hn;
        // durations 20, 40, 60, 80 and 900 ms.
        from_hn,
        second,
        error,
        also_hn,
        event("ping", now, None, "/health"),
        // Ten minutes ago: in the minutes and the top lists, not among visitors.
        event("pageview", now - 10 * MINUTE, Some("u4"), "/ten"),
        // Forty minutes ago: accepted (within retention), but in none of it.
        event("pageview", now - 40 * MINUTE, Some("u9"), "/old"),
        event("request", now - 40 * MINUTE - 5_000, Some("u9"), "/old"),
    ]);
    let sent = send_events(&p, &events);
    assert_eq!(sent.status, 202, "{}", sent.json);
    wait_for_count(&p, 8);

    let auth = p.read_auth();
    let a = realtime(&p.slug, Some(&auth));
    assert_eq!(a.status, 200, "{}", a.json);
    assert_eq!(a.header("cache-control"), Some("no-store"));
    let rows_read: u64 = a
        .header("x-tally-rows-read")
        .and_then(|v| v.parse().ok())
        .expect("every answer says the rows it read");
    eprintln!("realtime: {rows_read} D1 rows read for 8 events");
    let body = &a.json;
    assert_eq!(body["project"], p.slug.as_str());

    // Thirty whole minutes, one after the other, the last partial.
    let minutes = body["minutes"].as_array().unwrap();
    assert_eq!(minutes.len(), 30, "{body}");
    let start = |m: &Value| -> String { m["start"].as_str().unwrap().to_owned() };
    for (i, m) in minutes.iter().enumerate() {
        assert!(start(m).ends_with(":00.000Z"), "aligned to the minute: {m}");
        assert_eq!(m["partial"], i == 29, "{m}");
    }
    assert_eq!(body["from"], start(&minutes[0]).as_str());
    let total: u64 = minutes.iter().map(|m| m["events"].as_u64().unwrap()).sum();
    assert_eq!(
        total, 6,
        "the forty-minute-old events are not counted: {body}"
    );
    let current = &minutes[29];
    assert_eq!(
        (current["events"].as_u64(), current["errors"].as_u64()),
        (Some(5), Some(1)),
        "{current}"
    );
    // The sketch's p95 is the value at index floor(0.95 × (n − 1)) of the sorted
    // durations, within 1%: index 3 of [20, 40, 60, 80, 900].
    let p95 = current["p95_ms"].as_f64().unwrap();
    assert!(
        (p95 - 80.0).abs() <= 0.8,
        "p95 of this minute's durations: {p95}"
    );
    let ten_ago = &minutes[19];
    assert_eq!(ten_ago["events"], 1, "{ten_ago}");
    assert!(
        minutes
            .iter()
            .enumerate()
            .all(|(i, m)| i == 19 || i == 29 || m["events"] == 0),
        "{body}"
    );

    // Visitors: u1, u2 and u3 in the last five minutes; u4 is older, u9 much older.
    assert_eq!(
        body["visitors"],
        json!({"count": 3, "window_minutes": 5, "events_read": 5,
               "budget": 10_000, "truncated": false})
    );
    assert_eq!(body["top"]["window_minutes"], 30);
    assert_eq!(
        top(&body["top"]["routes"]),
        [
            ("/home".to_owned(), 3, 1),
            ("/health".to_owned(), 1, 0),
            ("/pricing".to_owned(), 1, 0),
            ("/ten".to_owned(), 1, 0),
        ]
    );
    assert_eq!(top(&body["top"]["sources"]), [("hn".to_owned(), 2, 0)]);

    // Refusals: no token, a bad one, another project's, an unknown project, a bad slug,
    // another method. Each a JSON error that says why.
    let other = Project::new("rt-other");
    let other_auth = other.read_auth();
    let admin = format!("Bearer {}", admin_token());
    let refusals: [(&str, Option<&str>, u16, Option<&str>); 5] = [
        (&p.slug, None, 401, None),
        (&p.slug, Some("Bearer tr_not_a_token"), 401, None),
        (&p.slug, Some(&other_auth), 403, Some("wrong_project")),
        (
            "rt-no-such-project",
            Some(&admin),
            404,
            Some("unknown_project"),
        ),
        ("Not_A_Slug", Some(&admin), 400, Some("invalid_project")),
    ];
    for (project, auth, status, code) in refusals {
        let a = realtime(project, auth);
        assert_eq!(a.status, status, "{project} {auth:?}: {}", a.json);
        let error = &a.json["error"];
        assert!(
            error["message"].as_str().is_some_and(|m| m.len() > 10),
            "{}",
            a.json
        );
        if let Some(code) = code {
            assert_eq!(error["code"], code, "{}", a.json);
        }
    }
    let post = request(
        "POST",
        &format!("{}/v1/projects/{}/realtime", url("query"), p.slug),
        &[("authorization", &auth)],
        Some("{}"),
    );
    assert_eq!(post.status, 405, "{}", post.json);
    // OPTIONS too: a browser page's preflight of this read.
    assert_eq!(post.header("allow"), Some("GET, OPTIONS"));
}

/// What the realtime page shows in a card, or `None` while it reloads.
fn card(browser: &Browser, id: &str) -> Option<String> {
    browser
        .try_script(&format!(
            "const v = document.querySelector('#{id} .v'); return v ? v.textContent : null;"
        ))
        .and_then(|v| v.as_str().map(str::to_owned))
}

#[test]
fn the_realtime_page_shows_a_fresh_event_after_reloading_itself_without_a_csp_violation() {
    let p = Project::new("rt-page");
    let first =
        json!([{"name": "pageview", "route": "/first", "user": "u1", "timestamp": now_ms()}]);
    assert_eq!(send_events(&p, &first).status, 202);
    wait_for_count(&p, 1);

    let browser = Browser::start();
    let query = url("query");
    // Signing in on the realtime view returns to it, not to the dashboard.
    browser.goto(&format!("{query}/dashboard/{}/realtime", p.slug));
    browser.sign_in(&p.read_token, "#rt-events .v");
    let on_realtime = || {
        assert!(
            browser
                .url()
                .ends_with(&format!("/dashboard/{}/realtime", p.slug)),
            "{}",
            browser.url()
        );
    };
    on_realtime();
    // The dashboard links to the realtime view.
    browser.goto(&format!("{query}/dashboard/{}", p.slug));
    browser.wait_for("#events .v");
    browser.click("#realtime-link");
    browser.wait_for("#rt-events .v");
    on_realtime();
    assert_eq!(card(&browser, "rt-events").as_deref(), Some("1"));
    assert_eq!(card(&browser, "rt-visitors").as_deref(), Some("1"));
    assert!(browser.text("#rt-routes").contains("/first 1 0"));
    assert_eq!(browser.count("#rt-minutes tbody tr"), 30);
    assert_eq!(browser.count("#rt-minutes tr.partial"), 1);
    let refresh = browser.script(
        "return document.querySelector('meta[http-equiv=refresh]').content",
        json!([]),
    );
    assert_eq!(refresh, "10");
    // A mark on this document: a reload replaces it, so its absence proves one.
    browser.script("document.body.dataset.loadedBefore = 'yes';", json!([]));

    let fresh =
        json!([{"name": "pageview", "route": "/fresh", "user": "u2", "timestamp": now_ms()}]);
    let sent_at = Instant::now();
    assert_eq!(send_events(&p, &fresh).status, 202);
    // The test only reads the DOM; the page reloads itself every 10 s.
    let seen = eventually(
        "the realtime page shows the fresh event",
        Duration::from_secs(45),
        || {
            let reloaded = browser
                .try_script("return document.body ? document.body.dataset.loadedBefore || null : 'loading';")
                .is_some_and(|v| v.is_null());
            match card(&browser, "rt-events") {
                Some(events) if reloaded && events == "2" => Ok(sent_at.elapsed()),
                other => Err(format!("reloaded: {reloaded}, events: {other:?}")),
            }
        },
    );
    // The figure for the record, beside the screenshot (a passing test's output is not
    // shown).
    let figure = format!(
        "the realtime page showed a fresh event {:.1} s after ingest accepted it\n",
        seen.as_secs_f64()
    );
    std::fs::write(artifacts_dir().join("realtime.txt"), figure).unwrap();
    assert_eq!(card(&browser, "rt-visitors").as_deref(), Some("2"));
    assert!(browser.text("#rt-routes").contains("/fresh 1 0"));
    browser.screenshot("realtime-1280.png");

    // Nothing the pages did was blocked by their policy...
    let blocked = browser.blocked_by_policy();
    assert!(blocked.is_empty(), "{blocked:?}");
    // ...and the console would have said so: a load the policy forbids is reported.
    browser.script(
        "const img = document.createElement('img'); img.src = 'http://127.0.0.1:9/x.png'; document.body.append(img);",
        json!([]),
    );
    eventually(
        "a blocked load is reported",
        Duration::from_secs(10),
        || {
            if browser.blocked_by_policy().is_empty() {
                Err("no report yet".to_owned())
            } else {
                Ok(())
            }
        },
    );
}

#[test]
fn the_realtime_page_takes_the_dashboards_gate_and_policy_and_keeps_a_share_link() {
    let p = Project::new("rt-gate");
    let other = Project::new("rt-gate-other");
    let page = |path: &str, auth: Option<&str>| {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
        let a = request("GET", &format!("{}{path}", url("query")), &headers, None);
        let body = a.json.as_str().unwrap_or_default().to_owned();
        (a, body)
    };
    let live = format!("/dashboard/{}/realtime", p.slug);
    let auth = p.read_auth();

    let (dashboard, _) = page(&format!("/dashboard/{}", p.slug), Some(&auth));
    let (a, body) = page(&live, Some(&auth));
    assert_eq!(a.status, 200, "{body}");
    assert_eq!(a.header("cache-control"), Some("no-store"));
    assert!(dashboard.header("content-security-policy").is_some());
    for header in [
        "content-security-policy",
        "referrer-policy",
        "x-content-type-options",
    ] {
        assert_eq!(a.header(header), dashboard.header(header), "{header}");
    }
    assert!(body.contains(r#"<meta http-equiv="refresh" content="10">"#));
    assert!(!body.contains("<script"), "{body}");
    assert_eq!(
        body.matches("<tr><td>").count() + 1,
        30,
        "30 minutes: {body}"
    );

    // Without a token: the login form; with another project's: what the dashboard says.
    let (anonymous, body) = page(&live, None);
    assert_eq!(anonymous.status, 401);
    assert!(body.contains(r#"name="token""#), "{body}");
    let other_auth = other.read_auth();
    let (wrong, _) = page(&live, Some(&other_auth));
    let (wrong_dashboard, _) = page(&format!("/dashboard/{}", p.slug), Some(&other_auth));
    assert_ne!(wrong.status, 200);
    assert_eq!(wrong.status, wrong_dashboard.status);

    // A share link opens it, and both pages link to each other keeping the link.
    let made = admin(
        "POST",
        &format!("/projects/{}/share", p.slug),
        Some(&json!({"expires_in_days": 1})),
    );
    assert_eq!(made.status, 201, "{}", made.json);
    let token = made.json["share"]["token"].as_str().unwrap().to_owned();
    let (shared, body) = page(&format!("{live}?share={token}"), None);
    assert_eq!(shared.status, 200, "{body}");
    assert!(
        body.contains(&format!(r#"href="/dashboard/{}?share={token}""#, p.slug)),
        "{body}"
    );
    let (_, dashboard_body) = page(&format!("/dashboard/{}?share={token}", p.slug), None);
    assert!(
        dashboard_body.contains(&format!(r#"href="{live}?share={token}""#)),
        "{dashboard_body}"
    );
    let id = made.json["share"]["id"].as_str().unwrap();
    let revoked = admin("DELETE", &format!("/projects/{}/share/{id}", p.slug), None);
    assert_eq!(revoked.status, 200, "{}", revoked.json);
    let (refused, body) = page(&format!("{live}?share={token}"), None);
    assert_eq!(refused.status, 403, "{body}");
}
