//! Conversions between stored rows and core types, shared by both implementations.

use serde::Deserialize;
use serde_json::{Value, json};
use tally_core::Event;
use tally_core::hash::hex;
use tally_core::hll::Hll;
use tally_core::project::{ApiKey, KeyKind, Project, RateLimit};
use tally_core::rollup::{Dimension, Key, MAX_STORED_INTEGER, Period, Rollup};
use tally_core::sketch::Sketch;

use crate::exec::{Bound, int};
use crate::{Dirty, Error};

/// A `rollups` row as stored.
#[derive(Debug, Deserialize)]
pub(crate) struct RollupRow {
    pub project: String,
    pub period: String,
    pub start: i64,
    pub dimension: String,
    pub value: String,
    pub count: u64,
    pub errors: u64,
    pub bytes: u64,
    /// Thousandths of the value's currency (revenue dimensions only).
    pub revenue: u64,
    /// Hex, as `hex(durations)` returns it.
    pub durations: String,
    pub users: String,
    pub instances: String,
    pub version: i64,
}

/// Decodes hex text (either case) into bytes.
pub(crate) fn unhex(text: &str) -> Result<Vec<u8>, Error> {
    tally_core::hash::unhex(text).ok_or_else(|| Error::Decode("invalid hex".into()))
}

impl RollupRow {
    /// The row's key, period, measures and version.
    pub fn decode(self) -> Result<(Period, Key, Rollup, i64), Error> {
        let bad = |what: &str| Error::Decode(format!("rollup row with {what}"));
        let period = Period::parse(&self.period).ok_or_else(|| bad("an unknown period"))?;
        let dimension =
            Dimension::parse(&self.dimension).ok_or_else(|| bad("an unknown dimension"))?;
        let rollup = Rollup {
            count: self.count,
            errors: self.errors,
            bytes: self.bytes,
            revenue: self.revenue,
            // Empty when the read left the sketch out (`ROLLUPS_OF_DIMENSIONS`):
            // no stored sketch encodes to nothing.
            durations: if self.durations.is_empty() {
                Sketch::default()
            } else {
                Sketch::decode(&unhex(&self.durations)?)
                    .map_err(|e| Error::Decode(e.to_string()))?
            },
            users: Hll::decode(&unhex(&self.users)?).map_err(|e| Error::Decode(e.to_string()))?,
            instances: Hll::decode(&unhex(&self.instances)?)
                .map_err(|e| Error::Decode(e.to_string()))?,
        };
        let key = Key {
            project: self.project,
            start: self.start,
            dimension,
            value: self.value,
        };
        Ok((period, key, rollup, self.version))
    }
}

/// The bound values of a rollup write, in statement order (`?1` to `?13`): the
/// summaries' encodings as hex, for `unhex(?)`. Counts fit i64 (and f64 exactly) long
/// before they could overflow in practice.
pub(crate) fn rollup_values(period: Period, key: &Key, row: &Rollup) -> Vec<Bound> {
    vec![
        key.project.as_str().into(),
        period.name().into(),
        key.start.into(),
        key.dimension.name().into(),
        key.value.as_str().into(),
        int(row.count),
        int(row.errors),
        int(row.bytes.min(MAX_STORED_INTEGER)),
        // The exact sum lives in the sketch; the column keeps it while it fits an f64
        // exactly, so D1 can always decode the row.
        int(row
            .durations
            .sum_micros()
            .min(u128::from(MAX_STORED_INTEGER))),
        hex(&row.durations.encode()).into(),
        hex(&row.users.encode()).into(),
        hex(&row.instances.encode()).into(),
        int(row.revenue.min(MAX_STORED_INTEGER)),
    ]
}

/// `[[project, period, start, dimension, value], ...]` for `ROLLUPS_BY_KEY`.
pub(crate) fn keys_json(period: Period, keys: &[&Key]) -> String {
    let list: Vec<Value> = keys
        .iter()
        .map(|k| {
            json!([
                k.project,
                period.name(),
                k.start,
                k.dimension.name(),
                k.value
            ])
        })
        .collect();
    Value::Array(list).to_string()
}

/// `[[project, event_id], ...]` for `EXISTING_EVENTS`.
pub(crate) fn ids_json(ids: &[(&str, &str)]) -> String {
    let list: Vec<Value> = ids.iter().map(|(p, id)| json!([p, id])).collect();
    Value::Array(list).to_string()
}

/// `[[dimension, value], ...]` for `DELETE_STALE_ROLLUPS`.
pub(crate) fn keep_json(keep: &[(Dimension, &str)]) -> String {
    let list: Vec<Value> = keep.iter().map(|(d, v)| json!([d.name(), v])).collect();
    Value::Array(list).to_string()
}

/// A `raw_events` row as `EVENTS_BETWEEN` returns it.
#[derive(Debug, Deserialize)]
pub(crate) struct RawRow {
    pub project: String,
    pub event_id: String,
    pub timestamp: i64,
    pub name: String,
    pub method: Option<String>,
    pub route: Option<String>,
    pub status: Option<u16>,
    pub duration_us: Option<i64>,
    pub error_class: Option<String>,
    pub error_message: Option<String>,
    pub instance: Option<String>,
    pub user: Option<String>,
    pub session: Option<String>,
    pub version: Option<String>,
    pub colo: Option<String>,
    pub country: Option<String>,
    pub source: Option<String>,
    pub medium: Option<String>,
    pub campaign: Option<String>,
    pub term: Option<String>,
    pub content: Option<String>,
    pub item: Option<String>,
    pub variant: Option<String>,
    pub bytes: Option<u64>,
    pub metadata: Option<String>,
}

