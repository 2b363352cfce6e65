//! Storage of alert rules, their state, alert history, delivery attempts and campaign
//! states: the reads ([`AlertStore`], written once over [`Executor`]), the writes
//! alerting commits and the rows they read; and alerting itself over those traits.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::Deserialize;
use tally_core::alerts::{
    Alert, CampaignStatus, MINUTE_ROWS_KEPT_MS, MinuteSources, Observation,
    RULES_LEARNED_WITHIN_MS, Rule, State, Status, StoredRule, Transition, step, step_on_part,
};
use tally_core::rollup::{Dimension, Rollup};
use tally_core::sql;
use tally_core::time::{Interval, MINUTE_MS};

use crate::exec::{Bound, Executor, Statement, int};
use crate::rows::RollupRow;
use crate::{Error, EventStore, JobLog, Write, Writer};

/// A rule with what its evaluations remember.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleEntry {
    pub rule: Rule,
    pub status: Status,
    /// The value and volume of the last evaluation, and when it ran.
    pub last: Option<(Option<f64>, u64, i64)>,
    /// Why the last evaluation failed, if it did (then `last` holds the value of the
    /// last one that succeeded, and when the failed one ran).
    pub error: Option<String>,
}

/// One delivery attempt of an alert's webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub attempt: u32,
    pub at: i64,
    /// The receiver's HTTP status; `None` when no answer came.
    pub status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// A recorded firing or resolution, decoded straight from its `alerts` row.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AlertRecord {
    pub id: String,
    pub rule_id: String,
    /// The rule's name, if the rule still exists.
    pub rule_name: Option<String>,
    pub project: String,
    /// `fired` or `resolved`.
    pub kind: String,
    pub at: i64,
    pub value: Option<f64>,
    pub volume: u64,
    /// The exact webhook body.
    pub payload: String,
    pub queued_at: Option<i64>,
    /// `none`, `pending`, `delivered` or `failed`.
    pub delivery: String,
    pub attempts: u32,
    pub delivered_at: Option<i64>,
    pub campaign_paused: Option<String>,
    /// Filled by [`AlertStore::alerts`]; empty from [`AlertStore::alert`].
    #[serde(skip)]
    pub attempt_log: Vec<Attempt>,
}

/// A campaign whose status was set.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CampaignState {
    pub campaign: String,
    /// `active` or `paused`.
    pub status: String,
    pub reason: Option<String>,
    pub alert_id: Option<String>,
    pub updated_at: i64,
}

/// The delivery state of an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The rule has no webhook.
    None,
    Pending,
    Delivered,
    /// Retries exhausted; the message went to the dead-letter queue.
    Failed,
}

impl Delivery {
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }
}

/// A change alerting makes, committed with [`crate::Writer::commit`] as
/// [`crate::Write::Alert`].
#[derive(Debug, Clone)]
pub enum AlertWrite<'a> {
    /// Adds a rule unless its project has `max_rules` already (0 rows changed then).
    InsertRule {
        rule: &'a Rule,
        max_rules: usize,
    },
    /// Changes a rule's definition, secret and switch.
    UpdateRule {
        rule: &'a Rule,
    },
    DeleteRule {
        project: &'a str,
        id: &'a str,
    },
    /// Moves rules from the status each was read in to its new state, in one statement
    /// per [`CHANGE_CHUNK`] changes; a rule another evaluation moved meanwhile is not
    /// changed.
    Transitions {
        changes: &'a [Change],
        now_ms: i64,
    },
    /// Records the alerts of changes, each only if its transition was written, in one
    /// statement per [`CHANGE_CHUNK`] changes.
    InsertAlerts {
        changes: &'a [Change],
    },
    /// Records evaluations that changed no state, and those that failed, in one
    /// statement per [`RECORD_CHUNK`] rules.
    Evaluated {
        records: &'a [Evaluated],
        now_ms: i64,
    },
    /// Notes that alerts were handed to the queue, in one statement per
    /// [`RECORD_CHUNK`] alerts.
    Queued {
        alert_ids: &'a [String],
        now_ms: i64,
    },
    /// Records a delivery attempt and the delivery state after it.
    Attempted {
        alert_id: &'a str,
        attempt: &'a Attempt,
        delivery: Delivery,
    },
    /// Sets the delivery state without an attempt (retries exhausted).
    Delivery {
        alert_id: &'a str,
        delivery: Delivery,
    },
    /// Sets a campaign's status; `alert_id` when an alert paused it.
    SetCampaign {
        project: &'a str,
        campaign: &'a str,
        paused: bool,
        reason: Option<&'a str>,
        alert_id: Option<&'a str>,
        now_ms: i64,
    },
    /// Deletes a project's minute rollup rows older than `before_ms`.
    /// Up to `limit` of a project's minute rows older than `before_ms`.
    PurgeMinutes {
        project: &'a str,
        before_ms: i64,
        limit: u32,
    },
}

