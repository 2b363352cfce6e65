//! Digests end to end: the admin API refuses bad digests and stores nothing; a daily
//! digest configured for the current hour reaches a local receiver exactly once however
//! often the cron runs, signed as alert webhooks are, with the query API's overview
//! numbers for the day and a Slack-compatible text; a receiver that fails first shows
//! its error in the admin API until the retry gets through.

use std::time::Duration;

use serde_json::{Value, json};
use tally_core::alerts::verify_signature;
use tally_core::time::{DAY_MS, HOUR_MS, format_ms};

use crate::support::receiver::{Received, Receiver};
use crate::support::{
    Project, admin, after_cron, eventually, get, now_ms, request, send_events, url,
};

/// The current UTC hour.
fn this_hour() -> u64 {
    (now_ms().rem_euclid(DAY_MS) / HOUR_MS) as u64
}

/// The start of today, UTC.
fn today() -> i64 {
    now_ms().div_euclid(DAY_MS) * DAY_MS
}

fn digest_path(project: &Project) -> String {
    format!("/projects/{}/digest", project.slug)
}

/// The project's overview over `[from, to)`, read with its read token.
fn overview(project: &Project, from: i64, to: i64) -> Value {
    let a = project.read(&format!(
        "overview?from={}&to={}",
        format_ms(from),
        format_ms(to)
    ));
    assert_eq!(a.status, 200, "{}", a.json);
    a.json
}

/// Yesterday: 40 requests from the newsletter to /checkout, 5 of them failing with
/// `TypeError`, by 8 users; the day before: 10 requests from search to /.
fn seed(project: &Project) -> (i64, i64) {
    let yesterday = today() - DAY_MS;
    let mut events: Vec<Value> = (0..40)
        .map(|i| {
            let mut e = json!({
                "name": "request", "route": "/checkout", "source": "newsletter",
                "status": 200, "duration_ms": 20 + i * 3, "user": format!("u{}", i % 8),
                "instance": format!("i{}", i % 3),
                "timestamp": yesterday + HOUR_MS + i * 60_000,
            });
            if i < 5 {
                e["error_class"] = "TypeError".into();
                e["status"] = 500.into();
            }
            e
        })
        .collect();
    events.extend((0..10).map(|i| {
        json!({"name": "request", "route": "/", "source": "search", "duration_ms": 5,
               "timestamp": yesterday - DAY_MS + HOUR_MS + i * 60_000})
    }));
    let sent = send_events(project, &Value::Array(events));
    assert_eq!(sent.status, 202, "{}", sent.json);
    eventually(
        "yesterday's 40 events counted",
        Duration::from_secs(30),
        || {
            let o = overview(project, yesterday, today());
            let before = overview(project, yesterday - DAY_MS, yesterday);
            match (o["events"].as_u64(), before["events"].as_u64()) {
                (Some(40), Some(10)) => Ok(()),
                _ => Err(format!("{o} / {before}")),
            }
        },
    );
    (yesterday, today())
}

fn wait_for_requests(receiver: &Receiver, n: usize) -> Vec<Received> {
    after_cron(
        "* * * * *",
        &format!("{n} digest requests"),
        Duration::from_secs(60),
        || {
            let got = receiver.received();
            if got.len() >= n {
                Ok(got)
            } else {
                Err(format!("{} so far", got.len()))
            }
        },
    )
}

fn run_minutely_cron() {
    let trigger = get(&format!(
        "{}/cdn-cgi/handler/scheduled?cron=*+*+*+*+*",
        url("aggregator")
    ));
    assert!(trigger.status < 300, "{} {}", trigger.status, trigger.json);
}

