//! The alerting API end to end, without firing: alert rules through the admin API
//! (create, list, change, rotate, delete; the webhook secret shown once and never to a
//! read token; bad rules refused with codes; the per-project limit), the read API's rules
//! and history, campaigns seen in events and paused and resumed by hand, and isolation
//! between projects. Firing and delivery are `alerts.rs`'s.

use serde_json::{Value, json};

use crate::support::*;

/// The click-through rule of the README: below 1% on campaign `spring`, pausing it.
fn ctr_rule() -> Value {
    json!({
        "name": "spring click-through",
        "metric": {"type": "ratio", "numerator": "click", "denominator": "open"},
        "filter": {"dimension": "campaign", "value": "spring"},
        "comparator": "<", "threshold": 0.01,
        "window_minutes": 15, "min_volume": 100, "cooldown_minutes": 60,
        "webhook": {"url": "https://hooks.example/tally"},
        "pause_campaign": true,
    })
}

fn rules_path(p: &Project) -> String {
    format!("/projects/{}/alert-rules", p.slug)
}

/// A `GET` of the read API with `auth` (`None` for no token).
fn read(p: &str, path: &str, auth: Option<&str>) -> Answer {
    let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
    request(
        "GET",
        &format!("{}/v1/projects/{p}/{path}", url("query")),
        &headers,
        None,
    )
}

/// Creates a rule and returns the answer's rule.
fn create(p: &Project, body: &Value) -> Value {
    let a = admin("POST", &rules_path(p), Some(body));
    assert_eq!(a.status, 201, "{}", a.json);
    a.json["rule"].clone()
}

fn code(a: &Answer) -> &str {
    a.json["error"]["code"].as_str().unwrap_or_default()
}

