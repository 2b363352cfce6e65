//! The one error type of the core crate.
//!
//! Core says what is wrong, never how to answer it: an edge maps an [`Error`] to its
//! protocol (the workers' error answers, a rejected event, a log line). Every message is
//! a sentence a person can act on, and tests and answers rely on its exact text.

use crate::time::json_kind;

/// Errors from core operations that are not per-event validation outcomes.
///
/// Deliberately exhaustive: `tally-edge` maps every variant to an answer with no
/// wildcard arm, so a new variant does not compile until it has its status and code.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
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
    /// A stored alert rule's definition does not parse (what is wrong with it).
    #[error("{0}")]
    StoredRule(String),

    /// Input that breaks one of core's input rules (a project's settings, a key request,
    /// an alert rule, a Plausible event): `code` names the kind of fault for machines
    /// (`invalid_project`, `invalid_key`, `invalid_rule`, `malformed_json`,
    /// `missing_field`, `invalid_event`), `field` the input field at fault when the
    /// answer names one.
    #[error("{message}")]
    Invalid {
        code: &'static str,
        message: String,
        field: Option<&'static str>,
    },

    /// A query range gives both `days` and `from`/`to`.
    #[error("use either days or from/to, not both")]
    RangeBothForms,
    /// `days` is not a whole number from 1 to `max_days`.
    #[error("days must be a whole number from 1 to {max_days}, not {days:?}")]
    RangeDays { days: String, max_days: i64 },
    /// One end of a range (`from` or `to`) is neither a date nor RFC 3339.
    #[error("{end} {text:?} is neither a date (YYYY-MM-DD) nor RFC 3339 time")]
    RangeEnd { end: &'static str, text: String },
    /// A range that is empty or ends before it starts.
    #[error("from must be before to")]
    RangeEmpty,
    /// A range that starts before [`crate::range::EARLIEST_MS`].
    #[error("from must not be before 2000-01-01")]
    RangeTooEarly,
    /// A range longer than `max_days`.
    #[error("the range is longer than {max_days} days; ask for less")]
    RangeTooLong { max_days: i64 },
    /// A range that ends more than a day from now.
    #[error("to must not be more than a day in the future")]
    RangeInFuture,

    /// A funnel window that is not a duration such as `30m`, or is longer than 90 days.
    #[error("window {0:?} is not a duration such as 30m, 12h or 7d (s, m, h or d; at most 90d)")]
    Window(String),

    /// A `Content-Encoding: gzip` body that decompresses to more than `limit` bytes.
    #[error("the request body decompresses to more than {limit} bytes (1 MiB); split the batch")]
    InflatedTooLarge { limit: usize },

    /// A timestamp string that is not RFC 3339.
    #[error("timestamp {0:?} is not RFC 3339 (e.g. 2025-01-18T14:30:00Z)")]
    TimestampText(String),
    /// A timestamp number that is not a non-negative integer.
    #[error("timestamp {0} is not a non-negative integer of epoch milliseconds")]
    TimestampNumber(serde_json::Number),
    /// A timestamp of another JSON type (named as [`json_kind`] names it).
    #[error("timestamp must be RFC 3339 text or epoch milliseconds, not {0}")]
    TimestampType(&'static str),
}

impl Error {
    /// An [`Error::Invalid`] of kind `code` that names no field.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            message: message.into(),
            field: None,
        }
    }

    /// This error naming `field` as the one at fault (for [`Error::Invalid`]; any other
    /// error is returned as it is).
    #[must_use]
    pub fn at(self, at: &'static str) -> Self {
        match self {
            Self::Invalid { code, message, .. } => Self::Invalid {
                code,
                message,
                field: Some(at),
            },
            other => other,
        }
    }

    /// The error for a timestamp `value` of the wrong JSON type.
    pub(crate) fn timestamp_type(value: &serde_json::Value) -> Self {
        Self::TimestampType(json_kind(value))
    }
}