impl AlertWrite<'_> {
    /// The statements of this write, in order, with their parameters.
    pub fn statements(&self) -> Vec<Statement> {
        match self {
            Self::InsertRule { rule, max_rules } => {
                let mut values = rule_values(rule);
                values.push(int(*max_rules));
                vec![Statement::new(sql::INSERT_ALERT_RULE, values)]
            }
            Self::UpdateRule { rule } => {
                vec![Statement::new(sql::UPDATE_ALERT_RULE, rule_values(rule))]
            }
            Self::DeleteRule { project, id } => {
                vec![Statement::new(
                    sql::DELETE_ALERT_RULE,
                    vec![(*id).into(), (*project).into()],
                )]
            }
            Self::Transitions { changes, now_ms } => json_chunks(
                sql::ALERT_TRANSITIONS,
                changes,
                CHANGE_CHUNK,
                |c| {
                    serde_json::json!([
                        c.alert.rule_id,
                        c.from.state.name(),
                        c.from.since_ms,
                        c.to.name(),
                        c.observation.value.filter(|v| v.is_finite()),
                        c.observation
                            .volume
                            .min(tally_core::rollup::MAX_STORED_INTEGER),
                    ])
                },
                &[(*now_ms).into()],
            ),
            Self::InsertAlerts { changes } => json_chunks(
                sql::INSERT_ALERTS,
                changes,
                CHANGE_CHUNK,
                |c| {
                    let a = &c.alert;
                    serde_json::json!([
                        a.id,
                        a.rule_id,
                        a.project,
                        a.kind_name(),
                        a.at_ms,
                        a.value.filter(|v| v.is_finite()),
                        a.volume.min(tally_core::rollup::MAX_STORED_INTEGER),
                        c.payload,
                        c.delivery.name(),
                        c.to.name(),
                    ])
                },
                &[],
            ),
            Self::Evaluated { records, now_ms } => json_chunks(
                sql::ALERTS_EVALUATED,
                records,
                RECORD_CHUNK,
                |r| match &r.outcome {
                    Ok(o) => serde_json::json!([
                        r.rule_id,
                        o.value.filter(|v| v.is_finite()),
                        o.volume.min(tally_core::rollup::MAX_STORED_INTEGER),
                        null
                    ]),
                    Err(error) => serde_json::json!([r.rule_id, null, null, error]),
                },
                &[(*now_ms).into()],
            ),
            Self::Queued { alert_ids, now_ms } => json_chunks(
                sql::ALERTS_QUEUED,
                alert_ids,
                RECORD_CHUNK,
                |id| serde_json::json!(id),
                &[(*now_ms).into()],
            ),
            Self::Attempted {
                alert_id,
                attempt,
                delivery,
            } => vec![
                Statement::new(
                    sql::INSERT_ALERT_ATTEMPT,
                    vec![
                        (*alert_id).into(),
                        int(attempt.attempt),
                        attempt.at.into(),
                        attempt.status.map(i64::from).into(),
                        attempt.error.as_deref().into(),
                        attempt.duration_ms.into(),
                    ],
                ),
                Statement::new(
                    sql::ALERT_DELIVERY,
                    vec![
                        (*alert_id).into(),
                        delivery.name().into(),
                        int(attempt.attempt),
                        Some(attempt.at)
                            .filter(|_| *delivery == Delivery::Delivered)
                            .into(),
                    ],
                ),
            ],
            Self::Delivery { alert_id, delivery } => vec![Statement::new(
                sql::ALERT_DELIVERY,
                vec![
                    (*alert_id).into(),
                    delivery.name().into(),
                    int(0),
                    Bound::Null,
                ],
            )],
            Self::SetCampaign {
                project,
                campaign,
                paused,
                reason,
                alert_id,
                now_ms,
            } => {
                let mut statements = vec![Statement::new(
                    sql::SET_CAMPAIGN,
                    vec![
                        (*project).into(),
                        (*campaign).into(),
                        CampaignStatus::of(*paused).name().into(),
                        (*reason).into(),
                        (*alert_id).into(),
                        (*now_ms).into(),
                    ],
                )];
                if let (Some(alert), true) = (alert_id, paused) {
                    statements.push(Statement::new(
                        sql::ALERT_PAUSED_CAMPAIGN,
                        vec![(*alert).into(), (*campaign).into()],
                    ));
                }
                statements
            }
            Self::PurgeMinutes {
                project,
                before_ms,
                limit,
            } => vec![Statement::new(
                sql::PURGE_MINUTE_ROLLUPS,
                vec![(*project).into(), (*before_ms).into(), (*limit).into()],
            )],
        }
    }
}

/// A rule's values as [`sql::INSERT_ALERT_RULE`] and [`sql::UPDATE_ALERT_RULE`] both
/// take them first: id, project, definition, webhook secret, enabled, updated at.
fn rule_values(rule: &Rule) -> Vec<Bound> {
    vec![
        rule.id.as_str().into(),
        rule.project.as_str().into(),
        rule.definition().as_str().into(),
        rule.webhook.as_ref().map(|w| w.secret.as_str()).into(),
        int(i64::from(rule.enabled)),
        rule.updated_at.into(),
    ]
}

/// One `sql` statement per `chunk` of `items`: the chunk as one JSON array of `row`s
/// (`?1`, so a chunk of any size is one bound parameter), then the values of `rest`.
fn json_chunks<T>(
    sql: &'static str,
    items: &[T],
    chunk: usize,
    row: impl Fn(&T) -> serde_json::Value,
    rest: &[Bound],
) -> Vec<Statement> {
    items
        .chunks(chunk)
        .map(|chunk| {
            let json: Vec<serde_json::Value> = chunk.iter().map(&row).collect();
            let mut values = vec![serde_json::Value::from(json).to_string().into()];
            values.extend_from_slice(rest);
            Statement::new(sql, values)
        })
        .collect()
}

/// Reads of alerting data.
#[allow(async_fn_in_trait)]
pub trait AlertStore {
    /// The rules of `project`, oldest first, or with `None` every enabled rule.
    ///
    /// # Errors
    ///
    /// [`Error::Database`], or [`Error::Decode`] for a stored rule that does not parse.
    async fn alert_rules(&self, project: Option<&str>) -> Result<Vec<RuleEntry>, Error>;

    /// The merged minute rows of each `(dimension, value)` of `project` with
    /// `from_ms <= start < to_ms`; a value without rows is absent.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] or [`Error::Decode`].
    async fn minute_rows(
        &self,
        project: &str,
        sources: &[(Dimension, String)],
        from_ms: i64,
        to_ms: i64,
    ) -> Result<BTreeMap<(Dimension, String), Rollup>, Error>;

    /// The latest `limit` alerts of `project` with `from_ms <= at < to_ms`, newest
    /// first, with their delivery attempts.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] or [`Error::Decode`].
    async fn alerts(
        &self,
        project: &str,
        from_ms: i64,
        to_ms: i64,
        limit: u32,
    ) -> Result<Vec<AlertRecord>, Error>;

    /// One alert, without its attempts.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] or [`Error::Decode`].
    async fn alert(&self, id: &str) -> Result<Option<AlertRecord>, Error>;

    /// Up to `limit` alerts recorded before `before_ms` that were never queued.
    ///
    /// # Errors
    ///
    /// [`Error::Database`].
    async fn unqueued_alerts(&self, before_ms: i64, limit: u32) -> Result<Vec<String>, Error>;

