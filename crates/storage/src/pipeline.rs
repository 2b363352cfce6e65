//! The aggregator's logic, written once over the storage traits: exactly-once storage
//! of events with incremental hourly rollups, rolling days and months, rebuilding hours
//! from raw events, and retention.
//!
//! Exactly once, under redelivery and concurrency: a batch reads which of its events
//! are stored and the rollup rows they touch, computes the new rows, and commits raw
//! events and rows in one transaction whose guards (a plain `INSERT` of the events, the
//! rows' optimistic-lock versions) fail if anything read has changed. A failed guard
//! rolls everything back and the batch is read and applied again.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use futures_util::future::join_all;
use tally_core::Event;
use tally_core::alerts::{MINUTE_ROWS_KEPT_MS, MinuteSources};
use tally_core::queue::{Dropped, Message};
use tally_core::rollup::{self, Key, Period, Rollup, ValueGroup};
use tally_core::time::{DAY_MS, Interval};

use tally_core::sql;

use crate::exec::Executor;
use crate::shard::{OnShard, Placements};
use crate::{
    Dirty, Error, EventStore, JobLog, PURGE_RAW_STATEMENTS, RollupStore, Versioned, Write, Writer,
};

/// Most keys passed to one read.
const READ_CHUNK: usize = 2000;

/// How often a batch is read and applied again after losing a race.
pub const MAX_ATTEMPTS: u32 = 5;

/// What [`store_events`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    /// Events in the batch.
    pub received: usize,
    /// Events stored now; the rest were stored before or repeated in the batch.
    pub new: usize,
    /// Rollup rows written: hour rows, and minute rows for realtime and alert rules.
    pub rollup_rows: usize,
    /// Attempts it took (more than one after a lost race).
    pub attempts: u32,
}

/// Stores events exactly once and folds the new ones into their hourly rollup rows,
/// marking their days dirty for [`roll_dirty`], and the recent ones into the minute rows
/// that `minutes` says are read (the realtime view's, and those of enabled alert rules:
/// the caller reads the rules, this takes them as data).
///
/// # Errors
///
/// The store's error when a read or the commit fails (nothing was applied then), or
/// [`Error::Conflict`] after [`MAX_ATTEMPTS`] lost races.
pub async fn store_events<S>(
    store: &S,
    events: &[Event],
    now_ms: i64,
    minutes: &MinuteSources,
) -> Result<Stored, Error>
where
    S: EventStore + RollupStore + Writer,
{
    let mut attempts = 0;
    loop {
        attempts += 1;
        match try_store(store, events, now_ms, minutes).await {
            Err(Error::Conflict(_)) if attempts < MAX_ATTEMPTS => continue,
            result => return result.map(|stored| Stored { attempts, ..stored }),
        }
    }
}

async fn try_store<S>(
    store: &S,
    events: &[Event],
    now_ms: i64,
    minutes: &MinuteSources,
) -> Result<Stored, Error>
where
    S: EventStore + RollupStore + Writer,
{
    let mut seen = HashSet::new();
    let unique: Vec<&Event> = events
        .iter()
        .filter(|e| seen.insert((e.project.as_str(), e.event_id.as_str())))
        .collect();
    let ids: Vec<(&str, &str)> = unique
        .iter()
        .map(|e| (e.project.as_str(), e.event_id.as_str()))
        .collect();
    // Reads take their keys as one JSON parameter; keep each well under D1's 2 MB.
    let mut existing = HashSet::new();
    for chunk in ids.chunks(READ_CHUNK) {
        existing.extend(store.existing_events(chunk).await?);
    }
    let new: Vec<Event> = unique
        .into_iter()
        .filter(|e| !existing.contains(&(e.project.clone(), e.event_id.clone())))
        .cloned()
        .collect();
    let mut stored = Stored {
        received: events.len(),
        new: new.len(),
        ..Stored::default()
    };
    if new.is_empty() {
        return Ok(stored);
    }

    // Hour rows for every event; minute rows for events recent enough to fall in a
    // rule's window before the rows are purged, and only those that the realtime view or
    // an enabled rule reads: each row written is billed, read or not.
    let recent = new
        .iter()
        .filter(|e| e.timestamp >= now_ms - MINUTE_ROWS_KEPT_MS);
    let hours = rollup::roll(&new, Interval::Hour);
    let hour_keys: Vec<Key> = hours.keys().cloned().collect();
    let hours = bounded(store, Period::Hour, hours).await?;
    // A value its hour folded gets no minute rows of its own either.
    let folded: HashSet<&Key> = hour_keys
        .iter()
        .filter(|k| !hours.1.contains_key(*k))
        .collect();
    let read: BTreeMap<Key, Rollup> = rollup::roll_minutes(recent)
        .into_iter()
        .filter(|(key, _)| minutes.wants(key))
        .collect();
    let read = rollup::fold_minutes_past_hour(read, |k| folded.contains(k));
    let deltas = [hours, bounded(store, Period::Minute, read).await?];
    let mut merged: Vec<(Period, &Key, Rollup, Option<i64>)> = Vec::new();
    for (period, deltas, current) in &deltas {
        merged.extend(deltas.iter().map(|(key, delta)| match current.get(key) {
            Some(Versioned { value, version }) => {
                let mut row = value.clone();
                row.merge(delta);
                (*period, key, row, Some(*version))
            }
            None => (*period, key, delta.clone(), None),
        }));
    }

    let projects: BTreeSet<&str> = new.iter().map(|e| e.project.as_str()).collect();
    let days: BTreeSet<(&str, i64)> = new
        .iter()
        .map(|e| (e.project.as_str(), Interval::Day.floor(e.timestamp)))
        .collect();
    let oldest_received = new.iter().map(|e| e.received_at).min().unwrap_or(now_ms);

    // Projects first: raw rows refer to them by id.
    let mut writes: Vec<Write<'_>> = projects
        .iter()
        .map(|slug| Write::EnsureProject { slug, now_ms })
        .collect();
    writes.push(Write::InsertEvents(&new));
    writes.push(Write::InsertSessionEvents(&new));
    let with_messages: Vec<Event> = new
        .iter()
        .filter(|e| e.error_class.is_some() && e.error_message.is_some())
        .cloned()
        .collect();
    if !with_messages.is_empty() {
        writes.push(Write::KeepErrorMessages(&with_messages));
    }
    writes.extend(
        merged
            .iter()
            .map(|(period, key, row, version)| match version {
                Some(read_version) => Write::UpdateRollup {
                    period: *period,
                    key,
                    row,
                    read_version: *read_version,
                },
                None => Write::InsertRollup {
                    period: *period,
                    key,
                    row,
                },
            }),
    );
    writes.extend(days.iter().map(|(project, start)| Write::MarkDirty {
        project,
        period: Period::Day,
        start: *start,
    }));
    writes.push(Write::PutMeta {
        key: "consumer.last_batch",
        value: serde_json::json!({
            "at": now_ms,
            "received": stored.received,
            "new": stored.new,
            "lag_ms": now_ms - oldest_received,
        })
        .to_string(),
        now_ms,
    });
    store.commit(&writes).await?;
    stored.rollup_rows = merged.len();
    Ok(stored)
}