#[test]
fn bad_digests_are_refused_by_field_and_store_nothing() {
    let project = Project::new("digest-bad");
    let path = digest_path(&project);
    let ok = json!({"period": "daily", "hour_utc": 9, "webhook_url": "https://hooks.example/d"});
    let cases: [(Value, Option<&str>); 9] = [
        (json!({"period": "monthly"}), Some("period")),
        (json!({"hour_utc": 24}), Some("hour_utc")),
        (json!({"hour_utc": "9"}), Some("hour_utc")),
        (json!({"weekday": 3}), Some("weekday")),
        (json!({"period": "weekly", "weekday": 0}), Some("weekday")),
        (
            json!({"webhook_url": "http://hooks.example/d"}),
            Some("webhook_url"),
        ),
        (json!({"webhook_url": "not a url"}), Some("webhook_url")),
        (json!({"enabled": "yes"}), Some("enabled")),
        (json!({"secret": "whsec_mine"}), None),
    ];
    for (patch, field) in cases {
        let mut body = ok.clone();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let a = admin("PUT", &path, Some(&body));
        assert_eq!(a.status, 400, "{body}: {}", a.json);
        assert_eq!(a.json["error"]["code"], "invalid_digest", "{}", a.json);
        assert_eq!(a.json["field"].as_str(), field, "{body}: {}", a.json);
    }
    let a = request(
        "PUT",
        &format!("{}/v1/admin{path}", url("query")),
        &[("authorization", "Bearer not-the-admin-token")],
        Some(&ok.to_string()),
    );
    assert_eq!(a.status, 401, "{}", a.json);
    let a = request(
        "PUT",
        &format!("{}/v1/admin{path}", url("query")),
        &[("authorization", &project.read_auth())],
        Some("{"),
    );
    assert_eq!(a.status, 401, "{}", a.json);
    let a = admin("PUT", "/projects/no-such-project-xyz/digest", Some(&ok));
    assert_eq!(a.status, 404, "{}", a.json);
    // Nothing was stored by any of them.
    let a = admin("GET", &path, None);
    assert_eq!(
        (a.status, a.json["error"]["code"].as_str()),
        (404, Some("unknown_digest")),
        "{}",
        a.json
    );
}

