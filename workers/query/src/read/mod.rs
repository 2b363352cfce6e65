//! The read API under `/v1/projects/{p}/`: `overview`, `timeseries`,
//! `breakdown/{dimension}`, `errors`, `installs`, `metrics` (from rollups, through
//! `tally_storage::read`), `sessions`, `funnels`, `export` (from raw events, so within
//! retention), the read halves of alerting: `alerts`, `alerts/rules`, `campaigns`
//! and `campaigns/{c}`, `realtime` (the last thirty minutes, from minute rows) and
//! `revenue` (per currency, by name, source or campaign, from revenue rollups). One
//! module per endpoint; [`scope`] is what they share,
//! [`measures`] turns a merged rollup into the measures answers carry.

pub mod alerts;
pub mod breakdown;
pub mod campaigns;
pub mod errors;
pub mod export;
pub mod filtered;
pub mod funnels;
pub mod installs;
pub mod measures;
pub mod metrics;
pub mod overview;
pub mod realtime;
pub mod revenue;
pub mod scope;
pub mod sessions;
pub mod timeseries;

use tally_edge::ApiError;
use worker::{Request, Response};

use crate::access::require_read;
use crate::edge::RequestEnv;
use crate::route::Read;

/// Answers a read of `project`: a read token of the project (or the admin token) first,
/// before any cache; then the slug; then the endpoint.
///
/// # Errors
///
/// 401 or 403 from [`require_read`], 400 for a bad slug, or the endpoint's error.
pub async fn get(
    req: &Request,
    env: &RequestEnv,
    project: &str,
    endpoint: Read<'_>,
) -> Result<Response, ApiError> {
    require_read(req, env, project).await?;
    scope::check_project(project)?;
    match endpoint {
        Read::Overview => overview::get(req, env, project).await,
        Read::Timeseries => timeseries::get(req, env, project).await,
        Read::Breakdown(dimension) => breakdown::get(req, env, project, dimension).await,
        Read::Errors => errors::get(req, env, project).await,
        Read::Installs => installs::get(req, env, project).await,
        Read::Metrics => metrics::get(req, env, project).await,
        Read::Sessions => sessions::get(req, env, project).await,
        Read::Funnels => funnels::get(req, env, project).await,
        Read::Export => export::get(req, env, project).await,
        Read::Alerts => alerts::history(req, env, project).await,
        Read::AlertRules => alerts::rules(req, env, project).await,
        Read::Campaigns => campaigns::list(req, env, project).await,
        Read::Campaign(campaign) => campaigns::get(req, env, project, campaign).await,
        Read::Realtime => realtime::get(req, env, project).await,
        Read::Revenue => revenue::get(req, env, project).await,
    }
}