/// The rows of `period` a batch's `deltas` touch once bounded — each project keeps at
/// most [`Period::max_values`] values of a dimension per period, new values past it
/// fold into [`rollup::FOLDED_VALUE`] — with the stored rows among them.
async fn bounded<S: RollupStore>(
    store: &S,
    period: Period,
    deltas: BTreeMap<Key, Rollup>,
) -> Result<
    (
        Period,
        BTreeMap<Key, Rollup>,
        BTreeMap<Key, Versioned<Rollup>>,
    ),
    Error,
> {
    let keys: Vec<&Key> = deltas.keys().collect();
    let mut current = BTreeMap::new();
    for chunk in keys.chunks(READ_CHUNK) {
        current.extend(store.rollups_by_key(period, chunk).await?);
    }
    let groups: BTreeSet<ValueGroup> = deltas
        .keys()
        .filter(|k| {
            k.dimension.is_bounded()
                && !k.dimension.is_folded(&k.value)
                && !current.contains_key(*k)
        })
        .map(rollup::group_of)
        .collect();
    let groups: Vec<&ValueGroup> = groups.iter().collect();
    let mut stored_values = BTreeMap::new();
    for chunk in groups.chunks(READ_CHUNK) {
        stored_values.extend(store.stored_values(period, chunk).await?);
    }
    let deltas = rollup::bound_new_values(
        deltas,
        |k| current.contains_key(k),
        &stored_values,
        period.max_values(),
    );
    // Folded rows the batch made: they may be stored already.
    let folded: Vec<&Key> = deltas
        .keys()
        .filter(|k| k.dimension.is_bounded() && k.dimension.is_folded(&k.value))
        .filter(|k| !current.contains_key(*k))
        .collect();
    for chunk in folded.chunks(READ_CHUNK) {
        current.extend(store.rollups_by_key(period, chunk).await?);
    }
    Ok((period, deltas, current))
}

/// Most events handed to [`store_events`] at once by [`store_messages`]; messages are
/// grouped up to it.
pub const MAX_EVENTS_PER_COMMIT: usize = 10_000;

/// Most [`store_events`] calls [`store_messages`] makes to split failed groups, per
/// batch: one bad message among a full batch (100 messages, `max_batch_size`) is found
/// in 14 (two per halving), so this leaves room for a second. Each call is a few D1
/// queries (reads and one commit); a batch whose failures need more retries the
/// messages not yet told apart, which meet again in a later batch.
pub const MAX_SPLIT_CALLS: usize = 20;

/// What [`store_messages`] did.
#[derive(Debug, Default)]
pub struct Consumed {
    /// One per message, in order: stored (now or before), or the error that kept it out.
    pub outcomes: Vec<Result<(), Error>>,
    /// The sums of the [`store_events`] calls that committed.
    pub stored: Stored,
    /// [`store_events`] calls made, splits included.
    pub calls: usize,
}

