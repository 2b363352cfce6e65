//! The seeds' own read paths, kept working as aliases with their documented shapes
//! (DESIGN §6): the plugin analytics API (`plugin`), the image CDN's analytics API
//! (`cdn`) and the track API's `/metrics` and `/sessions` (`track`).
//!
//! Every alias reads the same rollups as `/v1/projects/{p}/...`: counts are exact,
//! percentiles come from merged sketches and uniques from merged HyperLogLogs. Each takes
//! a read token; paths that name no project read the token's own project.

pub mod cdn;
pub mod plugin;
pub mod track;

use tally_edge::ApiError;
use worker::{Request, Response};

use crate::edge::RequestEnv;
use crate::route::Alias;

/// Answers a seed's path.
///
/// # Errors
///
/// The endpoint's error.
pub async fn get(req: &Request, env: &RequestEnv, alias: Alias<'_>) -> Result<Response, ApiError> {
    match alias {
        Alias::PluginOverview(slug) => plugin::overview(req, env, slug).await,
        Alias::PluginTimeseries(slug) => plugin::timeseries(req, env, slug).await,
        Alias::PluginEndpoints(slug) => plugin::endpoints(req, env, slug).await,
        Alias::CdnOverview => cdn::overview(req, env).await,
        Alias::CdnImage(id) => cdn::image(req, env, id).await,
        Alias::TrackMetrics => track::metrics(req, env).await,
        Alias::TrackSessions => track::sessions(req, env).await,
    }
}
