//! Bad input gets a clear JSON error with the right status, and stores nothing.

use serde_json::json;

use crate::support::*;

fn assert_error(answer: &Answer, status: u16, code: &str) {
    assert_eq!(answer.status, status, "{}", answer.json);
    assert_eq!(answer.json["error"]["code"], code, "{}", answer.json);
    let message = answer.json["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.len() > 10,
        "the message says what to fix: {message:?}"
    );
}

#[test]
fn a_mixed_batch_stores_only_the_good_events() {
    let p = Project::new("mixed");
    let project = &p.slug;
    let answer = send_events(
        &p,
        &json!([
            {"project": project, "name": "ok"},
            {"project": project, "name": "bad", "status": 42},
            {"project": project, "nmae": "typo"},
            {"project": project, "name": "ok", "timestamp": "yesterday"},
            {"project": project, "name": "future", "timestamp": "2999-01-01T00:00:00Z"},
        ]),
    );
    assert_eq!(answer.status, 202, "{}", answer.json);
    assert_eq!(answer.json["accepted"], 2);
    assert_eq!(answer.json["rejected"], 3);
    let results = &answer.json["results"];
    assert_eq!(results[0]["status"], "accepted");
    assert_eq!(results[1]["status"], "rejected");
    assert_eq!(results[1]["error"]["field"], "status");
    assert!(
        results[2]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `nmae`"),
        "{results}"
    );
    assert_eq!(results[3]["error"]["field"], "timestamp");
    assert_eq!(
        results[4]["warnings"][0]["code"], "clamped_timestamp",
        "{results}"
    );
    wait_for_count(&p, 2);
}

#[test]
fn a_batch_with_no_valid_event_is_refused_and_stores_nothing() {
    let p = Project::new("allbad");
    let project = &p.slug;
    let answer = send_events(
        &p,
        &json!([{"project": project}, {"project": project, "name": ""}]),
    );
    assert_error(&answer, 400, "no_valid_events");
    assert_eq!(answer.json["rejected"], 2);
    // A marker proves the queue moved on; the refused events never arrive.
    send_events(&p, &json!([{"project": project, "name": "marker"}]));
    wait_for_count(&p, 1);
}

#[test]
fn the_query_api_rejects_bad_input_clearly() {
    let p = Project::new("query-input");
    let query = url("query");
    let read = |path: &str| {
        request(
            "GET",
            &format!("{query}{path}"),
            &[("authorization", &p.read_auth())],
            None,
        )
    };
    let base = format!("/v1/projects/{}/overview", p.slug);
    assert_error(
        &read("/v1/projects/Bad_Slug/overview"),
        403,
        "wrong_project",
    );
    for bad in [
        "?days=0",
        "?days=x",
        "?from=2025-01-10&to=2025-01-01",
        "?days=7&from=2025-01-01",
    ] {
        assert_error(&read(&format!("{base}{bad}")), 400, "invalid_range");
    }
    assert_error(&get(&format!("{query}/v2/whatever")), 404, "not_found");
    let ok = read(&format!("{base}?days=7"));
    assert_eq!(ok.status, 200, "{}", ok.json);
    assert_eq!(ok.header("cache-control"), Some("private, max-age=60"));
}

#[test]
fn reading_takes_a_read_token_of_that_project() {
    let (a, b) = (Project::new("reader-a"), Project::new("reader-b"));
    let path = |p: &Project| format!("{}/v1/projects/{}/overview", url("query"), p.slug);
    let with = |p: &Project, auth: &str| request("GET", &path(p), &[("authorization", auth)], None);
    assert_error(&get(&path(&a)), 401, "missing_token");
    assert_error(&with(&a, &b.read_auth()), 403, "wrong_project");
    assert_error(&with(&a, &a.write_auth()), 401, "wrong_key_kind");
    assert_error(
        &with(&a, &format!("Bearer tr_{}", "1".repeat(40))),
        401,
        "invalid_token",
    );
    assert_error(&with(&a, "Bearer not-a-token"), 401, "invalid_token");
    assert_eq!(with(&a, &a.read_auth()).status, 200);
    assert_eq!(with(&a, &format!("Bearer {}", admin_token())).status, 200);
    // The admin API takes only the admin token.
    let listed = request(
        "GET",
        &format!("{}/v1/admin/projects", url("query")),
        &[("authorization", &a.read_auth())],
        None,
    );
    assert_error(&listed, 401, "invalid_admin_token");
}

