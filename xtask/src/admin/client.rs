//! A small typed client for the query worker's admin API (projects, write keys and read
//! tokens, alert rules and campaign states) and the read API's alert history and
//! campaigns (the admin token reads every project), used by `cargo xtask project`,
//! `alert`, `campaign`, `dev` and `bench`.
//!
//! Every call sends `Authorization: Bearer <admin token>`; an error answer becomes an
//! [`ApiError`] that quotes the API's code and message.

use std::fmt;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Map, Value, json};
use tally_core::alerts::{CampaignStatus, State};

use crate::stack::{agent, segment, snippet};

/// How long one admin call may take.
const TIMEOUT: Duration = Duration::from_secs(30);

// Core's types, as the API speaks them: `as_str` and `parse` are its names.
pub use tally_core::project::{KeyKind, RateLimit};

/// The code of the 409 answer to creating a project whose slug is taken.
pub const PROJECT_EXISTS: &str = "project_exists";

/// An error answer of the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The request, as `METHOD /path`.
    pub request: String,
    pub status: u16,
    /// The API's error code; empty when the body was not the API's JSON error.
    pub code: String,
    pub message: String,
}

impl ApiError {
    /// Reads an error answer; a body that is not the API's JSON error is quoted as is.
    pub fn from_body(request: &str, status: u16, body: &str) -> Self {
        let parsed: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let error = &parsed["error"];
        let (code, message) = match error["code"].as_str() {
            Some(code) => (
                code.to_owned(),
                error["message"].as_str().unwrap_or_default().to_owned(),
            ),
            None => (String::new(), snippet(body)),
        };
        Self {
            request: request.to_owned(),
            status,
            code,
            message,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.code.is_empty() {
            write!(
                f,
                "{} answered {} (not the API's JSON error): {}",
                self.request, self.status, self.message
            )?;
        } else {
            write!(
                f,
                "{} answered {} {}: {}",
                self.request, self.status, self.code, self.message
            )?;
        }
        if matches!(self.status, 401 | 403) {
            write!(
                f,
                "\n  hint: the admin token was refused; it must be the query worker's \
                 ADMIN_TOKEN (TALLY_ADMIN_TOKEN, or .tally/dev/admin_token for the dev stack)"
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

/// Whether `error` is an answer of the admin API with this code.
pub fn has_code(error: &anyhow::Error, code: &str) -> bool {
    error
        .downcast_ref::<ApiError>()
        .is_some_and(|e| e.code == code)
}

/// A project's settings. `None` leaves a setting as it is (on creation: at its default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    pub retention_days: Option<u32>,
    pub allowed_origins: Option<Vec<String>>,
    pub rate_limit: Option<RateLimit>,
    pub public_dashboard: Option<bool>,
    pub public_badges: Option<bool>,
    /// `Some(None)` turns keyless Plausible events off; `Some(Some(domain))` on.
    pub plausible_domain: Option<Option<String>>,
    /// The data shard of a new project (creation only); none: the least loaded.
    pub shard: Option<u32>,
}

impl Settings {
    /// Whether no setting is given.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The settings given, as members of a JSON body.
    fn to_json(&self) -> Map<String, Value> {
        let mut body = Map::new();
        if let Some(days) = self.retention_days {
            body.insert("retention_days".into(), json!(days));
        }
        if let Some(origins) = &self.allowed_origins {
            body.insert("allowed_origins".into(), json!(origins));
        }
        if let Some(tier) = self.rate_limit {
            body.insert("rate_limit".into(), json!(tier.as_str()));
        }
        if let Some(public) = self.public_dashboard {
            body.insert("public_dashboard".into(), json!(public));
        }
        if let Some(badges) = self.public_badges {
            body.insert("public_badges".into(), json!(badges));
        }
        if let Some(domain) = &self.plausible_domain {
            body.insert("plausible_domain".into(), json!(domain));
        }
        if let Some(shard) = self.shard {
            body.insert("shard".into(), json!(shard));
        }
        body
    }
}

/// A project as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub slug: String,
    pub retention_days: u64,
    pub allowed_origins: Vec<String>,
    pub rate_limit: RateLimit,
    /// Whether the dashboard is open to anyone (false from servers that predate it).
    pub public_dashboard: bool,
    /// Whether the badges answer for anyone (false from servers that predate it).
    pub public_badges: bool,
    /// The domain under which `/api/event` takes keyless events (none from servers that
    /// predate it).
    pub plausible_domain: Option<String>,
    /// The data shard it lives on (0 from servers that predate shards).
    pub shard: u64,
    pub created_at: String,
}

impl Project {
    /// Reads a project object of the API.
    pub fn from_json(v: &Value) -> Result<Self> {
        let what = "project";
        let origins = v["allowed_origins"]
            .as_array()
            .and_then(|a| {
                a.iter()
                    .map(|o| o.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
            })
            .with_context(|| {
                format!("the admin API sent a project whose `allowed_origins` is not a list of strings: {v}")
            })?;
        Ok(Self {
            slug: string(v, what, "slug")?,
            retention_days: v["retention_days"].as_u64().with_context(|| {
                format!("the admin API sent a project without a whole `retention_days`: {v}")
            })?,
            allowed_origins: origins,
            rate_limit: {
                let tier = string(v, what, "rate_limit")?;
                RateLimit::parse(&tier).with_context(|| {
                    format!("the admin API sent a project of unknown rate limit {tier:?}: {v}")
                })?
            },
            public_dashboard: v["public_dashboard"].as_bool().unwrap_or(false),
            public_badges: v["public_badges"].as_bool().unwrap_or(false),
            plausible_domain: v["plausible_domain"].as_str().map(str::to_owned),
            shard: v["shard"].as_u64().unwrap_or(0),
            created_at: string(v, what, "created_at")?,
        })
    }
}

/// A share link of a project's dashboard, as made (with its URL, shown once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub id: String,
    pub url: String,
    pub expires_at: String,
}

/// A share link as listed: never its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareLink {
    pub id: String,
    pub created_at: String,
    pub expires_at: String,
    /// `active`, `expired` or `revoked`.
    pub status: String,
    pub revoked_at: Option<String>,
}

impl ShareLink {
    /// Reads a share link object of the API.
    pub fn from_json(v: &Value) -> Result<Self> {
        let what = "share link";
        Ok(Self {
            id: string(v, what, "id")?,
            created_at: string(v, what, "created_at")?,
            expires_at: string(v, what, "expires_at")?,
            status: string(v, what, "status")?,
            revoked_at: optional_string(v, what, "revoked_at")?,
        })
    }
}

/// What people call a key of this kind.
pub fn key_label(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::Write => "write key",
        KeyKind::Read => "read token",
    }
}

/// A write key or read token as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub id: u64,
    pub kind: KeyKind,
    pub name: Option<String>,
    /// The first characters of the secret, to recognise it by (`tw_ab12cd`).
    pub prefix: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
    /// The whole secret: only in the answer that created the key.
    pub secret: Option<String>,
}

