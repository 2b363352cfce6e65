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
    /// An encoded quantile sketch is corrupt, truncated or of an unknown version.
    #[error("invalid quantile sketch encoding: {0}")]
    InvalidSketch(&'static str),
    /// An encoded HyperLogLog is corrupt, truncated or of an unknown version.
    #[error("invalid HyperLogLog encoding: {0}")]
    InvalidHll(&'static str),
}
