//! The dashboard's alerts section: recent firings with their resolution and webhook
//! delivery, every rule's current state, and the campaigns that are paused. Pure: it
//! renders what [`super::get`] read, escaping every value.
//!
//! Numbers are written as the rule's metric reads: rates and ratios as percentages,
//! latencies in milliseconds, counts as whole numbers.

use std::collections::BTreeMap;
use std::fmt::Write;

use tally_core::alerts::{Metric, Rule, State};
use tally_storage::alerts::{AlertRecord, CampaignState, RuleEntry};

use crate::edge::html::{Fixed, cut_cell, date_time, escape, int, millis};

/// What the section shows.
#[derive(Debug, Default)]
pub struct Alerts {
    /// The project's rules with their state, oldest first.
    pub rules: Vec<RuleEntry>,
    /// Alerts of the page's range, newest first (at most [`HISTORY`]).
    pub history: Vec<AlertRecord>,
    /// Campaigns whose state was ever set; only paused ones are shown.
    pub campaigns: Vec<CampaignState>,
}

/// Most alerts the section reads.
pub const HISTORY: u32 = 50;

/// One firing and how it ended, or a resolution whose firing lies before the range.
#[derive(Debug, Clone, PartialEq)]
pub struct Firing<'a> {
    pub rule_id: &'a str,
    pub rule_name: Option<&'a str>,
    /// `None` for a resolution of a firing before the range.
    pub fired_at: Option<i64>,
    pub value: Option<f64>,
    pub resolved_at: Option<i64>,
    /// The firing's webhook delivery (or the resolution's, for one without a firing).
    pub delivery: &'a str,
    pub campaign_paused: Option<&'a str>,
}

/// Pairs each firing with the resolution that followed it; newest first, as given.
pub fn firings(history: &[AlertRecord]) -> Vec<Firing<'_>> {
    let mut out: Vec<Firing<'_>> = Vec::new();
    // The firing of each rule still open while walking from oldest to newest.
    let mut open: BTreeMap<&str, usize> = BTreeMap::new();
    for alert in history.iter().rev() {
        let rule = alert.rule_id.as_str();
        if alert.kind == "resolved" {
            match open.remove(rule) {
                Some(i) => out[i].resolved_at = Some(alert.at),
                None => out.push(Firing {
                    rule_id: rule,
                    rule_name: alert.rule_name.as_deref(),
                    fired_at: None,
                    value: None,
                    resolved_at: Some(alert.at),
                    delivery: &alert.delivery,
                    campaign_paused: None,
                }),
            }
        } else {
            open.insert(rule, out.len());
            out.push(Firing {
                rule_id: rule,
                rule_name: alert.rule_name.as_deref(),
                fired_at: Some(alert.at),
                value: alert.value,
                resolved_at: None,
                delivery: &alert.delivery,
                campaign_paused: alert.campaign_paused.as_deref(),
            });
        }
    }
    out.reverse();
    out
}

/// A value of `metric` as people read it; `metric` is `None` for a deleted rule's.
pub fn value_text(metric: Option<&Metric>, value: Option<f64>) -> String {
    let Some(v) = value.filter(|v| v.is_finite()) else {
        return "–".to_owned();
    };
    match metric {
        Some(Metric::ErrorRate | Metric::Ratio { .. }) => format!("{}%", Fixed(v * 100.0, 2)),
        Some(Metric::P95 | Metric::P99) => millis(Some(v)),
        Some(Metric::Count { .. }) => int(v.max(0.0).round() as u64),
        None => Fixed(v, 3).to_string(),
    }
}

/// What a rule watches, in a few words: `click / open < 1.00% over 15 min, campaign
/// spring`.
pub fn condition(rule: &Rule) -> String {
    let measured = match &rule.metric {
        Metric::ErrorRate => "error rate".to_owned(),
        Metric::P95 => "p95 latency".to_owned(),
        Metric::P99 => "p99 latency".to_owned(),
        Metric::Count { name: None } => "events".to_owned(),
        Metric::Count { name: Some(name) } => format!("{name} events"),
        Metric::Ratio {
            numerator,
            denominator,
        } => format!("{numerator} / {denominator}"),
    };
    let mut text = format!(
        "{measured} {} {} over {} min",
        rule.comparator.name(),
        value_text(Some(&rule.metric), Some(rule.threshold)),
        rule.window_minutes
    );
    if let Some(filter) = &rule.filter {
        let _ = write!(text, ", {} {}", filter.dimension.name(), filter.value);
    }
    text
}

fn time_or_dash(ms: Option<i64>) -> String {
    ms.map_or_else(|| "–".to_owned(), date_time)
}

