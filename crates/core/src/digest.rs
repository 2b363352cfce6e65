//! Digests: a project's daily or weekly summary sent to a webhook — the schedule and its
//! input rules, which period is due at a given time, the top movers against the
//! previous period of the same length, and the signed body with its Slack-compatible
//! `text`.
//!
//! Everything here is pure: the aggregator reads the rollups and alerts, passes `now`,
//! and stores the body this module writes, so a redelivery sends the same bytes.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::Error;
use crate::alerts::check_webhook_url;
use crate::rollup::Rollup;
use crate::time::{DAY_MS, HOUR_MS, Interval, WEEK_MS, format_ms};

/// How many movers of each kind a digest names.
pub const MOVERS_PER_KIND: usize = 5;
/// How many alert firings and resolutions a digest lists (it counts them all).
pub const MAX_ALERTS_LISTED: u32 = 50;

/// How often a digest is sent, and so the length of the period it sums up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cadence {
    /// The previous UTC day.
    Daily,
    /// The previous ISO week, Monday to Sunday, UTC.
    Weekly,
}

impl Cadence {
    /// `daily` or `weekly`, as the API and the database write it.
    pub fn name(self) -> &'static str {
        match self {
            Cadence::Daily => "daily",
            Cadence::Weekly => "weekly",
        }
    }

    /// The cadence named `text`, if any.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "daily" => Some(Cadence::Daily),
            "weekly" => Some(Cadence::Weekly),
            _ => None,
        }
    }

    fn length_ms(self) -> i64 {
        match self {
            Cadence::Daily => DAY_MS,
            Cadence::Weekly => WEEK_MS,
        }
    }

    /// What the text calls the period before this one.
    fn previous_name(self) -> &'static str {
        match self {
            Cadence::Daily => "previous day",
            Cadence::Weekly => "previous week",
        }
    }
}

/// When a digest is sent: the hour of the day (UTC) and, for a weekly one, the day of
/// the week (1 Monday … 7 Sunday).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub cadence: Cadence,
    pub hour_utc: u8,
    /// 1 to 7 for a weekly digest; `None` for a daily one.
    pub weekday: Option<u8>,
}

/// One period a digest sums up, `[start_ms, end_ms)`, and when its digest is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    pub start_ms: i64,
    pub end_ms: i64,
    pub send_at_ms: i64,
}

impl Due {
    /// The period of the same length just before this one, which movers compare with.
    pub fn previous(&self) -> (i64, i64) {
        let length = self.end_ms - self.start_ms;
        (self.start_ms - length, self.start_ms)
    }
}

impl Schedule {
    /// The latest period whose digest is due at `now_ms`: the last whole day (or ISO
    /// week) whose sending time has come. Only the latest is ever due, so a digest
    /// missed for longer than a period is skipped rather than sent late and twice over.
    pub fn due(&self, now_ms: i64) -> Due {
        let length = self.cadence.length_ms();
        let (current_start, offset) = match self.cadence {
            Cadence::Daily => (Interval::Day.floor(now_ms), 0),
            Cadence::Weekly => (
                Interval::Week.floor(now_ms),
                i64::from(self.weekday.unwrap_or(1).clamp(1, 7) - 1) * DAY_MS,
            ),
        };
        let mut end_ms = current_start;
        let mut send_at_ms = end_ms + offset + i64::from(self.hour_utc) * HOUR_MS;
        if send_at_ms > now_ms {
            end_ms -= length;
            send_at_ms -= length;
        }
        Due {
            start_ms: end_ms - length,
            end_ms,
            send_at_ms,
        }
    }
}

