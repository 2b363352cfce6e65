//! `GET /v1/projects/{p}/realtime`: the last thirty minutes, minute by minute (events,
//! errors, p95 duration; the current minute partial), the visitors of the last five
//! minutes, and the top routes and sources of the thirty minutes. `no-store`: it is
//! stale a minute later.
//!
//! Minute rows answer all but the visitors, which come from at most
//! [`realtime::VISITOR_ROWS_BUDGET`] raw events (`truncated` past it); so the answer's
//! cost does not grow with the project's volume (`tally_storage::read::realtime`).
//! Minute rows take no filter: with `filter` parameters the thirty minutes' raw events
//! answer, within the row budget of filtered reads, exactly or from a sample of users
//! (`tally_storage::filtered::realtime`), and the answer says which.

use serde_json::{Value, json};
use tally_core::realtime::{self, Realtime, TopValue};
use tally_core::time::{MINUTE_MS, format_ms};
use tally_edge::ApiError;
use worker::{Request, Response};

use super::filtered::describe_path;
use super::scope;
use crate::edge::params::Params;
use crate::edge::respond::json_value;
use crate::edge::{self, RequestEnv, now_ms, store};

/// `GET /v1/projects/{p}/realtime`.
pub async fn get(req: &Request, env: &RequestEnv, project: &str) -> Result<Response, ApiError> {
    let filters = Params::of(req)?.filters()?;
    // The admin token reads any slug: an unknown one is a 404, not thirty empty minutes.
    scope::project(env, project).await?;
    let store = store(env)?;
    let (view, path) = edge::filtered::realtime(env, &store, project, &filters, now_ms()).await?;
    let mut answer = body(project, &view);
    describe_path(&mut answer, &filters, path);
    json_value(200, &answer, Some("no-store"))
}

fn top_json(list: &[TopValue]) -> Vec<Value> {
    list.iter()
        .map(|t| json!({"value": t.value, "events": t.events, "errors": t.errors}))
        .collect()
}

/// The answer's JSON.
pub fn body(project: &str, view: &Realtime) -> Value {
    let w = &view.window;
    let minutes: Vec<Value> = view
        .minutes
        .iter()
        .map(|m| {
            json!({
                "start": format_ms(m.start),
                "events": m.events,
                "errors": m.errors,
                "p95_ms": m.p95_ms,
                "partial": m.partial,
            })
        })
        .collect();
    json!({
        "project": project,
        "now": format_ms(w.now_ms),
        "from": format_ms(w.first_minute),
        "to": format_ms(w.end_ms()),
        "minutes": minutes,
        "visitors": {
            "count": view.visitors.count,
            "window_minutes": realtime::VISITOR_WINDOW_MS / MINUTE_MS,
            "events_read": view.visitors.events_read,
            "budget": realtime::VISITOR_ROWS_BUDGET,
            "truncated": view.visitors.truncated,
        },
        "top": {
            "window_minutes": realtime::MINUTES,
            "routes": top_json(&view.routes),
            "sources": top_json(&view.sources),
        },
    })
}

#[cfg(test)]
mod tests {
    use tally_core::realtime::{Minute, Visitors, Window};

    use super::*;

    #[test]
    fn the_answer_names_every_minute_the_partial_one_and_a_truncated_count() {
        // 2026-01-01T12:00:30Z.
        let window = Window::ending_at(1_767_268_830_000);
        let mut minutes = realtime::minutes(&window, []);
        minutes[29] = Minute {
            events: 4,
            errors: 1,
            p95_ms: Some(12.5),
            ..minutes[29].clone()
        };
        let view = Realtime {
            window,
            minutes,
            visitors: Visitors {
                count: 2,
                events_read: 10_000,
                truncated: true,
            },
            routes: vec![TopValue {
                value: "/a".into(),
                events: 4,
                errors: 1,
            }],
            sources: Vec::new(),
        };
        let got = body("demo", &view);
        assert_eq!(got["from"], "2026-01-01T11:31:00.000Z");
        assert_eq!(got["to"], "2026-01-01T12:01:00.000Z");
        assert_eq!(got["now"], "2026-01-01T12:00:30.000Z");
        let minutes = got["minutes"].as_array().unwrap();
        assert_eq!(minutes.len(), 30);
        assert_eq!(
            minutes[29],
            json!({"start": "2026-01-01T12:00:00.000Z", "events": 4, "errors": 1,
                   "p95_ms": 12.5, "partial": true})
        );
        assert_eq!(
            minutes[0],
            json!({"start": "2026-01-01T11:31:00.000Z", "events": 0, "errors": 0,
                   "p95_ms": null, "partial": false})
        );
        assert_eq!(
            got["visitors"],
            json!({"count": 2, "window_minutes": 5, "events_read": 10_000,
                   "budget": 10_000, "truncated": true})
        );
        assert_eq!(
            got["top"],
            json!({"window_minutes": 30, "routes": [{"value": "/a", "events": 4, "errors": 1}],
                   "sources": []})
        );
    }
}
