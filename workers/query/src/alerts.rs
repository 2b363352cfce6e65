//! Alerting in the query worker: the admin API's alert rules
//! (`/v1/admin/projects/{p}/alert-rules[/{id}]`: list, create, show, change, delete),
//! the read API's history and rules (`GET /v1/projects/{p}/alerts` and
//! `/alerts/rules`), and the JSON shapes of both.
//!
//! A rule's webhook secret appears in the answer that creates it and in the answer to a
//! change that replaced it (a rotation, or a new webhook), never again: listings show
//! its first characters. Read tokens see rule definitions and states, never secrets.
//! The aggregator evaluates the rules and records the alerts; this worker only reads
//! them, and writes rule definitions.

use serde_json::{Value, json};
use tally_core::ApiError;
use tally_core::alerts::{Fresh, ID_BYTES, MAX_RULES_PER_PROJECT, SECRET_BYTES, parse_input};
use tally_core::time::format_ms;
use tally_storage::alerts::{AlertRecord, AlertStore, AlertWrite, RuleEntry};
use tally_storage::d1::D1Store;
use tally_storage::{Write, Writer};
use worker::{Request, Response};

use crate::RequestEnv;
use crate::admin::{existing, json_response};
use crate::api::{self, Params};
use crate::error::internal;

/// Seconds a client may reuse a history or rule listing of the read API: alerts change
/// at most once a minute per rule.
pub const MAX_AGE_S: u32 = 10;

/// Alerts a history answer holds by default, and at most.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;

/// An epoch-millisecond time as RFC 3339, `null` when there is none.
pub fn time(ms: Option<i64>) -> Value {
    ms.map_or(Value::Null, |ms| Value::String(format_ms(ms)))
}

/// A rule as the API shows it: its definition ([`tally_core::alerts::Rule::to_json`],
/// the secret only `with_secret`) and what its evaluations remember.
pub fn rule_json(entry: &RuleEntry, with_secret: bool) -> Value {
    let mut rule = entry.rule.to_json(with_secret);
    let status = &entry.status;
    let last = entry.last;
    // A state never changed since the rule was made has no start of its own.
    let since = (status.since_ms > 0).then_some(status.since_ms);
    for (key, value) in [
        ("state", Value::from(status.state.name())),
        ("state_since", time(since)),
        ("last_fired_at", time(status.last_fired_ms)),
        ("last_value", last.and_then(|(v, _, _)| v).into()),
        ("last_volume", last.map(|(_, volume, _)| volume).into()),
        ("evaluated_at", time(last.map(|(_, _, at)| at))),
        // Why the evaluation at `evaluated_at` failed; null when it succeeded.
        ("last_error", entry.error.as_deref().into()),
    ] {
        rule[key] = value;
    }
    rule
}

/// An alert of the history: what happened, to which rule, and how its webhook went.
pub fn alert_json(alert: &AlertRecord) -> Value {
    let attempts: Vec<Value> = alert
        .attempt_log
        .iter()
        .map(|a| {
            json!({
                "attempt": a.attempt,
                "at": format_ms(a.at),
                "status": a.status,
                "error": a.error,
                "duration_ms": a.duration_ms,
            })
        })
        .collect();
    json!({
        "id": alert.id,
        "rule_id": alert.rule_id,
        "rule_name": alert.rule_name,
        "kind": alert.kind,
        "at": format_ms(alert.at),
        "value": alert.value,
        "volume": alert.volume,
        "delivery": alert.delivery,
        "delivered_at": time(alert.delivered_at),
        "attempts": attempts,
        "campaign_paused": alert.campaign_paused,
    })
}

fn unknown_rule(slug: &str, id: &str) -> ApiError {
    ApiError::new(
        404,
        "unknown_rule",
        format!(
            "project {slug:?} has no alert rule {id:?}; list them with \
             GET /v1/admin/projects/{slug}/alert-rules"
        ),
    )
}

/// The rules of a project with their state, oldest first.
async fn entries(store: &D1Store, slug: &str) -> Result<Vec<RuleEntry>, ApiError> {
    store.alert_rules(Some(slug)).await.map_err(internal)
}

