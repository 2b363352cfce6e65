//! Read access: a project's read token (or the admin token) on every data request.

use tally_core::ApiError;
use tally_core::project::{KeyKind, is_key_shaped, key_hash};
use tally_storage::AdminStore;
use worker::Request;

use crate::RequestEnv;

use crate::admin::is_admin;
use crate::error::internal;
use crate::store;

/// The bearer token of a request, if any.
pub fn bearer(req: &Request) -> Option<String> {
    let value = req.headers().get("authorization").ok().flatten()?;
    let value = value.trim();
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?;
    Some(token.trim().to_owned())
}

/// Who a request's bearer token says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reader {
    /// The admin token: may read every project.
    Admin,
    /// A valid, unrevoked read token of this project.
    Project(String),
}

/// Checks the request's bearer token: a read token (looked up by its hash on every
/// request, so a revocation applies at once) or the admin token.
///
/// # Errors
///
/// 401 without a token, with a write key, or with a token that is unknown or revoked.
pub async fn reader(req: &Request, env: &RequestEnv) -> Result<Reader, ApiError> {
    let token = bearer(req).ok_or_else(|| {
        ApiError::new(
            401,
            "missing_token",
            "send a read token of the project as `Authorization: Bearer tr_...`",
        )
    })?;
    if is_key_shaped(KeyKind::Write, &token) {
        return Err(ApiError::new(
            401,
            "wrong_key_kind",
            "this is a write key (tw_...); reading takes a read token (tr_...)",
        ));
    }
    if !is_key_shaped(KeyKind::Read, &token) {
        return if is_admin(req, env)? {
            Ok(Reader::Admin)
        } else {
            Err(invalid_token())
        };
    }
    let found = store(env)?
        .key_by_hash(&key_hash(&token))
        .await
        .map_err(internal)?;
    match found {
        Some((key, _)) if key.kind != KeyKind::Read => Err(invalid_token()),
        Some((key, _)) if key.revoked_at.is_some() => Err(ApiError::new(
            401,
            "revoked_token",
            format!("read token {} was revoked; create a new one", key.prefix),
        )),
        Some((key, _)) => Ok(Reader::Project(key.project)),
        None => Err(invalid_token()),
    }
}

/// Allows the request to read `project`'s data: a read token of that project, or the
/// admin token.
///
/// # Errors
///
/// As [`reader`]; 403 for another project's token.
pub async fn require_read(req: &Request, env: &RequestEnv, project: &str) -> Result<(), ApiError> {
    match reader(req, env).await? {
        Reader::Admin => Ok(()),
        Reader::Project(p) if p == project => Ok(()),
        Reader::Project(_) => Err(ApiError::new(
            403,
            "wrong_project",
            format!("this read token belongs to another project, not {project:?}"),
        )),
    }
}

fn invalid_token() -> ApiError {
    ApiError::new(
        401,
        "invalid_token",
        "the read token is not one Tally issued; create one with \
         cargo xtask project key <project> --read",
    )
}
