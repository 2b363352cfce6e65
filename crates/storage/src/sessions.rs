//! Sessions per day: paired once per day into `session_days` by the cron
//! ([`roll_session_days`]), with the day's sessions per hour of their start, and read
//! back by adding those rows (or, for a partial day at a range's end, their hours) up,
//! with only the days not stored yet paired live ([`session_stats`]).
//!
//! The invariant that makes the two agree: the sessions starting on day `D` are a
//! function of the marks in `[D, D + 1 day + MAX_SESSION_MS)` alone (see
//! [`tally_core::sessions::stats`]). The consumer marks `D` dirty whenever it stores a
//! mark in that window (`Write::InsertSessionEvents`), in the same transaction, and a
//! roll clears the mark only if its generation is unchanged. So a day that is not marked
//! dirty has its stored row, or no sessions (no marks, or none that pair); a marked day
//! is paired live. Days are rolled only when their window is over, so today and
//! yesterday, which keep changing, are always paired live.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use tally_core::Event;
use tally_core::filter::Filters;
use tally_core::sessions::{
    MAX_SESSION_MS, Mark, Pairing, Stats, stats_of_sessions_with, stream_order,
};
use tally_core::sql;
use tally_core::time::{DAY_MS, HOUR_MS, Interval};

use crate::exec::Executor;
use crate::filtered::{self, Path, Scan};
use crate::read::stretches;
use crate::{Error, EventStore, QueryStore, RollupStore, Write, Writer};

/// A day's window reaches one day and [`MAX_SESSION_MS`] past its start: the consumer
/// marks a mark's day and the one before ([`sql::MARK_SESSION_DAYS`]), which covers it
/// only while a session lasts at most a day.
const _: () = assert!(MAX_SESSION_MS <= DAY_MS);

/// The most stretches of a range paired live in one read; past it, the nearest
/// stretches are joined (the stored days between them are then paired live too), so a
/// read costs at most this many mark reads plus two, whatever the range.
pub const MAX_LIVE_STRETCHES: usize = 8;

/// Marks read per D1 query: some 600 KB of JSON. Pairing holds only the open starts of
/// the last day, so memory does not grow with the marks read, and a read makes one query
/// per this many live marks.
pub const MARKS_PAGE: u32 = 5_000;

/// A session day marked dirty, and the generation of its mark.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DirtyDay {
    pub project: String,
    pub day: i64,
    pub generation: i64,
}

/// What one [`roll_session_days`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RolledDays {
    /// Days paired and stored.
    pub rolled: usize,
    /// Days ready to roll still marked dirty afterwards (the backlog, or days a mark
    /// changed meanwhile).
    pub left: u64,
    /// D1 queries the run made.
    pub queries: u32,
}

#[derive(Deserialize)]
struct StoredDay {
    day: i64,
    sessions: i64,
    total_ms: i64,
    /// Per hour of the sessions' start, as [`hours_json`] writes it; none in rows
    /// stored before migration 0022.
    hours: Option<String>,
}

impl StoredDay {
    /// The sessions of this day starting in `[from_ms, to_ms)` (within the day), when
    /// the row tells: the whole day, or whole hours of a row that holds its hours.
    fn part(&self, (from_ms, to_ms): (i64, i64)) -> Option<Stats> {
        if (from_ms, to_ms) == (self.day, self.day + DAY_MS) {
            return Some(Stats {
                sessions: u64::try_from(self.sessions).unwrap_or(0),
                total_ms: self.total_ms,
            });
        }
        if from_ms % HOUR_MS != 0 || to_ms % HOUR_MS != 0 {
            return None;
        }
        let hours: Vec<(u64, i64)> = serde_json::from_str(self.hours.as_deref()?).ok()?;
        let first = usize::try_from((from_ms - self.day) / HOUR_MS).ok()?;
        let end = usize::try_from((to_ms - self.day) / HOUR_MS).ok()?;
        let mut stats = Stats::default();
        for &(sessions, total_ms) in hours.get(first..end)? {
            add(&mut stats, Stats { sessions, total_ms });
        }
        Some(stats)
    }
}

/// A day's sessions per hour of their start (`by_hour`, keyed by the hour's start), as
/// `session_days.hours` holds them: 24 `[sessions, total_ms]`.
fn hours_json(day: i64, by_hour: &BTreeMap<i64, Stats>) -> Result<String, Error> {
    let hours: Vec<(u64, i64)> = (0..24)
        .map(|h| {
            let stats = by_hour
                .get(&(day + h * HOUR_MS))
                .copied()
                .unwrap_or_default();
            (stats.sessions, stats.total_ms)
        })
        .collect();
    serde_json::to_string(&hours).map_err(|e| Error::Decode(e.to_string()))
}

#[derive(Deserialize)]
struct Day {
    day: i64,
}