async fn entry(store: &D1Store, slug: &str, id: &str) -> Result<RuleEntry, ApiError> {
    entries(store, slug)
        .await?
        .into_iter()
        .find(|e| e.rule.id == id)
        .ok_or_else(|| unknown_rule(slug, id))
}

/// A URL cut to its scheme, host and port: `https://hooks.example`.
fn origin_only(url: &str) -> String {
    let host_start = url.find("://").map_or(0, |i| i + 3);
    let end = url[host_start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |end| host_start + end);
    url[..end].to_owned()
}

fn rule_list(entries: &[RuleEntry]) -> Value {
    let rules: Vec<Value> = entries.iter().map(|e| rule_json(e, false)).collect();
    json!({ "rules": rules })
}

/// `GET /v1/admin/projects/{p}/alert-rules`.
pub async fn list_rules(store: &D1Store, slug: &str) -> Result<Response, ApiError> {
    existing(store, slug).await?;
    json_response(200, &rule_list(&entries(store, slug).await?))
}

/// `POST /v1/admin/projects/{p}/alert-rules`: a new rule from a
/// [`tally_core::alerts::RuleInput`] body; the answer shows its webhook secret, once.
pub async fn create_rule(
    store: &D1Store,
    slug: &str,
    body: &[u8],
    now_ms: i64,
) -> Result<Response, ApiError> {
    existing(store, slug).await?;
    let mut fresh = Fresh {
        id: [0; ID_BYTES],
        secret: [0; SECRET_BYTES],
    };
    getrandom::fill(&mut fresh.id).map_err(internal)?;
    getrandom::fill(&mut fresh.secret).map_err(internal)?;
    let rule = parse_input(body)?.create(slug, &fresh, now_ms)?;
    let changed = store
        .commit(&[Write::Alert(AlertWrite::InsertRule {
            rule: &rule,
            max_rules: MAX_RULES_PER_PROJECT,
        })])
        .await
        .map_err(internal)?;
    if changed.first() != Some(&1) {
        return Err(ApiError::new(
            409,
            "too_many_rules",
            format!(
                "project {slug:?} has {MAX_RULES_PER_PROJECT} alert rules, the most a project \
                 may have; delete one first"
            ),
        ));
    }
    let entry = RuleEntry {
        rule,
        status: Default::default(),
        last: None,
        error: None,
    };
    json_response(201, &json!({ "rule": rule_json(&entry, true) }))
}

/// `GET /v1/admin/projects/{p}/alert-rules/{id}`.
pub async fn get_rule(store: &D1Store, slug: &str, id: &str) -> Result<Response, ApiError> {
    existing(store, slug).await?;
    let entry = entry(store, slug, id).await?;
    json_response(200, &json!({ "rule": rule_json(&entry, false) }))
}

/// `PATCH /v1/admin/projects/{p}/alert-rules/{id}`: changes the fields given. With
/// `"rotate_secret": true` the webhook gets a new secret; a webhook added to a rule
/// that had none gets one too. The answer shows the secret only when it changed.
pub async fn update_rule(
    store: &D1Store,
    slug: &str,
    id: &str,
    body: &[u8],
    now_ms: i64,
) -> Result<Response, ApiError> {
    existing(store, slug).await?;
    let input = parse_input(body)?;
    let mut entry = entry(store, slug, id).await?;
    let rule = &mut entry.rule;
    let before = rule.webhook.as_ref().map(|w| w.secret.clone());
    let rotate = input.rotates_secret();
    if rotate && before.is_none() {
        return Err(ApiError::bad_request(
            "invalid_rule",
            "rotate_secret: the rule has no webhook, so no secret to replace",
        ));
    }
    // A fresh secret for a rotation, or for a webhook the change may add.
    let fresh = if rotate || before.is_none() {
        let mut random = [0u8; SECRET_BYTES];
        getrandom::fill(&mut random).map_err(internal)?;
        Some(tally_core::alerts::new_secret(&random))
    } else {
        None
    };
    input.apply(rule, fresh.as_deref())?;
    rule.updated_at = now_ms;
    let changed = store
        .commit(&[Write::Alert(AlertWrite::UpdateRule { rule })])
        .await
        .map_err(internal)?;
    if changed.first() != Some(&1) {
        // Deleted since it was read.
        return Err(unknown_rule(slug, id));
    }
    let after = rule.webhook.as_ref().map(|w| &w.secret);
    let show_secret = after.is_some() && after != before.as_ref();
    json_response(200, &json!({ "rule": rule_json(&entry, show_secret) }))
}

