//! `/openapi.json` against the running stack: the document is served, and the real
//! answers of every JSON endpoint (read API, the seeds' aliases, the admin API, health
//! and ingest, successes and errors) match the schema it documents for their status.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

const MINUTE: i64 = 60_000;
const DAY: i64 = 86_400_000;

/// The OpenAPI document and where each answer is checked against it.
struct Spec {
    doc: Value,
    checked: usize,
}

impl Spec {
    fn fetch() -> Self {
        let a = get(&format!("{}/openapi.json", url("query")));
        assert_eq!(a.status, 200, "{}", a.json);
        assert_eq!(a.header("content-type"), Some("application/json"));
        assert_eq!(a.header("cache-control"), Some("public, max-age=3600"));
        assert_eq!(a.json["openapi"], "3.1.0", "{}", a.json);
        Self {
            doc: a.json,
            checked: 0,
        }
    }

    /// Follows a `$ref` into the document.
    fn resolve<'a>(&'a self, value: &'a Value) -> &'a Value {
        match value["$ref"].as_str() {
            Some(r) => self
                .doc
                .pointer(r.strip_prefix('#').unwrap())
                .unwrap_or_else(|| panic!("{r} does not resolve")),
            None => value,
        }
    }

    /// Checks that `answer` to `method path` (the documented path template) has a
    /// documented status and media type, and, for JSON, a body valid against the schema
    /// documented for them.
    fn check(&mut self, method: &str, path: &str, answer: &Answer) {
        if let Err(problem) = self.problems(method, path, answer) {
            panic!(
                "{method} {path} → {}: {problem}\nbody: {}",
                answer.status, answer.json
            );
        }
        self.checked += 1;
    }

    /// What does not match the document in `answer`, if anything.
    fn problems(&self, method: &str, path: &str, answer: &Answer) -> Result<(), String> {
        let operation = &self.doc["paths"][path][method.to_lowercase()];
        if !operation.is_object() {
            return Err("not documented".into());
        }
        let responses = &operation["responses"];
        let response = responses
            .get(answer.status.to_string())
            .or_else(|| responses.get("default"))
            .ok_or("status not documented")?;
        let response = self.resolve(response);
        let media = answer
            .header("content-type")
            .map(|c| c.split(';').next().unwrap().trim().to_owned());
        let Some(media) = media else {
            return match response.get("content") {
                Some(_) => Err("documented with a body, answered without".into()),
                None => Ok(()),
            };
        };
        let schema = &response["content"][&media]["schema"];
        if !schema.is_object() {
            return Err(format!("media type {media} not documented"));
        }
        if media != "application/json" {
            return Ok(());
        }
        // One document whose `components` hold every schema a `$ref` names.
        let wrapped = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "allOf": [schema],
            "components": self.doc["components"],
        });
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&wrapped)
            .map_err(|e| format!("the schema does not compile: {e}"))?;
        let errors: Vec<String> = validator
            .iter_errors(&answer.json)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!("not the documented schema:\n{}", errors.join("\n")))
        }
    }
}

/// An answer as the stack would give it.
fn answer(status: u16, body: Value) -> Answer {
    Answer {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        json: body,
    }
}

