//! A stand-in for the parts of Cloudflare's v4 API that `cargo xtask deploy` uses, for
//! tests: an HTTP server on 127.0.0.1 that keeps state, answers in Cloudflare's
//! envelope with its paging (`page`, `per_page`, `result_info`) and error shapes, and
//! records every request.
//!
//! It serves xtask's own calls (accounts, D1 databases, KV namespaces, queues, a
//! Worker's secret names) and, because wrangler honours `CLOUDFLARE_API_BASE_URL`
//! too, just enough of what the pinned wrangler calls for `d1 migrations apply
//! --remote` and `deploy`: D1's query endpoint (the migrations table only), the
//! script upload (a new Worker's `PUT`, a new version of an existing one), its
//! workers.dev subdomain, cron schedules and queue consumers. An upload keeps the
//! metadata it was sent, and treats secrets as the API does: `secret_text` bindings
//! set values, `inherit` bindings need a previous value (`bindings_inherit=strict`),
//! and `keep_bindings` keeps the rest. A `service` binding (`{"type": "service",
//! "name", "service", "environment"?}`) must name a Worker that exists, or the upload is
//! refused as the API refuses it (code 10143).
//!
//! It checks what the real API checks and xtask could get wrong: the bearer token, the
//! account, the body member each create takes (`name`, `title`, `queue_name`) and
//! duplicate names. Pages hold at most [`State::page_size`] items, so tests can make
//! every list span pages.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use serde_json::{Value, json};

/// What the stand-in holds.
#[derive(Debug, Clone, Default)]
pub struct State {
    /// The one token it accepts.
    pub token: String,
    /// Accounts as (id, name).
    pub accounts: Vec<(String, String)>,
    /// D1 databases as (uuid, name).
    pub databases: Vec<(String, String)>,
    /// KV namespaces as (id, title).
    pub kv: Vec<(String, String)>,
    /// Queues as (queue_id, queue_name).
    pub queues: Vec<(String, String)>,
    /// Worker consumers of queues.
    pub consumers: Vec<Consumer>,
    /// Workers that exist, by name.
    pub scripts: BTreeMap<String, Script>,
    /// The migrations applied to each D1 database (by uuid), in order.
    pub migrations: BTreeMap<String, Vec<String>>,
    /// The most items one page of a list holds.
    pub page_size: usize,
    /// Every request, as `METHOD /path?query` (after the `/client/v4` prefix), with
    /// the body of a JSON POST after a space.
    pub requests: Vec<String>,
    next_id: u64,
}

/// A Worker as the stand-in keeps it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Script {
    /// Its secrets by name, with the values uploaded (empty for those a test made).
    pub secrets: BTreeMap<String, String>,
    /// The metadata of its latest upload (bindings and so on, inherited bindings
    /// resolved, secret values left out); null if none.
    pub metadata: Value,
    /// How many uploads it has had.
    pub uploads: u32,
    /// Its cron schedules.
    pub crons: Vec<String>,
    /// Whether it is served on workers.dev.
    pub workers_dev: bool,
}

impl Script {
    /// A Worker that holds these secrets (their values unknown, as in the real API).
    pub fn with_secrets(names: &[&str]) -> Self {
        Self {
            secrets: names
                .iter()
                .map(|n| ((*n).to_owned(), String::new()))
                .collect(),
            ..Self::default()
        }
    }

    /// The binding of its latest upload named `name`.
    pub fn binding(&self, name: &str) -> Option<&Value> {
        self.metadata["bindings"]
            .as_array()?
            .iter()
            .find(|b| b["name"] == name)
    }
}

/// A Worker consuming a queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Consumer {
    pub queue_id: String,
    pub consumer_id: String,
    pub script: String,
    pub dead_letter_queue: Option<String>,
    pub settings: Value,
}

impl State {
    /// One account and nothing in it; `token` is the token it accepts.
    pub fn new(token: &str, account: &str) -> Self {
        Self {
            token: token.to_owned(),
            accounts: vec![(account.to_owned(), "Tally Test".to_owned())],
            page_size: 20,
            ..Self::default()
        }
    }

