//! The executor seam: the two things a SQL database must do for Tally, and the values
//! it binds. Every domain trait ([`crate::EventStore`], [`crate::Writer`],
//! [`crate::alerts::AlertStore`], ...) is written once over [`Executor`]
//! (`crate::sql_store`), so a new store is a new executor: D1 and SQLite are two, and
//! the shard executors of [`crate::shard`] pick the database of each statement.

use serde::de::DeserializeOwned;

use crate::Error;

/// A value bound to a statement parameter. Integers stay below 2^53, so D1, which binds
/// numbers as f64, takes them exactly; BLOBs cross as hex text (`unhex(?)`).
#[derive(Debug, Clone, PartialEq)]
pub enum Bound {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

impl From<&str> for Bound {
    fn from(s: &str) -> Self {
        Self::Text(s.to_owned())
    }
}

impl From<String> for Bound {
    fn from(s: String) -> Self {
        Self::Text(s)
    }
}

impl From<i64> for Bound {
    fn from(n: i64) -> Self {
        Self::Int(n)
    }
}

impl From<u32> for Bound {
    fn from(n: u32) -> Self {
        Self::Int(n.into())
    }
}

impl From<bool> for Bound {
    fn from(b: bool) -> Self {
        Self::Int(b.into())
    }
}

impl<T: Into<Bound>> From<Option<T>> for Bound {
    fn from(v: Option<T>) -> Self {
        v.map_or(Self::Null, Into::into)
    }
}

/// A count or sum as a bound integer, saturating at
/// [`MAX_STORED_INTEGER`](tally_core::rollup::MAX_STORED_INTEGER): D1 binds numbers as
/// f64 and refuses to decode a larger integer, which would make its row unreadable.
pub(crate) fn int(n: impl TryInto<i64>) -> Bound {
    const MAX: i64 = tally_core::rollup::MAX_STORED_INTEGER as i64;
    Bound::Int(n.try_into().map_or(MAX, |n: i64| n.min(MAX)))
}

/// One statement of Tally's SQL text (`tally_core::sql`) with its values, `?1` first.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sql: &'static str,
    pub values: Vec<Bound>,
}

impl Statement {
    pub fn new(sql: &'static str, values: Vec<Bound>) -> Self {
        Self { sql, values }
    }
}

/// A database that runs Tally's SQL text with bound values. Implementations own only
/// what is particular to their database: how values bind, how rows come back, how a
/// batch is made atomic, retries and metering.
#[allow(async_fn_in_trait)] // Workers are single-threaded: no `Send` bound wanted.
pub trait Executor {
    /// The rows of `sql` with `values` bound, each decoded from its columns by name
    /// (BLOB columns are read through `hex(col)` in the SQL, so they arrive as text).
    /// `sql` is a constant of `tally_core::sql`, never text built at run time (hence
    /// `'static`, as in [`Statement`]).
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the statement fails, [`Error::Decode`] when a row does
    /// not fit `T`.
    async fn query<T: DeserializeOwned>(
        &self,
        sql: &'static str,
        values: Vec<Bound>,
    ) -> Result<Vec<T>, Error>;

    /// Runs every statement of every group in order, in one transaction, and returns
    /// the rows each group changed. A group is the statements of one
    /// [`crate::Write`]; an empty group changes nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Conflict`] when a constraint or guard tripped, [`Error::Database`] for
    /// any other failure; either way nothing was applied.
    async fn batch(&self, groups: Vec<Vec<Statement>>) -> Result<Vec<u64>, Error>;

    /// The data shard this executor's data statements run on, which the reads over a
    /// whole shard's projects (`EventStore::projects`) select by: 0 for a single
    /// database, the shard's number for [`crate::shard::OnShard`].
    fn shard(&self) -> u32 {
        0
    }

    /// The bytes this database stores, as the database itself measures them (D1's
    /// `size_after`, SQLite's pages), or `None` when this executor is not one database
    /// (a router over several, a test double): the caller then has no size to weigh,
    /// and says so rather than guess.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the database cannot be asked.
    async fn stored_bytes(&self) -> Result<Option<u64>, Error> {
        Ok(None)
    }

