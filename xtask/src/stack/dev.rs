//! `cargo xtask dev`: the whole stack on 127.0.0.1, until Ctrl-C.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::admin::client::{self, Admin, Key, KeyKind, RateLimit, Settings, key_label};
use crate::deploy::wrangler_config::Env;
use crate::stack::tools::root;
use crate::stack::{Config, Ports, Stack};
use crate::stack::{bundle, proc, tools};
use crate::step;

/// The first port of the dev stack, unless `TALLY_DEV_PORT` says otherwise.
const DEFAULT_PORT: u16 = 8787;

/// The project `cargo xtask dev` makes for trying Tally out.
const DEMO: &str = "demo";

/// Where the demo project's write key and read token are kept, in the stack directory.
const DEMO_KEYS: &str = "demo_keys.json";

/// The dev stack's first port: `TALLY_DEV_PORT`, else 8787.
pub fn base_port() -> Result<u16> {
    match std::env::var("TALLY_DEV_PORT") {
        Ok(v) => v
            .parse()
            .with_context(|| format!("TALLY_DEV_PORT={v:?} is not a port number")),
        Err(_) => Ok(DEFAULT_PORT),
    }
}

pub fn run(args: &[String]) -> Result<()> {
    if let Some(arg) = args.first() {
        bail!("`cargo xtask dev` takes no argument {arg:?}; set TALLY_DEV_PORT to move its ports");
    }
    let base = base_port()?;
    let started = Instant::now();
    tools::ensure()?;
    bundle::build_all()?;
    let dir = root().join(".tally/dev");
    let mut stack = Stack::start(Config {
        dir: dir.clone(),
        ports: Ports::fixed(base),
        echo: true,
        env: Env::Production,
        query_vars: Vec::new(),
        shared_vars: Vec::new(),
    })
    .context("the local stack did not start")?;

    let (front, ingest, query, aggregator) = (
        stack.url("front"),
        stack.url("ingest"),
        stack.url("query"),
        stack.url("aggregator"),
    );
    let admin = Admin::new(&query, &stack.admin_token()?);
    let keys = demo_keys(&admin, &dir.join(DEMO_KEYS))
        .context("could not set up the demo project through the query worker's admin API")?;
    step(&format!(
        "Tally is running (ready in {:.1} s). Ctrl-C stops it.",
        started.elapsed().as_secs_f64()
    ));
    let (write, read) = (&keys.write.secret, &keys.read.secret);
    println!(
        "  front       {front}      every path below, on one host (the base URL for clients)
  ingest      {ingest}      POST /v1/events, /track, /api/event
  query       {query}      GET /v1/projects/{{project}}/overview, /metrics, /v1/health, /v1/admin/...
  aggregator  {aggregator}      cron: GET /cdn-cgi/handler/scheduled?cron=*+*+*+*+*
  state       .tally/dev/ (delete it to start afresh); logs in .tally/dev/logs/

Project {DEMO} (its keys are kept in .tally/dev/{DEMO_KEYS}):
  write key   {write}
  read token  {read}

Send a first event and read it back, both through the front:
  curl -X POST {front}/v1/events -H 'authorization: Bearer {write}' -H 'content-type: application/json' \\
       -d '[{{\"name\":\"request\",\"route\":\"/hello\",\"status\":200,\"duration_ms\":12}}]'
  curl -H 'authorization: Bearer {read}' {front}/v1/projects/{DEMO}/overview

Its dashboard (sign in with the read token): {front}/dashboard/{DEMO}

More projects, write keys and read tokens: cargo xtask project --help"
    );

    loop {
        std::thread::sleep(Duration::from_millis(500));
        if proc::interrupted() {
            // The interrupt handler stops the workers and exits with 130.
            continue;
        }
        if let Some((worker, status)) = stack.exited() {
            stack.stop();
            bail!("{worker} stopped unexpectedly ({status}); see .tally/dev/logs/{worker}.log");
        }
    }
}

/// A key the dev stack hands out: its id, to check it is still live, and its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Saved {
    id: u64,
    secret: String,
}

/// The demo project's write key and read token.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DemoKeys {
    write: Saved,
    read: Saved,
}