/// `DELETE /v1/admin/projects/{p}/alert-rules/{id}`: the rule goes; its alerts stay in
/// the history.
pub async fn delete_rule(store: &D1Store, slug: &str, id: &str) -> Result<Response, ApiError> {
    existing(store, slug).await?;
    let entry = entry(store, slug, id).await?;
    let changed = store
        .commit(&[Write::Alert(AlertWrite::DeleteRule { project: slug, id })])
        .await
        .map_err(internal)?;
    if changed.first() != Some(&1) {
        return Err(unknown_rule(slug, id));
    }
    json_response(
        200,
        &json!({ "deleted": true, "rule": rule_json(&entry, false) }),
    )
}

/// `GET /v1/projects/{p}/alerts/rules`: the project's rules with their state, without
/// webhook secrets.
pub async fn rules(req: &Request, env: &RequestEnv, project: &str) -> Result<Response, ApiError> {
    api::check_project(project)?;
    let store = crate::store(env)?;
    let mut body = rule_list(&entries(&store, project).await?);
    // A webhook URL often holds a credential of its own (a chat service's hook), so a
    // read token sees only where it points.
    if let Some(rules) = body["rules"].as_array_mut() {
        for rule in rules {
            if let Some(url) = rule["webhook"]["url"].as_str() {
                rule["webhook"]["url"] = origin_only(url).into();
            }
        }
    }
    body["project"] = project.into();
    api::json(req, body.to_string(), MAX_AGE_S)
}

/// `GET /v1/projects/{p}/alerts?days=N|from&to&limit=N`: firings and resolutions in the
/// range, newest first (at most `limit`, default 50), with every delivery attempt.
pub async fn history(req: &Request, env: &RequestEnv, project: &str) -> Result<Response, ApiError> {
    api::check_project(project)?;
    let params = Params::of(req)?;
    let range = params.range(api::now_ms())?;
    let limit = params.limit(DEFAULT_LIMIT, MAX_LIMIT)?;
    let store = crate::store(env)?;
    let alerts = store
        .alerts(project, range.from_ms, range.to_ms, limit as u32)
        .await
        .map_err(internal)?;
    let list: Vec<Value> = alerts.iter().map(alert_json).collect();
    let mut body = json!({ "project": project, "alerts": list });
    for (k, v) in api::range_json(range) {
        body[k] = v;
    }
    api::json(req, body.to_string(), MAX_AGE_S)
}