/// A project's digest as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    pub project: String,
    pub schedule: Schedule,
    pub webhook_url: String,
    /// The HMAC key, `whsec_` and 48 hex digits, as alert rules have.
    pub secret: String,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Digest {
    /// The digest as the admin API shows it; the secret itself only when `with_secret`.
    pub fn to_json(&self, with_secret: bool) -> Value {
        let mut value = json!({
            "project": self.project,
            "period": self.schedule.cadence.name(),
            "hour_utc": self.schedule.hour_utc,
            "weekday": self.schedule.weekday,
            "webhook_url": self.webhook_url,
            "secret_prefix": &self.secret[..self.secret.len().min(14)],
            "enabled": self.enabled,
            "created_at": format_ms(self.created_at),
            "updated_at": format_ms(self.updated_at),
        });
        if with_secret {
            value["secret"] = json!(self.secret);
        }
        value
    }

    /// The id of this digest's run for the period starting at `start_ms`: unique per
    /// project, cadence and period, so a period is recorded (and sent) once.
    pub fn run_id(&self, start_ms: i64) -> String {
        format!(
            "dg.{}.{}.{start_ms}",
            self.project,
            self.schedule.cadence.name()
        )
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> Error {
    Error::invalid("invalid_digest", message).at(field)
}

/// A `PUT` body, checked: the whole digest but its secret and times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestInput {
    pub schedule: Schedule,
    pub webhook_url: String,
    pub enabled: bool,
    /// Whether to replace the signing secret of an existing digest.
    pub rotate_secret: bool,
}

/// The fields a digest body may have.
const FIELDS: [&str; 6] = [
    "period",
    "hour_utc",
    "weekday",
    "webhook_url",
    "enabled",
    "rotate_secret",
];

/// Reads a digest body: `period` (`daily` or `weekly`), `hour_utc` (0–23), `weekday`
/// (1 Monday … 7 Sunday, weekly only, default 1), `webhook_url` (the alert webhooks'
/// rules: http(s), https unless loopback), `enabled` (default true), `rotate_secret`.
///
/// # Errors
///
/// An [`Error::Invalid`] of kind `invalid_digest` naming the field at fault.
pub fn parse_input(body: &[u8]) -> Result<DigestInput, Error> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        Error::invalid(
            "invalid_digest",
            format!("the body must be a JSON digest (see /openapi.json, DigestInput): {e}"),
        )
    })?;
    let Value::Object(map) = value else {
        return Err(Error::invalid(
            "invalid_digest",
            "the body must be a JSON object (see /openapi.json, DigestInput)",
        ));
    };
    if let Some(unknown) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(Error::invalid(
            "invalid_digest",
            format!(
                "unknown field {unknown:?}; a digest has {}",
                FIELDS.join(", ")
            ),
        ));
    }
    let cadence = match map.get("period") {
        None | Some(Value::Null) => {
            return Err(invalid("period", "period is required: daily or weekly"));
        }
        Some(v) => v.as_str().and_then(Cadence::parse).ok_or_else(|| {
            invalid(
                "period",
                format!("period must be \"daily\" or \"weekly\", not {v}"),
            )
        })?,
    };
    let hour_utc = whole(&map, "hour_utc", 0, 23)?.ok_or_else(|| {
        invalid(
            "hour_utc",
            "hour_utc is required: the hour (UTC) from 0 to 23",
        )
    })?;
    let weekday = whole(&map, "weekday", 1, 7)?;
    let weekday = match cadence {
        Cadence::Daily if weekday.is_some() => {
            return Err(invalid(
                "weekday",
                "weekday is for weekly digests only; a daily digest is sent every day",
            ));
        }
        Cadence::Daily => None,
        Cadence::Weekly => Some(weekday.unwrap_or(1)),
    };
    let webhook_url = match map.get("webhook_url") {
        Some(Value::String(url)) => url.clone(),
        None | Some(Value::Null) => {
            return Err(invalid("webhook_url", "webhook_url is required"));
        }
        Some(other) => {
            return Err(invalid(
                "webhook_url",
                format!("webhook_url must be a string, not {other}"),
            ));
        }
    };
    check_webhook_url(&webhook_url, "invalid_digest").map_err(|e| e.at("webhook_url"))?;
    Ok(DigestInput {
        schedule: Schedule {
            cadence,
            hour_utc,
            weekday,
        },
        webhook_url,
        enabled: flag(&map, "enabled", true)?,
        rotate_secret: flag(&map, "rotate_secret", false)?,
    })
}