impl Key {
    /// Reads a key object of the API.
    pub fn from_json(v: &Value) -> Result<Self> {
        let what = "key";
        let kind = string(v, what, "kind")?;
        Ok(Self {
            id: v["id"]
                .as_u64()
                .with_context(|| format!("the admin API sent a key without a whole `id`: {v}"))?,
            kind: KeyKind::parse(&kind).with_context(|| {
                format!("the admin API sent a key of unknown kind {kind:?}: {v}")
            })?,
            name: optional_string(v, what, "name")?,
            prefix: string(v, what, "prefix")?,
            created_at: string(v, what, "created_at")?,
            revoked_at: optional_string(v, what, "revoked_at")?,
            secret: optional_string(v, what, "secret")?,
        })
    }

    /// The secret of a key just created.
    pub fn secret(&self) -> Result<&str> {
        self.secret.as_deref().with_context(|| {
            format!(
                "the admin API did not return the secret of the new {} {}",
                key_label(self.kind),
                self.id
            )
        })
    }
}

/// An alert rule as the API shows it: the fields `cargo xtask alert` prints, and the
/// whole JSON object for `show`.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRule {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    pub state: State,
    pub state_since: Option<String>,
    pub last_value: Option<f64>,
    pub evaluated_at: Option<String>,
    /// Why the evaluation at `evaluated_at` failed.
    pub last_error: Option<String>,
    /// The webhook secret: only in the answers that create or replace it.
    pub secret: Option<String>,
    pub json: Value,
}

