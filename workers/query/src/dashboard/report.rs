//! What the dashboard shows, computed from merged rollups: headline numbers, series,
//! the endpoint × hour-of-day heatmap and breakdowns; and the funnel, as
//! `tally_storage::funnels::funnel` counted it (the query API's `/funnels` computation).
//! Pure, so every number on the page is tested natively.

use std::collections::BTreeMap;

use tally_core::funnel::Conversion;
use tally_core::revenue::{self, Currency, Total};
use tally_core::rollup::{Dimension, Rollup};
use tally_core::time::{DAY_MS, HOUR_MS, Interval};
use tally_storage::filtered::Path;
use tally_storage::read::{Counts, Merged};

/// Rows shown per breakdown table.
pub const TOP: usize = 10;
/// Routes shown in the heatmap.
pub const HEATMAP_ROUTES: usize = 12;
/// Most days the heatmap covers: it reads hour rows, 24 per day and route.
pub use tally_storage::dashboard::HEATMAP_DAYS;
/// Most funnel steps a page takes: as many as the API's `/funnels`.
pub const MAX_STEPS: usize = tally_core::funnel::MAX_STEPS;

/// The rollups a report is made from.
#[derive(Debug)]
pub struct Inputs<'a> {
    /// `[from, to)`, epoch milliseconds.
    pub from: i64,
    pub to: i64,
    /// Every dimension merged over the range.
    pub merged: &'a Merged,
    /// The `all` dimension per bucket of `interval`.
    pub series: &'a BTreeMap<i64, Merged>,
    pub interval: Interval,
    /// Events per hour and route, from `heatmap_from` (hour rows are many: a long
    /// range's heatmap covers only its end).
    pub route_hours: &'a Counts,
    pub heatmap_from: i64,
    /// The funnel of the steps named, as counted.
    pub funnel: &'a Funnel,
    /// The `all` dimension per bucket of `interval` over the previous period of the
    /// same length ([`previous_period`]): the headline numbers' changes and the charts'
    /// faint previous line.
    pub previous: Option<&'a BTreeMap<i64, Merged>>,
    /// What unique counts of `merged` and of `previous` stand for: 1, or the inverse of
    /// the sample rate when a filtered read was sampled (`Filtered::scale`; counts come
    /// scaled already).
    pub scale: u64,
    pub previous_scale: u64,
}

/// The headline numbers.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Totals {
    pub requests: u64,
    pub errors: u64,
    pub bytes: u64,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub users: u64,
    pub instances: u64,
}

/// One bucket of the time series.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Point {
    pub start: i64,
    pub requests: u64,
    pub errors: u64,
    pub bytes: u64,
    pub p95: Option<f64>,
    /// The same bucket one period earlier (shifted by the range's length in whole
    /// buckets), when the previous period was read.
    pub previous: Option<Previous>,
}

/// A bucket of the previous period, for the charts' faint line.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Previous {
    pub requests: u64,
    pub bytes: u64,
    pub p95: Option<f64>,
}

/// One value of a breakdown.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Row {
    pub value: String,
    pub count: u64,
    pub errors: u64,
    pub bytes: u64,
    pub users: u64,
    pub instances: u64,
}

/// Requests per route and UTC hour of day.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Heatmap {
    /// The busiest routes, busiest first, each with its count per hour of day.
    pub rows: Vec<(String, [u64; 24])>,
    /// How many less busy routes are left out.
    pub other_routes: usize,
    /// When the heatmap starts later than the range, where it starts.
    pub since: Option<i64>,
}

impl Heatmap {
    /// The largest cell.
    pub fn max(&self) -> u64 {
        self.rows
            .iter()
            .flat_map(|(_, hours)| hours.iter().copied())
            .max()
            .unwrap_or(0)
    }
}

