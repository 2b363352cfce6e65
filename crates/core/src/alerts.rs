//! Alert rules: what a rule watches, how it is read from minute rollups, when it fires
//! and resolves, and the signed webhook it sends.
//!
//! A rule measures one metric (error rate, p95 or p99 latency, an event count, or the
//! ratio of two event names such as `click` / `open`) over the last `window_minutes`
//! minutes of a project, optionally within one route, campaign, source or medium, and
//! compares it with a threshold. [`Rule::sources`] names the minute rows the metric
//! needs; [`Rule::observe`] turns those rows into an [`Observation`]; [`step`] decides
//! from the rule's previous [`Status`] whether it fires, resolves or stays.
//!
//! A webhook body is signed with HMAC-SHA256 under the rule's secret, over
//! `<unix seconds>.<body>`, and sent with `Tally-Signature: t=<unix seconds>,v1=<hex>`;
//! [`verify_signature`] is what a receiver does (and what the tests do).

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::Error;
use crate::hash::hex;
use crate::rollup::{Dimension, Key, Rollup, pair};
use crate::share::hmac_sha256;
use crate::time::MINUTE_MS;

/// Shortest window a rule may read, in minutes.
pub const MIN_WINDOW_MINUTES: u32 = 5;
/// Longest window a rule may read, in minutes (a day). Minute rows are kept a little
/// longer than this ([`MINUTE_ROWS_KEPT_MS`]).
pub const MAX_WINDOW_MINUTES: u32 = 1440;
/// Longest cooldown, in minutes (a week).
pub const MAX_COOLDOWN_MINUTES: u32 = 10_080;
/// How long minute rows are kept: the longest window plus an hour of slack.
pub const MINUTE_ROWS_KEPT_MS: i64 = (MAX_WINDOW_MINUTES as i64 + 60) * MINUTE_MS;
/// How far a receiver should accept a signature's timestamp from its own clock.
pub const SIGNATURE_TOLERANCE_S: i64 = 300;
/// The header carrying a webhook's signature.
pub const SIGNATURE_HEADER: &str = "Tally-Signature";
/// Random bytes in a rule id and in a webhook secret.
pub const ID_BYTES: usize = 8;
pub const SECRET_BYTES: usize = 24;
/// Most rules a project may have.
pub const MAX_RULES_PER_PROJECT: usize = 100;
/// How long the consumer may go on storing events without knowing of a rule created,
/// changed or enabled: the age its isolate's cache of rules reaches before it reads
/// them again. Until then the minute rows only that rule reads are not written
/// ([`MinuteSources`]), so its first evaluations see part of their window
/// ([`Rule::counted_from`], [`step_on_part`]).
pub const RULES_LEARNED_WITHIN_MS: i64 = 60_000;

/// Which minute rows the consumer writes. Each one written costs D1 a row (and an index
/// entry when new) whether or not anything reads it, so only what is read is written:
/// the minute rows of the realtime view's dimensions ([`crate::realtime::DIMENSIONS`])
/// for every project, and of the other dimensions only the (dimension, value) pairs
/// that an enabled rule of the project reads ([`Rule::sources`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MinuteSources {
    /// Every minute row of every dimension (when the rules could not be read: writing
    /// too much is only dearer, writing too little would blind a rule).
    every: bool,
    read_by_rules: BTreeMap<String, BTreeSet<(Dimension, String)>>,
}

impl MinuteSources {
    /// Every minute row: what the consumer writes when it cannot read the rules.
    pub fn every() -> Self {
        Self {
            every: true,
            read_by_rules: BTreeMap::new(),
        }
    }

    /// The minute rows that `rules` read, the disabled ones left out, besides the
    /// realtime view's.
    pub fn of_rules<'a>(rules: impl IntoIterator<Item = &'a Rule>) -> Self {
        let mut sources = Self::default();
        for rule in rules.into_iter().filter(|r| r.enabled) {
            sources.add(&rule.project, rule.sources());
        }
        sources
    }

    /// Adds sources that a rule of `project` reads.
    pub fn add(&mut self, project: &str, sources: impl IntoIterator<Item = (Dimension, String)>) {
        let read = self.read_by_rules.entry(project.to_owned()).or_default();
        read.extend(
            sources
                .into_iter()
                .filter(|(dimension, _)| !Self::is_always_written(*dimension)),
        );
    }

    /// Whether the minute rows of `dimension` are written for every project, rules or
    /// not (the realtime view reads them).
    pub fn is_always_written(dimension: Dimension) -> bool {
        crate::realtime::DIMENSIONS.contains(&dimension)
    }

    /// Whether the minute row of `key` is written.
    pub fn wants(&self, key: &Key) -> bool {
        self.every
            || Self::is_always_written(key.dimension)
            || self
                .read_by_rules
                .get(&key.project)
                .is_some_and(|read| read.contains(&(key.dimension, key.value.clone())))
    }
}

/// What a rule measures.
#[derive(Debug, Clone, PartialEq)]
pub enum Metric {
    /// Errors per event, 0 to 1. Volume: the events.
    ErrorRate,
    /// The 95th or 99th percentile of durations, in milliseconds. Volume: the events
    /// with a duration.
    P95,
    P99,
    /// Events, or events of one name. Its volume is itself, so it has no minimum.
    Count {
        name: Option<String>,
    },
    /// Events named `numerator` per event named `denominator` (click-through is
    /// `click` / `open`). Volume: the denominator's events.
    Ratio {
        numerator: String,
        denominator: String,
    },
}

impl Metric {
    /// The metric's name in the API.
    pub fn name(&self) -> &'static str {
        match self {
            Self::ErrorRate => "error_rate",
            Self::P95 => "p95",
            Self::P99 => "p99",
            Self::Count { .. } => "count",
            Self::Ratio { .. } => "ratio",
        }
    }
}

/// How a value is compared with the threshold; a rule is breached when it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparator {
    Above,
    AtLeast,
    Below,
    AtMost,
}

impl Comparator {
    const NAMES: [(&'static str, Self); 4] = [
        (">", Self::Above),
        (">=", Self::AtLeast),
        ("<", Self::Below),
        ("<=", Self::AtMost),
    ];

    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, c)| *c == self)
            .map_or(">", |(n, _)| n)
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == text)
            .map(|(_, c)| *c)
    }

    /// Whether `value` compared with `threshold` holds.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Self::Above => value > threshold,
            Self::AtLeast => value >= threshold,
            Self::Below => value < threshold,
            Self::AtMost => value <= threshold,
        }
    }
}

/// The dimensions a rule may be narrowed to, with the minute-row dimension that counts
/// one event name within it.
const FILTERS: [(Dimension, Dimension); 4] = [
    (Dimension::Route, Dimension::NameRoute),
    (Dimension::Campaign, Dimension::NameCampaign),
    (Dimension::Source, Dimension::NameSource),
    (Dimension::Medium, Dimension::NameMedium),
];

/// A rule's narrowing to one value of a dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub dimension: Dimension,
    pub value: String,
}

impl Filter {
    /// The minute-row dimension of one event name within this filter.
    fn named(&self) -> Dimension {
        FILTERS
            .iter()
            .find(|(d, _)| *d == self.dimension)
            .map_or(Dimension::Name, |(_, named)| *named)
    }
}

