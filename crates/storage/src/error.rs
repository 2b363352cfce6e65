//! The one error type of the storage crate.

/// Errors from a store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database rejected or failed a statement.
    #[error("database error: {0}")]
    Database(String),
    /// A stored row could not be decoded.
    #[error("could not decode a stored row: {0}")]
    Decode(String),
}