impl AlertRule {
    /// Reads a rule object of the API.
    pub fn from_json(v: &Value) -> Result<Self> {
        let what = "alert rule";
        Ok(Self {
            id: string(v, what, "id")?,
            name: string(v, what, "name")?,
            enabled: v["enabled"].as_bool().with_context(|| {
                format!("the admin API sent an alert rule without a boolean `enabled`: {v}")
            })?,
            state: {
                let state = string(v, what, "state")?;
                State::parse(&state).with_context(|| {
                    format!("the admin API sent an alert rule whose state is {state:?}: {v}")
                })?
            },
            state_since: optional_string(v, what, "state_since")?,
            last_value: v["last_value"].as_f64(),
            evaluated_at: optional_string(v, what, "evaluated_at")?,
            last_error: optional_string(v, what, "last_error")?,
            secret: optional_string(&v["webhook"], what, "secret")?,
            json: v.clone(),
        })
    }

    /// What the rule watches, in one line: `ratio click/open < 0.01 over 15 min,
    /// campaign=spring`.
    pub fn condition(&self) -> String {
        let v = &self.json;
        let metric = &v["metric"];
        let kind = metric["type"].as_str().unwrap_or("?");
        let measured = match (kind, metric["name"].as_str()) {
            ("ratio", _) => format!(
                "ratio {}/{}",
                metric["numerator"].as_str().unwrap_or("?"),
                metric["denominator"].as_str().unwrap_or("?")
            ),
            ("count", Some(name)) => format!("count {name}"),
            (kind, _) => kind.to_owned(),
        };
        let mut text = format!(
            "{measured} {} {} over {} min",
            v["comparator"].as_str().unwrap_or("?"),
            v["threshold"],
            v["window_minutes"]
        );
        if let (Some(d), Some(value)) = (
            v["filter"]["dimension"].as_str(),
            v["filter"]["value"].as_str(),
        ) {
            text.push_str(&format!(", {d}={value}"));
        }
        text
    }
}

/// One attempt to deliver an alert's webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub at: String,
    pub status: Option<u64>,
    pub error: Option<String>,
}

/// A firing or resolution of the alert history.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertEvent {
    pub id: String,
    pub rule: String,
    /// `fired` or `resolved`.
    pub kind: String,
    pub at: String,
    pub value: Option<f64>,
    pub volume: u64,
    /// `none`, `pending`, `delivered` or `failed`.
    pub delivery: String,
    pub attempts: Vec<Attempt>,
    pub campaign_paused: Option<String>,
}

