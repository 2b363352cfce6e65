//! The dashboard and badges end to end: a known workload through ingest, then the page
//! in headless Chromium (login form, range picker, funnel steps, screenshots at 1280 px
//! and phone width), and over plain HTTP: badges, public dashboards, share links and
//! tokens of other projects.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::browser::{Browser, assert_pngs};
use crate::support::*;

/// An HTTP answer with its body as text. Redirects are not followed, so a login's 303
/// and its `Set-Cookie` can be checked.
#[derive(Debug)]
struct Page {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Page {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every `Set-Cookie` value, in order.
    fn set_cookies(&self) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// The session id a login set for `project`'s dashboard.
fn session_of(set_cookies: &[String], project: &str) -> String {
    let prefix = format!("tally_{project}=");
    set_cookies
        .iter()
        .find_map(|c| c.strip_prefix(&prefix))
        .and_then(|rest| rest.split(';').next())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| panic!("no session cookie in {set_cookies:?}"))
        .to_owned()
}

fn call(method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> Page {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let mut builder = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{}{path}", url("query")));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = match body {
        Some(body) => agent.run(builder.body(body.to_owned()).unwrap()),
        None => agent.run(builder.body(()).unwrap()),
    };
    let mut response = response.expect("the query worker answers");
    Page {
        status: response.status().as_u16(),
        headers: response
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect(),
        body: response.body_mut().read_to_string().unwrap(),
    }
}

fn get_page(path: &str) -> Page {
    call("GET", path, &[], None)
}

/// The seeded workload: 40 requests of a plugin on three routes (8 of them errors),
/// 15 marketing events and 5 image serves, spread over the last 33 hours.
///
/// - events 60, errors 8 (4 `TimeoutError` 500s, 4 `UpstreamError` 503s): 13.3%
/// - durations: 24 × 20 ms, 12 × 120 ms, 4 × 900 ms: p50 20 ms
/// - instances site-0..site-4: 5; users u0..u9: 10
/// - bytes 3 × 1,000,000 + 2 × 2,048 = 3,004,096: 2.9 MiB
/// - steps visit 10, signup 4, purchase 1, each user's in that order within 3 hours: as
///   many users reach each step
fn workload(run: u32, now: i64) -> Vec<Value> {
    let mut events = Vec::new();
    let mut push = |mut event: Value| {
        let i = events.len() as u32;
        event["event_id"] = json!(event_id(run, i));
        event["timestamp"] = json!(now - i64::from(i) * 33 * 60_000);
        events.push(event);
    };
    for i in 0..24 {
        push(
            json!({"name": "request", "method": "GET", "route": "/api/posts", "status": 200,
            "duration_ms": 20, "instance": format!("site-{}", i % 5), "version": "1.2.0",
            "colo": "FRA"}),
        );
    }
    for i in 0..12 {
        let failed = i % 3 == 0;
        push(
            json!({"name": "request", "method": "GET", "route": "/api/search",
            "status": if failed { 500 } else { 200 },
            "error_class": if failed { Some("TimeoutError") } else { None },
            "duration_ms": 120, "instance": format!("site-{}", i % 3), "version": "1.3.0",
            "colo": "AMS"}),
        );
    }
    for _ in 0..4 {
        push(
            json!({"name": "request", "method": "POST", "route": "/api/upload", "status": 503,
            "error_class": "UpstreamError", "duration_ms": 900, "instance": "site-4",
            "version": "1.3.0", "colo": "FRA"}),
        );
    }
    // Later events come first (each event is 33 minutes older than the one before): the
    // purchase, then the signups, then the visits, so each user's steps are in order.
    push(
        json!({"name": "purchase", "user": "u0", "source": "newsletter",
        "campaign": "spring-sale"}),
    );
    for i in 0..4 {
        push(
            json!({"name": "signup", "user": format!("u{i}"), "source": "newsletter",
            "campaign": "spring-sale"}),
        );
    }
    for i in 0..10 {
        let newsletter = i < 6;
        push(json!({"name": "visit", "user": format!("u{i}"),
            "source": if newsletter { "newsletter" } else { "twitter" },
            "campaign": if newsletter { Some("spring-sale") } else { None }}));
    }
    for i in 0..5 {
        let hero = i < 3;
        push(
            json!({"name": "serve", "item": if hero { "hero.png" } else { "logo.svg" },
            "variant": if hero { "w1024" } else { "original" },
            "bytes": if hero { 1_000_000 } else { 2048 }, "status": 200}),
        );
    }
    events
}

fn seeded(prefix: &str) -> Project {
    let p = Project::new(prefix);
    let events = workload(run_id(), now_ms());
    let n = events.len() as u64;
    let sent = send_events(&p, &Value::Array(events));
    assert_eq!(sent.status, 202, "{}", sent.json);
    assert_eq!(sent.json["accepted"], n, "{}", sent.json);
    wait_for_count(&p, n);
    p
}

#[test]
fn the_dashboard_in_a_browser_shows_the_workload_and_its_range_picker_works() {
    let p = seeded("dash");
    let query = url("query");
    // An alert rule that never has the volume to fire, and a campaign paused by hand.
    let rule = json!({"name": "upload errors", "metric": {"type": "error_rate"},
        "filter": {"dimension": "route", "value": "/api/upload"}, "comparator": ">",
        "threshold": 0.5, "window_minutes": 5, "min_volume": 100_000});
    p.create_rule(&rule);
    p.pause_campaign("spring-sale", "budget spent");
    let browser = Browser::start();

    // Without a token: the login form.
    browser.goto(&format!("{query}/dashboard/{}", p.slug));
    assert_eq!(
        browser.count("input[name=token]"),
        1,
        "{}",
        browser.source()
    );
    browser.sign_in(&p.read_token, "#events .v");

    // Signed in: the headline numbers of the workload.
    assert!(
        browser.url().ends_with(&format!("/dashboard/{}", p.slug)),
        "{}",
        browser.url()
    );
    let card = |id: &str| browser.text(&format!("#{id} .v"));
    assert_eq!(card("events"), "60");
    assert_eq!(card("errors"), "8");
    assert_eq!(card("error-rate"), "13.3%");
    assert_eq!(card("p50"), "20 ms");
    assert_eq!(card("instances"), "5");
    assert_eq!(card("users"), "10");
    assert_eq!(card("bandwidth"), "2.9 MiB");
    assert!(browser.text("#range").starts_with("Last 7 days"));
    let errors = browser.text("#error-classes");
    assert!(
        errors.contains("TimeoutError 4") && errors.contains("UpstreamError 4"),
        "{errors}"
    );
    let failing = browser.text("#failing-routes");
    assert!(failing.contains("/api/upload 4 4 100.0%"), "{failing}");
    assert!(browser.text("#version-table").contains("1.3.0 16"));
    assert!(browser.text("#colo-table").contains("FRA 28"));
    assert!(browser.text("#source-table").contains("newsletter 11"));
    assert!(browser.text("#campaign-table").contains("spring-sale 11"));
    assert!(browser.text("#item-table").contains("hero.png 2.9 MiB 3"));
    let heatmap = browser.source();
    assert!(
        heatmap.contains("/api/posts, "),
        "the heatmap has a row per route"
    );
    assert_eq!(browser.count("#heatmap svg text.label"), 3);
    assert_eq!(browser.count("svg"), 4, "three charts and the heatmap");
    // The alerts section: no alert yet, the rule and its state, the paused campaign.
    assert_eq!(
        browser.text("#alert-history"),
        "No alert fired in this range."
    );
    let rules = browser.text("#rule-states");
    assert!(
        rules.contains("upload errors error rate > 50.00% over 5 min, route /api/upload ok"),
        "{rules}"
    );
    let campaigns = browser.text("#paused-campaigns");
    assert!(
        campaigns.contains("spring-sale") && campaigns.contains("budget spent"),
        "{campaigns}"
    );
    let wide = browser.screenshot("dashboard-1280.png");

    // The range picker: 30 days, by a GET form.
    browser.click("button[name=days][value='30']");
    browser.wait_for_url("days=30");
    assert!(browser.text("#range").starts_with("Last 30 days"));
    assert_eq!(card("events"), "60");

    // Funnel steps, keeping the range.
    browser.type_into("input[name=steps]", "visit,signup,purchase");
    browser.click("#funnel button[type=submit]");
    browser.wait_for_url("steps=visit");
    assert!(browser.url().contains("days=30"), "{}", browser.url());
    let funnel = browser.text("#funnel-steps");
    // Users through the steps in order, of step 1 and of the step before.
    for row in [
        "1. visit 10 100.0% 100.0%",
        "2. signup 4 40.0% 40.0%",
        "3. purchase 1 10.0% 25.0%",
    ] {
        assert!(funnel.contains(row), "{row:?} in {funnel}");
    }

    // A custom range without events.
    browser.script(
        "document.querySelector('#custom input[name=from]').value = '2020-01-01';\
         document.querySelector('#custom input[name=to]').value = '2020-01-07';",
        json!([]),
    );
    browser.click("#custom button[type=submit]");
    browser.wait_for_url("from=2020-01-01");
    assert_eq!(browser.text("#range"), "2020-01-01 – 2020-01-07 UTC");
    assert_eq!(card("events"), "0");

    // On a phone: one column, nothing wider than the screen.
    browser.emulate_phone(390, 844);
    browser.goto(&format!(
        "{query}/dashboard/{}?days=7&steps=visit,signup",
        p.slug
    ));
    assert_eq!(card("events"), "60");
    let overflow = browser.script(
        "return document.documentElement.scrollWidth - window.innerWidth;",
        json!([]),
    );
    assert_eq!(overflow, 0, "the page fits a 390 px screen");
    let phone = browser.screenshot("dashboard-390.png");
    assert_pngs(&[&wide, &phone], 10_000);

    // Signing out forgets the token.
    browser.click("header button[type=submit]");
    browser.wait_for("input[name=token]");
    assert_eq!(browser.count("input[name=token]"), 1);
}

#[test]
fn badges_answer_only_for_projects_that_opt_in() {
    let p = Project::new("badge-private");
    let unknown = get_page("/badge/no-such-project-here/installs.svg");
    assert_eq!(unknown.status, 404);
    // A private project's badges are the unknown project's 404, byte for byte but the
    // slug, so neither its traffic nor its existence can be read from them.
    let private = get_page(&format!("/badge/{}/installs.svg", p.slug));
    assert_eq!(private.status, 404, "{}", private.body);
    assert_eq!(
        private.body.replace(&p.slug, "X"),
        unknown.body.replace("no-such-project-here", "X")
    );
    assert_eq!(
        private.header("cache-control"),
        unknown.header("cache-control")
    );
    let as_json = |slug: &str| {
        let page = call(
            "GET",
            &format!("/badge/{slug}/requests.svg"),
            &[("accept", "application/json")],
            None,
        );
        (page.status, page.body.replace(slug, "X"))
    };
    assert_eq!(as_json(&p.slug), as_json("no-such-project-here"));

    let set = |body: Value, badges: bool| {
        let a = admin("PATCH", &format!("/projects/{}", p.slug), Some(&body));
        assert_eq!(a.status, 200, "{}", a.json);
        assert_eq!(a.json["project"]["public_badges"], badges, "{}", a.json);
        get_page(&format!("/badge/{}/installs.svg", p.slug)).status
    };
    assert_eq!(set(json!({"public_badges": true}), true), 200);
    assert_eq!(set(json!({"public_badges": false}), false), 404);
    // A public dashboard shows what the badges show: opening it opens them, and closing
    // it closes them.
    assert_eq!(set(json!({"public_dashboard": true}), true), 200);
    assert_eq!(set(json!({"public_dashboard": false}), false), 404);
}

#[test]
fn badges_show_installs_uptime_latency_and_requests() {
    let p = Project::new("badge");
    let opened = admin(
        "PATCH",
        &format!("/projects/{}", p.slug),
        Some(&json!({"public_badges": true})),
    );
    assert_eq!(opened.status, 200, "{}", opened.json);
    let run = run_id();
    let now = now_ms();
    let events: Vec<Value> = (0..100u32)
        .map(|i| {
            json!({"event_id": event_id(run, i), "name": "request", "route": "/hook",
                "timestamp": now - i64::from(i) * 60_000,
                "status": if i == 0 { 500 } else { 200 }, "duration_ms": 50,
                "instance": format!("site-{}", i % 3)})
        })
        .collect();
    assert_eq!(send_events(&p, &Value::Array(events)).status, 202);
    wait_for_count(&p, 100);

    for (metric, texts) in [
        ("installs", ["used by", "3 sites"]),
        ("uptime", ["uptime", "99.0%"]),
        ("p95", ["p95 latency", "50 ms"]),
        ("requests", ["requests", "100 / 30 days"]),
    ] {
        let badge = get_page(&format!("/badge/{}/{metric}.svg", p.slug));
        assert_eq!(badge.status, 200, "{metric}: {}", badge.body);
        assert_eq!(badge.header("cache-control"), Some("public, max-age=300"));
        assert!(
            badge
                .header("content-type")
                .unwrap_or_default()
                .starts_with("image/svg+xml"),
            "{metric}"
        );
        assert!(badge.body.starts_with("<svg"), "{metric}: {}", badge.body);
        for text in texts {
            assert!(
                badge.body.contains(&format!(">{text}</text>")),
                "{metric}: {text:?} in {}",
                badge.body
            );
        }
    }

    let unknown_metric = get_page(&format!("/badge/{}/stars.svg", p.slug));
    assert_eq!(unknown_metric.status, 404);
    assert!(unknown_metric.body.contains(">not found</text>"));
    let unknown_project = get_page("/badge/no-such-project-here/installs.svg");
    assert_eq!(unknown_project.status, 404);
    let as_json = call(
        "GET",
        &format!("/badge/{}/stars.svg", p.slug),
        &[("accept", "application/json")],
        None,
    );
    assert_eq!(as_json.status, 404);
    let body: Value = serde_json::from_str(&as_json.body).unwrap();
    assert_eq!(body["error"]["code"], "not_found", "{body}");
}

#[test]
fn a_public_dashboard_needs_no_token_and_a_private_one_does() {
    let p = Project::new("public");
    let dashboard = format!("/dashboard/{}", p.slug);
    let alias = format!("/admin/plugins/{}/analytics", p.slug);
    let private = get_page(&dashboard);
    assert_eq!(private.status, 401);
    assert!(private.body.contains(r#"name="token""#));
    assert!(!private.body.contains(r#"id="events""#));

    let set = |public: bool| {
        let a = admin(
            "PATCH",
            &format!("/projects/{}", p.slug),
            Some(&json!({ "public_dashboard": public })),
        );
        assert_eq!(a.status, 200, "{}", a.json);
        assert_eq!(a.json["project"]["public_dashboard"], public);
    };
    set(true);
    for path in [&dashboard, &alias] {
        let open = get_page(path);
        assert_eq!(open.status, 200, "{path}: {}", open.body);
        assert!(open.body.contains("Public dashboard"), "{path}");
        assert!(open.body.contains(r#"<div class="card" id="events">"#));
        assert!(
            !open.body.contains(r#"id="alerts""#),
            "alerts are not for anonymous visitors"
        );
        assert!(
            open.body.contains(&format!(r#"action="{path}""#)),
            "forms return to {path}"
        );
    }
    set(false);
    assert_eq!(get_page(&alias).status, 401);
}

#[test]
fn a_page_asked_again_within_a_minute_is_read_from_kv_and_is_the_same_page() {
    let p = Project::new("kvpage");
    let events = json!([
        {"name": "visit", "route": "/a", "user": "u1"},
        {"name": "visit", "route": "/b", "user": "u2"},
    ]);
    let sent = send_events(&p, &events);
    assert_eq!(sent.status, 202, "{}", sent.json);
    wait_for_count(&p, 2);
    let first = p.dashboard("?days=30");
    assert_eq!(first.status, 200, "{}", first.json);
    assert_eq!(first.header("x-tally-cache"), Some("miss"));
    let again = p.dashboard("?days=30");
    assert_eq!(again.status, 200);
    assert_eq!(again.header("x-tally-cache"), Some("hit"));
    assert_eq!(again.json, first.json, "the same page");
    // Another question, here a filter, is computed for itself.
    let filtered = p.dashboard("?days=30&filter=route:/a");
    assert_eq!(filtered.status, 200);
    assert_eq!(filtered.header("x-tally-cache"), Some("miss"));
    assert_ne!(filtered.json, first.json);
}

#[test]
fn share_links_open_the_dashboard_until_they_expire_or_are_revoked_and_not_when_tampered_with() {
    let p = Project::new("share");
    let other = Project::new("share-other");
    let mint = |body: Value| {
        let a = admin("POST", &format!("/projects/{}/share", p.slug), Some(&body));
        assert_eq!(a.status, 201, "{}", a.json);
        a.json["share"].clone()
    };
    let share = mint(json!({"expires_in_days": 7}));
    let link = share["url"].as_str().unwrap();
    let token = share["token"].as_str().unwrap();
    assert_eq!(
        link,
        format!("{}/dashboard/{}?share={token}", url("query"), p.slug)
    );

    let valid = get_page(&format!("/dashboard/{}?share={token}", p.slug));
    assert_eq!(valid.status, 200, "{}", valid.body);
    assert!(valid.body.contains("Shared link, valid until"));
    assert!(
        valid
            .body
            .contains(&format!(r#"name="share" value="{token}""#)),
        "forms keep the link"
    );
    assert_eq!(valid.header("referrer-policy"), Some("no-referrer"));

    let last = token.chars().last().unwrap();
    let flipped = format!(
        "{}{}",
        &token[..token.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    let id = share["id"].as_str().unwrap();
    assert!(token.starts_with(&format!("{id}.")), "{token}");
    let (expiry, signature) = token[id.len() + 1..].split_once('.').unwrap();
    let later = format!(
        "{id}.{}.{signature}",
        expiry.parse::<i64>().unwrap() + 86_400
    );
    for (what, path) in [
        (
            "a changed signature",
            format!("/dashboard/{}?share={flipped}", p.slug),
        ),
        (
            "a changed expiry",
            format!("/dashboard/{}?share={later}", p.slug),
        ),
        (
            "another project",
            format!("/dashboard/{}?share={token}", other.slug),
        ),
        ("garbage", format!("/dashboard/{}?share=abc", p.slug)),
    ] {
        let refused = get_page(&path);
        assert_eq!(refused.status, 403, "{what}");
        assert!(
            refused.body.contains("This share link is not valid."),
            "{what}"
        );
        assert!(!refused.body.contains(r#"id="events""#), "{what}");
    }

    let short = mint(json!({"expires_in_seconds": 1}));
    let short_token = short["token"].as_str().unwrap().to_owned();
    std::thread::sleep(Duration::from_millis(2200));
    let expired = get_page(&format!("/dashboard/{}?share={short_token}", p.slug));
    assert_eq!(expired.status, 403);
    assert!(
        expired.body.contains("This share link has expired"),
        "{}",
        expired.body
    );

    // Links are listed without their tokens and revoked one by one, at once.
    let other_link = mint(json!({"expires_in_days": 1}));
    let other_token = other_link["token"].as_str().unwrap();
    let listed = admin("GET", &format!("/projects/{}/share", p.slug), None);
    assert_eq!(listed.status, 200, "{}", listed.json);
    let links = listed.json["share_links"].as_array().unwrap();
    assert_eq!(links.len(), 3, "{}", listed.json);
    assert!(
        !listed.json.to_string().contains(token),
        "no token is listed"
    );
    let status = |id: &str| {
        links.iter().find(|l| l["id"] == id).unwrap()["status"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(status(id), "active");
    assert_eq!(status(short["id"].as_str().unwrap()), "expired");
    let revoked = admin("DELETE", &format!("/projects/{}/share/{id}", p.slug), None);
    assert_eq!(revoked.status, 200, "{}", revoked.json);
    assert_eq!(revoked.json["share_link"]["status"], "revoked");
    let refused = get_page(&format!("/dashboard/{}?share={token}", p.slug));
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains("This share link was revoked"),
        "{}",
        refused.body
    );
    assert!(!refused.body.contains(r#"id="events""#));
    let still = get_page(&format!("/dashboard/{}?share={other_token}", p.slug));
    assert_eq!(
        still.status, 200,
        "the other link still works: {}",
        still.body
    );
    // Another project cannot revoke it, and an unknown id is not found.
    let elsewhere = admin(
        "DELETE",
        &format!(
            "/projects/{}/share/{}",
            other.slug,
            other_link["id"].as_str().unwrap()
        ),
        None,
    );
    assert_eq!(elsewhere.status, 404, "{}", elsewhere.json);
    let unknown = admin(
        "DELETE",
        &format!("/projects/{}/share/sh_0000000000000000", p.slug),
        None,
    );
    assert_eq!(unknown.status, 404, "{}", unknown.json);

    let bad = admin(
        "POST",
        &format!("/projects/{}/share", p.slug),
        Some(&json!({"expires_in_days": 1000})),
    );
    assert_eq!(bad.status, 400, "{}", bad.json);
    let unauthenticated = call(
        "POST",
        &format!("/v1/admin/projects/{}/share", p.slug),
        &[],
        None,
    );
    assert_eq!(unauthenticated.status, 401);
}

#[test]
fn only_a_read_token_of_the_project_opens_its_dashboard() {
    let (a, b) = (Project::new("dash-a"), Project::new("dash-b"));
    let login = |project: &Project, token: &str| {
        call(
            "POST",
            &format!("/dashboard/{}/login", project.slug),
            &[("content-type", "application/x-www-form-urlencoded")],
            Some(&format!("token={token}&next=dashboard")),
        )
    };
    let dashboard = format!("/dashboard/{}", a.slug);

    // Another project's token: refused at login, in a cookie and in a header.
    let wrong = login(&a, &b.read_token);
    assert_eq!(wrong.status, 403, "{}", wrong.body);
    assert!(wrong.body.contains("belongs to another project"));
    assert_eq!(wrong.header("set-cookie"), None);
    let b_session = session_of(&login(&b, &b.read_token).set_cookies(), &b.slug);
    let cookie = format!("tally_{}={b_session}", a.slug);
    let by_cookie = call("GET", &dashboard, &[("cookie", &cookie)], None);
    assert_eq!(by_cookie.status, 403, "a session of another project");
    assert!(!by_cookie.body.contains(r#"id="events""#));
    let by_header = call(
        "GET",
        &dashboard,
        &[("authorization", &b.read_auth())],
        None,
    );
    assert_eq!(by_header.status, 403);
    // A write key of the project is not a read token either.
    let write = login(&a, &a.write_key);
    assert_eq!(write.status, 401);
    assert!(write.body.contains("write key"));

    // The project's own token opens a session: the cookie holds its random id, never
    // the token, and goes only to the project's dashboard paths.
    let right = login(&a, &a.read_token);
    assert_eq!(right.status, 303, "{}", right.body);
    assert_eq!(right.header("location"), Some(dashboard.as_str()));
    let set_cookies = right.set_cookies();
    assert_eq!(set_cookies.len(), 3, "{set_cookies:?}");
    let session = session_of(&set_cookies, &a.slug);
    assert!(session.starts_with("ts_"), "{session}");
    assert!(
        set_cookies.iter().all(|c| !c.contains(&a.read_token)),
        "the token is not in a cookie: {set_cookies:?}"
    );
    for (cookie, path) in set_cookies.iter().zip([
        dashboard.clone(),
        format!("/admin/plugins/{}/analytics", a.slug),
        "/".to_owned(),
    ]) {
        assert!(cookie.contains(&format!("; Path={path};")), "{cookie}");
        for attribute in ["HttpOnly", "SameSite=Lax"] {
            assert!(cookie.contains(attribute), "{cookie}");
        }
        assert!(!cookie.contains("Secure"), "plain HTTP here: {cookie}");
    }
    assert!(
        set_cookies[2].contains("Max-Age=0"),
        "the old whole-host cookie is removed: {}",
        set_cookies[2]
    );
    let cookie = format!("tally_{}={session}", a.slug);
    for path in [
        dashboard.clone(),
        format!("/admin/plugins/{}/analytics", a.slug),
    ] {
        let page = call("GET", &path, &[("cookie", &cookie)], None);
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        assert!(page.body.contains("Signed in with a read token"));
    }
    // The read token itself in the cookie (as earlier versions kept it) opens nothing.
    let raw = format!("tally_{}={}", a.slug, a.read_token);
    assert_eq!(
        call("GET", &dashboard, &[("cookie", &raw)], None).status,
        401
    );
    // Nor does the session open another project's dashboard.
    let elsewhere = format!("tally_{}={session}", b.slug);
    let other = call(
        "GET",
        &format!("/dashboard/{}", b.slug),
        &[("cookie", &elsewhere)],
        None,
    );
    assert_eq!(other.status, 403, "{}", other.body);

    // Signing out ends the session on the server: the same cookie opens nothing after.
    let out = call(
        "POST",
        &format!("/dashboard/{}/logout", a.slug),
        &[("cookie", &cookie)],
        Some(""),
    );
    assert_eq!(out.status, 303, "{}", out.body);
    assert!(out.set_cookies().iter().all(|c| c.contains("Max-Age=0")));
    let after_logout = call("GET", &dashboard, &[("cookie", &cookie)], None);
    assert_eq!(after_logout.status, 401);
    assert!(
        after_logout.body.contains("session has ended"),
        "{}",
        after_logout.body
    );

    // Revoking the token ends the sessions opened with it.
    let again = login(&a, &a.read_token);
    let cookie = format!(
        "tally_{}={}",
        a.slug,
        session_of(&again.set_cookies(), &a.slug)
    );
    assert_eq!(
        call("GET", &dashboard, &[("cookie", &cookie)], None).status,
        200
    );
    let keys = admin("GET", &format!("/projects/{}/keys", a.slug), None);
    let prefix = &a.read_token[..11];
    let id = keys.json["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["prefix"] == prefix)
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let revoked = admin("DELETE", &format!("/projects/{}/keys/{id}", a.slug), None);
    assert_eq!(revoked.status, 200, "{}", revoked.json);
    let after = call("GET", &dashboard, &[("cookie", &cookie)], None);
    assert_eq!(after.status, 401);
    assert!(after.body.contains("was revoked"));
}

#[test]
fn the_login_and_logout_forms_refuse_posts_from_other_origins() {
    let p = Project::new("dash-origin");
    let own = url("query");
    let post = |path: &str, headers: &[(&str, &str)]| {
        let mut all = vec![("content-type", "application/x-www-form-urlencoded")];
        all.extend_from_slice(headers);
        call(
            "POST",
            &format!("/dashboard/{}/{path}", p.slug),
            &all,
            Some(&format!("token={}&next=dashboard", p.read_token)),
        )
    };
    for headers in [
        vec![("origin", "https://evil.example")],
        vec![("origin", "null")],
        vec![("sec-fetch-site", "cross-site")],
        vec![
            ("origin", "https://evil.example"),
            ("sec-fetch-site", "cross-site"),
        ],
    ] {
        for path in ["login", "logout"] {
            let refused = post(path, &headers);
            assert_eq!(refused.status, 403, "{path} {headers:?}: {}", refused.body);
            assert!(
                refused.body.contains("not from this dashboard"),
                "{path} {headers:?}: {}",
                refused.body
            );
            assert_eq!(refused.header("set-cookie"), None, "{path} {headers:?}");
            assert_eq!(
                refused
                    .header("content-security-policy")
                    .map(|c| c.starts_with("default-src 'none'")),
                Some(true)
            );
        }
    }
    // The dashboard's own origin signs in: named, or hidden by the page's
    // `Referrer-Policy: no-referrer` (`Origin: null`) with the browser's
    // `Sec-Fetch-Site: same-origin`.
    for headers in [
        vec![("origin", own.as_str()), ("sec-fetch-site", "same-origin")],
        vec![("origin", "null"), ("sec-fetch-site", "same-origin")],
    ] {
        let signed_in = post("login", &headers);
        assert_eq!(signed_in.status, 303, "{headers:?}: {}", signed_in.body);
        assert_eq!(signed_in.set_cookies().len(), 3);
    }
}