impl RawRow {
    pub fn into_event(self) -> Result<Event, Error> {
        let metadata = match self.metadata {
            None => None,
            Some(text) => match serde_json::from_str(&text) {
                Ok(Value::Object(map)) => Some(map),
                _ => return Err(Error::Decode("raw event metadata is not an object".into())),
            },
        };
        // `hex()` of an absent BLOB is the empty string.
        let id = |v: Option<String>| v.filter(|s| !s.is_empty());
        Ok(Event {
            event_id: self.event_id,
            project: self.project,
            name: self.name,
            timestamp: self.timestamp,
            // Raw rows do not keep the arrival time; the event time stands in for it.
            received_at: self.timestamp,
            method: self.method,
            route: self.route,
            status: self.status,
            duration_ms: self.duration_us.map(|us| us as f64 / 1000.0),
            error_class: self.error_class,
            error_message: self.error_message,
            instance: id(self.instance),
            user: id(self.user),
            session: id(self.session),
            version: self.version,
            colo: self.colo,
            country: self.country,
            source: self.source,
            medium: self.medium,
            campaign: self.campaign,
            term: self.term,
            content: self.content,
            item: self.item,
            variant: self.variant,
            bytes: self.bytes,
            metadata,
        })
    }
}

/// A `dirty_periods` row.
#[derive(Debug, Deserialize)]
pub(crate) struct DirtyRow {
    pub project: String,
    pub period: String,
    pub start: i64,
    pub generation: i64,
}

impl DirtyRow {
    pub fn decode(self) -> Result<Dirty, Error> {
        Ok(Dirty {
            period: Period::parse(&self.period)
                .ok_or_else(|| Error::Decode(format!("dirty period {:?}", self.period)))?,
            project: self.project,
            start: self.start,
            generation: self.generation,
        })
    }
}

/// A `projects` row as the admin statements read it.
#[derive(Debug, Deserialize)]
pub(crate) struct ProjectRow {
    pub slug: String,
    pub retention_days: u32,
    /// A JSON array of origin patterns.
    pub allowed_origins: String,
    pub rate_limit: String,
    /// 0 or 1.
    pub public_dashboard: i64,
    /// 0 or 1.
    pub public_badges: i64,
    pub plausible_domain: Option<String>,
    pub created_at: i64,
}

impl ProjectRow {
    pub fn decode(self) -> Result<Project, Error> {
        let allowed_origins = serde_json::from_str(&self.allowed_origins)
            .map_err(|e| Error::Decode(format!("allowed_origins of {}: {e}", self.slug)))?;
        let rate_limit = RateLimit::parse(&self.rate_limit).ok_or_else(|| {
            Error::Decode(format!("rate_limit {:?} of {}", self.rate_limit, self.slug))
        })?;
        Ok(Project {
            slug: self.slug,
            retention_days: self.retention_days,
            allowed_origins,
            rate_limit,
            public_dashboard: self.public_dashboard != 0,
            public_badges: self.public_badges != 0,
            plausible_domain: self.plausible_domain,
            created_at: self.created_at,
        })
    }
}

/// The JSON text stored for a project's allowed origins.
pub(crate) fn origins_json(project: &Project) -> String {
    serde_json::to_string(&project.allowed_origins).expect("strings serialize")
}

/// An `api_keys` row joined with its project's slug.
#[derive(Debug, Deserialize)]
pub(crate) struct KeyRow {
    pub id: i64,
    pub project: String,
    pub kind: String,
    pub name: Option<String>,
    pub prefix: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

impl KeyRow {
    pub fn decode(self) -> Result<ApiKey, Error> {
        let kind = KeyKind::parse(&self.kind)
            .ok_or_else(|| Error::Decode(format!("key kind {:?}", self.kind)))?;
        Ok(ApiKey {
            id: self.id,
            project: self.project,
            kind,
            name: self.name,
            prefix: self.prefix,
            created_at: self.created_at,
            revoked_at: self.revoked_at,
        })
    }
}

/// A key looked up by hash, with its project's settings.
#[derive(Debug, Deserialize)]
pub(crate) struct GrantRow {
    pub id: i64,
    pub project: String,
    pub kind: String,
    pub name: Option<String>,
    pub prefix: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub retention_days: u32,
    pub allowed_origins: String,
    pub rate_limit: String,
    pub public_dashboard: i64,
    pub public_badges: i64,
    pub plausible_domain: Option<String>,
    pub project_created_at: i64,
}

impl GrantRow {
    pub fn decode(self) -> Result<(ApiKey, Project), Error> {
        let project = ProjectRow {
            slug: self.project.clone(),
            retention_days: self.retention_days,
            allowed_origins: self.allowed_origins,
            rate_limit: self.rate_limit,
            public_dashboard: self.public_dashboard,
            public_badges: self.public_badges,
            plausible_domain: self.plausible_domain,
            created_at: self.project_created_at,
        }
        .decode()?;
        let key = KeyRow {
            id: self.id,
            project: self.project,
            kind: self.kind,
            name: self.name,
            prefix: self.prefix,
            created_at: self.created_at,
            revoked_at: self.revoked_at,
        }
        .decode()?;
        Ok((key, project))
    }
}
