//! Alerts that act, end to end: a click-through rule fires from one cron run, the signed
//! webhook reaches a receiver started by the test exactly once, the campaign reads as
//! paused, and a receiver that fails first is retried.

use std::time::Duration;

use serde_json::{Value, json};
use tally_core::alerts::{BadSignature, SIGNATURE_TOLERANCE_S, verify_signature};

use crate::support::receiver::{Received, Receiver};
use crate::support::{Project, eventually, get, send_events, url, wait_for_count};

/// `opens` opens and `clicks` clicks of campaign `spring`.
fn mail(project: &Project, opens: usize, clicks: usize) {
    let events: Vec<Value> = (0..opens + clicks)
        .map(|i| {
            let name = if i < opens { "open" } else { "click" };
            json!({"name": name, "campaign": "spring", "source": "newsletter"})
        })
        .collect();
    let sent = send_events(project, &Value::Array(events));
    assert_eq!(sent.status, 202, "{}", sent.json);
    wait_for_count(project, (opens + clicks) as u64);
}

/// Creates the rule "click-through of `spring` below 1%" posting to `receiver` and
/// returns its webhook secret.
fn ctr_rule(project: &Project, receiver: &Receiver) -> String {
    let rule = json!({
        "name": "spring click-through",
        "metric": {"type": "ratio", "numerator": "click", "denominator": "open"},
        "filter": {"dimension": "campaign", "value": "spring"},
        "comparator": "<", "threshold": 0.01,
        "window_minutes": 15, "min_volume": 100, "cooldown_minutes": 60,
        "webhook": {"url": receiver.url},
        "pause_campaign": true,
    });
    let made = project.create_rule(&rule);
    find_secret(&made.json).unwrap_or_else(|| panic!("no webhook secret in {}", made.json))
}

/// The receiver's status at each delivery attempt of the latest alert in `history`.
fn attempt_statuses(history: &Value) -> Vec<u64> {
    history["alerts"][0]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_u64().unwrap())
        .collect()
}

/// The `whsec_…` webhook secret anywhere in an answer.
fn find_secret(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if s.starts_with("whsec_") => Some(s.clone()),
        Value::Object(map) => map.values().find_map(find_secret),
        Value::Array(items) => items.iter().find_map(find_secret),
        _ => None,
    }
}

/// Runs the aggregator's minutely job once.
fn run_minutely_cron() {
    let trigger = get(&format!(
        "{}/cdn-cgi/handler/scheduled?cron=*+*+*+*+*",
        url("aggregator")
    ));
    assert!(trigger.status < 300, "{} {}", trigger.status, trigger.json);
}

fn read(project: &Project, path: &str) -> Value {
    let answer = project.read(path);
    assert_eq!(answer.status, 200, "{path}: {}", answer.json);
    answer.json
}