    /// The campaigns of `project` whose status was set.
    ///
    /// # Errors
    ///
    /// [`Error::Database`].
    async fn campaigns(&self, project: &str) -> Result<Vec<CampaignState>, Error>;
}

impl<S: Executor> AlertStore for S {
    async fn alert_rules(&self, project: Option<&str>) -> Result<Vec<RuleEntry>, Error> {
        let rows: Vec<RuleRow> = match project {
            Some(p) => {
                self.query(sql::ALERT_RULES_OF_PROJECT, vec![p.into()])
                    .await?
            }
            None => self.query(sql::ENABLED_ALERT_RULES, vec![]).await?,
        };
        rows.into_iter().map(RuleRow::decode).collect()
    }

    async fn minute_rows(
        &self,
        project: &str,
        sources: &[(Dimension, String)],
        from_ms: i64,
        to_ms: i64,
    ) -> Result<BTreeMap<(Dimension, String), Rollup>, Error> {
        let mut rows = Vec::new();
        for (dimension, value) in sources {
            let values = vec![
                project.into(),
                dimension.name().into(),
                value.as_str().into(),
                from_ms.into(),
                to_ms.into(),
            ];
            rows.extend(
                self.query::<RollupRow>(sql::MINUTE_ROWS_OF_VALUE, values)
                    .await?,
            );
        }
        merge_minutes(rows)
    }

    async fn alerts(
        &self,
        project: &str,
        from_ms: i64,
        to_ms: i64,
        limit: u32,
    ) -> Result<Vec<AlertRecord>, Error> {
        let values = vec![
            project.into(),
            from_ms.into(),
            i64::from(limit).into(),
            to_ms.into(),
        ];
        let records: Vec<AlertRecord> = self.query(sql::ALERTS_OF_PROJECT, values).await?;
        let ids = ids_json(&records);
        let attempts: Vec<AttemptRow> = self
            .query(sql::ALERT_ATTEMPTS, vec![ids.as_str().into()])
            .await?;
        Ok(with_attempts(records, attempts))
    }

    async fn alert(&self, id: &str) -> Result<Option<AlertRecord>, Error> {
        let rows: Vec<AlertRecord> = self.query(sql::ALERT_BY_ID, vec![id.into()]).await?;
        Ok(rows.into_iter().next())
    }

    async fn unqueued_alerts(&self, before_ms: i64, limit: u32) -> Result<Vec<String>, Error> {
        let values = vec![before_ms.into(), i64::from(limit).into()];
        let rows: Vec<IdRow> = self.query(sql::UNQUEUED_ALERTS, values).await?;
        Ok(rows.into_iter().map(|r| r.id).collect())
    }

    async fn campaigns(&self, project: &str) -> Result<Vec<CampaignState>, Error> {
        self.query(sql::CAMPAIGNS_OF_PROJECT, vec![project.into()])
            .await
    }
}

/// An `alert_rules` row.
#[derive(Debug, Deserialize)]
pub(crate) struct RuleRow {
    id: String,
    project: String,
    definition: String,
    secret: Option<String>,
    enabled: i64,
    created_at: i64,
    updated_at: i64,
    state: String,
    state_since: i64,
    last_fired_at: Option<i64>,
    last_value: Option<f64>,
    last_volume: Option<i64>,
    evaluated_at: Option<i64>,
    last_error: Option<String>,
}

