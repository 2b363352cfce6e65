//! One base URL: the front worker hands every path to the worker that answers it,
//! through service bindings. The track seed's examples (its README's requests as
//! written: events with metadata, a future timestamp, large metadata, the error cases,
//! daily and weekly metrics and sessions), a Plausible event and a dashboard page are
//! all sent to the front's URL alone, and answer as the workers themselves answer.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

/// The track seed's first example's `timestamp`, `2025-01-18T14:30:00Z`, in epoch ms.
const PLAYED: i64 = 1_737_210_600_000;

/// A URL of the front.
fn front(path: &str) -> String {
    format!("{}{path}", url("front"))
}

/// `GET` a path with a read token, through the front and straight from the query
/// worker: the front's answer, after checking that it is the query worker's own.
fn read_both(path: &str, auth: &str) -> Answer {
    let headers = [("authorization", auth)];
    let through = request("GET", &front(path), &headers, None);
    let direct = request("GET", &format!("{}{path}", url("query")), &headers, None);
    assert_eq!(
        (through.status, &through.json),
        (direct.status, &direct.json),
        "{path}: the front answers as the query worker does"
    );
    for header in ["content-type", "cache-control", "etag", "x-tally-rows-read"] {
        assert_eq!(
            through.header(header).is_some(),
            direct.header(header).is_some(),
            "{path}: {header}"
        );
    }
    assert_eq!(through.header("etag"), direct.header("etag"), "{path}");
    through
}

/// The seed's rows summed by event name over every period of `data`.
fn by_name(data: &Value) -> BTreeMap<String, u64> {
    let mut sums = BTreeMap::new();
    for row in data.as_array().into_iter().flatten() {
        for (name, count) in row.as_object().unwrap() {
            if name != "date" {
                *sums.entry(name.clone()).or_default() += count.as_u64().unwrap();
            }
        }
    }
    sums
}

