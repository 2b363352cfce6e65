//! Rollup math: which rollup rows an event feeds, and the mergeable row itself.
//!
//! A rollup row is keyed by (project, period start, dimension, value) and holds exact
//! counts plus a quantile sketch of durations and HyperLogLogs of users and instances.
//! Rows merge exactly, so a day is the merge of its hours and any range is the merge of
//! its rows; and because every summary's encoding is canonical, rolling a period from
//! raw events or from smaller periods gives identical bytes.

use std::collections::BTreeMap;

use crate::event::Event;
use crate::hll::{Hll, hash_of_hex_id};
pub use crate::revenue::{revenue_parts, revenue_value};
use crate::sketch::Sketch;
use crate::time::Interval;

/// A dimension events are broken down by (DESIGN §5).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Dimension {
    /// Every event of the project; the value is empty.
    All,
    Name,
    Route,
    /// The status class: `2xx`, `4xx`, `5xx`, ...
    Status,
    ErrorClass,
    Version,
    Colo,
    Country,
    Source,
    Medium,
    Campaign,
    /// The paid search term or ad keyword (`utm_term`).
    Term,
    /// Which link or ad of a campaign (`utm_content`).
    Content,
    Item,
    Variant,
    /// An item and one of its variants, as a [`pair`] value: the variants of one item.
    ItemVariant,
    /// An item and a country it was served to, as a [`pair`] value.
    ItemCountry,
    /// Errors by class and route together, for the routes each error class happened
    /// on: the value is [`error_route_value`] of the two. Only events with an error
    /// class have one.
    ErrorRoute,
    /// An event name and a route, as a [`pair`] value. This and the three below exist
    /// only in minute rows ([`Dimension::MINUTE`]): alert rules count one event name
    /// within a route, campaign, source or medium.
    NameRoute,
    NameCampaign,
    NameSource,
    NameMedium,
    /// Revenue by currency and event name: the value is [`revenue_value`] of the two.
    /// This and the two below exist only for events that carry revenue
    /// ([`crate::revenue::of`]), and are the only rows whose [`Rollup::revenue`] is
    /// summed, so one row never adds two currencies together.
    RevenueName,
    /// Revenue by currency and source (`null` for events without one).
    RevenueSource,
    /// Revenue by currency and campaign (`null` for events without one).
    RevenueCampaign,
}

impl Dimension {
    /// Every dimension, in a fixed order.
    pub const ALL: [Dimension; 21] = {
        // `all`, the dimensions of one field, then the cross dimensions.
        let mut every = [Self::All; 21];
        let mut i = 0;
        while i < Self::OF_ONE_FIELD.len() {
            every[i + 1] = Self::OF_ONE_FIELD[i];
            i += 1;
        }
        every[15] = Self::ItemVariant;
        every[16] = Self::ItemCountry;
        every[17] = Self::ErrorRoute;
        let mut i = 0;
        while i < Self::REVENUE.len() {
            every[18 + i] = Self::REVENUE[i];
            i += 1;
        }
        every
    };

    /// The revenue dimensions, in the order the dashboard shows them: what
    /// `GET /v1/projects/{p}/revenue?by=` reads.
    pub const REVENUE: [Dimension; 3] = [
        Self::RevenueName,
        Self::RevenueSource,
        Self::RevenueCampaign,
    ];

    /// The dimensions whose value is one field of an event (no cross dimensions, not
    /// `all`): what a breakdown, a filter and the dashboard's tables are by.
    pub const OF_ONE_FIELD: [Dimension; 14] = [
        Self::Name,
        Self::Route,
        Self::Status,
        Self::ErrorClass,
        Self::Version,
        Self::Colo,
        Self::Country,
        Self::Source,
        Self::Medium,
        Self::Campaign,
        Self::Term,
        Self::Content,
        Self::Item,
        Self::Variant,
    ];

    /// The dimensions of minute rows ([`Period::Minute`]): what alert rules read. Users
    /// and instances are not kept in them.
    pub const MINUTE: [Dimension; 10] = [
        Self::All,
        Self::Name,
        Self::Route,
        Self::Campaign,
        Self::Source,
        Self::Medium,
        Self::NameRoute,
        Self::NameCampaign,
        Self::NameSource,
        Self::NameMedium,
    ];

