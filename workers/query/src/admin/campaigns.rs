//! `PUT /v1/admin/projects/{p}/campaigns/{campaign}`: pauses or resumes a campaign by
//! hand (an alert rule with `pause_campaign` pauses it when it fires; only a person
//! resumes it).

use crate::edge::Store;
use serde::Deserialize;
use tally_edge::ApiError;
use tally_storage::alerts::AlertWrite;
use tally_storage::{Write, Writer};
use worker::Response;

use super::projects::existing;
use crate::edge::error::internal;
use crate::edge::respond::json_value;
use crate::edge::shapes::{self, campaign_name};

/// Longest reason kept with a state, in characters.
const MAX_REASON_CHARS: usize = 500;

/// What a `PUT` of a campaign's state asks for.
#[derive(Debug, PartialEq, Eq)]
pub struct SetState {
    pub paused: bool,
    pub reason: Option<String>,
}

/// Reads `{"status": "active" | "paused", "reason"?: "..."}`.
///
/// # Errors
///
/// 400 `invalid_campaign_state` saying what is wrong.
pub fn parse_state(body: &[u8]) -> Result<SetState, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        status: String,
        #[serde(default)]
        reason: Option<String>,
    }
    let bad = |m: String| ApiError::bad_request("invalid_campaign_state", m);
    let body: Body = tally_core::json::from_object(body).map_err(|e| {
        bad(format!(
            "send {{\"status\": \"active\" | \"paused\", \"reason\": \"...\"}}: {e}"
        ))
    })?;
    let paused = match body.status.as_str() {
        "paused" => true,
        "active" => false,
        other => {
            return Err(bad(format!(
                "status must be \"active\" or \"paused\", not {other:?}"
            )));
        }
    };
    let reason = body
        .reason
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty());
    if reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > MAX_REASON_CHARS)
    {
        return Err(bad(format!(
            "reason must be at most {MAX_REASON_CHARS} characters"
        )));
    }
    Ok(SetState { paused, reason })
}

/// `PUT /v1/admin/projects/{p}/campaigns/{campaign}`: pauses or resumes a campaign by
/// hand, and answers it as it now is. Setting the state it already has by hand changes
/// nothing.
pub async fn set(
    store: &Store,
    slug: &str,
    segment: &str,
    body: &[u8],
    now_ms: i64,
) -> Result<Response, ApiError> {
    existing(store, slug).await?;
    let campaign = campaign_name(segment)?;
    let state = parse_state(body)?;
    store
        .commit(&[Write::Alert(AlertWrite::SetCampaign {
            project: slug,
            campaign: &campaign,
            paused: state.paused,
            reason: state.reason.as_deref(),
            alert_id: None,
            now_ms,
        })])
        .await
        .map_err(internal)?;
    let now = shapes::campaign(store, slug, &campaign, now_ms).await?;
    let mut response = json_value(200, &now.to_json(), None)?;
    response
        .headers_mut()
        .set("cache-control", "no-store")
        .map_err(internal)?;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_bodies() {
        let check = |body: &str, expected: Result<(bool, Option<&str>), &str>| {
            let got = parse_state(body.as_bytes());
            match expected {
                Ok((paused, reason)) => assert_eq!(
                    got,
                    Ok(SetState {
                        paused,
                        reason: reason.map(str::to_owned)
                    }),
                    "{body}"
                ),
                Err(fragment) => {
                    let e = got.expect_err(body);
                    assert_eq!((e.status, e.code), (400, "invalid_campaign_state"));
                    assert!(e.message.contains(fragment), "{body}: {}", e.message);
                }
            }
        };
        check(r#"{"status": "paused"}"#, Ok((true, None)));
        check(
            r#"{"status": "paused", "reason": " budget spent "}"#,
            Ok((true, Some("budget spent"))),
        );
        check(r#"{"status": "active", "reason": null}"#, Ok((false, None)));
        check(r#"{"status": "active", "reason": ""}"#, Ok((false, None)));
        check(r#"{"status": "stopped"}"#, Err("\"active\" or \"paused\""));
        check(r#"{}"#, Err("missing field `status`"));
        check(r#"{"status": "paused", "why": "x"}"#, Err("unknown field"));
        check("nope", Err("send {\"status\""));
        // serde reads a struct from an array of its fields; a state is an object.
        check(r#"["paused", null]"#, Err("expected a JSON object"));
        let long = format!(r#"{{"status": "paused", "reason": "{}"}}"#, "x".repeat(501));
        check(&long, Err("at most 500"));
    }
}