/// Where a rule's webhook goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub url: String,
    /// The HMAC key, `whsec_` and 48 hex digits.
    pub secret: String,
}

/// An alert rule of a project.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// `ar_` and 16 hex digits.
    pub id: String,
    pub project: String,
    pub name: String,
    pub metric: Metric,
    pub filter: Option<Filter>,
    pub comparator: Comparator,
    pub threshold: f64,
    pub window_minutes: u32,
    /// Below this volume the rule neither fires nor resolves (1 error in 2 events is
    /// not a 50% error rate).
    pub min_volume: u64,
    /// After firing, the rule does not fire again for this long, even if it resolved.
    pub cooldown_minutes: u32,
    pub webhook: Option<Webhook>,
    /// The campaign the rule marks paused when it fires.
    pub pause_campaign: Option<String>,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A rule's state between evaluations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum State {
    #[default]
    Ok,
    Firing,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Firing => "firing",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "ok" => Some(Self::Ok),
            "firing" => Some(Self::Firing),
            _ => None,
        }
    }
}

/// A campaign's state as sending systems read it: `active` unless an alert rule or a
/// person paused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CampaignStatus {
    #[default]
    Active,
    Paused,
}

impl CampaignStatus {
    pub fn of(paused: bool) -> Self {
        if paused { Self::Paused } else { Self::Active }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Paused => "paused",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "active" => Some(Self::Active),
            "paused" => Some(Self::Paused),
            _ => None,
        }
    }
}

/// What is remembered of a rule between evaluations.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Status {
    pub state: State,
    /// When the state last changed (0 if never).
    pub since_ms: i64,
    /// When the rule last fired.
    pub last_fired_ms: Option<i64>,
}

/// A metric's value over a window, with the volume it rests on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// `None` when there is nothing to measure (no events, no durations, no
    /// denominator).
    pub value: Option<f64>,
    pub volume: u64,
}

/// What an evaluation decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Fire,
    Resolve,
    /// Breached, but the rule fired less than its cooldown ago.
    Suppressed,
    Stay,
}

impl Rule {
    /// The minute rows, as (dimension, value), whose merge the metric is read from.
    pub fn sources(&self) -> Vec<(Dimension, String)> {
        let scope = || match &self.filter {
            Some(f) => (f.dimension, f.value.clone()),
            None => (Dimension::All, String::new()),
        };
        let named = |name: &str| match &self.filter {
            Some(f) => (f.named(), pair(name, &f.value)),
            None => (Dimension::Name, name.to_owned()),
        };
        match &self.metric {
            Metric::ErrorRate | Metric::P95 | Metric::P99 | Metric::Count { name: None } => {
                vec![scope()]
            }
            Metric::Count { name: Some(name) } => vec![named(name)],
            Metric::Ratio {
                numerator,
                denominator,
            } => vec![named(numerator), named(denominator)],
        }
    }

    /// The window's first minute when the evaluation runs at `now_ms`: the window is
    /// the last `window_minutes` minutes, the current one included.
    pub fn window_start(&self, now_ms: i64) -> i64 {
        let minute = now_ms.div_euclid(MINUTE_MS) * MINUTE_MS;
        minute - (i64::from(self.window_minutes) - 1) * MINUTE_MS
    }

    /// The first minute whose rows hold every event of a count's sources, when some
    /// are not written for every project: minute rows of those are written only once
    /// the consumer knows the rule, at most [`RULES_LEARNED_WITHIN_MS`] after it was
    /// created, changed or enabled (`updated_at`), so the first minute that starts
    /// after that. Events of a minute arrive no earlier than the minute (ingest clamps
    /// future timestamps), so they are stored after it. `None` when every source is
    /// always written, and for rates, percentiles and ratios: an event stored without
    /// its row is missing from both sides of a rate (its numerator and denominator are
    /// rows of the same events), so the rows present are a smaller sample, never a
    /// skewed one, and `min_volume` still holds; only a count is lowered by it.
    pub fn counted_from(&self) -> Option<i64> {
        if !matches!(self.metric, Metric::Count { .. })
            || self
                .sources()
                .iter()
                .all(|(dimension, _)| MinuteSources::is_always_written(*dimension))
        {
            return None;
        }
        let learned = self.updated_at.saturating_add(RULES_LEARNED_WITHIN_MS);
        Some((learned + MINUTE_MS - 1).div_euclid(MINUTE_MS) * MINUTE_MS)
    }

    /// The first minute an evaluation at `now_ms` reads: the window's
    /// ([`Rule::window_start`]), or the first counted one ([`Rule::counted_from`]) if
    /// that is later; then the window is only in part, see [`step_on_part`].
    pub fn read_from(&self, now_ms: i64) -> i64 {
        let start = self.window_start(now_ms);
        self.counted_from()
            .map_or(start, |counted| counted.max(start))
    }

    /// The metric over the window, from the merged rows of [`Rule::sources`] (a source
    /// missing from `rows` had no events).
    pub fn observe(&self, rows: &BTreeMap<(Dimension, String), Rollup>) -> Observation {
        let sources = self.sources();
        let empty = Rollup::default();
        let row = |i: usize| sources.get(i).and_then(|k| rows.get(k)).unwrap_or(&empty);
        let first = row(0);
        let ratio = |n: u64, d: u64| (d > 0).then(|| n as f64 / d as f64);
        match &self.metric {
            Metric::ErrorRate => Observation {
                value: ratio(first.errors, first.count),
                volume: first.count,
            },
            Metric::P95 | Metric::P99 => {
                let q = if self.metric == Metric::P95 {
                    0.95
                } else {
                    0.99
                };
                Observation {
                    value: first.durations.quantile(q),
                    volume: first.durations.count(),
                }
            }
            Metric::Count { .. } => Observation {
                value: Some(first.count as f64),
                volume: first.count,
            },
            Metric::Ratio { .. } => {
                let denominator = row(1).count;
                Observation {
                    value: ratio(first.count, denominator),
                    volume: denominator,
                }
            }
        }
    }

    /// Whether the observation breaches the rule. Too little volume, or nothing to
    /// measure, is not a breach and not a recovery either: `None`.
    pub fn breached(&self, observation: Observation) -> Option<bool> {
        let enough = matches!(self.metric, Metric::Count { .. })
            || observation.volume >= self.min_volume.max(1);
        let value = observation.value.filter(|_| enough)?;
        Some(self.comparator.holds(value, self.threshold))
    }

    /// The rule as the API shows it; the webhook secret only when `with_secret`.
    pub fn to_json(&self, with_secret: bool) -> Value {
        let metric = match &self.metric {
            Metric::Count { name } => json!({"type": "count", "name": name}),
            Metric::Ratio {
                numerator,
                denominator,
            } => json!({"type": "ratio", "numerator": numerator, "denominator": denominator}),
            other => json!({"type": other.name()}),
        };
        let webhook = self.webhook.as_ref().map(|w| {
            let mut hook =
                json!({"url": w.url, "secret_prefix": &w.secret[..w.secret.len().min(14)]});
            if with_secret {
                hook["secret"] = json!(w.secret);
            }
            hook
        });
        json!({
            "id": self.id,
            "project": self.project,
            "name": self.name,
            "metric": metric,
            "filter": self.filter.as_ref().map(|f| json!({"dimension": f.dimension.name(), "value": f.value})),
            "comparator": self.comparator.name(),
            "threshold": self.threshold,
            "window_minutes": self.window_minutes,
            "min_volume": self.min_volume,
            "cooldown_minutes": self.cooldown_minutes,
            "webhook": webhook,
            "pause_campaign": self.pause_campaign,
            "enabled": self.enabled,
            "created_at": crate::time::format_ms(self.created_at),
            "updated_at": crate::time::format_ms(self.updated_at),
        })
    }