    /// The dimension's name in the API and in the `rollups` table.
    pub const fn name(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Name => "name",
            Self::Route => "route",
            Self::Status => "status",
            Self::ErrorClass => "error_class",
            Self::Version => "version",
            Self::Colo => "colo",
            Self::Country => "country",
            Self::Source => "source",
            Self::Medium => "medium",
            Self::Campaign => "campaign",
            Self::Term => "term",
            Self::Content => "content",
            Self::Item => "item",
            Self::Variant => "variant",
            Self::ItemVariant => "item_variant",
            Self::ItemCountry => "item_country",
            Self::ErrorRoute => "error_route",
            Self::NameRoute => "name_route",
            Self::NameCampaign => "name_campaign",
            Self::NameSource => "name_source",
            Self::NameMedium => "name_medium",
            Self::RevenueName => "revenue_name",
            Self::RevenueSource => "revenue_source",
            Self::RevenueCampaign => "revenue_campaign",
        }
    }

    /// The dimension with this name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .chain(Self::MINUTE)
            .find(|d| d.name() == name)
    }

    /// The event's value in this dimension, if it has one.
    pub fn value_of(self, event: &Event) -> Option<String> {
        let text = |v: &Option<String>| v.clone();
        match self {
            Self::All => Some(String::new()),
            Self::Name => Some(event.name.clone()),
            Self::Route => text(&event.route),
            Self::Status => event.status.map(|s| format!("{}xx", s / 100)),
            Self::ErrorClass => text(&event.error_class),
            Self::Version => text(&event.version),
            Self::Colo => text(&event.colo),
            Self::Country => text(&event.country),
            Self::Source => text(&event.source),
            Self::Medium => text(&event.medium),
            Self::Campaign => text(&event.campaign),
            Self::Term => text(&event.term),
            Self::Content => text(&event.content),
            Self::Item => text(&event.item),
            Self::Variant => text(&event.variant),
            Self::ItemVariant => Some(pair(event.item.as_deref()?, event.variant.as_deref()?)),
            Self::ItemCountry => Some(pair(event.item.as_deref()?, event.country.as_deref()?)),
            Self::ErrorRoute => event
                .error_class
                .as_deref()
                .map(|class| error_route_value(class, event.route.as_deref())),
            Self::NameRoute => Some(pair(&event.name, event.route.as_deref()?)),
            Self::NameCampaign => Some(pair(&event.name, event.campaign.as_deref()?)),
            Self::NameSource => Some(pair(&event.name, event.source.as_deref()?)),
            Self::NameMedium => Some(pair(&event.name, event.medium.as_deref()?)),
            Self::RevenueName | Self::RevenueSource | Self::RevenueCampaign => {
                let revenue = crate::revenue::of(event.metadata.as_ref())?;
                let second = match self {
                    Self::RevenueName => Some(event.name.as_str()),
                    Self::RevenueSource => event.source.as_deref(),
                    _ => event.campaign.as_deref(),
                };
                Some(revenue_value(&revenue.currency, second))
            }
        }
    }

    /// Whether rows of this dimension sum revenue ([`Dimension::REVENUE`]).
    pub const fn is_revenue(self) -> bool {
        matches!(
            self,
            Self::RevenueName | Self::RevenueSource | Self::RevenueCampaign
        )
    }

    /// The value a row of `value` folds into past the bound: [`FOLDED_VALUE`], but for a
    /// revenue dimension its currency's own folded value ([`revenue_value`] of the
    /// currency and `""`, which no event has: validation drops empty values), so a
    /// folded row never adds two currencies together.
    pub fn folded_value(self, value: &str) -> String {
        match self.is_revenue().then(|| revenue_parts(value)).flatten() {
            Some((currency, _)) => revenue_value(&currency, Some("")),
            None => FOLDED_VALUE.to_owned(),
        }
    }

    /// Whether `value` is a folded value of this dimension ([`Dimension::folded_value`]).
    pub fn is_folded(self, value: &str) -> bool {
        value == FOLDED_VALUE
            || (self.is_revenue()
                && revenue_parts(value).is_some_and(|(_, second)| second.as_deref() == Some("")))
    }
}

/// The value of a cross dimension: both values as a compact JSON array,
/// `["img-1","w1024"]`. It is unambiguous whatever characters the values hold, and the
/// rows of one first value share the prefix [`pair_prefix`] returns.
pub fn pair(first: &str, second: &str) -> String {
    format!("{}{}]", pair_prefix(first), quoted(second))
}

/// The text every [`pair`] value with this first value starts with, and no other.
pub fn pair_prefix(first: &str) -> String {
    format!("[{},", quoted(first))
}

/// The second value of a [`pair`] value, if it is one.
pub fn pair_second(value: &str) -> Option<String> {
    serde_json::from_str::<(String, String)>(value)
        .ok()
        .map(|(_, second)| second)
}

fn quoted(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// The [`Dimension::ErrorRoute`] value of an error class and a route: the JSON array
/// `[class, route]` (`route` null when the event has none). JSON, not a separator
/// character, because classes and routes may hold any character.
pub fn error_route_value(class: &str, route: Option<&str>) -> String {
    serde_json::json!([class, route]).to_string()
}

/// The error class and route of a [`Dimension::ErrorRoute`] value, if it is one.
pub fn parse_error_route(value: &str) -> Option<(String, Option<String>)> {
    serde_json::from_str(value).ok()
}

/// The period a rollup row covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Period {
    /// Minute rows, kept about a day, for alert rules ([`Dimension::MINUTE`]).
    Minute,
    Hour,
    Day,
    Month,
}

