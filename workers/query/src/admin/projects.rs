//! Projects and their keys: `/v1/admin/projects[/{p}[/keys[/{id}]]]` — list, create,
//! show and change projects; create, list and revoke their write keys and read tokens.

use serde_json::{Value, json};
use tally_core::project::{KEY_BYTES, Project, ProjectInput, new_key, parse_key_request};
use tally_edge::ApiError;
use tally_storage::shard;
use tally_storage::{AdminStore, Write, Writer};

use crate::edge::Store;
use worker::Response;

use crate::edge::error::internal;
use crate::edge::respond::json_value;

/// `GET /v1/admin/projects`.
pub async fn list(store: &Store) -> Result<Response, ApiError> {
    let projects = store.all_projects().await.map_err(internal)?;
    let slugs: Vec<&str> = projects.iter().map(|p| p.slug.as_str()).collect();
    let shards = store
        .control
        .project_shards(&slugs)
        .await
        .map_err(internal)?;
    let list: Vec<Value> = projects
        .iter()
        .map(|p| placed(p, shards.get(&p.slug).map_or(0, |placed| placed.shard)))
        .collect();
    json_value(200, &json!({ "projects": list }), None)
}

/// A project's JSON with its shard.
fn placed(project: &Project, shard: u32) -> Value {
    let mut json = project.to_json();
    json["shard"] = json!(shard);
    json
}

/// The shard of an existing project.
async fn shard_of(store: &Store, slug: &str) -> Result<u32, ApiError> {
    let shards = store
        .control
        .project_shards(&[slug])
        .await
        .map_err(internal)?;
    Ok(shards.get(slug).map_or(0, |placed| placed.shard))
}

/// Where a new project goes: the shard asked for, which must be bound, or the one
/// storing the fewest bytes (`shard::emptiest`: then the fewest projects, then the
/// lowest number).
///
/// # Errors
///
/// 400 `unknown_shard` for a shard this worker does not bind.
async fn placement(store: &Store, asked: Option<u32>) -> Result<u32, ApiError> {
    let bound = u32::try_from(store.shards.len()).unwrap_or(u32::MAX);
    if let Some(shard) = asked {
        return if shard < bound {
            Ok(shard)
        } else {
            Err(ApiError::new(
                400,
                "unknown_shard",
                format!(
                    "shard {shard} is not bound: this deployment has shards 0 to {}",
                    bound - 1
                ),
            ))
        };
    }
    let loads = shard::loads(&store.control, &store.shards)
        .await
        .map_err(internal)?;
    Ok(shard::emptiest(&loads))
}

/// `POST /v1/admin/projects`: the project is placed on a shard and recorded in the
/// control database, then named in the shard's directory of projects.
pub async fn create(store: &Store, body: &[u8], now_ms: i64) -> Result<Response, ApiError> {
    let input = ProjectInput::parse(body)?;
    let asked = input.shard;
    let project = input.create(now_ms)?;
    domain_free(store, &project).await?;
    let shard = placement(store, asked).await?;
    if !store
        .create_project_on(&project, shard)
        .await
        .map_err(internal)?
    {
        return Err(ApiError::new(
            409,
            "project_exists",
            format!("project {:?} exists; change it with PATCH", project.slug),
        ));
    }
    store.placements.forget(&project.slug);
    // The shard's row gives the project its id there, as its first event's commit would
    // (shard 0 is the control database, where the row just made is that row). Erasure
    // requests join it before any event has come; the project exists without it, so a
    // failure here is logged, not answered: its first event records it.
    let ensured = match store.shards.get(shard as usize) {
        Some(on_shard) => on_shard
            .commit(&[Write::EnsureProject {
                slug: &project.slug,
                now_ms,
            }])
            .await
            .map(drop)
            .map_err(|e| e.to_string()),
        None => Err(format!("shard {shard} is not bound")),
    };
    if let Err(e) = ensured {
        worker::console_error!(
            "project {} is created, but shard {shard} does not name it yet: {e}",
            project.slug
        );
    }
    json_value(201, &json!({ "project": placed(&project, shard) }), None)
}

/// `GET /v1/admin/projects/{p}`.
pub async fn get(store: &Store, slug: &str) -> Result<Response, ApiError> {
    let project = existing(store, slug).await?;
    let shard = shard_of(store, slug).await?;
    json_value(200, &json!({ "project": placed(&project, shard) }), None)
}

/// `PATCH /v1/admin/projects/{p}`. The shard is not a setting: one equal to the
/// project's is accepted, another refused (moving a project is its own operation).
pub async fn update(store: &Store, slug: &str, body: &[u8]) -> Result<Response, ApiError> {
    let input = ProjectInput::parse(body)?;
    let asked = input.shard;
    let project = input.apply(existing(store, slug).await?)?;
    let shard = shard_of(store, slug).await?;
    if asked.is_some_and(|asked| asked != shard) {
        return Err(ApiError::new(
            409,
            "shard_fixed",
            format!(
                "project {slug:?} lives on shard {shard}; a project's shard is not a setting: \
                 move it with POST /v1/admin/projects/{slug}/move {{\"to\": shard}}"
            ),
        ));
    }
    domain_free(store, &project).await?;
    store.update_project(&project).await.map_err(internal)?;
    json_value(200, &json!({ "project": placed(&project, shard) }), None)
}

/// `POST /v1/admin/projects/{p}/keys`: the answer holds the key's secret, once.
pub async fn create_key(
    store: &Store,
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
pub async fn keys(store: &Store, slug: &str) -> Result<Response, ApiError> {
    existing(store, slug).await?;
    let keys = store.keys(slug).await.map_err(internal)?;
    let list: Vec<Value> = keys.iter().map(|k| k.to_json()).collect();
    json_value(200, &json!({ "keys": list }), None)
}

/// `DELETE /v1/admin/projects/{p}/keys/{id}`.
pub async fn revoke_key(
    store: &Store,
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
async fn domain_free(store: &Store, project: &Project) -> Result<(), ApiError> {
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
pub async fn existing(store: &Store, slug: &str) -> Result<Project, ApiError> {
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
