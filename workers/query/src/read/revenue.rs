//! `GET /v1/projects/{p}/revenue?by=name|source|campaign&limit=N`: the revenue events
//! carried (`metadata.revenue`, Plausible's `$`) per currency, each currency's total
//! and its `limit` (default 10) names, sources or campaigns with the most revenue, the
//! rest in `other`. From the revenue rollups (`revenue_name`, `revenue_source`,
//! `revenue_campaign`), so it reads rows, not raw events, whatever the project's volume;
//! under `filter`s through the one filtered read (raw events or a sample past the
//! budget). Currencies are never added together or converted.

use serde_json::{Value, json};
use tally_core::revenue::{self, Currency, Line, Total};
use tally_core::rollup::Dimension;
use tally_edge::ApiError;
use tally_storage::read;
use worker::{Request, Response};

use super::filtered;
use crate::edge::RequestEnv;
use crate::edge::params::Params;

/// Seconds a client may reuse an answer.
const MAX_AGE_S: u32 = 300;

/// The revenue dimension `by` names: `name` (the default), `source` or `campaign`.
///
/// # Errors
///
/// 400 `invalid_parameter` naming the choices.
pub fn by(param: Option<&str>) -> Result<Dimension, ApiError> {
    match param.unwrap_or("name") {
        "name" => Ok(Dimension::RevenueName),
        "source" => Ok(Dimension::RevenueSource),
        "campaign" => Ok(Dimension::RevenueCampaign),
        other => Err(ApiError::new(
            400,
            "invalid_parameter",
            format!("by must be name, source or campaign, not {other:?}"),
        )),
    }
}

/// The name `by` gives a revenue dimension.
pub fn by_name(dimension: Dimension) -> &'static str {
    match dimension {
        Dimension::RevenueSource => "source",
        Dimension::RevenueCampaign => "campaign",
        _ => "name",
    }
}

pub async fn get(req: &Request, env: &RequestEnv, project: &str) -> Result<Response, ApiError> {
    let dimension = by(Params::of(req)?.get("by"))?;
    filtered::one_dimension(
        req,
        env,
        project,
        "revenue",
        dimension,
        &[dimension],
        MAX_AGE_S,
        |read, limit| {
            let table = revenue::table(totals(&read.rows, dimension), limit);
            body(project, dimension, limit, &table)
        },
    )
    .await
}

/// The merged rows of `dimension` as the revenue table takes them.
pub fn totals(
    rows: &tally_storage::filtered::Rows,
    dimension: Dimension,
) -> impl Iterator<Item = (String, Total)> {
    read::merge(rows)
        .into_iter()
        .filter(move |((d, _), _)| *d == dimension)
        .map(|((_, value), row)| {
            let total = Total {
                thousandths: row.revenue,
                events: row.count,
            };
            (value, total)
        })
}

/// The answer: per currency its amount and events, its lines (`value` null for the
/// events without a source or campaign) and `other`.
pub fn body(project: &str, dimension: Dimension, limit: usize, table: &[Currency]) -> Value {
    let total = |t: &Total| json!({"amount": revenue::amount(t.thousandths), "events": t.events});
    let currencies: Vec<Value> = table
        .iter()
        .map(|c| {
            let values: Vec<Value> = c
                .lines
                .iter()
                .map(|(line, t)| {
                    let mut entry = total(t);
                    entry["value"] = match line {
                        Line::Value(v) => v.as_str().into(),
                        Line::Without => Value::Null,
                    };
                    entry
                })
                .collect();
            let mut entry = total(&c.total);
            entry["currency"] = c.code.as_str().into();
            entry["values"] = values.into();
            entry["other"] = c.other.as_ref().map_or(Value::Null, total);
            entry
        })
        .collect();
    json!({
        "project": project,
        "by": by_name(dimension),
        "limit": limit,
        "currencies": currencies,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_names_the_three_revenue_dimensions() {
        for d in Dimension::REVENUE {
            assert_eq!(by(Some(by_name(d))).unwrap(), d);
        }
        assert_eq!(by(None).unwrap(), Dimension::RevenueName);
        let err = by(Some("route")).unwrap_err();
        assert_eq!((err.status, err.code), (400, "invalid_parameter"));
    }

    #[test]
    fn the_answer_keeps_currencies_apart_and_amounts_decimal() {
        let t = |thousandths, events| Total {
            thousandths,
            events,
        };
        let rows = [
            (revenue::revenue_value("EUR", Some("google")), t(20_090, 3)),
            (revenue::revenue_value("EUR", None), t(10, 1)),
            (revenue::revenue_value("USD", Some("")), t(5_000, 1)),
        ];
        let table = revenue::table(rows, 10);
        let got = body("shop", Dimension::RevenueSource, 10, &table);
        assert_eq!(
            got,
            json!({
                "project": "shop", "by": "source", "limit": 10,
                "currencies": [
                    {"currency": "EUR", "amount": 20.1, "events": 4, "other": null,
                     "values": [{"value": "google", "amount": 20.09, "events": 3},
                                {"value": null, "amount": 0.01, "events": 1}]},
                    {"currency": "USD", "amount": 5.0, "events": 1, "values": [],
                     "other": {"amount": 5.0, "events": 1}},
                ],
            })
        );
    }
}
