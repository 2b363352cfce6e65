//! Every domain trait written once over an [`Executor`]: the statements of each
//! [`Write`], and each read as one statement of `tally_core::sql` whose rows decode by
//! column name. D1, SQLite and any later executor share this file.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ops::Range;

use serde::Deserialize;
use tally_core::filter::{self, Filters};
use tally_core::funnel::Hit;
use tally_core::project::{ApiKey, KeyKind, NewKey, Project};
use tally_core::realtime::{self, Visitors};
use tally_core::rollup::{Dimension, Key, Period, Rollup, ValueGroup};
use tally_core::sessions::Mark;
use tally_core::{Event, sql};

use crate::exec::{Bound, Executor, Statement};
use crate::rows::{
    self, DirtyRow, GrantRow, KeyRow, ProjectRow, RawRow, RollupRow, origins_json, rollup_values,
};
use crate::{
    AdminStore, Counts, DayCount, Dirty, Error, ErrorMessage, EventStore, FilteredReads, JobLog,
    JobRun, MAX_INSERT_JSON_BYTES, ProjectSettings, QueryStore, RollupStore, ValueMatch, Versioned,
    Write, Writer, event_chunks,
};

/// One statement per JSON chunk, each chunk its only value.
fn per_chunk(sql: &'static str, chunks: Vec<String>) -> Vec<Statement> {
    chunks
        .into_iter()
        .map(|chunk| Statement::new(sql, vec![chunk.into()]))
        .collect()
}

impl Write<'_> {
    /// The statements of this write, in order, with their values.
    pub fn statements(&self) -> Vec<Statement> {
        let one = |sql, values| vec![Statement::new(sql, values)];
        match self {
            Self::InsertEvents(events) => per_chunk(sql::INSERT_EVENTS, event_chunks(events)),
            Self::EnsureProject { slug, now_ms } => {
                one(sql::ENSURE_PROJECT, vec![(*slug).into(), (*now_ms).into()])
            }
            Self::InsertDropped(dropped) => per_chunk(
                sql::INSERT_DROPPED,
                tally_core::json::chunks(dropped, MAX_INSERT_JSON_BYTES, "[", "]"),
            ),
            Self::InsertSessionEvents(events) => {
                let chunks = event_chunks(events);
                let mut statements = per_chunk(sql::INSERT_SESSION_EVENTS, chunks.clone());
                statements.extend(per_chunk(sql::MARK_SESSION_DAYS, chunks));
                statements
            }
            Self::PutSessionDay {
                project,
                day,
                stats,
                hours,
            } => one(
                sql::PUT_SESSION_DAY,
                vec![
                    (*project).into(),
                    (*day).into(),
                    i64::try_from(stats.sessions).unwrap_or(i64::MAX).into(),
                    stats.total_ms.into(),
                    (*hours).into(),
                ],
            ),
            Self::ClearSessionDay(dirty) => one(
                sql::CLEAR_SESSION_DAY,
                vec![
                    dirty.project.as_str().into(),
                    dirty.day.into(),
                    dirty.generation.into(),
                ],
            ),
            Self::KeepErrorMessages(events) => {
                per_chunk(sql::KEEP_ERROR_MESSAGES, event_chunks(events))
            }
            Self::InsertRollup { period, key, row } => {
                one(sql::INSERT_ROLLUP, rollup_values(*period, key, row))
            }
            Self::UpdateRollup {
                period,
                key,
                row,
                read_version,
            } => {
                let mut values = rollup_values(*period, key, row);
                values.push((read_version + 1).into());
                one(sql::UPDATE_ROLLUP, values)
            }
            Self::PutRollup { period, key, row } => {
                one(sql::PUT_ROLLUP, rollup_values(*period, key, row))
            }
            Self::DeleteStaleRollups {
                project,
                period,
                start,
                keep,
            } => one(
                sql::DELETE_STALE_ROLLUPS,
                vec![
                    (*project).into(),
                    period.name().into(),
                    (*start).into(),
                    rows::keep_json(keep).into(),
                ],
            ),
            Self::MarkDirty {
                project,
                period,
                start,
            } => one(
                sql::MARK_DIRTY,
                vec![(*project).into(), period.name().into(), (*start).into()],
            ),
            Self::ClearDirty(d) => one(
                sql::CLEAR_DIRTY,
                vec![
                    d.project.as_str().into(),
                    d.period.name().into(),
                    d.start.into(),
                    d.generation.into(),
                ],
            ),
            Self::RollFailed {
                mark,
                error,
                now_ms,
            } => one(
                sql::DIRTY_FAILED,
                vec![
                    mark.project.as_str().into(),
                    mark.period.name().into(),
                    mark.start.into(),
                    (*now_ms).into(),
                    (*error).into(),
                ],
            ),
            Self::PurgeRaw {
                project,
                before_ms,
                limit,
            } => purge_statements(
                &[
                    sql::PURGE_RAW_EVENTS,
                    sql::PURGE_SESSION_EVENTS,
                    sql::PURGE_DROPPED,
                    sql::PURGE_ERROR_MESSAGES,
                ],
                project,
                *before_ms,
                *limit,
            ),
            Self::PurgeAlerts {
                project,
                before_ms,
                limit,
            } => purge_statements(
                &[
                    sql::PURGE_ALERT_ATTEMPTS,
                    sql::PURGE_ALERTS,
                    sql::PURGE_DEAD_LETTERS,
                ],
                project,
                *before_ms,
                *limit,
            ),
            Self::PurgeJobRuns {
                before_ms,
                orphans_before_ms,
                limit,
            } => vec![
                Statement::new(
                    sql::PURGE_JOB_RUNS,
                    vec![(*before_ms).into(), (*limit).into()],
                ),
                Statement::new(
                    sql::PURGE_ORPHAN_DEAD_LETTERS,
                    vec![(*orphans_before_ms).into(), (*limit).into()],
                ),
            ],
            Self::DeadLetter {
                message_id,
                queue,
                body,
                sent_at_ms,
                now_ms,
            } => one(
                sql::INSERT_DEAD_LETTER,
                vec![
                    (*message_id).into(),
                    (*queue).into(),
                    (*body).into(),
                    (*sent_at_ms).into(),
                    (*now_ms).into(),
                ],
            ),
            Self::PutMeta { key, value, now_ms } => one(
                sql::PUT_META,
                vec![(*key).into(), value.as_str().into(), (*now_ms).into()],
            ),
            Self::Alert(write) => write.statements(),
        }
    }
}

