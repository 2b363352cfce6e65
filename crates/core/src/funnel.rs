//! Funnels: how many users went through ordered steps (event names) within a window.
//!
//! A user reaches step `k` when they have events for steps `0..=k` in that order, each
//! at or after the one before, all within the window of the step-0 event that started
//! the chain. For every step the best chain is the one that started last (it leaves the
//! most of the window), so one pass over a user's events in time order suffices (as
//! ClickHouse's `windowFunnel` does). The result does not depend on arrival order:
//! events are sorted by time, then step, then id, before they are walked.

use std::collections::BTreeMap;

use crate::Error;
use crate::time::DAY_MS;

/// One raw event that names a funnel step, of a user (the stored identifier hash).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Hit {
    pub user: String,
    /// Epoch milliseconds.
    pub timestamp: i64,
    /// Breaks ties between events at the same millisecond, deterministically.
    pub event_id: String,
    pub name: String,
}

/// Fewest and most steps a funnel may have.
pub const MIN_STEPS: usize = 2;
pub const MAX_STEPS: usize = 10;

/// The longest window accepted.
pub const MAX_WINDOW_MS: i64 = 90 * DAY_MS;

/// Most raw events of the steps one funnel holds in memory (about 10 MB at most); a
/// range that holds more is refused, and a shorter one asked for.
pub const MAX_HITS: usize = 100_000;

/// The default window: a day from each user's first step.
pub const DEFAULT_WINDOW: &str = "1d";

/// One step of a funnel's answer: the users who reached it in order, and their share of
/// the first step's and of the previous step's users (0 when those had none).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Conversion {
    pub name: String,
    pub users: u64,
    pub conversion: f64,
    pub from_previous: f64,
}

/// The answer for `steps` from [`count`]'s users per step: what the query API answers
/// and the dashboard shows.
pub fn conversions(steps: &[String], counts: &[u64]) -> Vec<Conversion> {
    let share = |part: u64, whole: u64| {
        if whole == 0 {
            0.0
        } else {
            part as f64 / whole as f64
        }
    };
    let first = counts.first().copied().unwrap_or(0);
    steps
        .iter()
        .zip(counts)
        .enumerate()
        .map(|(i, (name, &users))| {
            let previous = if i == 0 { users } else { counts[i - 1] };
            Conversion {
                name: name.clone(),
                users,
                conversion: share(users, first),
                from_previous: share(users, previous),
            }
        })
        .collect()
}

/// How many users reached each step: element `k` counts the users who went through
/// steps `0..=k` in order within `window_ms` of their step-0 event.
pub fn count(hits: Vec<Hit>, steps: &[String], window_ms: i64) -> Vec<u64> {
    let mut counts = vec![0u64; steps.len()];
    if steps.is_empty() {
        return counts;
    }
    // Each hit as (time, first step, id, every step its name stands for: a name may
    // appear more than once), per user.
    type Walk = Vec<(i64, usize, String, Vec<usize>)>;
    let mut by_user: BTreeMap<String, Walk> = BTreeMap::new();
    for hit in hits {
        let indices: Vec<usize> = (0..steps.len()).filter(|&k| steps[k] == hit.name).collect();
        if let Some(&first) = indices.first() {
            by_user.entry(hit.user).or_default().push((
                hit.timestamp,
                first,
                hit.event_id,
                indices,
            ));
        }
    }
    for mut hits in by_user.into_values() {
        hits.sort_unstable();
        // `started[k]`: the latest step-0 time of a chain that has reached step `k`.
        let mut started: Vec<Option<i64>> = vec![None; steps.len()];
        for (t, _, _, indices) in &hits {
            // Highest step first, so one event never advances a chain twice.
            for &k in indices.iter().rev() {
                if k == 0 {
                    started[0] = Some(*t);
                } else if let Some(s) = started[k - 1]
                    && t - s <= window_ms
                {
                    started[k] = Some(started[k].map_or(s, |old| old.max(s)));
                }
            }
        }
        if let Some(reached) = started.iter().rposition(Option::is_some) {
            for c in &mut counts[..=reached] {
                *c += 1;
            }
        }
    }
    counts
}