/// The funnel section: the users who went through the named steps in order, from raw
/// events (so within raw retention), as the query API's `/funnels` answers.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Funnel {
    /// No steps were named.
    Unasked,
    /// Each step's users and conversion, over `[from, to)`: the range, its start cut to
    /// raw retention; `path` whether from every step event or from a sample of users
    /// (then users are scaled to all).
    Counted {
        steps: Vec<Conversion>,
        from: i64,
        to: i64,
        path: Path,
    },
    /// Why the funnel could not be counted, as a sentence for the reader.
    Refused(String),
}

/// Everything the page shows.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Report {
    pub totals: Totals,
    /// The headline numbers of the previous period of the same length, when read.
    pub previous: Option<Totals>,
    pub interval: Interval,
    pub series: Vec<Point>,
    pub heatmap: Heatmap,
    /// Routes by events.
    pub routes: Vec<Row>,
    pub error_classes: Vec<Row>,
    /// Routes with errors, most errors first.
    pub failing_routes: Vec<Row>,
    pub statuses: Vec<Row>,
    pub versions: Vec<Row>,
    pub colos: Vec<Row>,
    pub countries: Vec<Row>,
    pub sources: Vec<Row>,
    pub mediums: Vec<Row>,
    pub campaigns: Vec<Row>,
    pub terms: Vec<Row>,
    pub contents: Vec<Row>,
    /// Revenue per currency by each of [`Dimension::REVENUE`], in its order; empty
    /// tables when no event carried revenue.
    pub revenue: Vec<(Dimension, Vec<Currency>)>,
    pub names: Vec<Row>,
    pub funnel: Funnel,
    /// Items by bytes served.
    pub items: Vec<Row>,
    pub variants: Vec<Row>,
}

/// The bucket size for a range: hours up to two days, days up to 120, weeks beyond.
pub fn interval_for(from: i64, to: i64) -> Interval {
    match to - from {
        span if span <= 2 * DAY_MS => Interval::Hour,
        span if span <= 120 * DAY_MS => Interval::Day,
        _ => Interval::Week,
    }
}