impl Period {
    /// The period's name in the `rollups` table.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Month => "month",
        }
    }

    /// The period with this name.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Minute, Self::Hour, Self::Day, Self::Month]
            .into_iter()
            .find(|p| p.name() == name)
    }

    /// The time buckets of this period.
    pub const fn interval(self) -> Interval {
        match self {
            Self::Minute => Interval::Minute,
            Self::Hour => Interval::Hour,
            Self::Day => Interval::Day,
            Self::Month => Interval::Month,
        }
    }

    /// The period this one is rolled from: days from hours, months from days.
    pub const fn source(self) -> Option<Period> {
        match self {
            Self::Minute | Self::Hour => None,
            Self::Day => Some(Self::Hour),
            Self::Month => Some(Self::Day),
        }
    }
}

/// The value under which a dimension's values past its bound are counted together.
/// Validation turns an empty dimension value into none, and cross-dimension values are
/// JSON arrays, so no real value of a bounded dimension is empty.
pub const FOLDED_VALUE: &str = "";

/// How answers name a [`FOLDED_VALUE`] row: as Google Analytics names its row of values
/// past a table's bound. A real value spelled the same is counted with it.
pub const FOLDED_LABEL: &str = "(other)";

/// The value a row of `dimension` is shown under: [`FOLDED_LABEL`] for the folded row of
/// a bounded dimension, the value itself otherwise.
pub fn shown_value(dimension: Dimension, value: &str) -> &str {
    if dimension.is_bounded() && value == FOLDED_VALUE {
        FOLDED_LABEL
    } else {
        value
    }
}

impl Period {
    /// How many distinct values of one dimension a project keeps in one row each per
    /// period; the rest are counted in one [`FOLDED_VALUE`] row, so counts stay exact
    /// while one request with a thousand unique routes, items and campaigns cannot add
    /// tens of thousands of rows (README: "Limits"). Hours and minutes keep the values
    /// that came first; days and months, rolled from them, keep those with most events.
    pub const fn max_values(self) -> usize {
        match self {
            Self::Minute => 100,
            Self::Hour => 1_000,
            Self::Day | Self::Month => 5_000,
        }
    }
}

impl Dimension {
    /// Whether the dimension's values are bounded per period: all but [`Dimension::All`],
    /// whose one value is empty.
    pub const fn is_bounded(self) -> bool {
        !matches!(self, Self::All)
    }
}

/// A project's values of one dimension in one period: what [`Period::max_values`]
/// bounds.
pub type ValueGroup = (String, i64, Dimension);

/// The group of a key.
pub fn group_of(key: &Key) -> ValueGroup {
    (key.project.clone(), key.start, key.dimension)
}

/// Bounds the rows a batch adds: of the keys that are not `stored` yet, each group
/// keeps as many as `stored_values` (values already stored in the group, the folded one
/// not counted) leaves room for under `max`, those with most events first (ties by
/// value); the deltas of the rest merge into the group's [`FOLDED_VALUE`] key.
pub fn bound_new_values(
    deltas: BTreeMap<Key, Rollup>,
    stored: impl Fn(&Key) -> bool,
    stored_values: &BTreeMap<ValueGroup, usize>,
    max: usize,
) -> BTreeMap<Key, Rollup> {
    let mut kept = BTreeMap::new();
    let mut new: BTreeMap<ValueGroup, Vec<(Key, Rollup)>> = BTreeMap::new();
    for (key, delta) in deltas {
        if !key.dimension.is_bounded() || key.dimension.is_folded(&key.value) || stored(&key) {
            kept.insert(key, delta);
        } else {
            new.entry(group_of(&key)).or_default().push((key, delta));
        }
    }
    for (group, mut rows) in new {
        let room = max.saturating_sub(stored_values.get(&group).copied().unwrap_or(0));
        fold_past(&mut kept, group, &mut rows, room);
    }
    kept
}

/// Moves minute rows of values that their hour folded into their minute's folded row,
/// so a value past the hour's bound gets no minute rows of its own either: `folded_in_hour`
/// says whether a key of [`Period::Hour`] was folded. A cross dimension of minute rows
/// folds when either of its values did (`name_route` when the name or the route did).
pub fn fold_minutes_past_hour(
    minutes: BTreeMap<Key, Rollup>,
    folded_in_hour: impl Fn(&Key) -> bool,
) -> BTreeMap<Key, Rollup> {
    let mut out: BTreeMap<Key, Rollup> = BTreeMap::new();
    for (key, row) in minutes {
        let hour = |dimension: Dimension, value: String| Key {
            project: key.project.clone(),
            start: Interval::Hour.floor(key.start),
            dimension,
            value,
        };
        let parts: Vec<Key> = match key.dimension {
            Dimension::NameRoute
            | Dimension::NameCampaign
            | Dimension::NameSource
            | Dimension::NameMedium => {
                let second = match key.dimension {
                    Dimension::NameRoute => Dimension::Route,
                    Dimension::NameCampaign => Dimension::Campaign,
                    Dimension::NameSource => Dimension::Source,
                    _ => Dimension::Medium,
                };
                serde_json::from_str::<(String, String)>(&key.value)
                    .map(|(name, value)| vec![hour(Dimension::Name, name), hour(second, value)])
                    .unwrap_or_default()
            }
            dimension if dimension.is_bounded() => vec![hour(dimension, key.value.clone())],
            _ => Vec::new(),
        };
        let key = if parts.iter().any(&folded_in_hour) {
            Key {
                value: FOLDED_VALUE.to_owned(),
                ..key
            }
        } else {
            key
        };
        out.entry(key).or_default().merge(&row);
    }
    out
}

