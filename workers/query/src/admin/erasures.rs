//! Erasing one person's data (GDPR Art. 17): `DELETE /v1/admin/projects/{p}/users/{user_id}`
//! records a request and answers 202 with where to follow it, `GET
//! /v1/admin/projects/{p}/erasures/{id}`.
//!
//! The raw user id is hashed here exactly as ingest hashes an event's `user`
//! ([`tally_core::hash::identifier`] under the `ID_SECRET` secret and the project's slug),
//! so the request names the rows ingest stored. This worker only records the request;
//! the aggregator's hourly cron deletes the rows in bounded steps
//! ([`tally_storage::erasure::run`]) and the status shows how far it got.

use crate::edge::Store;
use serde_json::{Value, json};
use tally_core::hash::{hex, identifier};
use tally_core::validate::MAX_DIMENSION_CHARS;
use tally_edge::ApiError;
use tally_storage::erasure::{self, Erasure};
use worker::Response;

use super::projects::existing;
use crate::edge::error::internal;
use crate::edge::params::decode_segment;
use crate::edge::respond::json_value;
use crate::edge::shapes::time;
use crate::edge::{ID_SECRET, RequestEnv};

/// Random bytes of a request's id (32 hex digits).
const ID_BYTES: usize = 16;

/// `DELETE /v1/admin/projects/{p}/users/{user_id}`: records the request to erase the
/// user `user_id` (percent-encoded, as sent in events' `user`) and answers 202 with the
/// request and a `Location` of its status.
///
/// # Errors
///
/// 400 for a user id ingest would never have stored, 404 for an unknown project, 503
/// when `ID_SECRET` is not set, 500 when D1 fails.
pub async fn forget(
    store: &Store,
    env: &RequestEnv,
    slug: &str,
    segment: &str,
    now_ms: i64,
) -> Result<Response, ApiError> {
    let user_id = user_id(segment)?;
    existing(store, slug).await?;
    let secret = env.secret(ID_SECRET).map_err(|_| {
        worker::console_error!("the {ID_SECRET} secret is not set");
        ApiError::new(
            503,
            "misconfigured",
            "erasing a user needs the query worker's ID_SECRET secret (the same as ingest's); \
             the operator must set it",
        )
    })?;
    let user = identifier(secret.to_string().as_bytes(), slug, &user_id);
    let mut random = [0u8; ID_BYTES];
    getrandom::fill(&mut random).map_err(internal)?;
    let id = hex(&random);
    if !erasure::request(store, slug, &id, &user, now_ms)
        .await
        .map_err(internal)?
    {
        // Deleted since it was read.
        return Err(existing(store, slug).await.err().unwrap_or_else(|| {
            internal(format!("the erasure request of {slug:?} was not recorded"))
        }));
    }
    let recorded = Erasure {
        id,
        project: slug.to_owned(),
        user,
        requested_at: now_ms,
        raw_deleted: 0,
        marks_deleted: 0,
        done_at: None,
    };
    let mut response = json_value(202, &answer(&recorded), None)?;
    response
        .headers_mut()
        .set("location", &status_path(slug, &recorded.id))
        .map_err(internal)?;
    Ok(response)
}

/// `GET /v1/admin/projects/{p}/erasures/{id}`: the request and how far it got.
///
/// # Errors
///
/// 404 for an unknown project or request, 500 when D1 fails.
pub async fn status(store: &Store, slug: &str, id: &str) -> Result<Response, ApiError> {
    existing(store, slug).await?;
    let found = erasure::get(store, slug, id).await.map_err(internal)?;
    let Some(found) = found else {
        return Err(ApiError::new(
            404,
            "unknown_erasure",
            format!(
                "project {slug:?} has no erasure request {id:?}; its id is in the answer to \
                 DELETE /v1/admin/projects/{slug}/users/{{user_id}}"
            ),
        ));
    };
    json_value(200, &answer(&found), None)
}