fn wait_for_requests(receiver: &Receiver, n: usize, limit: Duration) -> Vec<Received> {
    eventually(&format!("{n} webhook requests"), limit, || {
        let got = receiver.received();
        if got.len() >= n {
            Ok(got)
        } else {
            Err(format!("{} so far", got.len()))
        }
    })
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn a_click_through_drop_fires_once_signs_its_webhook_and_pauses_the_campaign() {
    let project = Project::new("alert-ctr");
    let receiver = Receiver::start(&[]);
    let secret = ctr_rule(&project, &receiver);
    // Before the drop the campaign is active, as is one nobody ever mentioned.
    assert_eq!(read(&project, "campaigns/spring")["status"], "active");
    assert_eq!(read(&project, "campaigns/never-seen")["status"], "active");

    // 2 clicks per 300 opens: 0.67% click-through.
    mail(&project, 300, 2);
    run_minutely_cron();

    let got = wait_for_requests(&receiver, 1, Duration::from_secs(30));
    let hook = &got[0];
    assert_eq!(
        (hook.method.as_str(), hook.path.as_str()),
        ("POST", "/hook")
    );
    assert_eq!(hook.header("content-type"), Some("application/json"));
    let signature = hook
        .header("tally-signature")
        .expect("a Tally-Signature header");
    assert_eq!(
        verify_signature(&secret, signature, &hook.body, now_s()),
        Ok(())
    );
    // A receiver holding another secret, or a tampered body, sees a bad signature; an old
    // signature is refused as a replay.
    let wrong = format!("whsec_{}", "0".repeat(48));
    assert_eq!(
        verify_signature(&wrong, signature, &hook.body, now_s()),
        Err(BadSignature::Mismatch)
    );
    let tampered = hook.body.replace("spring", "autumn");
    assert_eq!(
        verify_signature(&secret, signature, &tampered, now_s()),
        Err(BadSignature::Mismatch)
    );
    assert_eq!(
        verify_signature(
            &secret,
            signature,
            &hook.body,
            now_s() + SIGNATURE_TOLERANCE_S + 60
        ),
        Err(BadSignature::Stale)
    );
    let body: Value = serde_json::from_str(&hook.body).unwrap();
    assert_eq!(body["type"], "alert.fired");
    assert_eq!(body["project"], project.slug.as_str());
    assert_eq!(body["volume"], 300);
    let value = body["value"].as_f64().unwrap();
    assert!((value - 2.0 / 300.0).abs() < 1e-9, "{value}");
    assert_eq!(body["campaign_paused"], "spring");
    assert_eq!(hook.header("tally-alert-id"), body["alert_id"].as_str());

    // The sending system sees the campaign paused.
    let campaign = eventually("spring reads paused", Duration::from_secs(20), || {
        let c = read(&project, "campaigns/spring");
        if c["status"] == "paused" {
            Ok(c)
        } else {
            Err(c.to_string())
        }
    });
    assert_eq!(campaign["alert_id"], body["alert_id"]);

    // More cron runs while the breach goes on send nothing new.
    for _ in 0..3 {
        run_minutely_cron();
        std::thread::sleep(Duration::from_secs(1));
    }
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(receiver.received().len(), 1, "the webhook arrived once");
    // Those runs recorded their evaluations (together, in one statement) without error.
    let rules = read(&project, "alerts/rules");
    let rule = &rules["rules"][0];
    assert_eq!(
        (&rule["state"], &rule["last_error"]),
        (&json!("firing"), &Value::Null)
    );
    assert!(
        rule["evaluated_at"].as_str() > rule["state_since"].as_str(),
        "{rule}"
    );
    // /v1/health counts what the last evaluation did, naming no rule to the public
    // (whose answer an isolate reuses for 5 s, so it may lag the evaluation a little).
    let health = eventually(
        "the public health counts an evaluation",
        Duration::from_secs(15),
        || {
            let health = get(&format!("{}/v1/health", url("query")));
            if health.json["alerts"]["rules"].as_u64() >= Some(1) {
                Ok(health)
            } else {
                Err(health.json.to_string())
            }
        },
    );
    let evaluation = &health.json["alerts"];
    assert_eq!(evaluation["budget"], 300, "{}", health.json);
    assert!(evaluation["rules"].as_u64() >= Some(1), "{evaluation}");
    assert_eq!(evaluation["failures"], json!([]), "{evaluation}");

    let history = eventually("the delivery is recorded", Duration::from_secs(20), || {
        let h = read(&project, "alerts");
        if h["alerts"][0]["delivery"] == "delivered" {
            Ok(h)
        } else {
            Err(h.to_string())
        }
    });
    let alerts = history["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{history}");
    assert_eq!(alerts[0]["kind"], "fired");
    assert_eq!(alerts[0]["campaign_paused"], "spring");
    assert_eq!(alerts[0]["attempts"].as_array().map(Vec::len), Some(1));
}

#[test]
fn a_receiver_that_fails_is_retried_until_it_answers() {
    let project = Project::new("alert-retry");
    let receiver = Receiver::start(&[500]);
    ctr_rule(&project, &receiver);
    mail(&project, 200, 0);
    run_minutely_cron();

    let got = wait_for_requests(&receiver, 2, Duration::from_secs(60));
    assert_eq!(got.iter().map(|r| r.status).collect::<Vec<_>>(), [500, 200]);
    // The queue waited the first backoff step (10 s) before trying again.
    let gap = got[1].at - got[0].at;
    assert!(gap >= Duration::from_secs(9), "retried after {gap:?}");
    // The same alert, the same body; the second attempt says so.
    assert_eq!(
        got[0].header("tally-alert-id"),
        got[1].header("tally-alert-id")
    );
    assert_eq!(got[0].body, got[1].body);
    assert_eq!(got[1].header("tally-delivery-attempt"), Some("2"));
    let history = eventually(
        "both attempts are recorded",
        Duration::from_secs(20),
        || {
            let h = read(&project, "alerts");
            let attempts = h["alerts"][0]["attempts"].as_array().map_or(0, Vec::len);
            if h["alerts"][0]["delivery"] == "delivered" && attempts == 2 {
                Ok(h)
            } else {
                Err(h.to_string())
            }
        },
    );
    let statuses = attempt_statuses(&history);
    assert_eq!(statuses, [500, 200]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(receiver.received().len(), 2, "nothing after the success");
}

#[test]
fn a_redirect_is_never_followed_with_the_signed_body() {
    // Following a redirect forwarded the signed body to wherever it pointed.
    let project = Project::new("alert-redirect");
    let receiver = Receiver::start(&[307]);
    ctr_rule(&project, &receiver);
    mail(&project, 200, 0);
    run_minutely_cron();

    let got = wait_for_requests(&receiver, 2, Duration::from_secs(60));
    let seen: Vec<(&str, u16)> = got.iter().map(|r| (r.path.as_str(), r.status)).collect();
    assert_eq!(
        seen,
        [("/hook", 307), ("/hook", 200)],
        "the redirect was not followed"
    );
    let history = eventually("the attempts are recorded", Duration::from_secs(20), || {
        let h = read(&project, "alerts");
        if h["alerts"][0]["delivery"] == "delivered" {
            Ok(h)
        } else {
            Err(h.to_string())
        }
    });
    let statuses = attempt_statuses(&history);
    assert_eq!(statuses, [307, 200]);
}
