//! Plausible's keyless trackers: a project that names its site's domain
//! (`plausible_domain`) takes `/api/event` without a write key from its allowed origins,
//! and only then — over plain HTTP with hostile variations, and with the
//! `plausible-tracker` npm package in headless Chromium, whose page then reads its own
//! numbers back from the query API (CORS).

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::browser::Browser;
use crate::support::pages::Pages;
use crate::support::*;

const APP: &str = "https://shop.example";
const EVIL: &str = "https://evil.example";
/// A browser's user agent: ingest drops headless ones as bots.
const BROWSER_UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                          Chrome/131.0.0.0 Safari/537.36";

/// A keyless Plausible event for `domain` on `page`, from `origin` if any.
fn keyless(domain: &str, page: &str, origin: Option<&str>) -> Answer {
    let body = json!({"n": "pageview", "u": page, "d": domain, "r": null}).to_string();
    let mut headers = vec![("content-type", "text/plain"), ("user-agent", BROWSER_UA)];
    if let Some(origin) = origin {
        headers.push(("origin", origin));
    }
    request(
        "POST",
        &format!("{}/api/event", url("ingest")),
        &headers,
        Some(&body),
    )
}

/// The project's `plausible_domain` as the admin API shows it.
fn domain_of(project: &Project) -> Value {
    let a = admin("GET", &format!("/projects/{}", project.slug), None);
    assert_eq!(a.status, 200, "{}", a.json);
    a.json["project"]["plausible_domain"].clone()
}

fn set_domain(project: &Project, domain: Value) -> Answer {
    admin(
        "PATCH",
        &format!("/projects/{}", project.slug),
        Some(&json!({ "plausible_domain": domain })),
    )
}

#[test]
fn keyless_plausible_events_are_taken_only_for_a_projects_domain_from_its_origins() {
    let site = Project::with(
        "keyless",
        &json!({"rate_limit": "off", "allowed_origins": [APP]}),
    );
    let other = Project::with(
        "keyless-other",
        &json!({"rate_limit": "off", "allowed_origins": [APP]}),
    );
    let domain = format!("{}.example", site.slug);
    let page = format!("https://{domain}/pricing");
    // Today's refusal of a request without a key, for comparison.
    let no_key = request(
        "POST",
        &format!("{}/v1/events", url("ingest")),
        &[("content-type", "application/json")],
        Some("[]"),
    );
    assert_eq!(no_key.status, 401);
    assert_eq!(no_key.json["error"]["code"], "missing_key");

    // Off by default: refused exactly as before, by domain or by slug.
    assert_eq!(domain_of(&site), Value::Null);
    for d in [domain.as_str(), site.slug.as_str()] {
        let a = keyless(d, &page, Some(APP));
        assert_eq!((a.status, &a.json), (401, &no_key.json), "{d}");
    }

    // The admin API sets it, normalized; a domain names one project; a bad one is a 400.
    let on = set_domain(&site, json!(format!(" {}. ", domain.to_uppercase())));
    assert_eq!(on.status, 200, "{}", on.json);
    assert_eq!(on.json["project"]["plausible_domain"], domain.as_str());
    let taken = set_domain(&other, json!(domain));
    assert_eq!(taken.status, 409, "{}", taken.json);
    assert_eq!(taken.json["error"]["code"], "plausible_domain_taken");
    let bad = set_domain(&other, json!("https://shop.example/"));
    assert_eq!(bad.status, 400, "{}", bad.json);
    assert_eq!(bad.json["error"]["code"], "invalid_project");
    assert_eq!(domain_of(&other), Value::Null);

    // Accepted from an allowed origin (ingest remembered "no such domain" for a few
    // seconds).
    eventually(
        "a keyless event is accepted",
        Duration::from_secs(20),
        || {
            let a = keyless(&domain, &page, Some(APP));
            match a.status {
                202 => Ok(()),
                401 => Err(format!("{}", a.json)),
                s => panic!("{s} {}", a.json),
            }
        },
    );
    assert_eq!(
        keyless(
            &domain.to_uppercase(),
            &format!("https://{domain}/docs"),
            Some(APP)
        )
        .status,
        202,
        "the domain matches as Plausible's does, whatever its case"
    );
    // Refused: another origin, no origin (a server holds a key), a domain nobody took,
    // a body that names none.
    let a = keyless(&domain, &page, Some(EVIL));
    assert_eq!(a.status, 403, "{}", a.json);
    assert_eq!(a.json["error"]["code"], "origin_not_allowed");
    assert_eq!(
        a.header("access-control-allow-origin"),
        Some(EVIL),
        "the page may read why"
    );
    let a = keyless(&domain, &page, None);
    assert_eq!((a.status, &a.json), (401, &no_key.json));
    let a = keyless("nobody-took-this.example", &page, Some(APP));
    assert_eq!((a.status, &a.json), (401, &no_key.json));
    let a = keyless(&other.slug, &page, Some(APP));
    assert_eq!(
        (a.status, &a.json),
        (401, &no_key.json),
        "keyless is off for other"
    );
    let garbled = request(
        "POST",
        &format!("{}/api/event", url("ingest")),
        &[("content-type", "text/plain"), ("origin", APP)],
        Some("{not json"),
    );
    assert_eq!((garbled.status, &garbled.json), (401, &no_key.json));
    // The project's own key may send with its domain too; another project's key may not.
    let own = request(
        "POST",
        &format!("{}/api/event?key={}", url("ingest"), site.write_key),
        &[("content-type", "text/plain"), ("user-agent", BROWSER_UA)],
        Some(
            &json!({"n": "pageview", "u": format!("https://{domain}/keyed"), "d": domain})
                .to_string(),
        ),
    );
    assert_eq!(own.status, 202, "{}", own.json);
    let keyed = request(
        "POST",
        &format!("{}/api/event?key={}", url("ingest"), other.write_key),
        &[("content-type", "text/plain"), ("user-agent", BROWSER_UA)],
        Some(&json!({"n": "pageview", "u": page, "d": domain}).to_string()),
    );
    assert_eq!(keyed.status, 403, "{}", keyed.json);
    assert_eq!(keyed.json["error"]["code"], "project_mismatch");

    // Exactly the three accepted events are counted, in the domain's project only.
    wait_for_count(&site, 3);
    let routes: Vec<String> = {
        let a = site.read("breakdown/route");
        let mut routes: Vec<String> = a.json["values"]
            .as_array()
            .unwrap_or_else(|| panic!("{}", a.json))
            .iter()
            .map(|v| v["value"].as_str().unwrap().to_owned())
            .collect();
        routes.sort();
        routes
    };
    assert_eq!(routes, ["/docs", "/keyed", "/pricing"]);
    assert_eq!(overview(&other).json["events"], 0);

    // Turned off again, it is refused again (within the key cache's 30 s).
    assert_eq!(set_domain(&site, Value::Null).status, 200);
    eventually(
        "keyless events are refused again",
        Duration::from_secs(40),
        || {
            let a = keyless(&domain, &page, Some(APP));
            if a.status == 401 {
                Ok(())
            } else {
                Err(format!("{} {}", a.status, a.json))
            }
        },
    );
}