    /// The stored definition: everything but id, project, secret and times, as JSON.
    pub fn definition(&self) -> String {
        let mut value = self.to_json(false);
        if let Some(map) = value.as_object_mut() {
            for key in ["id", "project", "created_at", "updated_at", "enabled"] {
                map.remove(key);
            }
            if let Some(hook) = map.get_mut("webhook").and_then(Value::as_object_mut) {
                hook.remove("secret_prefix");
            }
        }
        value.to_string()
    }

    /// A rule of `project` with only its id and a cooldown, enabled, for
    /// [`RuleInput::apply`] to fill in: the fields every definition gives (name, metric,
    /// comparator, threshold, window) hold placeholders.
    fn unset(id: String, project: String, cooldown_minutes: u32) -> Rule {
        Rule {
            id,
            project,
            name: String::new(),
            metric: Metric::ErrorRate,
            filter: None,
            comparator: Comparator::Above,
            threshold: 0.0,
            window_minutes: MIN_WINDOW_MINUTES,
            min_volume: 0,
            cooldown_minutes,
            webhook: None,
            pause_campaign: None,
            enabled: true,
            created_at: 0,
            updated_at: 0,
        }
    }

    /// Reads a stored rule: its row's columns and [`Rule::definition`].
    ///
    /// # Errors
    ///
    /// [`Error::StoredRule`] when the definition does not parse.
    pub fn from_stored(stored: StoredRule) -> Result<Self, Error> {
        let input: RuleInput = serde_json::from_str(&stored.definition)
            .map_err(|e| Error::StoredRule(e.to_string()))?;
        let mut rule = Rule {
            enabled: stored.enabled,
            created_at: stored.created_at,
            updated_at: stored.updated_at,
            ..Rule::unset(stored.id, stored.project, 0)
        };
        input
            .apply(&mut rule, stored.secret.as_deref())
            .map_err(|e| Error::StoredRule(e.to_string()))?;
        Ok(rule)
    }
}

/// A rule as stored: the columns of `alert_rules` it is rebuilt from.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRule {
    pub id: String,
    pub project: String,
    pub definition: String,
    pub secret: Option<String>,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Decides what an evaluation at `now_ms` does to a rule in `status`.
///
/// - An `ok` rule that is breached fires, unless it fired less than its cooldown ago
///   (then it stays `ok`, suppressed, and fires once the cooldown is over if still
///   breached): the same breach never fires twice within the cooldown.
/// - A `firing` rule that is no longer breached resolves.
/// - Too little volume or nothing to measure changes nothing.
pub fn step(rule: &Rule, status: &Status, observation: Observation, now_ms: i64) -> Transition {
    match (status.state, rule.breached(observation)) {
        (State::Ok, Some(true)) => {
            let cooldown = i64::from(rule.cooldown_minutes) * MINUTE_MS;
            match status.last_fired_ms {
                Some(fired) if now_ms - fired < cooldown => Transition::Suppressed,
                _ => Transition::Fire,
            }
        }
        (State::Firing, Some(false)) => Transition::Resolve,
        _ => Transition::Stay,
    }
}

/// What an evaluation decides from part of its window: the minutes since
/// [`Rule::counted_from`], when the window starts before it. Only what the missing
/// minutes cannot undo is decided: a count only grows with them, so a count already
/// above (or at) its threshold fires, and one already past a `<` or `<=` threshold
/// resolves, as [`step`] decides them; anything else (a rate, a percentile, a count
/// still short of an `>` threshold or under a `<` one) stays as it is until the window
/// is whole. So a rule never fires, nor resolves, on minutes that were not counted.
pub fn step_on_part(
    rule: &Rule,
    status: &Status,
    observation: Observation,
    now_ms: i64,
) -> Transition {
    let transition = step(rule, status, observation, now_ms);
    let count = matches!(rule.metric, Metric::Count { .. });
    let upward = matches!(rule.comparator, Comparator::Above | Comparator::AtLeast);
    match transition {
        Transition::Fire | Transition::Suppressed if count && upward => transition,
        Transition::Resolve if count && !upward => transition,
        _ => Transition::Stay,
    }
}

/// The body of a rule-creation or change request; every field optional on change.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleInput {
    name: Option<String>,
    metric: Option<MetricInput>,
    #[serde(default, deserialize_with = "nullable")]
    filter: Option<Option<FilterInput>>,
    comparator: Option<String>,
    threshold: Option<f64>,
    window_minutes: Option<u32>,
    min_volume: Option<u64>,
    cooldown_minutes: Option<u32>,
    #[serde(default, deserialize_with = "nullable")]
    webhook: Option<Option<WebhookInput>>,
    /// A campaign name, `true` for the filter's campaign, or `null`/`false` for none.
    #[serde(default, deserialize_with = "nullable")]
    pause_campaign: Option<Option<Value>>,
    enabled: Option<bool>,
    /// Replace the webhook secret with a new one (change requests only).
    #[serde(default)]
    rotate_secret: bool,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
