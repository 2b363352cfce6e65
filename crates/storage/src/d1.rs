//! The stores over Cloudflare D1, for the workers.

use tally_core::{Event, sql};
use wasm_bindgen::JsValue;
use worker::D1Database;

use crate::{Counts, Error, EventReader, EventSink, JobLog, JobRun, event_chunks};

/// Tally's D1 database.
pub struct D1Store {
    db: D1Database,
}

impl std::fmt::Debug for D1Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("D1Store").finish_non_exhaustive()
    }
}

fn db(e: worker::Error) -> Error {
    Error::Database(e.to_string())
}

impl D1Store {
    /// Wraps a D1 binding.
    pub fn new(db: D1Database) -> Self {
        Self { db }
    }
}

impl EventSink for D1Store {
    async fn insert_events(&self, events: &[Event]) -> Result<u64, Error> {
        let statements = event_chunks(events)
            .into_iter()
            .map(|chunk| {
                self.db
                    .prepare(sql::INSERT_EVENTS)
                    .bind(&[JsValue::from_str(&chunk)])
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(db)?;
        if statements.is_empty() {
            return Ok(0);
        }
        // One `batch` is one transaction: all chunks land, or none.
        let results = self.db.batch(statements).await.map_err(db)?;
        let mut inserted = 0u64;
        for result in results {
            if let Some(error) = result.error() {
                return Err(Error::Database(error));
            }
            inserted += result
                .meta()
                .map_err(db)?
                .and_then(|m| m.changes)
                .unwrap_or(0) as u64;
        }
        Ok(inserted)
    }
}

impl EventReader for D1Store {
    async fn count_events(&self, project: &str, from_ms: i64, to_ms: i64) -> Result<Counts, Error> {
        // Millisecond times exceed i32, so they are bound as f64 (exact below 2^53).
        let statement = self
            .db
            .prepare(sql::COUNT_EVENTS)
            .bind(&[
                JsValue::from_str(project),
                JsValue::from_f64(from_ms as f64),
                JsValue::from_f64(to_ms as f64),
            ])
            .map_err(db)?;
        let counts: Option<Counts> = statement.first(None).await.map_err(db)?;
        Ok(counts.unwrap_or_default())
    }
}

impl JobLog for D1Store {
    async fn record_job_run(&self, run: &JobRun) -> Result<(), Error> {
        let detail = run
            .detail
            .as_deref()
            .map_or(JsValue::NULL, JsValue::from_str);
        self.db
            .prepare(sql::INSERT_JOB_RUN)
            .bind(&[
                JsValue::from_str(&run.job),
                JsValue::from_str(&run.cron),
                JsValue::from_f64(run.scheduled_at as f64),
                JsValue::from_f64(run.started_at as f64),
                JsValue::from_f64(run.finished_at as f64),
                JsValue::from_str(&run.outcome),
                detail,
            ])
            .map_err(db)?
            .run()
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn latest_job_runs(&self) -> Result<Vec<JobRun>, Error> {
        let result = self
            .db
            .prepare(sql::LATEST_JOB_RUNS)
            .all()
            .await
            .map_err(db)?;
        result.results().map_err(|e| Error::Decode(e.to_string()))
    }
}
