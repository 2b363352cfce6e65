//! Campaign states, for the systems that send campaigns: `GET /v1/projects/{p}/campaigns`
//! (every campaign seen in the last 30 days or whose state was ever set) and
//! `/campaigns/{campaign}` (one: "may I send?").
//!
//! An alert rule with `pause_campaign` marks its campaign paused when it fires; only a
//! person resumes it (the admin API). A campaign whose state was never set is `active`,
//! seen or not. Answers carry `Cache-Control: no-store`, so a pause is seen on the next
//! request.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tally_core::rollup::Dimension;
use tally_edge::ApiError;
use tally_storage::alerts::{AlertStore, CampaignState};
use tally_storage::read;
use worker::{Request, Response};

use crate::edge::error::internal;
use crate::edge::respond::json;
use crate::edge::shapes::{self, Campaign, campaign_name, last_days};
use crate::edge::{RequestEnv, now_ms, store};

/// The campaigns seen (name → events) merged with those whose state was set, by name.
pub fn merge(seen: &BTreeMap<String, u64>, states: Vec<CampaignState>) -> Vec<Campaign> {
    let mut all: BTreeMap<String, Campaign> = seen
        .iter()
        .filter(|(_, events)| **events > 0)
        .map(|(name, events)| (name.clone(), Campaign::active(name, *events)))
        .collect();
    for state in states {
        let events = seen.get(&state.campaign).copied().unwrap_or(0);
        all.insert(state.campaign.clone(), Campaign::with_state(state, events));
    }
    all.into_values().collect()
}

/// A JSON answer no cache keeps: a paused campaign must be seen at once.
fn no_store(req: &Request, body: &Value) -> Result<Response, ApiError> {
    let mut response = json(req, body.to_string(), 0)?;
    response
        .headers_mut()
        .set("cache-control", "no-store")
        .map_err(internal)?;
    Ok(response)
}

/// `GET /v1/projects/{p}/campaigns`.
pub async fn list(req: &Request, env: &RequestEnv, project: &str) -> Result<Response, ApiError> {
    let store = store(env)?;
    let range = last_days(now_ms());
    let rows = read::merged(
        &store,
        project,
        range.from_ms,
        range.to_ms,
        Some(Dimension::Campaign),
    )
    .await
    .map_err(internal)?;
    let seen: BTreeMap<String, u64> = rows
        .into_iter()
        .map(|((_, name), row)| (name, row.count))
        .collect();
    let states = store.campaigns(project).await.map_err(internal)?;
    let list: Vec<Value> = merge(&seen, states).iter().map(Campaign::to_json).collect();
    no_store(req, &json!({ "project": project, "campaigns": list }))
}

/// `GET /v1/projects/{p}/campaigns/{campaign}`.
pub async fn get(
    req: &Request,
    env: &RequestEnv,
    project: &str,
    segment: &str,
) -> Result<Response, ApiError> {
    let campaign = campaign_name(segment)?;
    let store = store(env)?;
    let found = shapes::campaign(&store, project, &campaign, now_ms()).await?;
    no_store(req, &found.to_json())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(campaign: &str, status: &str, alert: Option<&str>) -> CampaignState {
        CampaignState {
            campaign: campaign.into(),
            status: status.into(),
            reason: alert.map(|_| "alert rule \"CTR\" fired".into()),
            alert_id: alert.map(str::to_owned),
            updated_at: 1_767_225_600_000,
        }
    }

    #[test]
    fn seen_and_set_campaigns_merge_by_name() {
        let seen = BTreeMap::from([
            ("spring".to_owned(), 1200),
            ("autumn".to_owned(), 30),
            ("empty".to_owned(), 0),
        ]);
        let merged = merge(
            &seen,
            vec![
                state("spring", "paused", Some("ar_1.fired.1")),
                state("winter", "active", None),
            ],
        );
        let shown: Vec<Value> = merged.iter().map(Campaign::to_json).collect();
        assert_eq!(
            shown,
            [
                json!({"campaign": "autumn", "status": "active", "reason": null,
                       "alert_id": null, "updated_at": null, "events_30d": 30}),
                json!({"campaign": "spring", "status": "paused",
                       "reason": "alert rule \"CTR\" fired", "alert_id": "ar_1.fired.1",
                       "updated_at": "2026-01-01T00:00:00.000Z", "events_30d": 1200}),
                json!({"campaign": "winter", "status": "active", "reason": null,
                       "alert_id": null, "updated_at": "2026-01-01T00:00:00.000Z",
                       "events_30d": 0}),
            ]
        );
        assert!(merge(&BTreeMap::new(), Vec::new()).is_empty());
    }
}
