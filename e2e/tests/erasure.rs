//! Erasing one person (GDPR Art. 17) through local D1: the admin API records the
//! request, the aggregator's hourly cron deletes the user's raw events and session
//! marks, and the status, the export and the track seed's `user_id` filter show it.

use std::time::Duration;

use serde_json::{Value, json};
use tally_core::jobs::Job;
use tally_core::time::format_ms;

use crate::support::*;

const MINUTE: i64 = 60_000;
const DAY: i64 = 86_400_000;

/// `GET` a path of the query worker with the project's read token.
fn read(p: &Project, path: &str) -> Answer {
    request(
        "GET",
        &format!("{}{path}", url("query")),
        &[("authorization", &p.read_auth())],
        None,
    )
}

fn marks(project: &str) -> i64 {
    with_d1(project, |db| {
        db.query_row(
            "SELECT COUNT(*) FROM session_events \
             WHERE project_id = (SELECT id FROM projects WHERE slug = ?1)",
            [project],
            |r| r.get(0),
        )
        .unwrap()
    })
}

#[test]
fn an_erased_user_s_raw_events_and_marks_go_at_the_hourly_run_and_others_stay() {
    let p = Project::new("forget");
    let s = p.slug.clone();
    let run = run_id();
    let t = now_ms() - 10 * MINUTE;
    // Alice (erased): 3 requests and a play/stop session; Bob (kept): 2 requests and a
    // session; one event without a user.
    let plan: [(&str, Option<&str>); 10] = [
        ("request", Some("alice@example.com")),
        ("request", Some("alice@example.com")),
        ("play", Some("alice@example.com")),
        ("stop", Some("alice@example.com")),
        ("request", Some("alice@example.com")),
        ("request", Some("bob")),
        ("play", Some("bob")),
        ("stop", Some("bob")),
        ("request", Some("bob")),
        ("request", None),
    ];
    let events: Vec<Value> = plan
        .iter()
        .enumerate()
        .map(|(i, (name, user))| {
            let mut e = json!({"event_id": event_id(run, i as u32), "name": name,
                "timestamp": t + i as i64 * 1000});
            if let Some(user) = user {
                e["user"] = json!(user);
            }
            e
        })
        .collect();
    let sent = send_events(&p, &Value::Array(events));
    assert_eq!(sent.status, 202, "{}", sent.json);
    assert_eq!(sent.json["rejected"], 0, "{}", sent.json);
    wait_for_count(&p, 10);
    let ids = |with_alice: bool| -> Vec<String> {
        let mut ids: Vec<String> = plan
            .iter()
            .enumerate()
            .filter(|(_, (_, user))| with_alice || *user != Some("alice@example.com"))
            .map(|(i, _)| event_id(run, i as u32))
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(p.exported_ids(2), ids(true));
    assert_eq!(marks(&s), 4);

    // Bad requests first: nothing is recorded for them.
    let long = "x".repeat(257);
    for (path, status, code) in [
        (
            format!("/projects/{s}/users/{long}"),
            400,
            "invalid_user_id",
        ),
        (format!("/projects/{s}/users/%ff"), 400, "invalid_user_id"),
        (
            "/projects/no-such-project/users/u1".to_owned(),
            404,
            "unknown_project",
        ),
        (format!("/projects/{s}/users/"), 404, "not_found"),
    ] {
        let a = admin("DELETE", &path, None);
        assert_eq!(
            (a.status, a.json["error"]["code"].as_str()),
            (status, Some(code)),
            "{path}: {}",
            a.json
        );
    }
    let a = admin(
        "GET",
        &format!("/projects/{s}/erasures/{}", "0".repeat(32)),
        None,
    );
    assert_eq!(
        (a.status, a.json["error"]["code"].as_str()),
        (404, Some("unknown_erasure")),
        "{}",
        a.json
    );

    // The request: recorded, pending, with where to follow it.
    let before = now_ms();
    let a = admin(
        "DELETE",
        &format!("/projects/{s}/users/alice%40example.com"),
        None,
    );
    assert_eq!(a.status, 202, "{}", a.json);
    let erasure = &a.json["erasure"];
    let id = erasure["id"].as_str().unwrap().to_owned();
    assert!(
        id.len() == 32
            && id
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "{id}"
    );
    let status_path = format!("/v1/admin/projects/{s}/erasures/{id}");
    assert_eq!(a.header("location"), Some(status_path.as_str()));
    assert_eq!(erasure["status_url"], status_path);
    assert_eq!(erasure["project"], s);
    assert_eq!(erasure["status"], "pending");
    assert_eq!(erasure["done_at"], Value::Null);
    assert_eq!(
        (
            erasure["raw_deleted"].as_u64(),
            erasure["marks_deleted"].as_u64()
        ),
        (Some(0), Some(0))
    );
    assert!(
        erasure["requested_at"].as_str().unwrap() >= format_ms(before - 5000).as_str(),
        "{erasure}"
    );
    let again = admin("GET", &format!("/projects/{s}/erasures/{id}"), None);
    assert_eq!(again.status, 200, "{}", again.json);
    assert_eq!(again.json, a.json, "nothing runs before the hourly job");

    // The hourly job erases; the status says what it deleted.
    let done = after_cron(
        Job::Hourly.cron(),
        "the erasure is done",
        Duration::from_secs(60),
        || {
            let a = admin("GET", &format!("/projects/{s}/erasures/{id}"), None);
            match a.json["erasure"]["status"].as_str() {
                Some("done") => Ok(a.json["erasure"].clone()),
                _ => Err(format!("{} {}", a.status, a.json)),
            }
        },
    );
    assert_eq!(
        (done["raw_deleted"].as_u64(), done["marks_deleted"].as_u64()),
        (Some(5), Some(2)),
        "{done}"
    );
    assert!(
        done["done_at"].as_str() >= done["requested_at"].as_str(),
        "{done}"
    );

    // Alice's raw events and marks are gone; Bob's and the anonymous event stay.
    assert_eq!(p.exported_ids(2), ids(false));
    assert_eq!(marks(&s), 2);
    let (start, end) = (
        format_ms(t - DAY)[..10].to_owned(),
        format_ms(now_ms())[..10].to_owned(),
    );
    let metrics = |user: &str| {
        let a = read(
            &p,
            &format!("/metrics?start_date={start}&end_date={end}&user_id={user}"),
        );
        assert_eq!(a.status, 200, "{}", a.json);
        let mut counts = json!({});
        for row in a.json["data"].as_array().unwrap() {
            for (name, n) in row.as_object().unwrap() {
                if name != "date" {
                    let sum = counts[name].as_u64().unwrap_or(0) + n.as_u64().unwrap();
                    counts[name] = json!(sum);
                }
            }
        }
        counts
    };
    assert_eq!(metrics("bob"), json!({"request": 2, "play": 1, "stop": 1}));
    assert_eq!(metrics("alice%40example.com"), json!({}));
    // The rollups keep only aggregates, and stay.
    assert_eq!(overview(&p).json["events"], 10);
    // Asking again is a new request, done at the next run with nothing left to delete.
    let a = admin(
        "DELETE",
        &format!("/projects/{s}/users/alice%40example.com"),
        None,
    );
    assert_eq!(a.status, 202, "{}", a.json);
    assert_ne!(a.json["erasure"]["id"].as_str(), Some(id.as_str()));
}