#[test]
fn keyless_plausible_events_keep_the_projects_rate_limit() {
    let p = Project::with(
        "keyless-limited",
        &json!({"rate_limit": "strict", "allowed_origins": [APP]}),
    );
    let domain = format!("{}.example", p.slug);
    assert_eq!(set_domain(&p, json!(domain)).status, 200);
    let page = format!("https://{domain}/");
    let mut accepted = 0;
    let mut limited = None;
    for _ in 0..40 {
        let a = keyless(&domain, &page, Some(APP));
        match a.status {
            202 => accepted += 1,
            401 => {} // before the domain is seen (ingest's negative cache)
            429 => {
                limited = Some(a);
                break;
            }
            s => panic!("{s} {}", a.json),
        }
    }
    let limited = limited.expect("the strict tier (10 per 10 s) refuses within 40 requests");
    assert_eq!(limited.json["error"]["code"], "rate_limited");
    assert_eq!(limited.header("retry-after"), Some("10"));
    assert!((1..=20).contains(&accepted), "accepted {accepted}");
    wait_for_count(&p, accepted);
}

#[test]
fn the_plausible_tracker_package_sends_keyless_and_its_page_reads_the_count_back() {
    let p = Project::new("keyless-browser");
    // The page's host is a name Chromium resolves to 127.0.0.1: `plausible-tracker`
    // ignores pages on localhost and 127.0.0.1 unless told to track them.
    let host = "shop.test";
    let ingest = url("ingest");
    let query = url("query");
    let domain = format!("{}.test", p.slug);
    let html = format!(
        r#"<!doctype html>
<html><head><title>shop</title></head><body>
<p id="status">loading</p>
<script type="module">
import Plausible from "/node_modules/plausible-tracker/build/module/index.js";
const status = document.getElementById("status");
window.onerror = (message) => {{ status.textContent = "error: " + message; }};
const {{ trackPageview }} = Plausible({{ domain: "{domain}", apiHost: "{ingest}" }});
trackPageview({{}}, {{ callback: () => {{ status.textContent = "sent"; read(); }} }});
// The page reads its own count with a read token (CORS), until the pageview shows.
async function read() {{
  try {{
    // Not from the browser's cache: the answer may be kept 60 s, and the first read
    // can come before the pageview is counted.
    const r = await fetch("{query}/v1/projects/{slug}/overview?days=1",
                          {{ headers: {{ authorization: "Bearer {token}" }}, cache: "no-store" }});
    const body = await r.json();
    if (body.events >= 1) {{
      const shown = document.createElement("p");
      shown.id = "events";
      shown.textContent = String(body.events);
      document.body.append(shown);
      return;
    }}
    status.textContent = "read " + r.status + ": " + JSON.stringify(body);
  }} catch (e) {{
    status.textContent = "read failed: " + e;
  }}
  setTimeout(read, 300);
}}
</script>
</body></html>"#,
        slug = p.slug,
        token = p.read_token,
    );
    let pages = Pages::start(html);
    let origin = format!("http://{host}:{}", pages.port);
    let set = admin(
        "PATCH",
        &format!("/projects/{}", p.slug),
        Some(&json!({"allowed_origins": [origin], "plausible_domain": domain})),
    );
    assert_eq!(set.status, 200, "{}", set.json);

    let resolve = format!("--host-resolver-rules=MAP {host} 127.0.0.1");
    // Ingest drops a headless browser's pageviews as a bot's (README, Troubleshooting).
    let agent = format!("--user-agent={BROWSER_UA}");
    let browser = Browser::start_with(&[&resolve, &agent]);
    browser.goto(&format!("{origin}/pricing?utm_source=newsletter"));
    let deadline = std::time::Instant::now() + Duration::from_secs(45);
    while browser.count("#events") == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the page did not show its count; it says: {}",
            browser.text("#status")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(browser.text("#events"), "1");
    browser.screenshot("keyless-tracker");
    // Exactly one pageview, on the page's route, from the tracker's campaign source.
    wait_for_count(&p, 1);
    let by = |dimension: &str| {
        let a = p.read(&format!("breakdown/{dimension}"));
        a.json["values"][0]["value"].clone()
    };
    assert_eq!(by("route"), "/pricing");
    assert_eq!(by("source"), "newsletter");
    assert_eq!(by("name"), "pageview");
}