/// Parses a window such as `30m`, `12h` or `7d` (also `s`), at most [`MAX_WINDOW_MS`].
///
/// # Errors
///
/// [`Error::Window`], a message a person can act on.
pub fn parse_window(text: &str) -> Result<i64, Error> {
    let bad = || Error::Window(text.to_owned());
    let unit = text.chars().last().ok_or_else(bad)?;
    let digits = &text[..text.len() - unit.len_utf8()];
    let unit_ms = match unit {
        's' => 1000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => DAY_MS,
        _ => return Err(bad()),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: i64 = digits.parse().map_err(|_| bad())?;
    match n.checked_mul(unit_ms) {
        Some(ms) if ms > 0 && ms <= MAX_WINDOW_MS => Ok(ms),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn hit(user: &str, minute: i64, name: &str) -> Hit {
        Hit {
            user: user.into(),
            timestamp: minute * MIN,
            event_id: format!("{user}-{minute}-{name}"),
            name: name.into(),
        }
    }

    fn steps(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    fn check(hits: Vec<Hit>, names: &[&str], window_minutes: i64, expected: &[u64]) {
        let mut reversed = hits.clone();
        reversed.reverse();
        let got = count(hits, &steps(names), window_minutes * MIN);
        assert_eq!(got, expected, "{names:?}");
        assert_eq!(
            count(reversed, &steps(names), window_minutes * MIN),
            expected,
            "arrival order does not matter"
        );
    }

    #[test]
    fn users_count_at_every_step_they_reached_in_order() {
        let hits = vec![
            // a: all three in order.
            hit("a", 0, "open"),
            hit("a", 5, "click"),
            hit("a", 9, "buy"),
            // b: open and click; the buy came before the click, so it does not count.
            hit("b", 0, "open"),
            hit("b", 1, "buy"),
            hit("b", 2, "click"),
            // c: click and buy without an open: nothing.
            hit("c", 3, "click"),
            hit("c", 4, "buy"),
            // d: open only, twice.
            hit("d", 1, "open"),
            hit("d", 2, "open"),
            // Other names are ignored.
            hit("e", 1, "pause"),
        ];
        check(hits, &["open", "click", "buy"], 60, &[3, 2, 1]);
    }

    #[test]
    fn the_window_runs_from_the_chain_start_and_a_later_start_may_fit() {
        let hits = vec![
            // The first open is too long before the buy, the second is close enough.
            hit("a", 0, "open"),
            hit("a", 50, "open"),
            hit("a", 55, "click"),
            hit("a", 100, "buy"),
            // Exactly the window: included.
            hit("b", 0, "open"),
            hit("b", 30, "click"),
            hit("b", 60, "buy"),
            // One minute over: stops at click.
            hit("c", 0, "open"),
            hit("c", 30, "click"),
            hit("c", 61, "buy"),
        ];
        check(hits, &["open", "click", "buy"], 60, &[3, 3, 2]);
    }

    #[test]
    fn one_event_is_one_step_and_the_same_instant_counts_in_step_order() {
        // A funnel that repeats a name needs two events of it.
        check(vec![hit("a", 0, "view")], &["view", "view"], 10, &[1, 0]);
        check(
            vec![hit("a", 0, "view"), hit("a", 1, "view")],
            &["view", "view"],
            10,
            &[1, 1],
        );
        // Two steps at the same millisecond: the earlier step counts first.
        check(
            vec![hit("a", 3, "buy"), hit("a", 3, "open")],
            &["open", "buy"],
            10,
            &[1, 1],
        );
        check(Vec::new(), &["open", "buy"], 10, &[0, 0]);
    }

    #[test]
    fn conversions_are_shares_of_the_first_and_the_previous_step() {
        let got = conversions(&steps(&["open", "click", "buy"]), &[8, 2, 1]);
        let figures: Vec<(&str, u64, f64, f64)> = got
            .iter()
            .map(|c| (c.name.as_str(), c.users, c.conversion, c.from_previous))
            .collect();
        assert_eq!(
            figures,
            [
                ("open", 8, 1.0, 1.0),
                ("click", 2, 0.25, 0.25),
                ("buy", 1, 0.125, 0.5)
            ]
        );
        // Nobody at the first step: every share is 0, never a division by zero.
        let none = conversions(&steps(&["open", "buy"]), &[0, 0]);
        assert!(
            none.iter()
                .all(|c| c.conversion == 0.0 && c.from_previous == 0.0)
        );
    }

    #[test]
    fn windows() {
        assert_eq!(parse_window("30m"), Ok(30 * MIN));
        assert_eq!(parse_window("1d"), Ok(DAY_MS));
        assert_eq!(parse_window("90s"), Ok(90_000));
        assert_eq!(parse_window("90d"), Ok(MAX_WINDOW_MS));
        for bad in [
            "",
            "d",
            "0h",
            "91d",
            "1w",
            "-1h",
            "1.5h",
            "h1",
            "99999999999999999d",
            "1é",
        ] {
            let err = parse_window(bad).expect_err(bad).to_string();
            assert!(err.contains("not a duration"), "{err}");
        }
    }
}