/// An optional whole number from `min` to `max`.
fn whole(
    map: &Map<String, Value>,
    field: &'static str,
    min: u8,
    max: u8,
) -> Result<Option<u8>, Error> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|n| (u64::from(min)..=u64::from(max)).contains(n))
            .map(|n| Some(n as u8))
            .ok_or_else(|| {
                invalid(
                    field,
                    format!("{field} must be a whole number from {min} to {max}, not {v}"),
                )
            }),
    }
}

fn flag(map: &Map<String, Value>, field: &'static str, default: bool) -> Result<bool, Error> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(invalid(
            field,
            format!("{field} must be true or false, not {v}"),
        )),
    }
}

impl DigestInput {
    /// The digest of `project` this input makes, replacing `existing` if there is one:
    /// the existing secret is kept unless the input rotates it, otherwise `fresh_secret`
    /// is taken. Says whether the secret is new, which is when an answer shows it.
    pub fn apply(
        self,
        project: &str,
        existing: Option<&Digest>,
        fresh_secret: String,
        now_ms: i64,
    ) -> (Digest, bool) {
        let kept = existing
            .filter(|_| !self.rotate_secret)
            .map(|d| d.secret.clone());
        let new_secret = kept.is_none();
        let digest = Digest {
            project: project.to_owned(),
            schedule: self.schedule,
            webhook_url: self.webhook_url,
            secret: kept.unwrap_or(fresh_secret),
            enabled: self.enabled,
            created_at: existing.map_or(now_ms, |d| d.created_at),
            updated_at: now_ms,
        };
        (digest, new_secret)
    }
}

/// The headline numbers of a period, as the query API's overview gives them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Headline {
    pub events: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub p95_ms: Option<f64>,
    pub unique_users: u64,
    pub unique_instances: u64,
}

impl Headline {
    /// The headline of a period's merged `Dimension::All` rollup.
    pub fn of(all: &Rollup) -> Self {
        Headline {
            events: all.count,
            errors: all.errors,
            error_rate: if all.count == 0 {
                0.0
            } else {
                all.errors as f64 / all.count as f64
            },
            p95_ms: all.durations.quantile(0.95),
            unique_users: all.users.count(),
            unique_instances: all.instances.count(),
        }
    }

    fn to_json(self) -> Value {
        json!({
            "events": self.events,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "duration_ms": {"p95": self.p95_ms},
            "unique_users": self.unique_users,
            "unique_instances": self.unique_instances,
        })
    }
}

/// What movers are counted by: a dimension's values, each by its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoverKind {
    Source,
    Route,
    ErrorClass,
}

impl MoverKind {
    /// Every kind, in the order a digest lists them.
    pub const ALL: [MoverKind; 3] = [MoverKind::Source, MoverKind::Route, MoverKind::ErrorClass];

    /// The key of the body's `movers` object.
    pub fn key(self) -> &'static str {
        match self {
            MoverKind::Source => "sources",
            MoverKind::Route => "routes",
            MoverKind::ErrorClass => "error_classes",
        }
    }

    fn label(self) -> &'static str {
        match self {
            MoverKind::Source => "source",
            MoverKind::Route => "route",
            MoverKind::ErrorClass => "error",
        }
    }
}

/// A value that rose: its count in the period and the one before.
#[derive(Debug, Clone, PartialEq)]
pub struct Mover {
    pub value: String,
    pub current: u64,
    pub previous: u64,
}

impl Mover {
    /// How much it rose.
    pub fn change(&self) -> u64 {
        self.current - self.previous
    }

    /// The rise in percent of the previous count; `None` when it was 0 (a new value).
    pub fn percent(&self) -> Option<f64> {
        (self.previous > 0).then(|| self.change() as f64 * 100.0 / self.previous as f64)
    }

    fn to_json(&self) -> Value {
        json!({
            "value": self.value,
            "current": self.current,
            "previous": self.previous,
            "change": self.change(),
            "percent": self.percent(),
        })
    }
}