fn nullable<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricInput {
    #[serde(rename = "type")]
    kind: String,
    name: Option<String>,
    numerator: Option<String>,
    denominator: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterInput {
    dimension: String,
    value: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookInput {
    url: String,
    /// The receiver's own secret; by default Tally makes one.
    #[serde(default)]
    secret: Option<String>,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid("invalid_rule", message)
}

/// A webhook secret from random bytes.
pub fn new_secret(random: &[u8; SECRET_BYTES]) -> String {
    format!("whsec_{}", hex(random))
}

/// A rule id from random bytes.
pub fn new_id(random: &[u8; ID_BYTES]) -> String {
    format!("ar_{}", hex(random))
}

/// Parses a rule-creation or change body.
///
/// # Errors
///
/// An [`Error::Invalid`] of kind `invalid_rule` naming what is wrong.
pub fn parse_input(body: &[u8]) -> Result<RuleInput, Error> {
    crate::json::from_object(body).map_err(|e| {
        invalid(format!(
            "the body must be a JSON rule (see /openapi.json, AlertRuleInput): {e}"
        ))
    })
}

/// The secret and id randomness a new rule needs.
pub struct Fresh {
    pub id: [u8; ID_BYTES],
    pub secret: [u8; SECRET_BYTES],
}

impl RuleInput {
    /// Whether the change asks for a new webhook secret.
    pub fn rotates_secret(&self) -> bool {
        self.rotate_secret
    }

    /// A new rule of `project` from a creation body.
    ///
    /// # Errors
    ///
    /// An [`Error::Invalid`] of kind `invalid_rule` when a required field is missing or a value is out of range.
    pub fn create(self, project: &str, fresh: &Fresh, now_ms: i64) -> Result<Rule, Error> {
        for (present, field) in [
            (self.name.is_some(), "name"),
            (self.metric.is_some(), "metric"),
            (self.comparator.is_some(), "comparator"),
            (self.threshold.is_some(), "threshold"),
            (self.window_minutes.is_some(), "window_minutes"),
        ] {
            if !present {
                return Err(invalid(format!("a rule needs {field:?}")));
            }
        }
        if self.rotate_secret {
            return Err(invalid("rotate_secret is for changing a rule"));
        }
        let mut rule = Rule {
            created_at: now_ms,
            updated_at: now_ms,
            ..Rule::unset(new_id(&fresh.id), project.to_owned(), 60)
        };
        let secret = new_secret(&fresh.secret);
        self.apply(&mut rule, Some(&secret))?;
        Ok(rule)
    }

    /// Applies the fields present to `rule` and checks the result. `secret` is a new
    /// webhook secret: made for a new rule, for a rotation, or the stored one when a rule
    /// is read back; `None` keeps the rule's secret.
    ///
    /// # Errors
    ///
    /// An [`Error::Invalid`] of kind `invalid_rule` when a value is out of range or the rule contradicts
    /// itself (a ratio of an event to itself, pausing with no campaign to pause).
    pub fn apply(self, rule: &mut Rule, secret: Option<&str>) -> Result<(), Error> {
        if let Some(name) = self.name {
            let name = name.trim();
            if name.is_empty() || name.chars().count() > 100 {
                return Err(invalid("name must be 1 to 100 characters"));
            }
            name.clone_into(&mut rule.name);
        }
        if let Some(metric) = self.metric {
            rule.metric = metric.parse()?;
        }
        if let Some(filter) = self.filter {
            rule.filter = filter.map(FilterInput::parse).transpose()?;
        }
        if let Some(c) = self.comparator {
            rule.comparator = Comparator::parse(&c).ok_or_else(|| {
                invalid(format!(
                    "comparator {c:?} must be one of \">\", \">=\", \"<\", \"<=\""
                ))
            })?;
        }
        if let Some(t) = self.threshold {
            if !t.is_finite() {
                return Err(invalid("threshold must be a finite number"));
            }
            rule.threshold = t;
        }
        if let Some(w) = self.window_minutes {
            if !(MIN_WINDOW_MINUTES..=MAX_WINDOW_MINUTES).contains(&w) {
                return Err(invalid(format!(
                    "window_minutes must be {MIN_WINDOW_MINUTES} to {MAX_WINDOW_MINUTES} (5 minutes to 24 hours)"
                )));
            }
            rule.window_minutes = w;
        }
        if let Some(v) = self.min_volume {
            rule.min_volume = v;
        }
        if let Some(c) = self.cooldown_minutes {
            if c > MAX_COOLDOWN_MINUTES {
                return Err(invalid(format!(
                    "cooldown_minutes must be at most {MAX_COOLDOWN_MINUTES} (a week)"
                )));
            }
            rule.cooldown_minutes = c;
        }
        if let Some(hook) = self.webhook {
            rule.webhook = match hook {
                None => None,
                Some(h) => {
                    check_webhook_url(&h.url, "invalid_rule")?;
                    let kept = rule.webhook.as_ref().map(|w| w.secret.clone());
                    let secret = match h.secret {
                        Some(own) if own.len() < 16 || own.len() > 200 => {
                            return Err(invalid("a webhook secret must be 16 to 200 bytes"));
                        }
                        Some(own) => own,
                        None => secret
                            .map(str::to_owned)
                            .or(kept)
                            .ok_or_else(|| invalid("a webhook needs a secret"))?,
                    };
                    Some(Webhook { url: h.url, secret })
                }
            };
        } else if let (Some(hook), Some(secret)) = (rule.webhook.as_mut(), secret) {
            // A rotation: the webhook stays, with the new secret.
            secret.clone_into(&mut hook.secret);
        }
        if let Some(pause) = self.pause_campaign {
            rule.pause_campaign = match pause {
                None | Some(Value::Bool(false)) => None,
                Some(Value::Bool(true)) => match &rule.filter {
                    Some(f) if f.dimension == Dimension::Campaign => Some(f.value.clone()),
                    _ => {
                        return Err(invalid(
                            "pause_campaign: true pauses the filter's campaign; filter by a campaign or name one",
                        ));
                    }
                },
                Some(Value::String(c)) if !c.trim().is_empty() && c.len() <= 200 => {
                    Some(c.trim().to_owned())
                }
                Some(other) => {
                    return Err(invalid(format!(
                        "pause_campaign must be a campaign name, true or null, not {other}"
                    )));
                }
            };
        }
        if let Some(enabled) = self.enabled {
            rule.enabled = enabled;
        }
        if rule.name.is_empty() {
            return Err(invalid("a rule needs \"name\""));
        }
        Ok(())
    }
}

impl MetricInput {
    fn parse(self) -> Result<Metric, Error> {
        let name = |field: &str, value: Option<String>| {
            value
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty() && v.len() <= 200)
                .ok_or_else(|| invalid(format!("a {} metric needs {field:?}", self.kind)))
        };
        let extra = |fields: &[(&str, bool)]| {
            fields
                .iter()
                .find(|(_, present)| *present)
                .map_or(Ok(()), |(f, _)| {
                    Err(invalid(format!("a {} metric takes no {f:?}", self.kind)))
                })
        };
        let (n, num, den) = (
            self.name.is_some(),
            self.numerator.is_some(),
            self.denominator.is_some(),
        );
        Ok(match self.kind.as_str() {
            "error_rate" | "p95" | "p99" => {
                extra(&[("name", n), ("numerator", num), ("denominator", den)])?;
                match self.kind.as_str() {
                    "error_rate" => Metric::ErrorRate,
                    "p95" => Metric::P95,
                    _ => Metric::P99,
                }
            }
            "count" => {
                extra(&[("numerator", num), ("denominator", den)])?;
                Metric::Count {
                    name: self
                        .name
                        .clone()
                        .map(|_| name("name", self.name.clone()))
                        .transpose()?,
                }
            }
            "ratio" => {
                extra(&[("name", n)])?;
                let numerator = name("numerator", self.numerator.clone())?;
                let denominator = name("denominator", self.denominator.clone())?;
                if numerator == denominator {
                    return Err(invalid("a ratio needs two different event names"));
                }
                Metric::Ratio {
                    numerator,
                    denominator,
                }
            }
            other => {
                return Err(invalid(format!(
                    "metric type {other:?} must be error_rate, p95, p99, count or ratio"
                )));
            }
        })
    }
}

impl FilterInput {
    fn parse(self) -> Result<Filter, Error> {
        let dimension = Dimension::parse(&self.dimension)
            .filter(|d| FILTERS.iter().any(|(f, _)| f == d))
            .ok_or_else(|| {
                invalid(format!(
                    "filter dimension {:?} must be route, campaign, source or medium",
                    self.dimension
                ))
            })?;
        // Any value ingest keeps for the dimension can be named, and nothing longer.
        let max_chars = if dimension == Dimension::Route {
            crate::validate::MAX_ROUTE_CHARS
        } else {
            crate::validate::MAX_DIMENSION_CHARS
        };
        if self.value.is_empty() || self.value.chars().count() > max_chars {
            return Err(invalid(format!(
                "a {} filter value must be 1 to {max_chars} characters",
                dimension.name()
            )));
        }
        Ok(Filter {
            dimension,
            value: self.value,
        })
    }
}

/// A webhook URL must be absolute http(s) with a host, and https unless it is loopback;
/// refusals are [`Error::Invalid`] of kind `code` (alert rules and digests share the
/// rules, each with its own code).
pub(crate) fn check_webhook_url(text: &str, code: &'static str) -> Result<(), Error> {
    let invalid = |message: String| Error::invalid(code, message);
    if text.contains('\\') {
        // URL parsers disagree about backslashes (WHATWG reads them as `/`), so one URL
        // could name two hosts: refuse it rather than guess.
        return Err(invalid(format!(
            "webhook url {text:?} contains a backslash; write it with forward slashes"
        )));
    }
    let url = url::Url::parse(text)
        .map_err(|e| invalid(format!("webhook url {text:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(format!(
            "webhook url {text:?} must be an http or https URL"
        )));
    }
    if !deliverable(&url) {
        return Err(invalid(format!(
            "webhook url {text:?} uses plain http to a host that is not loopback: a delivery \
             carries a signed body, so it goes over https (plain http only to 127.0.0.1, \
             localhost or [::1], for a local receiver)"
        )));
    }
    Ok(())
}