/// One statement of each purge in `sqls` for `project`, each binding the project, the
/// cut-off and the chunk.
fn purge_statements(
    sqls: &[&'static str],
    project: &str,
    before_ms: i64,
    limit: u32,
) -> Vec<Statement> {
    sqls.iter()
        .map(|sql| Statement::new(sql, vec![project.into(), before_ms.into(), limit.into()]))
        .collect()
}

impl<S: Executor> Writer for S {
    async fn commit(&self, writes: &[Write<'_>]) -> Result<Vec<u64>, Error> {
        let groups: Vec<Vec<Statement>> = writes.iter().map(Write::statements).collect();
        self.batch(groups).await
    }
}

/// Runs one statement in a transaction of its own and returns the rows it changed.
async fn change<S: Executor>(
    store: &S,
    sql: &'static str,
    values: Vec<Bound>,
) -> Result<u64, Error> {
    let changed = store.batch(vec![vec![Statement::new(sql, values)]]).await?;
    Ok(changed.first().copied().unwrap_or(0))
}

#[derive(Deserialize)]
struct IdPair {
    project: String,
    event_id: String,
}

#[derive(Deserialize)]
struct MetaRow {
    key: String,
    value: String,
    updated_at: i64,
}

/// A row of one count.
#[derive(Deserialize)]
struct CountRow {
    n: u64,
}

/// A session mark as stored; one type for every read of marks, so the wasm bundle holds
/// one decoder.
#[derive(Deserialize)]
struct MarkRow {
    user: String,
    timestamp: i64,
    event_id: String,
    is_start: i64,
}

impl MarkRow {
    fn into_mark(self) -> Mark {
        Mark {
            user: self.user,
            timestamp: self.timestamp,
            event_id: self.event_id,
            is_start: self.is_start != 0,
        }
    }
}

fn marks(rows: Vec<MarkRow>) -> Vec<Mark> {
    rows.into_iter().map(MarkRow::into_mark).collect()
}

fn versioned(rows: Vec<RollupRow>) -> Result<BTreeMap<Key, Versioned<Rollup>>, Error> {
    rows.into_iter()
        .map(|row| {
            let (_, key, value, version) = row.decode()?;
            Ok((key, Versioned { value, version }))
        })
        .collect()
}

/// The names of `dimensions` as a JSON array, for `json_each`.
fn names_json(dimensions: &[Dimension]) -> Result<String, Error> {
    let names: Vec<&str> = dimensions.iter().map(|d| d.name()).collect();
    serde_json::to_string(&names).map_err(|e| Error::Decode(e.to_string()))
}

/// The values of a read of `project` over `[from_ms, to_ms)`, the shape most reads bind.
fn range(project: &str, from_ms: i64, to_ms: i64) -> Vec<Bound> {
    vec![project.into(), from_ms.into(), to_ms.into()]
}

impl<S: Executor> EventStore for S {
    async fn existing_events(
        &self,
        ids: &[(&str, &str)],
    ) -> Result<HashSet<(String, String)>, Error> {
        let found: Vec<IdPair> = self
            .query(sql::EXISTING_EVENTS, vec![rows::ids_json(ids).into()])
            .await?;
        Ok(found.into_iter().map(|p| (p.project, p.event_id)).collect())
    }

    async fn count_events(&self, project: &str, from_ms: i64, to_ms: i64) -> Result<Counts, Error> {
        // Every row, not a `first`: only a whole D1 result carries the rows it read.
        let counts: Vec<Counts> = self
            .query(sql::COUNT_EVENTS, range(project, from_ms, to_ms))
            .await?;
        Ok(counts.into_iter().next().unwrap_or_default())
    }

    async fn events_between(
        &self,
        project: &str,
        from_ms: i64,
        to_ms: i64,
        after: Option<(i64, &str)>,
        limit: u32,
    ) -> Result<Vec<Event>, Error> {
        let (after_ts, after_id) = after.unwrap_or(crate::BEFORE_ALL);
        let mut values = range(project, from_ms, to_ms);
        values.extend([after_ts.into(), after_id.into(), limit.into()]);
        let raw: Vec<RawRow> = self.query(sql::EVENTS_BETWEEN, values).await?;
        raw.into_iter().map(RawRow::into_event).collect()
    }

    async fn projects(&self) -> Result<Vec<ProjectSettings>, Error> {
        self.query(sql::PROJECTS, vec![self.shard().into()]).await
    }

    async fn session_marks(
        &self,
        project: &str,
        user_hash: Option<&str>,
        from_ms: i64,
        to_ms: i64,
        after: Option<&Mark>,
        limit: u32,
    ) -> Result<Vec<Mark>, Error> {
        let mut values = range(project, from_ms, to_ms);
        values.extend(match after {
            Some(m) => [
                m.timestamp.into(),
                i64::from(!m.is_start).into(),
                m.event_id.as_str().into(),
            ],
            None => [from_ms.into(), (-1_i64).into(), "".into()],
        });
        values.push(limit.into());
        let sql = match user_hash {
            Some(user_hash) => {
                values.push(user_hash.into());
                sql::USER_SESSION_MARKS_PAGE
            }
            None => sql::SESSION_MARKS_PAGE,
        };
        Ok(marks(self.query(sql, values).await?))
    }

    async fn dropped_counts(
        &self,
        project: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<BTreeMap<String, u64>, Error> {
        #[derive(Deserialize)]
        struct Row {
            reason: String,
            n: u64,
        }
        let rows: Vec<Row> = self
            .query(sql::COUNT_DROPPED, range(project, from_ms, to_ms))
            .await?;
        Ok(rows.into_iter().map(|r| (r.reason, r.n)).collect())
    }
}

impl<S: Executor> QueryStore for S {
    async fn error_messages(&self, project: &str) -> Result<BTreeMap<String, ErrorMessage>, Error> {
        #[derive(Deserialize)]
        struct Row {
            error_class: String,
            timestamp: i64,
            message: String,
        }
        let rows: Vec<Row> = self
            .query(sql::ERROR_MESSAGES, vec![project.into()])
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let message = ErrorMessage {
                    timestamp: r.timestamp,
                    message: r.message,
                };
                (r.error_class, message)
            })
            .collect())
    }

    #[allow(clippy::too_many_arguments)] // As the trait declares it.
    async fn funnel_hits(
        &self,
        project: &str,
        from_ms: i64,
        to_ms: i64,
        names: &[&str],
        buckets: Range<u32>,
        filters: &Filters,
        limit: u32,
    ) -> Result<(Vec<Hit>, u64), Error> {
        #[derive(Deserialize)]
        struct Read {
            user: String,
            timestamp: i64,
            event_id: String,
            name: String,
            matched: i64,
        }
        let buckets: Vec<String> = buckets.map(|b| format!("{b:02x}")).collect();
        let buckets = serde_json::to_string(&buckets).map_err(|e| Error::Decode(e.to_string()))?;
        let names = serde_json::to_string(names).map_err(|e| Error::Decode(e.to_string()))?;
        let mut values: Vec<Bound> = vec![
            project.into(),
            buckets.into(),
            names.into(),
            from_ms.into(),
            to_ms.into(),
            limit.into(),
        ];
        let statement = if filters.is_empty() {
            sql::FUNNEL_HITS
        } else {
            values.extend(filter_slots(filters));
            sql::FILTERED_FUNNEL_HITS
        };
        let rows: Vec<Read> = self.query(statement, values).await?;
        let read = rows.len() as u64;
        let hits = rows
            .into_iter()
            .filter(|r| r.matched != 0)
            .map(|r| Hit {
                user: r.user,
                timestamp: r.timestamp,
                event_id: r.event_id,
                name: r.name,
            })
            .collect();
        Ok((hits, read))
    }

    async fn recent_visitors(
        &self,
        project: &str,
        from_ms: i64,
        to_ms: i64,
        budget: u32,
    ) -> Result<Visitors, Error> {
        #[derive(Deserialize)]
        struct Read {
            events: u64,
            visitors: u64,
        }
        let mut values = range(project, from_ms, to_ms);
        values.push(budget.into());
        // Every row, not a `first`: only a whole D1 result carries the rows it read.
        let rows: Vec<Read> = self.query(sql::RECENT_VISITORS, values).await?;
        let read = rows.into_iter().next().unwrap_or(Read {
            events: 0,
            visitors: 0,
        });
        Ok(realtime::visitors(read.events, read.visitors, budget))
    }

    async fn filtered_events(
        &self,
        project: &str,
        from_ms: i64,
        to_ms: i64,
        filters: &Filters,
        after: Option<(i64, &str)>,
        limit: u32,
    ) -> Result<Vec<Event>, Error> {
        let (after_ts, after_id) = after.unwrap_or(crate::BEFORE_ALL);
        let mut values = range(project, from_ms, to_ms);
        values.extend([after_ts.into(), after_id.into(), limit.into()]);
        values.extend(filter_slots(filters));
        let raw: Vec<RawRow> = self.query(sql::FILTERED_EVENTS, values).await?;
        raw.into_iter().map(RawRow::into_event).collect()
    }

    async fn sample_events(
        &self,
        project: &str,
        bucket: u8,
        from_ms: i64,
        to_ms: i64,
        after: Option<(i64, &str)>,
        limit: u32,
    ) -> Result<Vec<Event>, Error> {
        let (after_ts, after_id) = after.unwrap_or(crate::BEFORE_ALL);
        let values = vec![
            project.into(),
            format!("{bucket:02x}").into(),
            from_ms.into(),
            to_ms.into(),
            after_ts.into(),
            after_id.into(),
            limit.into(),
        ];
        let raw: Vec<RawRow> = self.query(sql::SAMPLE_EVENTS, values).await?;
        raw.into_iter().map(RawRow::into_event).collect()
    }
}

