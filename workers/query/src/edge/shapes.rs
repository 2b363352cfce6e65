//! The JSON shapes that both the admin API and the read API answer with, and the reads
//! behind them: an alert rule with what its evaluations remember, and a campaign with
//! its state and recent events.
//!
//! A rule's webhook secret appears only when a caller asks `with_secret` (the admin
//! API, when it made or replaced one). A campaign whose state was never set is `active`.

use crate::edge::Store;
use serde_json::{Value, json};
use tally_core::range::Range;
use tally_core::rollup::Dimension;
use tally_core::time::{DAY_MS, format_ms};
use tally_core::validate::MAX_DIMENSION_CHARS;
use tally_edge::ApiError;
use tally_storage::alerts::{AlertStore, CampaignState, RuleEntry};
use tally_storage::{ValueMatch, read};

use super::error::internal;
use super::params::{decode_segment, whole_hours};

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

/// `{"rules": [...]}`, without secrets.
pub fn rule_list(entries: &[RuleEntry]) -> Value {
    let rules: Vec<Value> = entries.iter().map(|e| rule_json(e, false)).collect();
    json!({ "rules": rules })
}

/// The rules of a project with their state, oldest first.
///
/// # Errors
///
/// 500 when D1 fails.
pub async fn rules(store: &Store, slug: &str) -> Result<Vec<RuleEntry>, ApiError> {
    store.alert_rules(Some(slug)).await.map_err(internal)
}

/// The days of events `events_30d` counts.
pub const SEEN_DAYS: i64 = 30;

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
    pub fn active(campaign: &str, events_30d: u64) -> Self {
        Self {
            campaign: campaign.to_owned(),
            paused: false,
            reason: None,
            alert_id: None,
            updated_at: None,
            events_30d,
        }
    }

    pub fn with_state(state: CampaignState, events_30d: u64) -> Self {
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

/// The last [`SEEN_DAYS`] days before `now_ms`, in whole hours.
pub fn last_days(now_ms: i64) -> Range {
    whole_hours(Range {
        from_ms: now_ms - SEEN_DAYS * DAY_MS,
        to_ms: now_ms,
    })
}

/// A campaign name from a path segment.
///
/// # Errors
///
/// 400 `invalid_campaign`.
pub fn campaign_name(segment: &str) -> Result<String, ApiError> {
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
///
/// # Errors
///
/// 500 when D1 fails.
pub async fn campaign(
    store: &Store,
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

#[cfg(test)]
mod tests {
    use tally_core::alerts::{Fresh, ID_BYTES, SECRET_BYTES, State, Status, parse_input};

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