#[cfg(test)]
mod tests {
    #[test]
    fn read_tokens_see_only_where_a_webhook_points() {
        assert_eq!(
            origin_only("https://hooks.slack.com/services/T0/B0/secret"),
            "https://hooks.slack.com"
        );
        assert_eq!(
            origin_only("http://127.0.0.1:8080?token=x"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            origin_only("https://hooks.example"),
            "https://hooks.example"
        );
    }

    use tally_core::alerts::{State, Status};
    use tally_storage::alerts::Attempt;

    use super::*;

    const NOW: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    fn entry(status: Status, last: Option<(Option<f64>, u64, i64)>) -> RuleEntry {
        let body = json!({
            "name": "CTR", "comparator": "<", "threshold": 0.01, "window_minutes": 15,
            "metric": {"type": "ratio", "numerator": "click", "denominator": "open"},
            "filter": {"dimension": "campaign", "value": "spring"},
            "webhook": {"url": "https://hooks.example/t"}, "pause_campaign": true,
        });
        let fresh = Fresh {
            id: [1; ID_BYTES],
            secret: [2; SECRET_BYTES],
        };
        let rule = parse_input(body.to_string().as_bytes())
            .unwrap()
            .create("shop", &fresh, NOW)
            .unwrap();
        RuleEntry {
            rule,
            status,
            last,
            error: None,
        }
    }

    #[test]
    fn a_new_rule_shows_its_state_as_null_times() {
        let shown = rule_json(&entry(Status::default(), None), false);
        assert_eq!(shown["state"], "ok");
        for key in [
            "state_since",
            "last_fired_at",
            "last_value",
            "last_volume",
            "evaluated_at",
        ] {
            assert_eq!(shown[key], Value::Null, "{key}");
        }
        assert_eq!(shown["id"], "ar_0101010101010101");
        assert_eq!(shown["pause_campaign"], "spring");
        assert!(shown["webhook"].get("secret").is_none());
        assert_eq!(shown["webhook"]["secret_prefix"], "whsec_02020202");
        let with = rule_json(&entry(Status::default(), None), true);
        assert_eq!(
            with["webhook"]["secret"],
            format!("whsec_{}", "02".repeat(SECRET_BYTES))
        );
    }

    #[test]
    fn a_firing_rule_shows_when_and_what_it_saw() {
        let status = Status {
            state: State::Firing,
            since_ms: NOW + 60_000,
            last_fired_ms: Some(NOW + 60_000),
        };
        let shown = rule_json(
            &entry(status, Some((Some(0.005), 400, NOW + 120_000))),
            false,
        );
        assert_eq!(shown["state"], "firing");
        assert_eq!(shown["state_since"], "2026-01-01T00:01:00.000Z");
        assert_eq!(shown["last_fired_at"], "2026-01-01T00:01:00.000Z");
        assert_eq!(shown["last_value"], 0.005);
        assert_eq!(shown["last_volume"], 400);
        assert_eq!(shown["evaluated_at"], "2026-01-01T00:02:00.000Z");
        // Nothing to measure in the last evaluation: a null value, but a volume.
        let shown = rule_json(&entry(status, Some((None, 0, NOW))), false);
        assert_eq!(shown["last_value"], Value::Null);
        assert_eq!(shown["last_volume"], 0);
    }

    #[test]
    fn alerts_show_their_attempts_and_no_payload() {
        let record = AlertRecord {
            id: "ar_1.fired.1".into(),
            rule_id: "ar_1".into(),
            rule_name: None,
            project: "shop".into(),
            kind: "fired".into(),
            at: NOW,
            value: Some(0.004),
            volume: 300,
            payload: "{\"secret\":\"body\"}".into(),
            queued_at: Some(NOW),
            delivery: "delivered".into(),
            attempts: 2,
            delivered_at: Some(NOW + 11_000),
            campaign_paused: Some("spring".into()),
            attempt_log: vec![
                Attempt {
                    attempt: 1,
                    at: NOW + 1000,
                    status: Some(500),
                    error: Some("HTTP 500".into()),
                    duration_ms: 12,
                },
                Attempt {
                    attempt: 2,
                    at: NOW + 11_000,
                    status: None,
                    error: None,
                    duration_ms: 40,
                },
            ],
        };
        let shown = alert_json(&record);
        assert_eq!(
            shown,
            json!({
                "id": "ar_1.fired.1", "rule_id": "ar_1", "rule_name": null, "kind": "fired",
                "at": "2026-01-01T00:00:00.000Z", "value": 0.004, "volume": 300,
                "delivery": "delivered", "delivered_at": "2026-01-01T00:00:11.000Z",
                "attempts": [
                    {"attempt": 1, "at": "2026-01-01T00:00:01.000Z", "status": 500,
                     "error": "HTTP 500", "duration_ms": 12},
                    {"attempt": 2, "at": "2026-01-01T00:00:11.000Z", "status": null,
                     "error": null, "duration_ms": 40},
                ],
                "campaign_paused": "spring",
            })
        );
    }
}