#[derive(Deserialize)]
struct Count {
    n: i64,
}

/// Pairs and stores the dirty session days whose window is over at `now_ms`, oldest
/// first, within `budget` D1 queries (plus two: the list of days and the count left).
/// A day costs one query per [`MARKS_PAGE`] marks of its window and one commit, so the
/// budget bounds the run whatever the volume: a day that does not fit what is left of
/// it stays dirty for the next run (and is paired live meanwhile), and one that needs
/// more than a whole budget is never stored, only read live.
///
/// # Errors
///
/// The store's error; days rolled before it stay rolled.
pub async fn roll_session_days<S>(store: &S, budget: u32, now_ms: i64) -> Result<RolledDays, Error>
where
    S: EventStore + Executor + Writer,
{
    let last_ready = last_ready_day(now_ms);
    // At least a page and a commit a day.
    let most_days = budget / 2;
    let dirty: Vec<DirtyDay> = store
        .query(
            sql::DIRTY_SESSION_DAYS,
            vec![last_ready.into(), most_days.into()],
        )
        .await?;
    let mut run = RolledDays::default();
    let mut spent = 0u32;
    for day in &dirty {
        // What is left after this day's commit, for its pages.
        let pages = budget.saturating_sub(spent + 1);
        let window = (day.day, day.day + DAY_MS);
        let paired = pair_pages(
            store,
            &day.project,
            None,
            window,
            Interval::Hour,
            MARKS_PAGE,
            pages,
        )
        .await?;
        spent += paired.queries;
        let Some(by_hour) = paired.stats else {
            break;
        };
        let mut stats = Stats::default();
        for hour in by_hour.values() {
            add(&mut stats, *hour);
        }
        let hours = hours_json(day.day, &by_hour)?;
        store
            .commit(&[
                Write::PutSessionDay {
                    project: &day.project,
                    day: day.day,
                    stats,
                    hours: &hours,
                },
                Write::ClearSessionDay(day),
            ])
            .await?;
        spent += 1;
        run.rolled += 1;
    }
    run.queries = spent + 2;
    let left: Vec<Count> = store
        .query(sql::DIRTY_SESSION_DAYS_LEFT, vec![last_ready.into()])
        .await?;
    run.left = left.first().map_or(0, |c| c.n.max(0) as u64);
    Ok(run)
}

/// The last day whose window is over at `now_ms`: no mark yet to come is in it, unless
/// it is late (and then it marks the day dirty again).
fn last_ready_day(now_ms: i64) -> i64 {
    Interval::Day.floor(now_ms - MAX_SESSION_MS) - DAY_MS
}

/// Where the marks that can close sessions starting before `to_ms` end.
fn window_end(to_ms: i64) -> i64 {
    to_ms.saturating_add(MAX_SESSION_MS)
}

/// Sessions of `project` that start in `[from_ms, to_ms)`, per `interval` bucket (a
/// day or longer): the stored days of the range added up (the parts of its first and
/// last day from their hours, when those parts are whole hours), and the rest (days not
/// rolled or changed since, parts of days the rows cannot tell) paired live from their
/// marks, in at most [`MAX_LIVE_STRETCHES`] reads.
///
/// # Errors
///
/// The store's error.
pub async fn session_stats<S: EventStore + Executor>(
    store: &S,
    project: &str,
    from_ms: i64,
    to_ms: i64,
    interval: Interval,
) -> Result<BTreeMap<i64, Stats>, Error> {
    let mut out: BTreeMap<i64, Stats> = BTreeMap::new();
    if from_ms >= to_ms {
        return Ok(out);
    }
    let first_day = Interval::Day.floor(from_ms);
    let end_day = Interval::Day.floor(to_ms.saturating_sub(1)) + DAY_MS;
    let days = || vec![project.into(), first_day.into(), end_day.into()];
    let dirty: BTreeSet<i64> = store
        .query::<Day>(sql::DIRTY_SESSION_DAYS_OF_PROJECT, days())
        .await?
        .into_iter()
        .map(|d| d.day)
        .collect();
    let stored: BTreeMap<i64, StoredDay> = store
        .query::<StoredDay>(sql::SESSION_DAYS, days())
        .await?
        .into_iter()
        .map(|row| (row.day, row))
        .collect();
    // Each day's part of the range, and what its stored row says of it: a day neither
    // stored nor dirty has no sessions (see the module doc).
    let mut live: Vec<(i64, i64)> = Vec::new();
    let mut from_stored_rows: Vec<(i64, Stats)> = Vec::new();
    let mut day = first_day;
    while day < end_day {
        let part = (from_ms.max(day), to_ms.min(day + DAY_MS));
        let row = stored.get(&day).filter(|_| !dirty.contains(&day));
        match row.map(|row| row.part(part)) {
            Some(Some(stats)) => from_stored_rows.push((day, stats)),
            Some(None) => live.push(part),
            None if dirty.contains(&day) => live.push(part),
            None => {}
        }
        day += DAY_MS;
    }
    let live = stretches(live, MAX_LIVE_STRETCHES);
    for (day, stats) in from_stored_rows {
        // Stretches joined over it pair it live.
        let paired_live = live
            .iter()
            .any(|&(a, b)| (a..b).contains(&day.max(from_ms)));
        if !paired_live && stats.sessions > 0 {
            add_stats(&mut out, interval.floor(day), stats);
        }
    }
    for (from, to) in live {
        for (bucket, stats) in pair_live(store, project, None, from, to, interval).await? {
            add_stats(&mut out, bucket, stats);
        }
    }
    Ok(out)
}