impl AlertEvent {
    /// Reads an alert object of the read API.
    pub fn from_json(v: &Value) -> Result<Self> {
        let what = "alert";
        let attempts = list(v, "attempts")?
            .iter()
            .map(|a| {
                Ok(Attempt {
                    at: string(a, "delivery attempt", "at")?,
                    status: a["status"].as_u64(),
                    error: optional_string(a, "delivery attempt", "error")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let rule = match optional_string(v, what, "rule_name")? {
            Some(name) => name,
            None => format!("{} (deleted)", string(v, what, "rule_id")?),
        };
        Ok(Self {
            id: string(v, what, "id")?,
            rule,
            kind: string(v, what, "kind")?,
            at: string(v, what, "at")?,
            value: v["value"].as_f64(),
            volume: v["volume"].as_u64().unwrap_or(0),
            delivery: string(v, what, "delivery")?,
            attempts,
            campaign_paused: optional_string(v, what, "campaign_paused")?,
        })
    }
}

/// A campaign and whether it may be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Campaign {
    pub campaign: String,
    pub paused: bool,
    pub reason: Option<String>,
    pub alert_id: Option<String>,
    pub updated_at: Option<String>,
    pub events_30d: u64,
}

impl Campaign {
    /// Reads a campaign object of the API.
    pub fn from_json(v: &Value) -> Result<Self> {
        let what = "campaign";
        let status = string(v, what, "status")?;
        Ok(Self {
            campaign: string(v, what, "campaign")?,
            paused: match CampaignStatus::parse(&status) {
                Some(status) => status == CampaignStatus::Paused,
                None => bail!("the API sent a campaign whose status is {status:?}: {v}"),
            },
            reason: optional_string(v, what, "reason")?,
            alert_id: optional_string(v, what, "alert_id")?,
            updated_at: optional_string(v, what, "updated_at")?,
            events_30d: v["events_30d"].as_u64().unwrap_or(0),
        })
    }
}

/// A request to erase one person's data, and how far the aggregator has got with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erasure {
    /// 32 hex digits.
    pub id: String,
    pub project: String,
    /// Whether nothing of the person is left (`status` `done`).
    pub done: bool,
    pub requested_at: String,
    pub done_at: Option<String>,
    pub raw_deleted: u64,
    pub marks_deleted: u64,
}

impl Erasure {
    /// Reads an erasure object of the API.
    pub fn from_json(v: &Value) -> Result<Self> {
        let what = "erasure request";
        let status = string(v, what, "status")?;
        let count = |field: &str| {
            v[field].as_u64().with_context(|| {
                format!("the admin API sent an erasure request without a whole `{field}`: {v}")
            })
        };
        Ok(Self {
            id: string(v, what, "id")?,
            project: string(v, what, "project")?,
            done: match status.as_str() {
                "done" => true,
                "pending" => false,
                _ => bail!("the admin API sent an erasure request whose status is {status:?}: {v}"),
            },
            requested_at: string(v, what, "requested_at")?,
            done_at: optional_string(v, what, "done_at")?,
            raw_deleted: count("raw_deleted")?,
            marks_deleted: count("marks_deleted")?,
        })
    }
}

/// A client of one query worker's admin API.
#[derive(Debug)]
pub struct Admin {
    base: String,
    token: String,
    http: ureq::Agent,
}

impl Admin {
    /// A client of the query worker at `base` (such as `http://127.0.0.1:8788`).
    pub fn new(base: &str, token: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            http: agent(TIMEOUT),
        }
    }

    /// Every project.
    pub fn projects(&self) -> Result<Vec<Project>> {
        let body = self.call(Method::Get, "/v1/admin/projects", None)?;
        list(&body, "projects")?
            .iter()
            .map(Project::from_json)
            .collect()
    }

    /// Creates a project; fails with the code [`PROJECT_EXISTS`] if the slug is taken.
    pub fn create_project(&self, slug: &str, settings: &Settings) -> Result<Project> {
        let mut body = settings.to_json();
        body.insert("slug".into(), json!(slug));
        let answer = self.call(
            Method::Post,
            "/v1/admin/projects",
            Some(Value::Object(body)),
        )?;
        Project::from_json(member(&answer, "project")?)
    }

    /// One project.
    pub fn project(&self, slug: &str) -> Result<Project> {
        let answer = self.call(Method::Get, &project_path(slug), None)?;
        Project::from_json(member(&answer, "project")?)
    }

    /// Changes the settings given, and answers the project as it now is.
    pub fn update_project(&self, slug: &str, settings: &Settings) -> Result<Project> {
        let answer = self.call(
            Method::Patch,
            &project_path(slug),
            Some(Value::Object(settings.to_json())),
        )?;
        Project::from_json(member(&answer, "project")?)
    }

    /// Creates a write key or read token; the answer holds its secret, this once.
    pub fn create_key(&self, slug: &str, kind: KeyKind, name: Option<&str>) -> Result<Key> {
        let mut body = json!({"kind": kind.as_str()});
        if let Some(name) = name {
            body["name"] = json!(name);
        }
        let path = format!("{}/keys", project_path(slug));
        let answer = self.call(Method::Post, &path, Some(body))?;
        Key::from_json(member(&answer, "key")?)
    }

    /// A project for a tool's own run (the bench, schemathesis), without a rate limit, so
    /// that its thousands of requests are never answered 429, and its write key and read
    /// token, both named `name`; on `shard`, or the least loaded one when `None`.
    pub fn unlimited_project(
        &self,
        slug: &str,
        shard: Option<u32>,
        name: &str,
    ) -> Result<(Key, Key)> {
        let off = Settings {
            rate_limit: Some(RateLimit::Off),
            shard,
            ..Settings::default()
        };
        self.create_project(slug, &off)
            .with_context(|| format!("creating project {slug} for {name}"))?;
        Ok((
            self.create_key(slug, KeyKind::Write, Some(name))?,
            self.create_key(slug, KeyKind::Read, Some(name))?,
        ))
    }

    /// A project's keys and tokens, revoked ones included, without their secrets.
    pub fn keys(&self, slug: &str) -> Result<Vec<Key>> {
        let path = format!("{}/keys", project_path(slug));
        let answer = self.call(Method::Get, &path, None)?;
        list(&answer, "keys")?.iter().map(Key::from_json).collect()
    }

    /// Revokes a key or token, and answers it with `revoked_at` set.
    pub fn revoke_key(&self, slug: &str, id: u64) -> Result<Key> {
        let path = format!("{}/keys/{id}", project_path(slug));
        let answer = self.call(Method::Delete, &path, None)?;
        Key::from_json(member(&answer, "key")?)
    }

    /// A link that shows the project's dashboard to anyone who has it, for `days` days.
    pub fn share(&self, slug: &str, days: u32) -> Result<Share> {
        let path = format!("{}/share", project_path(slug));
        let answer = self.call(Method::Post, &path, Some(json!({"expires_in_days": days})))?;
        let share = member(&answer, "share")?;
        Ok(Share {
            id: string(share, "share link", "id")?,
            url: string(share, "share link", "url")?,
            expires_at: string(share, "share link", "expires_at")?,
        })
    }

    /// A project's share links, newest first, revoked and expired ones included.
    pub fn share_links(&self, slug: &str) -> Result<Vec<ShareLink>> {
        let path = format!("{}/share", project_path(slug));
        let answer = self.call(Method::Get, &path, None)?;
        list(&answer, "share_links")?
            .iter()
            .map(ShareLink::from_json)
            .collect()
    }

    /// Revokes one share link, and answers it with `revoked_at` set.
    pub fn revoke_share(&self, slug: &str, id: &str) -> Result<ShareLink> {
        let path = format!("{}/share/{}", project_path(slug), segment(id));
        let answer = self.call(Method::Delete, &path, None)?;
        ShareLink::from_json(member(&answer, "share_link")?)
    }

    /// A project's alert rules with their state, oldest first, without secrets.
    pub fn alert_rules(&self, slug: &str) -> Result<Vec<AlertRule>> {
        let answer = self.call(Method::Get, &rules_path(slug), None)?;
        list(&answer, "rules")?
            .iter()
            .map(AlertRule::from_json)
            .collect()
    }

    /// Creates a rule from its JSON; the answer holds its webhook secret, this once.
    pub fn create_alert_rule(&self, slug: &str, rule: &Value) -> Result<AlertRule> {
        let answer = self.call(Method::Post, &rules_path(slug), Some(rule.clone()))?;
        AlertRule::from_json(member(&answer, "rule")?)
    }

    /// One rule.
    pub fn alert_rule(&self, slug: &str, id: &str) -> Result<AlertRule> {
        let path = format!("{}/{}", rules_path(slug), segment(id));
        let answer = self.call(Method::Get, &path, None)?;
        AlertRule::from_json(member(&answer, "rule")?)
    }

    /// Changes the fields of `change`; the answer holds the webhook secret if it changed.
    pub fn update_alert_rule(&self, slug: &str, id: &str, change: &Value) -> Result<AlertRule> {
        let path = format!("{}/{}", rules_path(slug), segment(id));
        let answer = self.call(Method::Patch, &path, Some(change.clone()))?;
        AlertRule::from_json(member(&answer, "rule")?)
    }

    /// Deletes a rule and answers it as it was.
    pub fn delete_alert_rule(&self, slug: &str, id: &str) -> Result<AlertRule> {
        let path = format!("{}/{}", rules_path(slug), segment(id));
        let answer = self.call(Method::Delete, &path, None)?;
        AlertRule::from_json(member(&answer, "rule")?)
    }

    /// The alert history of the last `days` days, newest first, at most `limit`.
    pub fn alerts(&self, slug: &str, days: u32, limit: u32) -> Result<Vec<AlertEvent>> {
        let path = format!(
            "/v1/projects/{}/alerts?days={days}&limit={limit}",
            segment(slug)
        );
        let answer = self.call(Method::Get, &path, None)?;
        list(&answer, "alerts")?
            .iter()
            .map(AlertEvent::from_json)
            .collect()
    }

    /// The campaigns seen in the last 30 days or whose state was ever set.
    pub fn campaigns(&self, slug: &str) -> Result<Vec<Campaign>> {
        let path = format!("/v1/projects/{}/campaigns", segment(slug));
        let answer = self.call(Method::Get, &path, None)?;
        list(&answer, "campaigns")?
            .iter()
            .map(Campaign::from_json)
            .collect()
    }

    /// One campaign.
    pub fn campaign(&self, slug: &str, campaign: &str) -> Result<Campaign> {
        let path = format!(
            "/v1/projects/{}/campaigns/{}",
            segment(slug),
            segment(campaign)
        );
        Campaign::from_json(&self.call(Method::Get, &path, None)?)
    }

    /// Pauses or resumes a campaign by hand, and answers it as it now is.
    pub fn set_campaign(
        &self,
        slug: &str,
        campaign: &str,
        paused: bool,
        reason: Option<&str>,
    ) -> Result<Campaign> {
        let path = format!("{}/campaigns/{}", project_path(slug), segment(campaign));
        let mut body = json!({"status": CampaignStatus::of(paused).name()});
        if let Some(reason) = reason {
            body["reason"] = json!(reason);
        }
        Campaign::from_json(&self.call(Method::Put, &path, Some(body))?)
    }

    /// Asks to erase the user `user_id` (the raw id events carry in `user`) from a
    /// project; the aggregator's hourly cron does it.
    pub fn forget(&self, slug: &str, user_id: &str) -> Result<Erasure> {
        let path = format!("{}/users/{}", project_path(slug), segment(user_id));
        let answer = self.call(Method::Delete, &path, None)?;
        Erasure::from_json(member(&answer, "erasure")?)
    }

    /// An erasure request and how far it got.
    pub fn erasure(&self, slug: &str, id: &str) -> Result<Erasure> {
        let path = format!("{}/erasures/{}", project_path(slug), segment(id));
        let answer = self.call(Method::Get, &path, None)?;
        Erasure::from_json(member(&answer, "erasure")?)
    }

    /// Starts moving the project to shard `to`: the move as the admin API answers it.
    pub fn start_move(&self, slug: &str, to: u32) -> Result<Value> {
        let path = format!("{}/move", project_path(slug));
        let answer = self.call(Method::Post, &path, Some(serde_json::json!({ "to": to })))?;
        member(&answer, "move").cloned()
    }

    /// The project's latest move.
    pub fn project_move(&self, slug: &str) -> Result<Value> {
        let path = format!("{}/move", project_path(slug));
        let answer = self.call(Method::Get, &path, None)?;
        member(&answer, "move").cloned()
    }

    /// Sends one request and reads its JSON answer, or its error.
    /// The project's digest and its latest run, as the admin API answers them.
    pub fn digest(&self, slug: &str) -> Result<Value> {
        self.call(Method::Get, &digest_path(slug), None)
    }

    /// Creates or replaces the project's digest from a `DigestInput` body; the answer
    /// holds the secret when it was made or rotated.
    pub fn put_digest(&self, slug: &str, body: Value) -> Result<Value> {
        self.call(Method::Put, &digest_path(slug), Some(body))
    }

    /// Deletes the project's digest.
    pub fn delete_digest(&self, slug: &str) -> Result<Value> {
        self.call(Method::Delete, &digest_path(slug), None)
    }

    fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {}", self.token);
        let request = format!("{} {path}", method.as_str());
        let sent = match method {
            Method::Get => self.http.get(&url).header("authorization", &auth).call(),
            Method::Delete => self.http.delete(&url).header("authorization", &auth).call(),
            Method::Post | Method::Patch | Method::Put => {
                let builder = match method {
                    Method::Post => self.http.post(&url),
                    Method::Put => self.http.put(&url),
                    _ => self.http.patch(&url),
                };
                builder
                    .header("authorization", &auth)
                    .header("content-type", "application/json")
                    .send(body.unwrap_or_else(|| json!({})).to_string())
            }
        };
        let mut response = sent.map_err(|e| {
            anyhow!(
                "could not reach the admin API at {} ({request}): {e}\n  hint: start the \
                 local stack with `cargo xtask dev`, or give the query worker's URL with --url",
                self.base
            )
        })?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .with_context(|| format!("reading the answer to {request}"))?;
        if !(200..300).contains(&status) {
            return Err(ApiError::from_body(&request, status, &text).into());
        }
        serde_json::from_str(&text).with_context(|| {
            format!(
                "{request} answered {status} with a body that is not JSON: {}",
                snippet(&text)
            )
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
        }
    }
}

/// The path of one project.
fn project_path(slug: &str) -> String {
    format!("/v1/admin/projects/{}", segment(slug))
}

/// The path of a project's digest.
fn digest_path(slug: &str) -> String {
    format!("{}/digest", project_path(slug))
}

/// The path of a project's alert rules.
fn rules_path(slug: &str) -> String {
    format!("{}/alert-rules", project_path(slug))
}

/// The member `name` of an answer.
fn member<'a>(answer: &'a Value, name: &str) -> Result<&'a Value> {
    match answer.get(name) {
        Some(v) if v.is_object() => Ok(v),
        _ => bail!("the admin API's answer has no `{name}` object: {answer}"),
    }
}