impl RuleRow {
    pub(crate) fn decode(self) -> Result<RuleEntry, Error> {
        let bad = |what: String| Error::Decode(format!("alert rule {}: {what}", self.id));
        let state =
            State::parse(&self.state).ok_or_else(|| bad(format!("state {:?}", self.state)))?;
        let status = Status {
            state,
            since_ms: self.state_since,
            last_fired_ms: self.last_fired_at,
        };
        let last = self.evaluated_at.map(|at| {
            (
                self.last_value,
                self.last_volume.unwrap_or(0).max(0) as u64,
                at,
            )
        });
        let rule = Rule::from_stored(StoredRule {
            id: self.id.clone(),
            project: self.project,
            definition: self.definition,
            secret: self.secret,
            enabled: self.enabled != 0,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
        .map_err(|e| bad(e.to_string()))?;
        Ok(RuleEntry {
            rule,
            status,
            last,
            error: self.last_error,
        })
    }
}

/// The minute rows each project's enabled rules read ([`Rule::sources`]), read from the
/// control database and kept for [`RULES_LEARNED_WITHIN_MS`]: what the consumer hands
/// [`crate::pipeline::store_events`] as [`MinuteSources`]. One per isolate. A project
/// without rules is kept too (with none), so a batch of projects known a minute costs
/// no read; the others of a batch are read in one query.
#[derive(Debug, Default)]
pub struct KnownRules {
    known: RefCell<HashMap<String, RulesRead>>,
}

/// What a project's enabled rules read, and when that was read from the control
/// database.
type RulesRead = (Vec<(Dimension, String)>, i64);

/// Most projects whose rules are kept per isolate: past it, the oldest half is
/// forgotten (and read again when next seen).
const MAX_KNOWN_RULES: usize = 10_000;

impl KnownRules {
    pub fn new() -> Self {
        Self::default()
    }

    /// The minute rows to write for events of `projects` at `now_ms`: the rules of
    /// projects read less than [`RULES_LEARNED_WITHIN_MS`] ago from the cache, the
    /// others in one read of `control` ([`sql::ENABLED_ALERT_RULES_OF_PROJECTS`]). A
    /// stored rule that does not parse is left out: its evaluation reports it.
    ///
    /// # Errors
    ///
    /// The control database's error (the caller then writes every minute row:
    /// [`MinuteSources::every`]).
    pub async fn minute_sources<E: Executor>(
        &self,
        control: &E,
        projects: &[&str],
        now_ms: i64,
    ) -> Result<MinuteSources, Error> {
        let mut sources = MinuteSources::default();
        let mut missing: Vec<&str> = Vec::new();
        {
            let known = self.known.borrow();
            for project in projects {
                match known.get(*project) {
                    Some((read, at)) if now_ms - at < RULES_LEARNED_WITHIN_MS => {
                        sources.add(project, read.iter().cloned());
                    }
                    _ => missing.push(*project),
                }
            }
        }
        if !missing.is_empty() {
            missing.sort_unstable();
            missing.dedup();
            let slugs = serde_json::Value::from(missing.clone()).to_string();
            let rows: Vec<RuleRow> = control
                .query(sql::ENABLED_ALERT_RULES_OF_PROJECTS, vec![slugs.into()])
                .await?;
            let mut read: HashMap<String, Vec<(Dimension, String)>> = HashMap::new();
            for entry in rows.into_iter().filter_map(|row| row.decode().ok()) {
                read.entry(entry.rule.project.clone())
                    .or_default()
                    .extend(entry.rule.sources());
            }
            let mut known = self.known.borrow_mut();
            if known.len() + missing.len() > MAX_KNOWN_RULES {
                let mut ages: Vec<i64> = known.values().map(|(_, at)| *at).collect();
                ages.sort_unstable();
                let cut = ages[ages.len() / 2];
                known.retain(|_, (_, at)| *at > cut);
            }
            for project in missing {
                let rules_read = read.remove(project).unwrap_or_default();
                sources.add(project, rules_read.iter().cloned());
                known.insert(project.to_owned(), (rules_read, now_ms));
            }
        }
        Ok(sources)
    }
}

/// An `alert_attempts` row.
#[derive(Debug, Deserialize)]
pub(crate) struct AttemptRow {
    alert_id: String,
    attempt: u32,
    at: i64,
    status: Option<u16>,
    error: Option<String>,
    duration_ms: i64,
}

/// A row with just an id.
#[derive(Debug, Deserialize)]
pub(crate) struct IdRow {
    pub id: String,
}

/// Attaches attempts to their alerts.
pub(crate) fn with_attempts(
    mut alerts: Vec<AlertRecord>,
    attempts: Vec<AttemptRow>,
) -> Vec<AlertRecord> {
    let mut by_alert: BTreeMap<String, Vec<Attempt>> = BTreeMap::new();
    for row in attempts {
        by_alert.entry(row.alert_id).or_default().push(Attempt {
            attempt: row.attempt,
            at: row.at,
            status: row.status,
            error: row.error,
            duration_ms: row.duration_ms,
        });
    }
    for alert in &mut alerts {
        alert.attempt_log = by_alert.remove(&alert.id).unwrap_or_default();
    }
    alerts
}

/// The JSON array of alert ids [`sql::ALERT_ATTEMPTS`] takes.
pub(crate) fn ids_json(alerts: &[AlertRecord]) -> String {
    serde_json::Value::from(alerts.iter().map(|a| a.id.as_str()).collect::<Vec<_>>()).to_string()
}

/// Merges minute rows into one row per (dimension, value).
pub(crate) fn merge_minutes(
    rows: Vec<RollupRow>,
) -> Result<BTreeMap<(Dimension, String), Rollup>, Error> {
    let mut merged: BTreeMap<(Dimension, String), Rollup> = BTreeMap::new();
    for row in rows {
        let (_, key, rollup, _) = row.decode()?;
        merged
            .entry((key.dimension, key.value))
            .or_default()
            .merge(&rollup);
    }
    Ok(merged)
}

/// What [`Transition`] an alert's kind is.
pub fn transition_of(kind: &str) -> Transition {
    if kind == "resolved" {
        Transition::Resolve
    } else {
        Transition::Fire
    }
}

/// D1 queries one evaluation of the rules may make (statements read or written), of
/// the 1,000 each Worker invocation may make: the minutely cron's rolls and its own
/// bookkeeping need the rest. Reads are one per project (more only for a project whose
/// rules read more than [`READ_SOURCE_MINUTES`]) and state changes two statements per
/// [`CHANGE_CHUNK`], so 1,000 rules in 10 projects take 19 (27 when 500 of them fire at
/// once); rules past the budget are deferred to the next run, which starts with them.
pub const ALERT_QUERY_BUDGET: u32 = 300;

/// Rules (or alerts) one recording statement covers: its JSON stays well within D1's
/// 100 KB statement and 2 MB value limits.
pub const RECORD_CHUNK: usize = 200;

/// State changes one statement writes (each carries its webhook body, under 2 KB).
pub const CHANGE_CHUNK: usize = 100;

/// A state change an evaluation decided, with its alert.
#[derive(Debug, Clone)]
pub struct Change {
    pub from: Status,
    pub to: State,
    pub observation: Observation,
    pub alert: Alert,
    /// The alert's webhook body.
    pub payload: String,
    pub delivery: Delivery,
}

/// Source-minutes (a source's rows over its longest window) one read covers at most, so
/// that no single read returns more rows than this: 13 day-long sources, or 200 sources
/// of 100 minutes.
pub const READ_SOURCE_MINUTES: i64 = 20_000;

/// Failures an [`Evaluation`] lists; past it only the count grows.
const FAILURES_LISTED: usize = 20;

/// The meta key of the last evaluation's [`Evaluation`] and where the next one starts.
pub const ALERTS_META: &str = "alerts";

/// What one evaluation of the enabled rules did; recorded in meta [`ALERTS_META`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Evaluation {
    pub at: i64,
    /// Enabled rules.
    pub rules: usize,
    /// Rules evaluated this run, failed ones included.
    pub evaluated: usize,
    pub fired: usize,
    pub resolved: usize,
    /// Breached within their cooldown.
    pub suppressed: usize,
    /// Rules whose evaluation failed (a row or the rule itself could not be read, a
    /// write failed); each has its error recorded with its state.
    pub failed: usize,
    /// The first failures, with their errors.
    pub failures: Vec<RuleFailure>,
    /// Rules left for the next run: the query budget ran out before them.
    pub deferred: usize,
    /// D1 queries made, and the budget they were made within.
    pub queries: u32,
    pub budget: u32,
    /// The project the next run starts with, if this one deferred rules.
    pub next: Option<String>,
    /// Alerts to hand to the `alerts` queue: the new ones, and older ones that were
    /// recorded but never queued (a run that stopped between the two).
    #[serde(skip)]
    pub to_queue: Vec<String>,
}

/// A rule whose evaluation failed, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RuleFailure {
    pub project: String,
    pub rule: String,
    pub error: String,
}

