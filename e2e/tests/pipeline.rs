//! The walking skeleton: ingest → queue → aggregator → D1 → query, and the cron.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

fn batch(project: &str, run: u32, n: u32) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({
                "event_id": event_id(run, i),
                "project": project,
                "name": "request",
                "method": "GET",
                "route": "/posts/:id",
                "status": if i % 10 == 0 { 500 } else { 200 },
                "duration_ms": f64::from(i % 50) + 0.5,
            })
        })
        .collect()
}

#[test]
fn a_batch_is_counted_exactly_and_a_resent_batch_changes_nothing() {
    let p = Project::new("exact");
    let project = p.slug.clone();
    let run = run_id();
    let events = batch(&project, run, 250);

    let first = send_events(&p, &Value::Array(events.clone()));
    assert_eq!(first.status, 202, "{}", first.json);
    assert_eq!(first.json["accepted"], 250);
    assert_eq!(first.json["rejected"], 0);
    assert_eq!(first.json["results"][7]["event_id"], event_id(run, 7));
    wait_for_count(&p, 250);
    let o = overview(&p);
    assert_eq!(o.json["errors"], 25, "{}", o.json);

    // The same 250 events again, in one request with one new marker event: the request
    // is one queue message, stored in one transaction, so once the marker is counted the
    // resent events have been processed too, and must have been ignored.
    let mut again = events.clone();
    again.push(json!({"event_id": event_id(run, 9999), "project": project, "name": "marker"}));
    let second = send_events(&p, &Value::Array(again));
    assert_eq!(second.status, 202, "{}", second.json);
    assert_eq!(second.json["accepted"], 251);
    wait_for_count(&p, 251);

    // And the same batch once more, as a separate request, then a second marker.
    assert_eq!(send_events(&p, &Value::Array(events)).status, 202);
    let marker = json!([{"event_id": event_id(run, 10_000), "project": project, "name": "marker"}]);
    assert_eq!(send_events(&p, &marker).status, 202);
    wait_for_count(&p, 252);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        overview(&p).json["events"],
        252,
        "duplicates must never be counted"
    );
}

#[test]
fn duplicates_within_one_request_are_stored_once() {
    let p = Project::new("dup");
    let project = p.slug.clone();
    let run = run_id();
    let one = json!({"event_id": event_id(run, 1), "project": project, "name": "install"});
    let answer = send_events(&p, &json!([one, one, one]));
    assert_eq!(answer.status, 202, "{}", answer.json);
    let marker = json!([{"event_id": event_id(run, 2), "project": project, "name": "marker"}]);
    send_events(&p, &marker);
    wait_for_count(&p, 2);
}

#[test]
fn events_without_an_id_get_one_and_are_counted() {
    let p = Project::new("noid");
    let project = p.slug.clone();
    let answer = send_events(
        &p,
        &json!({"events": [
            {"project": project, "name": "click"},
            {"project": project, "name": "click"},
        ]}),
    );
    assert_eq!(answer.status, 202, "{}", answer.json);
    let ids: Vec<&str> = answer.json["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["event_id"].as_str().expect("an id is returned"))
        .collect();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1], "generated ids are distinct");
    wait_for_count(&p, 2);
}

#[test]
fn raw_identifiers_never_reach_d1() {
    let p = Project::new("privacy");
    let project = p.slug.clone();
    let run = run_id();
    let raw_user = format!("alice-{run}@example.com");
    let raw_instance = format!("site-{run}.example");
    let answer = send_events(
        &p,
        &json!([{"event_id": event_id(run, 1), "project": project,
        "name": "play", "user": raw_user, "instance": raw_instance, "session": "sess-1"}]),
    );
    assert_eq!(answer.status, 202, "{}", answer.json);
    wait_for_count(&p, 1);
    let (user, instance, session): (String, String, String) = with_d1(&project, |db| {
        db.query_row(
            "SELECT hex(user), hex(instance), hex(session) FROM raw_events WHERE project_id = (SELECT id FROM projects WHERE slug = ?1)",
            [&project],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
    });
    for stored in [&user, &instance, &session] {
        assert_eq!(
            stored.len(),
            16,
            "8 bytes of a SHA-256 hash, not {stored:?}"
        );
    }
    let leaked: i64 = with_d1(&project, |db| {
        db.query_row(
            "SELECT COUNT(*) FROM raw_events WHERE project_id = (SELECT id FROM projects WHERE slug = ?1) AND (
                 instr(COALESCE(metadata, ''), ?2) > 0 OR instr(CAST(user AS TEXT), ?2) > 0
                 OR instr(CAST(instance AS TEXT), ?3) > 0)",
            rusqlite::params![project, raw_user, raw_instance],
            |r| r.get(0),
        )
        .unwrap()
    });
    assert_eq!(leaked, 0);
}