/// Whether a webhook may be delivered to `url`: https, or plain http to a loopback
/// address (a receiver on the machine that runs a local stack).
pub fn deliverable(url: &url::Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => match url.host() {
            Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        },
        _ => false,
    }
}

/// What a read token may see of a webhook URL: its scheme, host and port, never its
/// credentials, path or query (chat services keep a secret in the path). A URL that
/// does not parse shows as `"(hidden)"`.
pub fn webhook_origin(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(url) if url.host_str().is_some() => {
            let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
            if let Some(port) = url.port() {
                shown.push_str(&format!(":{port}"));
            }
            shown
        }
        _ => "(hidden)".to_owned(),
    }
}

/// One firing or resolution, as recorded and as sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// `<rule id>.<fired|resolved>.<epoch ms>`: unique per transition, the webhook's
    /// idempotency key.
    pub id: String,
    pub rule_id: String,
    pub project: String,
    pub kind: Transition,
    pub at_ms: i64,
    pub value: Option<f64>,
    pub volume: u64,
}

impl Alert {
    /// The alert for a transition of `rule` observed at `at_ms`.
    pub fn new(rule: &Rule, kind: Transition, observation: Observation, at_ms: i64) -> Self {
        Alert {
            id: format!("{}.{}.{at_ms}", rule.id, kind_name(kind)),
            rule_id: rule.id.clone(),
            project: rule.project.clone(),
            kind,
            at_ms,
            value: observation.value,
            volume: observation.volume,
        }
    }

    /// `fired` or `resolved`.
    pub fn kind_name(&self) -> &'static str {
        kind_name(self.kind)
    }

    /// The webhook body: what happened, to which rule, and what was done.
    pub fn payload(&self, rule: &Rule) -> String {
        json!({
            "type": format!("alert.{}", self.kind_name()),
            "alert_id": self.id,
            "project": self.project,
            "at": crate::time::format_ms(self.at_ms),
            "value": self.value,
            "volume": self.volume,
            "rule": {
                "id": rule.id,
                "name": rule.name,
                "metric": rule.to_json(false)["metric"],
                "filter": rule.to_json(false)["filter"],
                "comparator": rule.comparator.name(),
                "threshold": rule.threshold,
                "window_minutes": rule.window_minutes,
            },
            "campaign_paused": rule.pause_campaign.as_ref().filter(|_| self.kind == Transition::Fire),
        })
        .to_string()
    }
}

fn kind_name(kind: Transition) -> &'static str {
    match kind {
        Transition::Resolve => "resolved",
        _ => "fired",
    }
}

/// The `Tally-Signature` header value for `body` sent at `unix_s`.
pub fn sign(secret: &str, unix_s: i64, body: &str) -> String {
    let mac = hmac_sha256(secret.as_bytes(), format!("{unix_s}.{body}").as_bytes());
    format!("t={unix_s},v1={}", hex(&mac))
}

/// Why a receiver should refuse a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadSignature {
    /// The header is not `t=<seconds>,v1=<64 hex digits>`.
    Malformed,
    /// Not signed over this body by this secret.
    Mismatch,
    /// Signed, but too far from now: a replay.
    Stale,
}

/// Checks a `Tally-Signature` header against `body` as a receiver does at `now_s`.
///
/// # Errors
///
/// Which check failed; the signature is checked before the time.
pub fn verify_signature(
    secret: &str,
    header: &str,
    body: &str,
    now_s: i64,
) -> Result<(), BadSignature> {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => v1 = Some(value),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return Err(BadSignature::Malformed);
    };
    if v1.len() != 64 {
        return Err(BadSignature::Malformed);
    }
    let expected = sign(secret, t, body);
    let given = format!("t={t},v1={v1}");
    // Compare every byte, so the time taken says nothing about where they differ.
    let same = expected.len() == given.len()
        && expected
            .bytes()
            .zip(given.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !same {
        return Err(BadSignature::Mismatch);
    }
    if (now_s - t).abs() > SIGNATURE_TOLERANCE_S {
        return Err(BadSignature::Stale);
    }
    Ok(())
}

