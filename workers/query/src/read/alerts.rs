//! The read API's alerting: `GET /v1/projects/{p}/alerts` (the history of firings and
//! resolutions with every delivery attempt) and `/alerts/rules` (definitions and
//! states). Read tokens see rule definitions and states, never webhook secrets, and of
//! a webhook only where it points.

use serde_json::{Value, json};
use tally_core::time::format_ms;
use tally_edge::ApiError;
use tally_storage::alerts::{AlertRecord, AlertStore};
use worker::{Request, Response};

use super::scope::range_json;
use crate::edge::error::internal;
use crate::edge::params::Params;
use crate::edge::respond::json;
use crate::edge::shapes::{self, rule_list, time};
use crate::edge::{RequestEnv, now_ms, store};

/// Seconds a client may reuse a history or rule listing of the read API: alerts change
/// at most once a minute per rule.
pub const MAX_AGE_S: u32 = 10;

/// Alerts a history answer holds by default, and at most.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;

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

/// A URL cut to its scheme, host and port: `https://hooks.example`.
fn origin_only(url: &str) -> String {
    let host_start = url.find("://").map_or(0, |i| i + 3);
    let end = url[host_start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |end| host_start + end);
    url[..end].to_owned()
}

/// `GET /v1/projects/{p}/alerts/rules`: the project's rules with their state, without
/// webhook secrets.
pub async fn rules(req: &Request, env: &RequestEnv, project: &str) -> Result<Response, ApiError> {
    let store = store(env)?;
    let mut body = rule_list(&shapes::rules(&store, project).await?);
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
    json(req, body.to_string(), MAX_AGE_S)
}

/// `GET /v1/projects/{p}/alerts?days=N|from&to&limit=N`: firings and resolutions in the
/// range, newest first (at most `limit`, default 50), with every delivery attempt.
pub async fn history(req: &Request, env: &RequestEnv, project: &str) -> Result<Response, ApiError> {
    let params = Params::of(req)?;
    let range = params.range(now_ms())?;
    let limit = params.limit(DEFAULT_LIMIT, MAX_LIMIT)?;
    let store = store(env)?;
    let alerts = store
        .alerts(project, range.from_ms, range.to_ms, limit as u32)
        .await
        .map_err(internal)?;
    let list: Vec<Value> = alerts.iter().map(alert_json).collect();
    let mut body = json!({ "project": project, "alerts": list });
    for (k, v) in range_json(range) {
        body[k] = v;
    }
    json(req, body.to_string(), MAX_AGE_S)
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

    use tally_storage::alerts::Attempt;

    use super::*;

    const NOW: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

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
