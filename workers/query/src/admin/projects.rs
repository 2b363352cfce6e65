//! Projects and their keys: `/v1/admin/projects[/{p}[/keys[/{id}]]]` — list, create,
//! show and change projects; create, list and revoke their write keys and read tokens.

use serde_json::{Value, json};
use tally_core::project::{KEY_BYTES, Project, ProjectInput, new_key, parse_key_request};
use tally_edge::ApiError;
use tally_storage::AdminStore;
use tally_storage::d1::D1Store;
use worker::Response;

use crate::edge::error::internal;
use crate::edge::respond::json_value;

/// `GET /v1/admin/projects`.
pub async fn list(store: &D1Store) -> Result<Response, ApiError> {
    let projects = store.all_projects().await.map_err(internal)?;
    let list: Vec<Value> = projects.iter().map(|p| p.to_json()).collect();
    json_value(200, &json!({ "projects": list }), None)
}

/// `POST /v1/admin/projects`.
pub async fn create(store: &D1Store, body: &[u8], now_ms: i64) -> Result<Response, ApiError> {
    let project = ProjectInput::parse(body)?.create(now_ms)?;
    domain_free(store, &project).await?;
    if !store.create_project(&project).await.map_err(internal)? {
        return Err(ApiError::new(
            409,
            "project_exists",
            format!("project {:?} exists; change it with PATCH", project.slug),
        ));
    }
    json_value(201, &json!({ "project": project.to_json() }), None)
}

/// `GET /v1/admin/projects/{p}`.
pub async fn get(store: &D1Store, slug: &str) -> Result<Response, ApiError> {
    let project = existing(store, slug).await?;
    json_value(200, &json!({ "project": project.to_json() }), None)
}

/// `PATCH /v1/admin/projects/{p}`.
pub async fn update(store: &D1Store, slug: &str, body: &[u8]) -> Result<Response, ApiError> {
    let project = ProjectInput::parse(body)?.apply(existing(store, slug).await?)?;
    domain_free(store, &project).await?;
    store.update_project(&project).await.map_err(internal)?;
    json_value(200, &json!({ "project": project.to_json() }), None)
}

/// `POST /v1/admin/projects/{p}/keys`: the answer holds the key's secret, once.
pub async fn create_key(
    store: &D1Store,
    slug: &str,
    body: &[u8],
    now_ms: i64,
) -> Result<Response, ApiError> {
    existing(store, slug).await?;
    let (kind, name) = parse_key_request(body)?;
    let mut random = [0u8; KEY_BYTES];
    getrandom::fill(&mut random).map_err(internal)?;
    let key = new_key(kind, &random);
    let stored = store
        .create_key(slug, kind, &key, name.as_deref(), now_ms)
        .await
        .map_err(internal)?
        .ok_or_else(|| unknown_project(slug))?;
    let mut body = stored.to_json();
    body["secret"] = Value::String(key.secret);
    json_value(201, &json!({ "key": body }), None)
}

/// `GET /v1/admin/projects/{p}/keys`.
pub async fn keys(store: &D1Store, slug: &str) -> Result<Response, ApiError> {
    existing(store, slug).await?;
    let keys = store.keys(slug).await.map_err(internal)?;
    let list: Vec<Value> = keys.iter().map(|k| k.to_json()).collect();
    json_value(200, &json!({ "keys": list }), None)
}

/// `DELETE /v1/admin/projects/{p}/keys/{id}`.
pub async fn revoke_key(
    store: &D1Store,
    slug: &str,
    id: &str,
    now_ms: i64,
) -> Result<Response, ApiError> {
    existing(store, slug).await?;
    let no_key = || ApiError::not_found(format!("project {slug:?} has no key with id {id:?}"));
    let id: i64 = id.parse().map_err(|_| no_key())?;
    let key = store
        .revoke_key(slug, id, now_ms)
        .await
        .map_err(internal)?
        .ok_or_else(no_key)?;
    json_value(200, &json!({ "key": key.to_json() }), None)
}

/// Checks that no other project takes keyless Plausible events for `project`'s domain:
/// the domain of an event chooses the project, so it must name one. (The unique index on
/// the column refuses a race between two claims, as a 500.)
///
/// # Errors
///
/// 409 `plausible_domain_taken` naming the project that has it.
async fn domain_free(store: &D1Store, project: &Project) -> Result<(), ApiError> {
    let Some(domain) = &project.plausible_domain else {
        return Ok(());
    };
    match store
        .project_by_plausible_domain(domain)
        .await
        .map_err(internal)?
    {
        Some(holder) if holder.slug != project.slug => Err(ApiError::new(
            409,
            "plausible_domain_taken",
            format!(
                "project {:?} takes keyless events for {domain:?}; clear it there first \
                 (\"plausible_domain\": null)",
                holder.slug
            ),
        )),
        _ => Ok(()),
    }
}

/// The project `slug`.
///
/// # Errors
///
/// 404 `unknown_project` when there is none.
pub async fn existing(store: &D1Store, slug: &str) -> Result<Project, ApiError> {
    store
        .project(slug)
        .await
        .map_err(internal)?
        .ok_or_else(|| unknown_project(slug))
}

fn unknown_project(slug: &str) -> ApiError {
    ApiError::new(
        404,
        "unknown_project",
        format!("there is no project {slug:?}; create it with POST /v1/admin/projects"),
    )
}
