//! Revenue: the money an event reports, as rollups sum it.
//!
//! An event carries revenue in `metadata.revenue = {"currency": "EUR", "amount": 12.5}`:
//! Plausible's tracker sends it as `$` (or `revenue`) and [`crate::plausible::parse`]
//! checks and normalizes it into that member; a native event may send the same member.
//! [`of`] reads it back, and only that shape counts: a `metadata.revenue` of another
//! shape is metadata like any other (it was accepted before revenue was summed, and a
//! project may use the name for something else).
//!
//! Amounts are summed exactly as integers of thousandths of the currency's unit
//! ([`Revenue::thousandths`]): three decimals hold the minor unit of every ISO 4217
//! currency but one (CLF's four), and an integer sum is exact where a float sum drifts.
//! An amount is at most [`MAX_AMOUNT`] units, so one event's thousandths (10^15) fit
//! D1's exact integers, and a rollup row's sum saturates at
//! [`crate::rollup::MAX_STORED_INTEGER`] (about 9 × 10^12 units, nine events of the
//! largest amount) like every stored sum. Amounts below zero are refused: a refund is
//! not money received, and a saturating sum of both signs would depend on the order it
//! was added in. Currencies are never added together: every revenue row is keyed by
//! its currency.

use serde_json::{Map, Value};

/// The largest amount of one event, in units of its currency.
pub const MAX_AMOUNT: f64 = 1e12;

/// The revenue of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revenue {
    /// An ISO 4217 code such as `EUR` ([`ISO_4217`]), upper-case.
    pub currency: String,
    /// The amount in thousandths of the currency's unit, rounded half away from zero.
    pub thousandths: u64,
}

/// The ISO 4217 currency codes (list one, 2025, with `XCG`; not the testing code `XTS`
/// or "no currency" `XXX`), and the codes withdrawn since 2020 (`CUC`, `HRK`, `SLL`,
/// `ZWL`) that clients may still send, in order. A misspelt code would otherwise become
/// a currency of its own in every revenue table, and its money would be lost from the
/// one it meant.
pub const ISO_4217: [&str; 181] = [
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD",
    "CAD", "CDF", "CHE", "CHF", "CHW", "CLF", "CLP", "CNY", "COP", "COU", "CRC", "CUC", "CUP",
    "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP",
    "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HRK", "HTG", "HUF", "IDR",
    "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW",
    "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA",
    "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN", "NAD",
    "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG",
    "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE",
    "SLL", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP",
    "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "USN", "UYI", "UYU", "UYW", "UZS", "VED",
    "VES", "VND", "VUV", "WST", "XAF", "XAG", "XAU", "XBA", "XBB", "XBC", "XBD", "XCD", "XCG",
    "XDR", "XOF", "XPD", "XPF", "XPT", "XSU", "XUA", "YER", "ZAR", "ZMW", "ZWG", "ZWL",
];

/// The currency as stored: an ISO 4217 code ([`ISO_4217`]), upper-cased; `None` for
/// anything else.
pub fn currency(text: &str) -> Option<String> {
    let code = text.to_ascii_uppercase();
    ISO_4217
        .binary_search(&code.as_str())
        .is_ok()
        .then_some(code)
}

/// An amount's thousandths, if it is a finite number from 0 to [`MAX_AMOUNT`]. Exact for
/// amounts of at most three decimals: `amount * 1000` is within 0.25 of the integer
/// below 10^15, so rounding finds it.
pub fn thousandths(amount: f64) -> Option<u64> {
    (amount.is_finite() && (0.0..=MAX_AMOUNT).contains(&amount))
        .then(|| (amount * 1000.0).round() as u64)
}

/// The revenue `metadata.revenue` holds, if it has the normalized shape: an object with
/// an ISO 4217 currency and a number `amount` that [`thousandths`] takes.
pub fn of(metadata: Option<&Map<String, Value>>) -> Option<Revenue> {
    let revenue = metadata?.get("revenue")?.as_object()?;
    let currency = currency(revenue.get("currency")?.as_str()?)?;
    let thousandths = thousandths(revenue.get("amount")?.as_f64()?)?;
    Some(Revenue {
        currency,
        thousandths,
    })
}