#[test]
fn projects_do_not_see_each_other() {
    let (a, b) = (Project::new("tenant-a"), Project::new("tenant-b"));
    let run = run_id();
    send_events(&a, &Value::Array(batch(&a.slug, run, 3)));
    // Same event ids in another project are different events.
    send_events(&b, &Value::Array(batch(&b.slug, run, 5)));
    wait_for_count(&a, 3);
    wait_for_count(&b, 5);
    // A key of one project cannot write into another.
    let crossed = send_events(&a, &Value::Array(batch(&b.slug, run + 1, 1)));
    assert_eq!(crossed.status, 400, "{}", crossed.json);
    assert_eq!(
        crossed.json["results"][0]["error"]["code"],
        "project_mismatch"
    );
}

#[test]
fn a_cron_trigger_runs_and_records_its_run() {
    let before = now_ms();
    let trigger = get(&format!(
        "{}/cdn-cgi/handler/scheduled?cron=*+*+*+*+*",
        url("aggregator")
    ));
    assert!(trigger.status < 300, "{} {}", trigger.status, trigger.json);
    let admin = format!("Bearer {}", admin_token());
    let health = || {
        request(
            "GET",
            &format!("{}/v1/health", url("query")),
            &[("authorization", &admin)],
            None,
        )
    };
    let run = eventually(
        "the minutely job's run is recorded",
        Duration::from_secs(15),
        || {
            let health = health();
            let jobs = health.json["jobs"].as_array().cloned().unwrap_or_default();
            jobs.into_iter()
                .find(|j| j["job"] == "minutely" && j["started_at"].as_i64() >= Some(before))
                .ok_or_else(|| health.json.to_string())
        },
    );
    assert_eq!(run["cron"], "* * * * *");
    let whole = health();
    assert_eq!(whole.json["dead_letters"], 0, "{}", whole.json);
    assert!(
        run.get("detail").is_some(),
        "the admin sees the detail: {run}"
    );
    // Anyone sees the run, but not its detail nor the dead letters.
    let public = eventually(
        "the public health shows the run",
        Duration::from_secs(15),
        || {
            let a = get(&format!("{}/v1/health", url("query")));
            let jobs = a.json["jobs"].as_array().cloned().unwrap_or_default();
            jobs.into_iter()
                .find(|j| j["job"] == "minutely" && j["started_at"].as_i64() >= Some(before))
                .map(|_| a.json.clone())
                .ok_or_else(|| a.json.to_string())
        },
    );
    assert!(public.get("dead_letters").is_none(), "{public}");
    assert!(public.get("missing_bindings").is_none(), "{public}");
    for job in public["jobs"].as_array().unwrap() {
        assert!(job.get("detail").is_none(), "{job}");
    }
    assert_eq!(run["outcome"], "ok", "{run}");
    assert!(
        run["finished_at"].as_i64() >= run["started_at"].as_i64(),
        "{run}"
    );
}

