//! The seeds' own read paths, kept working as aliases with their documented shapes
//! (DESIGN §6): the plugin analytics API (`plugin`), the image CDN's analytics API
//! (`cdn`) and the track API's `/metrics` and `/sessions` (`track`).
//!
//! Every alias reads the same rollups as `/v1/projects/{p}/...`: counts are exact,
//! percentiles come from merged sketches and uniques from merged HyperLogLogs. Each takes
//! a read token; paths that name no project read the token's own project.

pub mod cdn;
pub mod plugin;
pub mod track;

use serde_json::Value;
use tally_core::ApiError;
use worker::{Request, Response};

use crate::RequestEnv;

use crate::auth::{Reader, reader};
use crate::error::internal;

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

/// The query parameters of a request; the first of repeated names counts.
pub struct Params(Vec<(String, String)>);

impl Params {
    /// # Errors
    ///
    /// 500 when the request's URL cannot be read, which the runtime never allows.
    pub fn of(req: &Request) -> Result<Self, ApiError> {
        let url = req.url().map_err(internal)?;
        Ok(Self(url.query_pairs().into_owned().collect()))
    }

    /// The value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `name`, if given and not empty.
    pub fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }
}

/// A JSON response, with a `Cache-Control` header when given.
///
/// # Errors
///
/// 500 when the body cannot be serialized, which plain JSON values never cause.
pub fn json(body: &Value, cache_control: Option<&str>) -> Result<Response, ApiError> {
    let mut response = Response::from_json(body).map_err(internal)?;
    if let Some(value) = cache_control {
        response
            .headers_mut()
            .set("cache-control", value)
            .map_err(internal)?;
    }
    Ok(response)
}

/// A percent-encoded path segment as text: `None` when it decodes to bytes that are not
/// UTF-8 or holds a `%` not followed by two hex digits.
pub fn decode_segment(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let text = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(text, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A duration in milliseconds as seconds: a whole number when it is one (as the seeds
/// show), otherwise to the millisecond.
pub fn seconds(ms: f64) -> Value {
    let s = ms.round() / 1000.0;
    if s.fract() == 0.0 && s.abs() < 9.0e15 {
        Value::from(s as i64)
    } else {
        Value::from(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_decode() {
        let check = |raw: &str, expected: Option<&str>| {
            assert_eq!(decode_segment(raw).as_deref(), expected, "{raw}");
        };
        check("img-1", Some("img-1"));
        check("cat%20%C3%BC.jpg", Some("cat ü.jpg"));
        check("a%2Fb", Some("a/b"));
        check("100%", None);
        check("%zz", None);
        check("%ff", None);
    }

    #[test]
    fn seconds_are_whole_when_they_can_be() {
        assert_eq!(seconds(7_200_000.0), Value::from(7200));
        assert_eq!(seconds(480_000.0), Value::from(480));
        assert_eq!(seconds(1_500.0), Value::from(1.5));
        assert_eq!(seconds(1_000.0 / 3.0), Value::from(0.333));
        assert_eq!(seconds(200_000.0 / 3.0), Value::from(66.667));
        assert_eq!(seconds(0.0), Value::from(0));
    }
}
