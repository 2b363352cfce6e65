//! The one error type of the storage crate.

/// Errors from a store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A guard of a transaction tripped: something read changed before the write.
    /// Nothing was applied; reading again and retrying is safe.
    #[error("write conflict: {0}")]
    Conflict(String),
    /// The database rejected or failed a statement.
    #[error("database error: {0}")]
    Database(String),
    /// A stored row could not be decoded.
    #[error("could not decode a stored row: {0}")]
    Decode(String),
}

impl Error {
    /// Classifies a database error message: constraint failures are conflicts.
    pub fn from_database(message: String) -> Self {
        if message.contains("SQLITE_CONSTRAINT")
            || message.contains("UNIQUE constraint failed")
            || message.contains("rollup version conflict")
        {
            Self::Conflict(message)
        } else {
            Self::Database(message)
        }
    }
}