/// Stores the events and dropped-request records of a batch of queue messages: in
/// groups of at most [`MAX_EVENTS_PER_COMMIT`] events, each group one [`store_events`]
/// call. A group that fails is split in halves, and halves that fail again in halves,
/// so that one bad message (say, one whose events touch a row that cannot be read)
/// fails alone and every other is stored: within [`MAX_SPLIT_CALLS`], after which the
/// messages of a failed part all fail with it.
///
/// Exactly once still: a failed call applied nothing, and [`store_events`] skips events
/// stored before, so a message stored in one part and sent again counts once.
pub async fn store_messages<S>(
    store: &S,
    messages: &[Message],
    now_ms: i64,
    minutes: &MinuteSources,
) -> Consumed
where
    S: EventStore + RollupStore + Writer,
{
    let mut consumed = Consumed::default();
    let mut outcomes: Vec<Option<Result<(), Error>>> = messages.iter().map(|_| None).collect();
    // Parts still to store, as ranges of `messages`, the next one last.
    let mut parts: Vec<std::ops::Range<usize>> = Vec::new();
    let mut start = 0;
    let mut events = 0;
    for (i, message) in messages.iter().enumerate() {
        if i > start && events + message.events.len() > MAX_EVENTS_PER_COMMIT {
            parts.push(start..i);
            (start, events) = (i, 0);
        }
        events += message.events.len();
    }
    if start < messages.len() {
        parts.push(start..messages.len());
    }
    parts.reverse();
    let mut split_calls = 0;
    while let Some(part) = parts.pop() {
        consumed.calls += 1;
        match store_part(store, &messages[part.clone()], now_ms, minutes).await {
            Ok(stored) => {
                consumed.stored.received += stored.received;
                consumed.stored.new += stored.new;
                consumed.stored.rollup_rows += stored.rollup_rows;
                consumed.stored.attempts = consumed.stored.attempts.max(stored.attempts);
                outcomes[part].iter_mut().for_each(|o| *o = Some(Ok(())));
            }
            Err(_) if part.len() > 1 && split_calls + 2 <= MAX_SPLIT_CALLS => {
                split_calls += 2;
                let middle = part.start + part.len() / 2;
                parts.push(middle..part.end);
                parts.push(part.start..middle);
            }
            Err(e) => {
                for o in &mut outcomes[part] {
                    *o = Some(Err(same(&e)));
                }
            }
        }
    }
    consumed.outcomes = outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Err(Error::Database("not stored".into()))))
        .collect();
    consumed
}

/// Stores a consumer batch whose projects live on several shards: each message's
/// events and dropped records are grouped by their project's shard (placement read
/// through `placements` from `control`), and each shard's group is stored by
/// [`store_messages`] through an [`OnShard`] of its own, in its own transactions, all
/// shards at once (a slow shard delays no other's commit). A
/// message is stored when every part of it is (a message names one project in
/// practice, so it has one part); a shard that fails holds back only its own messages,
/// which the caller retries, and every other shard's are stored.
///
/// A project that is moving (`crate::moves`) has a second shard: its events are
/// committed there too, after they are on its own shard, and its messages are stored
/// only when both are. Both commits skip what is stored, so a message retried after one
/// of them failed counts once on each shard.
///
/// Exactly once still: all of a project's events go to its one shard (and to its one
/// other while it moves), where [`store_events`] skips what is stored.
pub async fn store_messages_on_shards<E: Executor>(
    control: &E,
    shards: &[E],
    placements: &Placements,
    messages: &[Message],
    now_ms: i64,
    minutes: &MinuteSources,
) -> Consumed {
    let mut consumed = Consumed::default();
    let slugs = projects_of(messages);
    let placed = match placements.placements_of(control, &slugs, now_ms).await {
        Ok(placed) => placed,
        Err(e) => {
            consumed.outcomes = messages.iter().map(|_| Err(same(&e))).collect();
            return consumed;
        }
    };
    let mut outcomes: Vec<Result<(), Error>> = messages.iter().map(|_| Ok(())).collect();
    // The projects' own shards first, then the second shards of moving projects, for the
    // messages whose first commit held.
    let own = |project: &str| Some(placed.get(project).copied().unwrap_or_default().shard);
    let also = |project: &str| placed.get(project).and_then(|p| p.also);
    for shard_of in [&own as &dyn Fn(&str) -> Option<u32>, &also] {
        // Each shard's part is committed at the same time as the others': the shards are
        // separate databases, so a slow or hanging one delays no other's commit, and a
        // batch spread over N shards takes as long as its slowest part, not their sum.
        let parts = parts_by_shard(messages, &outcomes, shard_of);
        let commits = parts.into_iter().map(|(shard, (owners, group))| async move {
            let part = match shards.get(shard as usize) {
                Some(data) => {
                    let on_shard = OnShard {
                        control,
                        data,
                        shard,
                    };
                    store_messages(&on_shard, &group, now_ms, minutes).await
                }
                None => {
                    let e = Error::Database(format!(
                        "shard {shard} is placed but not bound ({} shards are); bind SHARD_{shard}",
                        shards.len()
                    ));
                    Consumed {
                        outcomes: group.iter().map(|_| Err(same(&e))).collect(),
                        ..Consumed::default()
                    }
                }
            };
            (owners, part)
        });
        for (owners, part) in join_all(commits).await {
            consumed.calls += part.calls;
            consumed.stored.received += part.stored.received;
            consumed.stored.new += part.stored.new;
            consumed.stored.rollup_rows += part.stored.rollup_rows;
            consumed.stored.attempts = consumed.stored.attempts.max(part.stored.attempts);
            for (owner, result) in owners.into_iter().zip(part.outcomes) {
                if let Err(e) = result
                    && outcomes[owner].is_ok()
                {
                    outcomes[owner] = Err(e);
                }
            }
        }
    }
    consumed.outcomes = outcomes;
    consumed
}