/// The values of the ten filter slots of `sql::FILTERED_EVENTS` and
/// `sql::FILTERED_FUNNEL_HITS`: dimension, operator and value per filter, `NULL`s for
/// the slots left over.
fn filter_slots(filters: &Filters) -> Vec<Bound> {
    let mut values = Vec::with_capacity(3 * filter::MAX_FILTERS);
    let mut slots = filters.iter();
    for _ in 0..filter::MAX_FILTERS {
        match slots.next() {
            Some(f) => values.extend([
                f.dimension.name().into(),
                f.op.name().into(),
                f.value.as_str().into(),
            ]),
            None => values.extend([Bound::Null, Bound::Null, Bound::Null]),
        }
    }
    values
}

/// A project's settings as `CREATE_PROJECT` (`with_created_at`) and `UPDATE_PROJECT`
/// bind them.
fn project_values(p: &Project, with_created_at: bool) -> Vec<Bound> {
    let mut values = vec![
        p.slug.as_str().into(),
        p.retention_days.into(),
        origins_json(p).into(),
        p.rate_limit.as_str().into(),
    ];
    if with_created_at {
        values.push(p.created_at.into());
    }
    values.push(p.public_dashboard.into());
    values.push(p.public_badges.into());
    values.push(p.plausible_domain.as_deref().into());
    values
}

