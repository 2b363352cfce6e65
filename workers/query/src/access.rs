//! Who is asking: the bearer token of a request, the admin token (the `ADMIN_TOKEN`
//! secret), the key share links are signed with (the `SHARE_SECRET` secret), and the one
//! classifier of tokens ([`classify`], and [`grant`] for a key already looked up) that
//! both the API ([`require_read`], [`token_project`]) and the dashboard use. Read tokens
//! are looked up by their hash on every request, so a revocation applies at once.

use sha2::{Digest, Sha256};
use tally_core::project::{ApiKey, KeyKind, Project, is_key_shaped, key_hash};
use tally_core::share;
use tally_edge::ApiError;
use tally_storage::AdminStore;
use worker::Request;

use crate::edge::error::internal;
use crate::edge::{ADMIN_TOKEN, RequestEnv, SHARE_SECRET, store};

/// The bearer token of a request, if any.
pub fn bearer(req: &Request) -> Option<String> {
    let value = req.headers().get("authorization").ok().flatten()?;
    let value = value.trim();
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?;
    Some(token.trim().to_owned())
}

/// The admin token, `None` when it is not set (or empty).
fn admin_token(env: &RequestEnv) -> Option<String> {
    let token = env.secret(ADMIN_TOKEN).ok()?.to_string();
    (!token.is_empty()).then_some(token)
}

/// Whether `token` is the admin token. Compares digests, so the time taken says nothing
/// about how much of a guess was right.
pub fn is_admin_token(env: &RequestEnv, token: &str) -> bool {
    admin_token(env).is_some_and(|expected| {
        Sha256::digest(token.as_bytes()) == Sha256::digest(expected.as_bytes())
    })
}

/// Whether `token` is an admin session (the project list's cookie) signed with this
/// deployment's admin token and unexpired at `now_ms`.
pub fn is_admin_session(env: &RequestEnv, token: &str, now_ms: i64) -> bool {
    admin_token(env).is_some_and(|admin| share::is_admin_session(admin.as_bytes(), token, now_ms))
}

/// A new admin session token, valid from `now_ms` for [`share::ADMIN_SESSION_S`];
/// `None` when the admin token is not set.
///
/// # Errors
///
/// When no random bytes can be had.
pub fn new_admin_session(env: &RequestEnv, now_ms: i64) -> Result<Option<String>, ApiError> {
    let Some(admin) = admin_token(env) else {
        return Ok(None);
    };
    let mut random = [0u8; share::ID_BYTES];
    getrandom::fill(&mut random).map_err(internal)?;
    let expires_s = now_ms.div_euclid(1000) + share::ADMIN_SESSION_S;
    Ok(Some(share::sign_admin_session(
        admin.as_bytes(),
        &share::new_id(&random),
        expires_s,
    )))
}

/// Whether the request carries the admin token (never an error: without the secret no
/// request is the admin's).
pub fn is_admin(req: &Request, env: &RequestEnv) -> bool {
    bearer(req).is_some_and(|given| is_admin_token(env, &given))
}

/// Allows the request only with the admin token.
///
/// # Errors
///
/// 503 when the `ADMIN_TOKEN` secret is not set, 401 without the token.
pub fn require_admin(req: &Request, env: &RequestEnv) -> Result<(), ApiError> {
    if env.secret(ADMIN_TOKEN).is_err() {
        worker::console_error!("the {ADMIN_TOKEN} secret is not set");
        return Err(ApiError::new(
            503,
            "misconfigured",
            "the admin API is off until the operator sets the ADMIN_TOKEN secret",
        ));
    }
    if bearer(req).is_some_and(|given| is_admin_token(env, &given)) {
        Ok(())
    } else {
        Err(ApiError::new(
            401,
            "invalid_admin_token",
            "send the admin token as `Authorization: Bearer <ADMIN_TOKEN>`",
        ))
    }
}

/// The key share links are signed with: the `SHARE_SECRET` secret, their own (changing
/// it revokes every link, and nothing else). `None` when it is not set or empty (links
/// are then refused).
pub fn share_secret(env: &RequestEnv) -> Option<Vec<u8>> {
    let secret = env.secret(SHARE_SECRET).ok()?.to_string();
    (!secret.is_empty()).then(|| secret.into_bytes())
}

