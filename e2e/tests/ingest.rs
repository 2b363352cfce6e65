//! Ingest as clients meet it: bad requests refused with distinct errors and nothing
//! stored, the track and Plausible endpoints' shapes, keys, CORS, rate limits and load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::*;

/// One bad request and the answer it must get.
struct Bad {
    what: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Option<String>,
    status: u16,
    code: &'static str,
}

fn bad(
    what: &'static str,
    path: &str,
    headers: &[(&'static str, &str)],
    body: &str,
    status: u16,
    code: &'static str,
) -> Bad {
    Bad {
        what,
        method: "POST",
        path: path.to_owned(),
        headers: headers.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        body: Some(body.to_owned()),
        status,
        code,
    }
}

const JSON: (&str, &str) = ("content-type", "application/json");
const NDJSON: (&str, &str) = ("content-type", "application/x-ndjson");
const PAGE: &str = "https://shop.example/pricing?utm_source=newsletter";
const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                       Chrome/131.0.0.0 Safari/537.36";

#[test]
fn bad_requests_get_distinct_errors_and_store_nothing() {
    let p = Project::with(
        "bad",
        &json!({"rate_limit": "off", "allowed_origins": ["https://ok.example"]}),
    );
    let other = Project::new("bad-other");
    let revoked = {
        let made = admin(
            "POST",
            &format!("/projects/{}/keys", p.slug),
            Some(&json!({"kind": "write", "name": "to revoke"})),
        );
        let id = made.json["key"]["id"].as_i64().unwrap();
        let gone = admin("DELETE", &format!("/projects/{}/keys/{id}", p.slug), None);
        assert_eq!(gone.status, 200, "{}", gone.json);
        made.json["key"]["secret"].as_str().unwrap().to_owned()
    };
    let auth = p.write_auth();
    let key = ("authorization", auth.as_str());
    let unknown = format!("Bearer tw_{}", "0".repeat(40));
    let read = p.read_auth();
    let revoked = format!("Bearer {revoked}");
    let many = Value::Array((0..1001).map(|_| json!({"name": "n"})).collect()).to_string();
    let huge = format!("[{{\"name\":\"{}\"}}]", "x".repeat(1_100_000));
    let mismatch = json!([{"name": "n", "project": other.slug}]).to_string();
    let plausible =
        |domain: &str| json!({"name": "pageview", "url": PAGE, "domain": domain}).to_string();
    let (own_domain, other_domain) = (plausible(&p.slug), plausible(&other.slug));
    let ev = "/v1/events";
    let table = vec![
        bad(
            "no content type",
            ev,
            &[key],
            "[]",
            415,
            "unsupported_media_type",
        ),
        bad(
            "XML",
            ev,
            &[key, ("content-type", "application/xml")],
            "<e/>",
            415,
            "unsupported_media_type",
        ),
        bad(
            "a form",
            ev,
            &[key, ("content-type", "multipart/form-data; boundary=x")],
            "--x",
            415,
            "unsupported_media_type",
        ),
        bad(
            "no key",
            ev,
            &[JSON],
            r#"[{"name":"n"}]"#,
            401,
            "missing_key",
        ),
        bad(
            "not a key",
            ev,
            &[JSON, ("authorization", "Bearer hunter2")],
            r#"[{"name":"n"}]"#,
            401,
            "invalid_key",
        ),
        bad(
            "unknown key",
            ev,
            &[JSON, ("authorization", &unknown)],
            r#"[{"name":"n"}]"#,
            401,
            "invalid_key",
        ),
        bad(
            "read token",
            ev,
            &[JSON, ("authorization", &read)],
            r#"[{"name":"n"}]"#,
            401,
            "wrong_key_kind",
        ),
        bad(
            "revoked key",
            ev,
            &[JSON, ("authorization", &revoked)],
            r#"[{"name":"n"}]"#,
            401,
            "revoked_key",
        ),
        bad(
            "bad key in the query",
            "/v1/events?key=tw_nope",
            &[JSON],
            r#"[{"name":"n"}]"#,
            401,
            "invalid_key",
        ),
        bad(
            "foreign origin",
            ev,
            &[key, JSON, ("origin", "https://evil.example")],
            r#"[{"name":"n"}]"#,
            403,
            "origin_not_allowed",
        ),
        bad(
            "malformed JSON",
            ev,
            &[key, JSON],
            "[{",
            400,
            "malformed_json",
        ),
        bad("empty body", ev, &[key, JSON], "", 400, "malformed_json"),
        bad("empty array", ev, &[key, JSON], "[]", 400, "empty_batch"),
        bad(
            "object without events",
            ev,
            &[key, JSON],
            r#"{"e":1}"#,
            400,
            "invalid_batch",
        ),
        bad("a number", ev, &[key, JSON], "42", 400, "invalid_batch"),
        bad(
            "events not an array",
            ev,
            &[key, JSON],
            r#"{"events":{}}"#,
            400,
            "invalid_batch",
        ),
        bad(
            "1,001 events",
            ev,
            &[key, JSON],
            &many,
            413,
            "too_many_events",
        ),
        bad("over 1 MiB", ev, &[key, JSON], &huge, 413, "body_too_large"),
        bad(
            "empty name",
            ev,
            &[key, JSON],
            r#"[{"name":""}]"#,
            400,
            "no_valid_events",
        ),
        bad(
            "bad status",
            ev,
            &[key, JSON],
            r#"[{"name":"n","status":42}]"#,
            400,
            "no_valid_events",
        ),
        bad(
            "unknown field",
            ev,
            &[key, JSON],
            r#"[{"nmae":"n"}]"#,
            400,
            "no_valid_events",
        ),
        bad(
            "metadata not an object",
            ev,
            &[key, JSON],
            r#"[{"name":"n","metadata":[1]}]"#,
            400,
            "no_valid_events",
        ),
        bad(
            "older than retention",
            ev,
            &[key, JSON],
            r#"[{"name":"n","timestamp":"2001-01-01T00:00:00Z"}]"#,
            400,
            "no_valid_events",
        ),
        bad(
            "another project",
            ev,
            &[key, JSON],
            &mismatch,
            400,
            "no_valid_events",
        ),
        bad(
            "NDJSON of broken lines",
            ev,
            &[key, NDJSON],
            "{\n[",
            400,
            "no_valid_events",
        ),
        bad(
            "empty NDJSON",
            ev,
            &[key, NDJSON],
            "\n\n",
            400,
            "empty_batch",
        ),
        bad(
            "track: no event",
            "/track",
            &[key, JSON],
            r#"{"user_id":"u"}"#,
            400,
            "invalid_field",
        ),
        bad(
            "track: no user_id",
            "/track",
            &[key, JSON],
            r#"{"event":"play"}"#,
            400,
            "invalid_field",
        ),
        bad(
            "track: user_id a number",
            "/track",
            &[key, JSON],
            r#"{"event":"play","user_id":7}"#,
            400,
            "invalid_field",
        ),
        bad(
            "track: malformed",
            "/track",
            &[key, JSON],
            "{",
            400,
            "malformed_json",
        ),
        bad(
            "track: text",
            "/track",
            &[key, ("content-type", "text/plain")],
            "{}",
            415,
            "unsupported_media_type",
        ),
        bad(
            "track: no key",
            "/track",
            &[JSON],
            r#"{"event":"play"}"#,
            401,
            "missing_key",
        ),
        bad(
            "plausible: no url",
            "/api/event",
            &[key, JSON],
            &json!({"name": "pageview", "domain": p.slug}).to_string(),
            400,
            "missing_field",
        ),
        bad(
            "plausible: malformed",
            "/api/event",
            &[key, JSON],
            "{",
            400,
            "malformed_json",
        ),
        bad(
            "plausible: XML",
            "/api/event",
            &[key, ("content-type", "application/xml")],
            &own_domain,
            415,
            "unsupported_media_type",
        ),
        bad(
            "plausible: unknown domain",
            "/api/event",
            &[key, JSON],
            &plausible("no-such-site-anywhere"),
            404,
            "unknown_project",
        ),
        bad(
            "plausible: another project",
            "/api/event",
            &[key, JSON],
            &other_domain,
            403,
            "project_mismatch",
        ),
        Bad {
            what: "GET events",
            method: "GET",
            path: ev.into(),
            headers: vec![],
            body: None,
            status: 405,
            code: "method_not_allowed",
        },
        Bad {
            what: "no such path",
            method: "GET",
            path: "/nope".into(),
            headers: vec![],
            body: None,
            status: 404,
            code: "not_found",
        },
    ];
    assert!(table.len() >= 30);
    let ingest = url("ingest");
    for case in &table {
        let headers: Vec<(&str, &str)> =
            case.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let a = request(
            case.method,
            &format!("{ingest}{}", case.path),
            &headers,
            case.body.as_deref(),
        );
        let what = case.what;
        assert_eq!(a.status, case.status, "{what}: {}", a.json);
        let (code, message) = if case.path == "/track" {
            // The track API's own error shape.
            assert_eq!(a.json["status"], "error", "{what}: {}", a.json);
            (&a.json["code"], &a.json["message"])
        } else {
            (&a.json["error"]["code"], &a.json["error"]["message"])
        };
        assert_eq!(code, case.code, "{what}: {}", a.json);
        assert!(
            message.as_str().is_some_and(|m| m.len() > 15),
            "{what}: the message says what to fix: {}",
            a.json
        );
    }

    // A marker proves the queue moved past every refused request: nothing else arrives.
    assert_eq!(send_events(&p, &json!([{"name": "marker"}])).status, 202);
    wait_for_count(&p, 1);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(overview(&p).json["events"], 1);
    assert_eq!(overview(&other).json["events"], 0);
    // Each project's rows where its shard keeps them.
    let stored: i64 = [&p.slug, &other.slug]
        .into_iter()
        .map(|slug| {
            with_d1(slug, |db| {
                db.query_row(
                    "SELECT COUNT(*) FROM raw_events WHERE project_id IN
                         (SELECT id FROM projects WHERE slug = ?1)",
                    [slug],
                    |r| r.get::<_, i64>(0),
                )
                .unwrap()
            })
        })
        .sum();
    assert_eq!(stored, 1, "only the marker is stored");
}

#[test]
fn track_answers_in_the_seed_shape_and_returns_its_warnings() {
    let p = Project::new("track");
    let track = |body: Value| {
        request(
            "POST",
            &format!("{}/track", url("ingest")),
            &[JSON, ("authorization", &p.write_auth())],
            Some(&body.to_string()),
        )
    };
    let plain = track(json!({"event": "play", "user_id": "user123",
        "timestamp": "2025-01-18T14:30:00Z", "metadata": {"song_id": "song456"}}));
    // 2025-01-18 is older than the default 90-day retention: a clear refusal.
    assert_eq!(plain.status, 400, "{}", plain.json);
    assert_eq!(plain.json["status"], "error");

    let ok = track(json!({"event": "play", "user_id": "user123",
        "metadata": {"song_id": "song456", "device": "mobile"}}));
    assert_eq!(ok.status, 200, "{}", ok.json);
    assert_eq!(
        ok.json,
        json!({"status": "success", "message": "Event logged."})
    );

    let future = track(json!({"event": "stop", "user_id": "user123",
        "timestamp": "2999-01-01T00:00:00Z"}));
    assert_eq!(future.status, 200, "{}", future.json);
    assert_eq!(future.json["status"], "success");
    assert_eq!(future.json["warnings"][0]["code"], "clamped_timestamp");

    let big = track(json!({"event": "purchase", "user_id": "user123",
        "metadata": {"order_id": "o1", "notes": "x".repeat(5000)}}));
    assert_eq!(big.status, 200, "{}", big.json);
    assert_eq!(big.json["warnings"][0]["code"], "truncated_metadata");
    assert!(big.json["warnings"][0]["original_bytes"].as_u64().unwrap() > 5000);

    wait_for_count(&p, 3);
    let metadata: Vec<String> = with_d1(&p.slug, |db| {
        let mut stmt = db
            .prepare(
                "SELECT COALESCE(metadata, '') FROM raw_events
                 WHERE project_id = (SELECT id FROM projects WHERE slug = ?1) ORDER BY name",
            )
            .unwrap();
        stmt.query_map([&p.slug], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    });
    // Names sort play, purchase, stop.
    assert!(metadata[0].contains("song456"), "{metadata:?}");
    assert!(metadata[1].contains("\"_truncated\":true"), "{metadata:?}");
    assert!(metadata[1].contains("\"order_id\":\"o1\""), "{metadata:?}");
    assert!(metadata[2].contains("_clamped_timestamp"), "{metadata:?}");
}

#[test]
fn plausible_events_count_visitors_and_drop_bots() {
    let p = Project::new("plausible");
    // Each request also forges a different `X-Forwarded-For`, which must not make
    // another visitor: the address is Cloudflare's `CF-Connecting-IP` only.
    let forged = AtomicU64::new(1);
    let send = |body: Value, ua: &str, ip: &str| {
        let forwarded = format!("192.0.2.{}", forged.fetch_add(1, Ordering::Relaxed));
        request(
            "POST",
            &format!("{}/api/event?key={}", url("ingest"), p.write_key),
            &[
                ("content-type", "text/plain"),
                ("user-agent", ua),
                ("cf-connecting-ip", ip),
                ("x-forwarded-for", &forwarded),
            ],
            Some(&body.to_string()),
        )
    };
    let long = json!({"name": "pageview", "url": PAGE, "domain": p.slug,
        "referrer": "https://news.example/item", "props": {"plan": "pro"}});
    let short = json!({"n": "pageview", "u": "https://shop.example/docs", "d": p.slug,
        "r": null, "m": "{\"plan\":\"free\"}"});
    for (body, ua, ip) in [
        (&long, BROWSER, "203.0.113.7"),
        (&short, BROWSER, "203.0.113.7"),
        (
            &short,
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Safari/604.1",
            "198.51.100.2",
        ),
    ] {
        let a = send(body.clone(), ua, ip);
        assert_eq!(a.status, 202, "{}", a.json);
        assert_eq!(a.json, "ok");
    }
    let bot = send(
        long.clone(),
        "Mozilla/5.0 (compatible; Googlebot/2.1)",
        "66.249.66.1",
    );
    assert_eq!(bot.status, 202);
    assert_eq!(bot.header("x-tally-dropped"), Some("bot"));

    wait_for_count(&p, 3);
    let o = overview(&p).json;
    assert_eq!(
        o["unique_users"], 2,
        "same IP and browser is one visitor: {o}"
    );
    let rows: Vec<(String, Option<String>)> = with_d1(&p.slug, |db| {
        let mut stmt = db
            .prepare(
                "SELECT route, source FROM raw_events
                 WHERE project_id = (SELECT id FROM projects WHERE slug = ?1) ORDER BY route",
            )
            .unwrap();
        stmt.query_map([&p.slug], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    });
    assert_eq!(rows[0], ("/docs".into(), None));
    assert_eq!(rows[2], ("/pricing".into(), Some("newsletter".into())));
    let leaked: i64 = with_d1(&p.slug, |db| {
        db.query_row(
            "SELECT COUNT(*) FROM raw_events WHERE instr(COALESCE(metadata, ''), '203.0.113.7') > 0",
            [],
            |r| r.get(0),
        )
        .unwrap()
    });
    assert_eq!(leaked, 0, "the IP is never stored");
    eventually("the bot is counted", Duration::from_secs(30), || {
        let n: i64 = with_d1(&p.slug, |db| {
            db.query_row(
                "SELECT COUNT(*) FROM dropped_events WHERE reason = 'bot' AND project_id =
                     (SELECT id FROM projects WHERE slug = ?1)",
                [&p.slug],
                |r| r.get(0),
            )
            .unwrap()
        });
        if n == 1 {
            Ok(())
        } else {
            Err(format!("{n} bots"))
        }
    });
    assert_eq!(overview(&p).json["dropped"]["bot"], 1);
}

#[test]
fn a_revoked_key_stops_working_within_a_minute() {
    let p = Project::new("revoke");
    assert_eq!(send_events(&p, &json!([{"name": "before"}])).status, 202);
    let keys = admin("GET", &format!("/projects/{}/keys", p.slug), None);
    let id = keys.json["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "write")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let revoked = admin("DELETE", &format!("/projects/{}/keys/{id}", p.slug), None);
    assert_eq!(revoked.status, 200, "{}", revoked.json);
    assert!(revoked.json["key"]["revoked_at"].is_string());
    let started = Instant::now();
    eventually(
        "the revoked key is refused",
        Duration::from_secs(60),
        || {
            let a = send_events(&p, &json!([{"name": "after"}]));
            match a.status {
                401 if a.json["error"]["code"] == "revoked_key" => Ok(()),
                s => Err(format!("{s} {}", a.json)),
            }
        },
    );
    println!("revocation took effect after {:?}", started.elapsed());
    // Events sent before the refusal were accepted and are kept; none after it.
    let accepted = overview(&p).json["events"].as_u64().unwrap_or(0);
    assert!(accepted >= 1);
    assert_eq!(send_events(&p, &json!([{"name": "after"}])).status, 401);
}

#[test]
fn the_rate_limit_kicks_in_and_recovers() {
    let p = Project::with("limited", &json!({"rate_limit": "strict"}));
    let mut accepted = 0;
    let mut limited = None;
    for i in 0..30 {
        let a = send_events(&p, &json!([{"name": "hit", "metadata": {"i": i}}]));
        match a.status {
            202 => accepted += 1,
            429 => {
                limited = Some(a);
                break;
            }
            s => panic!("unexpected {s}: {}", a.json),
        }
    }
    let limited = limited.expect("the strict tier (10 per 10 s) refuses within 30 requests");
    assert_eq!(limited.json["error"]["code"], "rate_limited");
    assert_eq!(limited.header("retry-after"), Some("10"));
    assert!((1..=20).contains(&accepted), "accepted {accepted}");
    eventually("the limit recovers", Duration::from_secs(25), || {
        let a = send_events(&p, &json!([{"name": "later"}]));
        if a.status == 202 {
            Ok(())
        } else {
            Err(format!("{}", a.status))
        }
    });
    wait_for_count(&p, accepted + 1);
}

#[test]
fn cors_preflights_are_answered_and_origins_enforced_per_project() {
    let p = Project::with(
        "cors",
        &json!({"rate_limit": "off", "allowed_origins": ["https://*.shop.example"]}),
    );
    let ingest = url("ingest");
    let preflight = |path: &str, origin: &str| {
        request(
            "OPTIONS",
            &format!("{ingest}{path}"),
            &[
                ("origin", origin),
                ("access-control-request-method", "POST"),
                (
                    "access-control-request-headers",
                    "authorization, content-type",
                ),
            ],
            None,
        )
    };
    let a = preflight("/v1/events", "https://www.shop.example");
    assert_eq!(a.status, 204);
    assert_eq!(
        a.header("access-control-allow-origin"),
        Some("https://www.shop.example")
    );
    let allowed = a.header("access-control-allow-headers").unwrap();
    assert!(allowed.contains("authorization"), "{allowed}");
    assert!(allowed.contains("idempotency-key"), "{allowed}");
    // A compressing browser SDK sends Content-Encoding, which needs the preflight's leave.
    assert!(allowed.contains("content-encoding"), "{allowed}");
    assert!(
        a.header("access-control-allow-methods")
            .unwrap()
            .contains("POST")
    );
    // With the key in the query, the preflight itself checks the origin.
    let keyed = format!("/api/event?key={}", p.write_key);
    assert_eq!(preflight(&keyed, "https://www.shop.example").status, 204);
    assert_eq!(preflight(&keyed, "https://evil.example").status, 403);

    let from = |origin: &str| {
        request(
            "POST",
            &format!("{ingest}/v1/events"),
            &[JSON, ("authorization", &p.write_auth()), ("origin", origin)],
            Some(r#"[{"name":"click"}]"#),
        )
    };
    let ok = from("https://www.shop.example");
    assert_eq!(ok.status, 202, "{}", ok.json);
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://www.shop.example")
    );
    // A page's script can read why an event was dropped (a headless browser is a bot).
    let exposed = ok.header("access-control-expose-headers").unwrap();
    assert!(exposed.contains("x-tally-dropped"), "{exposed}");
    let refused = from("https://shop.example.evil.net");
    assert_eq!(refused.status, 403);
    assert_eq!(refused.json["error"]["code"], "origin_not_allowed");
    // Servers send no Origin and are not subject to the list.
    assert_eq!(send_events(&p, &json!([{"name": "server"}])).status, 202);
    wait_for_count(&p, 2);
}

#[test]
fn ndjson_batches_are_accepted_line_by_line() {
    let p = Project::new("ndjson");
    let body = "{\"name\":\"a\"}\n\n{\"name\":\"b\",\"status\":1}\nnot json\n{\"name\":\"c\"}\n";
    let a = request(
        "POST",
        &format!("{}/v1/events", url("ingest")),
        &[NDJSON, ("authorization", &p.write_auth())],
        Some(body),
    );
    assert_eq!(a.status, 202, "{}", a.json);
    assert_eq!(
        (a.json["accepted"].as_u64(), a.json["rejected"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(a.json["results"][2]["error"]["code"], "malformed_json");
    wait_for_count(&p, 2);
}

/// Several SDKs compress their bodies: every endpoint decodes `Content-Encoding: gzip`
/// within the same 1 MiB limit, so a gzip bomb is a 413, a broken member a 400, another
/// encoding a 415, and none of them stores anything.
#[test]
fn gzip_bodies_are_decoded_within_the_body_limit() {
    let p = Project::new("gzip");
    let post = |path: &str, content_type: &str, encoding: &str, body: Vec<u8>| {
        request_bytes(
            "POST",
            &format!("{}{path}", url("ingest")),
            &[
                ("content-type", content_type),
                ("content-encoding", encoding),
                ("authorization", &p.write_auth()),
                ("user-agent", BROWSER),
                ("cf-connecting-ip", "203.0.113.9"),
            ],
            body,
        )
    };
    let events = json!([{"name": "zipped", "status": 200}, {"name": "zipped", "status": 500}]);
    let a = post(
        "/v1/events",
        "application/json",
        "gzip",
        gzipped(events.to_string().as_bytes()),
    );
    assert_eq!(a.status, 202, "{}", a.json);
    assert_eq!(a.json["accepted"], 2, "{}", a.json);
    let page = json!({"name": "pageview", "url": "https://shop.example/zipped", "domain": p.slug});
    let a = post(
        "/api/event",
        "text/plain",
        "gzip",
        gzipped(page.to_string().as_bytes()),
    );
    assert_eq!((a.status, &a.json), (202, &json!("ok")));

    // 64 MiB of one event's padding compresses to some 64 KiB, well under the limit.
    let mut bomb = br#"[{"name":"bomb","metadata":{"pad":""#.to_vec();
    bomb.extend(std::iter::repeat_n(b'a', 64 << 20));
    bomb.extend(br#""}}]"#);
    let bomb = gzipped(&bomb);
    assert!(bomb.len() < 1 << 20, "{}", bomb.len());
    let refused = [
        (
            post("/v1/events", "application/json", "gzip", bomb),
            413,
            "body_too_large",
        ),
        (
            post(
                "/v1/events",
                "application/json",
                "gzip",
                events.to_string().into_bytes(),
            ),
            400,
            "malformed_gzip",
        ),
        (
            post(
                "/v1/events",
                "application/json",
                "br",
                events.to_string().into_bytes(),
            ),
            415,
            "unsupported_encoding",
        ),
    ];
    for (answer, status, code) in refused {
        assert_eq!(answer.status, status, "{}", answer.json);
        assert_eq!(answer.json["error"]["code"], code, "{}", answer.json);
    }
    wait_for_count(&p, 3);
    let names: Vec<String> = with_d1(&p.slug, |db| {
        let mut stmt = db
            .prepare(
                "SELECT name FROM raw_events
                 WHERE project_id = (SELECT id FROM projects WHERE slug = ?1) ORDER BY name",
            )
            .unwrap();
        stmt.query_map([&p.slug], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    });
    assert_eq!(names, ["pageview", "zipped", "zipped"]);
}

/// A key for one request, unique to this run.
fn idempotency_key(tag: &str) -> String {
    unique(&format!("retry-{tag}"))
}

/// `POST` to ingest's `path` with the write key, JSON and an `Idempotency-Key`.
fn send_keyed(p: &Project, path: &str, key: &str, body: &Value) -> Answer {
    request(
        "POST",
        &format!("{}{path}", url("ingest")),
        &[
            JSON,
            ("authorization", &p.write_auth()),
            ("idempotency-key", key),
            ("user-agent", BROWSER),
        ],
        Some(&body.to_string()),
    )
}

/// The event ids an accepted batch was given.
fn ids(a: &Answer) -> Vec<String> {
    assert_eq!(a.status, 202, "{}", a.json);
    a.json["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["status"], "accepted", "{r}");
            r["event_id"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// Clients of the track API and Plausible never send an `event_id`, and others may not:
/// with an `Idempotency-Key` a request sent again is counted once, on every endpoint.
#[test]
fn an_idempotency_key_makes_a_resent_id_less_request_count_once() {
    let p = Project::new("idem");
    let batch = Value::Array(
        (0..5)
            .map(|i| json!({"name": "request", "route": "/retry", "status": 200, "duration_ms": i}))
            .collect(),
    );
    let key = idempotency_key("a");
    let first = ids(&send_keyed(&p, "/v1/events", &key, &batch));
    let again = ids(&send_keyed(&p, "/v1/events", &key, &batch));
    assert_eq!(first, again, "the same key gives the same ids");
    // The key in quotes, as the IETF draft writes it, is the same key.
    let quoted = ids(&send_keyed(&p, "/v1/events", &format!("\"{key}\""), &batch));
    assert_eq!(first, quoted);
    let mut unique_ids = first.clone();
    unique_ids.sort();
    unique_ids.dedup();
    assert_eq!(unique_ids.len(), 5, "each event of the batch its own id");

    let track = json!({"event": "play", "user_id": "user123"});
    let track_key = idempotency_key("track");
    for _ in 0..2 {
        let a = send_keyed(&p, "/track", &track_key, &track);
        assert_eq!(a.status, 200, "{}", a.json);
    }
    let page = json!({"name": "pageview", "url": PAGE, "domain": p.slug});
    let page_key = idempotency_key("page");
    for _ in 0..2 {
        let a = send_keyed(&p, "/api/event", &page_key, &page);
        assert_eq!(a.status, 202, "{}", a.json);
    }

    // One batch, one track event and one pageview, however often each was sent.
    wait_for_count(&p, 7);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(overview(&p).json["events"], 7);

    // Another key is another request: its events are counted too.
    let other = ids(&send_keyed(&p, "/v1/events", &idempotency_key("b"), &batch));
    assert!(other.iter().all(|id| !first.contains(id)), "{other:?}");
    wait_for_count(&p, 12);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(overview(&p).json["events"], 12);
    let stored = stored_raw_events(&p.slug);
    assert_eq!(stored, 12);
}

#[test]
fn a_bad_idempotency_key_is_a_400_and_stores_nothing() {
    let p = Project::new("idem-bad");
    let batch = json!([{"name": "request"}]);
    let track = json!({"event": "play", "user_id": "user123"});
    let page = json!({"name": "pageview", "url": PAGE, "domain": p.slug});
    let doubled = format!("{0}, {0}", idempotency_key("twice"));
    let long = "k".repeat(256);
    for key in [
        "too-short",
        long.as_str(),
        "a key with spaces in it",
        &doubled,
    ] {
        for (path, body) in [
            ("/v1/events", &batch),
            ("/track", &track),
            ("/api/event", &page),
        ] {
            let a = send_keyed(&p, path, key, body);
            assert_eq!(a.status, 400, "{path} {key:?}: {}", a.json);
            let (code, message) = if path == "/track" {
                assert_eq!(a.json["status"], "error", "{}", a.json);
                (&a.json["code"], &a.json["message"])
            } else {
                (&a.json["error"]["code"], &a.json["error"]["message"])
            };
            assert_eq!(
                code, "invalid_idempotency_key",
                "{path} {key:?}: {}",
                a.json
            );
            assert!(
                message.as_str().unwrap().contains("Idempotency-Key"),
                "{}",
                a.json
            );
        }
    }
    // A marker proves the queue moved past every refused request: nothing else arrives.
    assert_eq!(send_events(&p, &json!([{"name": "marker"}])).status, 202);
    wait_for_count(&p, 1);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(overview(&p).json["events"], 1);
}

/// Load on loopback: several connections send batches of 100 for a bounded time; every
/// accepted event is stored exactly once.
#[test]
fn under_load_every_accepted_event_is_stored_exactly_once() {
    const SECONDS: u64 = 20;
    const CONNECTIONS: u32 = 3;
    let p = Project::new("load");
    let run = run_id();
    let accepted = AtomicU64::new(0);
    let deadline = Instant::now() + Duration::from_secs(SECONDS);
    std::thread::scope(|s| {
        for c in 0..CONNECTIONS {
            let (p, accepted) = (&p, &accepted);
            s.spawn(move || {
                let mut batch = 0u32;
                while Instant::now() < deadline {
                    let events: Vec<Value> = (0..100)
                        .map(|i| {
                            let n = (c << 24) | (batch << 7) | i;
                            json!({"event_id": event_id(run, n), "name": "request",
                                   "route": "/load", "status": 200, "duration_ms": 1 + n % 50})
                        })
                        .collect();
                    let a = send_events(p, &Value::Array(events));
                    assert_eq!(a.status, 202, "{}", a.json);
                    accepted.fetch_add(a.json["accepted"].as_u64().unwrap(), Ordering::Relaxed);
                    batch += 1;
                }
            });
        }
    });
    let n = accepted.load(Ordering::Relaxed);
    println!("load: {n} events accepted in {SECONDS} s over {CONNECTIONS} connections");
    assert!(n >= 1000, "only {n} events accepted");
    wait_for_count_within(&url("query"), &p, n, Duration::from_secs(180));
    let stored = stored_raw_events(&p.slug);
    assert_eq!(stored, n, "raw rows equal accepted events");
}

#[test]
fn random_keys_are_limited_per_client_address_before_they_reach_d1() {
    // Every random well-formed `tw_…` used to cost a D1 query of the database all
    // tenants share. Addresses here are only header values, from a documentation range.
    let p = Project::new("lookups");
    let run = run_id();
    let address = format!("198.51.100.{}", run % 250 + 1);
    let other = format!("198.51.100.{}", (run + 1) % 250 + 1);
    let send = |key: &str, from: &str| {
        request(
            "POST",
            &format!("{}/v1/events", url("ingest")),
            &[
                JSON,
                ("authorization", &format!("Bearer {key}")),
                ("cf-connecting-ip", from),
            ],
            Some(r#"[{"name": "lookup"}]"#),
        )
    };
    let random_key = |i: u32| format!("tw_{run:08x}{i:032x}");
    // The project's key is looked up once and then served from the isolate's cache.
    assert_eq!(send(&p.write_key, &address).status, 202);
    // A burst from eight threads at once, so that it falls within one or two of the
    // limiter's fixed 10 s windows however loaded the machine is (sent one by one, it
    // spread over enough windows on a busy machine never to reach 300 in one).
    let unknown = std::sync::atomic::AtomicU32::new(0);
    let next = std::sync::atomic::AtomicU32::new(0);
    let limited = std::sync::Mutex::new(None);
    std::thread::scope(|threads| {
        for _ in 0..8 {
            threads.spawn(|| {
                while limited.lock().unwrap().is_none() {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= 1_200 {
                        return;
                    }
                    let a = send(&random_key(i), &address);
                    match a.status {
                        401 => {
                            assert_eq!(a.json["error"]["code"], "invalid_key", "{}", a.json);
                            unknown.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        429 => *limited.lock().unwrap() = Some(a),
                        s => panic!("unexpected {s}: {}", a.json),
                    }
                }
            });
        }
    });
    let unknown = unknown.into_inner();
    let limited = limited
        .into_inner()
        .unwrap()
        .expect("300 lookups per 10 s per address, then 429");
    assert_eq!(
        limited.json["error"]["code"], "rate_limited",
        "{}",
        limited.json
    );
    assert_eq!(limited.header("retry-after"), Some("10"));
    assert!(
        (1..=600).contains(&unknown),
        "{unknown} lookups before the limit"
    );
    // The limit is the address's: a known key from it, and new keys from elsewhere,
    // still get their answers.
    assert_eq!(send(&p.write_key, &address).status, 202);
    assert_eq!(send(&random_key(5_000), &other).status, 401);
    wait_for_count(&p, 2);
}
