//! The admin API (`/v1/admin/...`, guarded by the `ADMIN_TOKEN` secret): projects, their
//! settings and keys ([`projects`]), share links of their dashboards ([`share`]: made,
//! listed and revoked one by one), their alert rules ([`alerts`]), their daily or weekly
//! digest ([`digest`]), their campaigns'
//! states set by hand ([`campaigns`]), requests to erase one person's data
//! ([`erasures`]) and moves of a project to another data shard ([`moves`]).
//!
//! A key's secret appears once, in the answer that creates it; only its SHA-256 is
//! stored. Ingest caches key lookups for at most 30 s, so a revocation or a settings
//! change takes effect within that.

pub mod alerts;
pub mod campaigns;
pub mod digest;
pub mod erasures;
pub mod moves;
pub mod projects;
pub mod share;

use tally_edge::ApiError;
use worker::{Method, Request, Response};

use crate::access::require_admin;
use crate::edge::error::internal;
use crate::edge::{RequestEnv, now_ms, store};
use crate::route::Admin;

/// Answers an admin request: the admin token first, then the body (of a `POST`, `PATCH`
/// or `PUT`), then the endpoint.
///
/// # Errors
///
/// The endpoint's error; 401 or 503 from [`require_admin`].
pub async fn handle(
    mut req: Request,
    env: &RequestEnv,
    endpoint: Admin<'_>,
) -> Result<Response, ApiError> {
    require_admin(&req, env)?;
    let url = req.url().map_err(internal)?;
    let store = store(env)?;
    let now = now_ms();
    let body = match req.method() {
        Method::Post | Method::Patch | Method::Put => req.bytes().await.map_err(|e| {
            ApiError::bad_request("unreadable_body", format!("could not read the body: {e}"))
        })?,
        _ => Vec::new(),
    };
    let store = &store;
    match endpoint {
        Admin::ListProjects => projects::list(store).await,
        Admin::CreateProject => projects::create(store, &body, now).await,
        Admin::GetProject(slug) => projects::get(store, slug).await,
        Admin::UpdateProject(slug) => projects::update(store, slug, &body).await,
        Admin::ListKeys(slug) => projects::keys(store, slug).await,
        Admin::CreateKey(slug) => projects::create_key(store, slug, &body, now).await,
        Admin::RevokeKey(slug, id) => projects::revoke_key(store, slug, id, now).await,
        Admin::Share(slug) => {
            projects::existing(store, slug).await?;
            share::mint(store, &url, env, slug, &body, now).await
        }
        Admin::ListShares(slug) => {
            projects::existing(store, slug).await?;
            share::list(store, slug, now).await
        }
        Admin::RevokeShare(slug, id) => {
            projects::existing(store, slug).await?;
            share::revoke(store, slug, id, now).await
        }
        Admin::ListRules(slug) => alerts::list_rules(store, slug).await,
        Admin::CreateRule(slug) => alerts::create_rule(store, slug, &body, now).await,
        Admin::GetRule(slug, id) => alerts::get_rule(store, slug, id).await,
        Admin::UpdateRule(slug, id) => alerts::update_rule(store, slug, id, &body, now).await,
        Admin::DeleteRule(slug, id) => alerts::delete_rule(store, slug, id).await,
        Admin::GetDigest(slug) => digest::get(store, slug).await,
        Admin::PutDigest(slug) => digest::put(store, slug, &body, now).await,
        Admin::DeleteDigest(slug) => digest::delete(store, slug).await,
        Admin::SetCampaign(slug, campaign) => {
            campaigns::set(store, slug, campaign, &body, now).await
        }
        Admin::ForgetUser(slug, user) => erasures::forget(store, env, slug, user, now).await,
        Admin::GetErasure(slug, id) => erasures::status(store, slug, id).await,
        Admin::StartMove(slug) => moves::start(store, slug, &body, now).await,
        Admin::GetMove(slug) => moves::get(store, slug).await,
    }
}
