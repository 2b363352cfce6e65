//! The HTTP surface of the workers as generic clients meet it: every method a path does
//! not take (a method nobody knows included) is a 405 with `Allow` on every worker (the
//! aggregator's probe too), and browser reads of the query API get CORS for the
//! project's allowed origins only.

use serde_json::json;

use crate::support::*;

const APP: &str = "https://app.example";
const EVIL: &str = "https://evil.example";

/// The methods workerd lets through that no path takes.
const UNKNOWN_METHODS: [&str; 4] = ["TRACE", "QUERY", "PROPFIND", "PURGE"];

fn refused_with_allow(what: &str, a: &Answer, allow: &str) {
    assert_eq!(a.status, 405, "{what}: {}", a.json);
    assert_eq!(a.header("allow"), Some(allow), "{what}: {:?}", a.headers);
}

#[test]
fn unknown_methods_are_405_with_allow_on_every_worker_and_store_nothing() {
    let p = Project::with(
        "methods",
        &json!({"rate_limit": "off", "public_badges": true}),
    );
    let query = url("query");
    let ingest = url("ingest");
    let aggregator = url("aggregator");
    let admin_auth = format!("Bearer {}", admin_token());
    let badge = format!("{query}/badge/{}/requests.svg", p.slug);
    // The badge answers GET, so a method read as GET would be a 200.
    assert_eq!(get(&badge).status, 200);
    let event = json!([{"name": "sent-with-another-method"}]).to_string();
    for method in UNKNOWN_METHODS {
        let at = |path: &str, auth: &str| {
            raw_request(
                method,
                &format!("{query}{path}"),
                &[("authorization", auth)],
                None,
            )
        };
        let what = |path: &str| format!("{method} {path}");
        let a = raw_request(method, &badge, &[], None);
        refused_with_allow(&what("badge"), &a, "GET, HEAD");
        let overview = format!("/v1/projects/{}/overview", p.slug);
        let a = at(&overview, &p.read_auth());
        refused_with_allow(&what(&overview), &a, "GET, OPTIONS");
        assert_eq!(a.json["error"]["code"], "method_not_allowed");
        let a = at("/metrics", &p.read_auth());
        refused_with_allow(&what("/metrics"), &a, "GET, OPTIONS");
        assert_eq!(
            a.json["status"], "error",
            "the track seed's shape: {}",
            a.json
        );
        refused_with_allow(
            &what("/dashboard"),
            &at(&format!("/dashboard/{}", p.slug), &p.read_auth()),
            "GET, HEAD",
        );
        refused_with_allow(
            &what("admin"),
            &at("/v1/admin/projects", &admin_auth),
            "GET, POST",
        );
        refused_with_allow(&what("health"), &at("/v1/health", ""), "GET");
        assert_eq!(at("/v1/nothing-here", "").status, 404, "{method}");
        // Ingest: an event sent with the method is refused and never stored.
        let a = raw_request(
            method,
            &format!("{ingest}/v1/events"),
            &[
                ("authorization", &p.write_auth()),
                ("content-type", "application/json"),
            ],
            Some(&event),
        );
        refused_with_allow(&what("ingest /v1/events"), &a, "POST, OPTIONS");
        assert_eq!(a.json["error"]["code"], "method_not_allowed");
        let a = raw_request(method, &format!("{ingest}/healthz"), &[], None);
        refused_with_allow(&what("ingest /healthz"), &a, "GET");
        // The aggregator's probe too (it once answered every method and path 200).
        let a = raw_request(method, &format!("{aggregator}/"), &[], None);
        refused_with_allow(&what("aggregator /"), &a, "GET");
        assert_eq!(
            raw_request(method, &format!("{aggregator}/nothing"), &[], None).status,
            404
        );
        assert_eq!(
            raw_request(method, &format!("{ingest}/nothing"), &[], None).status,
            404
        );
    }
    // HEAD is answered where GET and HEAD are, and refused with `Allow` elsewhere.
    assert_eq!(request("HEAD", &badge, &[], None).status, 200);
    let a = request(
        "HEAD",
        &format!("{query}/v1/projects/{}/overview", p.slug),
        &[("authorization", &p.read_auth())],
        None,
    );
    refused_with_allow("HEAD overview", &a, "GET, OPTIONS");
    refused_with_allow(
        "HEAD ingest /",
        &request("HEAD", &format!("{ingest}/"), &[], None),
        "GET",
    );
    refused_with_allow(
        "POST aggregator /",
        &request("POST", &format!("{aggregator}/"), &[], Some("{}")),
        "GET",
    );
    let probe = get(&format!("{aggregator}/healthz"));
    assert_eq!(
        (probe.status, &probe.json["status"]),
        (200, &json!("ok")),
        "{}",
        probe.json
    );
    // OPTIONS where no CORS is granted is a 405 with `Allow` too.
    refused_with_allow(
        "OPTIONS badge",
        &request("OPTIONS", &badge, &[("origin", APP)], None),
        "GET, HEAD",
    );
    refused_with_allow(
        "OPTIONS admin",
        &request(
            "OPTIONS",
            &format!("{query}/v1/admin/projects"),
            &[("authorization", &admin_auth)],
            None,
        ),
        "GET, POST",
    );
    // Only the one event sent with POST is counted.
    assert_eq!(send_events(&p, &json!([{"name": "posted"}])).status, 202);
    wait_for_count(&p, 1);
}

fn preflight(path: &str, origin: &str) -> Answer {
    request(
        "OPTIONS",
        &format!("{}{path}", url("query")),
        &[
            ("origin", origin),
            ("access-control-request-method", "GET"),
            ("access-control-request-headers", "authorization"),
        ],
        None,
    )
}

