//! `POST /v1/admin/projects/{p}/move` starts moving a project to another data shard
//! (issue 16, phase 2); `GET` of the same path answers its latest move, phase and
//! progress. The aggregator's cron does the work (`tally_storage::moves`); this only
//! records the move and turns double writes on.

use serde::Deserialize;
use serde_json::{Value, json};
use tally_edge::ApiError;
use tally_storage::moves::{self as store_moves, Move, Started};
use worker::Response;

use super::projects::existing;
use crate::edge::Store;
use crate::edge::error::internal;
use crate::edge::respond::json_value;

/// Reads `{"to": K}`.
///
/// # Errors
///
/// 400 `invalid_move` saying what to send.
pub fn parse(body: &[u8]) -> Result<u32, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        to: u32,
    }
    let body: Body = tally_core::json::from_object(body).map_err(|e| {
        ApiError::bad_request(
            "invalid_move",
            format!("send {{\"to\": shard}}, the number of the shard to move to: {e}"),
        )
    })?;
    Ok(body.to)
}

/// A move as the API shows it: as stored (`tally_storage::moves::Move`).
pub fn to_json(m: &Move) -> Value {
    json!(m)
}

/// `POST /v1/admin/projects/{p}/move`: 202 with the move started.
///
/// # Errors
///
/// 400 `invalid_move` or `unknown_shard`, 404 `unknown_project`, 409 `already_there`
/// or `move_running` (with the running move).
pub async fn start(
    store: &Store,
    slug: &str,
    body: &[u8],
    now_ms: i64,
) -> Result<Response, ApiError> {
    let to = parse(body)?;
    existing(store, slug).await?;
    let bound = u32::try_from(store.shards.len()).unwrap_or(u32::MAX);
    let started = store_moves::start(&store.control, bound, slug, to, now_ms)
        .await
        .map_err(internal)?;
    store.placements.forget(slug);
    match started {
        Started::Started(m) => json_value(202, &json!({ "move": to_json(&m) }), None),
        Started::UnknownProject => Err(ApiError::new(
            404,
            "unknown_project",
            format!("there is no project {slug:?}"),
        )),
        Started::UnknownShard { bound } => Err(ApiError::new(
            400,
            "unknown_shard",
            format!(
                "shard {to} is not bound: this deployment has shards 0 to {}",
                bound.saturating_sub(1)
            ),
        )),
        Started::AlreadyThere => Err(ApiError::new(
            409,
            "already_there",
            format!("project {slug:?} lives on shard {to} already"),
        )),
        Started::Running(m) => Err(ApiError::new(
            409,
            "move_running",
            format!(
                "project {slug:?} is moving from shard {} to shard {} ({}); wait until it is \
                 done or failed (GET this path)",
                m.from_shard,
                m.to_shard,
                m.phase.name()
            ),
        )
        .with("move", to_json(&m))),
    }
}

/// `GET /v1/admin/projects/{p}/move`: the project's latest move.
///
/// # Errors
///
/// 404 `unknown_project`, or `no_move` when the project never moved.
pub async fn get(store: &Store, slug: &str) -> Result<Response, ApiError> {
    existing(store, slug).await?;
    match store_moves::latest(&store.control, slug)
        .await
        .map_err(internal)?
    {
        Some(m) => json_value(200, &json!({ "move": to_json(&m) }), None),
        None => Err(ApiError::new(
            404,
            "no_move",
            format!("project {slug:?} has never moved; start with POST to this path"),
        )),
    }
}