/// Bounds whole periods (a rolled day or month): each group keeps its `max` values with
/// most events (ties by value), and the rest, with any folded row, merge into its
/// [`FOLDED_VALUE`] row.
pub fn bound_values(rows: BTreeMap<Key, Rollup>, max: usize) -> BTreeMap<Key, Rollup> {
    let mut kept = BTreeMap::new();
    let mut groups: BTreeMap<ValueGroup, Vec<(Key, Rollup)>> = BTreeMap::new();
    for (key, row) in rows {
        if key.dimension.is_bounded() {
            groups.entry(group_of(&key)).or_default().push((key, row));
        } else {
            kept.insert(key, row);
        }
    }
    for (group, mut rows) in groups {
        fold_past(&mut kept, group, &mut rows, max);
    }
    kept
}

/// Moves the `room` rows of `rows` with most events into `kept` and merges the rest
/// (folded rows among them included) into the group's folded row there (for a revenue
/// dimension, its currency's: [`Dimension::folded_value`]).
fn fold_past(
    kept: &mut BTreeMap<Key, Rollup>,
    (project, start, dimension): ValueGroup,
    rows: &mut Vec<(Key, Rollup)>,
    room: usize,
) {
    let mut folded: BTreeMap<String, Rollup> = BTreeMap::new();
    rows.retain(|(key, row)| {
        let is_folded = dimension.is_folded(&key.value);
        if is_folded {
            folded.entry(key.value.clone()).or_default().merge(row);
        }
        !is_folded
    });
    rows.sort_unstable_by(|(ka, a), (kb, b)| b.count.cmp(&a.count).then_with(|| ka.cmp(kb)));
    for (i, (key, row)) in rows.drain(..).enumerate() {
        if i < room {
            kept.insert(key, row);
        } else {
            let into = dimension.folded_value(&key.value);
            folded.entry(into).or_default().merge(&row);
        }
    }
    for (value, row) in folded {
        let key = Key {
            project: project.clone(),
            start,
            dimension,
            value,
        };
        kept.entry(key).or_default().merge(&row);
    }
}

/// The largest integer a rollup row stores: 2^53 − 1. D1 binds numbers as f64 and
/// refuses to decode an integer past it, so every stored sum saturates here (for bytes,
/// about 9 PB in one row) instead of making the row unreadable.
pub const MAX_STORED_INTEGER: u64 = (1 << 53) - 1;

/// `a + b`, saturating at [`MAX_STORED_INTEGER`].
pub fn stored_sum(a: u64, b: u64) -> u64 {
    a.saturating_add(b).min(MAX_STORED_INTEGER)
}

/// The key of one rollup row.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub project: String,
    /// Start of the period, epoch milliseconds.
    pub start: i64,
    pub dimension: Dimension,
    pub value: String,
}

/// One rollup row's measures. Every field merges exactly.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rollup {
    /// Counts and sums saturate at [`MAX_STORED_INTEGER`].
    pub count: u64,
    pub errors: u64,
    pub bytes: u64,
    /// Durations in milliseconds; its count is the number of events with a duration.
    pub durations: Sketch,
    /// Distinct hashed users.
    pub users: Hll,
    /// Distinct hashed instances.
    pub instances: Hll,
    /// Revenue in thousandths of the currency of the row's value: summed only in rows of
    /// the revenue dimensions ([`Dimension::is_revenue`]), 0 in every other row.
    pub revenue: u64,
}

impl Rollup {
    /// Adds one event to a row of `dimension`.
    pub fn add(&mut self, dimension: Dimension, event: &Event) {
        if dimension.is_revenue()
            && let Some(revenue) = crate::revenue::of(event.metadata.as_ref())
        {
            self.revenue = stored_sum(self.revenue, revenue.thousandths);
        }
        self.count = stored_sum(self.count, 1);
        self.errors = stored_sum(self.errors, u64::from(event.is_error()));
        self.bytes = stored_sum(self.bytes, event.bytes.unwrap_or(0));
        if let Some(d) = event.duration_ms {
            self.durations.insert(d);
        }
        if let Some(h) = event.user.as_deref().and_then(hash_of_hex_id) {
            self.users.insert_hash(h);
        }
        if let Some(h) = event.instance.as_deref().and_then(hash_of_hex_id) {
            self.instances.insert_hash(h);
        }
    }

