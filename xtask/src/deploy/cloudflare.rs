//! A small client of Cloudflare's v4 API for `cargo xtask deploy`: accounts, D1
//! databases, KV namespaces, queues and the names of a Worker's secrets.
//!
//! Every answer is Cloudflare's envelope, `{"success", "errors", "messages", "result",
//! "result_info"}`; lists are read page by page until `result_info` says they end. The
//! base URL is the real API unless `CLOUDFLARE_API_BASE_URL` says otherwise (wrangler
//! reads the same variable, so one setting points both at a stand-in).

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

use crate::stack::{agent, segment, snippet};

/// Cloudflare's API, version 4.
pub const DEFAULT_BASE_URL: &str = "https://api.cloudflare.com/client/v4";
/// The variable that overrides [`DEFAULT_BASE_URL`], for xtask and wrangler alike.
pub const BASE_URL_VAR: &str = "CLOUDFLARE_API_BASE_URL";
/// The variable that holds the API token.
pub const TOKEN_VAR: &str = "CLOUDFLARE_API_TOKEN";
/// The variable that names the account to deploy to.
pub const ACCOUNT_VAR: &str = "CLOUDFLARE_ACCOUNT_ID";

/// Cloudflare's error code for "this Worker does not exist".
const SCRIPT_NOT_FOUND: i64 = 10007;

/// Error codes about the token itself: malformed (6003, 6111), invalid (9106, 9109),
/// or without the permission asked for (10000).
const AUTH_CODES: [i64; 5] = [6003, 6111, 9106, 9109, 10000];

/// How long one API call may take.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The most pages one list may have; a guard against an API that never says it ended.
const MAX_PAGES: u64 = 1000;

/// What a token needs, said whenever Cloudflare refuses one.
pub const TOKEN_HINT: &str = "CLOUDFLARE_API_TOKEN must be an API token of this account with \
     the permissions Workers Scripts: Edit, D1: Edit, Workers KV Storage: Edit and Queues: \
     Edit (create one at https://dash.cloudflare.com/profile/api-tokens); set \
     CLOUDFLARE_ACCOUNT_ID to the account's id if the token sees more than one";

/// An error answer of Cloudflare's API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CfError {
    /// The request, as `METHOD /path`.
    pub request: String,
    pub status: u16,
    /// Each error's code and message; empty when the body was not the API's envelope.
    pub errors: Vec<(i64, String)>,
    /// The start of the body, when it was not the API's envelope.
    pub body: String,
}

impl CfError {
    /// Reads an error answer; a body that is not Cloudflare's envelope is quoted as is.
    pub fn from_body(request: &str, status: u16, body: &str) -> Self {
        let parsed: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        // Each error, then the errors of its `error_chain` (which say what was wrong
        // with a token, for one).
        let mut errors = Vec::new();
        let mut pending: Vec<&Value> = parsed["errors"].as_array().into_iter().flatten().collect();
        pending.reverse();
        while let Some(e) = pending.pop() {
            errors.push((
                e["code"].as_i64().unwrap_or_default(),
                e["message"].as_str().unwrap_or_default().to_owned(),
            ));
            pending.extend(e["error_chain"].as_array().into_iter().flatten().rev());
        }
        Self {
            request: request.to_owned(),
            status,
            body: if errors.is_empty() {
                snippet(body)
            } else {
                String::new()
            },
            errors,
        }
    }

    /// Whether Cloudflare gave this error code.
    pub fn has_code(&self, code: i64) -> bool {
        self.errors.iter().any(|(c, _)| *c == code)
    }
}

impl fmt::Display for CfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Cloudflare answered {} to {}: ",
            self.status, self.request
        )?;
        if self.errors.is_empty() {
            write!(f, "{}", self.body)?;
        }
        for (i, (code, message)) in self.errors.iter().enumerate() {
            let sep = if i == 0 { "" } else { "; " };
            write!(f, "{sep}{message} (code {code})")?;
        }
        if matches!(self.status, 401 | 403)
            || self.errors.iter().any(|(c, _)| AUTH_CODES.contains(c))
        {
            write!(f, "\n  hint: {TOKEN_HINT}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CfError {}

/// An account the token can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: String,
    pub name: String,
}

/// A named resource: a D1 database (`uuid`, `name`), a KV namespace (`id`, `title`) or
/// a queue (`queue_id`, `queue_name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub id: String,
    pub name: String,
}