impl<S: Executor> AdminStore for S {
    async fn project(&self, slug: &str) -> Result<Option<Project>, Error> {
        let rows: Vec<ProjectRow> = self.query(sql::PROJECT_BY_SLUG, vec![slug.into()]).await?;
        rows.into_iter().next().map(ProjectRow::decode).transpose()
    }

    async fn project_by_plausible_domain(&self, domain: &str) -> Result<Option<Project>, Error> {
        let rows: Vec<ProjectRow> = self
            .query(sql::PROJECT_BY_PLAUSIBLE_DOMAIN, vec![domain.into()])
            .await?;
        rows.into_iter().next().map(ProjectRow::decode).transpose()
    }

    async fn all_projects(&self) -> Result<Vec<Project>, Error> {
        let rows: Vec<ProjectRow> = self.query(sql::ALL_PROJECTS, vec![]).await?;
        rows.into_iter().map(ProjectRow::decode).collect()
    }

    async fn create_project_on(&self, p: &Project, shard: u32) -> Result<bool, Error> {
        let mut values = project_values(p, true);
        values.push(shard.into());
        Ok(change(self, sql::CREATE_PROJECT, values).await? == 1)
    }

    async fn project_shards(
        &self,
        slugs: &[&str],
    ) -> Result<BTreeMap<String, crate::shard::Placement>, Error> {
        #[derive(Deserialize)]
        struct Row {
            slug: String,
            #[serde(flatten)]
            placement: crate::shard::Placement,
        }
        if slugs.is_empty() {
            return Ok(BTreeMap::new());
        }
        let json = serde_json::to_string(slugs).map_err(|e| Error::Decode(e.to_string()))?;
        let rows: Vec<Row> = self.query(sql::PROJECT_SHARDS, vec![json.into()]).await?;
        Ok(rows.into_iter().map(|r| (r.slug, r.placement)).collect())
    }