    /// Says that statements about `projects` are coming, so that an executor which
    /// looks up where each project lives ([`crate::shard::Router`]) reads them all at
    /// once: a run over many projects (alert evaluation, digests) then costs one lookup,
    /// not one per project. Returns the queries it made (0 or 1), for the caller's
    /// budget; executors over one database have nothing to look up.
    ///
    /// # Errors
    ///
    /// The lookup's error.
    async fn expect_projects(&self, projects: &[&str]) -> Result<u32, Error> {
        let _ = projects;
        Ok(0)
    }
}

/// A borrowed executor is one: so one database can serve as the control database and
/// a shard at once ([`crate::shard::Router`] owns its executors), as shard 0 does in a
/// deployment from before shards.
impl<E: Executor> Executor for &E {
    async fn query<T: DeserializeOwned>(
        &self,
        sql: &'static str,
        values: Vec<Bound>,
    ) -> Result<Vec<T>, Error> {
        (**self).query(sql, values).await
    }

    async fn batch(&self, groups: Vec<Vec<Statement>>) -> Result<Vec<u64>, Error> {
        (**self).batch(groups).await
    }

    fn shard(&self) -> u32 {
        (**self).shard()
    }

    async fn stored_bytes(&self) -> Result<Option<u64>, Error> {
        (**self).stored_bytes().await
    }

    async fn expect_projects(&self, projects: &[&str]) -> Result<u32, Error> {
        (**self).expect_projects(projects).await
    }
}

/// An executor that counts what passes through it to another: the queries D1 would bill
/// an invocation for (one per read, one per statement of a batch) and the table rows the
/// batches changed. Budgets (D1's 1,000 queries per invocation) and rows written per
/// event are measured with it rather than taken from what the code reports of itself.
/// It also counts calls (a read, or a whole batch): what D1's limit of 1,000 queries
/// per invocation counts, being a limit of subrequests.
pub struct Counted<'a, E> {
    inner: &'a E,
    calls: std::cell::Cell<u32>,
    queries: std::cell::Cell<u32>,
    rows_changed: std::cell::Cell<u64>,
}

impl<'a, E: Executor> Counted<'a, E> {
    pub fn new(inner: &'a E) -> Self {
        Self {
            inner,
            calls: std::cell::Cell::new(0),
            queries: std::cell::Cell::new(0),
            rows_changed: std::cell::Cell::new(0),
        }
    }

    /// The queries counted since the last call.
    pub fn take_queries(&self) -> u32 {
        self.queries.replace(0)
    }

    /// The calls to the database (each read, each batch) since the last call.
    pub fn take_calls(&self) -> u32 {
        self.calls.replace(0)
    }

    /// The rows changed since the last call.
    pub fn take_rows_changed(&self) -> u64 {
        self.rows_changed.replace(0)
    }
}

impl<E: Executor> Executor for Counted<'_, E> {
    async fn query<T: DeserializeOwned>(
        &self,
        sql: &'static str,
        values: Vec<Bound>,
    ) -> Result<Vec<T>, Error> {
        self.calls.set(self.calls.get().saturating_add(1));
        self.queries.set(self.queries.get().saturating_add(1));
        self.inner.query(sql, values).await
    }

    async fn batch(&self, groups: Vec<Vec<Statement>>) -> Result<Vec<u64>, Error> {
        self.calls.set(self.calls.get().saturating_add(1));
        let statements =
            u32::try_from(groups.iter().map(Vec::len).sum::<usize>()).unwrap_or(u32::MAX);
        self.queries
            .set(self.queries.get().saturating_add(statements));
        let changed = self.inner.batch(groups).await?;
        self.rows_changed
            .set(self.rows_changed.get() + changed.iter().sum::<u64>());
        Ok(changed)
    }

    fn shard(&self) -> u32 {
        self.inner.shard()
    }

    async fn stored_bytes(&self) -> Result<Option<u64>, Error> {
        self.queries.set(self.queries.get().saturating_add(1));
        self.inner.stored_bytes().await
    }

    async fn expect_projects(&self, projects: &[&str]) -> Result<u32, Error> {
        let queries = self.inner.expect_projects(projects).await?;
        self.queries.set(self.queries.get().saturating_add(queries));
        Ok(queries)
    }
}