#[test]
fn the_checks_catch_drift_from_the_document() {
    // The document as committed: this test needs no stack.
    let spec = Spec {
        doc: serde_json::from_str(include_str!("../../workers/query/openapi.json")).unwrap(),
        checked: 0,
    };
    let health = json!({"worker": "query", "status": "ok", "jobs": [], "dead_letters": 0,
        "alerts": null, "rolls": {"day": null, "month": null}});
    assert_eq!(
        spec.problems("GET", "/v1/health", &answer(200, health.clone())),
        Ok(())
    );
    let mut extra = health.clone();
    extra["uptime"] = 1.into();
    let mut missing = health.clone();
    missing.as_object_mut().unwrap().remove("jobs");
    let mut job = health.clone();
    job["jobs"] = json!([{"job": "roll", "cron": "* * * * *", "scheduled_at": 1, "started_at": 1,
        "finished_at": 2, "outcome": "maybe", "detail": null}]);
    for (what, body) in [
        ("an extra member", extra),
        ("a missing member", missing),
        ("a bad enum value", job),
    ] {
        let got = spec.problems("GET", "/v1/health", &answer(200, body));
        assert!(got.is_err(), "{what} passes");
    }
    let error = json!({"error": {"code": "not_found", "message": "no"}});
    assert_eq!(
        spec.problems("GET", "/v1/health", &answer(404, error.clone())),
        Err("status not documented".into())
    );
    assert_eq!(
        spec.problems("GET", "/metrics", &answer(400, error))
            .map_err(|e| e.contains("not the documented schema")),
        Err(true),
        "the track seed errors in its own shape"
    );
    let track = json!({"status": "error", "message": "Invalid date format. Use YYYY-MM-DD", "code": "invalid_query"});
    assert_eq!(
        spec.problems("GET", "/metrics", &answer(400, track)),
        Ok(())
    );
    let bad_error = json!({"error": {"code": "x", "message": "y", "hint": "z"}});
    assert!(
        spec.problems(
            "GET",
            "/v1/projects/{project}/overview",
            &answer(401, bad_error)
        )
        .is_err()
    );
    let mut html = answer(200, Value::String("<p>".into()));
    html.headers = vec![("content-type".into(), "text/html".into())];
    assert!(
        spec.problems("GET", "/v1/health", &html).is_err(),
        "an undocumented media type"
    );
    assert_eq!(
        spec.problems("GET", "/nowhere", &html),
        Err("not documented".into())
    );
}

