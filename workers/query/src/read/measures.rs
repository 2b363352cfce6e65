//! The measures of a merged rollup as the read API shows them: counts exact, error rate,
//! duration percentiles from the merged sketch (within 1%), uniques from the merged
//! HyperLogLogs (1.6% standard error, 99% of counts within 5%).

use serde_json::{Map, Value};
use tally_core::rollup::Rollup;
use tally_edge::ApiError;

/// A measure a time series can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Events,
    /// The same number as `events`, under the name the plugin seed uses.
    Requests,
    Errors,
    ErrorRate,
    Bytes,
    P50,
    P95,
    P99,
    UniqueUsers,
    UniqueInstances,
}

impl Metric {
    /// Every metric, in the order answers list them (`requests` only when asked for).
    pub const ALL: [Metric; 10] = [
        Self::Events,
        Self::Requests,
        Self::Errors,
        Self::ErrorRate,
        Self::Bytes,
        Self::P50,
        Self::P95,
        Self::P99,
        Self::UniqueUsers,
        Self::UniqueInstances,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Self::Events => "events",
            Self::Requests => "requests",
            Self::Errors => "errors",
            Self::ErrorRate => "error_rate",
            Self::Bytes => "bytes",
            Self::P50 => "p50",
            Self::P95 => "p95",
            Self::P99 => "p99",
            Self::UniqueUsers => "unique_users",
            Self::UniqueInstances => "unique_instances",
        }
    }

    /// The metric's value for a merged row (null for a percentile without durations);
    /// unique counts multiplied by `scale`, what each counted user stands for (1 but in
    /// a sampled answer, whose counts are scaled already).
    pub fn of(self, row: &Rollup, scale: u64) -> Value {
        match self {
            Self::Events | Self::Requests => row.count.into(),
            Self::Errors => row.errors.into(),
            Self::ErrorRate => ratio(row.errors, row.count).into(),
            Self::Bytes => row.bytes.into(),
            Self::P50 => row.durations.quantile(0.5).into(),
            Self::P95 => row.durations.quantile(0.95).into(),
            Self::P99 => row.durations.quantile(0.99).into(),
            Self::UniqueUsers => (row.users.count().saturating_mul(scale)).into(),
            Self::UniqueInstances => (row.instances.count().saturating_mul(scale)).into(),
        }
    }

    /// The metrics of a `metric` parameter: a comma-separated list, or every metric but
    /// the `requests` alias when absent. Each is listed once, in [`Metric::ALL`] order.
    ///
    /// # Errors
    ///
    /// 400 `invalid_metric` naming the metrics there are.
    pub fn parse_list(param: Option<&str>) -> Result<Vec<Metric>, ApiError> {
        let Some(text) = param else {
            return Ok(Self::ALL
                .into_iter()
                .filter(|m| *m != Self::Requests)
                .collect());
        };
        let mut wanted = Vec::new();
        for name in text.split(',').map(str::trim) {
            let metric = Self::ALL
                .into_iter()
                .find(|m| m.name() == name)
                .ok_or_else(|| {
                    let names: Vec<&str> = Self::ALL.iter().map(|m| m.name()).collect();
                    ApiError::bad_request(
                        "invalid_metric",
                        format!(
                            "metric {name:?} is not one of {} (several: metric=p50,p95)",
                            names.join(", ")
                        ),
                    )
                })?;
            wanted.push(metric);
        }
        Ok(Self::ALL
            .into_iter()
            .filter(|m| wanted.contains(m))
            .collect())
    }
}

/// `part / whole`, 0 when `whole` is 0.
pub fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Every measure of a merged row plus its share of `total` events: a breakdown entry
/// (uniques multiplied by `scale`, as in [`Metric::of`]).
pub fn entry(row: &Rollup, total: u64, scale: u64) -> Map<String, Value> {
    let mut out = Map::new();
    for metric in Metric::ALL.into_iter().filter(|m| *m != Metric::Requests) {
        out.insert(metric.name().into(), metric.of(row, scale));
    }
    out.insert("share".into(), ratio(row.count, total).into());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(metrics: &[Metric]) -> Vec<&'static str> {
        metrics.iter().map(|m| m.name()).collect()
    }

    #[test]
    fn metric_lists() {
        let all = Metric::parse_list(None).unwrap();
        assert_eq!(all.len(), 9);
        assert!(!all.contains(&Metric::Requests));
        assert_eq!(
            names(&Metric::parse_list(Some("p99, events,p50,events")).unwrap()),
            ["events", "p50", "p99"]
        );
        assert_eq!(
            names(&Metric::parse_list(Some("requests")).unwrap()),
            ["requests"]
        );
        let err = Metric::parse_list(Some("events,latency")).unwrap_err();
        assert_eq!((err.status, err.code), (400, "invalid_metric"));
        assert!(err.message.contains("\"latency\""), "{}", err.message);
        assert!(Metric::parse_list(Some("")).is_err());
    }

    #[test]
    fn entries_of_a_row() {
        let mut row = Rollup::default();
        for (i, d) in [10.0, 20.0, 30.0, 40.0].into_iter().enumerate() {
            row.count += 1;
            row.errors += u64::from(i == 0);
            row.bytes += 100;
            row.durations.insert(d);
        }
        row.users.insert_hash(7);
        let e = entry(&row, 16, 1);
        assert_eq!(e["events"], 4);
        assert_eq!(e["errors"], 1);
        assert_eq!(e["error_rate"], 0.25);
        assert_eq!(e["bytes"], 400);
        assert_eq!(e["share"], 0.25);
        assert_eq!(e["unique_users"], 1);
        assert_eq!(
            entry(&row, 16, 8)["unique_users"],
            8,
            "a sampled user stands for 8"
        );
        assert_eq!(entry(&row, 16, 8)["events"], 4, "counts come scaled");
        let p50 = e["p50"].as_f64().unwrap();
        assert!((p50 - 20.0).abs() <= 0.2, "{p50}");
        let empty = entry(&Rollup::default(), 0, 1);
        assert_eq!(empty["p95"], Value::Null);
        assert_eq!(
            (empty["error_rate"].as_f64(), empty["share"].as_f64()),
            (Some(0.0), Some(0.0))
        );
    }
}
