//! The one error type of the core crate.

/// Errors from core operations that are not per-event validation outcomes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A queue message body could not be decoded.
    #[error("malformed queue message: {0}")]
    MalformedMessage(String),
    /// A queue message carries a format version this build does not understand.
    #[error("unsupported queue message version {0}")]
    UnsupportedVersion(u64),
}