    /// A fresh id of 32 hex digits, as KV namespaces and queues have.
    pub fn hex_id(&mut self) -> String {
        self.next_id += 1;
        format!("{:032x}", 0xc0ff_ee00_u64 + self.next_id)
    }

    /// A fresh UUID, as D1 databases have.
    pub fn uuid(&mut self) -> String {
        let hex = self.hex_id();
        format!(
            "{}-{}-4{}-8{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[13..16],
            &hex[17..20],
            &hex[20..]
        )
    }

    /// The requests that created a D1 database, KV namespace or queue.
    pub fn creations(&self) -> Vec<String> {
        self.requests
            .iter()
            .filter(|r| {
                let path = r.split([' ', '?']).nth(1).unwrap_or_default();
                r.starts_with("POST ")
                    && (path.ends_with("/d1/database")
                        || path.ends_with("/storage/kv/namespaces")
                        || path.ends_with("/queues"))
            })
            .cloned()
            .collect()
    }

    fn queue_json(&self, id: &str, name: &str) -> Value {
        let consumers: Vec<Value> = self
            .consumers
            .iter()
            .filter(|c| c.queue_id == id)
            .map(|c| {
                json!({"consumer_id": c.consumer_id, "type": "worker", "script": c.script,
                       "dead_letter_queue": c.dead_letter_queue, "settings": c.settings,
                       "created_on": "2025-01-01T00:00:00.000000Z"})
            })
            .collect();
        json!({"queue_id": id, "queue_name": name, "created_on": "2025-01-01T00:00:00.000000Z",
               "modified_on": "2025-01-01T00:00:00.000000Z", "producers": [],
               "producers_total_count": 0, "consumers_total_count": consumers.len(),
               "consumers": consumers,
               "settings": {"delivery_delay": 0, "delivery_paused": false,
                            "message_retention_period": 345_600}})
    }
}

/// The running stand-in; dropping it stops the server.
#[derive(Debug)]
pub struct StandIn {
    /// The base URL, like `https://api.cloudflare.com/client/v4`.
    pub url: String,
    state: Arc<Mutex<State>>,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StandIn {
    /// Starts serving `state` on a free port of 127.0.0.1.
    pub fn start(state: State) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(state));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop) = (Arc::clone(&state), Arc::clone(&stop));
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        let state = Arc::clone(&state);
                        // Wrangler opens several connections at once.
                        std::thread::spawn(move || serve(stream, &state));
                    }
                }
            })
        };
        Self {
            url: format!("http://{addr}/client/v4"),
            state,
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// The state, to read or change between calls.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A request, as the routes see it.
struct Request {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    content_type: String,
    body: Vec<u8>,
}

impl Request {
    /// The first value of a query parameter.
    fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a query parameter (wrangler repeats `name`).
    fn params(&self, key: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// Requests on one connection, each answered; the connection closes after the first
/// answer (`connection: close`), which every client here accepts.
fn serve(stream: TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return;
    };
    let (method, target) = (method.to_owned(), target.to_owned());
    let mut headers = BTreeMap::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    let body = if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.contains("chunked"))
    {
        read_chunked(&mut reader)
    } else {
        let length: usize = headers
            .get("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body).map(|()| body).ok()
    };
    let Some(body) = body else { return };
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let request = Request {
        method,
        path: path
            .strip_prefix("/client/v4")
            .unwrap_or("/not-the-api")
            .to_owned(),
        query: parse_query(query),
        content_type: headers.get("content-type").cloned().unwrap_or_default(),
        body,
    };
    let auth = headers.get("authorization").cloned().unwrap_or_default();
    let (status, answer) = {
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        let mut record = format!("{} {}", request.method, request.path);
        if !query.is_empty() {
            record.push('?');
            record.push_str(query);
        }
        if request.method == "POST" && request.content_type.starts_with("application/json") {
            record.push(' ');
            record.push_str(&String::from_utf8_lossy(&request.body));
        }
        state.requests.push(record);
        if auth != format!("Bearer {}", state.token) {
            error(403, 10000, "Authentication error")
        } else {
            route(&mut state, &request)
        }
    };
    let text = answer.to_string();
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Conflict",
    };
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
        text.len()
    );
    let _ = stream.flush();
}