fn read_from(path: &str, token: &str, origin: &str) -> Answer {
    request(
        "GET",
        &format!("{}{path}", url("query")),
        &[
            ("authorization", &format!("Bearer {token}")),
            ("origin", origin),
        ],
        None,
    )
}

fn granted(a: &Answer) -> Option<&str> {
    a.header("access-control-allow-origin")
}

fn varies_by_origin(a: &Answer) -> bool {
    a.headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("vary") && v.to_lowercase().contains("origin"))
}

#[test]
fn browser_reads_get_cors_for_the_projects_allowed_origins_only() {
    let p = Project::with(
        "browser-reads",
        &json!({"rate_limit": "off", "allowed_origins": [APP]}),
    );
    let other = Project::new("browser-reads-other");
    assert_eq!(send_events(&p, &json!([{"name": "seen"}])).status, 202);
    wait_for_count(&p, 1);
    let overview = format!("/v1/projects/{}/overview", p.slug);

    // The preflight of an allowed origin is granted, exactly.
    let a = preflight(&overview, APP);
    assert_eq!(a.status, 204, "{}", a.json);
    assert_eq!(granted(&a), Some(APP));
    assert!(varies_by_origin(&a), "{:?}", a.headers);
    assert_eq!(a.header("allow"), Some("GET, OPTIONS"));
    // Only what the path answers: HEAD is 405 here, so a preflight never grants it.
    assert_eq!(a.header("access-control-allow-methods"), Some("GET"));
    let head = request(
        "OPTIONS",
        &format!("{}{overview}", url("query")),
        &[
            ("origin", APP),
            ("access-control-request-method", "HEAD"),
            ("access-control-request-headers", "authorization"),
        ],
        None,
    );
    assert_eq!(head.status, 204, "{}", head.json);
    assert_eq!(granted(&head), None);
    let headers = a.header("access-control-allow-headers").unwrap();
    assert!(headers.contains("authorization"), "{headers}");
    assert!(a.header("access-control-max-age").is_some());
    // Another origin, another project's origin list, a project that does not exist: a
    // clean 204 without a grant.
    for (path, origin) in [
        (overview.as_str(), EVIL),
        (&format!("/v1/projects/{}/overview", other.slug), APP),
        ("/v1/projects/no-such-project-here/overview", APP),
    ] {
        let a = preflight(path, origin);
        assert_eq!(a.status, 204, "{path} from {origin}: {}", a.json);
        assert_eq!(granted(&a), None, "{path} from {origin}");
        assert!(a.header("access-control-allow-methods").is_none());
    }
    // The plugin seed's path names the project too.
    let plugin = format!("/api/plugins/{}/analytics/overview", p.slug);
    assert_eq!(granted(&preflight(&plugin, APP)), Some(APP));
    assert_eq!(granted(&preflight(&plugin, EVIL)), None);
    // A path that names the project only through the token grants the preflight...
    assert_eq!(granted(&preflight("/metrics", EVIL)), Some(EVIL));

    // ...and the real answer only to the token's project's origins.
    let a = read_from(&overview, &p.read_token, APP);
    assert_eq!(a.status, 200, "{}", a.json);
    assert_eq!(a.json["events"], 1);
    assert_eq!(granted(&a), Some(APP));
    assert!(varies_by_origin(&a), "{:?}", a.headers);
    let a = read_from(&overview, &p.read_token, EVIL);
    assert_eq!(a.status, 200);
    assert_eq!(granted(&a), None);
    assert!(
        varies_by_origin(&a),
        "a cache must not serve one origin's grant to another"
    );
    // Any dates will do: the answer's headers are what is checked.
    let dates = "start_date=2026-01-01&end_date=2026-01-02";
    for path in [
        format!("/metrics?{dates}"),
        format!("/sessions?{dates}"),
        plugin.clone(),
    ] {
        let path = path.as_str();
        let a = read_from(path, &p.read_token, APP);
        assert_eq!(a.status, 200, "{path}: {}", a.json);
        assert_eq!(granted(&a), Some(APP), "{path}");
        assert_eq!(
            granted(&read_from(path, &p.read_token, EVIL)),
            None,
            "{path}"
        );
        // Another project's token reads nothing of `p` and gets no grant for its origin.
        assert_eq!(
            granted(&read_from(path, &other.read_token, APP)),
            None,
            "{path}"
        );
    }
    // An error of a granted read is readable by the page, so it can show why.
    let bad = read_from(&format!("{overview}?from=yesterday"), &p.read_token, APP);
    assert_eq!(bad.status, 400, "{}", bad.json);
    assert_eq!(granted(&bad), Some(APP));
    let no_token = request(
        "GET",
        &format!("{}{overview}", url("query")),
        &[("origin", APP)],
        None,
    );
    assert_eq!(no_token.status, 401);
    assert_eq!(granted(&no_token), None);

    // The admin API and the dashboard never grant CORS, with the admin token neither.
    let admin_path = format!("/v1/admin/projects/{}", p.slug);
    let a = preflight(&admin_path, APP);
    assert_ne!(a.status, 204);
    assert_eq!(granted(&a), None);
    let a = read_from(&admin_path, &admin_token(), APP);
    assert_eq!(a.status, 200, "{}", a.json);
    assert_eq!(granted(&a), None);
    assert_eq!(
        granted(&read_from(&overview, &admin_token(), APP)),
        None,
        "the admin token is no browser's"
    );
    let a = read_from(&format!("/dashboard/{}", p.slug), &p.read_token, APP);
    assert_eq!(a.status, 200);
    assert_eq!(granted(&a), None);
}