#[test]
fn a_daily_digest_arrives_once_signed_with_the_overviews_numbers() {
    let project = Project::new("digest");
    let receiver = Receiver::start(&[]);
    let (from, to) = seed(&project);
    let made = admin(
        "PUT",
        &digest_path(&project),
        Some(&json!({"period": "daily", "hour_utc": this_hour(), "webhook_url": receiver.url})),
    );
    assert_eq!(made.status, 201, "{}", made.json);
    let secret = made.json["digest"]["secret"]
        .as_str()
        .expect("the secret, shown once")
        .to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    // Shown once: neither a read nor a replacement shows it again.
    let shown = admin("GET", &digest_path(&project), None);
    assert_eq!(shown.json["digest"].get("secret"), None, "{}", shown.json);
    assert_eq!(shown.json["last_run"], Value::Null, "{}", shown.json);

    let got = wait_for_requests(&receiver, 1);
    // Two more cron runs (and the ones after_cron fired meanwhile) send nothing more.
    run_minutely_cron();
    run_minutely_cron();
    std::thread::sleep(Duration::from_secs(5));
    let all = receiver.received();
    assert_eq!(all.len(), 1, "the digest arrived {} times", all.len());

    let hook = &got[0];
    assert_eq!(
        (hook.method.as_str(), hook.header("content-type")),
        ("POST", Some("application/json"))
    );
    let signature = hook.header("tally-signature").expect("a Tally-Signature");
    assert_eq!(
        verify_signature(&secret, signature, &hook.body, now_ms() / 1000),
        Ok(())
    );
    let body: Value = serde_json::from_str(&hook.body).unwrap();
    assert_eq!(hook.header("tally-digest-id"), body["digest_id"].as_str());
    assert_eq!(body["type"], "digest");
    assert_eq!(body["period"], "daily");
    assert_eq!(
        (body["from"].as_str(), body["to"].as_str()),
        (Some(format_ms(from).as_str()), Some(format_ms(to).as_str()))
    );

    // The headline equals the query API's overview of the same day, number for number.
    let o = overview(&project, from, to);
    let h = &body["headline"];
    for key in [
        "events",
        "errors",
        "error_rate",
        "unique_users",
        "unique_instances",
    ] {
        assert_eq!(h[key], o[key], "{key}: digest {h}, overview {o}");
    }
    assert_eq!(
        h["duration_ms"]["p95"], o["duration_ms"]["p95"],
        "{h} / {o}"
    );
    assert_eq!(
        (h["events"].as_u64(), h["errors"].as_u64()),
        (Some(40), Some(5))
    );
    let before = overview(&project, from - DAY_MS, from);
    assert_eq!(body["previous"]["headline"]["events"], before["events"]);
    assert_eq!(
        body["movers"]["sources"][0],
        json!({"value": "newsletter", "current": 40, "previous": 0, "change": 40, "percent": null})
    );
    assert_eq!(body["movers"]["routes"][0]["value"], "/checkout");
    assert_eq!(body["movers"]["error_classes"][0]["value"], "TypeError");

    // The text a Slack incoming webhook shows states the headline numbers.
    let text = body["text"].as_str().expect("a text field");
    for line in [
        format!("Events: {} (", o["events"]),
        format!("Errors: {} (", o["errors"]),
        format!(
            "error rate {:.2}%",
            o["error_rate"].as_f64().unwrap() * 100.0
        ),
        format!(
            "p95 duration: {:.1} ms",
            o["duration_ms"]["p95"].as_f64().unwrap()
        ),
        format!(
            "Unique users: {}, unique instances: {}",
            o["unique_users"], o["unique_instances"]
        ),
        "source newsletter: 40 (+40, new)".to_owned(),
    ] {
        assert!(text.contains(&line), "{line:?} not in:\n{text}");
    }
    assert!(text.contains('\n'), "{text}");

    // The admin API shows the run delivered.
    let shown = admin("GET", &digest_path(&project), None);
    let run = &shown.json["last_run"];
    assert_eq!(
        (run["delivery"].as_str(), run["attempts"].as_u64()),
        (Some("delivered"), Some(1)),
        "{}",
        shown.json
    );
    assert_eq!(run["id"], body["digest_id"]);
}

#[test]
fn a_failing_digest_webhook_shows_its_error_until_the_retry_gets_through() {
    let project = Project::new("digest-retry");
    let receiver = Receiver::start(&[503]);
    let made = admin(
        "PUT",
        &digest_path(&project),
        Some(&json!({"period": "daily", "hour_utc": this_hour(), "webhook_url": receiver.url})),
    );
    assert_eq!(made.status, 201, "{}", made.json);
    wait_for_requests(&receiver, 1);
    let failed = eventually(
        "the failed attempt recorded",
        Duration::from_secs(10),
        || {
            let a = admin("GET", &digest_path(&project), None);
            match a.json["last_run"]["last_status"].as_u64() {
                Some(503) => Ok(a.json),
                _ => Err(a.json.to_string()),
            }
        },
    );
    let run = &failed["last_run"];
    assert_eq!(run["delivery"], "pending", "{failed}");
    assert_eq!(run["last_error"], "HTTP 503", "{failed}");
    // The queue retries after 10 s, with the same body.
    let got = eventually("the retry", Duration::from_secs(60), || {
        let got = receiver.received();
        if got.len() >= 2 {
            Ok(got)
        } else {
            Err(format!("{} so far", got.len()))
        }
    });
    assert_eq!(got[0].body, got[1].body);
    let delivered = eventually("the retry recorded", Duration::from_secs(10), || {
        let a = admin("GET", &digest_path(&project), None);
        match a.json["last_run"]["delivery"].as_str() {
            Some("delivered") => Ok(a.json),
            _ => Err(a.json.to_string()),
        }
    });
    assert_eq!(delivered["last_run"]["attempts"], 2, "{delivered}");
    assert_eq!(
        delivered["last_run"]["last_error"],
        Value::Null,
        "{delivered}"
    );
}