/// The section, as two panels.
pub fn section(out: &mut String, alerts: &Alerts) {
    let metric_of = |rule_id: &str| {
        alerts
            .rules
            .iter()
            .find(|e| e.rule.id == rule_id)
            .map(|e| &e.rule.metric)
    };
    out.push_str(
        r#"<div class="grid"><section class="panel" id="alerts"><h2>Alerts</h2><h3>Recent alerts in this range (UTC)</h3>"#,
    );
    let firings = firings(&alerts.history);
    if firings.is_empty() {
        out.push_str(r#"<p class="empty" id="alert-history">No alert fired in this range.</p>"#);
    } else {
        out.push_str(r#"<div class="scroll"><table id="alert-history"><thead><tr><th>Rule</th><th>Fired</th><th>Value</th><th>Resolved</th><th>Webhook</th></tr></thead><tbody>"#);
        for f in &firings {
            let fired = match f.fired_at {
                Some(at) => date_time(at),
                None => "before the range".to_owned(),
            };
            let resolved = match (f.resolved_at, f.fired_at) {
                (Some(at), _) => date_time(at),
                (None, Some(_)) => "firing".to_owned(),
                (None, None) => "–".to_owned(),
            };
            let mut rule = f.rule_name.unwrap_or(f.rule_id).to_owned();
            if let Some(campaign) = f.campaign_paused {
                let _ = write!(rule, " (paused {campaign})");
            }
            out.push_str("<tr>");
            cut_cell(out, "", "", &rule);
            let _ = write!(
                out,
                "<td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&fired),
                escape(&value_text(metric_of(f.rule_id), f.value)),
                escape(&resolved),
                escape(f.delivery)
            );
        }
        out.push_str("</tbody></table></div>");
    }
    out.push_str(r#"</section><section class="panel" id="alert-rules"><h2>Alert rules</h2>"#);
    if alerts.rules.is_empty() {
        out.push_str(r#"<p class="empty" id="rule-states">No alert rules; add them with <code>cargo xtask alert create</code>.</p>"#);
    } else {
        out.push_str(r#"<div class="scroll"><table id="rule-states"><thead><tr><th>Rule</th><th>Condition</th><th>State</th><th>Last value</th></tr></thead><tbody>"#);
        for entry in &alerts.rules {
            let rule = &entry.rule;
            let state = match (rule.enabled, entry.status.state) {
                (false, _) => "disabled".to_owned(),
                (true, State::Firing) => {
                    format!("firing since {}", date_time(entry.status.since_ms))
                }
                (true, State::Ok) => "ok".to_owned(),
            };
            let last = entry
                .last
                .map(|(value, _, at)| {
                    format!(
                        "{} at {}",
                        value_text(Some(&rule.metric), value),
                        date_time(at)
                    )
                })
                .unwrap_or_else(|| "not evaluated yet".to_owned());
            out.push_str("<tr>");
            cut_cell(out, "", "", &rule.name);
            cut_cell(out, "", "", &condition(rule));
            let _ = write!(
                out,
                r#"<td class="{}">{}</td><td>{}</td></tr>"#,
                if entry.status.state == State::Firing && rule.enabled {
                    "firing"
                } else {
                    "ok"
                },
                escape(&state),
                escape(&last)
            );
        }
        out.push_str("</tbody></table></div>");
    }
    out.push_str("<h3>Paused campaigns</h3>");
    let paused: Vec<&CampaignState> = alerts
        .campaigns
        .iter()
        .filter(|c| c.status == "paused")
        .collect();
    if paused.is_empty() {
        out.push_str(r#"<p class="empty" id="paused-campaigns">No campaign is paused.</p>"#);
    } else {
        out.push_str(r#"<div class="scroll"><table id="paused-campaigns"><thead><tr><th>Campaign</th><th>Since</th><th>Reason</th></tr></thead><tbody>"#);
        for c in paused {
            out.push_str("<tr>");
            cut_cell(out, "", "", &c.campaign);
            let _ = write!(
                out,
                "<td>{}</td>",
                escape(&time_or_dash(Some(c.updated_at)))
            );
            cut_cell(out, "", "", c.reason.as_deref().unwrap_or("–"));
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table></div>");
        out.push_str(r#"<p class="note">Resume one with <code>cargo xtask campaign resume &lt;project&gt; &lt;campaign&gt;</code>.</p>"#);
    }
    out.push_str("</section></div>");
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tally_core::alerts::{Fresh, ID_BYTES, SECRET_BYTES, Status, parse_input};

    use super::*;

    const T: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    const M: i64 = 60_000;
    const EVIL: &str = r#"<script>alert("x")</script>"#;

    fn alert(rule: &str, kind: &str, at: i64, value: Option<f64>) -> AlertRecord {
        AlertRecord {
            id: format!("{rule}.{kind}.{at}"),
            rule_id: rule.into(),
            rule_name: Some(format!("{rule} name")),
            project: "shop".into(),
            kind: kind.into(),
            at,
            value,
            volume: 100,
            payload: String::new(),
            queued_at: None,
            delivery: if kind == "fired" { "delivered" } else { "none" }.into(),
            attempts: 0,
            delivered_at: None,
            campaign_paused: None,
            attempt_log: Vec::new(),
        }
    }

    fn rule(body: serde_json::Value, seed: u8) -> Rule {
        let fresh = Fresh {
            id: [seed; ID_BYTES],
            secret: [seed; SECRET_BYTES],
        };
        parse_input(body.to_string().as_bytes())
            .unwrap()
            .create("shop", &fresh, T)
            .unwrap()
    }

    #[test]
    fn firings_pair_with_the_resolution_that_follows() {
        // Newest first, as the store answers.
        let history = [
            alert("b", "fired", T + 9 * M, Some(3.0)),
            alert("a", "resolved", T + 8 * M, Some(0.5)),
            alert("a", "fired", T + 5 * M, Some(0.9)),
            alert("a", "resolved", T + 4 * M, None),
            alert("a", "fired", T + 2 * M, Some(0.8)),
            alert("c", "resolved", T + M, None),
        ];
        type Seen<'a> = (&'a str, Option<i64>, Option<i64>, Option<f64>);
        let got: Vec<Seen<'_>> = firings(&history)
            .iter()
            .map(|f| (f.rule_id, f.fired_at, f.resolved_at, f.value))
            .collect();
        assert_eq!(
            got,
            [
                ("b", Some(T + 9 * M), None, Some(3.0)),
                ("a", Some(T + 5 * M), Some(T + 8 * M), Some(0.9)),
                ("a", Some(T + 2 * M), Some(T + 4 * M), Some(0.8)),
                // Its firing lies before the range.
                ("c", None, Some(T + M), None),
            ]
        );
        assert!(firings(&[]).is_empty());
    }

    #[test]
    fn values_read_as_the_metric_does() {
        let ratio = Metric::Ratio {
            numerator: "click".into(),
            denominator: "open".into(),
        };
        assert_eq!(value_text(Some(&ratio), Some(2.0 / 300.0)), "0.67%");
        assert_eq!(value_text(Some(&Metric::ErrorRate), Some(0.05)), "5.00%");
        assert_eq!(value_text(Some(&Metric::P95), Some(812.4)), "812 ms");
        assert_eq!(
            value_text(Some(&Metric::Count { name: None }), Some(1234.0)),
            "1,234"
        );
        assert_eq!(value_text(None, Some(0.25)), "0.250");
        assert_eq!(value_text(Some(&Metric::P99), None), "–");
        assert_eq!(value_text(None, Some(f64::NAN)), "–");
    }

    #[test]
    fn conditions_say_what_a_rule_watches() {
        let ctr = rule(
            json!({"name": "CTR", "comparator": "<", "threshold": 0.01, "window_minutes": 15,
                   "metric": {"type": "ratio", "numerator": "click", "denominator": "open"},
                   "filter": {"dimension": "campaign", "value": "spring"}}),
            1,
        );
        assert_eq!(
            condition(&ctr),
            "click / open < 1.00% over 15 min, campaign spring"
        );
        let slow = rule(
            json!({"name": "slow", "comparator": ">=", "threshold": 500, "window_minutes": 5,
                   "metric": {"type": "p95"}}),
            2,
        );
        assert_eq!(condition(&slow), "p95 latency >= 500 ms over 5 min");
    }

    #[test]
    fn the_section_shows_history_states_and_paused_campaigns_escaped() {
        let mut evil = rule(
            json!({"name": EVIL, "comparator": "<", "threshold": 1, "window_minutes": 5,
                   "metric": {"type": "count", "name": EVIL},
                   "filter": {"dimension": "campaign", "value": EVIL}}),
            3,
        );
        evil.enabled = true;
        let firing = Status {
            state: State::Firing,
            since_ms: T + 2 * M,
            last_fired_ms: Some(T + 2 * M),
        };
        let mut paused_alert = alert(&evil.id, "fired", T + 2 * M, Some(0.0));
        paused_alert.rule_name = Some(EVIL.into());
        paused_alert.campaign_paused = Some(EVIL.into());
        let alerts = Alerts {
            history: vec![paused_alert],
            rules: vec![RuleEntry {
                rule: evil,
                status: firing,
                last: Some((Some(0.0), 0, T + 3 * M)),
                error: None,
            }],
            campaigns: vec![
                CampaignState {
                    campaign: EVIL.into(),
                    status: "paused".into(),
                    reason: Some(EVIL.into()),
                    alert_id: None,
                    updated_at: T + 2 * M,
                },
                CampaignState {
                    campaign: "resumed".into(),
                    status: "active".into(),
                    reason: None,
                    alert_id: None,
                    updated_at: T,
                },
            ],
        };
        let mut html = String::new();
        section(&mut html, &alerts);
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("firing since 2026-01-01 00:02"), "{html}");
        assert!(
            html.contains("<td>2026-01-01 00:02</td><td>0</td><td>firing</td><td>delivered</td>"),
            "{html}"
        );
        assert!(html.contains(r#"id="paused-campaigns""#));
        assert!(
            !html.contains("resumed"),
            "only paused campaigns are listed"
        );
        assert!(html.contains("0 at 2026-01-01 00:03"), "{html}");

        let mut quiet = String::new();
        section(&mut quiet, &Alerts::default());
        assert!(quiet.contains("No alert fired in this range."));
        assert!(quiet.contains("No alert rules"));
        assert!(quiet.contains("No campaign is paused."));
    }
}