#[test]
fn rules_are_created_listed_changed_and_deleted_and_the_secret_is_shown_once() {
    let p = Project::new("alert-rules");
    let rule = create(&p, &ctr_rule());
    let id = rule["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("ar_") && id.len() == 19, "{id}");
    let secret = rule["webhook"]["secret"].as_str().unwrap().to_owned();
    assert!(
        secret.starts_with("whsec_") && secret.len() == 54,
        "{secret}"
    );
    assert_eq!(rule["webhook"]["secret_prefix"], secret[..14]);
    assert_eq!(rule["pause_campaign"], "spring");
    assert_eq!(rule["project"], p.slug.as_str());
    assert_eq!(
        (&rule["state"], &rule["state_since"], &rule["evaluated_at"]),
        (&json!("ok"), &Value::Null, &Value::Null)
    );
    assert_eq!(rule["cooldown_minutes"], 60);
    assert_eq!(rule["enabled"], true);

    // Listings, the admin's and a read token's, never carry the secret.
    let listed = admin("GET", &rules_path(&p), None);
    assert_eq!(listed.status, 200, "{}", listed.json);
    assert_eq!(listed.json["rules"].as_array().unwrap().len(), 1);
    let one = admin("GET", &format!("{}/{id}", rules_path(&p)), None);
    assert_eq!(one.status, 200, "{}", one.json);
    let public = read(&p.slug, "alerts/rules", Some(&p.read_auth()));
    assert_eq!(public.status, 200, "{}", public.json);
    assert_eq!(public.header("cache-control"), Some("private, max-age=10"));
    assert_eq!(public.json["rules"][0]["id"], id.as_str());
    assert_eq!(public.json["rules"][0]["name"], "spring click-through");
    // The admin sees where the webhook goes; a read token only its host.
    assert_eq!(
        listed.json["rules"][0]["webhook"]["url"],
        "https://hooks.example/tally"
    );
    assert_eq!(
        public.json["rules"][0]["webhook"]["url"],
        "https://hooks.example"
    );
    for shown in [&listed.json, &one.json, &public.json] {
        let text = shown.to_string();
        assert!(!text.contains(&secret), "{text}");
        assert!(!text.contains("\"secret\""), "{text}");
        assert!(
            text.contains(&secret[..14]),
            "the prefix identifies it: {text}"
        );
    }

    // A change keeps the secret and does not show it.
    let patch = |body: Value| {
        let a = admin("PATCH", &format!("{}/{id}", rules_path(&p)), Some(&body));
        assert_eq!(a.status, 200, "{body}: {}", a.json);
        a.json["rule"].clone()
    };
    let changed = patch(json!({"threshold": 0.02, "name": "spring CTR", "min_volume": 500}));
    assert_eq!(
        (
            &changed["threshold"],
            &changed["name"],
            &changed["min_volume"]
        ),
        (&json!(0.02), &json!("spring CTR"), &json!(500))
    );
    assert!(changed["webhook"].get("secret").is_none(), "{changed}");
    assert_eq!(changed["webhook"]["secret_prefix"], secret[..14]);
    assert_eq!(changed["created_at"], rule["created_at"]);

    // A rotation shows the new secret once.
    let rotated = patch(json!({"rotate_secret": true}));
    let new_secret = rotated["webhook"]["secret"].as_str().unwrap().to_owned();
    assert!(new_secret.starts_with("whsec_") && new_secret != secret);
    assert_eq!(rotated["webhook"]["url"], "https://hooks.example/tally");
    let after = admin("GET", &format!("{}/{id}", rules_path(&p)), None);
    assert!(
        !after.json.to_string().contains(&new_secret),
        "{}",
        after.json
    );
    assert_eq!(
        after.json["rule"]["webhook"]["secret_prefix"],
        new_secret[..14]
    );

    let disabled = patch(json!({"enabled": false}));
    assert_eq!(disabled["enabled"], false);
    // Without a webhook there is no secret to rotate; adding one makes a secret, shown.
    let bare = patch(json!({"webhook": null, "pause_campaign": null}));
    assert_eq!(
        (&bare["webhook"], &bare["pause_campaign"]),
        (&Value::Null, &Value::Null)
    );
    let refused = admin(
        "PATCH",
        &format!("{}/{id}", rules_path(&p)),
        Some(&json!({"rotate_secret": true})),
    );
    assert_eq!((refused.status, code(&refused)), (400, "invalid_rule"));
    let hooked = patch(json!({"webhook": {"url": "http://127.0.0.1:9/hook"}}));
    assert!(
        hooked["webhook"]["secret"]
            .as_str()
            .is_some_and(|s| s.starts_with("whsec_")),
        "{hooked}"
    );

    // Deleting answers the rule as it was; then it is gone.
    let deleted = admin("DELETE", &format!("{}/{id}", rules_path(&p)), None);
    assert_eq!(deleted.status, 200, "{}", deleted.json);
    assert_eq!(
        (&deleted.json["deleted"], &deleted.json["rule"]["id"]),
        (&json!(true), &json!(id))
    );
    for method in ["GET", "PATCH", "DELETE"] {
        let body = json!({"threshold": 1});
        let gone = admin(
            method,
            &format!("{}/{id}", rules_path(&p)),
            (method == "PATCH").then_some(&body),
        );
        assert_eq!(
            (gone.status, code(&gone)),
            (404, "unknown_rule"),
            "{method}"
        );
    }
    let listed = admin("GET", &rules_path(&p), None);
    assert_eq!(listed.json["rules"], json!([]));

    // A project that does not exist has no rules to list or add.
    let nowhere = admin(
        "POST",
        "/projects/no-such-project/alert-rules",
        Some(&ctr_rule()),
    );
    assert_eq!((nowhere.status, code(&nowhere)), (404, "unknown_project"));
    let nowhere = admin("GET", "/projects/no-such-project/alert-rules", None);
    assert_eq!((nowhere.status, code(&nowhere)), (404, "unknown_project"));
    let wrong = admin("PUT", &rules_path(&p), Some(&ctr_rule()));
    assert_eq!(wrong.status, 405);
}

#[test]
fn bad_rules_are_refused_with_a_code_and_the_reason() {
    let p = Project::new("alert-bad");
    let with = |patch: Value| {
        let mut body = ctr_rule();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let cases = [
        (with(json!({"window_minutes": 2})), "window_minutes"),
        (with(json!({"comparator": "=="})), "comparator"),
        (with(json!({"metric": {"type": "median"}})), "metric type"),
        (
            with(json!({"filter": {"dimension": "country", "value": "DE"}})),
            "filter dimension",
        ),
        (with(json!({"filter": null})), "pause_campaign"),
        (
            with(json!({"webhook": {"url": "ftp://x.example"}})),
            "http or https",
        ),
        (with(json!({"rotate_secret": true})), "rotate_secret"),
        (with(json!({"surprise": 1})), "unknown field"),
        (json!({"name": "no metric"}), "\"metric\""),
        (json!([1, 2]), "JSON rule"),
    ];
    for (body, fragment) in cases {
        let a = admin("POST", &rules_path(&p), Some(&body));
        assert_eq!(
            (a.status, code(&a)),
            (400, "invalid_rule"),
            "{body}: {}",
            a.json
        );
        let message = a.json["error"]["message"].as_str().unwrap();
        assert!(message.contains(fragment), "{body}: {message}");
    }
    let a = request(
        "POST",
        &format!("{}/v1/admin{}", url("query"), rules_path(&p)),
        &[("authorization", &format!("Bearer {}", admin_token()))],
        Some("not json"),
    );
    assert_eq!((a.status, code(&a)), (400, "invalid_rule"), "{}", a.json);
    // A change is checked as a whole rule: a threshold that is not a number, a cooldown
    // past a week.
    let id = create(&p, &ctr_rule())["id"].as_str().unwrap().to_owned();
    for body in [
        json!({"threshold": "low"}),
        json!({"cooldown_minutes": 20_000}),
    ] {
        let a = admin("PATCH", &format!("{}/{id}", rules_path(&p)), Some(&body));
        assert_eq!(
            (a.status, code(&a)),
            (400, "invalid_rule"),
            "{body}: {}",
            a.json
        );
    }
    // Nothing was stored by the refusals.
    let listed = admin("GET", &rules_path(&p), None);
    assert_eq!(listed.json["rules"].as_array().unwrap().len(), 1);
    assert_eq!(listed.json["rules"][0]["threshold"], 0.01);
}

#[test]
fn a_project_has_at_most_100_rules() {
    let p = Project::new("alert-limit");
    // Disabled, so the minutely evaluation other tests trigger skips them (a count below
    // 1 of an event never sent would fire).
    let rule = |i: usize| {
        json!({"name": format!("heartbeat {i}"), "metric": {"type": "count", "name": "heartbeat"},
               "comparator": "<", "threshold": 1, "window_minutes": 5, "enabled": false})
    };
    for i in 0..100 {
        create(&p, &rule(i));
    }
    let over = admin("POST", &rules_path(&p), Some(&rule(100)));
    assert_eq!(
        (over.status, code(&over)),
        (409, "too_many_rules"),
        "{}",
        over.json
    );
    let listed = admin("GET", &rules_path(&p), None);
    let names: Vec<&str> = listed.json["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 100);
    assert_eq!((names[0], names[99]), ("heartbeat 0", "heartbeat 99"));
    // Room again after a deletion.
    let first = listed.json["rules"][0]["id"].as_str().unwrap();
    assert_eq!(
        admin("DELETE", &format!("{}/{first}", rules_path(&p)), None).status,
        200
    );
    create(&p, &rule(100));
}

#[test]
fn another_project_can_neither_see_nor_change_a_project_s_rules_and_campaigns() {
    let a = Project::new("alert-iso-a");
    let b = Project::new("alert-iso-b");
    let id = create(&a, &ctr_rule())["id"].as_str().unwrap().to_owned();
    // The admin API finds a rule only under its own project.
    let on_b = format!("{}/{id}", rules_path(&b));
    for (method, body) in [
        ("GET", None),
        ("PATCH", Some(json!({"threshold": 0.5}))),
        ("DELETE", None),
    ] {
        let got = admin(method, &on_b, body.as_ref());
        assert_eq!((got.status, code(&got)), (404, "unknown_rule"), "{method}");
    }
    let still = admin("GET", &format!("{}/{id}", rules_path(&a)), None);
    assert_eq!(still.json["rule"]["threshold"], 0.01, "{}", still.json);
    assert_eq!(admin("GET", &rules_path(&b), None).json["rules"], json!([]));
    let listed_b = read(&b.slug, "alerts/rules", Some(&b.read_auth()));
    assert_eq!(listed_b.json["rules"], json!([]), "{}", listed_b.json);

    // A pause in one project is not another's.
    let paused = admin(
        "PUT",
        &format!("/projects/{}/campaigns/spring", a.slug),
        Some(&json!({"status": "paused"})),
    );
    assert_eq!(paused.status, 200, "{}", paused.json);
    let spring_b = read(&b.slug, "campaigns/spring", Some(&b.read_auth()));
    assert_eq!(spring_b.json["status"], "active", "{}", spring_b.json);
    assert_eq!(
        read(&b.slug, "campaigns", Some(&b.read_auth())).json["campaigns"],
        json!([])
    );

    // Tokens: another project's read token, a write key, none at all.
    for path in ["alerts", "alerts/rules", "campaigns", "campaigns/spring"] {
        let other = read(&a.slug, path, Some(&b.read_auth()));
        assert_eq!(
            (other.status, code(&other)),
            (403, "wrong_project"),
            "{path}"
        );
        let write = read(&a.slug, path, Some(&a.write_auth()));
        assert_eq!(
            (write.status, code(&write)),
            (401, "wrong_key_kind"),
            "{path}"
        );
        let none = read(&a.slug, path, None);
        assert_eq!((none.status, code(&none)), (401, "missing_token"), "{path}");
        let own = read(&a.slug, path, Some(&a.read_auth()));
        assert_eq!(own.status, 200, "{path}: {}", own.json);
    }
    // Read tokens cannot reach the admin API.
    let sneaky = request(
        "GET",
        &format!("{}/v1/admin{}", url("query"), rules_path(&a)),
        &[("authorization", &a.read_auth())],
        None,
    );
    assert_eq!((sneaky.status, code(&sneaky)), (401, "invalid_admin_token"));
}

#[test]
fn campaigns_seen_in_events_are_listed_and_paused_and_resumed_by_hand() {
    let p = Project::new("alert-campaigns");
    let mut events = Vec::new();
    for (campaign, n) in [("spring", 3), ("autumn", 2)] {
        for _ in 0..n {
            events.push(json!({"name": "open", "campaign": campaign}));
        }
    }
    events.push(json!({"name": "open"}));
    let sent = send_events(&p, &Value::Array(events));
    assert_eq!(sent.status, 202, "{}", sent.json);
    wait_for_count(&p, 6);

    let auth = p.read_auth();
    let listed = read(&p.slug, "campaigns", Some(&auth));
    assert_eq!(listed.status, 200, "{}", listed.json);
    assert_eq!(listed.header("cache-control"), Some("no-store"));
    assert_eq!(
        listed.json["campaigns"],
        json!([
            {"campaign": "autumn", "status": "active", "reason": null, "alert_id": null,
             "updated_at": null, "events_30d": 2},
            {"campaign": "spring", "status": "active", "reason": null, "alert_id": null,
             "updated_at": null, "events_30d": 3},
        ])
    );
    // A campaign nobody mentioned may be sent: it is active.
    let unknown = read(&p.slug, "campaigns/never%20seen", Some(&auth));
    assert_eq!(unknown.status, 200, "{}", unknown.json);
    assert_eq!(unknown.header("cache-control"), Some("no-store"));
    assert_eq!(
        unknown.json,
        json!({"campaign": "never seen", "status": "active", "reason": null,
               "alert_id": null, "updated_at": null, "events_30d": 0})
    );

    // Paused by hand: every reader sees it on its next request.
    let put = |campaign: &str, body: Value| {
        admin(
            "PUT",
            &format!("/projects/{}/campaigns/{campaign}", p.slug),
            Some(&body),
        )
    };
    let paused = put(
        "spring",
        json!({"status": "paused", "reason": "budget spent"}),
    );
    assert_eq!(paused.status, 200, "{}", paused.json);
    assert_eq!(paused.header("cache-control"), Some("no-store"));
    assert_eq!(
        (
            &paused.json["status"],
            &paused.json["reason"],
            &paused.json["alert_id"],
            &paused.json["events_30d"]
        ),
        (
            &json!("paused"),
            &json!("budget spent"),
            &Value::Null,
            &json!(3)
        )
    );
    assert!(paused.json["updated_at"].is_string(), "{}", paused.json);
    let spring = read(&p.slug, "campaigns/spring", Some(&auth));
    assert_eq!(spring.json, paused.json);
    // A campaign not seen yet can be paused ahead of its first send.
    let ahead = put("black%20friday", json!({"status": "paused"}));
    assert_eq!(ahead.status, 200, "{}", ahead.json);
    let listed = read(&p.slug, "campaigns", Some(&auth));
    let states: Vec<(String, String, u64)> = listed.json["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["campaign"].as_str().unwrap().to_owned(),
                c["status"].as_str().unwrap().to_owned(),
                c["events_30d"].as_u64().unwrap(),
            )
        })
        .collect();
    let owned = |c: &str, s: &str, n: u64| (c.to_owned(), s.to_owned(), n);
    assert_eq!(
        states,
        [
            owned("autumn", "active", 2),
            owned("black friday", "paused", 0),
            owned("spring", "paused", 3),
        ]
    );

    // Resumed.
    let resumed = put("spring", json!({"status": "active"}));
    assert_eq!(resumed.status, 200, "{}", resumed.json);
    assert_eq!(
        (&resumed.json["status"], &resumed.json["reason"]),
        (&json!("active"), &Value::Null)
    );
    assert_eq!(
        read(&p.slug, "campaigns/spring", Some(&auth)).json["status"],
        "active"
    );

    // Bad requests say what is wrong.
    for (body, fragment) in [
        (json!({"status": "stopped"}), "\"active\" or \"paused\""),
        (json!({"reason": "x"}), "status"),
        (json!({"status": "paused", "extra": 1}), "unknown field"),
    ] {
        let a = put("spring", body.clone());
        assert_eq!(
            (a.status, code(&a)),
            (400, "invalid_campaign_state"),
            "{body}"
        );
        assert!(
            a.json["error"]["message"]
                .as_str()
                .unwrap()
                .contains(fragment),
            "{body}: {}",
            a.json
        );
    }
    let bad = put("%ff", json!({"status": "paused"}));
    assert_eq!((bad.status, code(&bad)), (400, "invalid_campaign"));
    let nowhere = admin(
        "PUT",
        "/projects/no-such-project/campaigns/spring",
        Some(&json!({"status": "paused"})),
    );
    assert_eq!((nowhere.status, code(&nowhere)), (404, "unknown_project"));
    let wrong = admin(
        "POST",
        &format!("/projects/{}/campaigns/spring", p.slug),
        Some(&json!({"status": "paused"})),
    );
    assert_eq!(wrong.status, 405);
}

#[test]
fn the_alert_history_takes_a_range_and_a_limit() {
    let p = Project::new("alert-history");
    let auth = p.read_auth();
    let empty = read(&p.slug, "alerts?days=7&limit=10", Some(&auth));
    assert_eq!(empty.status, 200, "{}", empty.json);
    assert_eq!(empty.json["alerts"], json!([]));
    assert_eq!(empty.json["project"], p.slug.as_str());
    assert!(empty.json["from"].is_string() && empty.json["to"].is_string());
    assert_eq!(empty.header("cache-control"), Some("private, max-age=10"));
    for (query, expected) in [
        ("alerts?limit=0", "invalid_limit"),
        ("alerts?limit=1001", "invalid_limit"),
        ("alerts?days=1&from=2026-01-01", "invalid_range"),
        ("alerts?from=yesterday", "invalid_range"),
    ] {
        let a = read(&p.slug, query, Some(&auth));
        assert_eq!((a.status, code(&a)), (400, expected), "{query}");
    }
    let posted = request(
        "POST",
        &format!("{}/v1/projects/{}/alerts", url("query"), p.slug),
        &[("authorization", &auth)],
        Some("{}"),
    );
    assert_eq!(posted.status, 405);
}