/// The value of a revenue dimension (`crate::rollup::Dimension::REVENUE`): the currency
/// and the name, source or campaign as a compact JSON array, `["EUR","purchase"]`, the
/// second `null` for an event without a source or campaign, `""` for the currency's
/// folded row.
pub fn revenue_value(currency: &str, second: Option<&str>) -> String {
    serde_json::json!([currency, second]).to_string()
}

/// The currency and second value of a revenue dimension's value, if it is one.
pub fn revenue_parts(value: &str) -> Option<(String, Option<String>)> {
    serde_json::from_str(value).ok()
}

/// What a revenue table's line stands for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Line {
    /// One name, source or campaign.
    Value(String),
    /// The events without a source or campaign.
    Without,
}

/// A sum of revenue and the events it came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Total {
    pub thousandths: u64,
    pub events: u64,
}

impl Total {
    /// Sums saturate (rows' sums are at most 2^53 − 1 each; an answer adds a few).
    fn add(&mut self, other: Total) {
        self.thousandths = self.thousandths.saturating_add(other.thousandths);
        self.events = self.events.saturating_add(other.events);
    }
}

/// One currency's revenue: its total, its lines with the most revenue, and the rest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Currency {
    pub code: String,
    pub total: Total,
    pub lines: Vec<(Line, Total)>,
    /// The lines past the limit and the values folded past a rollup bound, together.
    pub other: Option<Total>,
}