/// The array member `name` of an answer.
fn list<'a>(answer: &'a Value, name: &str) -> Result<&'a Vec<Value>> {
    answer[name]
        .as_array()
        .with_context(|| format!("the admin API's answer has no `{name}` list: {answer}"))
}

/// A required string member of an object of the API.
fn string(v: &Value, what: &str, field: &str) -> Result<String> {
    v[field]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("the admin API sent a {what} without a string `{field}`: {v}"))
}

/// A string member that may be null or absent.
fn optional_string(v: &Value, what: &str, field: &str) -> Result<Option<String>> {
    match &v[field] {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        other => bail!("the admin API sent a {what} whose `{field}` is {other}, not a string"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_quote_the_code_and_message() {
        let e = ApiError::from_body(
            "POST /v1/admin/projects",
            409,
            r#"{"error":{"code":"project_exists","message":"project demo exists"}}"#,
        );
        assert_eq!(e.code, "project_exists");
        assert_eq!(
            e.to_string(),
            "POST /v1/admin/projects answered 409 project_exists: project demo exists"
        );
        let error = anyhow::Error::from(e).context("creating demo");
        assert!(has_code(&error, PROJECT_EXISTS));
        assert!(!has_code(&error, "unknown_project"));
        assert!(!has_code(&anyhow!("other"), PROJECT_EXISTS));
    }

    #[test]
    fn refused_tokens_get_a_hint_and_other_bodies_are_quoted() {
        let e = ApiError::from_body(
            "GET /v1/admin/projects",
            401,
            r#"{"error":{"code":"unauthorized","message":"bad token"}}"#,
        );
        assert!(e.to_string().contains("hint: the admin token was refused"));
        let e = ApiError::from_body("GET /v1/admin/projects", 502, "<html>\n bad gateway</html>");
        assert_eq!(e.code, "");
        assert_eq!(
            e.to_string(),
            "GET /v1/admin/projects answered 502 (not the API's JSON error): <html> bad gateway</html>"
        );
        assert_eq!(snippet(""), "(empty body)");
        assert_eq!(snippet(&"x".repeat(300)).chars().count(), 201);
    }

    #[test]
    fn reads_projects_and_keys() {
        let p = Project::from_json(&json!({"slug": "demo", "retention_days": 90,
            "allowed_origins": ["*"], "rate_limit": "standard",
            "created_at": "2025-01-02T03:04:05Z"}))
        .unwrap();
        assert_eq!(p.slug, "demo");
        assert_eq!(p.retention_days, 90);
        assert_eq!(p.allowed_origins, ["*"]);
        assert!(!p.public_dashboard, "absent means private");
        let public = Project::from_json(&json!({"slug": "demo", "retention_days": 90,
            "allowed_origins": [], "rate_limit": "off", "public_dashboard": true,
            "created_at": "2025-01-02T03:04:05Z"}))
        .unwrap();
        assert!(public.public_dashboard);
        let missing = Project::from_json(&json!({"slug": "demo"})).unwrap_err();
        assert!(missing.to_string().contains("allowed_origins"), "{missing}");

        let k = Key::from_json(&json!({"id": 3, "kind": "read", "name": null,
            "prefix": "tr_ab12cd", "created_at": "2025-01-02T03:04:05Z",
            "revoked_at": null, "secret": "tr_ab12cdef"}))
        .unwrap();
        assert_eq!((k.id, k.kind, k.name.as_deref()), (3, KeyKind::Read, None));
        assert_eq!(k.secret().unwrap(), "tr_ab12cdef");
        let listed = Key { secret: None, ..k };
        assert!(listed.secret().is_err());
        assert!(Key::from_json(&json!({"id": 1, "kind": "admin"})).is_err());
    }

    #[test]
    fn settings_send_only_what_is_given() {
        assert!(Settings::default().is_empty());
        assert_eq!(Value::Object(Settings::default().to_json()), json!({}));
        let s = Settings {
            retention_days: Some(30),
            allowed_origins: Some(vec![]),
            rate_limit: None,
            public_dashboard: Some(false),
            public_badges: Some(true),
            plausible_domain: None,
            shard: Some(1),
        };
        assert_eq!(
            Value::Object(s.to_json()),
            json!({"retention_days": 30, "allowed_origins": [], "public_dashboard": false,
                "public_badges": true, "shard": 1})
        );
        let off = Settings {
            plausible_domain: Some(None),
            ..Settings::default()
        };
        assert_eq!(
            Value::Object(off.to_json()),
            json!({"plausible_domain": null})
        );
    }

    #[test]
    fn slugs_are_escaped_in_paths() {
        assert_eq!(project_path("demo-1"), "/v1/admin/projects/demo-1");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
    }

    /// Answers one request on a fresh local port with `status` and `body`; the thread
    /// returns the request as received.
    fn serve_once(status: u16, body: &'static str) -> (String, std::thread::JoinHandle<String>) {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            let mut request = String::new();
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap();
                }
                request.push_str(&line);
                if line == "\r\n" {
                    break;
                }
            }
            let mut content = vec![0; length];
            reader.read_exact(&mut content).unwrap();
            request.push_str(&String::from_utf8(content).unwrap());
            let answer = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            reader.get_mut().write_all(answer.as_bytes()).unwrap();
            request
        });
        (base, server)
    }

    #[test]
    fn creates_a_project_with_the_token_and_the_settings_given() {
        let (base, server) = serve_once(
            201,
            r#"{"project":{"slug":"demo","retention_days":90,"allowed_origins":["*"],
                "rate_limit":"off","created_at":"2025-01-02T03:04:05Z"}}"#,
        );
        let settings = Settings {
            rate_limit: Some(RateLimit::Off),
            ..Settings::default()
        };
        let project = Admin::new(&base, "sesame")
            .create_project("demo", &settings)
            .unwrap();
        assert_eq!(project.rate_limit, RateLimit::Off);
        let request = server.join().unwrap().to_lowercase();
        assert!(
            request.starts_with("post /v1/admin/projects http/1.1\r\n"),
            "{request}"
        );
        assert!(
            request.contains("authorization: bearer sesame\r\n"),
            "{request}"
        );
        assert!(
            request.contains("content-type: application/json\r\n"),
            "{request}"
        );
        let body = request.rsplit("\r\n").next().unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(body).unwrap(),
            json!({"slug": "demo", "rate_limit": "off"})
        );
    }

    #[test]
    fn error_answers_become_api_errors() {
        let (base, server) = serve_once(
            404,
            r#"{"error":{"code":"unknown_project","message":"no project nope"}}"#,
        );
        let error = Admin::new(&base, "t").revoke_key("nope", 7).unwrap_err();
        assert!(has_code(&error, "unknown_project"));
        assert_eq!(
            error.to_string(),
            "DELETE /v1/admin/projects/nope/keys/7 answered 404 unknown_project: no project nope"
        );
        assert!(
            server
                .join()
                .unwrap()
                .starts_with("DELETE /v1/admin/projects/nope/keys/7 ")
        );
    }

    #[test]
    fn asks_to_forget_a_user_by_the_escaped_id_and_reads_the_request() {
        let (base, server) = serve_once(
            202,
            r#"{"erasure":{"id":"0123456789abcdef0123456789abcdef","project":"demo",
                "status":"pending","requested_at":"2025-01-02T03:04:05.000Z","done_at":null,
                "raw_deleted":0,"marks_deleted":0,
                "status_url":"/v1/admin/projects/demo/erasures/0123456789abcdef0123456789abcdef"}}"#,
        );
        let erasure = Admin::new(&base, "t")
            .forget("demo", "alice@example.com/1")
            .unwrap();
        assert_eq!(
            erasure,
            Erasure {
                id: "0123456789abcdef0123456789abcdef".into(),
                project: "demo".into(),
                done: false,
                requested_at: "2025-01-02T03:04:05.000Z".into(),
                done_at: None,
                raw_deleted: 0,
                marks_deleted: 0,
            }
        );
        let request = server.join().unwrap();
        assert!(
            request.starts_with("DELETE /v1/admin/projects/demo/users/alice%40example.com%2F1 "),
            "{request}"
        );
        let done = Erasure::from_json(&json!({"id": "x", "project": "demo", "status": "done",
            "requested_at": "a", "done_at": "b", "raw_deleted": 3, "marks_deleted": 1}))
        .unwrap();
        assert!(done.done);
        assert_eq!(done.done_at.as_deref(), Some("b"));
        let odd = Erasure::from_json(&json!({"id": "x", "project": "demo", "status": "maybe",
            "requested_at": "a", "done_at": null, "raw_deleted": 0, "marks_deleted": 0}))
        .unwrap_err();
        assert!(odd.to_string().contains("\"maybe\""), "{odd}");
    }

    #[test]
    fn unreachable_servers_say_how_to_start_one() {
        // A port that was free a moment ago: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let admin = Admin::new(&format!("http://127.0.0.1:{port}/"), "t");
        let error = format!("{:#}", admin.projects().unwrap_err());
        let expected = format!(
            "could not reach the admin API at http://127.0.0.1:{port} (GET /v1/admin/projects)"
        );
        assert!(error.starts_with(&expected), "{error}");
    }
}