fn read_chunked(reader: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size).ok()?;
        let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
        let mut chunk = vec![0; size + 2];
        reader.read_exact(&mut chunk).ok()?;
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(&chunk[..size]);
    }
}

fn route(state: &mut State, request: &Request) -> (u16, Value) {
    let method = request.method.as_str();
    let segments: Vec<&str> = request.path.trim_matches('/').split('/').collect();
    if segments == ["accounts"] && method == "GET" {
        let accounts: Vec<Value> = state
            .accounts
            .iter()
            .map(|(id, name)| {
                json!({"id": id, "name": name, "type": "standard",
                       "settings": {"enforce_twofactor": false},
                       "created_on": "2025-01-01T00:00:00.000000Z"})
            })
            .collect();
        return page(state, accounts, request);
    }
    let ["accounts", account, rest @ ..] = segments.as_slice() else {
        return no_route(&request.path);
    };
    if !state.accounts.iter().any(|(id, _)| id == account) {
        return error(403, 10000, "Authentication error");
    }
    match (method, rest) {
        ("GET", ["d1", "database"]) => {
            // The API's `name` filter matches names that contain it.
            let filter = request.param("name").unwrap_or_default();
            let found: Vec<Value> = state
                .databases
                .iter()
                .filter(|(_, name)| name.contains(filter))
                .map(|(uuid, name)| database(uuid, name))
                .collect();
            page(state, found, request)
        }
        ("POST", ["d1", "database"]) => {
            let body = request.json();
            let Some(name) = body["name"].as_str() else {
                return error(400, 7400, "The request is malformed: name is required");
            };
            if state.databases.iter().any(|(_, n)| n == name) {
                return error(400, 7502, "A database with that name already exists");
            }
            let uuid = state.uuid();
            state.databases.push((uuid.clone(), name.to_owned()));
            success(database(&uuid, name), Value::Null)
        }
        ("POST", ["d1", "database", uuid, "query"]) => d1_query(state, uuid, &request.json()),
        ("GET", ["storage", "kv", "namespaces"]) => {
            let found: Vec<Value> = state.kv.iter().map(|(id, t)| namespace(id, t)).collect();
            page(state, found, request)
        }
        ("POST", ["storage", "kv", "namespaces"]) => {
            let body = request.json();
            let Some(title) = body["title"].as_str() else {
                return error(400, 10026, "title is required");
            };
            if state.kv.iter().any(|(_, t)| t == title) {
                return error(
                    400,
                    10014,
                    "A namespace with this account ID and title already exists",
                );
            }
            let id = state.hex_id();
            state.kv.push((id.clone(), title.to_owned()));
            success(namespace(&id, title), Value::Null)
        }
        ("GET", ["queues"]) => {
            // Wrangler asks for queues by name (`name`, repeated); xtask lists them all.
            let names = request.params("name");
            let found: Vec<Value> = state
                .queues
                .iter()
                .filter(|(_, n)| names.is_empty() || names.contains(&n.as_str()))
                .map(|(id, n)| state.queue_json(id, n))
                .collect();
            page(state, found, request)
        }
        ("POST", ["queues"]) => {
            let body = request.json();
            let Some(name) = body["queue_name"].as_str() else {
                return error(400, 11003, "queue_name is required");
            };
            if state.queues.iter().any(|(_, n)| n == name) {
                return error(409, 11009, "A queue with this name already exists");
            }
            let id = state.hex_id();
            state.queues.push((id.clone(), name.to_owned()));
            let queue = state.queue_json(&id, name);
            success(queue, Value::Null)
        }
        ("POST", ["queues", queue_id, "consumers"]) => {
            let body = request.json();
            let consumer_id = state.hex_id();
            state.consumers.push(Consumer {
                queue_id: (*queue_id).to_owned(),
                consumer_id: consumer_id.clone(),
                script: body["script_name"].as_str().unwrap_or_default().to_owned(),
                dead_letter_queue: body["dead_letter_queue"].as_str().map(str::to_owned),
                settings: body["settings"].clone(),
            });
            success(json!({"consumer_id": consumer_id}), Value::Null)
        }
        ("PUT", ["queues", queue_id, "consumers", consumer_id]) => {
            let body = request.json();
            let Some(consumer) = state
                .consumers
                .iter_mut()
                .find(|c| c.queue_id == *queue_id && c.consumer_id == *consumer_id)
            else {
                return error(404, 11000, "consumer not found");
            };
            consumer.dead_letter_queue = body["dead_letter_queue"].as_str().map(str::to_owned);
            consumer.settings = body["settings"].clone();
            success(json!({"consumer_id": consumer_id}), Value::Null)
        }
        ("GET", ["workers", "scripts", script, "secrets"]) => match state.scripts.get(*script) {
            // A single-page list: no `result_info`.
            Some(s) => success(
                s.secrets
                    .keys()
                    .map(|name| json!({"name": name, "type": "secret_text"}))
                    .collect(),
                Value::Null,
            ),
            None => script_not_found(),
        },
        ("GET", ["workers", "services", script]) => match state.scripts.get(*script) {
            Some(_) => success(
                json!({"id": script, "default_environment": {"environment": "production",
                       "script": {"id": script, "tag": format!("tag-{script}"), "tags": [],
                                  "last_deployed_from": "wrangler"}}}),
                Value::Null,
            ),
            None => script_not_found(),
        },
        ("GET", ["workers", "subdomain"]) => {
            success(json!({"subdomain": "tally-test"}), Value::Null)
        }
        ("GET", ["workers", "scripts", script, "deployments"]) => {
            match state.scripts.get(*script) {
                Some(s) => success(
                    json!({"deployments": [{"id": format!("deployment-{}", s.uploads),
                       "source": "wrangler", "strategy": "percentage",
                       "versions": [{"version_id": version_id(script, s.uploads),
                                     "percentage": 100}]}]}),
                    Value::Null,
                ),
                None => script_not_found(),
            }
        }
        ("POST", ["workers", "scripts", _, "deployments"]) => {
            success(json!({"id": "deployment"}), Value::Null)
        }
        ("GET", ["workers", "scripts", script, "settings"]) => match state.scripts.get(*script) {
            Some(s) => success(json!({"bindings": s.metadata["bindings"]}), Value::Null),
            None => script_not_found(),
        },
        ("PATCH", ["workers", "scripts", _, "script-settings"]) => success(json!({}), Value::Null),
        // A new Worker's first upload, and a new version of an existing one.
        ("PUT", ["workers", "scripts", script]) => upload(state, script, request, false),
        ("POST", ["workers", "scripts", script, "versions"]) => {
            upload(state, script, request, true)
        }
        ("GET", ["workers", "workers", script]) => match state.scripts.get(*script) {
            Some(s) => success(
                json!({"id": script, "name": script,
                       "subdomain": {"enabled": s.workers_dev, "previews_enabled": false}}),
                Value::Null,
            ),
            None => script_not_found(),
        },
        ("POST", ["workers", "scripts", script, "subdomain"]) => {
            let enabled = request.json()["enabled"].as_bool().unwrap_or(false);
            match state.scripts.get_mut(*script) {
                Some(s) => {
                    s.workers_dev = enabled;
                    success(
                        json!({"enabled": enabled, "previews_enabled": false}),
                        Value::Null,
                    )
                }
                None => script_not_found(),
            }
        }
        ("PUT", ["workers", "scripts", script, "schedules"]) => {
            let body = request.json();
            let crons = body
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|c| c["cron"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            match state.scripts.get_mut(*script) {
                Some(s) => {
                    s.crons = crons;
                    success(json!({"schedules": body}), Value::Null)
                }
                None => script_not_found(),
            }
        }
        (_, ["d1", "database"] | ["storage", "kv", "namespaces"] | ["queues"]) => {
            error(405, 10405, "Method not allowed")
        }
        _ => no_route(&request.path),
    }
}

/// An upload of a Worker (multipart, with a `metadata` part): secrets as the API
/// treats them, then the Worker exists with this metadata.
fn upload(state: &mut State, script: &str, request: &Request, version: bool) -> (u16, Value) {
    if version && !state.scripts.contains_key(script) {
        return script_not_found();
    }
    let Some(metadata) =
        multipart_part(request, "metadata").and_then(|m| serde_json::from_slice::<Value>(&m).ok())
    else {
        return error(400, 10021, "the upload has no metadata part");
    };
    let strict = request.param("bindings_inherit") == Some("strict");
    let old = state.scripts.get(script).cloned().unwrap_or_default();
    let keep_secrets = metadata["keep_bindings"]
        .as_array()
        .is_some_and(|k| k.iter().any(|b| b == "secret_text"));
    let mut secrets = if keep_secrets {
        old.secrets.clone()
    } else {
        BTreeMap::new()
    };
    // The bindings kept: inherited ones resolved to the previous version's, and secret
    // values moved out into `secrets`.
    let mut bindings = Vec::new();
    for binding in metadata["bindings"].as_array().into_iter().flatten() {
        let name = binding["name"].as_str().unwrap_or_default();
        match binding["type"].as_str() {
            Some("secret_text") => {
                let value = binding["text"].as_str().unwrap_or_default();
                secrets.insert(name.to_owned(), value.to_owned());
                bindings.push(json!({"name": name, "type": "secret_text"}));
            }
            Some("inherit") => {
                if let Some(value) = old.secrets.get(name) {
                    secrets.insert(name.to_owned(), value.clone());
                    bindings.push(json!({"name": name, "type": "secret_text"}));
                } else if let Some(previous) =
                    old.binding(name).filter(|b| b["type"] != "secret_text")
                {
                    bindings.push(previous.clone());
                } else if strict {
                    return error(
                        400,
                        10057,
                        &format!(
                            "inherit binding '{name}' is invalid: the previous version has no \
                             binding named {name}"
                        ),
                    );
                }
            }
            Some("service") => {
                let target = binding["service"].as_str().unwrap_or_default();
                if !state.scripts.contains_key(target) {
                    return error(
                        400,
                        10143,
                        &format!(
                            "Could not resolve service binding '{name}'. Target script \
                             '{target}' not found. Please verify the target script and try again."
                        ),
                    );
                }
                bindings.push(binding.clone());
            }
            _ => bindings.push(binding.clone()),
        }
    }
    let mut metadata = metadata;
    metadata["bindings"] = Value::Array(bindings);
    let uploads = old.uploads + 1;
    state.scripts.insert(
        script.to_owned(),
        Script {
            secrets,
            metadata,
            uploads,
            ..old
        },
    );
    let id = version_id(script, uploads);
    success(
        json!({"id": id, "etag": format!("etag-{uploads}"), "deployment_id": id,
               "startup_time_ms": 1, "resources": {"script": {"etag": format!("etag-{uploads}")}}}),
        Value::Null,
    )
}

/// A version id, a UUID as the API gives.
fn version_id(script: &str, uploads: u32) -> String {
    let n = script.bytes().fold(u64::from(uploads), |h, b| {
        h.wrapping_mul(31).wrapping_add(u64::from(b))
    });
    let hex = format!("{n:032x}");
    format!(
        "{}-{}-4{}-8{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..]
    )
}

/// D1's query endpoint, as far as wrangler's migrations use it: creating and reading
/// the migrations table, and running a migration (whose name the trailing `INSERT INTO
/// d1_migrations` gives). The SQL itself is not run.
fn d1_query(state: &mut State, uuid: &str, body: &Value) -> (u16, Value) {
    if !state.databases.iter().any(|(id, _)| id == uuid) {
        return error(404, 7404, "The database could not be found");
    }
    let sql = body["sql"].as_str().unwrap_or_default();
    let applied = state.migrations.entry(uuid.to_owned()).or_default();
    let rows: Vec<Value> =
        if sql.trim_start().starts_with("SELECT") && sql.contains("d1_migrations") {
            applied
            .iter()
            .enumerate()
            .map(
                |(i, name)| json!({"id": i + 1, "name": name, "applied_at": "2025-01-01 00:00:00"}),
            )
            .collect()
        } else {
            if let Some(at) = sql.find("INSERT INTO \"d1_migrations\" (name)") {
                let name = sql[at..].split('\'').nth(1).unwrap_or_default().to_owned();
                if applied.contains(&name) {
                    return error(400, 7500, "UNIQUE constraint failed: d1_migrations.name");
                }
                applied.push(name);
            }
            Vec::new()
        };
    success(
        json!([{"results": rows, "success": true,
                "meta": {"duration": 1, "changes": 0, "rows_read": 0, "rows_written": 0}}]),
        Value::Null,
    )
}

/// The content of the multipart part named `name`.
fn multipart_part(request: &Request, name: &str) -> Option<Vec<u8>> {
    let boundary = request
        .content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))?
        .trim_matches('"');
    let delimiter = format!("--{boundary}");
    let header = format!("name=\"{name}\"");
    let body = &request.body;
    let mut at = find(body, delimiter.as_bytes(), 0)?;
    loop {
        let start = at + delimiter.len();
        let next = find(body, delimiter.as_bytes(), start)?;
        let part = &body[start..next];
        if let Some(split) = find(part, b"\r\n\r\n", 0)
            && find(&part[..split], header.as_bytes(), 0).is_some()
        {
            let content = &part[split + 4..];
            return Some(content.strip_suffix(b"\r\n").unwrap_or(content).to_vec());
        }
        at = next;
    }
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