/// The parts of `messages` (those whose outcome is still good) per shard that
/// `shard_of` gives their projects (`None`: no part), with the message each part came
/// from.
fn parts_by_shard(
    messages: &[Message],
    outcomes: &[Result<(), Error>],
    shard_of: &dyn Fn(&str) -> Option<u32>,
) -> BTreeMap<u32, (Vec<usize>, Vec<Message>)> {
    let mut parts: BTreeMap<u32, (Vec<usize>, Vec<Message>)> = BTreeMap::new();
    for (i, message) in messages.iter().enumerate() {
        if outcomes[i].is_err() {
            continue;
        }
        let mut split: BTreeMap<u32, Message> = BTreeMap::new();
        let part = || Message {
            v: message.v,
            events: Vec::new(),
            dropped: Vec::new(),
        };
        for event in &message.events {
            if let Some(shard) = shard_of(&event.project) {
                split
                    .entry(shard)
                    .or_insert_with(part)
                    .events
                    .push(event.clone());
            }
        }
        for dropped in &message.dropped {
            if let Some(shard) = shard_of(&dropped.project) {
                split
                    .entry(shard)
                    .or_insert_with(part)
                    .dropped
                    .push(dropped.clone());
            }
        }
        for (shard, part) in split {
            let (owners, group) = parts.entry(shard).or_default();
            owners.push(i);
            group.push(part);
        }
    }
    parts
}

/// The projects that messages' events and dropped records name, sorted, each once:
/// whose placement and rules a consumer batch needs.
pub fn projects_of(messages: &[Message]) -> Vec<&str> {
    let mut slugs: Vec<&str> = messages
        .iter()
        .flat_map(|m| {
            m.events
                .iter()
                .map(|e| e.project.as_str())
                .chain(m.dropped.iter().map(|d| d.project.as_str()))
        })
        .collect();
    slugs.sort_unstable();
    slugs.dedup();
    slugs
}

/// The same error again, for each message of a part that failed.
fn same(e: &Error) -> Error {
    match e {
        Error::Conflict(m) => Error::Conflict(m.clone()),
        Error::Database(m) => Error::Database(m.clone()),
        Error::Decode(m) => Error::Decode(m.clone()),
    }
}

/// Stores one part of a batch: its dropped-request records, then its events in one
/// [`store_events`] call.
async fn store_part<S>(
    store: &S,
    part: &[Message],
    now_ms: i64,
    minutes: &MinuteSources,
) -> Result<Stored, Error>
where
    S: EventStore + RollupStore + Writer,
{
    let dropped: Vec<Dropped> = part.iter().flat_map(|m| m.dropped.clone()).collect();
    if !dropped.is_empty() {
        // The records join `projects` by slug, so their projects are recorded first, as
        // `store_events` records its events' projects: a shard learns of a project from
        // its first message, which may carry only dropped requests. Idempotent by id: a
        // redelivered record counts once.
        let projects: BTreeSet<&str> = dropped.iter().map(|d| d.project.as_str()).collect();
        let mut writes: Vec<Write<'_>> = projects
            .iter()
            .map(|slug| Write::EnsureProject { slug, now_ms })
            .collect();
        writes.push(Write::InsertDropped(&dropped));
        store.commit(&writes).await?;
    }
    let events: Vec<Event> = part.iter().flat_map(|m| m.events.clone()).collect();
    store_events(store, &events, now_ms, minutes).await
}

/// What [`backfill`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backfilled {
    /// Events given.
    pub received: usize,
    /// Events stored now; the rest were stored before or repeated.
    pub new: usize,
    /// [`store_events`] calls, one transaction each.
    pub batches: usize,
    /// Hourly rollup rows written (a row written by two batches counts twice).
    pub hour_rows: usize,
    pub days_rolled: usize,
    pub months_rolled: usize,
    /// Session days paired and stored ([`crate::sessions::roll_session_days`]).
    pub session_days_rolled: usize,
}

