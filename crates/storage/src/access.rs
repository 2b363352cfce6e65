//! Storage of the ways into a dashboard other than a token in each request: share links
//! (one row each, so one can be revoked) and the login form's sessions (the cookie's
//! random id, kept as its SHA-256, naming the read token it was opened with). Written
//! once over [`Executor`], like every store.
//!
//! Sessions live in D1, not KV: a sign-out and a revoked read token must end a session
//! at once everywhere, which KV's eventually consistent reads (up to 60 s) would not
//! give, and the lookup joins the session to its read token in the one query the read
//! token alone took before.

use serde::Deserialize;
use tally_core::project::{ApiKey, Project};
use tally_core::share::ShareLink;
use tally_core::sql;

use crate::Error;
use crate::exec::{Executor, Statement};
use crate::rows::GrantRow;

/// Share links and dashboard sessions.
#[allow(async_fn_in_trait)] // Workers are single-threaded: no `Send` bound wanted.
pub trait AccessStore {
    /// Stores a new share link of `link.project`; `false` when the project does not
    /// exist.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the write fails.
    async fn create_share_link(&self, link: &ShareLink) -> Result<bool, Error>;

    /// The share links of a project, newest first, expired and revoked ones included.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] or [`Error::Decode`].
    async fn share_links(&self, project: &str) -> Result<Vec<ShareLink>, Error>;

    /// Share link `id` of `project`.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] or [`Error::Decode`].
    async fn share_link(&self, project: &str, id: &str) -> Result<Option<ShareLink>, Error>;

    /// Revokes share link `id` of `project` (an earlier revocation stands); `None` when
    /// the project has no such link.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] or [`Error::Decode`].
    async fn revoke_share_link(
        &self,
        project: &str,
        id: &str,
        now_ms: i64,
    ) -> Result<Option<ShareLink>, Error>;

    /// Opens a session whose id hashes to `hash` (hex) for read token `key_id`, until
    /// `expires_ms`, and deletes the sessions expired at `now_ms` in the same
    /// transaction (so the table holds at most a week of sign-ins).
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the write fails.
    async fn open_session(
        &self,
        hash: &str,
        key_id: i64,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<(), Error>;

    /// The read token (with its project) of the unexpired session whose id hashes to
    /// `hash`; revoked tokens are returned too, for the caller to refuse by name.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] or [`Error::Decode`].
    async fn session(&self, hash: &str, now_ms: i64) -> Result<Option<(ApiKey, Project)>, Error>;

    /// Ends the session whose id hashes to `hash`; nothing happens if there is none.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the write fails.
    async fn close_session(&self, hash: &str) -> Result<(), Error>;
}

/// A `share_links` row with its project's slug.
#[derive(Deserialize)]
struct LinkRow {
    id: String,
    project: String,
    created_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
}

impl From<LinkRow> for ShareLink {
    fn from(row: LinkRow) -> Self {
        Self {
            id: row.id,
            project: row.project,
            created_at: row.created_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
        }
    }
}

impl<S: Executor> AccessStore for S {
    async fn create_share_link(&self, link: &ShareLink) -> Result<bool, Error> {
        #[derive(Deserialize)]
        struct Id {
            #[allow(dead_code, reason = "only that a row came back matters")]
            id: String,
        }
        let values = vec![
            link.project.as_str().into(),
            link.id.as_str().into(),
            link.created_at.into(),
            link.expires_at.into(),
        ];
        let ids: Vec<Id> = self.query(sql::CREATE_SHARE_LINK, values).await?;
        Ok(!ids.is_empty())
    }

    async fn share_links(&self, project: &str) -> Result<Vec<ShareLink>, Error> {
        let rows: Vec<LinkRow> = self
            .query(sql::SHARE_LINKS_OF_PROJECT, vec![project.into()])
            .await?;
        Ok(rows.into_iter().map(ShareLink::from).collect())
    }

    async fn share_link(&self, project: &str, id: &str) -> Result<Option<ShareLink>, Error> {
        let rows: Vec<LinkRow> = self
            .query(sql::SHARE_LINK, vec![project.into(), id.into()])
            .await?;
        Ok(rows.into_iter().next().map(ShareLink::from))
    }

    async fn revoke_share_link(
        &self,
        project: &str,
        id: &str,
        now_ms: i64,
    ) -> Result<Option<ShareLink>, Error> {
        let values = vec![project.into(), id.into(), now_ms.into()];
        self.batch(vec![vec![Statement::new(sql::REVOKE_SHARE_LINK, values)]])
            .await?;
        self.share_link(project, id).await
    }

    async fn open_session(
        &self,
        hash: &str,
        key_id: i64,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<(), Error> {
        let statements = vec![
            Statement::new(sql::DELETE_EXPIRED_SESSIONS, vec![now_ms.into()]),
            Statement::new(
                sql::CREATE_SESSION,
                vec![hash.into(), key_id.into(), now_ms.into(), expires_ms.into()],
            ),
        ];
        self.batch(vec![statements]).await.map(drop)
    }

    async fn session(&self, hash: &str, now_ms: i64) -> Result<Option<(ApiKey, Project)>, Error> {
        let rows: Vec<GrantRow> = self
            .query(sql::SESSION_KEY, vec![hash.into(), now_ms.into()])
            .await?;
        rows.into_iter().next().map(GrantRow::decode).transpose()
    }

    async fn close_session(&self, hash: &str) -> Result<(), Error> {
        let values = vec![hash.into()];
        self.batch(vec![vec![Statement::new(sql::DELETE_SESSION, values)]])
            .await
            .map(drop)
    }
}
