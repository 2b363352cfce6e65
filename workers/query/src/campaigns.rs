//! Campaign states, for the systems that send campaigns: `GET /v1/projects/{p}/campaigns`
//! (every campaign seen in the last 30 days or whose state was ever set) and
//! `/campaigns/{campaign}` (one: "may I send?"), and the admin API's
//! `PUT /v1/admin/projects/{p}/campaigns/{campaign}` to pause or resume one by hand.
//!
//! An alert rule with `pause_campaign` marks its campaign paused when it fires; only a
//! person resumes it. A campaign whose state was never set is `active`, seen or not.
//! Answers carry `Cache-Control: no-store`, so a pause is seen on the next request.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};
use tally_core::ApiError;
use tally_core::range::Range;
use tally_core::rollup::Dimension;
use tally_core::time::DAY_MS;
use tally_core::validate::MAX_DIMENSION_CHARS;
use tally_storage::alerts::{AlertStore, AlertWrite, CampaignState};
use tally_storage::d1::D1Store;
use tally_storage::{ValueMatch, Write, Writer, read};
use worker::{Request, Response};

use crate::RequestEnv;
use crate::admin::{existing, json_response};
use crate::alerts::time;
use crate::aliases::decode_segment;
use crate::api;
use crate::error::internal;

/// The days of events `events_30d` counts.
pub const SEEN_DAYS: i64 = 30;

/// Longest reason kept with a state, in characters.
const MAX_REASON_CHARS: usize = 500;

/// A campaign as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Campaign {
    pub campaign: String,
    pub paused: bool,
    pub reason: Option<String>,
    /// The alert that paused it, when an alert did.
    pub alert_id: Option<String>,
    /// When its state was last set; `None` if never.
    pub updated_at: Option<i64>,
    pub events_30d: u64,
}

impl Campaign {
    /// A campaign whose state was never set.
    fn active(campaign: &str, events_30d: u64) -> Self {
        Self {
            campaign: campaign.to_owned(),
            paused: false,
            reason: None,
            alert_id: None,
            updated_at: None,
            events_30d,
        }
    }

    fn with_state(state: CampaignState, events_30d: u64) -> Self {
        Self {
            paused: state.status == "paused",
            campaign: state.campaign,
            reason: state.reason,
            alert_id: state.alert_id,
            updated_at: Some(state.updated_at),
            events_30d,
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "campaign": self.campaign,
            "status": if self.paused { "paused" } else { "active" },
            "reason": self.reason,
            "alert_id": self.alert_id,
            "updated_at": time(self.updated_at),
            "events_30d": self.events_30d,
        })
    }
}

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

/// The last [`SEEN_DAYS`] days before `now_ms`, in whole hours.
fn last_days(now_ms: i64) -> Range {
    api::whole_hours(Range {
        from_ms: now_ms - SEEN_DAYS * DAY_MS,
        to_ms: now_ms,
    })
}

/// A campaign name from a path segment.
fn campaign_name(segment: &str) -> Result<String, ApiError> {
    decode_segment(segment)
        .filter(|c| !c.is_empty() && c.chars().count() <= MAX_DIMENSION_CHARS)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_campaign",
                format!(
                    "the campaign in the path must be percent-encoded UTF-8 text of 1 to \
                     {MAX_DIMENSION_CHARS} characters"
                ),
            )
        })
}

/// One campaign of `project` at `now_ms`: its state and its events of the last 30 days.
async fn one(
    store: &D1Store,
    project: &str,
    campaign: &str,
    now_ms: i64,
) -> Result<Campaign, ApiError> {
    let range = last_days(now_ms);
    let rows = read::merged_matching(
        store,
        project,
        range.from_ms,
        range.to_ms,
        Dimension::Campaign,
        ValueMatch::Exact(campaign),
    )
    .await
    .map_err(internal)?;
    let events = rows.values().map(|r| r.count).sum();
    let state = store
        .campaigns(project)
        .await
        .map_err(internal)?
        .into_iter()
        .find(|s| s.campaign == campaign);
    Ok(match state {
        Some(state) => Campaign::with_state(state, events),
        None => Campaign::active(campaign, events),
    })
}

/// A JSON answer no cache keeps: a paused campaign must be seen at once.
fn no_store(req: &Request, body: &Value) -> Result<Response, ApiError> {
    let mut response = api::json(req, body.to_string(), 0)?;
    response
        .headers_mut()
        .set("cache-control", "no-store")
        .map_err(internal)?;
    Ok(response)
}

/// `GET /v1/projects/{p}/campaigns`.
pub async fn list(req: &Request, env: &RequestEnv, project: &str) -> Result<Response, ApiError> {
    api::check_project(project)?;
    let store = crate::store(env)?;
    let range = last_days(api::now_ms());
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
    api::check_project(project)?;
    let campaign = campaign_name(segment)?;
    let store = crate::store(env)?;
    let found = one(&store, project, &campaign, api::now_ms()).await?;
    no_store(req, &found.to_json())
}