/// Dirty periods rolled per [`roll_dirty`] call of [`backfill`].
const BACKFILL_ROLL_LIMIT: u32 = 1000;

/// Stores many events at once as the consumer and the cron would: [`store_events`] in
/// batches of at least `batch` events (a batch ends where an hour ends, so that events
/// given in time order write each hourly row once), then [`roll_dirty`] until no day
/// and then no month is left dirty, then the session days that are over are paired
/// ([`crate::sessions::roll_session_days`]). For loading a benchmark's workload or an import
/// straight into a store; the rollups equal those of any other delivery of the events.
/// `minutes` says which minute rows the recent events write, as for [`store_events`].
///
/// # Errors
///
/// The store's error; batches already stored stay stored, and a second call with the
/// same events completes the work.
pub async fn backfill<S, I>(
    store: &S,
    events: I,
    batch: usize,
    now_ms: i64,
    minutes: &MinuteSources,
) -> Result<Backfilled, Error>
where
    S: EventStore + RollupStore + Writer + Executor,
    I: IntoIterator<Item = Event>,
{
    let mut done = Backfilled::default();
    let mut pending: Vec<Event> = Vec::with_capacity(batch);
    let mut events = events.into_iter().peekable();
    while let Some(event) = events.next() {
        pending.push(event);
        let hour_ends = match (pending.last(), events.peek()) {
            (Some(last), Some(next)) => {
                Interval::Hour.floor(last.timestamp) != Interval::Hour.floor(next.timestamp)
            }
            _ => true,
        };
        if (pending.len() >= batch.max(1) && hour_ends) || events.peek().is_none() {
            let stored = store_events(store, &pending, now_ms, minutes).await?;
            done.received += stored.received;
            done.new += stored.new;
            done.hour_rows += stored.rollup_rows;
            done.batches += 1;
            pending.clear();
        }
    }
    for (period, rolled) in [
        (Period::Day, &mut done.days_rolled),
        (Period::Month, &mut done.months_rolled),
    ] {
        loop {
            let run = roll_dirty(store, period, BACKFILL_ROLL_LIMIT, now_ms).await?;
            if let Some(failure) = run.failures.first() {
                return Err(Error::Database(format!(
                    "{} {}s could not be rolled, the first of {} from {}: {}",
                    run.failed,
                    period.name(),
                    failure.project,
                    failure.start,
                    failure.error
                )));
            }
            *rolled += run.rolled;
            if run.rolled == 0 {
                break;
            }
        }
    }
    loop {
        let run = crate::sessions::roll_session_days(store, BACKFILL_ROLL_LIMIT, now_ms).await?;
        done.session_days_rolled += run.rolled;
        if run.rolled == 0 {
            break;
        }
    }
    Ok(done)
}

/// How long a dirty period that failed to roll waits before it is tried again. Marks
/// that never failed go first anyway, so a period that can never be rolled holds up no
/// other; this keeps it from costing a D1 read every minute.
pub const ROLL_RETRY_MS: i64 = 10 * 60_000;

/// Failures [`Rolled`] lists; past it only the count grows.
const FAILURES_LISTED: usize = 20;

/// What one [`roll_dirty`] run did, as recorded in meta `roll.day` or `roll.month`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rolled {
    pub at: i64,
    /// Periods rolled.
    pub rolled: usize,
    /// Whether periods that may be rolled now are left (beyond the run's limit).
    pub more_pending: bool,
    /// Periods this run could not roll (the first [`FAILURES_LISTED`] are listed).
    pub failed: usize,
    pub failures: Vec<RollFailure>,
    /// Marks whose last roll failed, this run's and earlier ones' still waiting.
    pub failing: u64,
}

/// A period that could not be rolled, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RollFailure {
    pub project: String,
    pub start: i64,
    pub error: String,
}