#[test]
fn rollups_carry_percentiles_and_uniques_and_days_roll_from_hours() {
    let p = Project::new("rollup");
    let project = p.slug.clone();
    let run = run_id();
    // 200 requests: durations 1..=200 ms, 20 users, 5 instances, every tenth a 500.
    let events: Vec<Value> = (0..200)
        .map(|i| {
            json!({"event_id": event_id(run, i), "project": project, "name": "request",
                "route": format!("/r/{}", i % 4), "status": if i % 10 == 0 { 500 } else { 200 },
                "duration_ms": f64::from(i + 1), "user": format!("u{}", i % 20),
                "instance": format!("i{}", i % 5), "bytes": 100})
        })
        .collect();
    assert_eq!(send_events(&p, &Value::Array(events.clone())).status, 202);
    wait_for_count(&p, 200);
    let o = overview(&p).json;
    assert_eq!(o["errors"], 20, "{o}");
    assert_eq!(o["bytes"], 20_000);
    assert_eq!(o["unique_users"], 20);
    assert_eq!(o["unique_instances"], 5);
    let p95 = o["duration_ms"]["p95"].as_f64().unwrap();
    assert!((p95 - 190.0).abs() <= 1.9, "p95 {p95} within 1% of 190");
    assert_eq!(o["duration_ms"]["count"], 200);

    // The minutely cron rolls the day from its hours.
    let day = after_cron(
        "* * * * *",
        "the day row is rolled",
        Duration::from_secs(30),
        || {
            let (count, errors, rows): (Option<i64>, Option<i64>, i64) = with_d1(&project, |db| {
                db.query_row(
                    "SELECT SUM(count), SUM(errors), COUNT(*) FROM rollups
                 WHERE project = ?1 AND period = 'day' AND dimension = 'route'",
                    [&project],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .unwrap()
            });
            match (count, errors) {
                (Some(c), Some(e)) => Ok((c, e, rows)),
                _ => Err("no day rows yet".to_owned()),
            }
        },
    );
    assert_eq!(day, (200, 20, 4), "four routes, every event once");
}

#[test]
fn retention_purges_raw_events_and_keeps_rollups() {
    let p = Project::new("retain");
    let project = p.slug.clone();
    let run = run_id();
    let three_days_ago = now_ms() - 3 * 86_400_000;
    let events: Vec<Value> = (0..30)
        .map(|i| {
            json!({"event_id": event_id(run, i), "project": project, "name": "serve",
            "timestamp": three_days_ago, "bytes": 1000})
        })
        .collect();
    assert_eq!(send_events(&p, &Value::Array(events)).status, 202);
    wait_for_count(&p, 30);
    let raw = stored_raw_events;
    assert_eq!(raw(&project), 30);
    let updated = admin(
        "PATCH",
        &format!("/projects/{project}"),
        Some(&json!({"retention_days": 2})),
    );
    assert_eq!(updated.status, 200, "{}", updated.json);
    assert_eq!(updated.json["project"]["retention_days"], 2);

    after_cron(
        "15 3 * * *",
        "raw events past retention are purged",
        Duration::from_secs(30),
        || match raw(&project) {
            0 => Ok(()),
            n => Err(format!("{n} raw events left")),
        },
    );
    // The rollups stay: the overview still counts every event.
    let o = overview(&p).json;
    assert_eq!(
        (o["events"].as_u64(), o["bytes"].as_u64()),
        (Some(30), Some(30_000)),
        "{o}"
    );
}

#[test]
fn session_marks_are_kept_for_pairing() {
    let p = Project::new("music");
    let project = p.slug.clone();
    let run = run_id();
    let t = now_ms() - 600_000;
    let answer = send_events(
        &p,
        &json!([
            {"event_id": event_id(run, 1), "project": project, "name": "play", "user": "u1", "timestamp": t},
            {"event_id": event_id(run, 2), "project": project, "name": "stop", "user": "u1", "timestamp": t + 180_000},
            {"event_id": event_id(run, 3), "project": project, "name": "pause", "user": "u1", "timestamp": t + 1},
            {"event_id": event_id(run, 4), "project": project, "name": "play", "timestamp": t + 2},
        ]),
    );
    assert_eq!(answer.status, 202, "{}", answer.json);
    wait_for_count(&p, 4);
    let marks: Vec<(i64, i64)> = with_d1(&project, |db| {
        let mut stmt = db
            .prepare("SELECT timestamp, is_start FROM session_events WHERE project_id = (SELECT id FROM projects WHERE slug = ?1) ORDER BY timestamp")
            .unwrap();
        stmt.query_map([&project], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    });
    assert_eq!(
        marks,
        vec![(t, 1), (t + 180_000, 0)],
        "only play/stop with a user"
    );
}
