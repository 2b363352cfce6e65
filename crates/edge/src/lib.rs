//! The error answer every Tally endpoint gives: a status and
//! `{"error": {"code": "...", "message": "..."}}` saying what to fix.
//!
//! This is plain data, the HTTP edges' one error type: each worker turns it into a
//! response at its edge (`workers/*/src/**/error.rs`). Core's functions return
//! [`tally_core::Error`] and never build one of these (`xtask/src/tidy.rs` checks it);
//! `From<Error>` below is the one mapping of core's errors to answers. It is a crate of
//! its own, not a module of one worker, because the ingest and query workers both
//! answer with it, and it stays free of the Workers runtime so that it is tested natively.

use serde_json::{Map, Value, json};

use tally_core::Error;

/// An error answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// Extra top-level members of the body (for example per-event results).
    pub extra: Map<String, Value>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            extra: Map::new(),
        }
    }

    /// Adds a top-level member to the body.
    #[must_use]
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_owned(), value);
        self
    }

    pub fn bad_request(code: &'static str, message: impl std::fmt::Display) -> Self {
        Self::new(400, code, message.to_string())
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "not_found", message)
    }

    pub fn method_not_allowed(allowed: &str) -> Self {
        Self::new(
            405,
            "method_not_allowed",
            format!("this endpoint takes {allowed}"),
        )
    }

    /// A generic 500 that reveals nothing; the caller logs the real cause.
    pub fn internal() -> Self {
        Self::new(500, "internal", "internal error; please retry")
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert(
            "error".into(),
            json!({"code": self.code, "message": self.message}),
        );
        body.extend(self.extra.clone());
        Value::Object(body)
    }
}

/// The answer to a core error: 400 for input a person can fix, with the error's code
/// (and the field at fault); a generic 500 for stored data core cannot read, which is
/// nobody's input (the caller logs it first, as it does every internal error).
impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        match error {
            Error::Invalid {
                code,
                message,
                field,
            } => {
                let answer = Self::bad_request(code, message);
                match field {
                    Some(field) => answer.with("field", Value::from(field)),
                    None => answer,
                }
            }
            Error::RangeBothForms
            | Error::RangeDays { .. }
            | Error::RangeEnd { .. }
            | Error::RangeEmpty
            | Error::RangeTooEarly
            | Error::RangeTooLong { .. }
            | Error::RangeInFuture => Self::bad_request("invalid_range", error),
            Error::Window(_) => Self::bad_request("invalid_window", error),
            Error::TimestampText(_) | Error::TimestampNumber(_) | Error::TimestampType(_) => {
                Self::bad_request("invalid_field", error).with("field", json!("timestamp"))
            }
            Error::InflatedTooLarge { .. } => Self::new(413, "body_too_large", error.to_string()),
            Error::MalformedMessage(_)
            | Error::UnsupportedVersion(_)
            | Error::InvalidSketch(_)
            | Error::InvalidHll(_)
            | Error::StoredRule(_) => Self::internal(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_shape() {
        let e = ApiError::bad_request("empty_batch", "no events").with("accepted", json!(0));
        assert_eq!(
            e.body(),
            json!({"error": {"code": "empty_batch", "message": "no events"}, "accepted": 0})
        );
        assert_eq!(e.status, 400);
        assert_eq!(
            ApiError::internal().body()["error"]["message"],
            "internal error; please retry"
        );
    }

    #[test]
    fn core_errors_answer_as_before() {
        let check = |error: Error, status: u16, body: Value| {
            let answer = ApiError::from(error);
            assert_eq!((answer.status, answer.body()), (status, body));
        };
        check(
            Error::invalid("invalid_key", "name is too long").at("name"),
            400,
            json!({"error": {"code": "invalid_key", "message": "name is too long"}, "field": "name"}),
        );
        check(
            Error::invalid("invalid_project", "a project's slug cannot change"),
            400,
            json!({"error": {"code": "invalid_project", "message": "a project's slug cannot change"}}),
        );
        check(
            Error::RangeTooLong { max_days: 90 },
            400,
            json!({"error": {"code": "invalid_range", "message": "the range is longer than 90 days; ask for less"}}),
        );
        check(
            Error::Window("1w".into()),
            400,
            json!({"error": {"code": "invalid_window", "message": "window \"1w\" is not a duration such as 30m, 12h or 7d (s, m, h or d; at most 90d)"}}),
        );
        check(
            Error::InflatedTooLarge { limit: 1_048_576 },
            413,
            json!({"error": {"code": "body_too_large", "message": "the request body decompresses to more than 1048576 bytes (1 MiB); split the batch"}}),
        );
        check(
            Error::InvalidHll("truncated"),
            500,
            json!({"error": {"code": "internal", "message": "internal error; please retry"}}),
        );
    }
}