fn database(uuid: &str, name: &str) -> Value {
    json!({"uuid": uuid, "name": name, "created_at": "2025-01-01T00:00:00.000Z",
           "version": "production", "num_tables": 0, "file_size": 0})
}

fn namespace(id: &str, title: &str) -> Value {
    json!({"id": id, "title": title, "supports_url_encoding": true})
}

/// One page of `items`, as `page` and `per_page` ask (at most the state's page size).
fn page(state: &State, items: Vec<Value>, request: &Request) -> (u16, Value) {
    let number = |key: &str, default: usize| {
        request
            .param(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let page = number("page", 1).max(1);
    let per_page = number("per_page", 20).clamp(1, state.page_size.max(1));
    let total = items.len();
    let slice: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let info = json!({"page": page, "per_page": per_page, "count": slice.len(),
                      "total_count": total, "total_pages": total.div_ceil(per_page)});
    success(Value::Array(slice), info)
}

fn success(result: Value, result_info: Value) -> (u16, Value) {
    let mut body = json!({"success": true, "errors": [], "messages": [], "result": result});
    if !result_info.is_null() {
        body["result_info"] = result_info;
    }
    (200, body)
}

fn error(status: u16, code: i64, message: &str) -> (u16, Value) {
    (
        status,
        json!({"success": false, "errors": [{"code": code, "message": message}],
               "messages": [], "result": null}),
    )
}

fn script_not_found() -> (u16, Value) {
    error(404, 10007, "This Worker does not exist on your account.")
}

fn no_route(path: &str) -> (u16, Value) {
    error(
        404,
        7003,
        &format!("Could not route to {path}, perhaps your object identifier is invalid?"),
    )
}

/// `a=1&b=x%20y&a=2` as pairs, percent-decoded, in order.
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
