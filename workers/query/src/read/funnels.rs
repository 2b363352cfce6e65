//! `GET /v1/projects/{p}/funnels?steps=a,b,c&window=1d`: how many users went through
//! the steps (event names, 2 to 10, in order) within the window of their first step
//! (`30m`, `12h`, `7d`; default `1d`), per step, with the conversion from the first
//! step and from the step before.
//!
//! Funnels need each user's events in order, which rollups do not keep, so this reads
//! raw events, bounded by raw retention (the range starts no earlier than the project's
//! retention allows; `from` says where it started) and by the funnel's row budget
//! (`FUNNEL_ROW_BUDGET`): the steps' events exactly when they fit, else those of a
//! sample of users (`tally_storage::funnels`). `filter` parameters keep only the events that
//! meet every filter as steps. Only events with a `user` count; all steps must fall in
//! the range.

use serde_json::{Value, json};
use tally_core::funnel::{self, DEFAULT_WINDOW, MAX_STEPS, MIN_STEPS};
use tally_core::validate::MAX_NAME_CHARS;
use tally_edge::ApiError;
use tally_storage::funnels::{self, Funnel};
use worker::{Request, Response};

use super::filtered::describe_served;
use super::scope;
use crate::edge::error::{internal, refused};
use crate::edge::params::{Params, within_retention};
use crate::edge::{self, RequestEnv, now_ms, respond, store};

/// Seconds a client may reuse an answer.
const MAX_AGE_S: u32 = 300;

pub async fn get(req: &Request, env: &RequestEnv, project: &str) -> Result<Response, ApiError> {
    let params = Params::of(req)?;
    let filters = params.filters()?;
    let now = now_ms();
    let asked = params.range(now)?;
    let steps = steps(params.get("steps"))?;
    let window_text = params.get("window").unwrap_or(DEFAULT_WINDOW);
    let window_ms = funnel::parse_window(window_text).map_err(|e| refused("invalid_window", e))?;
    let settings = scope::project(env, project).await?;
    let range = within_retention(asked, settings.retention_days, now)
        .ok_or_else(|| scope::past_retention(settings.retention_days))?;
    let store = store(env)?;
    let budget = edge::filtered::funnel_row_budget(env);
    let counted = funnels::funnel(
        &store,
        project,
        range.from_ms,
        range.to_ms,
        &steps,
        window_ms,
        &filters,
        budget,
    )
    .await
    .map_err(internal)?;
    let (steps, path) = match counted {
        Funnel::Counted { steps, path, .. } => (steps, path),
        Funnel::OverBudget { events } => {
            return Err(edge::filtered::over_budget(events, budget));
        }
    };
    let list: Vec<Value> = steps
        .iter()
        .map(|step| {
            json!({
                "name": step.name,
                "users": step.users,
                "conversion": step.conversion,
                "from_previous": step.from_previous,
            })
        })
        .collect();
    let mut body = json!({
        "project": project,
        "window": window_text,
        "window_ms": window_ms,
        "retention_days": settings.retention_days,
        "steps": list,
    });
    describe_served(&mut body, &filters, path, range);
    respond::json(req, body.to_string(), MAX_AGE_S)
}

/// The `steps` parameter: comma-separated event names.
///
/// # Errors
///
/// 400 `invalid_steps` saying what is wrong.
pub fn steps(param: Option<&str>) -> Result<Vec<String>, ApiError> {
    let bad = |m: String| ApiError::bad_request("invalid_steps", m);
    let text = param
        .ok_or_else(|| bad("name the funnel's steps in order: steps=open,click,purchase".into()))?;
    let steps: Vec<String> = text.split(',').map(|s| s.trim().to_owned()).collect();
    if !(MIN_STEPS..=MAX_STEPS).contains(&steps.len()) {
        return Err(bad(format!(
            "a funnel has {MIN_STEPS} to {MAX_STEPS} steps, not {}",
            steps.len()
        )));
    }
    if let Some(step) = steps
        .iter()
        .find(|s| s.is_empty() || s.chars().count() > MAX_NAME_CHARS)
    {
        return Err(bad(format!(
            "step {step:?} is not an event name (1 to {MAX_NAME_CHARS} characters)"
        )));
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_lists() {
        assert_eq!(
            steps(Some("open, click,buy")).unwrap(),
            ["open", "click", "buy"]
        );
        for (bad, fragment) in [
            (None, "name the funnel's steps"),
            (Some("open"), "2 to 10 steps, not 1"),
            (Some("a,b,c,d,e,f,g,h,i,j,k"), "not 11"),
            (Some("open,,buy"), "step \"\" is not"),
        ] {
            let err = steps(bad).unwrap_err();
            assert_eq!(err.code, "invalid_steps");
            assert!(err.message.contains(fragment), "{}", err.message);
        }
    }
}