/// What a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// The admin token: may read every project.
    Admin,
    /// A valid, unrevoked read token of this project.
    Read(String),
    /// A write key (`tw_...`), which reads nothing.
    Write,
    /// A read token revoked since; its prefix names it.
    Revoked(String),
    /// Nothing Tally issued.
    Unknown,
}

/// Classifies a token: by its shape, then a read token by its hash in D1 (on every
/// call, so a revocation applies at once); a token of no key's shape may be the admin
/// token.
///
/// # Errors
///
/// 500 when D1 fails.
pub async fn classify(env: &RequestEnv, token: &str) -> Result<Token, ApiError> {
    if is_key_shaped(KeyKind::Write, token) {
        return Ok(Token::Write);
    }
    if !is_key_shaped(KeyKind::Read, token) {
        return Ok(if is_admin_token(env, token) {
            Token::Admin
        } else {
            Token::Unknown
        });
    }
    let found = store(env)?
        .key_by_hash(&key_hash(token))
        .await
        .map_err(internal)?;
    let token = grant(found.as_ref().map(|(key, _)| key.clone()));
    if let (Token::Read(_), Some((_, project))) = (&token, found) {
        // A browser read's CORS grant follows this project's allowed origins.
        env.note_reader(project);
    }
    Ok(token)
}

/// What a key found by a read token's hash (or by a dashboard session) is: a read
/// token of its project, revoked, or nothing that reads.
pub fn grant(found: Option<ApiKey>) -> Token {
    match found {
        Some(key) if key.kind != KeyKind::Read => Token::Unknown,
        Some(key) if key.revoked_at.is_some() => Token::Revoked(key.prefix),
        Some(key) => Token::Read(key.project),
        None => Token::Unknown,
    }
}

/// The key a read token's text hashes to, if any, with what it is.
///
/// # Errors
///
/// 500 when D1 fails.
pub async fn read_key(env: &RequestEnv, token: &str) -> Result<(Token, Option<i64>), ApiError> {
    if !is_key_shaped(KeyKind::Read, token) {
        return Ok((classify(env, token).await?, None));
    }
    let found: Option<(ApiKey, Project)> = store(env)?
        .key_by_hash(&key_hash(token))
        .await
        .map_err(internal)?;
    let id = found.as_ref().map(|(key, _)| key.id);
    Ok((grant(found.map(|(key, _)| key)), id))
}

/// Who a request's bearer token says it is, for the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reader {
    /// The admin token: may read every project.
    Admin,
    /// A valid, unrevoked read token of this project.
    Project(String),
}

/// Checks the request's bearer token: a read token or the admin token.
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
    match classify(env, &token).await? {
        Token::Admin => Ok(Reader::Admin),
        Token::Read(project) => Ok(Reader::Project(project)),
        Token::Write => Err(ApiError::new(
            401,
            "wrong_key_kind",
            "this is a write key (tw_...); reading takes a read token (tr_...)",
        )),
        Token::Revoked(prefix) => Err(ApiError::new(
            401,
            "revoked_token",
            format!("read token {prefix} was revoked; create a new one"),
        )),
        Token::Unknown => Err(ApiError::new(
            401,
            "invalid_token",
            "the read token is not one Tally issued; create one with \
             cargo xtask project key <project> --read",
        )),
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

/// The project of the read token a request carries, for the seeds' paths that name no
/// project.
///
/// # Errors
///
/// 401 without a valid, unrevoked read token (the admin token names no project, so it is
/// refused here too).
pub async fn token_project(req: &Request, env: &RequestEnv) -> Result<String, ApiError> {
    match reader(req, env).await? {
        Reader::Project(project) => Ok(project),
        Reader::Admin => Err(ApiError::new(
            401,
            "read_token_required",
            "this path reads the project of a read token, and the admin token names \
             none; send a read token (tr_...) of the project",
        )),
    }
}