/// Sessions under report filters: what [`filtered_session_stats`] gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilteredSessions {
    Counted {
        /// Sessions per bucket, scaled by `256 / k` when sampled (their count and their
        /// total duration, so averages are the sample's).
        stats: BTreeMap<i64, Stats>,
        path: Path,
        events_read: u64,
    },
    /// Even one sample bucket of the marks' window holds more events than the budget.
    OverBudget { events: u64 },
}

/// The sessions of `project` starting in `[from_ms, to_ms)` (within raw retention) that
/// hold an event meeting every one of `filters`, counted whole, per `interval` bucket
/// ([`tally_core::sessions::stats_of_sessions_with`]), within `row_budget` rows.
///
/// Read from raw events rather than marks and stored days: the events of
/// `[from_ms, to_ms + MAX_SESSION_MS)` through [`filtered::scan`] — all of them when
/// their rows fit the budget (exact), else every event of a sample of users (exact per
/// user, since a user's sessions and events are all in their bucket; scaled). A raw
/// event with a user named as the project's sessions start or stop is a mark, as the
/// consumer stores marks (by the names the project has now: marks stored under names
/// it used before are not read).
///
/// # Errors
///
/// The store's error.
pub async fn filtered_session_stats<S: RollupStore + QueryStore + Executor>(
    store: &S,
    project: &str,
    (from_ms, to_ms): (i64, i64),
    interval: Interval,
    filters: &Filters,
    row_budget: u64,
) -> Result<FilteredSessions, Error> {
    #[derive(Deserialize)]
    struct Names {
        start: String,
        stop: String,
    }
    let names: Vec<Names> = store
        .query(sql::SESSION_NAMES, vec![project.into()])
        .await?;
    let Some(Names { start, stop }) = names.into_iter().next() else {
        return Ok(FilteredSessions::Counted {
            stats: BTreeMap::new(),
            path: Path::Raw,
            events_read: 0,
        });
    };
    #[derive(Default)]
    struct Group {
        marks: Vec<Mark>,
        hits: Vec<(String, i64)>,
    }
    let add = |group: &mut Group, event: &Event| {
        let Some(user) = &event.user else { return };
        if event.name == start || event.name == stop {
            group.marks.push(Mark {
                user: user.clone(),
                timestamp: event.timestamp,
                event_id: event.event_id.clone(),
                is_start: event.name == start,
            });
        }
        if filters.matches(event) {
            group.hits.push((user.clone(), event.timestamp));
        }
    };
    // Every event of the window: marks need not meet the filters.
    let window = (from_ms, window_end(to_ms));
    let scanned = filtered::scan(
        store,
        project,
        window,
        &Filters::none(),
        row_budget,
        Group::default,
        add,
    )
    .await?;
    let scanned = match scanned {
        Scan::Events(scanned) => scanned,
        Scan::OverBudget { events } => return Ok(FilteredSessions::OverBudget { events }),
    };
    let scale = scanned.scale();
    let mut out: BTreeMap<i64, Stats> = BTreeMap::new();
    for group in scanned.groups {
        let sessions = tally_core::sessions::pair(group.marks);
        let kept = stats_of_sessions_with(&sessions, group.hits, interval, from_ms, to_ms);
        for (bucket, stats) in kept {
            add_stats(&mut out, bucket, stats);
        }
    }
    for stats in out.values_mut() {
        stats.sessions = stats.sessions.saturating_mul(scale);
        stats.total_ms = stats
            .total_ms
            .saturating_mul(i64::try_from(scale).unwrap_or(i64::MAX));
    }
    Ok(FilteredSessions::Counted {
        stats: out,
        path: scanned.path,
        events_read: scanned.events_read,
    })
}

/// [`session_stats`] of one user (`user_hash` as in [`EventStore::session_marks`]),
/// paired live from the user's marks alone (read through their own index).
///
/// # Errors
///
/// The store's error.
pub async fn user_session_stats<S: EventStore>(
    store: &S,
    project: &str,
    user_hash: &str,
    from_ms: i64,
    to_ms: i64,
    interval: Interval,
) -> Result<BTreeMap<i64, Stats>, Error> {
    pair_live(store, project, Some(user_hash), from_ms, to_ms, interval).await
}