/// What a `PUT` of a campaign's state asks for.
#[derive(Debug, PartialEq, Eq)]
pub struct SetState {
    pub paused: bool,
    pub reason: Option<String>,
}

/// Reads `{"status": "active" | "paused", "reason"?: "..."}`.
///
/// # Errors
///
/// 400 `invalid_campaign_state` saying what is wrong.
pub fn parse_state(body: &[u8]) -> Result<SetState, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        status: String,
        #[serde(default)]
        reason: Option<String>,
    }
    let bad = |m: String| ApiError::bad_request("invalid_campaign_state", m);
    let body: Body = serde_json::from_slice(body).map_err(|e| {
        bad(format!(
            "send {{\"status\": \"active\" | \"paused\", \"reason\": \"...\"}}: {e}"
        ))
    })?;
    let paused = match body.status.as_str() {
        "paused" => true,
        "active" => false,
        other => {
            return Err(bad(format!(
                "status must be \"active\" or \"paused\", not {other:?}"
            )));
        }
    };
    let reason = body
        .reason
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty());
    if reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > MAX_REASON_CHARS)
    {
        return Err(bad(format!(
            "reason must be at most {MAX_REASON_CHARS} characters"
        )));
    }
    Ok(SetState { paused, reason })
}

/// `PUT /v1/admin/projects/{p}/campaigns/{campaign}`: pauses or resumes a campaign by
/// hand, and answers it as it now is. Setting the state it already has by hand changes
/// nothing.
pub async fn set(
    store: &D1Store,
    slug: &str,
    segment: &str,
    body: &[u8],
    now_ms: i64,
) -> Result<Response, ApiError> {
    existing(store, slug).await?;
    let campaign = campaign_name(segment)?;
    let state = parse_state(body)?;
    store
        .commit(&[Write::Alert(AlertWrite::SetCampaign {
            project: slug,
            campaign: &campaign,
            paused: state.paused,
            reason: state.reason.as_deref(),
            alert_id: None,
            now_ms,
        })])
        .await
        .map_err(internal)?;
    let now = one(store, slug, &campaign, now_ms).await?;
    let mut response = json_response(200, &now.to_json())?;
    response
        .headers_mut()
        .set("cache-control", "no-store")
        .map_err(internal)?;
    Ok(response)
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

    #[test]
    fn state_bodies() {
        let check = |body: &str, expected: Result<(bool, Option<&str>), &str>| {
            let got = parse_state(body.as_bytes());
            match expected {
                Ok((paused, reason)) => assert_eq!(
                    got,
                    Ok(SetState {
                        paused,
                        reason: reason.map(str::to_owned)
                    }),
                    "{body}"
                ),
                Err(fragment) => {
                    let e = got.expect_err(body);
                    assert_eq!((e.status, e.code), (400, "invalid_campaign_state"));
                    assert!(e.message.contains(fragment), "{body}: {}", e.message);
                }
            }
        };
        check(r#"{"status": "paused"}"#, Ok((true, None)));
        check(
            r#"{"status": "paused", "reason": " budget spent "}"#,
            Ok((true, Some("budget spent"))),
        );
        check(r#"{"status": "active", "reason": null}"#, Ok((false, None)));
        check(r#"{"status": "active", "reason": ""}"#, Ok((false, None)));
        check(r#"{"status": "stopped"}"#, Err("\"active\" or \"paused\""));
        check(r#"{}"#, Err("missing field `status`"));
        check(r#"{"status": "paused", "why": "x"}"#, Err("unknown field"));
        check("nope", Err("send {\"status\""));
        let long = format!(r#"{{"status": "paused", "reason": "{}"}}"#, "x".repeat(501));
        check(&long, Err("at most 500"));
    }

    #[test]
    fn campaign_names_come_percent_encoded() {
        assert_eq!(campaign_name("spring").unwrap(), "spring");
        assert_eq!(
            campaign_name("black%20friday%2F24").unwrap(),
            "black friday/24"
        );
        for bad in ["", "%zz", "%ff", &"x".repeat(257)] {
            let e = campaign_name(bad).unwrap_err();
            assert_eq!(e.code, "invalid_campaign", "{bad}");
        }
    }

    #[test]
    fn the_seen_window_is_thirty_days_of_whole_hours() {
        let now = 1_767_225_600_000 + 90 * 60_000; // 01:30
        let range = last_days(now);
        assert_eq!(range.to_ms, 1_767_225_600_000 + 2 * 3_600_000);
        assert_eq!(range.from_ms, range.to_ms - 30 * DAY_MS - 3_600_000);
    }
}