/// Rolls up to `limit` dirty periods of `period` (days from hours, months from days)
/// and says how many it rolled. A rolled day marks its month dirty.
///
/// A period that cannot be rolled (a row it reads does not decode, a commit fails) is
/// skipped and noted on its mark, and the run goes on: it is tried again after
/// [`ROLL_RETRY_MS`], after the marks that never failed. The run is recorded in meta
/// (`roll.day`, `roll.month`) with its failures.
///
/// Safe to run twice and to interrupt: each period is one transaction, and its dirty
/// mark is cleared only if no new change arrived while it was rolled.
///
/// # Errors
///
/// The store's error when the marks cannot be read or the run not recorded; periods
/// already rolled stay rolled.
pub async fn roll_dirty<S>(
    store: &S,
    period: Period,
    limit: u32,
    now_ms: i64,
) -> Result<Rolled, Error>
where
    S: RollupStore + Writer + Executor,
{
    #[derive(serde::Deserialize)]
    struct Counts {
        ready: i64,
        failing: i64,
    }
    let mut run = Rolled {
        at: now_ms,
        ..Rolled::default()
    };
    let Some(source) = period.source() else {
        return Ok(run);
    };
    let retry_before = now_ms - ROLL_RETRY_MS;
    let dirty = store.dirty_periods(period, limit, retry_before).await?;
    let mut failed: Vec<(&Dirty, String)> = Vec::new();
    for mark in &dirty {
        match roll_one(store, mark, source).await {
            Ok(()) => run.rolled += 1,
            Err(e) => failed.push((mark, e.to_string())),
        }
    }
    run.failed = failed.len();
    run.failures = failed
        .iter()
        .take(FAILURES_LISTED)
        .map(|(mark, error)| RollFailure {
            project: mark.project.clone(),
            start: mark.start,
            error: error.clone(),
        })
        .collect();
    let writes: Vec<Write<'_>> = failed
        .iter()
        .map(|(mark, error)| Write::RollFailed {
            mark,
            error,
            now_ms,
        })
        .collect();
    if !writes.is_empty() {
        store.commit(&writes).await?;
    }
    let counts: Vec<Counts> = store
        .query(
            sql::DIRTY_COUNTS,
            vec![period.name().into(), retry_before.into()],
        )
        .await?;
    if let Some(c) = counts.first() {
        run.more_pending = c.ready > 0;
        run.failing = c.failing.max(0) as u64;
    }
    let value = serde_json::to_string(&run).expect("a run serializes");
    store
        .commit(&[Write::PutMeta {
            key: roll_meta(period),
            value,
            now_ms,
        }])
        .await?;
    Ok(run)
}

/// What the last alert evaluation and rolls left, as recorded in meta: for `/v1/health`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Progress {
    /// The last evaluation of the alert rules (deferred and failed rules).
    pub alerts: Option<crate::alerts::Evaluation>,
    /// The last rolls of days and of months (periods that failed to roll).
    pub roll_day: Option<Rolled>,
    pub roll_month: Option<Rolled>,
}

impl Progress {
    /// Reads the runs from `meta` (as [`crate::JobLog::meta`] lists it); a value that
    /// does not parse counts as absent.
    pub fn from_meta(meta: &[(String, String, i64)]) -> Self {
        fn find<T: serde::de::DeserializeOwned>(
            meta: &[(String, String, i64)],
            key: &str,
        ) -> Option<T> {
            meta.iter()
                .find(|(k, _, _)| k == key)
                .and_then(|(_, value, _)| serde_json::from_str(value).ok())
        }
        Self {
            alerts: find(meta, crate::alerts::ALERTS_META),
            roll_day: find(meta, roll_meta(Period::Day)),
            roll_month: find(meta, roll_meta(Period::Month)),
        }
    }

    /// The counts only, without what names a project or a rule or says why something
    /// failed: for whoever is not the operator.
    #[must_use]
    pub fn counts_only(mut self) -> Self {
        if let Some(alerts) = &mut self.alerts {
            alerts.failures.clear();
            alerts.next = None;
        }
        for roll in [&mut self.roll_day, &mut self.roll_month]
            .into_iter()
            .flatten()
        {
            roll.failures.clear();
        }
        self
    }
}

/// The meta key of [`roll_dirty`]'s last run of `period`.
pub fn roll_meta(period: Period) -> &'static str {
    if period == Period::Day {
        "roll.day"
    } else {
        "roll.month"
    }
}

async fn roll_one<S>(store: &S, mark: &Dirty, source: Period) -> Result<(), Error>
where
    S: RollupStore + Writer,
{
    let interval = mark.period.interval();
    let end = interval.next(mark.start);
    let sources = store
        .rollups_between(&mark.project, source, mark.start, end, None)
        .await?;
    let rolled = rollup::bound_values(
        rollup::coarsen(sources.iter().map(|(k, v)| (k, &v.value)), interval),
        mark.period.max_values(),
    );
    let keep: Vec<_> = rolled
        .keys()
        .map(|k| (k.dimension, k.value.as_str()))
        .collect();
    let mut writes: Vec<Write<'_>> = rolled
        .iter()
        .map(|(key, row)| Write::PutRollup {
            period: mark.period,
            key,
            row,
        })
        .collect();
    writes.push(Write::DeleteStaleRollups {
        project: &mark.project,
        period: mark.period,
        start: mark.start,
        keep,
    });
    writes.push(Write::ClearDirty(mark));
    if mark.period == Period::Day {
        writes.push(Write::MarkDirty {
            project: &mark.project,
            period: Period::Month,
            start: Interval::Month.floor(mark.start),
        });
    }
    store.commit(&writes).await.map(drop)
}

/// Rebuilds the hourly rows of `project` for the hours in `[from_ms, to_ms)` from raw
/// events, and marks their days dirty. The result equals what the live pipeline built,
/// except in an hour with more values of a dimension than [`Period::max_values`].
/// Rows are written under their read versions, so a concurrent consumer write makes the
/// rebuild retry rather than be lost. Returns the rows written.
///
/// # Errors
///
/// The store's error, or [`Error::Conflict`] after [`MAX_ATTEMPTS`] lost races.
pub async fn rebuild_hours<S>(
    store: &S,
    project: &str,
    from_ms: i64,
    to_ms: i64,
) -> Result<usize, Error>
where
    S: EventStore + RollupStore + Writer,
{
    let (from, to) = (
        Interval::Hour.floor(from_ms),
        Interval::Hour.floor(to_ms - 1) + 3_600_000,
    );
    let mut attempts = 0;
    loop {
        attempts += 1;
        match try_rebuild(store, project, from, to).await {
            Err(Error::Conflict(_)) if attempts < MAX_ATTEMPTS => continue,
            result => return result,
        }
    }
}