/// Reads `?steps=a,b,c`: the names trimmed, empty ones left out.
pub fn parse_steps(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Why `steps` cannot make a funnel, if they cannot: the API's `/funnels` takes 2 to
/// [`MAX_STEPS`].
pub fn refuse_steps(steps: &[String]) -> Option<String> {
    let min = tally_core::funnel::MIN_STEPS;
    if !(min..=MAX_STEPS).contains(&steps.len()) {
        return Some(format!(
            "A funnel has {min} to {MAX_STEPS} steps, not {}.",
            steps.len()
        ));
    }
    let most = tally_core::validate::MAX_NAME_CHARS;
    steps
        .iter()
        .find(|s| s.chars().count() > most)
        .map(|s| format!("Step {s:?} is not an event name (1 to {most} characters)."))
}

impl Totals {
    /// The headline numbers of the `all` row of `merged`, unique counts times `scale`:
    /// zeros when it has none.
    pub fn of(merged: &Merged, scale: u64) -> Self {
        let Some(all) = merged.get(&(Dimension::All, String::new())) else {
            return Self::default();
        };
        Self {
            requests: all.count,
            errors: all.errors,
            bytes: all.bytes,
            p50: all.durations.quantile(0.5),
            p95: all.durations.quantile(0.95),
            p99: all.durations.quantile(0.99),
            users: all.users.count().saturating_mul(scale),
            instances: all.instances.count().saturating_mul(scale),
        }
    }
}

/// The `all` rows of every bucket of `series` merged into one, as a [`Merged`] of that
/// one row: a period's totals from its series, without reading it twice.
pub fn fold_all(series: &BTreeMap<i64, Merged>) -> Merged {
    let key = (Dimension::All, String::new());
    let mut all = Rollup::default();
    for merged in series.values() {
        if let Some(row) = merged.get(&key) {
            all.merge(row);
        }
    }
    [(key, all)].into_iter().collect()
}

/// The period of the same length just before `[from, to)`, that headline numbers are
/// compared with.
pub fn previous_period(from: i64, to: i64) -> (i64, i64) {
    (from - (to - from), from)
}

impl Report {
    pub fn new(inputs: &Inputs<'_>) -> Self {
        let totals = Totals::of(inputs.merged, inputs.scale);
        // Unique counts are estimated for the rows shown only: an estimate reads a dense
        // HyperLogLog's 4,096 registers, and a dimension may have thousands of values.
        let rows = |d| rows_of(inputs.merged, d);
        let shown = |d, rows| with_uniques(inputs.merged, d, rows, inputs.scale);
        let by_count = |d| shown(d, top(rows(d), count, TOP));
        let failing_routes: Vec<Row> = rows(Dimension::Route)
            .into_iter()
            .filter(|r| r.errors > 0)
            .collect();
        Self {
            totals,
            previous: inputs
                .previous
                .map(|series| Totals::of(&fold_all(series), inputs.previous_scale)),
            interval: inputs.interval,
            series: series(inputs),
            heatmap: Heatmap {
                since: (inputs.heatmap_from > inputs.from).then_some(inputs.heatmap_from),
                ..heatmap(inputs.route_hours)
            },
            routes: by_count(Dimension::Route),
            error_classes: by_count(Dimension::ErrorClass),
            failing_routes: shown(Dimension::Route, top(failing_routes, errors, TOP)),
            // In value order (`2xx`, `4xx`, ...), as merged rows come.
            statuses: shown(Dimension::Status, rows(Dimension::Status)),
            versions: by_count(Dimension::Version),
            colos: by_count(Dimension::Colo),
            countries: by_count(Dimension::Country),
            sources: by_count(Dimension::Source),
            mediums: by_count(Dimension::Medium),
            campaigns: by_count(Dimension::Campaign),
            terms: by_count(Dimension::Term),
            contents: by_count(Dimension::Content),
            revenue: Dimension::REVENUE
                .into_iter()
                .map(|d| (d, revenue_of(inputs.merged, d)))
                .collect(),
            names: by_count(Dimension::Name),
            funnel: inputs.funnel.clone(),
            items: shown(Dimension::Item, top(rows(Dimension::Item), bytes, TOP)),
            variants: shown(
                Dimension::Variant,
                top(rows(Dimension::Variant), bytes, TOP),
            ),
        }
    }
}

/// A row's counts; its unique counts are left at 0 for [`with_uniques`].
fn row(value: &str, r: &Rollup) -> Row {
    Row {
        value: value.to_owned(),
        count: r.count,
        errors: r.errors,
        bytes: r.bytes,
        users: 0,
        instances: 0,
    }
}

/// `rows` of `dimension` with their unique counts from `merged`, times `scale`.
fn with_uniques(merged: &Merged, dimension: Dimension, mut rows: Vec<Row>, scale: u64) -> Vec<Row> {
    for row in &mut rows {
        if let Some(r) = merged.get(&(dimension, row.value.clone())) {
            row.users = r.users.count().saturating_mul(scale);
            row.instances = r.instances.count().saturating_mul(scale);
        }
    }
    rows
}

/// The revenue table of a revenue dimension: its [`TOP`] lines per currency.
fn revenue_of(merged: &Merged, dimension: Dimension) -> Vec<Currency> {
    let rows = merged
        .range((dimension, String::new())..)
        .take_while(|((d, _), _)| *d == dimension)
        .map(|((_, value), r)| {
            let total = Total {
                thousandths: r.revenue,
                events: r.count,
            };
            (value.clone(), total)
        });
    revenue::table(rows, TOP)
}

fn rows_of(merged: &Merged, dimension: Dimension) -> Vec<Row> {
    merged
        .range((dimension, String::new())..)
        .take_while(|((d, _), _)| *d == dimension)
        .map(|((_, value), r)| row(value, r))
        .collect()
}

fn count(r: &Row) -> u64 {
    r.count
}

fn errors(r: &Row) -> u64 {
    r.errors
}

fn bytes(r: &Row) -> u64 {
    r.bytes
}

/// The first `n` rows by `key`, then by count, then by value. The key is a function
/// pointer, not a generic: each sort instantiated costs the worker kilobytes.
fn top(mut rows: Vec<Row>, key: fn(&Row) -> u64, n: usize) -> Vec<Row> {
    rows.sort_unstable_by(|a, b| {
        key(b)
            .cmp(&key(a))
            .then(b.count.cmp(&a.count))
            .then(a.value.cmp(&b.value))
    });
    rows.truncate(n);
    rows
}

/// Every bucket of the range, empty ones as zeros.
fn series(inputs: &Inputs<'_>) -> Vec<Point> {
    let key = (Dimension::All, String::new());
    // The previous period's bucket of a bucket: the range's length back, rounded to whole
    // buckets so that both fall on the same boundaries (a day on a day, a week on a week).
    let step = inputs.interval.next(0);
    let shift = ((inputs.to - inputs.from) + step / 2) / step * step;
    inputs
        .interval
        .buckets(inputs.from, inputs.to)
        .map(|start| {
            let r = inputs.series.get(&start).and_then(|m| m.get(&key));
            let previous = inputs.previous.map(|series| {
                let r = series.get(&(start - shift)).and_then(|m| m.get(&key));
                Previous {
                    requests: r.map_or(0, |r| r.count),
                    bytes: r.map_or(0, |r| r.bytes),
                    p95: r.and_then(|r| r.durations.quantile(0.95)),
                }
            });
            Point {
                start,
                requests: r.map_or(0, |r| r.count),
                errors: r.map_or(0, |r| r.errors),
                bytes: r.map_or(0, |r| r.bytes),
                p95: r.and_then(|r| r.durations.quantile(0.95)),
                previous,
            }
        })
        .collect()
}

fn heatmap(route_hours: &Counts) -> Heatmap {
    let mut by_route: BTreeMap<&str, [u64; 24]> = BTreeMap::new();
    for (start, routes) in route_hours {
        let hour = (start.rem_euclid(DAY_MS) / HOUR_MS) as usize;
        for (route, count) in routes {
            by_route.entry(route).or_insert([0; 24])[hour] += count;
        }
    }
    let totals: Vec<Row> = by_route
        .iter()
        .map(|(route, hours)| Row {
            value: (*route).to_owned(),
            count: hours.iter().sum(),
            errors: 0,
            bytes: 0,
            users: 0,
            instances: 0,
        })
        .collect();
    let other_routes = totals.len().saturating_sub(HEATMAP_ROUTES);
    let rows = top(totals, count, HEATMAP_ROUTES)
        .into_iter()
        .map(|r| {
            let hours = by_route[r.value.as_str()];
            (r.value, hours)
        })
        .collect();
    Heatmap {
        rows,
        other_routes,
        since: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_core::time::parse_date;
    use tally_storage::dashboard::DIMENSIONS;

    fn rollup(count: u64, errors: u64, bytes: u64, durations: &[f64]) -> Rollup {
        let mut r = Rollup {
            count,
            errors,
            bytes,
            ..Rollup::default()
        };
        for &d in durations {
            r.durations.insert(d);
        }
        r
    }

    fn entry(d: Dimension, value: &str, r: Rollup) -> ((Dimension, String), Rollup) {
        ((d, value.to_owned()), r)
    }

    #[test]
    fn the_report_reads_only_the_dimensions_it_names() {
        let day = parse_date("2025-01-18").unwrap();
        let every: Merged = Dimension::ALL
            .iter()
            .enumerate()
            .flat_map(|(i, d)| {
                let n = i as u64 + 1;
                [
                    entry(*d, "a", rollup(n, 1, 10 * n, &[n as f64])),
                    entry(*d, "b", rollup(2 * n, 0, n, &[])),
                ]
            })
            .collect();
        let shown: Merged = every
            .iter()
            .filter(|((d, _), _)| DIMENSIONS.contains(d))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert!(shown.len() < every.len());
        let report = |merged: &Merged| day_report(day, merged, 1);
        assert_eq!(report(&shown), report(&every));
    }

    /// The report of one day of `merged` rows, with nothing else asked of it (the rows
    /// a sample scaled by `scale`, 1 when exact).
    fn day_report(day: i64, merged: &Merged, scale: u64) -> Report {
        Report::new(&Inputs {
            from: day,
            to: day + DAY_MS,
            merged,
            series: &BTreeMap::new(),
            interval: Interval::Hour,
            route_hours: &BTreeMap::new(),
            heatmap_from: day,
            funnel: &Funnel::Unasked,
            previous: None,
            scale,
            previous_scale: 1,
        })
    }

    /// Without filters storage reads the range's rows without the durations sketches of
    /// other dimensions than `dashboard::TIMED` (issue 17): the report must not need them.
    #[test]
    fn the_report_shows_percentiles_of_the_timed_dimensions_only() {
        let day = parse_date("2025-01-18").unwrap();
        let merged: Merged = DIMENSIONS
            .iter()
            .enumerate()
            .flat_map(|(i, d)| {
                let n = i as u64 + 1;
                let durations = [n as f64, 10.0 * n as f64, 300.0];
                // `all` has one value, the empty one.
                let (a, b) = if *d == Dimension::All {
                    ("", "")
                } else {
                    ("a", "b")
                };
                [
                    entry(*d, a, rollup(n, 1, 10 * n, &durations)),
                    entry(*d, b, rollup(2 * n, 0, n, &durations[..1])),
                ]
            })
            .collect();
        let untimed: Merged = merged
            .iter()
            .map(|((d, value), r)| {
                let mut r = r.clone();
                if !tally_storage::dashboard::TIMED.contains(d) {
                    r.durations = tally_core::sketch::Sketch::default();
                }
                ((*d, value.clone()), r)
            })
            .collect();
        assert_ne!(untimed, merged);
        let report = |merged: &Merged| day_report(day, merged, 1);
        let whole = report(&merged);
        assert!(whole.totals.p95.is_some());
        assert_eq!(report(&untimed), whole);
    }

    #[test]
    fn each_bucket_meets_the_same_bucket_one_period_earlier() {
        let day = parse_date("2025-01-18").unwrap();
        let all = |n: u64| Merged::from([entry(Dimension::All, "", rollup(n, 1, 0, &[]))]);
        let series: BTreeMap<i64, Merged> = [(day - 6 * DAY_MS, all(3)), (day, all(5))]
            .into_iter()
            .collect();
        // The week before: its first and its last day, and nothing in between.
        let previous: BTreeMap<i64, Merged> =
            [(day - 13 * DAY_MS, all(7)), (day - 7 * DAY_MS, all(2))]
                .into_iter()
                .collect();
        let report = Report::new(&Inputs {
            from: day - 6 * DAY_MS,
            to: day + DAY_MS,
            merged: &fold_all(&series),
            series: &series,
            interval: Interval::Day,
            route_hours: &BTreeMap::new(),
            heatmap_from: day,
            funnel: &Funnel::Unasked,
            previous: Some(&previous),
            scale: 1,
            previous_scale: 1,
        });
        let before: Vec<u64> = report
            .series
            .iter()
            .map(|p| p.previous.as_ref().unwrap().requests)
            .collect();
        assert_eq!(before, [7, 0, 0, 0, 0, 0, 2]);
        let totals = report.previous.unwrap();
        assert_eq!((totals.requests, totals.errors), (9, 2));
        assert_eq!((report.totals.requests, report.totals.errors), (8, 2));
    }

    #[test]
    fn a_report_of_merged_rows() {
        let day = parse_date("2025-01-18").unwrap();
        let merged: Merged = [
            entry(Dimension::All, "", rollup(10, 3, 5000, &[10.0, 20.0, 30.0])),
            entry(Dimension::Route, "/a", rollup(6, 0, 0, &[])),
            entry(Dimension::Route, "/b", rollup(4, 3, 0, &[])),
            entry(Dimension::Status, "5xx", rollup(3, 3, 0, &[])),
            entry(Dimension::Status, "2xx", rollup(7, 0, 0, &[])),
            entry(Dimension::ErrorClass, "Timeout", rollup(1, 1, 0, &[])),
            entry(Dimension::ErrorClass, "TypeError", rollup(2, 2, 0, &[])),
            entry(Dimension::Name, "visit", rollup(8, 0, 0, &[])),
            entry(Dimension::Name, "signup", rollup(2, 0, 0, &[])),
            entry(Dimension::Item, "small.png", rollup(5, 0, 100, &[])),
            entry(Dimension::Item, "big.png", rollup(1, 0, 4900, &[])),
        ]
        .into_iter()
        .collect();
        let hour = |h: i64, route: &str, n: u64| {
            (day + h * HOUR_MS, BTreeMap::from([(route.to_owned(), n)]))
        };
        let route_hours: Counts = [hour(9, "/a", 2), hour(33, "/a", 4), hour(14, "/b", 4)]
            .into_iter()
            .collect();
        let series: BTreeMap<i64, Merged> = [(
            day + DAY_MS,
            Merged::from([entry(Dimension::All, "", rollup(10, 3, 5000, &[10.0]))]),
        )]
        .into_iter()
        .collect();
        let funnel = Funnel::Counted {
            steps: tally_core::funnel::conversions(&parse_steps(" visit, ,signup"), &[4, 1]),
            from: day,
            to: day + 3 * DAY_MS,
            path: Path::Raw,
        };
        let report = Report::new(&Inputs {
            from: day,
            to: day + 3 * DAY_MS,
            merged: &merged,
            series: &series,
            interval: interval_for(day, day + 3 * DAY_MS),
            route_hours: &route_hours,
            heatmap_from: day,
            funnel: &funnel,
            previous: None,
            scale: 1,
            previous_scale: 1,
        });
        assert_eq!(report.totals.requests, 10);
        assert_eq!(report.heatmap.since, None);
        assert_eq!(report.totals.errors, 3);
        assert_eq!(report.totals.bytes, 5000);
        let p50 = report.totals.p50.unwrap();
        assert!((p50 - 20.0).abs() <= 0.2, "{p50}");
        // Three days, day buckets, the empty ones as zeros.
        assert_eq!(report.interval, Interval::Day);
        let counts: Vec<u64> = report.series.iter().map(|p| p.requests).collect();
        assert_eq!(counts, [0, 10, 0]);
        assert_eq!(report.series[0].p95, None);
        // Hour 33 is 09:00 of the next day: it joins hour 9.
        assert_eq!(report.heatmap.rows.len(), 2);
        assert_eq!(report.heatmap.rows[0].0, "/a");
        assert_eq!(report.heatmap.rows[0].1[9], 6);
        assert_eq!(report.heatmap.rows[1].1[14], 4);
        assert_eq!(report.heatmap.max(), 6);
        let values = |rows: &[Row]| rows.iter().map(|r| r.value.clone()).collect::<Vec<_>>();
        assert_eq!(values(&report.error_classes), ["TypeError", "Timeout"]);
        assert_eq!(values(&report.failing_routes), ["/b"]);
        assert_eq!(values(&report.statuses), ["2xx", "5xx"]);
        assert_eq!(values(&report.names), ["visit", "signup"]);
        assert_eq!(values(&report.items), ["big.png", "small.png"], "by bytes");
        assert!(report.versions.is_empty());
        assert_eq!(report.funnel, funnel, "as counted, not from the name rows");
        // The page keeps a report in KV as JSON: read back, it is the same report, its
        // percentiles and conversions to the last bit.
        let kept = serde_json::to_string(&report).unwrap();
        let read_back: Report = serde_json::from_str(&kept).unwrap();
        assert_eq!(read_back, report);
    }

    #[test]
    fn a_heatmap_shorter_than_the_range_says_where_it_starts() {
        let empty = BTreeMap::new();
        let report = Report::new(&Inputs {
            from: 0,
            to: 60 * DAY_MS,
            merged: &Merged::new(),
            series: &empty,
            interval: Interval::Day,
            route_hours: &Counts::new(),
            heatmap_from: 32 * DAY_MS,
            funnel: &Funnel::Unasked,
            previous: None,
            scale: 1,
            previous_scale: 1,
        });
        assert_eq!(report.heatmap.since, Some(32 * DAY_MS));
        assert_eq!(report.series.len(), 60);
        assert_eq!(report.totals, Totals::default());
    }

    #[test]
    fn intervals_and_steps() {
        assert_eq!(interval_for(0, 2 * DAY_MS), Interval::Hour);
        assert_eq!(interval_for(0, 7 * DAY_MS), Interval::Day);
        assert_eq!(interval_for(0, 90 * DAY_MS), Interval::Day);
        assert_eq!(interval_for(0, 200 * DAY_MS), Interval::Week);
        assert_eq!(parse_steps(""), Vec::<String>::new());
        assert_eq!(parse_steps(" a, ,b,"), ["a", "b"]);
        assert_eq!(refuse_steps(&parse_steps("a,b")), None);
        assert_eq!(refuse_steps(&parse_steps("a,b,c,d,e,f,g,h,i,j")), None);
        assert_eq!(
            refuse_steps(&parse_steps("a,b,c,d,e,f,g,h,i,j,k")).as_deref(),
            Some("A funnel has 2 to 10 steps, not 11.")
        );
        assert!(refuse_steps(&parse_steps("a")).is_some());
        let long = "x".repeat(tally_core::validate::MAX_NAME_CHARS + 1);
        assert!(
            refuse_steps(&[long, "b".into()])
                .unwrap()
                .contains("is not an event name")
        );
    }

    #[test]
    fn unique_counts_are_those_of_the_rows_shown() {
        let day = parse_date("2025-01-18").unwrap();
        let with_users = |count: u64, users: u64| {
            let mut r = rollup(count, 0, 0, &[]);
            for u in 0..users {
                r.users.insert_hash(u.wrapping_mul(0x9e37_79b9_7f4a_7c15));
                r.instances
                    .insert_hash((u + 99).wrapping_mul(0xbf58_476d_1ce4_e5b9));
            }
            r
        };
        // Twelve routes: the ten busiest are shown, with their own unique counts.
        let merged: Merged = (1..=12u64)
            .map(|i| entry(Dimension::Route, &format!("/r{i:02}"), with_users(i, i)))
            .chain([entry(Dimension::Status, "2xx", with_users(5, 3))])
            .collect();
        let report = day_report(day, &merged, 2);
        let shown: Vec<(String, u64, u64)> = report
            .routes
            .iter()
            .map(|r| (r.value.clone(), r.users, r.instances))
            .collect();
        let expected: Vec<(String, u64, u64)> = (3..=12u64)
            .rev()
            .map(|i| (format!("/r{i:02}"), 2 * i, 2 * i))
            .collect();
        assert_eq!(shown, expected, "times the scale");
        assert_eq!(
            (report.statuses[0].users, report.statuses[0].instances),
            (6, 6)
        );
    }

    #[test]
    fn the_heatmap_keeps_the_busiest_routes() {
        let routes: Counts = [(
            0,
            (0..20u64).map(|i| (format!("/r{i:02}"), i + 1)).collect(),
        )]
        .into_iter()
        .collect();
        let map = heatmap(&routes);
        assert_eq!(map.rows.len(), HEATMAP_ROUTES);
        assert_eq!(map.rows[0].0, "/r19");
        assert_eq!(map.other_routes, 20 - HEATMAP_ROUTES);
    }
}