/// An evaluation to record: its observation, or why it failed.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluated {
    pub rule_id: String,
    pub outcome: Result<Observation, String>,
}

/// How long a recorded alert may stay unqueued before a later run queues it.
pub const REQUEUE_AFTER_MS: i64 = 60_000;

/// Evaluates every enabled rule at `now_ms` within [`ALERT_QUERY_BUDGET`]; see
/// [`evaluate_within`].
///
/// # Errors
///
/// As [`evaluate_within`].
pub async fn evaluate<S: Executor>(store: &S, now_ms: i64) -> Result<Evaluation, Error> {
    evaluate_within(store, now_ms, ALERT_QUERY_BUDGET).await
}

/// D1 queries counted against an evaluation's budget.
struct Budget {
    limit: u32,
    spent: u32,
}

impl Budget {
    /// Whether `n` more queries fit, keeping `reserve` for the run's last writes.
    fn fits(&self, n: u32, reserve: u32) -> bool {
        self.spent + n + reserve <= self.limit
    }
}

/// A source of one project's rules and the start of the longest window reading it.
type Sources = BTreeMap<(Dimension, String), i64>;

/// Evaluates the enabled rules at `now_ms` from minute rollups, making at most `budget`
/// D1 queries: the minute rows of each project are read at once for all its rules
/// (each source over its longest window), a project's state changes commit together
/// with their alerts (at most one per change, however many runs overlap: each is
/// guarded by the state it was decided from), and the evaluations that changed nothing
/// are recorded together. Says which alerts to queue.
///
/// Each rule stands alone: one that cannot be read, whose rows cannot be read, or whose
/// transition cannot be written gets its error recorded (`RuleEntry::error`) and the
/// others go on. Projects are taken in order from where the last run stopped; when the
/// budget runs out, the rest are deferred to the next run, which starts with them. The
/// run is recorded in meta [`ALERTS_META`].
///
/// # Errors
///
/// The store's error when the rules cannot be listed or the run not recorded;
/// transitions committed before it stay committed.
pub async fn evaluate_within<S: Executor>(
    store: &S,
    now_ms: i64,
    budget: u32,
) -> Result<Evaluation, Error> {
    let mut budget = Budget {
        limit: budget,
        spent: 2,
    };
    let rows: Vec<RuleRow> = store.query(sql::ENABLED_ALERT_RULES, vec![]).await?;
    let resume_at = store
        .meta()
        .await?
        .into_iter()
        .find(|(key, _, _)| key == ALERTS_META)
        .and_then(|(_, value, _)| serde_json::from_str::<Evaluation>(&value).ok())
        .and_then(|last| last.next);
    let mut run = Evaluation {
        at: now_ms,
        rules: rows.len(),
        budget: budget.limit,
        ..Evaluation::default()
    };
    let mut records: Vec<Evaluated> = Vec::new();

    // Rules by project, in the order the projects are taken this run.
    let mut projects: Vec<(String, Vec<RuleEntry>)> = Vec::new();
    for row in rows {
        let (id, project) = (row.id.clone(), row.project.clone());
        match row.decode() {
            Ok(entry) => match projects.last_mut() {
                Some((p, entries)) if *p == project => entries.push(entry),
                _ => projects.push((project, vec![entry])),
            },
            Err(e) => fail(&mut run, &mut records, &project, &id, e.to_string()),
        }
    }
    let first = resume_at
        .and_then(|slug| projects.iter().position(|(p, _)| *p >= slug))
        .unwrap_or(0);
    projects.rotate_left(first);
    // Where every project lives, in one read of the control database when the store is
    // a router: otherwise each project's first read would look its shard up alone (a
    // placement is cached for a minute, about the time between two runs).
    let slugs: Vec<&str> = projects.iter().map(|(p, _)| p.as_str()).collect();
    budget.spent += store.expect_projects(&slugs).await?;
    // Kept for the end: the unqueued alerts' read, the records (one statement per chunk
    // of rules) and the run's meta.
    let reserve = u32::try_from(run.rules.div_ceil(RECORD_CHUNK)).unwrap_or(u32::MAX) + 2;
    let window_end = Interval::Minute.floor(now_ms) + MINUTE_MS;

    for (index, (project, entries)) in projects.iter().enumerate() {
        let mut sources = Sources::new();
        for entry in entries {
            let from = entry.rule.read_from(now_ms);
            for source in entry.rule.sources() {
                let earliest = sources.entry(source).or_insert(from);
                *earliest = (*earliest).min(from);
            }
        }
        let reads = read_chunks(&sources, window_end);
        if !budget.fits(reads.len() as u32, reserve) {
            run.next.get_or_insert_with(|| project.clone());
            run.deferred += projects[index..]
                .iter()
                .map(|(_, e)| e.len())
                .sum::<usize>();
            break;
        }
        let rows = read_sources(store, project, &reads, window_end, &mut budget, reserve).await;
        let windows = windows(entries, now_ms, rows);
        let mut changes: Vec<Change> = Vec::new();
        for RuleEntry { rule, status, .. } in entries {
            let mut merged = BTreeMap::new();
            // A rule created or changed less than its window ago reads the minutes the
            // consumer counted for it, and decides on them only what they settle.
            let start = rule.read_from(now_ms);
            let mut failed = None;
            for source in rule.sources() {
                match windows.get(&(source.clone(), start)) {
                    Some(Ok(row)) => {
                        merged.insert(source, row.clone());
                    }
                    Some(Err(e)) => failed = Some(e.clone()),
                    None => {}
                }
            }
            if let Some(error) = failed {
                fail(&mut run, &mut records, project, &rule.id, error);
                continue;
            }
            let observation = rule.observe(&merged);
            let transition = if start == rule.window_start(now_ms) {
                step(rule, status, observation, now_ms)
            } else {
                step_on_part(rule, status, observation, now_ms)
            };
            let to = match transition {
                Transition::Fire => State::Firing,
                Transition::Resolve => State::Ok,
                Transition::Suppressed | Transition::Stay => {
                    run.suppressed += usize::from(transition == Transition::Suppressed);
                    run.evaluated += 1;
                    records.push(Evaluated {
                        rule_id: rule.id.clone(),
                        outcome: Ok(observation),
                    });
                    continue;
                }
            };
            let alert = Alert::new(rule, transition, observation, now_ms);
            changes.push(Change {
                from: *status,
                to,
                observation,
                payload: alert.payload(rule),
                alert,
                delivery: if rule.webhook.is_some() {
                    Delivery::Pending
                } else {
                    Delivery::None
                },
            });
        }
        write_changes(
            store,
            project,
            changes,
            now_ms,
            &mut budget,
            reserve,
            &mut run,
            &mut records,
        )
        .await;
    }

    for id in store
        .unqueued_alerts(now_ms - REQUEUE_AFTER_MS, 100)
        .await?
    {
        if !run.to_queue.contains(&id) {
            run.to_queue.push(id);
        }
    }
    budget.spent += 1;
    let mut writes = Vec::new();
    if !records.is_empty() {
        budget.spent += u32::try_from(records.len().div_ceil(RECORD_CHUNK)).unwrap_or(u32::MAX);
        writes.push(Write::Alert(AlertWrite::Evaluated {
            records: &records,
            now_ms,
        }));
    }
    budget.spent += 1;
    run.queries = budget.spent;
    let value = serde_json::to_string(&run).expect("an evaluation serializes");
    writes.push(Write::PutMeta {
        key: ALERTS_META,
        value,
        now_ms,
    });
    store.commit(&writes).await?;
    Ok(run)
}