/// The at most `limit` values that rose most from `previous` to `current`: by absolute
/// rise, then by percent (a new value counts as the largest), then by value. Values
/// that fell or held are not movers.
pub fn movers(
    current: &BTreeMap<String, u64>,
    previous: &BTreeMap<String, u64>,
    limit: usize,
) -> Vec<Mover> {
    let mut rose: Vec<Mover> = current
        .iter()
        .map(|(value, &now)| Mover {
            value: value.clone(),
            current: now,
            previous: previous.get(value).copied().unwrap_or(0),
        })
        .filter(|m| m.current > m.previous)
        .collect();
    rose.sort_by(|a, b| {
        b.change()
            .cmp(&a.change())
            .then_with(|| {
                let pct = |m: &Mover| m.percent().unwrap_or(f64::INFINITY);
                pct(b).total_cmp(&pct(a))
            })
            .then_with(|| a.value.cmp(&b.value))
    });
    rose.truncate(limit);
    rose
}

/// An alert firing or resolution of the period, for the digest's list.
#[derive(Debug, Clone, PartialEq)]
pub struct Firing {
    pub alert_id: String,
    pub rule_id: String,
    pub rule_name: Option<String>,
    /// `fired` or `resolved`.
    pub kind: String,
    pub at_ms: i64,
    pub value: Option<f64>,
}

/// Everything a digest's body says.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub headline: Headline,
    pub previous: Headline,
    /// The movers of each [`MoverKind`], in [`MoverKind::ALL`]'s order.
    pub movers: Vec<(MoverKind, Vec<Mover>)>,
    /// The period's firings and resolutions, newest first, at most
    /// [`MAX_ALERTS_LISTED`]; `fired` and `resolved` count them all.
    pub alerts: Vec<Firing>,
    pub fired: u64,
    pub resolved: u64,
}

/// The webhook body of `digest`'s run for `due`: the structured numbers and a `text`
/// for a Slack incoming webhook, which shows it as it is.
pub fn payload(digest: &Digest, due: &Due, summary: &Summary) -> String {
    let mut movers = Map::new();
    for (kind, list) in &summary.movers {
        movers.insert(
            kind.key().to_owned(),
            Value::Array(list.iter().map(Mover::to_json).collect()),
        );
    }
    let (previous_from, _) = due.previous();
    json!({
        "type": "digest",
        "digest_id": digest.run_id(due.start_ms),
        "project": digest.project,
        "period": digest.schedule.cadence.name(),
        "from": format_ms(due.start_ms),
        "to": format_ms(due.end_ms),
        "headline": summary.headline.to_json(),
        "previous": {
            "from": format_ms(previous_from),
            "to": format_ms(due.start_ms),
            "headline": summary.previous.to_json(),
        },
        "movers": movers,
        "alerts": {
            "fired": summary.fired,
            "resolved": summary.resolved,
            "items": summary.alerts.iter().map(|a| json!({
                "alert_id": a.alert_id,
                "rule_id": a.rule_id,
                "rule_name": a.rule_name,
                "kind": a.kind,
                "at": format_ms(a.at_ms),
                "value": a.value,
            })).collect::<Vec<_>>(),
        },
        "text": text(digest, due, summary),
    })
    .to_string()
}

/// A signed change: `+12` or `-3`.
fn signed(now: u64, before: u64) -> String {
    if now >= before {
        format!("+{}", now - before)
    } else {
        format!("-{}", before - now)
    }
}

/// A percent change, or `new` when there was nothing before.
fn percent(now: u64, before: u64) -> String {
    if before == 0 {
        return if now == 0 {
            "±0%".into()
        } else {
            "new".into()
        };
    }
    let pct = (now as f64 - before as f64) * 100.0 / before as f64;
    format!("{pct:+.1}%")
}