/// The delay before delivery attempt `attempt + 1` after `attempt` failed: 10 s doubling
/// to at most 10 minutes.
pub fn retry_delay_s(attempt: u32) -> u32 {
    10u32
        .saturating_mul(1 << attempt.saturating_sub(1).min(6))
        .min(600)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sketch::Sketch;

    const NOW: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    fn fresh() -> Fresh {
        Fresh {
            id: [7; ID_BYTES],
            secret: [9; SECRET_BYTES],
        }
    }

    fn rule(body: Value) -> Rule {
        parse_input(body.to_string().as_bytes())
            .and_then(|input| input.create("shop", &fresh(), NOW))
            .unwrap()
    }

    fn ctr_rule() -> Rule {
        rule(json!({
            "name": "CTR below 1%",
            "metric": {"type": "ratio", "numerator": "click", "denominator": "open"},
            "filter": {"dimension": "campaign", "value": "spring"},
            "comparator": "<", "threshold": 0.01, "window_minutes": 15,
            "min_volume": 100, "cooldown_minutes": 30,
            "webhook": {"url": "https://hooks.example/tally"},
            "pause_campaign": true,
        }))
    }

    fn counts(count: u64, errors: u64) -> Rollup {
        Rollup {
            count,
            errors,
            ..Rollup::default()
        }
    }

    fn rows(entries: &[((Dimension, &str), Rollup)]) -> BTreeMap<(Dimension, String), Rollup> {
        entries
            .iter()
            .map(|((d, v), r)| ((*d, (*v).to_owned()), r.clone()))
            .collect()
    }

    fn at(state: State, last_fired_ms: Option<i64>) -> Status {
        Status {
            state,
            since_ms: 0,
            last_fired_ms,
        }
    }

    #[test]
    fn a_ratio_reads_both_names_within_the_filter() {
        let rule = ctr_rule();
        let open = pair("open", "spring");
        let click = pair("click", "spring");
        assert_eq!(
            rule.sources(),
            vec![
                (Dimension::NameCampaign, click.clone()),
                (Dimension::NameCampaign, open.clone())
            ]
        );
        let observed = rule.observe(&rows(&[
            ((Dimension::NameCampaign, &click), counts(3, 0)),
            ((Dimension::NameCampaign, &open), counts(1200, 0)),
        ]));
        assert_eq!(observed.volume, 1200);
        assert_eq!(observed.value, Some(3.0 / 1200.0));
        assert_eq!(rule.breached(observed), Some(true));
        assert_eq!(rule.pause_campaign.as_deref(), Some("spring"));
    }

    fn key(project: &str, dimension: Dimension, value: &str) -> Key {
        Key {
            project: project.to_owned(),
            start: NOW,
            dimension,
            value: value.to_owned(),
        }
    }

    #[test]
    fn minute_rows_are_written_for_realtime_and_for_what_enabled_rules_read() {
        let mut disabled = rule(json!({
            "name": "installs", "metric": {"type": "count", "name": "install"},
            "comparator": ">", "threshold": 5, "window_minutes": 5,
        }));
        disabled.enabled = false;
        let sources = MinuteSources::of_rules([&ctr_rule(), &disabled]);
        // The realtime view's dimensions, for every project.
        for project in ["shop", "other"] {
            assert!(sources.wants(&key(project, Dimension::All, "")));
            assert!(sources.wants(&key(project, Dimension::Route, "/a")));
            assert!(sources.wants(&key(project, Dimension::Source, "news")));
        }
        // The ratio's two pairs, in its project only.
        for name in ["click", "open"] {
            let pair = pair(name, "spring");
            assert!(sources.wants(&key("shop", Dimension::NameCampaign, &pair)));
            assert!(!sources.wants(&key("other", Dimension::NameCampaign, &pair)));
        }
        // Nothing else: other pairs, other dimensions, a disabled rule's name.
        let pair = pair("buy", "spring");
        assert!(!sources.wants(&key("shop", Dimension::NameCampaign, &pair)));
        assert!(!sources.wants(&key("shop", Dimension::Campaign, "spring")));
        assert!(!sources.wants(&key("shop", Dimension::Name, "click")));
        assert!(!sources.wants(&key("shop", Dimension::Name, "install")));
        assert!(!MinuteSources::default().wants(&key("shop", Dimension::Medium, "cpc")));
        assert!(MinuteSources::every().wants(&key("shop", Dimension::Medium, "cpc")));
    }

    #[test]
    fn a_rule_reads_from_the_first_minute_the_consumer_counted_for_it() {
        // Created at NOW + 10 s: known to every consumer by NOW + 70 s, so the minute
        // starting at NOW + 2 min is the first whose rows hold all its events.
        let mut ctr = rule(json!({
            "name": "few clicks", "metric": {"type": "count", "name": "click"},
            "filter": {"dimension": "campaign", "value": "spring"},
            "comparator": "<", "threshold": 10, "window_minutes": 15,
        }));
        ctr.updated_at = NOW + 10_000;
        assert_eq!(ctr.counted_from(), Some(NOW + 2 * MINUTE_MS));
        let now = NOW + 5 * MINUTE_MS + 30_000;
        assert_eq!(ctr.window_start(now), now - 30_000 - 14 * MINUTE_MS);
        assert_eq!(ctr.read_from(now), NOW + 2 * MINUTE_MS);
        // Once the window lies past it, the window is whole.
        let later = NOW + 20 * MINUTE_MS;
        assert_eq!(ctr.read_from(later), ctr.window_start(later));
        // A ratio's rows present are a smaller sample, not a skewed one: the whole
        // window.
        let mut ratio = ctr_rule();
        ratio.updated_at = NOW + 10_000;
        assert_eq!(ratio.counted_from(), None);
        assert_eq!(ratio.read_from(now), ratio.window_start(now));
        // A rule whose rows are written for every project reads its whole window.
        let errors = rule(json!({
            "name": "errors", "metric": {"type": "error_rate"},
            "filter": {"dimension": "source", "value": "news"},
            "comparator": ">", "threshold": 0.05, "window_minutes": 5,
        }));
        assert_eq!(errors.counted_from(), None);
        assert_eq!(errors.read_from(now), errors.window_start(now));
    }

    #[test]
    fn part_of_a_window_decides_only_what_the_missing_minutes_cannot_undo() {
        let count = |comparator: &str| {
            rule(json!({
                "name": "installs", "metric": {"type": "count", "name": "install"},
                "comparator": comparator, "threshold": 10, "window_minutes": 60,
            }))
        };
        let seen = |n: u64| Observation {
            value: Some(n as f64),
            volume: n,
        };
        let ok = at(State::Ok, None);
        let firing = at(State::Firing, Some(NOW - 3_600_000));
        // More than ten already: more minutes only add to it.
        assert_eq!(
            step_on_part(&count(">"), &ok, seen(11), NOW),
            Transition::Fire
        );
        assert_eq!(
            step_on_part(&count(">="), &ok, seen(10), NOW),
            Transition::Fire
        );
        // Three so far may be thirty over the whole hour: neither fire nor resolve.
        assert_eq!(
            step_on_part(&count("<"), &ok, seen(3), NOW),
            Transition::Stay
        );
        assert_eq!(step(&count("<"), &ok, seen(3), NOW), Transition::Fire);
        assert_eq!(
            step_on_part(&count(">"), &firing, seen(3), NOW),
            Transition::Stay
        );
        // Eleven so far is past a `< 10`: resolved whatever the missing minutes held.
        assert_eq!(
            step_on_part(&count("<"), &firing, seen(11), NOW),
            Transition::Resolve
        );
        // A ratio over part of its window says nothing of the whole.
        let ctr = ctr_rule();
        let low = Observation {
            value: Some(0.0),
            volume: 500,
        };
        assert_eq!(step(&ctr, &ok, low, NOW), Transition::Fire);
        assert_eq!(step_on_part(&ctr, &ok, low, NOW), Transition::Stay);
        let high = Observation {
            value: Some(0.5),
            volume: 500,
        };
        assert_eq!(step(&ctr, &firing, high, NOW), Transition::Resolve);
        assert_eq!(step_on_part(&ctr, &firing, high, NOW), Transition::Stay);
    }

    #[test]
    fn too_little_volume_neither_fires_nor_resolves() {
        let rule = ctr_rule();
        let thin = Observation {
            value: Some(0.0),
            volume: 99,
        };
        assert_eq!(rule.breached(thin), None);
        assert_eq!(
            step(&rule, &at(State::Ok, None), thin, NOW),
            Transition::Stay
        );
        assert_eq!(
            step(&rule, &at(State::Firing, Some(NOW)), thin, NOW),
            Transition::Stay
        );
        let enough = Observation {
            value: Some(0.0),
            volume: 100,
        };
        assert_eq!(
            step(&rule, &at(State::Ok, None), enough, NOW),
            Transition::Fire
        );
        // No denominator at all: nothing to measure.
        let none = rule.observe(&BTreeMap::new());
        assert_eq!(
            none,
            Observation {
                value: None,
                volume: 0
            }
        );
        assert_eq!(rule.breached(none), None);
    }

    #[test]
    fn error_rate_and_thresholds_compare_as_written() {
        let mut rule = rule(json!({
            "name": "errors", "metric": {"type": "error_rate"},
            "filter": {"dimension": "route", "value": "/api/pay"},
            "comparator": ">", "threshold": 0.05, "window_minutes": 5, "min_volume": 20,
        }));
        assert_eq!(
            rule.sources(),
            vec![(Dimension::Route, "/api/pay".to_owned())]
        );
        let observe = |rule: &Rule, count, errors| {
            rule.observe(&rows(&[(
                (Dimension::Route, "/api/pay"),
                counts(count, errors),
            )]))
        };
        assert_eq!(rule.breached(observe(&rule, 100, 5)), Some(false));
        assert_eq!(rule.breached(observe(&rule, 100, 6)), Some(true));
        rule.comparator = Comparator::AtLeast;
        assert_eq!(rule.breached(observe(&rule, 100, 5)), Some(true));
        // One error in two events is not a 50% error rate.
        assert_eq!(rule.breached(observe(&rule, 2, 1)), None);
        rule.comparator = Comparator::AtMost;
        assert_eq!(rule.breached(observe(&rule, 100, 5)), Some(true));
        rule.comparator = Comparator::Below;
        assert_eq!(rule.breached(observe(&rule, 100, 5)), Some(false));
    }

    #[test]
    fn latency_percentiles_come_from_the_merged_sketch() {
        let rule = rule(json!({
            "name": "slow", "metric": {"type": "p95"}, "comparator": ">",
            "threshold": 500, "window_minutes": 10, "min_volume": 10,
        }));
        let mut row = counts(100, 0);
        row.durations = Sketch::default();
        for d in 1..=100 {
            row.durations.insert(f64::from(d) * 10.0);
        }
        let observed = rule.observe(&rows(&[((Dimension::All, ""), row)]));
        let p95 = observed.value.unwrap();
        assert!((p95 - 950.0).abs() / 950.0 < 0.01, "{p95}");
        assert_eq!(observed.volume, 100);
        assert_eq!(
            step(&rule, &Status::default(), observed, NOW),
            Transition::Fire
        );
    }

    #[test]
    fn counts_have_no_minimum_volume() {
        let rule = rule(json!({
            "name": "silence", "metric": {"type": "count", "name": "heartbeat"},
            "comparator": "<", "threshold": 1, "window_minutes": 30, "min_volume": 50,
        }));
        assert_eq!(
            rule.sources(),
            vec![(Dimension::Name, "heartbeat".to_owned())]
        );
        let nothing = rule.observe(&BTreeMap::new());
        assert_eq!(nothing.value, Some(0.0));
        assert_eq!(rule.breached(nothing), Some(true));
    }

    #[test]
    fn cooldown_stops_a_second_firing_and_resolve_follows_recovery() {
        let rule = ctr_rule(); // 30 minute cooldown
        let bad = Observation {
            value: Some(0.002),
            volume: 500,
        };
        let good = Observation {
            value: Some(0.03),
            volume: 500,
        };
        assert_eq!(step(&rule, &Status::default(), bad, NOW), Transition::Fire);
        // Still breached while firing: nothing new.
        assert_eq!(
            step(&rule, &at(State::Firing, Some(NOW)), bad, NOW + 60_000),
            Transition::Stay
        );
        assert_eq!(
            step(&rule, &at(State::Firing, Some(NOW)), good, NOW + 120_000),
            Transition::Resolve
        );
        // Breached again 10 minutes after firing: within the cooldown.
        let ten = NOW + 10 * MINUTE_MS;
        assert_eq!(
            step(&rule, &at(State::Ok, Some(NOW)), bad, ten),
            Transition::Suppressed
        );
        let thirty = NOW + 30 * MINUTE_MS;
        assert_eq!(
            step(&rule, &at(State::Ok, Some(NOW)), bad, thirty),
            Transition::Fire
        );
        assert_eq!(
            step(&rule, &at(State::Ok, Some(NOW)), good, ten),
            Transition::Stay
        );
    }

    #[test]
    fn the_window_ends_with_the_current_minute() {
        let rule = ctr_rule();
        let now = NOW + 42_000;
        assert_eq!(rule.window_start(now), NOW - 14 * MINUTE_MS);
    }

    #[test]
    fn bad_rules_are_refused_with_the_reason() {
        let base = json!({
            "name": "r", "metric": {"type": "error_rate"}, "comparator": ">",
            "threshold": 0.1, "window_minutes": 5,
        });
        let cases = [
            (
                json!({"window_minutes": 4}),
                "window_minutes must be 5 to 1440",
            ),
            (
                json!({"window_minutes": 1441}),
                "window_minutes must be 5 to 1440",
            ),
            (json!({"comparator": "=="}), "comparator"),
            (json!({"metric": {"type": "median"}}), "metric type"),
            (
                json!({"metric": {"type": "ratio", "numerator": "a", "denominator": "a"}}),
                "two different",
            ),
            (
                json!({"metric": {"type": "ratio", "numerator": "a"}}),
                "needs \"denominator\"",
            ),
            (
                json!({"metric": {"type": "p95", "name": "x"}}),
                "takes no \"name\"",
            ),
            (
                json!({"filter": {"dimension": "country", "value": "DE"}}),
                "route, campaign",
            ),
            (json!({"pause_campaign": true}), "filter's campaign"),
            (json!({"webhook": {"url": "ftp://x"}}), "http or https"),
            (
                json!({"webhook": {"url": "http://hooks.example/tally"}}),
                "plain http",
            ),
            (
                json!({"webhook": {"url": "https://evil.example\\@hooks.example/"}}),
                "backslash",
            ),
            (json!({"webhook": {"url": "not a url"}}), "is not a URL"),
            (json!({"cooldown_minutes": 20_000}), "cooldown_minutes"),
            (json!({"name": " "}), "name must be"),
            (json!({"rotate_secret": true}), "rotate_secret"),
            (
                json!({"webhook": {"url": "https://x.example", "secret": "short"}}),
                "16 to 200",
            ),
        ];
        for (patch, message) in cases {
            let mut body = base.clone();
            for (k, v) in patch.as_object().unwrap() {
                body[k] = v.clone();
            }
            let error = parse_input(body.to_string().as_bytes())
                .and_then(|input| input.create("p", &fresh(), NOW))
                .unwrap_err();
            let Error::Invalid {
                code, field: None, ..
            } = &error
            else {
                panic!("{patch}: {error:?}");
            };
            assert_eq!(*code, "invalid_rule");
            assert!(error.to_string().contains(message), "{patch}: {error}");
        }
        let missing = parse_input(br#"{"name": "x"}"#)
            .unwrap()
            .create("p", &fresh(), NOW)
            .unwrap_err();
        assert!(missing.to_string().contains("\"metric\""), "{missing}");
        assert!(parse_input(br#"{"nope": 1}"#).is_err());
        let array = parse_input(b"[null]").unwrap_err();
        assert!(
            array.to_string().contains("expected a JSON object"),
            "{array}"
        );
    }

    #[test]
    fn a_filter_takes_every_value_its_dimension_can_hold_and_no_longer() {
        use crate::validate::{MAX_DIMENSION_CHARS, MAX_ROUTE_CHARS};
        let rule = |dimension: &str, value: String| {
            let body = json!({
                "name": "r", "metric": {"type": "error_rate"}, "comparator": ">",
                "threshold": 0.1, "window_minutes": 5,
                "filter": {"dimension": dimension, "value": value},
            });
            parse_input(body.to_string().as_bytes()).and_then(|i| i.create("p", &fresh(), NOW))
        };
        // Ingest keeps routes of up to 512 characters and the other dimensions' values of
        // up to 256, however many bytes they take: a rule can name each of them.
        let longest_route = format!("/{}", "é".repeat(MAX_ROUTE_CHARS - 1));
        let kept = rule("route", longest_route.clone()).unwrap();
        assert_eq!(kept.filter.unwrap().value, longest_route);
        let longest_campaign = "春".repeat(MAX_DIMENSION_CHARS);
        assert!(rule("campaign", longest_campaign).is_ok());
        for (dimension, value) in [
            ("route", format!("/{}", "a".repeat(MAX_ROUTE_CHARS))),
            ("source", "s".repeat(MAX_DIMENSION_CHARS + 1)),
            ("medium", String::new()),
        ] {
            let error = rule(dimension, value).unwrap_err().to_string();
            assert!(error.contains("filter value"), "{dimension}: {error}");
        }
    }

    #[test]
    fn campaign_statuses_read_back() {
        for status in [CampaignStatus::Active, CampaignStatus::Paused] {
            assert_eq!(CampaignStatus::parse(status.name()), Some(status));
        }
        assert_eq!(CampaignStatus::of(true), CampaignStatus::Paused);
        assert_eq!(CampaignStatus::of(false), CampaignStatus::default());
        assert_eq!(CampaignStatus::parse("stopped"), None);
    }

    #[test]
    fn a_stored_rule_reads_back_equal_and_changes_keep_the_secret() {
        let rule = ctr_rule();
        let secret = rule.webhook.as_ref().unwrap().secret.clone();
        assert_eq!(secret, format!("whsec_{}", "09".repeat(SECRET_BYTES)));
        assert!(!rule.definition().contains(&secret));
        let stored = StoredRule {
            id: rule.id.clone(),
            project: rule.project.clone(),
            definition: rule.definition(),
            secret: Some(secret.clone()),
            enabled: rule.enabled,
            created_at: rule.created_at,
            updated_at: rule.updated_at,
        };
        let back = Rule::from_stored(stored).unwrap();
        assert_eq!(back, rule);

        let mut changed = back.clone();
        parse_input(br#"{"threshold": 0.02, "webhook": {"url": "https://other.example/h"}}"#)
            .unwrap()
            .apply(&mut changed, None)
            .unwrap();
        assert_eq!(changed.threshold, 0.02);
        assert_eq!(changed.webhook.as_ref().unwrap().secret, secret);
        assert_eq!(
            changed.webhook.as_ref().unwrap().url,
            "https://other.example/h"
        );
        parse_input(br#"{"webhook": null, "pause_campaign": false}"#)
            .unwrap()
            .apply(&mut changed, None)
            .unwrap();
        assert_eq!(
            (changed.webhook.clone(), changed.pause_campaign.clone()),
            (None, None)
        );
        // A rotation keeps the URL and replaces the secret; a receiver may bring its own.
        let mut rotated = rule.clone();
        let input = parse_input(br#"{"rotate_secret": true}"#).unwrap();
        assert!(input.rotates_secret());
        input.apply(&mut rotated, Some("whsec_new")).unwrap();
        assert_eq!(rotated.webhook.as_ref().unwrap().secret, "whsec_new");
        assert_eq!(
            rotated.webhook.as_ref().unwrap().url,
            "https://hooks.example/tally"
        );
        parse_input(br#"{"webhook": {"url": "https://h.example", "secret": "0123456789abcdef"}}"#)
            .unwrap()
            .apply(&mut rotated, None)
            .unwrap();
        assert_eq!(rotated.webhook.as_ref().unwrap().secret, "0123456789abcdef");
        let shown = rule.to_json(false);
        assert!(shown["webhook"].get("secret").is_none());
        assert_eq!(rule.to_json(true)["webhook"]["secret"], json!(secret));
    }

    #[test]
    fn signatures_verify_and_detect_tampering_wrong_secrets_and_replays() {
        let rule = ctr_rule();
        let alert = Alert::new(
            &rule,
            Transition::Fire,
            Observation {
                value: Some(0.0025),
                volume: 1200,
            },
            NOW,
        );
        let body = alert.payload(&rule);
        let payload: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(payload["type"], "alert.fired");
        assert_eq!(payload["campaign_paused"], "spring");
        assert_eq!(payload["rule"]["threshold"], 0.01);
        let secret = &rule.webhook.as_ref().unwrap().secret;
        let t = NOW / 1000;
        let header = sign(secret, t, &body);
        assert_eq!(verify_signature(secret, &header, &body, t + 10), Ok(()));
        assert_eq!(
            verify_signature("whsec_wrong", &header, &body, t),
            Err(BadSignature::Mismatch)
        );
        let tampered = body.replace("0.0025", "0.5");
        assert_eq!(
            verify_signature(secret, &header, &tampered, t),
            Err(BadSignature::Mismatch)
        );
        // Moving the timestamp breaks the signature, which covers it.
        let moved = header.replace(&format!("t={t}"), &format!("t={}", t + 1000));
        assert_eq!(
            verify_signature(secret, &moved, &body, t + 1000),
            Err(BadSignature::Mismatch)
        );
        assert_eq!(
            verify_signature(secret, &header, &body, t + SIGNATURE_TOLERANCE_S + 1),
            Err(BadSignature::Stale)
        );
        assert_eq!(
            verify_signature(secret, "v1=abc", &body, t),
            Err(BadSignature::Malformed)
        );
    }

    #[test]
    fn retries_back_off_to_ten_minutes() {
        let delays: Vec<u32> = (1..=9).map(retry_delay_s).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 600, 600, 600]);
    }

    #[test]
    fn a_webhook_shows_only_its_scheme_host_and_port() {
        for (url, shown) in [
            (
                "https://user:pass@hooks.example/secret/path?token=1",
                "https://hooks.example",
            ),
            ("https://hooks.example:8443/x", "https://hooks.example:8443"),
            ("http://127.0.0.1:9/hook", "http://127.0.0.1:9"),
            (
                "https://evil.example\\@good.example/",
                "https://evil.example",
            ),
            ("not a url", "(hidden)"),
        ] {
            assert_eq!(webhook_origin(url), shown, "{url}");
        }
    }

    #[test]
    fn webhooks_go_over_https_or_to_loopback() {
        for (url, ok) in [
            ("https://hooks.example/x", true),
            ("http://127.0.0.1:9/hook", true),
            ("http://127.3.4.5/hook", true),
            ("http://localhost:8080/", true),
            ("http://[::1]:9/", true),
            ("http://hooks.example/x", false),
            ("http://10.0.0.1/x", false),
            ("ftp://127.0.0.1/", false),
        ] {
            assert_eq!(deliverable(&url::Url::parse(url).unwrap()), ok, "{url}");
        }
    }
}