#[test]
fn the_admin_api_manages_projects_and_keys() {
    let slug = unique("admin");
    let made = admin(
        "POST",
        "/projects",
        Some(
            &json!({"slug": slug, "retention_days": 30, "allowed_origins": ["https://a.example/"]}),
        ),
    );
    assert_eq!(made.status, 201, "{}", made.json);
    assert_eq!(
        made.json["project"]["allowed_origins"],
        json!(["https://a.example"])
    );
    assert_eq!(made.json["project"]["rate_limit"], "standard");
    assert_error(
        &admin("POST", "/projects", Some(&json!({"slug": slug}))),
        409,
        "project_exists",
    );
    assert_error(
        &admin("POST", "/projects", Some(&json!({"slug": "No Way"}))),
        400,
        "invalid_project",
    );
    assert_error(
        &admin(
            "PATCH",
            &format!("/projects/{slug}"),
            Some(&json!({"rate_limit": "fast"})),
        ),
        400,
        "invalid_project",
    );
    assert_error(
        &admin("GET", "/projects/no-such-project-here", None),
        404,
        "unknown_project",
    );
    let key = admin(
        "POST",
        &format!("/projects/{slug}/keys"),
        Some(&json!({"kind": "read", "name": "ci"})),
    );
    assert_eq!(key.status, 201, "{}", key.json);
    let secret = key.json["key"]["secret"].as_str().unwrap();
    assert!(secret.starts_with(key.json["key"]["prefix"].as_str().unwrap()));
    let listed = admin("GET", &format!("/projects/{slug}/keys"), None);
    assert_eq!(listed.json["keys"][0]["name"], "ci");
    assert!(
        listed.json["keys"][0].get("secret").is_none(),
        "a secret is shown once"
    );
    assert!(!listed.json.to_string().contains(secret));
    assert_error(
        &admin("DELETE", &format!("/projects/{slug}/keys/999999"), None),
        404,
        "not_found",
    );
    let all = admin("GET", "/projects", None);
    assert!(
        all.json["projects"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["slug"] == slug)
    );
    let unauthorized = request(
        "GET",
        &format!("{}/v1/admin/projects", url("query")),
        &[],
        None,
    );
    assert_error(&unauthorized, 401, "invalid_admin_token");
}

/// The read API's answer to `path` under the project's `/v1/projects/{p}/`.
fn read_path(p: &Project, path: &str) -> Answer {
    request(
        "GET",
        &format!("{}/v1/projects/{}/{path}", url("query"), p.slug),
        &[("authorization", &p.read_auth())],
        None,
    )
}