#[test]
fn the_track_seeds_examples_replay_green_against_one_base_url() {
    assert_eq!(date(PLAYED), "2025-01-18");
    // A retention long enough for the README's January 2025 example as written.
    let p = Project::with(
        "front-track",
        &json!({"rate_limit": "off", "retention_days": 3660}),
    );
    let write = p.write_auth();
    let track = |body: &str, headers: &[(&str, &str)]| {
        request("POST", &front("/track"), headers, Some(body))
    };
    let json_key = [
        ("content-type", "application/json"),
        ("authorization", write.as_str()),
    ];
    let logged = json!({"status": "success", "message": "Event logged."});

    // The README's first example, verbatim, and the stop that ends its session 15
    // minutes later.
    let played = json!({
        "event": "play",
        "user_id": "user123",
        "timestamp": "2025-01-18T14:30:00Z",
        "metadata": {"song_id": "song456", "device": "mobile", "platform": "ios"}
    });
    let stopped = json!({"event": "stop", "user_id": "user123",
        "timestamp": "2025-01-18T14:45:00Z", "metadata": {"song_id": "song456"}});
    // Its use cases, without a timestamp: the server's time.
    let use_cases = [
        json!({"event": "play", "user_id": "user123",
               "metadata": {"song_id": "song456", "playlist": "workout_mix", "device": "iphone"}}),
        json!({"event": "complete", "user_id": "user123",
               "metadata": {"song_id": "song456", "listened_seconds": 180}}),
        json!({"event": "product_view", "user_id": "user123",
               "metadata": {"product_id": "prod789", "category": "electronics", "price": 299.99}}),
        json!({"event": "purchase", "user_id": "user123",
               "metadata": {"order_id": "order123", "total": 299.99, "items": ["prod789"]}}),
    ];
    for body in [&played, &stopped].into_iter().chain(&use_cases) {
        let a = track(&body.to_string(), &json_key);
        assert_eq!((a.status, &a.json), (200, &logged), "{body}");
    }
    // A future timestamp is logged at the server's time, with a warning.
    let future = track(
        &json!({"event": "stop", "user_id": "user123", "timestamp": "2999-01-01T00:00:00Z"})
            .to_string(),
        &json_key,
    );
    assert_eq!(future.status, 200, "{}", future.json);
    assert_eq!(future.json["status"], "success");
    assert_eq!(future.json["warnings"][0]["code"], "clamped_timestamp");
    // Metadata over 4 KB is truncated, with a warning.
    let large = track(
        &json!({"event": "purchase", "user_id": "user123",
                "metadata": {"order_id": "order124", "notes": "x".repeat(5000)}})
        .to_string(),
        &json_key,
    );
    assert_eq!(large.status, 200, "{}", large.json);
    assert_eq!(large.json["warnings"][0]["code"], "truncated_metadata");
    // The error cases, in the seed's shape; none of them is stored.
    for (what, body, headers, status) in [
        ("no event", r#"{"user_id":"u"}"#, &json_key[..], 400),
        ("no user_id", r#"{"event":"play"}"#, &json_key[..], 400),
        ("malformed", "{", &json_key[..], 400),
        (
            "no key",
            r#"{"event":"play","user_id":"u"}"#,
            &json_key[..1],
            401,
        ),
        (
            "text",
            "{}",
            &[
                ("content-type", "text/plain"),
                ("authorization", write.as_str()),
            ][..],
            415,
        ),
    ] {
        let a = track(body, headers);
        assert_eq!(a.status, status, "{what}: {}", a.json);
        assert_eq!(a.json["status"], "error", "{what}: {}", a.json);
        assert!(
            a.json["message"].as_str().is_some_and(|m| m.len() > 10),
            "{what}: {}",
            a.json
        );
    }
    let get = request("GET", &front("/track"), &[], None);
    assert_eq!(get.status, 405, "{}", get.json);
    assert_eq!(get.header("allow"), Some("POST, OPTIONS"));
    // A browser's preflight reaches ingest and comes back as ingest gives it.
    let preflight = |base: &str| {
        request(
            "OPTIONS",
            &format!("{base}/track"),
            &[
                ("origin", "https://app.example"),
                ("access-control-request-method", "POST"),
                (
                    "access-control-request-headers",
                    "authorization, content-type",
                ),
            ],
            None,
        )
    };
    let (through, direct) = (preflight(&url("front")), preflight(&url("ingest")));
    assert_eq!(through.status, direct.status);
    for header in [
        "access-control-allow-origin",
        "access-control-allow-methods",
        "access-control-allow-headers",
    ] {
        assert_eq!(through.header(header), direct.header(header), "{header}");
    }

    // What was logged, by day: the README's pair in January 2025, the rest today.
    let auth = p.read_auth();
    let now = now_ms();
    let today = format!("start_date={}&end_date={}", date(now - DAY), date(now));
    let mut expected_today = BTreeMap::new();
    for name in [
        "play",
        "complete",
        "product_view",
        "purchase",
        "stop",
        "purchase",
    ] {
        *expected_today.entry(name.to_owned()).or_insert(0) += 1;
    }
    eventually(
        "every logged event is counted",
        Duration::from_secs(30),
        || {
            let a = request(
                "GET",
                &front(&format!("/metrics?{today}")),
                &[("authorization", &auth)],
                None,
            );
            let january = request(
                "GET",
                &front("/metrics?start_date=2025-01-01&end_date=2025-01-31"),
                &[("authorization", &auth)],
                None,
            );
            let counted = (by_name(&a.json["data"]), by_name(&january.json["data"]));
            if counted.0 == expected_today && counted.1.values().sum::<u64>() == 2 {
                Ok(())
            } else {
                Err(format!("{} {}", a.json, january.json))
            }
        },
    );

    // GET /metrics, the README's request as written, then weekly and monthly.
    let metrics = |query: &str| {
        let a = read_both(&format!("/metrics?{query}"), &auth);
        assert_eq!(a.status, 200, "{query}: {}", a.json);
        assert_eq!(a.json["status"], "success", "{query}: {}", a.json);
        a.json["data"].clone()
    };
    let january = "start_date=2025-01-01&end_date=2025-01-31";
    assert_eq!(
        metrics(&format!("{january}&group_by=day&user_id=user123")),
        json!([{"date": date(PLAYED), "play": 1, "stop": 1}])
    );
    assert_eq!(
        metrics(&format!("{january}&group_by=week")),
        json!([{"date": date(sunday(PLAYED)), "play": 1, "stop": 1}]),
        "the Sunday that starts its week"
    );
    assert_eq!(
        metrics(&format!("{january}&group_by=month")),
        json!([{"date": month(PLAYED), "play": 1, "stop": 1}])
    );
    assert_eq!(by_name(&metrics(&today)), expected_today);
    assert_eq!(
        by_name(&metrics(&format!("{today}&group_by=week"))),
        expected_today
    );
    assert_eq!(metrics(&format!("{january}&user_id=nobody")), json!([]));

    // GET /sessions: the README's pair is one session of 900 s, daily and weekly.
    let sessions = |query: &str| {
        let a = read_both(&format!("/sessions?{query}"), &auth);
        assert_eq!(a.status, 200, "{query}: {}", a.json);
        assert_eq!(a.json["status"], "success", "{query}: {}", a.json);
        a.json["data"].clone()
    };
    let session = |day: String| json!([{"date": day, "totalDuration": 900, "sessionCount": 1, "averageDuration": 900}]);
    assert_eq!(
        sessions(&format!("{january}&group_by=day&user_id=user123")),
        session(date(PLAYED))
    );
    assert_eq!(
        sessions(&format!("{january}&group_by=week")),
        session(date(sunday(PLAYED)))
    );

    // The reads' error cases, in the seed's shape.
    for path in ["/metrics", "/sessions"] {
        let error = |query: &str, token: Option<&str>, status: u16| {
            let headers: Vec<(&str, &str)> =
                token.map(|t| ("authorization", t)).into_iter().collect();
            let a = request("GET", &front(&format!("{path}{query}")), &headers, None);
            assert_eq!(a.status, status, "{path}{query}: {}", a.json);
            assert_eq!(a.json["status"], "error", "{path}{query}: {}", a.json);
            a.json["message"].as_str().unwrap_or_default().to_owned()
        };
        let required = "start_date and end_date are required";
        assert_eq!(error("", Some(&auth), 400), required);
        assert_eq!(error("?start_date=2025-01-01", Some(&auth), 400), required);
        let format = "Invalid date format. Use YYYY-MM-DD";
        assert_eq!(
            error(
                "?start_date=2025/01/01&end_date=2025-01-31",
                Some(&auth),
                400
            ),
            format
        );
        error(&format!("?{january}&group_by=year"), Some(&auth), 400);
        error(&format!("?{january}"), None, 401);
        error(&format!("?{january}"), Some(&write), 401);
    }
}

#[test]
fn a_plausible_event_and_a_dashboard_page_go_through_the_front() {
    let p = Project::new("front-plausible");
    // Two visitors (Cloudflare's client address, passed on by the front), and a bot.
    let page = |ua: &str, ip: &str| {
        request(
            "POST",
            &front(&format!("/api/event?key={}", p.write_key)),
            &[
                ("content-type", "text/plain"),
                ("user-agent", ua),
                ("cf-connecting-ip", ip),
            ],
            Some(
                &json!({"name": "pageview", "url": "https://shop.example/pricing", "domain": p.slug})
                    .to_string(),
            ),
        )
    };
    let browser = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36";
    for ip in ["203.0.113.7", "198.51.100.2"] {
        let a = page(browser, ip);
        assert_eq!((a.status, &a.json), (202, &json!("ok")), "{ip}");
    }
    let bot = page("Mozilla/5.0 (compatible; Googlebot/2.1)", "66.249.66.1");
    assert_eq!(bot.status, 202);
    assert_eq!(bot.header("x-tally-dropped"), Some("bot"));
    wait_for_count_at(&url("front"), &p, 2);
    let overview = read_both(&format!("/v1/projects/{}/overview", p.slug), &p.read_auth()).json;
    assert_eq!(overview["unique_users"], 2, "{overview}");

    // The dashboard: its login page, the sign-in form (whose same-origin check sees the
    // front's host), then the page with the session's cookie.
    let dashboard = format!("/dashboard/{}", p.slug);
    let login_page = raw_request("GET", &front(&dashboard), &[], None);
    assert_eq!(login_page.status, 401);
    assert!(
        login_page
            .json
            .as_str()
            .is_some_and(|html| html.contains(r#"name="token""#)),
        "{}",
        login_page.json
    );
    let signed_in = raw_request(
        "POST",
        &front(&format!("{dashboard}/login")),
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("origin", &url("front")),
            ("sec-fetch-site", "same-origin"),
        ],
        Some(&format!("token={}&next=dashboard", p.read_token)),
    );
    assert_eq!(signed_in.status, 303, "{}", signed_in.json);
    assert_eq!(signed_in.header("location"), Some(dashboard.as_str()));
    let prefix = format!("tally_{}=", p.slug);
    let session = signed_in
        .headers
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .find_map(|(_, v)| v.strip_prefix(&prefix)?.split(';').next())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| panic!("no session cookie: {:?}", signed_in.headers));
    let shown = raw_request(
        "GET",
        &front(&dashboard),
        &[("cookie", &format!("{prefix}{session}"))],
        None,
    );
    assert_eq!(shown.status, 200, "{}", shown.json);
    let html = shown.json.as_str().unwrap_or_default();
    assert!(html.contains(r#"<div class="card" id="events">"#), "{html}");
    assert!(html.contains(&p.slug), "{html}");
}

/// Request bodies reach ingest as they were sent, streamed: a gzip body (its
/// `Content-Encoding` and bytes untouched) is decoded by ingest, a body that only claims
/// to be gzip is refused by ingest, and one over ingest's 1 MiB limit is refused, with
/// ingest's own answers; an `Idempotency-Key` retried through the front counts once.
#[test]
fn request_bodies_and_headers_reach_ingest_as_sent() {
    let p = Project::new("front-bodies");
    let write = p.write_auth();
    let post = |encoding: Option<&str>, key: Option<&str>, body: Vec<u8>| {
        let mut headers = vec![
            ("content-type", "application/json"),
            ("authorization", write.as_str()),
        ];
        headers.extend(encoding.map(|e| ("content-encoding", e)));
        headers.extend(key.map(|k| ("idempotency-key", k)));
        request_bytes("POST", &front("/v1/events"), &headers, body)
    };
    let events = json!([{"name": "zipped", "status": 200}, {"name": "zipped", "status": 500}]);
    let a = post(Some("gzip"), None, gzipped(events.to_string().as_bytes()));
    assert_eq!(
        (a.status, &a.json["accepted"]),
        (202, &json!(2)),
        "{}",
        a.json
    );
    let a = post(Some("gzip"), None, events.to_string().into_bytes());
    assert_eq!(
        (a.status, &a.json["error"]["code"]),
        (400, &json!("malformed_gzip")),
        "{}",
        a.json
    );
    let mut huge = br#"[{"name":"huge","metadata":{"pad":""#.to_vec();
    huge.extend(std::iter::repeat_n(b'a', 1 << 20));
    huge.extend(br#""}}]"#);
    let a = post(None, None, huge);
    assert_eq!(
        (a.status, &a.json["error"]["code"]),
        (413, &json!("body_too_large")),
        "{}",
        a.json
    );
    let keyed = json!([{"name": "keyed"}]).to_string();
    let key = unique("front-retry");
    let first = post(None, Some(&key), keyed.clone().into_bytes());
    let again = post(None, Some(&key), keyed.into_bytes());
    assert_eq!((first.status, again.status), (202, 202));
    assert_eq!(
        first.json["results"][0]["event_id"], again.json["results"][0]["event_id"],
        "the key gives the retry the same event id"
    );

    // The two zipped events and the keyed one, once; nothing refused is stored.
    wait_for_count_at(&url("front"), &p, 3);
    std::thread::sleep(Duration::from_secs(2));
    let path = format!("/v1/projects/{}/overview", p.slug);
    assert_eq!(read_both(&path, &p.read_auth()).json["events"], 3);
}