impl Named {
    /// Reads a resource object, taking its id and name from the members given.
    fn from_json(v: &Value, id: &str, name: &str) -> Result<Self> {
        let field = |member: &str| {
            v[member].as_str().map(str::to_owned).with_context(|| {
                format!("Cloudflare sent an object without a string `{member}`: {v}")
            })
        };
        Ok(Self {
            id: field(id)?,
            name: field(name)?,
        })
    }
}

/// A client of Cloudflare's API with one token.
#[derive(Debug)]
pub struct Api {
    base: String,
    token: String,
    http: ureq::Agent,
}

impl Api {
    /// A client of the API at `base` (such as [`DEFAULT_BASE_URL`]).
    pub fn new(base: &str, token: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            http: agent(TIMEOUT),
        }
    }

    /// A client with the token in `CLOUDFLARE_API_TOKEN`, of the API at
    /// `CLOUDFLARE_API_BASE_URL` or else [`DEFAULT_BASE_URL`].
    ///
    /// # Errors
    ///
    /// When there is no token.
    pub fn from_env() -> Result<Self> {
        let token = std::env::var(TOKEN_VAR)
            .ok()
            .filter(|t| !t.trim().is_empty())
            .with_context(|| format!("{TOKEN_VAR} is not set\n  hint: {TOKEN_HINT}"))?;
        let base = std::env::var(BASE_URL_VAR)
            .ok()
            .filter(|b| !b.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
        Ok(Self::new(&base, token.trim()))
    }

    /// The base URL of the API.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The token, for wrangler.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The accounts the token can use.
    pub fn accounts(&self) -> Result<Vec<Account>> {
        self.list("/accounts", &[("per_page", "50")])?
            .iter()
            .map(|v| {
                let named = Named::from_json(v, "id", "name")?;
                Ok(Account {
                    id: named.id,
                    name: named.name,
                })
            })
            .collect()
    }

    /// The D1 databases named exactly `name` (the API's `name` filter also matches
    /// other names that contain it).
    pub fn d1_databases(&self, account: &str, name: &str) -> Result<Vec<Named>> {
        let path = format!("/accounts/{}/d1/database", segment(account));
        let found = self.list(&path, &[("name", name), ("per_page", "100")])?;
        let databases = found
            .iter()
            .map(|v| Named::from_json(v, "uuid", "name"))
            .collect::<Result<Vec<_>>>()?;
        Ok(databases.into_iter().filter(|d| d.name == name).collect())
    }

    /// Creates a D1 database.
    pub fn create_d1_database(&self, account: &str, name: &str) -> Result<Named> {
        let path = format!("/accounts/{}/d1/database", segment(account));
        let result = self.call("POST", &path, &[], Some(json!({ "name": name })))?;
        Named::from_json(&result.result, "uuid", "name")
    }

    /// Every KV namespace of the account (`name` is its title).
    pub fn kv_namespaces(&self, account: &str) -> Result<Vec<Named>> {
        let path = format!("/accounts/{}/storage/kv/namespaces", segment(account));
        self.list(&path, &[("per_page", "100")])?
            .iter()
            .map(|v| Named::from_json(v, "id", "title"))
            .collect()
    }

    /// Creates a KV namespace.
    pub fn create_kv_namespace(&self, account: &str, title: &str) -> Result<Named> {
        let path = format!("/accounts/{}/storage/kv/namespaces", segment(account));
        let result = self.call("POST", &path, &[], Some(json!({ "title": title })))?;
        Named::from_json(&result.result, "id", "title")
    }

    /// Every queue of the account.
    pub fn queues(&self, account: &str) -> Result<Vec<Named>> {
        let path = format!("/accounts/{}/queues", segment(account));
        self.list(&path, &[])?
            .iter()
            .map(|v| Named::from_json(v, "queue_id", "queue_name"))
            .collect()
    }

    /// Creates a queue.
    pub fn create_queue(&self, account: &str, name: &str) -> Result<Named> {
        let path = format!("/accounts/{}/queues", segment(account));
        let result = self.call("POST", &path, &[], Some(json!({ "queue_name": name })))?;
        Named::from_json(&result.result, "queue_id", "queue_name")
    }

    /// The names of a Worker's secrets (never their values, which the API does not
    /// give), or `None` if there is no Worker of that name yet.
    pub fn secret_names(&self, account: &str, script: &str) -> Result<Option<BTreeSet<String>>> {
        let path = format!(
            "/accounts/{}/workers/scripts/{}/secrets",
            segment(account),
            segment(script)
        );
        // A single-page list, asked for as wrangler does: without paging parameters.
        let secrets = match self.call("GET", &path, &[], None) {
            Ok(answer) => answer.result.as_array().cloned().with_context(|| {
                format!("Cloudflare answered GET {path} with a `result` that is not a list")
            })?,
            Err(e)
                if e.downcast_ref::<CfError>()
                    .is_some_and(|e| e.status == 404 && e.has_code(SCRIPT_NOT_FOUND)) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let names = secrets
            .iter()
            .map(|s| {
                s["name"].as_str().map(str::to_owned).with_context(|| {
                    format!("Cloudflare sent a secret of {script} without a `name`: {s}")
                })
            })
            .collect::<Result<_>>()?;
        Ok(Some(names))
    }

    /// Every item of a list, page after page.
    fn list(&self, path: &str, query: &[(&str, &str)]) -> Result<Vec<Value>> {
        let mut items = Vec::new();
        for page in 1..=MAX_PAGES {
            let page_text = page.to_string();
            let mut paged = query.to_vec();
            paged.push(("page", &page_text));
            let answer = self.call("GET", path, &paged, None)?;
            let found = answer.result.as_array().with_context(|| {
                format!("Cloudflare answered GET {path} with a `result` that is not a list")
            })?;
            items.extend(found.iter().cloned());
            let info = &answer.result_info;
            let more = match (
                info["page"].as_u64(),
                info["per_page"].as_u64(),
                info["total_count"].as_u64(),
            ) {
                (Some(page), Some(per_page), Some(total)) => page * per_page < total,
                // No page information: the list came whole (a single-page list).
                _ => false,
            };
            if !more || found.is_empty() {
                return Ok(items);
            }
        }
        bail!("GET {path} had more than {MAX_PAGES} pages; is the API base URL right?")
    }

    /// Sends one request and reads the envelope of its answer.
    fn call(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> Result<Envelope> {
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {}", self.token);
        let request = format!("{method} {path}");
        let sent = if let Some(body) = body {
            self.http
                .post(&url)
                .query_pairs(query.iter().copied())
                .header("authorization", &auth)
                .header("content-type", "application/json")
                .send(body.to_string())
        } else {
            self.http
                .get(&url)
                .query_pairs(query.iter().copied())
                .header("authorization", &auth)
                .call()
        };
        let mut response = sent.map_err(|e| {
            anyhow!(
                "could not reach Cloudflare's API at {} ({request}): {e}\n  hint: check the \
                 network; {BASE_URL_VAR}, if set, must be the API's base URL",
                self.base
            )
        })?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .with_context(|| format!("reading the answer to {request}"))?;
        let envelope: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if !(200..300).contains(&status) || envelope["success"] != Value::Bool(true) {
            return Err(CfError::from_body(&request, status, &text).into());
        }
        Ok(Envelope {
            result: envelope["result"].clone(),
            result_info: envelope["result_info"].clone(),
        })
    }
}

/// The parts of a successful answer that xtask reads.
struct Envelope {
    result: Value,
    result_info: Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_quote_every_error_and_refusals_get_a_hint() {
        let e = CfError::from_body(
            "GET /accounts/a/queues",
            403,
            r#"{"success":false,"errors":[{"code":10000,"message":"Authentication error"}],"messages":[],"result":null}"#,
        );
        assert!(e.has_code(10000));
        let text = e.to_string();
        assert!(
            text.starts_with(
                "Cloudflare answered 403 to GET /accounts/a/queues: Authentication error (code 10000)\n  hint: CLOUDFLARE_API_TOKEN must be"
            ),
            "{text}"
        );
        let e = CfError::from_body(
            "POST /accounts/a/d1/database",
            400,
            r#"{"success":false,"errors":[{"code":7502,"message":"exists"},{"code":1,"message":"two"}]}"#,
        );
        assert_eq!(
            e.to_string(),
            "Cloudflare answered 400 to POST /accounts/a/d1/database: exists (code 7502); two (code 1)"
        );
        let e = CfError::from_body(
            "GET /accounts",
            400,
            r#"{"success":false,"errors":[{"code":6003,"message":"Invalid request headers","error_chain":[{"code":6111,"message":"Invalid format for Authorization header"}]}],"messages":[],"result":null}"#,
        );
        assert!(
            e.to_string().starts_with(
                "Cloudflare answered 400 to GET /accounts: Invalid request headers (code 6003); Invalid format for Authorization header (code 6111)\n  hint: CLOUDFLARE_API_TOKEN"
            ),
            "{e}"
        );
        let e = CfError::from_body("GET /accounts", 502, "<html>bad gateway</html>");
        assert_eq!(
            e.to_string(),
            "Cloudflare answered 502 to GET /accounts: <html>bad gateway</html>"
        );
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(segment("tally-ingest_2.x"), "tally-ingest_2.x");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }
}