/// The sessions starting in `[from_ms, to_ms)` per `interval` bucket, paired from the
/// marks of `[from_ms, to_ms + MAX_SESSION_MS)` read [`MARKS_PAGE`] at a time.
async fn pair_live<S: EventStore>(
    store: &S,
    project: &str,
    user_hash: Option<&str>,
    from_ms: i64,
    to_ms: i64,
    interval: Interval,
) -> Result<BTreeMap<i64, Stats>, Error> {
    pair_in_pages(
        store,
        project,
        user_hash,
        (from_ms, to_ms),
        interval,
        MARKS_PAGE,
    )
    .await
}

/// [`pair_live`] in pages of `page` marks (tests page in small steps).
///
/// # Errors
///
/// The store's error, or [`Error::Decode`] if the store returned marks out of order.
#[doc(hidden)]
pub async fn pair_in_pages<S: EventStore>(
    store: &S,
    project: &str,
    user_hash: Option<&str>,
    range: (i64, i64),
    interval: Interval,
    page: u32,
) -> Result<BTreeMap<i64, Stats>, Error> {
    let paired = pair_pages(store, project, user_hash, range, interval, page, u32::MAX).await?;
    Ok(paired.stats.unwrap_or_default())
}

/// What [`pair_pages`] did: the sessions, unless the pages it may read ran out first,
/// and the queries it made.
struct Paired {
    stats: Option<BTreeMap<i64, Stats>>,
    queries: u32,
}

/// Pairs the sessions starting in `[from_ms, to_ms)` from the marks of `[from_ms, to_ms
/// + MAX_SESSION_MS)`, read `page` at a time in at most `max_pages` queries.
async fn pair_pages<S: EventStore>(
    store: &S,
    project: &str,
    user_hash: Option<&str>,
    (from_ms, to_ms): (i64, i64),
    interval: Interval,
    page: u32,
    max_pages: u32,
) -> Result<Paired, Error> {
    let mut pairing = Pairing::new(interval, from_ms, to_ms);
    let end = window_end(to_ms);
    let mut after: Option<Mark> = None;
    // The marks of the latest instant read, held until the next instant begins (it may
    // go on in the next page): the store gives an instant's marks by event id, pairing
    // takes them in `stream_order`.
    let mut instant: Vec<Mark> = Vec::new();
    let add_instant = |pairing: &mut Pairing, instant: &mut Vec<Mark>| -> Result<(), Error> {
        instant.sort_by(|a, b| stream_order(a).cmp(&stream_order(b)));
        for mark in instant.drain(..) {
            pairing
                .add(&mark)
                .map_err(|e| Error::Decode(e.to_string()))?;
        }
        Ok(())
    };
    let mut queries = 0;
    loop {
        if queries == max_pages {
            return Ok(Paired {
                stats: None,
                queries,
            });
        }
        let marks = store
            .session_marks(project, user_hash, from_ms, end, after.as_ref(), page)
            .await?;
        queries += 1;
        let full = marks.len() == page as usize;
        after = marks.last().cloned();
        for mark in marks {
            if instant
                .first()
                .is_some_and(|m| m.timestamp != mark.timestamp)
            {
                add_instant(&mut pairing, &mut instant)?;
            }
            instant.push(mark);
        }
        if !full {
            add_instant(&mut pairing, &mut instant)?;
            return Ok(Paired {
                stats: Some(pairing.finish()),
                queries,
            });
        }
    }
}

fn add_stats(out: &mut BTreeMap<i64, Stats>, bucket: i64, stats: Stats) {
    add(out.entry(bucket).or_default(), stats);
}

fn add(sum: &mut Stats, stats: Stats) {
    sum.sessions += stats.sessions;
    sum.total_ms += stats.total_ms;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stretches_join_neighbours_then_the_nearest() {
        let day = |d: i64| (d * 10, d * 10 + 10);
        assert_eq!(
            stretches(vec![(0, 0), day(1), day(2), day(4), (50, 55)], 8),
            vec![(10, 30), (40, 55)]
        );
        assert_eq!(
            stretches(vec![day(0), day(2), day(3), day(9), day(20)], 2),
            vec![(0, 100), (200, 210)]
        );
    }

    #[test]
    fn a_day_is_ready_once_its_window_is_over() {
        // A day's window is the day and the next (`MAX_SESSION_MS`); it is over at the
        // start of the day after that.
        let day0 = 100 * DAY_MS;
        assert_eq!(last_ready_day(day0 + 2 * DAY_MS), day0);
        assert_eq!(last_ready_day(day0 + 2 * DAY_MS - 1), day0 - DAY_MS);
    }
}
