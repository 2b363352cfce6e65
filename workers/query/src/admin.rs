//! The admin API (`/v1/admin/...`, guarded by the `ADMIN_TOKEN` secret): create and
//! configure projects, create, list and revoke their write keys and read tokens; their
//! alert rules ([`crate::alerts`]) and campaign states ([`crate::campaigns`]).
//!
//! A key's secret appears once, in the answer that creates it; only its SHA-256 is
//! stored. Ingest caches key lookups for at most 30 s, so a revocation or a settings
//! change takes effect within that.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tally_core::ApiError;
use tally_core::project::{KEY_BYTES, ProjectInput, new_key, parse_key_request};
use tally_storage::AdminStore;
use tally_storage::d1::D1Store;
use worker::{Date, Method, Request, Response};

use crate::RequestEnv;

use crate::auth::bearer;
use crate::error::internal;
use crate::{ADMIN_TOKEN, store};
use crate::{alerts, campaigns};

/// Routes `/v1/admin/...`; `rest` is the path after `admin`.
pub async fn route(
    mut req: Request,
    env: &RequestEnv,
    rest: &[&str],
) -> Result<Response, ApiError> {
    require_admin(&req, env)?;
    let url = req.url().map_err(internal)?;
    let store = store(env)?;
    let now = Date::now().as_millis() as i64;
    let method = req.method();
    let body = match method {
        Method::Post | Method::Patch | Method::Put => req.bytes().await.map_err(|e| {
            ApiError::bad_request("unreadable_body", format!("could not read the body: {e}"))
        })?,
        _ => Vec::new(),
    };
    match (method, rest) {
        (Method::Get, ["projects"]) => {
            let projects = store.all_projects().await.map_err(internal)?;
            let list: Vec<Value> = projects.iter().map(|p| p.to_json()).collect();
            json_response(200, &json!({ "projects": list }))
        }
        (Method::Post, ["projects"]) => {
            let project = ProjectInput::parse(&body)?.create(now)?;
            if !store.create_project(&project).await.map_err(internal)? {
                return Err(ApiError::new(
                    409,
                    "project_exists",
                    format!("project {:?} exists; change it with PATCH", project.slug),
                ));
            }
            json_response(201, &json!({ "project": project.to_json() }))
        }
        (Method::Get, ["projects", slug]) => {
            let project = existing(&store, slug).await?;
            json_response(200, &json!({ "project": project.to_json() }))
        }
        (Method::Patch, ["projects", slug]) => {
            let project = ProjectInput::parse(&body)?.apply(existing(&store, slug).await?)?;
            store.update_project(&project).await.map_err(internal)?;
            json_response(200, &json!({ "project": project.to_json() }))
        }
        (Method::Post, ["projects", slug, "keys"]) => {
            existing(&store, slug).await?;
            let (kind, name) = parse_key_request(&body)?;
            let mut random = [0u8; KEY_BYTES];
            getrandom::fill(&mut random).map_err(internal)?;
            let key = new_key(kind, &random);
            let stored = store
                .create_key(slug, kind, &key, name.as_deref(), now)
                .await
                .map_err(internal)?
                .ok_or_else(|| unknown_project(slug))?;
            let mut body = stored.to_json();
            body["secret"] = Value::String(key.secret);
            json_response(201, &json!({ "key": body }))
        }
        (Method::Get, ["projects", slug, "keys"]) => {
            existing(&store, slug).await?;
            let keys = store.keys(slug).await.map_err(internal)?;
            let list: Vec<Value> = keys.iter().map(|k| k.to_json()).collect();
            json_response(200, &json!({ "keys": list }))
        }
        (Method::Delete, ["projects", slug, "keys", id]) => {
            existing(&store, slug).await?;
            let no_key =
                || ApiError::not_found(format!("project {slug:?} has no key with id {id:?}"));
            let id: i64 = id.parse().map_err(|_| no_key())?;
            let key = store
                .revoke_key(slug, id, now)
                .await
                .map_err(internal)?
                .ok_or_else(no_key)?;
            json_response(200, &json!({ "key": key.to_json() }))
        }
        (Method::Post, ["projects", slug, "share"]) => {
            existing(&store, slug).await?;
            crate::dashboard::mint_share(&url, env, slug, &body, now)
        }
        (Method::Get, ["projects", slug, "alert-rules"]) => alerts::list_rules(&store, slug).await,
        (Method::Post, ["projects", slug, "alert-rules"]) => {
            alerts::create_rule(&store, slug, &body, now).await
        }
        (Method::Get, ["projects", slug, "alert-rules", id]) => {
            alerts::get_rule(&store, slug, id).await
        }
        (Method::Patch, ["projects", slug, "alert-rules", id]) => {
            alerts::update_rule(&store, slug, id, &body, now).await
        }
        (Method::Delete, ["projects", slug, "alert-rules", id]) => {
            alerts::delete_rule(&store, slug, id).await
        }
        (Method::Put, ["projects", slug, "campaigns", campaign]) => {
            campaigns::set(&store, slug, campaign, &body, now).await
        }
        (_, ["projects"]) => Err(ApiError::method_not_allowed("GET or POST")),
        (_, ["projects", _]) => Err(ApiError::method_not_allowed("GET or PATCH")),
        (_, ["projects", _, "keys"]) => Err(ApiError::method_not_allowed("GET or POST")),
        (_, ["projects", _, "keys", _]) => Err(ApiError::method_not_allowed("DELETE")),
        (_, ["projects", _, "share"]) => Err(ApiError::method_not_allowed("POST")),
        (_, ["projects", _, "alert-rules"]) => Err(ApiError::method_not_allowed("GET or POST")),
        (_, ["projects", _, "alert-rules", _]) => {
            Err(ApiError::method_not_allowed("GET, PATCH or DELETE"))
        }
        (_, ["projects", _, "campaigns", _]) => Err(ApiError::method_not_allowed("PUT")),
        _ => Err(ApiError::not_found(
            "admin endpoints: /v1/admin/projects[/{slug}[/keys[/{id}] | /share | \
             /alert-rules[/{id}] | /campaigns/{campaign}]]",
        )),
    }
}

/// Whether the request carries the admin token. Compares digests, so the time taken
/// says nothing about how much of a guess was right.
pub fn is_admin(req: &Request, env: &RequestEnv) -> Result<bool, ApiError> {
    let Ok(expected) = env.secret(ADMIN_TOKEN) else {
        return Ok(false);
    };
    let expected = expected.to_string();
    Ok(!expected.is_empty()
        && bearer(req).is_some_and(|given| {
            Sha256::digest(given.as_bytes()) == Sha256::digest(expected.as_bytes())
        }))
}

fn require_admin(req: &Request, env: &RequestEnv) -> Result<(), ApiError> {
    if env.secret(ADMIN_TOKEN).is_err() {
        worker::console_error!("the {ADMIN_TOKEN} secret is not set");
        return Err(ApiError::new(
            503,
            "misconfigured",
            "the admin API is off until the operator sets the ADMIN_TOKEN secret",
        ));
    }
    if is_admin(req, env)? {
        Ok(())
    } else {
        Err(ApiError::new(
            401,
            "invalid_admin_token",
            "send the admin token as `Authorization: Bearer <ADMIN_TOKEN>`",
        ))
    }
}

pub async fn existing(
    store: &D1Store,
    slug: &str,
) -> Result<tally_core::project::Project, ApiError> {
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

pub fn json_response(status: u16, body: &Value) -> Result<Response, ApiError> {
    Ok(Response::from_json(body)
        .map_err(internal)?
        .with_status(status))
}