    async fn projects_per_shard(&self) -> Result<BTreeMap<u32, u64>, Error> {
        #[derive(Deserialize)]
        struct Row {
            shard: u32,
            n: u64,
        }
        let rows: Vec<Row> = self.query(sql::PROJECTS_PER_SHARD, vec![]).await?;
        Ok(rows.into_iter().map(|r| (r.shard, r.n)).collect())
    }

    async fn update_project(&self, p: &Project) -> Result<bool, Error> {
        Ok(change(self, sql::UPDATE_PROJECT, project_values(p, false)).await? == 1)
    }

    async fn create_key(
        &self,
        project: &str,
        kind: KeyKind,
        key: &NewKey,
        name: Option<&str>,
        now_ms: i64,
    ) -> Result<Option<ApiKey>, Error> {
        #[derive(Deserialize)]
        struct Id {
            id: i64,
        }
        let values = vec![
            project.into(),
            kind.as_str().into(),
            key.hash.as_str().into(),
            key.prefix.as_str().into(),
            name.into(),
            now_ms.into(),
        ];
        let ids: Vec<Id> = self.query(sql::CREATE_KEY, values).await?;
        Ok(ids.first().map(|row| ApiKey {
            id: row.id,
            project: project.to_owned(),
            kind,
            name: name.map(str::to_owned),
            prefix: key.prefix.clone(),
            created_at: now_ms,
            revoked_at: None,
        }))
    }