async fn try_rebuild<S>(store: &S, project: &str, from: i64, to: i64) -> Result<usize, Error>
where
    S: EventStore + RollupStore + Writer,
{
    // Versions first: a consumer write after this read trips the guard below.
    let current = store
        .rollups_between(project, Period::Hour, from, to, None)
        .await?;
    let events = all_events_between(store, project, from, to).await?;
    // Bounded as the consumer bounds hours, but by events rather than arrival: where
    // an hour had more values than its bound, the rebuild keeps those with most events.
    let rebuilt = rollup::bound_values(
        rollup::roll(&events, Interval::Hour),
        Period::Hour.max_values(),
    );
    let empty = Rollup::default();
    let mut writes = Vec::new();
    for (key, row) in &rebuilt {
        writes.push(match current.get(key) {
            Some(v) => Write::UpdateRollup {
                period: Period::Hour,
                key,
                row,
                read_version: v.version,
            },
            None => Write::InsertRollup {
                period: Period::Hour,
                key,
                row,
            },
        });
    }
    // Rows with no raw events behind them any more (such as hours past retention)
    // become empty rather than vanish, under the same guard.
    for (key, v) in current.iter().filter(|(k, _)| !rebuilt.contains_key(*k)) {
        writes.push(Write::UpdateRollup {
            period: Period::Hour,
            key,
            row: &empty,
            read_version: v.version,
        });
    }
    let days: BTreeSet<i64> = rebuilt
        .keys()
        .map(|k| Interval::Day.floor(k.start))
        .collect();
    writes.extend(days.into_iter().map(|start| Write::MarkDirty {
        project,
        period: Period::Day,
        start,
    }));
    let rows = rebuilt.len();
    store.commit(&writes).await?;
    Ok(rows)
}

/// Every raw event of `project` in `[from_ms, to_ms)`, read in pages.
///
/// # Errors
///
/// The store's error.
pub async fn all_events_between<S: EventStore>(
    store: &S,
    project: &str,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<Event>, Error> {
    const PAGE: u32 = 5000;
    let mut events: Vec<Event> = Vec::new();
    loop {
        let after = events.last().map(|e| (e.timestamp, e.event_id.clone()));
        let page = store
            .events_between(
                project,
                from_ms,
                to_ms,
                after.as_ref().map(|(t, id)| (*t, id.as_str())),
                PAGE,
            )
            .await?;
        let done = page.len() < PAGE as usize;
        events.extend(page);
        if done {
            return Ok(events);
        }
    }
}

/// How much one [`purge_expired`] run may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgeBudget {
    /// Rows one statement deletes at most: each stays short, because D1 has one writer
    /// and the consumer's commits wait behind it (and a query may take 30 s at most).
    pub chunk: u32,
    /// Statements the run may execute, of D1's 1,000 queries per invocation; what the
    /// cron job does besides purging must fit in the rest.
    pub statements: u32,
}

/// The budget of each hourly run: 300 statements, up to 500,000 raw events an hour,
/// 12 million a day, so a project's daily volume past that is the only way to fall
/// behind (and `/v1/health` shows it).
pub const HOURLY_PURGE: PurgeBudget = PurgeBudget {
    chunk: 10_000,
    statements: 300,
};

/// Job runs are kept this long (each job's latest run is kept whatever its age).
pub const JOB_RUNS_KEPT_MS: i64 = 14 * DAY_MS;
/// Dead letters whose body names no project are kept this long: the default retention.
pub const ORPHAN_DEAD_LETTERS_KEPT_MS: i64 = 90 * DAY_MS;

/// Expired raw events counted per project behind, at most: the count is for people, and
/// rows read cost money.
const BACKLOG_COUNT_CAP: i64 = 100_000;

/// What one [`purge_expired`] run did, and what it left.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Purged {
    /// Rows deleted: raw events, session marks, dropped records, error messages, alerts
    /// and their attempts.
    pub deleted: u64,
    /// Old job runs, and dead letters that name no project, deleted.
    pub job_runs: u64,
    /// Statements executed.
    pub statements: u32,
    /// Projects with raw events past their retention when the run ended.
    pub backlog: Vec<Backlog>,
}

/// A project still holding raw events past its retention.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Backlog {
    pub project: String,
    /// The oldest raw event's time, epoch milliseconds.
    pub oldest_expired_ms: i64,
    /// Expired raw events left, counted up to 100,000 (`rows_left_capped` then).
    pub rows_left: u64,
    pub rows_left_capped: bool,
}

