//! `GET /v1/projects/{p}/breakdown/{dimension}?limit=N`: the top `limit` (default 10)
//! values of a dimension by event count, each with every measure and its share of all
//! events, and `other` aggregating the rest exactly: counts, errors and bytes summed,
//! percentiles and uniques from the merged sketches and HyperLogLogs of the rest (never
//! summed). `without_value` counts the events that have no value in the dimension, so
//! the values, `other` and `without_value` add up to `events`.

use serde_json::{Value, json};
use tally_core::rollup::{Dimension, FOLDED_LABEL, Rollup};
use tally_edge::ApiError;
use tally_storage::read;
use worker::{Request, Response};

use super::filtered;
use super::measures;
use crate::edge::RequestEnv;

/// Seconds a client may reuse an answer.
const MAX_AGE_S: u32 = 300;

/// The dimensions a breakdown may be by.
pub const DIMENSIONS: [Dimension; 14] = Dimension::OF_ONE_FIELD;

/// The dimension of a path segment.
///
/// # Errors
///
/// 404 `unknown_dimension` naming the dimensions there are.
pub fn dimension(name: &str) -> Result<Dimension, ApiError> {
    DIMENSIONS
        .into_iter()
        .find(|d| d.name() == name)
        .ok_or_else(|| {
            let names: Vec<&str> = DIMENSIONS.iter().map(|d| d.name()).collect();
            ApiError::new(
                404,
                "unknown_dimension",
                format!(
                    "there is no breakdown by {name:?}; dimensions: {}",
                    names.join(", ")
                ),
            )
        })
}

pub async fn get(
    req: &Request,
    env: &RequestEnv,
    project: &str,
    dimension_name: &str,
) -> Result<Response, ApiError> {
    let dimension = dimension(dimension_name)?;
    let wanted = [Dimension::All, dimension];
    filtered::one_dimension(
        req,
        env,
        project,
        "breakdown",
        dimension,
        &wanted,
        MAX_AGE_S,
        |read, limit| {
            let mut merged = read::merge(&read.rows);
            let all = merged
                .remove(&(Dimension::All, String::new()))
                .unwrap_or_default();
            let rows = merged
                .into_iter()
                .filter(|((d, _), _)| *d == dimension)
                .map(|((_, v), r)| (v, r))
                .collect();
            let (top, rest) = split(rows, limit);
            let with_value: u64 = top.iter().map(|(_, r)| r.count).sum::<u64>()
                + rest.as_ref().map_or(0, |(_, r)| r.count);
            let values: Vec<Value> = top
                .iter()
                .map(|(value, row)| {
                    let mut entry = measures::entry(row, all.count, read.scale);
                    entry.insert("value".into(), value.clone().into());
                    Value::Object(entry)
                })
                .collect();
            let other = rest.map(|(n, row)| {
                let mut entry = measures::entry(&row, all.count, read.scale);
                entry.insert("values".into(), n.into());
                Value::Object(entry)
            });
            json!({
                "project": project,
                "dimension": dimension.name(),
                "limit": limit,
                "events": all.count,
                "without_value": all.count.saturating_sub(with_value),
                "values": values,
                "other": other,
            })
        },
    )
    .await
}

/// Values with their merged rows.
pub type Values = Vec<(String, Rollup)>;

/// The `limit` values with the most events (ties by value), and the rest merged with
/// how many values they are, if any. Values without events (rows emptied by a rebuild)
/// are left out. The row of values past the dimension's bound
/// ([`FOLDED_LABEL`]) is never listed: it joins the rest, as one value.
pub fn split(mut rows: Values, limit: usize) -> (Values, Option<(usize, Rollup)>) {
    rows.retain(|(_, r)| r.count > 0);
    let folded = rows
        .iter()
        .position(|(v, _)| v == FOLDED_LABEL)
        .map(|i| rows.swap_remove(i));
    rows.sort_unstable_by(|(va, a), (vb, b)| b.count.cmp(&a.count).then_with(|| va.cmp(vb)));
    let mut rest = rows.split_off(limit.min(rows.len()));
    rest.extend(folded);
    let other = (!rest.is_empty()).then(|| {
        let mut merged = Rollup::default();
        for (_, row) in &rest {
            merged.merge(row);
        }
        (rest.len(), merged)
    });
    (rows, other)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(count: u64, durations: &[f64]) -> Rollup {
        let mut r = Rollup {
            count,
            errors: count / 2,
            bytes: count * 10,
            ..Rollup::default()
        };
        r.durations.extend(durations.iter().copied());
        r
    }

    #[test]
    fn the_top_values_and_the_rest_merged_exactly() {
        let rows = vec![
            ("/b".to_owned(), row(5, &[1.0])),
            ("/a".to_owned(), row(5, &[2.0])),
            ("/c".to_owned(), row(9, &[3.0])),
            ("/d".to_owned(), row(1, &[100.0, 200.0])),
            ("/e".to_owned(), row(2, &[300.0])),
            ("/gone".to_owned(), row(0, &[])),
        ];
        let (top, other) = split(rows, 2);
        let names: Vec<&str> = top.iter().map(|(v, _)| v.as_str()).collect();
        assert_eq!(names, ["/c", "/a"], "by count, ties by value");
        let (n, rest) = other.unwrap();
        assert_eq!(n, 3, "/b, /d and /e; the empty row is left out");
        assert_eq!((rest.count, rest.errors, rest.bytes), (8, 3, 80));
        // The merged sketch holds the rest's four durations: its median is 100 or 200.
        assert_eq!(rest.durations.count(), 4);
        let max = rest.durations.quantile(1.0).unwrap();
        assert!((max - 300.0).abs() <= 3.0, "{max}");

        let (top, other) = split(vec![("/x".to_owned(), row(1, &[]))], 10);
        assert_eq!(top.len(), 1);
        assert!(other.is_none(), "nothing left over");
    }

    #[test]
    fn dimensions_by_name() {
        assert_eq!(dimension("route").unwrap(), Dimension::Route);
        assert_eq!(dimension("medium").unwrap(), Dimension::Medium);
        for hidden in ["all", "error_route", "nope"] {
            assert_eq!(dimension(hidden).unwrap_err().code, "unknown_dimension");
        }
    }

    #[test]
    fn the_values_past_the_bound_join_the_rest() {
        let rows = vec![
            (FOLDED_LABEL.to_owned(), row(500, &[])),
            ("/a".to_owned(), row(3, &[])),
            ("/b".to_owned(), row(2, &[])),
        ];
        let (top, other) = split(rows.clone(), 10);
        assert_eq!(
            top.iter().map(|(v, _)| v.as_str()).collect::<Vec<_>>(),
            ["/a", "/b"]
        );
        let (n, merged) = other.unwrap();
        assert_eq!((n, merged.count), (1, 500));
        let (top, other) = split(rows, 1);
        assert_eq!(top.len(), 1);
        assert_eq!(other.map(|(n, r)| (n, r.count)), Some((2, 502)));
    }
}