    async fn keys(&self, project: &str) -> Result<Vec<ApiKey>, Error> {
        let rows: Vec<KeyRow> = self
            .query(sql::KEYS_OF_PROJECT, vec![project.into()])
            .await?;
        rows.into_iter().map(KeyRow::decode).collect()
    }

    async fn revoke_key(
        &self,
        project: &str,
        id: i64,
        now_ms: i64,
    ) -> Result<Option<ApiKey>, Error> {
        let values = vec![project.into(), id.into(), now_ms.into()];
        change(self, sql::REVOKE_KEY, values).await?;
        Ok(self.keys(project).await?.into_iter().find(|k| k.id == id))
    }

    async fn key_by_hash(&self, hash: &str) -> Result<Option<(ApiKey, Project)>, Error> {
        let rows: Vec<GrantRow> = self.query(sql::KEY_BY_HASH, vec![hash.into()]).await?;
        rows.into_iter().next().map(GrantRow::decode).transpose()
    }
}

/// The values of a read of `project`'s `period` rows with `from_ms <= start < to_ms`.
fn period_range(project: &str, period: Period, from_ms: i64, to_ms: i64) -> Vec<Bound> {
    vec![
        project.into(),
        period.name().into(),
        from_ms.into(),
        to_ms.into(),
    ]
}

impl<S: Executor> RollupStore for S {
    async fn rollups_by_key(
        &self,
        period: Period,
        keys: &[&Key],
    ) -> Result<BTreeMap<Key, Versioned<Rollup>>, Error> {
        let values = vec![rows::keys_json(period, keys).into()];
        versioned(self.query(sql::ROLLUPS_BY_KEY, values).await?)
    }

    async fn stored_values(
        &self,
        period: Period,
        groups: &[&ValueGroup],
    ) -> Result<BTreeMap<ValueGroup, usize>, Error> {
        #[derive(serde::Deserialize)]
        struct Stored {
            project: String,
            start: i64,
            dimension: String,
            n: i64,
        }
        let json: Vec<(&str, i64, &str)> = groups
            .iter()
            .map(|(project, start, dimension)| (project.as_str(), *start, dimension.name()))
            .collect();
        let values = vec![
            serde_json::to_string(&json)
                .map_err(|e| Error::Decode(e.to_string()))?
                .into(),
            period.name().into(),
        ];
        let mut counts = BTreeMap::new();
        for row in self.query::<Stored>(sql::STORED_VALUES, values).await? {
            let dimension = Dimension::parse(&row.dimension)
                .ok_or_else(|| Error::Decode(format!("unknown dimension {:?}", row.dimension)))?;
            if row.n > 0 {
                counts.insert(
                    (row.project, row.start, dimension),
                    usize::try_from(row.n).unwrap_or(usize::MAX),
                );
            }
        }
        Ok(counts)
    }

    async fn rollups_between(
        &self,
        project: &str,
        period: Period,
        from_ms: i64,
        to_ms: i64,
        dimension: Option<Dimension>,
    ) -> Result<BTreeMap<Key, Versioned<Rollup>>, Error> {
        let mut values = period_range(project, period, from_ms, to_ms);
        let sql = match dimension {
            None => sql::ROLLUPS_BETWEEN,
            Some(d) => {
                values.push(d.name().into());
                sql::ROLLUPS_OF_DIMENSION
            }
        };
        versioned(self.query(sql, values).await?)
    }

    async fn rollups_of_dimensions(
        &self,
        project: &str,
        period: Period,
        from_ms: i64,
        to_ms: i64,
        dimensions: &[Dimension],
        timed: &[Dimension],
    ) -> Result<BTreeMap<Key, Versioned<Rollup>>, Error> {
        let mut values = period_range(project, period, from_ms, to_ms);
        values.push(names_json(dimensions)?.into());
        values.push(names_json(timed)?.into());
        versioned(self.query(sql::ROLLUPS_OF_DIMENSIONS, values).await?)
    }