#[test]
fn real_answers_match_the_openapi_document() {
    let mut spec = Spec::fetch();
    let p = Project::new("openapi");
    // `days=1` is today (UTC), so the workload stays within today even just after
    // midnight: seven moments, one a minute before now, none before the day began.
    let now = now_ms();
    let day_start = now - now.rem_euclid(DAY);
    let step = MINUTE.min((now - day_start) / 8);
    let at = |minutes_back: i64| now - minutes_back * step;
    let mut events = Vec::new();
    for (i, (route, status, class)) in [
        ("/a", 200, None),
        ("/a", 200, None),
        ("/b", 500, Some("Timeout")),
        ("/c", 404, Some("NotFound")),
    ]
    .into_iter()
    .enumerate()
    {
        let i = i as i64;
        let mut e = json!({
            "name": if i % 2 == 0 { "open" } else { "click" },
            "timestamp": at(7 - i),
            "route": route,
            "method": "GET",
            "status": status,
            "duration_ms": 10.0 * (i + 1) as f64,
            "instance": format!("site-{}", i % 2),
            "user": "u1",
            "version": "1.2.0",
            "country": "DE",
            "item": "img-1",
            "variant": "thumb",
            "bytes": 1000,
        });
        if let Some(class) = class {
            e["error_class"] = class.into();
            e["error_message"] = "it broke".into();
        }
        if i == 0 {
            e["source"] = "newsletter".into();
            e["term"] = "shoes".into();
            e["content"] = "banner".into();
            e["metadata"] = json!({"revenue": {"currency": "EUR", "amount": 12.5}});
        }
        events.push(e);
    }
    events.push(json!({"name": "play", "user": "u2", "timestamp": at(3)}));
    events.push(json!({"name": "stop", "user": "u2", "timestamp": at(2)}));
    let sent = send_events(&p, &Value::Array(events));
    assert_eq!(sent.status, 202, "{}", sent.json);
    spec.check("POST", "/v1/events", &sent);
    wait_for_count(&p, 6);

    let query = url("query");
    let auth = p.read_auth();
    let read = |path: &str, auth: Option<&str>| {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
        request("GET", &format!("{query}{path}"), &headers, None)
    };
    let s = &p.slug;
    let today = {
        let a = read(&format!("/v1/projects/{s}/overview?days=1"), Some(&auth));
        a.json["from"].as_str().unwrap()[..10].to_owned()
    };
    let pp = "/v1/projects/{project}";
    let reads: Vec<(&str, String, u16)> = vec![
        ("/overview", "/overview?days=1".into(), 200),
        (
            "/timeseries",
            "/timeseries?days=1&interval=hour".into(),
            200,
        ),
        (
            "/timeseries",
            "/timeseries?days=2&metric=p50,requests".into(),
            200,
        ),
        ("/timeseries", "/timeseries?interval=fortnight".into(), 400),
        (
            "/breakdown/{dimension}",
            "/breakdown/route?days=1&limit=1".into(),
            200,
        ),
        (
            "/breakdown/{dimension}",
            "/breakdown/error_class?days=1".into(),
            200,
        ),
        ("/breakdown/{dimension}", "/breakdown/nope".into(), 404),
        ("/errors", "/errors?days=1".into(), 200),
        ("/installs", "/installs?days=1&interval=week".into(), 200),
        ("/metrics", "/metrics?days=1".into(), 200),
        ("/sessions", "/sessions?days=1".into(), 200),
        ("/funnels", "/funnels?days=1&steps=open,click".into(), 200),
        ("/funnels", "/funnels?days=1".into(), 400),
        ("/export", "/export?days=1".into(), 200),
        ("/export", "/export?days=1&format=csv".into(), 200),
        ("/alerts", "/alerts?days=1&limit=5".into(), 200),
        ("/alerts", "/alerts?limit=0".into(), 400),
        ("/alerts/rules", "/alerts/rules".into(), 200),
        ("/campaigns", "/campaigns".into(), 200),
        ("/campaigns/{campaign}", "/campaigns/spring".into(), 200),
        ("/campaigns/{campaign}", "/campaigns/%ff".into(), 400),
        ("/realtime", "/realtime".into(), 200),
        ("/revenue", "/revenue?days=1".into(), 200),
        ("/revenue", "/revenue?days=1&by=source&limit=1".into(), 200),
        ("/revenue", "/revenue?by=planet".into(), 400),
        (
            "/breakdown/{dimension}",
            "/breakdown/term?days=1".into(),
            200,
        ),
        // Filters: from rollups, from raw events, refused.
        (
            "/overview",
            "/overview?days=1&filter=country:DE".into(),
            200,
        ),
        (
            "/overview",
            "/overview?days=1&filter=route:/a*&filter=status!=5xx".into(),
            200,
        ),
        (
            "/overview",
            "/overview?days=1&filter=planet:mars".into(),
            400,
        ),
        (
            "/timeseries",
            "/timeseries?days=1&interval=hour&filter=name:open".into(),
            200,
        ),
        (
            "/breakdown/{dimension}",
            "/breakdown/route?days=1&filter=country!=US".into(),
            200,
        ),
        ("/errors", "/errors?days=1&filter=route:/b".into(), 200),
        (
            "/installs",
            "/installs?days=1&filter=version:1.*".into(),
            200,
        ),
        ("/metrics", "/metrics?days=1&filter=status:2xx".into(), 200),
        (
            "/revenue",
            "/revenue?days=1&by=campaign&filter=content:banner".into(),
            200,
        ),
        ("/export", "/export?days=1&filter=route:/a".into(), 200),
        ("/sessions", "/sessions?days=1&filter=route:/a".into(), 200),
        (
            "/funnels",
            "/funnels?days=1&steps=open,click&filter=route:/a".into(),
            200,
        ),
        ("/realtime", "/realtime?filter=route:/a".into(), 200),
    ];
    for (template, path, status) in reads {
        let a = read(&format!("/v1/projects/{s}{path}"), Some(&auth));
        assert_eq!(a.status, status, "{path}: {}", a.json);
        spec.check("GET", &format!("{pp}{template}"), &a);
    }
    // The measures the workload must show, so the checks above saw real numbers.
    let a = read(
        &format!("/v1/projects/{s}/breakdown/route?days=1&limit=1"),
        Some(&auth),
    );
    assert_eq!(a.json["other"]["values"], 2, "{}", a.json);
    let a = read(&format!("/v1/projects/{s}/errors?days=1"), Some(&auth));
    assert_eq!(a.json["classes"].as_array().unwrap().len(), 2, "{}", a.json);
    let a = read(
        &format!("/v1/projects/{s}/revenue?days=1&by=source"),
        Some(&auth),
    );
    assert_eq!(a.json["currencies"][0]["amount"], 12.5, "{}", a.json);
    assert_eq!(a.json["currencies"][0]["values"][0]["value"], "newsletter");

    let a = read(&format!("/v1/projects/{s}/overview"), None);
    assert_eq!(a.status, 401);
    spec.check("GET", &format!("{pp}/overview"), &a);
    let a = read(&format!("/v1/projects/{s}/overview"), Some(&p.write_auth()));
    assert_eq!(a.status, 401);
    spec.check("GET", &format!("{pp}/overview"), &a);
    let other = Project::new("openapi-other");
    let a = read(
        &format!("/v1/projects/{s}/overview"),
        Some(&other.read_auth()),
    );
    assert_eq!(a.status, 403);
    spec.check("GET", &format!("{pp}/overview"), &a);
    let a = request(
        "POST",
        &format!("{query}/v1/projects/{s}/overview"),
        &[("authorization", &auth)],
        Some("{}"),
    );
    assert_eq!(a.status, 405);
    spec.check("GET", &format!("{pp}/overview"), &a);

    // The seeds' aliases.
    let base = "/api/plugins/{slug}/analytics";
    for (name, query_string) in [
        ("overview", "?days=1"),
        ("timeseries", "?days=1"),
        ("timeseries", "?days=1&interval=bogus"),
        ("endpoints", ""),
    ] {
        let a = read(
            &format!("/api/plugins/{s}/analytics/{name}{query_string}"),
            Some(&auth),
        );
        spec.check("GET", &format!("{base}/{name}"), &a);
    }
    for (template, path, status) in [
        (
            "/v1/analytics/overview",
            "/v1/analytics/overview?days=1".to_owned(),
            200,
        ),
        (
            "/v1/analytics/overview",
            "/v1/analytics/overview?days=91".to_owned(),
            400,
        ),
        (
            "/v1/analytics/images/{id}",
            "/v1/analytics/images/img-1?days=1".to_owned(),
            200,
        ),
        (
            "/metrics",
            format!("/metrics?start_date={today}&end_date={today}"),
            200,
        ),
        ("/metrics", "/metrics?start_date=2025-01-01".to_owned(), 400),
        (
            "/sessions",
            format!("/sessions?start_date={today}&end_date={today}&group_by=week"),
            200,
        ),
    ] {
        let a = read(&path, Some(&auth));
        assert_eq!(a.status, status, "{path}: {}", a.json);
        spec.check("GET", template, &a);
    }
    let a = read(
        "/v1/analytics/images/img-1",
        Some(&format!("Bearer {}", admin_token())),
    );
    assert_eq!(a.status, 401);
    spec.check("GET", "/v1/analytics/images/{id}", &a);
    let a = read("/sessions", None);
    assert_eq!(a.status, 401);
    spec.check("GET", "/sessions", &a);
    let a = read("/v1/analytics/images/img-1?days=1", Some(&auth));
    assert_eq!(a.json["requests"], 4, "{}", a.json);

    // The admin API.
    let admin_checks: Vec<(&str, String, Option<Value>, &str, u16)> = vec![
        ("GET", "/projects".into(), None, "/v1/admin/projects", 200),
        (
            "POST",
            "/projects".into(),
            Some(json!({"slug": s})),
            "/v1/admin/projects",
            409,
        ),
        (
            "GET",
            format!("/projects/{s}"),
            None,
            "/v1/admin/projects/{project}",
            200,
        ),
        (
            "PATCH",
            format!("/projects/{s}"),
            Some(json!({"public_dashboard": false})),
            "/v1/admin/projects/{project}",
            200,
        ),
        (
            "GET",
            "/projects/no-such-project".into(),
            None,
            "/v1/admin/projects/{project}",
            404,
        ),
        (
            "GET",
            format!("/projects/{s}/keys"),
            None,
            "/v1/admin/projects/{project}/keys",
            200,
        ),
        (
            "POST",
            format!("/projects/{s}/keys"),
            Some(json!({"kind": "read", "name": "spare"})),
            "/v1/admin/projects/{project}/keys",
            201,
        ),
        (
            "POST",
            format!("/projects/{s}/keys"),
            Some(json!({"kind": "admin"})),
            "/v1/admin/projects/{project}/keys",
            400,
        ),
        (
            "POST",
            format!("/projects/{s}/share"),
            Some(json!({"expires_in_days": 1})),
            "/v1/admin/projects/{project}/share",
            201,
        ),
        (
            "GET",
            format!("/projects/{s}/share"),
            None,
            "/v1/admin/projects/{project}/share",
            200,
        ),
        (
            "DELETE",
            format!("/projects/{s}/share/sh_0000000000000000"),
            None,
            "/v1/admin/projects/{project}/share/{id}",
            404,
        ),
        (
            "PATCH",
            format!("/projects/{s}"),
            Some(json!({"public_badges": true})),
            "/v1/admin/projects/{project}",
            200,
        ),
    ];
    let mut spare = None;
    for (method, path, body, template, status) in admin_checks {
        let a = admin(method, &path, body.as_ref());
        assert_eq!(a.status, status, "{method} {path}: {}", a.json);
        spec.check(method, template, &a);
        if a.status == 201 && a.json["key"]["id"].is_i64() {
            spare = a.json["key"]["id"].as_i64();
        }
    }
    let listed = admin("GET", &format!("/projects/{s}/share"), None);
    let link = listed.json["share_links"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let a = admin("DELETE", &format!("/projects/{s}/share/{link}"), None);
    assert_eq!(a.status, 200, "{}", a.json);
    spec.check("DELETE", "/v1/admin/projects/{project}/share/{id}", &a);
    let a = admin(
        "DELETE",
        &format!("/projects/{s}/keys/{}", spare.unwrap()),
        None,
    );
    assert_eq!(a.status, 200, "{}", a.json);
    spec.check("DELETE", "/v1/admin/projects/{project}/keys/{id}", &a);

    // Erasure requests (the erasure itself is tested in erasure.rs).
    let template = "/v1/admin/projects/{project}/users/{user_id}";
    let mut erasure = None;
    for (path, status) in [
        (format!("/projects/{s}/users/nobody"), 202),
        (format!("/projects/{s}/users/%ff"), 400),
        ("/projects/no-such-project/users/nobody".to_owned(), 404),
    ] {
        let a = admin("DELETE", &path, None);
        assert_eq!(a.status, status, "{path}: {}", a.json);
        spec.check("DELETE", template, &a);
        if a.status == 202 {
            erasure = a.json["erasure"]["id"].as_str().map(str::to_owned);
        }
    }
    let template = "/v1/admin/projects/{project}/erasures/{id}";
    for (id, status) in [(erasure.unwrap(), 200), ("0".repeat(32), 404)] {
        let a = admin("GET", &format!("/projects/{s}/erasures/{id}"), None);
        assert_eq!(a.status, status, "{id}: {}", a.json);
        spec.check("GET", template, &a);
    }
    let a = request("GET", &format!("{query}/v1/admin/projects"), &[], None);
    assert_eq!(a.status, 401);
    spec.check("GET", "/v1/admin/projects", &a);

    // Alert rules and campaigns in the admin API.
    let rules = format!("/projects/{s}/alert-rules");
    let rule = json!({
        "name": "spring click-through",
        "metric": {"type": "ratio", "numerator": "click", "denominator": "open"},
        "filter": {"dimension": "campaign", "value": "spring"},
        "comparator": "<", "threshold": 0.01, "window_minutes": 15, "min_volume": 100,
        "webhook": {"url": "https://hooks.example/tally"}, "pause_campaign": true,
    });
    let template = "/v1/admin/projects/{project}/alert-rules";
    let a = admin("POST", &rules, Some(&rule));
    assert_eq!(a.status, 201, "{}", a.json);
    spec.check("POST", template, &a);
    let id = a.json["rule"]["id"].as_str().unwrap().to_owned();
    let a = admin(
        "POST",
        &rules,
        Some(
            &json!({"name": "count", "metric": {"type": "count"}, "comparator": "<",
            "threshold": 1, "window_minutes": 5, "filter": {"dimension": "route", "value": "/a"},
            "enabled": false}),
        ),
    );
    assert_eq!(a.status, 201, "{}", a.json);
    spec.check("POST", template, &a);
    let a = admin("POST", &rules, Some(&json!({"name": "x"})));
    assert_eq!(a.status, 400, "{}", a.json);
    spec.check("POST", template, &a);
    let a = admin("GET", &rules, None);
    assert_eq!(a.status, 200, "{}", a.json);
    spec.check("GET", template, &a);
    let one = format!("{rules}/{id}");
    let template = "/v1/admin/projects/{project}/alert-rules/{id}";
    for (method, body, status) in [
        ("GET", None, 200),
        (
            "PATCH",
            Some(json!({"rotate_secret": true, "min_volume": 10})),
            200,
        ),
        ("PATCH", Some(json!({"window_minutes": 1})), 400),
    ] {
        let a = admin(method, &one, body.as_ref());
        assert_eq!(a.status, status, "{method}: {}", a.json);
        spec.check(method, template, &a);
    }
    let a = admin("GET", &format!("{rules}/ar_0000000000000000"), None);
    assert_eq!(a.status, 404, "{}", a.json);
    spec.check("GET", template, &a);
    let template = "/v1/admin/projects/{project}/campaigns/{campaign}";
    for (body, status) in [
        (json!({"status": "paused", "reason": "by hand"}), 200),
        (json!({"status": "gone"}), 400),
    ] {
        let a = admin(
            "PUT",
            &format!("/projects/{s}/campaigns/spring"),
            Some(&body),
        );
        assert_eq!(a.status, status, "{body}: {}", a.json);
        spec.check("PUT", template, &a);
    }
    // A rule that fires at its first evaluation (the workload's last events are within
    // its 5 minutes), without a webhook: the history and the rule's state then hold real
    // values to check. It counts every event, whose minute rows are always written; a
    // count of one name would wait for the minutes counted since the aggregator learned
    // of it (README, Alerts) before it could fire on a `<`.
    let a = admin(
        "POST",
        &rules,
        Some(&json!({"name": "any", "metric": {"type": "count"},
            "comparator": ">=", "threshold": 1, "window_minutes": 5})),
    );
    assert_eq!(a.status, 201, "{}", a.json);
    let history = after_cron(
        "* * * * *",
        "the rule fired",
        Duration::from_secs(30),
        || {
            let a = read(&format!("/v1/projects/{s}/alerts?days=1"), Some(&auth));
            match a.json["alerts"].as_array() {
                Some(alerts) if !alerts.is_empty() => Ok(a),
                _ => Err(a.json.to_string()),
            }
        },
    );
    assert_eq!(
        history.json["alerts"][0]["kind"], "fired",
        "{}",
        history.json
    );
    spec.check("GET", &format!("{pp}/alerts"), &history);
    for path in ["/alerts/rules", "/campaigns", "/campaigns/spring"] {
        let a = read(&format!("/v1/projects/{s}{path}"), Some(&auth));
        assert_eq!(a.status, 200, "{path}: {}", a.json);
        let template = if path == "/campaigns/spring" {
            "/campaigns/{campaign}"
        } else {
            path
        };
        spec.check("GET", &format!("{pp}{template}"), &a);
    }
    let a = admin("DELETE", &one, None);
    assert_eq!(a.status, 200, "{}", a.json);
    spec.check(
        "DELETE",
        "/v1/admin/projects/{project}/alert-rules/{id}",
        &a,
    );

    // The digest in the admin API: made, replaced, refused, shown, deleted, gone.
    let digest = format!("/projects/{s}/digest");
    let template = "/v1/admin/projects/{project}/digest";
    for (method, body, status) in [
        (
            "PUT",
            Some(json!({"period": "weekly", "hour_utc": 7, "weekday": 2,
                        "webhook_url": "https://hooks.example/digest"})),
            201,
        ),
        (
            "PUT",
            Some(json!({"period": "daily", "hour_utc": 8,
                        "webhook_url": "https://hooks.example/digest", "enabled": false})),
            200,
        ),
        ("PUT", Some(json!({"period": "hourly", "hour_utc": 8})), 400),
        ("GET", None, 200),
        ("DELETE", None, 200),
        ("GET", None, 404),
    ] {
        let a = admin(method, &digest, body.as_ref());
        assert_eq!(a.status, status, "{method} {body:?}: {}", a.json);
        spec.check(method, template, &a);
    }

    // Health, and what the query worker answers as HTML and SVG.
    let admin = format!("Bearer {}", admin_token());
    for path in ["/v1/health", "/"] {
        let a = read(path, None);
        assert_eq!(a.status, 200, "{}", a.json);
        assert!(a.json.get("dead_letters").is_none(), "{}", a.json);
        spec.check("GET", path, &a);
        let a = read(path, Some(admin.as_str()));
        assert_eq!(a.status, 200, "{}", a.json);
        assert!(a.json["dead_letters"].is_u64(), "{}", a.json);
        assert!(a.json.get("missing_bindings").is_some(), "{}", a.json);
        spec.check("GET", path, &a);
    }
    let a = read(&format!("/badge/{s}/installs.svg"), None);
    assert_eq!(a.status, 200);
    spec.check("GET", "/badge/{project}/{file}", &a);
    let a = read(&format!("/dashboard/{s}"), None);
    spec.check("GET", "/dashboard/{project}", &a);
    let a = read(&format!("/dashboard/{s}/realtime"), Some(&auth));
    assert_eq!(a.status, 200);
    spec.check("GET", "/dashboard/{project}/realtime", &a);

    // Ingest: errors of /v1/events, the track seed's shapes, Plausible's answer.
    let ingest = url("ingest");
    let write = p.write_auth();
    let post = |path: &str, body: &str| {
        request(
            "POST",
            &format!("{ingest}{path}"),
            &[
                ("content-type", "application/json"),
                ("authorization", &write),
            ],
            Some(body),
        )
    };
    for (body, status) in [
        (json!([{"name": ""}, {"status": "x"}]).to_string(), 400),
        ("{".to_owned(), 400),
        ("[]".to_owned(), 400),
    ] {
        let a = post("/v1/events", &body);
        assert_eq!(a.status, status, "{body}: {}", a.json);
        spec.check("POST", "/v1/events", &a);
    }
    let a = request(
        "POST",
        &format!("{ingest}/v1/events"),
        &[("content-type", "application/json")],
        Some("[]"),
    );
    assert_eq!(a.status, 401);
    spec.check("POST", "/v1/events", &a);
    for (key, status) in [("openapi-check-key-0001", 202), ("short", 400)] {
        let a = request(
            "POST",
            &format!("{ingest}/v1/events"),
            &[
                ("content-type", "application/json"),
                ("authorization", &write),
                ("idempotency-key", key),
            ],
            Some(r#"[{"name": "keyed"}]"#),
        );
        assert_eq!(a.status, status, "{key}: {}", a.json);
        spec.check("POST", "/v1/events", &a);
    }
    for (body, status) in [
        (json!({"event": "play", "user_id": "u3"}), 200),
        (json!({"user_id": "u3"}), 400),
    ] {
        let a = post("/track", &body.to_string());
        assert_eq!(a.status, status, "{body}: {}", a.json);
        spec.check("POST", "/track", &a);
    }
    let a = post(
        "/api/event",
        &json!({"name": "pageview", "url": "https://example.com/", "domain": s}).to_string(),
    );
    assert_eq!(a.status, 202, "{}", a.json);
    spec.check("POST", "/api/event", &a);
    let a = post("/api/event", "{");
    assert_eq!(a.status, 400, "{}", a.json);
    spec.check("POST", "/api/event", &a);
    let a = get(&format!("{ingest}/healthz"));
    spec.check("GET", "/healthz", &a);

    assert!(spec.checked >= 50, "{} answers checked", spec.checked);
}
