//! A stand-in for the parts of Cloudflare's v4 API that `cargo xtask deploy` calls, for
//! tests: an HTTP server on 127.0.0.1 that keeps accounts, D1 databases, KV namespaces,
//! queues and Workers' secret names, answers in Cloudflare's envelope with its paging
//! (`page`, `per_page`, `result_info`) and error shapes, and records every request.
//!
//! It checks what the real API checks that xtask could get wrong: the bearer token,
//! the account, the body member each create takes (`name`, `title`, `queue_name`) and
//! duplicate names. Pages hold at most [`State::page_size`] items, so tests can make
//! every list span pages.

use std::collections::{BTreeMap, BTreeSet};
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
    /// Workers that exist, with the names of their secrets.
    pub scripts: BTreeMap<String, BTreeSet<String>>,
    /// The most items one page of a list holds.
    pub page_size: usize,
    /// Every request, as `METHOD /path?query` (after the `/client/v4` prefix), with
    /// the body of a POST after a space.
    pub requests: Vec<String>,
    next_id: u64,
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

    /// The POST requests made so far.
    pub fn posts(&self) -> Vec<String> {
        self.requests
            .iter()
            .filter(|r| r.starts_with("POST "))
            .cloned()
            .collect()
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
                        serve(stream, &state);
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

/// One HTTP/1.1 request per connection: read it, answer, close.
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
    let length: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let body = String::from_utf8_lossy(&body).into_owned();
    let auth = headers.get("authorization").cloned().unwrap_or_default();
    let (status, answer) = {
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let path = path.strip_prefix("/client/v4").unwrap_or("/not-the-api");
        let mut record = format!("{method} {path}");
        if !query.is_empty() {
            record.push('?');
            record.push_str(query);
        }
        if method == "POST" {
            record.push(' ');
            record.push_str(&body);
        }
        state.requests.push(record);
        if auth != format!("Bearer {}", state.token) {
            error(403, 10000, "Authentication error")
        } else {
            route(&mut state, &method, path, &parse_query(query), &body)
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

fn route(
    state: &mut State,
    method: &str,
    path: &str,
    query: &BTreeMap<String, String>,
    body: &str,
) -> (u16, Value) {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
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
        return page(state, accounts, query);
    }
    let ["accounts", account, rest @ ..] = segments.as_slice() else {
        return no_route(path);
    };
    if !state.accounts.iter().any(|(id, _)| id == account) {
        return error(403, 10000, "Authentication error");
    }
    let body: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    match (method, rest) {
        ("GET", ["d1", "database"]) => {
            // The API's `name` filter matches names that contain it.
            let filter = query.get("name").cloned().unwrap_or_default();
            let found: Vec<Value> = state
                .databases
                .iter()
                .filter(|(_, name)| name.contains(&filter))
                .map(|(uuid, name)| database(uuid, name))
                .collect();
            page(state, found, query)
        }
        ("POST", ["d1", "database"]) => {
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
        ("GET", ["storage", "kv", "namespaces"]) => {
            let found: Vec<Value> = state.kv.iter().map(|(id, t)| namespace(id, t)).collect();
            page(state, found, query)
        }
        ("POST", ["storage", "kv", "namespaces"]) => {
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
            let found: Vec<Value> = state.queues.iter().map(|(id, n)| queue(id, n)).collect();
            page(state, found, query)
        }
        ("POST", ["queues"]) => {
            let Some(name) = body["queue_name"].as_str() else {
                return error(400, 11003, "queue_name is required");
            };
            if state.queues.iter().any(|(_, n)| n == name) {
                return error(409, 11009, "A queue with this name already exists");
            }
            let id = state.hex_id();
            state.queues.push((id.clone(), name.to_owned()));
            success(queue(&id, name), Value::Null)
        }
        ("GET", ["workers", "scripts", script, "secrets"]) => match state.scripts.get(*script) {
            // A single-page list: no `result_info`.
            Some(secrets) => success(
                secrets
                    .iter()
                    .map(|s| json!({"name": s, "type": "secret_text"}))
                    .collect(),
                Value::Null,
            ),
            None => error(404, 10007, "This Worker does not exist on your account."),
        },
        (_, ["d1", "database"] | ["storage", "kv", "namespaces"] | ["queues"]) => {
            error(405, 10405, "Method not allowed")
        }
        _ => no_route(path),
    }
}

fn database(uuid: &str, name: &str) -> Value {
    json!({"uuid": uuid, "name": name, "created_at": "2025-01-01T00:00:00.000Z",
           "version": "production", "num_tables": 0, "file_size": 0})
}

fn namespace(id: &str, title: &str) -> Value {
    json!({"id": id, "title": title, "supports_url_encoding": true})
}

fn queue(id: &str, name: &str) -> Value {
    json!({"queue_id": id, "queue_name": name, "created_on": "2025-01-01T00:00:00.000000Z",
           "modified_on": "2025-01-01T00:00:00.000000Z", "producers": [],
           "producers_total_count": 0, "consumers": [], "consumers_total_count": 0,
           "settings": {"delivery_delay": 0, "delivery_paused": false,
                        "message_retention_period": 345_600}})
}

/// One page of `items`, as `page` and `per_page` ask (at most the state's page size).
fn page(state: &State, items: Vec<Value>, query: &BTreeMap<String, String>) -> (u16, Value) {
    let number = |key: &str, default: usize| {
        query
            .get(key)
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

fn no_route(path: &str) -> (u16, Value) {
    error(
        404,
        7003,
        &format!("Could not route to {path}, perhaps your object identifier is invalid?"),
    )
}

/// `a=1&b=x%20y` as a map, percent-decoded.
fn parse_query(query: &str) -> BTreeMap<String, String> {
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