#[test]
fn the_largest_accepted_values_round_trip_through_d1_and_the_next_are_refused() {
    // D1 binds numbers as f64 and refuses to decode an integer past 2^53: one event
    // with `"bytes": 9007199254740993`, or ten at the longest duration (their summed
    // microseconds), made every later read of its rows fail.
    let p = Project::new("largest");
    let max_bytes: u64 = 1 << 40;
    for bad in [
        json!({"name": "huge", "bytes": max_bytes + 1}),
        json!({"name": "huge", "bytes": 9_007_199_254_740_993_u64}),
        json!({"name": "slow", "duration_ms": 1.000_000_000_001e12}),
    ] {
        let answer = send_events(&p, &json!([bad]));
        assert_error(&answer, 400, "no_valid_events");
        let error = &answer.json["results"][0]["error"];
        assert_eq!(error["code"], "invalid_field", "{}", answer.json);
        let field = bad.as_object().unwrap().keys().next().unwrap();
        assert_eq!(error["field"], field.as_str(), "{}", answer.json);
    }
    // 8,193 events of 2^40 bytes each pass 2^53 in all; their rows saturate there.
    let run = run_id();
    let total = 8_193;
    for batch in 0..(total as u32).div_ceil(1_000) {
        let events: Vec<_> = (batch * 1_000..((batch + 1) * 1_000).min(total as u32))
            .map(|i| {
                json!({"event_id": event_id(run, i), "name": "serve", "route": "/big",
                       "bytes": max_bytes, "duration_ms": 1e12})
            })
            .collect();
        let answer = send_events(&p, &json!(events));
        assert_eq!(answer.status, 202, "{}", answer.json);
        assert_eq!(answer.json["rejected"], 0, "{}", answer.json);
    }
    wait_for_count(&p, total);
    let overview = overview(&p);
    assert_eq!(overview.status, 200, "{}", overview.json);
    assert_eq!(
        overview.json["bytes"],
        (1_u64 << 53) - 1,
        "{}",
        overview.json
    );
    assert_eq!(
        overview.json["duration_ms"]["mean"], 1e12,
        "{}",
        overview.json
    );
    assert_eq!(
        overview.json["duration_ms"]["count"], total,
        "{}",
        overview.json
    );
    for path in [
        "timeseries?interval=hour",
        "breakdown/route",
        "export?format=ndjson",
    ] {
        let answer = read_path(&p, path);
        assert_eq!(answer.status, 200, "{path}: {}", answer.json);
    }
    let routes = read_path(&p, "breakdown/route");
    assert_eq!(
        routes.json["values"][0]["bytes"],
        (1_u64 << 53) - 1,
        "{}",
        routes.json
    );
}

/// An admin request whose body is given as text, as a client may send it.
fn admin_text(method: &str, path: &str, body: Option<&str>) -> Answer {
    let auth = format!("Bearer {}", admin_token());
    request(
        method,
        &format!("{}/v1/admin{path}", url("query")),
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        body,
    )
}

#[test]
fn admin_bodies_are_json_objects_and_required_ones_are_sent() {
    // openapi.json requires these bodies, and serde would read a JSON array of a
    // struct's fields as the struct: each was once answered 200 or 201.
    let p = Project::new("admin-bodies");
    let keys = |p: &Project| admin("GET", &format!("/projects/{}/keys", p.slug), None);
    let before = keys(&p).json;
    let settings = admin("GET", &format!("/projects/{}", p.slug), None).json;
    for (method, path, body, code) in [
        (
            "PATCH",
            format!("/projects/{}", p.slug),
            None,
            "invalid_project",
        ),
        (
            "PATCH",
            format!("/projects/{}", p.slug),
            Some("[]"),
            "invalid_project",
        ),
        (
            "POST",
            format!("/projects/{}/keys", p.slug),
            None,
            "invalid_key",
        ),
        (
            "POST",
            format!("/projects/{}/keys", p.slug),
            Some(r#"["read", null]"#),
            "invalid_key",
        ),
        (
            "POST",
            format!("/projects/{}/share", p.slug),
            Some("[null, null]"),
            "invalid_share",
        ),
        (
            "PUT",
            format!("/projects/{}/campaigns/spring", p.slug),
            Some(r#"["paused", null]"#),
            "invalid_campaign_state",
        ),
    ] {
        let a = admin_text(method, &path, body);
        assert_eq!(
            (a.status, a.json["error"]["code"].as_str()),
            (400, Some(code)),
            "{method} {path} {body:?}: {}",
            a.json
        );
    }
    // Nothing was made or changed.
    assert_eq!(keys(&p).json, before);
    let shares = admin("GET", &format!("/projects/{}/share", p.slug), None);
    assert_eq!(
        shares.json["share_links"],
        serde_json::json!([]),
        "{}",
        shares.json
    );
    let campaign = request(
        "GET",
        &format!("{}/v1/projects/{}/campaigns/spring", url("query"), p.slug),
        &[("authorization", &p.read_auth())],
        None,
    );
    assert_eq!(campaign.json["status"], "active", "{}", campaign.json);
    assert_eq!(
        admin("GET", &format!("/projects/{}", p.slug), None).json,
        settings
    );
}