/// The meta key of the last run's [`Purged`] and where the next run starts.
pub const RETENTION_META: &str = "retention";

/// Deletes everything past each project's retention in chunks of `budget.chunk` rows
/// (each chunk its own transaction), until nothing expired remains or the budget is
/// spent; the next run resumes with the project this one stopped at, so every project
/// is reached however many there are. Rollups stay. Records what it did, and which
/// projects are still behind, in meta [`RETENTION_META`]. Safe to run twice and to
/// interrupt.
///
/// # Errors
///
/// The store's error; chunks already deleted stay deleted.
pub async fn purge_expired<S>(store: &S, now_ms: i64, budget: PurgeBudget) -> Result<Purged, Error>
where
    S: EventStore + JobLog + Writer + Executor,
{
    let chunk = u64::from(budget.chunk);
    let mut purged = Purged::default();
    let projects = store.projects().await?;
    let resume_at = store
        .meta()
        .await?
        .into_iter()
        .find(|(key, _, _)| key == RETENTION_META)
        .and_then(|(_, value, _)| serde_json::from_str::<serde_json::Value>(&value).ok())
        .and_then(|v| v["next"].as_str().map(str::to_owned));
    let first = resume_at
        .and_then(|slug| projects.iter().position(|p| p.slug >= slug))
        .unwrap_or(0);
    let mut next = None;
    'projects: for project in projects[first..].iter().chain(&projects[..first]) {
        let before_ms = now_ms - i64::from(project.retention_days) * DAY_MS;
        loop {
            if purged.statements + PURGE_RAW_STATEMENTS > budget.statements {
                next = Some(project.slug.clone());
                break 'projects;
            }
            // Two transactions: the data on the project's shard, its alerts and dead
            // letters in the control database. Each deletes only what is expired, so
            // one without the other is a step of the same purge.
            let mut changed = store
                .commit(&[Write::PurgeRaw {
                    project: &project.slug,
                    before_ms,
                    limit: budget.chunk,
                }])
                .await?;
            changed.extend(
                store
                    .commit(&[Write::PurgeAlerts {
                        project: &project.slug,
                        before_ms,
                        limit: budget.chunk,
                    }])
                    .await?,
            );
            purged.statements += PURGE_RAW_STATEMENTS;
            let deleted: u64 = changed.iter().sum();
            purged.deleted += deleted;
            // Each statement deletes at most `chunk` rows: fewer in all means every
            // table of this project is done.
            if deleted < chunk {
                break;
            }
        }
    }
    if purged.statements + 2 <= budget.statements {
        let changed = store
            .commit(&[Write::PurgeJobRuns {
                before_ms: now_ms - JOB_RUNS_KEPT_MS,
                orphans_before_ms: now_ms - ORPHAN_DEAD_LETTERS_KEPT_MS,
                limit: budget.chunk,
            }])
            .await?;
        purged.statements += 2;
        purged.job_runs = changed.iter().sum();
    }
    purged.backlog = backlog(store, &projects, now_ms).await?;
    store
        .commit(&[Write::PutMeta {
            key: RETENTION_META,
            value: serde_json::json!({"at": now_ms, "next": next, "last": purged}).to_string(),
            now_ms,
        }])
        .await?;
    Ok(purged)
}

/// Which of `projects` (those of the store's shard, with their retention from the
/// control database) hold raw events past their retention at `now_ms`: one statement,
/// plus one bounded count for each project behind.
async fn backlog<S: Executor>(
    store: &S,
    projects: &[crate::ProjectSettings],
    now_ms: i64,
) -> Result<Vec<Backlog>, Error> {
    #[derive(serde::Deserialize)]
    struct Oldest {
        project: String,
        oldest: Option<i64>,
    }
    // A shard's own `projects` rows are a directory of ids; retention is the control
    // database's.
    let retention: BTreeMap<&str, i64> = projects
        .iter()
        .map(|p| (p.slug.as_str(), i64::from(p.retention_days)))
        .collect();
    #[derive(serde::Deserialize)]
    struct Count {
        n: i64,
    }
    let mut behind = Vec::new();
    for row in store
        .query::<Oldest>(sql::OLDEST_RAW_EVENTS, vec![])
        .await?
    {
        let Some(retention_days) = retention.get(row.project.as_str()) else {
            continue;
        };
        let before_ms = now_ms - retention_days * DAY_MS;
        let Some(oldest) = row.oldest.filter(|&t| t < before_ms) else {
            continue;
        };
        let counted = store
            .query::<Count>(
                sql::COUNT_EXPIRED_RAW_EVENTS,
                vec![
                    row.project.as_str().into(),
                    before_ms.into(),
                    BACKLOG_COUNT_CAP.into(),
                ],
            )
            .await?
            .first()
            .map_or(0, |c| c.n);
        behind.push(Backlog {
            project: row.project,
            oldest_expired_ms: oldest,
            rows_left: counted as u64,
            rows_left_capped: counted >= BACKLOG_COUNT_CAP,
        });
    }
    Ok(behind)
}