    async fn rollup_counts(
        &self,
        project: &str,
        period: Period,
        from_ms: i64,
        to_ms: i64,
        dimension: Dimension,
    ) -> Result<Vec<(i64, String, u64)>, Error> {
        #[derive(Deserialize)]
        struct Counted {
            start: i64,
            value: String,
            count: u64,
        }
        let mut values = period_range(project, period, from_ms, to_ms);
        values.push(dimension.name().into());
        let rows: Vec<Counted> = self.query(sql::ROLLUP_COUNTS_OF_DIMENSION, values).await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.start, r.value, r.count))
            .collect())
    }

    async fn dirty_starts(
        &self,
        project: &str,
        period: Period,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<BTreeSet<i64>, Error> {
        #[derive(Deserialize)]
        struct Start {
            start: i64,
        }
        let values = period_range(project, period, from_ms, to_ms);
        let rows: Vec<Start> = self.query(sql::DIRTY_STARTS, values).await?;
        Ok(rows.into_iter().map(|r| r.start).collect())
    }

    async fn dirty_periods(
        &self,
        period: Period,
        limit: u32,
        failed_before_ms: i64,
    ) -> Result<Vec<Dirty>, Error> {
        let values = vec![period.name().into(), limit.into(), failed_before_ms.into()];
        let rows: Vec<DirtyRow> = self.query(sql::DIRTY_PERIODS, values).await?;
        rows.into_iter().map(DirtyRow::decode).collect()
    }
}

impl<S: Executor> JobLog for S {
    async fn record_job_run(&self, run: &JobRun) -> Result<(), Error> {
        let values = vec![
            run.job.as_str().into(),
            run.cron.as_str().into(),
            run.scheduled_at.into(),
            run.started_at.into(),
            run.finished_at.into(),
            run.outcome.as_str().into(),
            run.detail.as_deref().into(),
        ];
        change(self, sql::INSERT_JOB_RUN, values).await.map(drop)
    }

    async fn latest_job_runs(&self) -> Result<Vec<JobRun>, Error> {
        self.query(sql::LATEST_JOB_RUNS, vec![]).await
    }

    async fn meta(&self) -> Result<Vec<(String, String, i64)>, Error> {
        let rows: Vec<MetaRow> = self.query(sql::ALL_META, vec![]).await?;
        Ok(rows
            .into_iter()
            .map(|m| (m.key, m.value, m.updated_at))
            .collect())
    }

    async fn dead_letters(&self) -> Result<u64, Error> {
        let rows: Vec<CountRow> = self.query(sql::COUNT_DEAD_LETTERS, vec![]).await?;
        Ok(rows.first().map_or(0, |c| c.n))
    }
}

impl<S: Executor> FilteredReads for S {
    async fn rollups_matching(
        &self,
        project: &str,
        period: Period,
        from_ms: i64,
        to_ms: i64,
        dimension: Dimension,
        value: ValueMatch<'_>,
    ) -> Result<BTreeMap<Key, Versioned<Rollup>>, Error> {
        let (sql, value) = match value {
            ValueMatch::Exact(v) => (sql::ROLLUPS_OF_VALUE, v),
            ValueMatch::Prefix(v) => (sql::ROLLUPS_OF_VALUE_PREFIX, v),
        };
        let mut values = period_range(project, period, from_ms, to_ms);
        values.extend([dimension.name().into(), value.into()]);
        versioned(self.query(sql, values).await?)
    }

    async fn user_event_counts(
        &self,
        project: &str,
        user_hash: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<DayCount>, Error> {
        let mut values = range(project, from_ms, to_ms);
        values.push(user_hash.into());
        self.query(sql::USER_EVENT_COUNTS, values).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_purge_runs_the_statements_its_budget_counts() {
        let (project, before_ms, limit) = ("p", 0, 1);
        let raw = Write::PurgeRaw {
            project,
            before_ms,
            limit,
        };
        let alerts = Write::PurgeAlerts {
            project,
            before_ms,
            limit,
        };
        assert_eq!(
            raw.statements().len() + alerts.statements().len(),
            crate::PURGE_RAW_STATEMENTS as usize
        );
    }
}