/// The plain-text summary: one fact a line, numbers written in full (no thousands
/// separators, so a reader's search for a number finds it), times in UTC.
pub fn text(digest: &Digest, due: &Due, summary: &Summary) -> String {
    let h = &summary.headline;
    let p = &summary.previous;
    let versus = digest.schedule.cadence.previous_name();
    let period = match digest.schedule.cadence {
        Cadence::Daily => format!("{} (UTC)", &format_ms(due.start_ms)[..10]),
        Cadence::Weekly => format!(
            "week of {} to {} (UTC)",
            &format_ms(due.start_ms)[..10],
            &format_ms(due.end_ms - DAY_MS)[..10]
        ),
    };
    let mut lines = vec![
        format!(
            "Tally {} digest for {}: {period}",
            digest.schedule.cadence.name(),
            digest.project
        ),
        format!(
            "Events: {} ({}, {} vs {versus})",
            h.events,
            signed(h.events, p.events),
            percent(h.events, p.events)
        ),
        format!(
            "Errors: {} ({}, {} vs {versus}), error rate {:.2}%",
            h.errors,
            signed(h.errors, p.errors),
            percent(h.errors, p.errors),
            h.error_rate * 100.0
        ),
        match h.p95_ms {
            Some(ms) => format!("p95 duration: {ms:.1} ms"),
            None => "p95 duration: none recorded".into(),
        },
        format!(
            "Unique users: {}, unique instances: {}",
            h.unique_users, h.unique_instances
        ),
    ];
    let any_movers = summary.movers.iter().any(|(_, list)| !list.is_empty());
    if any_movers {
        lines.push("Top movers:".into());
        for (kind, list) in &summary.movers {
            for m in list {
                lines.push(format!(
                    "  {} {}: {} ({}, {})",
                    kind.label(),
                    m.value,
                    m.current,
                    signed(m.current, m.previous),
                    percent(m.current, m.previous)
                ));
            }
        }
    } else {
        lines.push(format!("Top movers: nothing rose against the {versus}"));
    }
    lines.push(format!(
        "Alerts: {} fired, {} resolved",
        summary.fired, summary.resolved
    ));
    for a in &summary.alerts {
        lines.push(format!(
            "  {} {} at {}",
            a.rule_name.as_deref().unwrap_or(&a.rule_id),
            a.kind,
            format_ms(a.at_ms)
        ));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_date;

    fn ms(text: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_millis()
    }

    fn daily(hour_utc: u8) -> Schedule {
        Schedule {
            cadence: Cadence::Daily,
            hour_utc,
            weekday: None,
        }
    }

    fn weekly(weekday: u8, hour_utc: u8) -> Schedule {
        Schedule {
            cadence: Cadence::Weekly,
            hour_utc,
            weekday: Some(weekday),
        }
    }

    fn due(start: &str, end: &str, send_at: &str) -> Due {
        Due {
            start_ms: ms(start),
            end_ms: ms(end),
            send_at_ms: ms(send_at),
        }
    }

    #[test]
    fn a_daily_digest_is_due_for_yesterday_from_its_hour_on() {
        let s = daily(9);
        let yesterday = due(
            "2026-03-09T00:00:00Z",
            "2026-03-10T00:00:00Z",
            "2026-03-10T09:00:00Z",
        );
        let day_before = due(
            "2026-03-08T00:00:00Z",
            "2026-03-09T00:00:00Z",
            "2026-03-09T09:00:00Z",
        );
        // Before 09:00 the last digest due is the day before yesterday's.
        assert_eq!(s.due(ms("2026-03-10T08:59:59.999Z")), day_before);
        assert_eq!(s.due(ms("2026-03-10T09:00:00Z")), yesterday);
        assert_eq!(s.due(ms("2026-03-10T23:59:59Z")), yesterday);
        // Midnight starts the next day, whose digest waits for 09:00 again.
        assert_eq!(s.due(ms("2026-03-11T00:00:00Z")), yesterday);
        // Hour 0 is due at midnight itself, for the day that just ended.
        assert_eq!(
            daily(0).due(ms("2026-03-11T00:00:00Z")),
            due(
                "2026-03-10T00:00:00Z",
                "2026-03-11T00:00:00Z",
                "2026-03-11T00:00:00Z"
            )
        );
        // Across a year's end.
        assert_eq!(
            daily(23).due(ms("2027-01-01T22:00:00Z")),
            due(
                "2026-12-30T00:00:00Z",
                "2026-12-31T00:00:00Z",
                "2026-12-31T23:00:00Z"
            )
        );
    }

    #[test]
    fn a_weekly_digest_is_due_for_last_iso_week_from_its_weekday_and_hour() {
        // 2026-03-09 is a Monday. Wednesday (3) at 08:00.
        let s = weekly(3, 8);
        let last_week = due(
            "2026-03-02T00:00:00Z",
            "2026-03-09T00:00:00Z",
            "2026-03-11T08:00:00Z",
        );
        let week_before = due(
            "2026-02-23T00:00:00Z",
            "2026-03-02T00:00:00Z",
            "2026-03-04T08:00:00Z",
        );
        assert_eq!(s.due(ms("2026-03-11T07:59:00Z")), week_before);
        assert_eq!(s.due(ms("2026-03-09T12:00:00Z")), week_before);
        assert_eq!(s.due(ms("2026-03-11T08:00:00Z")), last_week);
        // Sunday night still belongs to the week whose digest went on Wednesday.
        assert_eq!(s.due(ms("2026-03-15T23:59:00Z")), last_week);
        assert_eq!(s.due(ms("2026-03-16T00:00:00Z")), last_week);
        // Monday at 00:00 sends the week that ended that instant.
        assert_eq!(
            weekly(1, 0).due(ms("2026-03-16T00:00:00Z")),
            due(
                "2026-03-09T00:00:00Z",
                "2026-03-16T00:00:00Z",
                "2026-03-16T00:00:00Z"
            )
        );
        // Sunday at 23:00 sends the week before the one it ends.
        assert_eq!(
            weekly(7, 23).due(ms("2026-03-15T23:30:00Z")),
            due(
                "2026-03-02T00:00:00Z",
                "2026-03-09T00:00:00Z",
                "2026-03-15T23:00:00Z"
            )
        );
        // A week across a year's end: 2026-12-28 is a Monday.
        assert_eq!(
            weekly(1, 6).due(ms("2027-01-04T06:00:00Z")).start_ms,
            parse_date("2026-12-28").unwrap()
        );
        assert_eq!(
            last_week.previous(),
            (ms("2026-02-23T00:00:00Z"), ms("2026-03-02T00:00:00Z"))
        );
    }

    fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(v, n)| ((*v).to_owned(), *n)).collect()
    }

    #[test]
    fn movers_are_the_values_that_rose_most_absolute_then_percent() {
        let current = counts(&[
            ("newsletter", 150),
            ("twitter", 30),
            ("google", 500),
            ("bing", 20),
            ("new", 10),
            ("steady", 7),
        ]);
        let previous = counts(&[
            ("newsletter", 50),
            ("twitter", 10),
            ("google", 600),
            ("bing", 10),
            ("steady", 7),
            ("gone", 40),
        ]);
        let got = movers(&current, &previous, 3);
        let names: Vec<&str> = got.iter().map(|m| m.value.as_str()).collect();
        // newsletter +100; twitter +20 (200%); bing and new +10 each, new first (new
        // beats 100%); google fell and steady held.
        assert_eq!(names, ["newsletter", "twitter", "new"]);
        assert_eq!((got[0].change(), got[0].percent()), (100, Some(200.0)));
        assert_eq!(got[2].percent(), None);
        assert_eq!(movers(&current, &previous, 10).len(), 4);
        assert!(movers(&previous, &previous, 10).is_empty());
    }

    fn digest() -> Digest {
        Digest {
            project: "shop".into(),
            schedule: daily(9),
            webhook_url: "https://hooks.example.com/T1/B2".into(),
            secret: format!("whsec_{}", "ab".repeat(24)),
            enabled: true,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn summary() -> Summary {
        let headline = Headline {
            events: 1234,
            errors: 12,
            error_rate: 12.0 / 1234.0,
            p95_ms: Some(187.25),
            unique_users: 345,
            unique_instances: 6,
        };
        Summary {
            headline,
            previous: Headline {
                events: 1000,
                errors: 20,
                ..headline
            },
            movers: vec![
                (
                    MoverKind::Source,
                    vec![Mover {
                        value: "newsletter".into(),
                        current: 150,
                        previous: 50,
                    }],
                ),
                (MoverKind::Route, vec![]),
                (
                    MoverKind::ErrorClass,
                    vec![Mover {
                        value: "TypeError".into(),
                        current: 7,
                        previous: 0,
                    }],
                ),
            ],
            alerts: vec![Firing {
                alert_id: "ar_1.fired.1".into(),
                rule_id: "ar_1".into(),
                rule_name: Some("checkout errors".into()),
                kind: "fired".into(),
                at_ms: ms("2026-03-09T10:15:00Z"),
                value: Some(0.2),
            }],
            fired: 1,
            resolved: 0,
        }
    }

    #[test]
    fn the_text_states_headline_movers_and_alerts_one_per_line() {
        let d = digest();
        let due = d.schedule.due(ms("2026-03-10T09:00:00Z"));
        assert_eq!(
            text(&d, &due, &summary()),
            "Tally daily digest for shop: 2026-03-09 (UTC)\n\
             Events: 1234 (+234, +23.4% vs previous day)\n\
             Errors: 12 (-8, -40.0% vs previous day), error rate 0.97%\n\
             p95 duration: 187.2 ms\n\
             Unique users: 345, unique instances: 6\n\
             Top movers:\n\
             \x20 source newsletter: 150 (+100, +200.0%)\n\
             \x20 error TypeError: 7 (+7, new)\n\
             Alerts: 1 fired, 0 resolved\n\
             \x20 checkout errors fired at 2026-03-09T10:15:00.000Z"
        );
        let quiet = Summary {
            movers: MoverKind::ALL.iter().map(|k| (*k, vec![])).collect(),
            alerts: vec![],
            fired: 0,
            ..summary()
        };
        let weekly_digest = Digest {
            schedule: weekly(1, 9),
            ..digest()
        };
        let week = weekly_digest.schedule.due(ms("2026-03-16T09:00:00Z"));
        let text = text(&weekly_digest, &week, &quiet);
        assert!(
            text.starts_with(
                "Tally weekly digest for shop: week of 2026-03-09 to 2026-03-15 (UTC)\n"
            ),
            "{text}"
        );
        assert!(text.contains("Top movers: nothing rose against the previous week\n"));
    }

    #[test]
    fn the_body_carries_the_numbers_the_movers_the_alerts_and_the_text() {
        let d = digest();
        let due = d.schedule.due(ms("2026-03-10T09:30:00Z"));
        let body: Value = serde_json::from_str(&payload(&d, &due, &summary())).unwrap();
        assert_eq!(body["type"], "digest");
        assert_eq!(body["digest_id"], format!("dg.shop.daily.{}", due.start_ms));
        assert_eq!(
            (body["from"].as_str(), body["to"].as_str()),
            (
                Some("2026-03-09T00:00:00.000Z"),
                Some("2026-03-10T00:00:00.000Z")
            )
        );
        assert_eq!(body["headline"]["events"], 1234);
        assert_eq!(body["headline"]["duration_ms"]["p95"], 187.25);
        assert_eq!(body["previous"]["headline"]["errors"], 20);
        assert_eq!(body["previous"]["from"], "2026-03-08T00:00:00.000Z");
        assert_eq!(
            body["movers"]["sources"][0],
            json!({"value": "newsletter", "current": 150, "previous": 50, "change": 100, "percent": 200.0})
        );
        assert_eq!(body["movers"]["routes"], json!([]));
        assert_eq!(body["movers"]["error_classes"][0]["percent"], Value::Null);
        assert_eq!(body["alerts"]["fired"], 1);
        assert_eq!(body["alerts"]["items"][0]["rule_name"], "checkout errors");
        assert_eq!(body["text"], text(&d, &due, &summary()));
    }

    fn input(body: Value) -> Result<DigestInput, Error> {
        parse_input(body.to_string().as_bytes())
    }

    fn field_of(e: Error) -> Option<&'static str> {
        match e {
            Error::Invalid { code, field, .. } => {
                assert_eq!(code, "invalid_digest");
                field
            }
            other => panic!("not an input error: {other:?}"),
        }
    }

    #[test]
    fn input_names_the_field_at_fault() {
        let ok = json!({"period": "weekly", "hour_utc": 8, "weekday": 3,
                        "webhook_url": "https://hooks.slack.com/services/T/B/x"});
        let parsed = input(ok.clone()).unwrap();
        assert_eq!(parsed.schedule, weekly(3, 8));
        assert!(parsed.enabled && !parsed.rotate_secret);
        // A weekly digest without a weekday goes on Mondays.
        let monday = input(json!({"period": "weekly", "hour_utc": 0,
                                  "webhook_url": "http://127.0.0.1:9/h"}))
        .unwrap();
        assert_eq!(monday.schedule.weekday, Some(1));
        let bad = |patch: Value| {
            let mut body = ok.clone();
            for (k, v) in patch.as_object().unwrap() {
                body[k] = v.clone();
            }
            field_of(input(body).unwrap_err())
        };
        assert_eq!(bad(json!({"period": "monthly"})), Some("period"));
        assert_eq!(bad(json!({"period": null})), Some("period"));
        assert_eq!(bad(json!({"hour_utc": 24})), Some("hour_utc"));
        assert_eq!(bad(json!({"hour_utc": -1})), Some("hour_utc"));
        assert_eq!(bad(json!({"hour_utc": "9"})), Some("hour_utc"));
        assert_eq!(bad(json!({"hour_utc": 9.5})), Some("hour_utc"));
        assert_eq!(bad(json!({"weekday": 0})), Some("weekday"));
        assert_eq!(bad(json!({"weekday": 8})), Some("weekday"));
        assert_eq!(
            bad(json!({"period": "daily", "weekday": 2})),
            Some("weekday")
        );
        assert_eq!(
            bad(json!({"webhook_url": "ftp://x.example/"})),
            Some("webhook_url")
        );
        assert_eq!(
            bad(json!({"webhook_url": "http://hooks.example.com/x"})),
            Some("webhook_url")
        );
        assert_eq!(
            bad(json!({"webhook_url": "https://a.example\\@b.example/"})),
            Some("webhook_url")
        );
        assert_eq!(bad(json!({"webhook_url": 7})), Some("webhook_url"));
        assert_eq!(bad(json!({"enabled": "yes"})), Some("enabled"));
        assert_eq!(bad(json!({"colour": "red"})), None);
        assert!(parse_input(b"[1]").is_err());
        assert!(parse_input(b"{").is_err());
    }

    #[test]
    fn a_change_keeps_the_secret_unless_rotated() {
        let first = input(json!({"period": "daily", "hour_utc": 9,
                                 "webhook_url": "https://h.example/a"}))
        .unwrap();
        let (made, shown) = first.clone().apply("shop", None, "whsec_one".into(), 10);
        assert!(shown);
        assert_eq!((made.secret.as_str(), made.created_at), ("whsec_one", 10));
        let (changed, shown) = first
            .clone()
            .apply("shop", Some(&made), "whsec_two".into(), 20);
        assert!(!shown);
        assert_eq!(
            (
                changed.secret.as_str(),
                changed.created_at,
                changed.updated_at
            ),
            ("whsec_one", 10, 20)
        );
        let rotate = DigestInput {
            rotate_secret: true,
            ..first
        };
        let (rotated, shown) = rotate.apply("shop", Some(&made), "whsec_two".into(), 30);
        assert!(shown);
        assert_eq!(rotated.secret, "whsec_two");
        assert_eq!(made.to_json(false).get("secret"), None);
        assert_eq!(made.to_json(true)["secret"], "whsec_one");
    }
}