/// Writes a project's state changes with their alerts: all at once (two statements per
/// [`CHANGE_CHUNK`]), or, if that fails, one by one so that a change that cannot be
/// written fails alone. Changes past the budget are deferred to the next run (they are
/// decided again there). Counts what was written and queues the new alerts.
#[allow(clippy::too_many_arguments)]
async fn write_changes<S: Executor>(
    store: &S,
    project: &str,
    mut changes: Vec<Change>,
    now_ms: i64,
    budget: &mut Budget,
    reserve: u32,
    run: &mut Evaluation,
    records: &mut Vec<Evaluated>,
) {
    let cost = |n: usize| 2 * u32::try_from(n.div_ceil(CHANGE_CHUNK)).unwrap_or(u32::MAX);
    let mut fit = changes.len();
    while fit > 0 && !budget.fits(cost(fit), reserve) {
        fit = (fit.div_ceil(CHANGE_CHUNK) - 1) * CHANGE_CHUNK;
    }
    if fit < changes.len() {
        // Decided but not written: the next run, starting here, decides again.
        run.deferred += changes.len() - fit;
        run.next.get_or_insert_with(|| project.to_owned());
        changes.truncate(fit);
    }
    if changes.is_empty() {
        return;
    }
    budget.spent += cost(changes.len());
    let writes = [
        Write::Alert(AlertWrite::Transitions {
            changes: &changes,
            now_ms,
        }),
        Write::Alert(AlertWrite::InsertAlerts { changes: &changes }),
    ];
    let recorded: Vec<&Change> = match store.commit(&writes).await {
        Ok(changed) if changed.get(1) == Some(&(changes.len() as u64)) => changes.iter().collect(),
        Ok(_) => {
            // Some rules were moved by an overlapping run: find which alerts are ours
            // (an alert left unqueued is queued by a later run anyway).
            if !budget.fits(1, reserve) {
                run.evaluated += changes.len();
                return;
            }
            budget.spent += 1;
            let ids: Vec<&str> = changes.iter().map(|c| c.alert.id.as_str()).collect();
            let json = serde_json::Value::from(ids).to_string();
            let found: Vec<IdRow> = store
                .query(sql::ALERTS_RECORDED, vec![json.into()])
                .await
                .unwrap_or_default();
            changes
                .iter()
                .filter(|c| found.iter().any(|r| r.id == c.alert.id))
                .collect()
        }
        Err(_) if changes.len() > 1 => {
            let mut recorded = Vec::new();
            for change in &changes {
                if !budget.fits(2, reserve) {
                    run.deferred += 1;
                    run.next.get_or_insert_with(|| project.to_owned());
                    continue;
                }
                budget.spent += 2;
                let one = std::slice::from_ref(change);
                let writes = [
                    Write::Alert(AlertWrite::Transitions {
                        changes: one,
                        now_ms,
                    }),
                    Write::Alert(AlertWrite::InsertAlerts { changes: one }),
                ];
                match store.commit(&writes).await {
                    Ok(changed) => {
                        run.evaluated += 1;
                        if changed.get(1) == Some(&1) {
                            recorded.push(change);
                        }
                    }
                    Err(e) => fail(run, records, project, &change.alert.rule_id, e.to_string()),
                }
            }
            count_changes(run, &recorded);
            return;
        }
        Err(e) => {
            for change in &changes {
                fail(run, records, project, &change.alert.rule_id, e.to_string());
            }
            return;
        }
    };
    run.evaluated += changes.len();
    count_changes(run, &recorded);
}

/// Counts the changes whose alerts were recorded, and queues those alerts.
fn count_changes(run: &mut Evaluation, recorded: &[&Change]) {
    for change in recorded {
        match change.alert.kind {
            Transition::Fire => run.fired += 1,
            _ => run.resolved += 1,
        }
        run.to_queue.push(change.alert.id.clone());
    }
}

/// Counts a rule whose evaluation failed, and records its error.
fn fail(
    run: &mut Evaluation,
    records: &mut Vec<Evaluated>,
    project: &str,
    rule: &str,
    error: String,
) {
    run.failed += 1;
    run.evaluated += 1;
    if run.failures.len() < FAILURES_LISTED {
        run.failures.push(RuleFailure {
            project: project.to_owned(),
            rule: rule.to_owned(),
            error: error.clone(),
        });
    }
    records.push(Evaluated {
        rule_id: rule.to_owned(),
        outcome: Err(error),
    });
}