    /// Merges another row of the same key (or of sub-periods of it) into this one.
    pub fn merge(&mut self, other: &Rollup) {
        self.count = stored_sum(self.count, other.count);
        self.errors = stored_sum(self.errors, other.errors);
        self.bytes = stored_sum(self.bytes, other.bytes);
        self.revenue = stored_sum(self.revenue, other.revenue);
        self.durations.merge(&other.durations);
        self.users.merge(&other.users);
        self.instances.merge(&other.instances);
    }
}

/// Rolls events up into rows of `interval` periods, one row per dimension value.
pub fn roll<'a>(
    events: impl IntoIterator<Item = &'a Event>,
    interval: Interval,
) -> BTreeMap<Key, Rollup> {
    roll_by(events, interval, &Dimension::ALL)
}

/// Rolls events up into minute rows ([`Period::Minute`]): the [`Dimension::MINUTE`]
/// dimensions, without users and instances.
pub fn roll_minutes<'a>(events: impl IntoIterator<Item = &'a Event>) -> BTreeMap<Key, Rollup> {
    let mut rows = roll_by(events, Interval::Minute, &Dimension::MINUTE);
    for row in rows.values_mut() {
        row.users = Hll::default();
        row.instances = Hll::default();
    }
    rows
}

fn roll_by<'a>(
    events: impl IntoIterator<Item = &'a Event>,
    interval: Interval,
    dimensions: &[Dimension],
) -> BTreeMap<Key, Rollup> {
    let mut rows: BTreeMap<Key, Rollup> = BTreeMap::new();
    for event in events {
        let start = interval.floor(event.timestamp);
        for &dimension in dimensions {
            if let Some(value) = dimension.value_of(event) {
                let key = Key {
                    project: event.project.clone(),
                    start,
                    dimension,
                    value,
                };
                rows.entry(key).or_default().add(dimension, event);
            }
        }
    }
    rows
}

