//! The admin API's alert rules, `/v1/admin/projects/{p}/alert-rules[/{id}]`: list,
//! create, show, change, delete.
//!
//! A rule's webhook secret appears in the answer that creates it and in the answer to a
//! change that replaced it (a rotation, or a new webhook), never again: listings show
//! its first characters. The aggregator evaluates the rules and records the alerts; this
//! worker only writes rule definitions.

use crate::edge::Store;
use serde_json::json;
use tally_core::alerts::{Fresh, ID_BYTES, MAX_RULES_PER_PROJECT, SECRET_BYTES, parse_input};
use tally_edge::ApiError;
use tally_storage::alerts::{AlertWrite, RuleEntry};
use tally_storage::{Write, Writer};
use worker::Response;

use super::projects::existing;
use crate::edge::error::internal;
use crate::edge::respond::json_value;
use crate::edge::shapes::{rule_json, rule_list, rules};

fn unknown_rule(slug: &str, id: &str) -> ApiError {
    ApiError::new(
        404,
        "unknown_rule",
        format!(
            "project {slug:?} has no alert rule {id:?}; list them with \
             GET /v1/admin/projects/{slug}/alert-rules"
        ),
    )
}

async fn entry(store: &Store, slug: &str, id: &str) -> Result<RuleEntry, ApiError> {
    rules(store, slug)
        .await?
        .into_iter()
        .find(|e| e.rule.id == id)
        .ok_or_else(|| unknown_rule(slug, id))
}

/// `GET /v1/admin/projects/{p}/alert-rules`.
pub async fn list_rules(store: &Store, slug: &str) -> Result<Response, ApiError> {
    existing(store, slug).await?;
    json_value(200, &rule_list(&rules(store, slug).await?), None)
}

/// `POST /v1/admin/projects/{p}/alert-rules`: a new rule from a
/// [`tally_core::alerts::RuleInput`] body; the answer shows its webhook secret, once.
pub async fn create_rule(
    store: &Store,
    slug: &str,
    body: &[u8],
    now_ms: i64,
) -> Result<Response, ApiError> {
    existing(store, slug).await?;
    let mut fresh = Fresh {
        id: [0; ID_BYTES],
        secret: [0; SECRET_BYTES],
    };
    getrandom::fill(&mut fresh.id).map_err(internal)?;
    getrandom::fill(&mut fresh.secret).map_err(internal)?;
    let rule = parse_input(body)?.create(slug, &fresh, now_ms)?;
    let changed = store
        .commit(&[Write::Alert(AlertWrite::InsertRule {
            rule: &rule,
            max_rules: MAX_RULES_PER_PROJECT,
        })])
        .await
        .map_err(internal)?;
    if changed.first() != Some(&1) {
        return Err(ApiError::new(
            409,
            "too_many_rules",
            format!(
                "project {slug:?} has {MAX_RULES_PER_PROJECT} alert rules, the most a project \
                 may have; delete one first"
            ),
        ));
    }
    let entry = RuleEntry {
        rule,
        status: Default::default(),
        last: None,
        error: None,
    };
    json_value(201, &json!({ "rule": rule_json(&entry, true) }), None)
}

/// `GET /v1/admin/projects/{p}/alert-rules/{id}`.
pub async fn get_rule(store: &Store, slug: &str, id: &str) -> Result<Response, ApiError> {
    existing(store, slug).await?;
    let entry = entry(store, slug, id).await?;
    json_value(200, &json!({ "rule": rule_json(&entry, false) }), None)
}

/// `PATCH /v1/admin/projects/{p}/alert-rules/{id}`: changes the fields given. With
/// `"rotate_secret": true` the webhook gets a new secret; a webhook added to a rule
/// that had none gets one too. The answer shows the secret only when it changed.
pub async fn update_rule(
    store: &Store,
    slug: &str,
    id: &str,
    body: &[u8],
    now_ms: i64,
) -> Result<Response, ApiError> {
    existing(store, slug).await?;
    let input = parse_input(body)?;
    let mut entry = entry(store, slug, id).await?;
    let rule = &mut entry.rule;
    let before = rule.webhook.as_ref().map(|w| w.secret.clone());
    let rotate = input.rotates_secret();
    if rotate && before.is_none() {
        return Err(ApiError::bad_request(
            "invalid_rule",
            "rotate_secret: the rule has no webhook, so no secret to replace",
        ));
    }
    // A fresh secret for a rotation, or for a webhook the change may add.
    let fresh = if rotate || before.is_none() {
        let mut random = [0u8; SECRET_BYTES];
        getrandom::fill(&mut random).map_err(internal)?;
        Some(tally_core::alerts::new_secret(&random))
    } else {
        None
    };
    input.apply(rule, fresh.as_deref())?;
    rule.updated_at = now_ms;
    let changed = store
        .commit(&[Write::Alert(AlertWrite::UpdateRule { rule })])
        .await
        .map_err(internal)?;
    if changed.first() != Some(&1) {
        // Deleted since it was read.
        return Err(unknown_rule(slug, id));
    }
    let after = rule.webhook.as_ref().map(|w| &w.secret);
    let show_secret = after.is_some() && after != before.as_ref();
    json_value(
        200,
        &json!({ "rule": rule_json(&entry, show_secret) }),
        None,
    )
}

/// `DELETE /v1/admin/projects/{p}/alert-rules/{id}`: the rule goes; its alerts stay in
/// the history.
pub async fn delete_rule(store: &Store, slug: &str, id: &str) -> Result<Response, ApiError> {
    existing(store, slug).await?;
    let entry = entry(store, slug, id).await?;
    let changed = store
        .commit(&[Write::Alert(AlertWrite::DeleteRule { project: slug, id })])
        .await
        .map_err(internal)?;
    if changed.first() != Some(&1) {
        return Err(unknown_rule(slug, id));
    }
    json_value(
        200,
        &json!({ "deleted": true, "rule": rule_json(&entry, false) }),
        None,
    )
}