/// Splits a project's sources into reads of at most [`READ_SOURCE_MINUTES`] each.
fn read_chunks(sources: &Sources, window_end: i64) -> Vec<Vec<(&(Dimension, String), i64)>> {
    let mut chunks: Vec<Vec<(&(Dimension, String), i64)>> = Vec::new();
    let mut minutes = 0;
    for (source, &from) in sources {
        let span = (window_end - from).div_euclid(MINUTE_MS).max(1);
        match chunks.last_mut() {
            Some(chunk) if minutes + span <= READ_SOURCE_MINUTES => {
                chunk.push((source, from));
                minutes += span;
            }
            _ => {
                chunks.push(vec![(source, from)]);
                minutes = span;
            }
        }
    }
    chunks
}

/// The rows of each source as `(start, rollup)`, or why they could not be read.
type SourceRows = BTreeMap<(Dimension, String), Result<Vec<(i64, Rollup)>, String>>;

/// Reads the minute rows of `reads`, one query each. A row that does not decode fails
/// its source; a read that fails is made again source by source while the budget
/// allows, so that one unreadable row fails only the rules that read it.
async fn read_sources<S: Executor>(
    store: &S,
    project: &str,
    reads: &[Vec<(&(Dimension, String), i64)>],
    window_end: i64,
    budget: &mut Budget,
    reserve: u32,
) -> SourceRows {
    let mut out = SourceRows::new();
    let mut queue: Vec<Vec<(&(Dimension, String), i64)>> = reads.to_vec();
    queue.reverse();
    while let Some(read) = queue.pop() {
        budget.spent += 1;
        let json: Vec<serde_json::Value> = read
            .iter()
            .map(|((dimension, value), from)| serde_json::json!([dimension.name(), value, from]))
            .collect();
        let values = vec![
            project.into(),
            serde_json::Value::from(json).to_string().into(),
            window_end.into(),
        ];
        match store
            .query::<RollupRow>(sql::MINUTE_ROWS_OF_SOURCES, values)
            .await
        {
            Ok(rows) => {
                for (source, _) in &read {
                    out.insert((*source).clone(), Ok(Vec::new()));
                }
                let by_name: BTreeMap<(&str, &str), &(Dimension, String)> = read
                    .iter()
                    .map(|(s, _)| ((s.0.name(), s.1.as_str()), *s))
                    .collect();
                for row in rows {
                    let key = (row.dimension.clone(), row.value.clone());
                    let Some(&source) = by_name.get(&(key.0.as_str(), key.1.as_str())) else {
                        continue;
                    };
                    let decoded = row.decode();
                    match (out.get_mut(source), decoded) {
                        (Some(Ok(rows)), Ok((_, key, rollup, _))) => rows.push((key.start, rollup)),
                        (Some(slot), Err(e)) => {
                            *slot = Err(format!("minute row {} {:?}: {e}", key.0, key.1));
                        }
                        _ => {}
                    }
                }
            }
            Err(_) if read.len() > 1 && budget.fits(read.len() as u32, reserve) => {
                queue.extend(read.into_iter().rev().map(|source| vec![source]));
            }
            Err(e) => {
                for (source, _) in &read {
                    out.insert((*source).clone(), Err(e.to_string()));
                }
            }
        }
    }
    out
}

/// Each source's rows merged over each window start the rules read it from: walking
/// its rows from the newest, so each row is merged once however many windows there are.
fn windows(
    entries: &[RuleEntry],
    now_ms: i64,
    mut rows: SourceRows,
) -> BTreeMap<((Dimension, String), i64), Result<Rollup, String>> {
    let mut starts: BTreeMap<(Dimension, String), Vec<i64>> = BTreeMap::new();
    for entry in entries {
        let start = entry.rule.read_from(now_ms);
        for source in entry.rule.sources() {
            starts.entry(source).or_default().push(start);
        }
    }
    let mut out = BTreeMap::new();
    for (source, mut wanted) in starts {
        wanted.sort_unstable_by(|a, b| b.cmp(a));
        wanted.dedup();
        match rows.remove(&source) {
            Some(Ok(mut source_rows)) => {
                source_rows.sort_unstable_by_key(|(start, _)| std::cmp::Reverse(*start));
                let mut merged = Rollup::default();
                let mut next = source_rows.iter().peekable();
                for start in wanted {
                    while let Some((_, row)) = next.next_if(|(at, _)| *at >= start) {
                        merged.merge(row);
                    }
                    out.insert((source.clone(), start), Ok(merged.clone()));
                }
            }
            Some(Err(e)) => {
                for start in wanted {
                    out.insert((source.clone(), start), Err(e.clone()));
                }
            }
            // Not read (the project was deferred): no window, no rule evaluated.
            None => {}
        }
    }
    out
}

/// How much one run of [`purge_minutes`] deletes: minute rows are written for every
/// project's recent events, so a shard of many busy projects has more expired each
/// hour than one D1 transaction should delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinutePurge {
    /// Rows one statement deletes at most.
    pub chunk: u32,
    /// Statements in one commit (one D1 call): a commit deletes at most
    /// `chunk × per_commit` rows, well within D1's 30 s a query.
    pub per_commit: u32,
    /// Statements the run may execute in all.
    pub statements: u32,
}

/// An hourly run's budget: [`tally_core::jobs::MINUTE_PURGE_COMMITS`] commits of 20
/// statements of 5,000 rows, a million minute rows a run; a shard job with more left
/// continues itself.
pub const HOURLY_MINUTE_PURGE: MinutePurge = MinutePurge {
    chunk: 5_000,
    per_commit: 20,
    statements: 20 * tally_core::jobs::MINUTE_PURGE_COMMITS,
};

/// What a run of [`purge_minutes`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MinutesPurged {
    pub deleted: u64,
    /// Whether expired rows may be left (a project's last statement deleted a whole
    /// chunk when the budget ran out): the next run, or a continuation, goes on.
    pub more_pending: bool,
}