/// The revenue table of merged rows of one revenue dimension (`(value, total)` per
/// [`revenue_value`]): one [`Currency`] per currency, those with the most revenue first
/// (ties by code), each keeping its `limit` lines with the most revenue (then events,
/// then value). Currencies are never added together.
pub fn table(rows: impl IntoIterator<Item = (String, Total)>, limit: usize) -> Vec<Currency> {
    use std::collections::BTreeMap;
    // Per currency: its lines, and its folded rows.
    type Lines = (Vec<(Line, Total)>, Option<Total>);
    let mut by_currency: BTreeMap<String, Lines> = BTreeMap::new();
    for (value, total) in rows {
        let Some((code, second)) = revenue_parts(&value) else {
            continue;
        };
        if total.events == 0 {
            continue;
        }
        let (lines, other) = by_currency.entry(code).or_default();
        match second {
            Some(folded) if folded.is_empty() => other.get_or_insert_default().add(total),
            Some(value) => lines.push((Line::Value(value), total)),
            None => lines.push((Line::Without, total)),
        }
    }
    let mut out: Vec<Currency> = by_currency
        .into_iter()
        .map(|(code, (mut lines, mut other))| {
            let mut total = other.unwrap_or_default();
            for (_, line) in &lines {
                total.add(*line);
            }
            lines.sort_unstable_by(|(la, a), (lb, b)| {
                (b.thousandths, b.events)
                    .cmp(&(a.thousandths, a.events))
                    .then_with(|| la.cmp(lb))
            });
            for (_, rest) in lines.split_off(limit.min(lines.len())) {
                other.get_or_insert_default().add(rest);
            }
            Currency {
                code,
                total,
                lines,
                other,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.total
            .thousandths
            .cmp(&a.total.thousandths)
            .then_with(|| a.code.cmp(&b.code))
    });
    out
}

/// Thousandths as the decimal amount answers carry: `1322.22` for 1,322,220. The
/// quotient is the double nearest the decimal, and a decimal of at most 15 significant
/// digits prints back as itself, so every amount below 10^12 units is shown exactly;
/// past it (sums of many of the largest amounts) the last decimal may be off by one.
pub fn amount(thousandths: u64) -> f64 {
    thousandths as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(metadata: Value, expected: Option<(&str, u64)>) {
        let map = metadata.as_object().cloned();
        let got = of(map.as_ref()).map(|r| (r.currency, r.thousandths));
        assert_eq!(got, expected.map(|(c, t)| (c.to_owned(), t)), "{metadata}");
    }

    #[test]
    fn only_the_normalized_shape_is_revenue() {
        check(
            json!({"revenue": {"currency": "EUR", "amount": 1322.22}}),
            Some(("EUR", 1_322_220)),
        );
        check(
            json!({"revenue": {"currency": "usd", "amount": 10}}),
            Some(("USD", 10_000)),
        );
        check(
            json!({"revenue": {"currency": "JPY", "amount": 1e12}}),
            Some(("JPY", 1_000_000_000_000_000)),
        );
        // Half a thousandth rounds away from zero; more decimals are rounded.
        check(
            json!({"revenue": {"currency": "BHD", "amount": 0.0005}}),
            Some(("BHD", 1)),
        );
        check(
            json!({"revenue": {"currency": "EUR", "amount": 0.12345}}),
            Some(("EUR", 123)),
        );
        for not in [
            json!({}),
            json!({"revenue": "lots"}),
            json!({"revenue": 12}),
            json!({"revenue": {"currency": "EURO", "amount": 1}}),
            json!({"revenue": {"currency": "E1R", "amount": 1}}),
            json!({"revenue": {"currency": "ABC", "amount": 1}}),
            json!({"revenue": {"currency": "XTS", "amount": 1}}),
            json!({"revenue": {"currency": "ÉUR", "amount": 1}}),
            json!({"revenue": {"currency": "EUR", "amount": "1"}}),
            json!({"revenue": {"currency": "EUR", "amount": -1}}),
            json!({"revenue": {"currency": "EUR", "amount": 1e12 + 1.0}}),
            json!({"revenue": {"amount": 1}}),
        ] {
            check(not, None);
        }
        assert_eq!(of(None), None);
    }

    #[test]
    fn tables_keep_currencies_apart_and_fold_the_rest() {
        let t = |thousandths, events| Total {
            thousandths,
            events,
        };
        let rows = [
            (revenue_value("EUR", Some("google")), t(5_000, 2)),
            (revenue_value("EUR", None), t(7_000, 1)),
            (revenue_value("EUR", Some("bing")), t(1_000, 1)),
            (revenue_value("EUR", Some("")), t(500, 1)),
            (revenue_value("USD", Some("google")), t(90_000, 3)),
            (revenue_value("GBP", Some("emptied")), t(0, 0)),
            ("not a pair".to_owned(), t(1, 1)),
        ];
        let got = table(rows, 2);
        assert_eq!(
            got,
            [
                Currency {
                    code: "USD".into(),
                    total: t(90_000, 3),
                    lines: vec![(Line::Value("google".into()), t(90_000, 3))],
                    other: None,
                },
                Currency {
                    code: "EUR".into(),
                    total: t(13_500, 5),
                    lines: vec![
                        (Line::Without, t(7_000, 1)),
                        (Line::Value("google".into()), t(5_000, 2)),
                    ],
                    other: Some(t(1_500, 2)),
                },
            ]
        );
    }

    #[test]
    fn three_decimals_are_exact_up_to_the_largest_amount() {
        for (amount, expected) in [
            (0.001, 1),
            (0.1 + 0.2, 300),
            (19.99, 19_990),
            (999_999_999_999.999, 999_999_999_999_999),
            (123_456_789.123, 123_456_789_123),
        ] {
            assert_eq!(thousandths(amount), Some(expected), "{amount}");
        }
        assert_eq!(amount(1_322_220), 1322.22);
        assert_eq!(amount(1), 0.001);
        assert_eq!(
            serde_json::to_string(&amount(999_999_999_999_999)).unwrap(),
            "999999999999.999"
        );
    }

    #[test]
    fn the_code_list_is_sorted_three_capital_letters() {
        assert!(
            ISO_4217.windows(2).all(|w| w[0] < w[1]),
            "sorted, no repeats"
        );
        assert!(
            ISO_4217
                .iter()
                .all(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()))
        );
        for code in ["EUR", "usd", "Jpy", "CLF", "XCG", "ZWG"] {
            assert_eq!(currency(code), Some(code.to_ascii_uppercase()), "{code}");
        }
        for code in ["", "EU", "EURO", "ABC", "XTS", "XXX", "eur ", "\u{0130}RR"] {
            assert_eq!(currency(code), None, "{code:?}");
        }
    }
}