/// Re-keys rows to the `interval` periods containing them and merges them: hours into
/// days, days into months.
pub fn coarsen<'a>(
    rows: impl IntoIterator<Item = (&'a Key, &'a Rollup)>,
    interval: Interval,
) -> BTreeMap<Key, Rollup> {
    let mut out: BTreeMap<Key, Rollup> = BTreeMap::new();
    for (key, row) in rows {
        let coarse = Key {
            start: interval.floor(key.start),
            ..key.clone()
        };
        out.entry(coarse).or_default().merge(row);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{DAY_MS, HOUR_MS};
    use crate::{Context, RawEvent, Settings, validate};
    use serde_json::json;

    /// 2025-01-18T00:00:00Z.
    const DAY0: i64 = 1_737_158_400_000;

    fn event(i: u64, raw: serde_json::Value) -> Event {
        let mut raw = raw;
        raw["project"] = json!("demo");
        raw["event_id"] = json!(format!("00000000-0000-4000-8000-{i:012}"));
        let raw: RawEvent = serde_json::from_value(raw).unwrap();
        let ctx = Context {
            project: "demo",
            now_ms: DAY0 + 40 * DAY_MS,
            settings: Settings::default(),
            id_secret: b"s",
        };
        validate(raw, &ctx, &mut || unreachable!()).unwrap().event
    }

    /// A mixed workload over two days, deterministic in `i`.
    fn workload(n: u64) -> Vec<Event> {
        (0..n)
            .map(|i| {
                let name = ["request", "click", "serve"][(i % 3) as usize];
                let status = [200, 404, 503][(i % 7 % 3) as usize];
                let country = ["DE", "US"][(i % 2) as usize];
                event(
                    i,
                    json!({
                        "name": name,
                        "timestamp": DAY0 + ((i * 7919) % (2 * DAY_MS as u64 / 1000)) as i64 * 1000,
                        "route": format!("/r/{}", i % 5),
                        "status": status,
                        "duration_ms": (i % 997) as f64 * 0.731,
                        "user": format!("u{}", i % 37),
                        "instance": format!("site-{}", i % 11),
                        "bytes": i % 1000,
                        "country": country,
                    }),
                )
            })
            .collect()
    }

    #[test]
    fn dimension_values() {
        let e = event(
            1,
            json!({"name": "request", "status": 503, "route": "/a", "country": "de"}),
        );
        let got: Vec<(&str, String)> = Dimension::ALL
            .into_iter()
            .filter_map(|d| d.value_of(&e).map(|v| (d.name(), v)))
            .collect();
        assert_eq!(
            got,
            [
                ("all", String::new()),
                ("name", "request".into()),
                ("route", "/a".into()),
                ("status", "5xx".into()),
                ("country", "DE".into()),
            ]
        );
        for d in Dimension::ALL {
            assert_eq!(Dimension::parse(d.name()), Some(d));
        }
        let served = event(
            2,
            json!({"name": "serve", "item": "cat \"1\".jpg", "variant": "w1024", "country": "fr"}),
        );
        let pairs: Vec<(&str, String)> = [Dimension::ItemVariant, Dimension::ItemCountry]
            .into_iter()
            .filter_map(|d| d.value_of(&served).map(|v| (d.name(), v)))
            .collect();
        assert_eq!(
            pairs,
            [
                ("item_variant", r#"["cat \"1\".jpg","w1024"]"#.to_owned()),
                ("item_country", r#"["cat \"1\".jpg","FR"]"#.to_owned()),
            ]
        );
        assert_eq!(Dimension::ItemVariant.value_of(&e), None, "no item");
    }

    #[test]
    fn revenue_rows_exist_only_for_revenue_and_keep_currencies_apart() {
        let bought = |i: u64, currency: &str, amount: f64, extra: serde_json::Value| {
            let mut raw = json!({"name": "purchase", "timestamp": DAY0 + 1000,
                "metadata": {"revenue": {"currency": currency, "amount": amount}}});
            for (k, v) in extra.as_object().unwrap() {
                raw[k] = v.clone();
            }
            event(i, raw)
        };
        let events = [
            bought(
                1,
                "EUR",
                19.99,
                json!({"source": "google", "campaign": "spring"}),
            ),
            bought(2, "EUR", 0.01, json!({"source": "google", "term": "shoes"})),
            bought(3, "USD", 5.0, json!({"content": "banner"})),
            event(
                4,
                json!({"name": "purchase", "timestamp": DAY0 + 1000, "source": "google"}),
            ),
        ];
        let rows = roll(&events, Interval::Hour);
        let revenue = |d: Dimension| -> Vec<(String, u64, u64)> {
            rows.iter()
                .filter(|(k, _)| k.dimension == d)
                .map(|(k, r)| (k.value.clone(), r.count, r.revenue))
                .collect()
        };
        assert_eq!(
            revenue(Dimension::RevenueName),
            [
                (r#"["EUR","purchase"]"#.to_owned(), 2, 20_000),
                (r#"["USD","purchase"]"#.to_owned(), 1, 5_000),
            ]
        );
        assert_eq!(
            revenue(Dimension::RevenueSource),
            [
                (r#"["EUR","google"]"#.to_owned(), 2, 20_000),
                (r#"["USD",null]"#.to_owned(), 1, 5_000),
            ]
        );
        assert_eq!(
            revenue(Dimension::RevenueCampaign),
            [
                (r#"["EUR","spring"]"#.to_owned(), 1, 19_990),
                (r#"["EUR",null]"#.to_owned(), 1, 10),
                (r#"["USD",null]"#.to_owned(), 1, 5_000),
            ]
        );
        assert_eq!(revenue(Dimension::Term), [("shoes".to_owned(), 1, 0)]);
        assert_eq!(revenue(Dimension::Content), [("banner".to_owned(), 1, 0)]);
        // No other row sums revenue, so no row adds currencies together.
        assert!(
            rows.iter()
                .all(|(k, r)| k.dimension.is_revenue() || r.revenue == 0)
        );
        // An event without revenue writes no revenue row.
        let plain = roll(&events[3..], Interval::Hour);
        assert!(plain.keys().all(|k| !k.dimension.is_revenue()));
    }

    #[test]
    fn revenue_rows_past_the_bound_fold_per_currency() {
        let mut deltas = BTreeMap::new();
        for (i, (currency, campaign, amount)) in [
            ("EUR", "a", 1_000),
            ("EUR", "b", 2_000),
            ("USD", "c", 3_000),
            ("USD", "d", 4_000),
        ]
        .into_iter()
        .enumerate()
        {
            let key = Key {
                project: "demo".into(),
                start: DAY0,
                dimension: Dimension::RevenueCampaign,
                value: revenue_value(currency, Some(campaign)),
            };
            let row = Rollup {
                count: i as u64 + 1,
                revenue: amount,
                ..Rollup::default()
            };
            deltas.insert(key, row);
        }
        let bounded = bound_values(deltas, 1);
        let got: Vec<(String, u64, u64)> = bounded
            .iter()
            .map(|(k, r)| (k.value.clone(), r.count, r.revenue))
            .collect();
        assert_eq!(
            got,
            [
                (r#"["EUR",""]"#.to_owned(), 3, 3_000),
                (r#"["USD",""]"#.to_owned(), 3, 3_000),
                (r#"["USD","d"]"#.to_owned(), 4, 4_000),
            ]
        );
        assert!(Dimension::RevenueCampaign.is_folded(r#"["USD",""]"#));
        assert!(!Dimension::RevenueCampaign.is_folded(r#"["USD",null]"#));
        assert!(!Dimension::Campaign.is_folded(r#"["USD",""]"#));
        // A folded row already stored takes the next new values of its currency only.
        let again = bound_new_values(
            bounded.clone(),
            |k| k.value.ends_with(r#""d"]"#),
            &BTreeMap::new(),
            1,
        );
        assert_eq!(again, bounded);
    }

    #[test]
    fn pair_values_are_unambiguous() {
        let check = |first: &str, second: &str| {
            let value = pair(first, second);
            assert!(value.starts_with(&pair_prefix(first)), "{value}");
            assert_eq!(pair_second(&value).as_deref(), Some(second), "{value}");
        };
        for (a, b) in [("img-1", "w1024"), ("a,b", "c\"]"), ("", "x"), ("ü", "")] {
            check(a, b);
        }
        // One item's prefix matches no other item's values, even one it starts.
        assert!(!pair("img-10", "thumb").starts_with(&pair_prefix("img-1")));
        assert!(!pair("img-1\",", "x").starts_with(&pair_prefix("img-1")));
        assert_eq!(pair_second("img-1"), None);
    }

    #[test]
    fn error_route_pairs_class_and_route_unambiguously() {
        let check = |raw: serde_json::Value, expected: Option<(&str, Option<&str>)>| {
            let e = event(2, raw);
            let value = Dimension::ErrorRoute.value_of(&e);
            let parsed = value.as_deref().map(|v| parse_error_route(v).unwrap());
            let expected = expected.map(|(c, r)| (c.to_owned(), r.map(str::to_owned)));
            assert_eq!(parsed, expected, "{value:?}");
        };
        check(
            json!({"name": "request", "error_class": "TypeError", "route": "/a"}),
            Some(("TypeError", Some("/a"))),
        );
        check(
            json!({"name": "request", "error_class": "Timeout"}),
            Some(("Timeout", None)),
        );
        // Separator-like and quoting characters survive the round trip.
        check(
            json!({"name": "r", "error_class": "A\u{1f}\"B", "route": "/x\u{1f},]"}),
            Some(("A\u{1f}\"B", Some("/x\u{1f},]"))),
        );
        // A 5xx without a class is an error, but has no class to pair.
        check(
            json!({"name": "request", "status": 503, "route": "/a"}),
            None,
        );
        assert_eq!(
            error_route_value("E", Some("/r")),
            r#"["E","/r"]"#,
            "the stored form"
        );
        assert_eq!(parse_error_route("not json"), None);
    }

    #[test]
    fn bytes_saturate_at_the_largest_stored_integer() {
        let max = crate::validate::MAX_BYTES;
        let mut row = Rollup::default();
        for i in 0..8_193 {
            row.add(
                Dimension::Name,
                &event(i, serde_json::json!({"name": "n", "bytes": max})),
            );
        }
        // 8,191 events of 2^40 fit; the next two saturate instead of passing 2^53.
        assert_eq!(row.bytes, MAX_STORED_INTEGER);
        assert_eq!(row.count, 8_193);
        let mut merged = row.clone();
        merged.merge(&row);
        assert_eq!(merged.bytes, MAX_STORED_INTEGER);
        assert_eq!(merged.count, 16_386);
        assert_eq!(stored_sum(MAX_STORED_INTEGER, u64::MAX), MAX_STORED_INTEGER);
        assert_eq!(stored_sum(2, 3), 5);
    }

    #[test]
    fn counts_are_exact() {
        let events = workload(2000);
        let rows = roll(&events, Interval::Day);
        let total: u64 = rows
            .iter()
            .filter(|(k, _)| k.dimension == Dimension::All)
            .map(|(_, r)| r.count)
            .sum();
        assert_eq!(total, 2000);
        let errors = events.iter().filter(|e| e.is_error()).count() as u64;
        let row_errors: u64 = rows
            .iter()
            .filter(|(k, _)| k.dimension == Dimension::All)
            .map(|(_, r)| r.errors)
            .sum();
        assert_eq!(row_errors, errors);
        let by_status: u64 = rows
            .iter()
            .filter(|(k, _)| k.dimension == Dimension::Status)
            .map(|(_, r)| r.count)
            .sum();
        assert_eq!(by_status, 2000, "every event has a status class");
        let all_day0 = &rows[&Key {
            project: "demo".into(),
            start: DAY0,
            dimension: Dimension::All,
            value: String::new(),
        }];
        assert_eq!(all_day0.users.count(), 37, "HLL is exact at small counts");
        assert_eq!(all_day0.instances.count(), 11);
    }

    #[test]
    fn a_day_rolled_from_hours_equals_the_day_rolled_from_raw() {
        let events = workload(3000);
        let hours = roll(&events, Interval::Hour);
        assert!(hours.keys().all(|k| k.start % HOUR_MS == 0));
        let days_from_hours = coarsen(&hours, Interval::Day);
        let days_from_raw = roll(&events, Interval::Day);
        assert_eq!(days_from_hours, days_from_raw);
        for (key, row) in &days_from_raw {
            let other = &days_from_hours[key];
            assert_eq!(row.durations.encode(), other.durations.encode(), "{key:?}");
            assert_eq!(row.users.encode(), other.users.encode(), "{key:?}");
        }
    }

    #[test]
    fn order_and_batching_do_not_matter() {
        let events = workload(1500);
        let whole = roll(&events, Interval::Hour);
        // Reversed, and in uneven batches merged row by row, as a consumer would.
        let mut reversed = events.clone();
        reversed.reverse();
        let mut merged: BTreeMap<Key, Rollup> = BTreeMap::new();
        for batch in reversed.chunks(97) {
            for (key, row) in roll(batch, Interval::Hour) {
                merged.entry(key).or_default().merge(&row);
            }
        }
        assert_eq!(merged, whole);
    }

    /// Rows of one hour: `routes` distinct routes, route `i` with `i + 1` events.
    fn route_rows(routes: u64) -> BTreeMap<Key, Rollup> {
        let mut events = Vec::new();
        for r in 0..routes {
            for j in 0..=r {
                events.push(event(
                    r * 1000 + j,
                    json!({"name": "request", "timestamp": DAY0 + 1000, "route": format!("/r{r:02}")}),
                ));
            }
        }
        roll_by(&events, Interval::Hour, &[Dimension::All, Dimension::Route])
    }

    fn counts(rows: &BTreeMap<Key, Rollup>, dimension: Dimension) -> Vec<(String, u64)> {
        rows.iter()
            .filter(|(k, _)| k.dimension == dimension)
            .map(|(k, r)| (k.value.clone(), r.count))
            .collect()
    }

    #[test]
    fn new_values_past_the_bound_are_folded_and_counts_stay_exact() {
        let deltas = route_rows(6);
        let total: u64 = counts(&deltas, Dimension::Route)
            .iter()
            .map(|(_, n)| n)
            .sum();
        let group = ("demo".to_owned(), DAY0, Dimension::Route);
        // Two values stored already, /r00 among them: it stays, and two of the five new
        // values have room, those with most events.
        let stored = |k: &Key| k.value == "/r00";
        let stored_values = BTreeMap::from([(group.clone(), 2)]);
        let bounded = bound_new_values(deltas.clone(), stored, &stored_values, 4);
        assert_eq!(
            counts(&bounded, Dimension::Route),
            [
                (FOLDED_VALUE.to_owned(), 2 + 3 + 4),
                ("/r00".into(), 1),
                ("/r04".into(), 5),
                ("/r05".into(), 6),
            ]
        );
        let bounded_total: u64 = counts(&bounded, Dimension::Route)
            .iter()
            .map(|(_, n)| n)
            .sum();
        assert_eq!(bounded_total, total);
        assert_eq!(
            counts(&bounded, Dimension::All),
            [(String::new(), total)],
            "unbounded"
        );
        // Room for all: nothing changes.
        let roomy = bound_new_values(deltas.clone(), |_| false, &BTreeMap::new(), 6);
        assert_eq!(roomy, deltas);
        // A full group folds every new value, and a folded row stored already takes them.
        let full = BTreeMap::from([(group, 4)]);
        let folded = bound_new_values(deltas, |_| false, &full, 4);
        assert_eq!(
            counts(&folded, Dimension::Route),
            [(FOLDED_VALUE.to_owned(), total)]
        );
    }

    #[test]
    fn rolled_periods_keep_their_values_with_most_events() {
        let mut hours = route_rows(5);
        let folded_before = Key {
            project: "demo".into(),
            start: DAY0,
            dimension: Dimension::Route,
            value: FOLDED_VALUE.into(),
        };
        let row = Rollup {
            count: 100,
            ..Rollup::default()
        };
        hours.insert(folded_before, row);
        let day = coarsen(hours.iter(), Interval::Day);
        let bounded = bound_values(day, 2);
        assert_eq!(
            counts(&bounded, Dimension::Route),
            [
                (FOLDED_VALUE.to_owned(), 100 + 1 + 2 + 3),
                ("/r03".into(), 4),
                ("/r04".into(), 5),
            ]
        );
        assert_eq!(counts(&bounded, Dimension::All), [(String::new(), 15)]);
    }

    #[test]
    fn minute_rows_of_values_their_hour_folded_fold_too() {
        let events = [
            event(
                1,
                json!({"name": "open", "timestamp": DAY0 + 61_000, "route": "/kept"}),
            ),
            event(
                2,
                json!({"name": "open", "timestamp": DAY0 + 62_000, "route": "/folded"}),
            ),
        ];
        let minutes = roll_minutes(&events);
        let folded_route = |k: &Key| k.dimension == Dimension::Route && k.value == "/folded";
        let rows = fold_minutes_past_hour(minutes.clone(), folded_route);
        let shown = |d: Dimension| -> Vec<(String, u64)> {
            rows.iter()
                .filter(|(k, _)| k.dimension == d)
                .map(|(k, r)| (k.value.clone(), r.count))
                .collect()
        };
        assert_eq!(
            shown(Dimension::Route),
            [(String::new(), 1), ("/kept".into(), 1)]
        );
        assert_eq!(
            shown(Dimension::NameRoute),
            [(String::new(), 1), (pair("open", "/kept"), 1)]
        );
        assert_eq!(shown(Dimension::All), [(String::new(), 2)]);
        assert_eq!(fold_minutes_past_hour(minutes.clone(), |_| false), minutes);
    }
}