/// Deletes minute rows past [`MINUTE_ROWS_KEPT_MS`] for every project, in chunks within
/// `budget`: each commit takes a chunk of up to `per_commit` projects, and a project
/// whose chunk came back whole is asked again in a later commit.
///
/// # Errors
///
/// The store's error; what was deleted stays deleted.
pub async fn purge_minutes<S: EventStore + Writer>(
    store: &S,
    now_ms: i64,
    budget: MinutePurge,
) -> Result<MinutesPurged, Error> {
    let projects = store.projects().await?;
    let before_ms = now_ms - MINUTE_ROWS_KEPT_MS;
    let mut pending: VecDeque<&str> = projects.iter().map(|p| p.slug.as_str()).collect();
    let mut purged = MinutesPurged::default();
    let mut left = budget.statements;
    while !pending.is_empty() && left > 0 {
        let take = pending.len().min(budget.per_commit.min(left) as usize);
        let asked: Vec<&str> = pending.drain(..take).collect();
        let writes: Vec<Write<'_>> = asked
            .iter()
            .map(|project| {
                Write::Alert(AlertWrite::PurgeMinutes {
                    project,
                    before_ms,
                    limit: budget.chunk,
                })
            })
            .collect();
        let deleted = store.commit(&writes).await?;
        left = left.saturating_sub(u32::try_from(take).unwrap_or(u32::MAX));
        for (project, rows) in asked.iter().zip(&deleted) {
            purged.deleted += rows;
            if *rows >= u64::from(budget.chunk) {
                pending.push_back(project);
            }
        }
    }
    purged.more_pending = !pending.is_empty();
    Ok(purged)
}

/// A webhook delivery to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivering {
    pub url: String,
    pub body: String,
    /// The `Tally-Signature` header.
    pub signature: String,
    /// The alert's (or digest run's) id, sent in `id_header` for the receiver to drop
    /// duplicates.
    pub id: String,
    /// `tally-alert-id` or `tally-digest-id`.
    pub id_header: &'static str,
    pub attempt: u32,
}

/// The header that carries an alert's id.
pub const ALERT_ID_HEADER: &str = "tally-alert-id";

/// What came of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The receiver's status, if it answered.
    pub status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// What the queue should do with an alert message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Done with: delivered, nothing to deliver, or delivered before.
    Done,
    /// The delivery failed; try again after this many seconds.
    Retry { delay_s: u32 },
    /// No such alert.
    Unknown,
}

impl Handled {
    /// After attempt number `attempt` (from 1) of a webhook delivery: done when it got
    /// through, otherwise another try after that attempt's backoff.
    pub fn after_attempt(ok: bool, attempt: u32) -> Self {
        if ok {
            Handled::Done
        } else {
            Handled::Retry {
                delay_s: tally_core::alerts::retry_delay_s(attempt),
            }
        }
    }
}

/// Handles one message of the `alerts` queue at `now_ms`: pauses the campaign a firing
/// names, then delivers the webhook once, signed with the rule's secret. Safe under
/// redelivery: a campaign already paused by this alert is left alone, and a delivered
/// alert is not sent again.
///
/// # Errors
///
/// The store's error (the message should be retried).
pub async fn handle_alert<S, F, Fut>(
    store: &S,
    alert_id: &str,
    now_ms: i64,
    send: F,
) -> Result<Handled, Error>
where
    S: AlertStore + Writer,
    F: FnOnce(Delivering) -> Fut,
    Fut: Future<Output = Sent>,
{
    let Some(alert) = store.alert(alert_id).await? else {
        return Ok(Handled::Unknown);
    };
    let payload: serde_json::Value = serde_json::from_str(&alert.payload)
        .map_err(|e| Error::Decode(format!("alert {alert_id} payload: {e}")))?;
    if let Some(campaign) = payload["campaign_paused"].as_str()
        && alert.campaign_paused.is_none()
    {
        let reason = format!(
            "alert rule {:?} fired",
            alert.rule_name.as_deref().unwrap_or(&alert.rule_id)
        );
        store
            .commit(&[Write::Alert(AlertWrite::SetCampaign {
                project: &alert.project,
                campaign,
                paused: true,
                reason: Some(&reason),
                alert_id: Some(alert_id),
                now_ms,
            })])
            .await?;
    }
    if alert.delivery != Delivery::Pending.name() {
        return Ok(Handled::Done);
    }
    let rules = store.alert_rules(Some(&alert.project)).await?;
    let webhook = rules
        .into_iter()
        .find(|r| r.rule.id == alert.rule_id)
        .and_then(|r| r.rule.webhook);
    let Some(webhook) = webhook else {
        // The rule or its webhook was removed since: nothing to deliver to.
        store
            .commit(&[Write::Alert(AlertWrite::Delivery {
                alert_id,
                delivery: Delivery::None,
            })])
            .await?;
        return Ok(Handled::Done);
    };
    let attempt = alert.attempts + 1;
    let sent = send(Delivering {
        signature: tally_core::alerts::sign(
            &webhook.secret,
            now_ms.div_euclid(1000),
            &alert.payload,
        ),
        url: webhook.url,
        body: alert.payload.clone(),
        id: alert_id.to_owned(),
        id_header: ALERT_ID_HEADER,
        attempt,
    })
    .await;
    let ok = sent.status.is_some_and(|s| (200..300).contains(&s));
    let record = Attempt {
        attempt,
        at: now_ms,
        status: sent.status,
        error: sent
            .error
            .or_else(|| (!ok).then(|| format!("HTTP {}", sent.status.unwrap_or_default()))),
        duration_ms: sent.duration_ms,
    };
    let delivery = if ok {
        Delivery::Delivered
    } else {
        Delivery::Pending
    };
    store
        .commit(&[Write::Alert(AlertWrite::Attempted {
            alert_id,
            attempt: &record,
            delivery,
        })])
        .await?;
    Ok(Handled::after_attempt(ok, attempt))
}

/// Marks an alert whose message exhausted its retries as failed.
///
/// # Errors
///
/// The store's error.
pub async fn give_up<S: Writer>(store: &S, alert_id: &str) -> Result<(), Error> {
    store
        .commit(&[Write::Alert(AlertWrite::Delivery {
            alert_id,
            delivery: Delivery::Failed,
        })])
        .await
        .map(drop)
}
