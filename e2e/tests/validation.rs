//! Bad input gets a clear JSON error with the right status, and stores nothing.

use serde_json::{Value, json};

use crate::support::*;

fn assert_error(answer: &Answer, status: u16, code: &str) {
    assert_eq!(answer.status, status, "{}", answer.json);
    assert_eq!(answer.json["error"]["code"], code, "{}", answer.json);
    let message = answer.json["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.len() > 10,
        "the message says what to fix: {message:?}"
    );
}

#[test]
fn malformed_requests_get_distinct_errors() {
    let ingest = format!("{}/v1/events", url("ingest"));
    assert_error(
        &post(&ingest, "text/plain", "[]"),
        415,
        "unsupported_media_type",
    );
    assert_error(
        &post(&ingest, "application/json", "[{"),
        400,
        "malformed_json",
    );
    assert_error(&post(&ingest, "application/json", "[]"), 400, "empty_batch");
    assert_error(
        &post(&ingest, "application/json", "{\"e\":1}"),
        400,
        "invalid_batch",
    );
    let many = Value::Array(
        (0..1001)
            .map(|_| json!({"project": "p", "name": "n"}))
            .collect(),
    );
    assert_error(&send_events(&many), 413, "too_many_events");
    let huge = format!(
        "[{{\"project\":\"p\",\"name\":\"{}\"}}]",
        "x".repeat(1_100_000)
    );
    assert_error(
        &post(&ingest, "application/json", &huge),
        413,
        "body_too_large",
    );
    assert_error(&get(&ingest), 405, "method_not_allowed");
    assert_error(&get(&format!("{}/nope", url("ingest"))), 404, "not_found");
}

#[test]
fn a_mixed_batch_stores_only_the_good_events() {
    let project = unique("mixed");
    let answer = send_events(&json!([
        {"project": project, "name": "ok"},
        {"project": project, "name": "bad", "status": 42},
        {"project": project, "nmae": "typo"},
        {"project": project, "name": "ok", "timestamp": "yesterday"},
        {"project": project, "name": "future", "timestamp": "2999-01-01T00:00:00Z"},
    ]));
    assert_eq!(answer.status, 202, "{}", answer.json);
    assert_eq!(answer.json["accepted"], 2);
    assert_eq!(answer.json["rejected"], 3);
    let results = &answer.json["results"];
    assert_eq!(results[0]["status"], "accepted");
    assert_eq!(results[1]["status"], "rejected");
    assert_eq!(results[1]["error"]["field"], "status");
    assert!(
        results[2]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `nmae`"),
        "{results}"
    );
    assert_eq!(results[3]["error"]["field"], "timestamp");
    assert_eq!(
        results[4]["warnings"][0]["code"], "clamped_timestamp",
        "{results}"
    );
    wait_for_count(&project, 2);
}

#[test]
fn a_batch_with_no_valid_event_is_refused_and_stores_nothing() {
    let project = unique("allbad");
    let answer = send_events(&json!([{"project": project}, {"project": project, "name": ""}]));
    assert_error(&answer, 400, "no_valid_events");
    assert_eq!(answer.json["rejected"], 2);
    // A marker proves the queue moved on; the refused events never arrive.
    send_events(&json!([{"project": project, "name": "marker"}]));
    wait_for_count(&project, 1);
}

#[test]
fn the_query_api_rejects_bad_input_clearly() {
    let query = url("query");
    assert_error(
        &get(&format!("{query}/v1/projects/Bad_Slug/overview")),
        400,
        "invalid_project",
    );
    assert_error(
        &get(&format!("{query}/v1/projects/demo/overview?days=0")),
        400,
        "invalid_range",
    );
    assert_error(
        &get(&format!("{query}/v1/projects/demo/overview?days=x")),
        400,
        "invalid_range",
    );
    assert_error(
        &get(&format!(
            "{query}/v1/projects/demo/overview?from=2025-01-10&to=2025-01-01"
        )),
        400,
        "invalid_range",
    );
    assert_error(
        &get(&format!(
            "{query}/v1/projects/demo/overview?days=7&from=2025-01-01"
        )),
        400,
        "invalid_range",
    );
    assert_error(&get(&format!("{query}/v2/whatever")), 404, "not_found");
    let ok = get(&format!("{query}/v1/projects/demo/overview?days=7"));
    assert_eq!(ok.status, 200, "{}", ok.json);
    assert_eq!(ok.header("cache-control"), Some("private, max-age=60"));
}