/// Makes sure the demo project exists and has a live write key and read token: the ones
/// kept in `file` while the API still lists them unrevoked, else new ones (and `file`
/// is rewritten).
fn demo_keys(admin: &Admin, file: &Path) -> Result<DemoKeys> {
    step(&format!(
        "Making sure project {DEMO} has a write key and a read token"
    ));
    let settings = Settings {
        allowed_origins: Some(vec!["*".into()]),
        rate_limit: Some(RateLimit::Standard),
        ..Settings::default()
    };
    match admin.create_project(DEMO, &settings) {
        Ok(_) => println!("created project {DEMO}"),
        Err(e) if client::has_code(&e, client::PROJECT_EXISTS) => {
            println!("project {DEMO}: present");
        }
        Err(e) => return Err(e),
    }
    let saved = std::fs::read_to_string(file)
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .unwrap_or(Value::Null);
    let live = admin.keys(DEMO)?;
    let mut changed = false;
    let mut ensure = |kind: KeyKind| -> Result<Saved> {
        if let Some(saved) = saved_key(&saved[kind.as_str()])
            && is_live(&saved, kind, &live)
        {
            println!("{} {}: present", key_label(kind), saved.id);
            return Ok(saved);
        }
        let key = admin.create_key(DEMO, kind, Some("cargo xtask dev"))?;
        println!("created {} {}", key_label(kind), key.id);
        changed = true;
        Ok(Saved {
            id: key.id,
            secret: key.secret()?.to_owned(),
        })
    };
    let keys = DemoKeys {
        write: ensure(KeyKind::Write)?,
        read: ensure(KeyKind::Read)?,
    };
    if changed {
        let json = json!({
            "write": {"id": keys.write.id, "secret": keys.write.secret},
            "read": {"id": keys.read.id, "secret": keys.read.secret},
        });
        std::fs::write(file, serde_json::to_string_pretty(&json)? + "\n")
            .with_context(|| format!("writing {}", file.display()))?;
    }
    Ok(keys)
}

/// A key as kept in the keys file, if it is whole.
fn saved_key(v: &Value) -> Option<Saved> {
    Some(Saved {
        id: v["id"].as_u64()?,
        secret: v["secret"].as_str()?.to_owned(),
    })
}

/// Whether the API lists `saved` unrevoked, of this kind, and with the prefix of its
/// secret (a fresh state directory can reuse an id for another key).
fn is_live(saved: &Saved, kind: KeyKind, live: &[Key]) -> bool {
    live.iter().any(|k| {
        k.id == saved.id
            && k.kind == kind
            && k.revoked_at.is_none()
            && saved.secret.starts_with(&k.prefix)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u64, kind: KeyKind, prefix: &str, revoked: bool) -> Key {
        Key {
            id,
            kind,
            name: None,
            prefix: prefix.into(),
            created_at: "2025-01-02T03:04:05Z".into(),
            revoked_at: revoked.then(|| "2025-02-01T00:00:00Z".into()),
            secret: None,
        }
    }

    #[test]
    fn reuses_only_live_keys_it_kept() {
        let saved = Saved {
            id: 4,
            secret: "tw_ab12cdef".into(),
        };
        let live = |keys: &[Key]| is_live(&saved, KeyKind::Write, keys);
        assert!(live(&[key(4, KeyKind::Write, "tw_ab12cd", false)]));
        assert!(!live(&[]));
        assert!(!live(&[key(4, KeyKind::Write, "tw_ab12cd", true)]));
        assert!(!live(&[key(4, KeyKind::Read, "tw_ab12cd", false)]));
        assert!(!live(&[key(4, KeyKind::Write, "tw_ffffff", false)]));
        assert!(!live(&[key(5, KeyKind::Write, "tw_ab12cd", false)]));
    }

    #[test]
    fn reads_the_keys_file_leniently() {
        let file = json!({"write": {"id": 1, "secret": "tw_x"}, "read": {"id": "2"}});
        assert_eq!(
            saved_key(&file["write"]),
            Some(Saved {
                id: 1,
                secret: "tw_x".into()
            })
        );
        assert_eq!(saved_key(&file["read"]), None);
        assert_eq!(saved_key(&Value::Null["write"]), None);
    }
}