/// The raw user id in a path segment, held to ingest's rules for `user`: ingest stores
/// no empty one and refuses one longer than [`MAX_DIMENSION_CHARS`] characters.
fn user_id(segment: &str) -> Result<String, ApiError> {
    let invalid = |message: String| ApiError::bad_request("invalid_user_id", message);
    let Some(user_id) = decode_segment(segment) else {
        return Err(invalid(format!(
            "the user id {segment:?} is not percent-encoded UTF-8"
        )));
    };
    if user_id.is_empty() {
        return Err(invalid(
            "the user id is empty; give the `user` your events carry".into(),
        ));
    }
    let chars = user_id.chars().count();
    if chars > MAX_DIMENSION_CHARS {
        return Err(invalid(format!(
            "the user id is {chars} characters long; ingest accepts at most \
             {MAX_DIMENSION_CHARS}, so no event carries it"
        )));
    }
    Ok(user_id)
}

/// Where the status of request `id` of project `slug` is.
fn status_path(slug: &str, id: &str) -> String {
    format!("/v1/admin/projects/{slug}/erasures/{id}")
}

/// `{"erasure": ...}`: the request as the API shows it, without the identifier hash.
fn answer(e: &Erasure) -> Value {
    let status = if e.done_at.is_some() {
        "done"
    } else {
        "pending"
    };
    json!({
        "erasure": {
            "id": e.id,
            "project": e.project,
            "status": status,
            "requested_at": time(Some(e.requested_at)),
            "done_at": time(e.done_at),
            "raw_deleted": e.raw_deleted,
            "marks_deleted": e.marks_deleted,
            "status_url": status_path(&e.project, &e.id),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_follow_ingest_s_rules() {
        let check = |segment: &str, expected: Result<&str, &str>| {
            let got = user_id(segment).map_err(|e| e.message);
            match (got, expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{segment:?}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{segment:?}: {got}"),
                (got, _) => panic!("{segment:?}: {got:?}, expected {expected:?}"),
            }
        };
        check("u1", Ok("u1"));
        check("alice%40example.com", Ok("alice@example.com"));
        check("a%2Fb%20c", Ok("a/b c"));
        check("%C3%A9", Ok("é"));
        check("", Err("is empty"));
        check("%ff", Err("not percent-encoded UTF-8"));
        check("%4", Err("not percent-encoded UTF-8"));
        check(&"x".repeat(MAX_DIMENSION_CHARS), Ok(&"x".repeat(256)));
        check(
            &"x".repeat(MAX_DIMENSION_CHARS + 1),
            Err("257 characters long; ingest accepts at most 256"),
        );
        check(&"%C3%A9".repeat(MAX_DIMENSION_CHARS), Ok(&"é".repeat(256)));
    }

    #[test]
    fn answers_show_the_state_and_never_the_hash() {
        let mut e = Erasure {
            id: "0123456789abcdef0123456789abcdef".into(),
            project: "demo".into(),
            user: "ab".repeat(32),
            requested_at: 1_764_547_200_000,
            raw_deleted: 0,
            marks_deleted: 0,
            done_at: None,
        };
        let pending = answer(&e);
        assert_eq!(
            pending,
            json!({"erasure": {
                "id": "0123456789abcdef0123456789abcdef",
                "project": "demo",
                "status": "pending",
                "requested_at": "2025-12-01T00:00:00.000Z",
                "done_at": null,
                "raw_deleted": 0,
                "marks_deleted": 0,
                "status_url": "/v1/admin/projects/demo/erasures/0123456789abcdef0123456789abcdef",
            }})
        );
        e.done_at = Some(1_764_550_800_000);
        e.raw_deleted = 12;
        e.marks_deleted = 3;
        let done = answer(&e);
        assert_eq!(done["erasure"]["status"], "done");
        assert_eq!(done["erasure"]["done_at"], "2025-12-01T01:00:00.000Z");
        assert_eq!(done["erasure"]["raw_deleted"], 12);
        assert_eq!(done["erasure"]["marks_deleted"], 3);
        assert!(!done.to_string().contains(&e.user), "{done}");
    }
}
