//! The local stack: four `wrangler dev` processes (real workerd) on 127.0.0.1 sharing
//! one state directory (D1, KV, Queues) and one dev registry, through which the queue
//! and the front's service bindings cross processes. The consumer starts first and the
//! front last, after the two workers it binds; each worker must answer before the next
//! starts.
//!
//! The workers run from the configs `cargo xtask deploy` writes for an environment (with
//! the repository's placeholder ids), not from `wrangler/*.toml` directly: the stack
//! runs the names and vars a deploy gives. `cargo xtask dev` runs production's names,
//! the end-to-end tests staging's (every name suffixed `-staging`), so a name the
//! workers hard-code instead of reading from their config fails those tests.
//!
//! Beside the processes (this module): the pinned toolchain ([`tools`]), the wasm
//! bundles ([`bundle`]), child processes and their groups ([`proc`]) and `cargo xtask
//! dev` ([`dev`]), which runs a stack for a person.

pub mod bundle;
pub mod dev;
pub mod proc;
pub mod tools;

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::deploy::wrangler_config::Env;
use crate::stack::bundle::{WORKERS, rel};
use crate::{deploy, step};
use proc::Background;
use tools::root;

/// The HTTP and inspector ports of the four workers.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub aggregator: u16,
    pub ingest: u16,
    pub query: u16,
    pub front: u16,
    /// The workers' inspector ports, in [`WORKERS`] order.
    pub inspectors: [u16; 4],
}

impl Ports {
    /// Fixed ports for `cargo xtask dev`: ingest `base`, query `base + 1`, aggregator
    /// `base + 2`, the front `base + 3`; inspectors from `base + 100`. (The front came
    /// last, so the others kept their ports; two stacks need bases at least 4 apart.)
    pub fn fixed(base: u16) -> Self {
        Self {
            ingest: base,
            query: base + 1,
            aggregator: base + 2,
            front: base + 3,
            inspectors: [base + 100, base + 101, base + 102, base + 103],
        }
    }

    /// Eight ports free right now, for tests. They are taken from below Linux's ephemeral
    /// range (32768 and up), where the OS never hands out a port on its own: a port it
    /// reported free there could be given to another socket (workerd's, another
    /// stack's) before the worker binds it. The start is spread by time and process id.
    pub fn free() -> Result<Self> {
        const FIRST: u32 = 20_000;
        const SPAN: u32 = 12_000;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
            ^ std::process::id().rotate_left(13);
        let mut p = Vec::with_capacity(8);
        for i in 0..SPAN {
            let port = (FIRST + (seed.wrapping_add(i.wrapping_mul(7))) % SPAN) as u16;
            if !p.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
                p.push(port);
                if p.len() == 8 {
                    return Ok(Self {
                        aggregator: p[0],
                        ingest: p[1],
                        query: p[2],
                        front: p[3],
                        inspectors: [p[4], p[5], p[6], p[7]],
                    });
                }
            }
        }
        bail!(
            "could not find eight free ports on 127.0.0.1 between {FIRST} and {}",
            FIRST + SPAN
        )
    }

    fn of(&self, worker: &str) -> u16 {
        match worker {
            "aggregator" => self.aggregator,
            "ingest" => self.ingest,
            "front" => self.front,
            _ => self.query,
        }
    }
}

/// How to run the stack.
#[derive(Debug, Clone)]
pub struct Config {
    /// Holds `state/` (D1, KV, Queues), `registry/` and `logs/`.
    pub dir: PathBuf,
    pub ports: Ports,
    /// Also print each worker's output to the terminal, prefixed with its name.
    pub echo: bool,
    /// Whose names the workers run under: their configs are the ones a deploy to this
    /// environment writes, kept in `dir/wrangler/`.
    pub env: Env,
    /// `[vars]` of the query worker set otherwise than its config sets them (`--var`),
    /// such as a smaller `FILTER_ROW_BUDGET` for the end-to-end tests.
    pub query_vars: Vec<(&'static str, String)>,
    /// `[vars]` set otherwise in the aggregator and the query worker alike, such as a
    /// shorter `PLACEMENT_TTL_MS` (which both must read the same) for the end-to-end
    /// tests.
    pub shared_vars: Vec<(&'static str, String)>,
}

/// A running stack; dropping it stops all four workers and everything they started.
#[derive(Debug)]
pub struct Stack {
    pub config: Config,
    children: Vec<Background>,
}

impl Stack {
    /// Applies the migrations and starts the workers, consumer first.
    pub fn start(config: Config) -> Result<Self> {
        for worker in WORKERS {
            tools::require(
                &crate::stack::bundle::crate_dir(worker).join("build/index.js"),
                "run `cargo xtask build` first",
            )?;
        }
        std::fs::create_dir_all(config.dir.join("logs"))?;
        let configs_dir = config.dir.join("wrangler");
        step(&format!(
            "Writing {}'s configs into {}",
            config.env.as_str(),
            rel(&configs_dir)
        ));
        std::fs::create_dir_all(&configs_dir)
            .with_context(|| format!("creating {}", configs_dir.display()))?;
        let mut databases = Vec::new();
        for (worker_config, text) in deploy::placeholder_configs(config.env, &configs_dir)? {
            let path = configs_dir.join(format!("{}.toml", worker_config.worker));
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            if worker_config.worker == "aggregator" {
                for db in worker_config.d1()? {
                    if !databases.contains(&db.database_name) {
                        databases.push(db.database_name);
                    }
                }
            }
        }
        if databases.is_empty() {
            bail!("wrangler/aggregator.toml binds no D1 database");
        }
        // The control database and every data shard (shard 0 is the control database).
        for database in &databases {
            step(&format!(
                "Applying D1 migrations to {} in the local state in {}",
                config.env.name(database),
                rel(&config.dir.join("state"))
            ));
            let mut migrate = wrangler(&config);
            migrate
                .args(["d1", "migrations", "apply"])
                .arg(config.env.name(database))
                .arg("--local")
                .arg("-c")
                .arg(config_path(&config, "aggregator"))
                .arg("--persist-to")
                .arg(config.dir.join("state"))
                .stdin(Stdio::null());
            proc::run(
                &mut migrate,
                "check the SQL in migrations/; delete the state directory to start afresh",
            )?;
        }

        let mut stack = Self {
            config,
            children: Vec::new(),
        };
        for (i, worker) in WORKERS.into_iter().enumerate() {
            stack.start_worker(worker, i)?;
        }
        Ok(stack)
    }

    fn start_worker(&mut self, worker: &str, index: usize) -> Result<()> {
        let port = self.config.ports.of(worker);
        step(&format!("Starting {worker} on http://127.0.0.1:{port}"));
        let mut cmd = wrangler(&self.config);
        cmd.args(["dev", "-c"])
            .arg(config_path(&self.config, worker))
            .args(["--ip", "127.0.0.1", "--port", &port.to_string()])
            .args([
                "--inspector-port",
                &self.config.ports.inspectors[index].to_string(),
            ])
            .arg("--persist-to")
            .arg(self.config.dir.join("state"))
            .arg("--show-interactive-dev-session=false")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if worker == "ingest" || worker == "query" {
            // Ingest hashes user ids with it; the query worker hashes a `user_id` filter
            // the same way, so both get the same secret.
            cmd.arg("--var").arg(format!(
                "ID_SECRET:{}",
                local_secret(&self.config.dir, ID_SECRET_FILE)?
            ));
        }
        if worker == "query" {
            // Guards the admin API (projects, write keys, read tokens).
            let token = local_secret(&self.config.dir, ADMIN_TOKEN_FILE)?;
            cmd.arg("--var").arg(format!("ADMIN_TOKEN:{token}"));
            // Signs share links.
            let share = local_secret(&self.config.dir, SHARE_SECRET_FILE)?;
            cmd.arg("--var").arg(format!("SHARE_SECRET:{share}"));
            for (name, value) in &self.config.query_vars {
                cmd.arg("--var").arg(format!("{name}:{value}"));
            }
        }
        if worker == "query" || worker == "aggregator" {
            for (name, value) in &self.config.shared_vars {
                cmd.arg("--var").arg(format!("{name}:{value}"));
            }
        }
        if worker == "aggregator" {
            // Cron never fires by itself locally; this serves /cdn-cgi/handler/scheduled.
            cmd.arg("--test-scheduled");
        }
        let mut child = Background::spawn(worker, &mut cmd)?;
        let log = self.log_path(worker);
        let file = Arc::new(Mutex::new(
            File::create(&log).with_context(|| format!("creating {}", log.display()))?,
        ));
        let (out, err) = child.take_output();
        for stream in [out, err].into_iter().flatten() {
            copy_lines(stream, worker, Arc::clone(&file), self.config.echo);
        }
        let url = format!("http://127.0.0.1:{port}/");
        let started = Instant::now();
        let result = wait_until_answers(&url, &mut child, Duration::from_secs(90));
        self.children.push(child);
        match result {
            Ok(()) => {
                println!(
                    "{worker} answers at {url} ({:.1} s)",
                    started.elapsed().as_secs_f64()
                );
                Ok(())
            }
            Err(e) => bail!(
                "{e}\n--- last lines of {} ---\n{}\n  hint: a port may be in use, or the build is stale (cargo xtask build)",
                rel(&log),
                tail(&log, 30)
            ),
        }
    }

    /// The base URL of a worker.
    pub fn url(&self, worker: &str) -> String {
        format!("http://127.0.0.1:{}", self.config.ports.of(worker))
    }

    /// The token the query worker's admin API expects, made when the stack started.
    pub fn admin_token(&self) -> Result<String> {
        admin_token(&self.config.dir)
    }

    /// The log file of a worker.
    pub fn log_path(&self, worker: &str) -> PathBuf {
        self.config.dir.join("logs").join(format!("{worker}.log"))
    }

    /// The first worker that has exited, if any, with its status.
    pub fn exited(&mut self) -> Option<(String, std::process::ExitStatus)> {
        self.children
            .iter_mut()
            .find_map(|c| c.exited().map(|s| (c.name.clone(), s)))
    }

    /// Stops the workers, producers first.
    pub fn stop(&mut self) {
        while let Some(mut child) = self.children.pop() {
            child.stop();
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The generated config a worker of the stack runs from.
fn config_path(config: &Config, worker: &str) -> PathBuf {
    config.dir.join("wrangler").join(format!("{worker}.toml"))
}

/// wrangler, run from the repository root (config paths are relative to it), with its
/// dev registry and logs kept inside the stack's directory.
fn wrangler(config: &Config) -> Command {
    let mut cmd = tools::tool("wrangler");
    cmd.current_dir(root())
        .env("WRANGLER_REGISTRY_PATH", config.dir.join("registry"))
        .env("WRANGLER_LOG_PATH", config.dir.join("logs"))
        .env("FORCE_COLOR", "0");
    cmd
}

/// The file in a stack's directory that holds the query worker's `ADMIN_TOKEN`.
pub const ADMIN_TOKEN_FILE: &str = "admin_token";

/// The admin token of the stack in `dir`, as it was made when that stack first started.
///
/// # Errors
///
/// When no stack has started in `dir` yet, so there is no token file.
pub fn admin_token(dir: &Path) -> Result<String> {
    let path = dir.join(ADMIN_TOKEN_FILE);
    let token = std::fs::read_to_string(&path)
        .with_context(|| format!("reading the admin token in {}", path.display()))?;
    Ok(token.trim().to_owned())
}

/// The file in a stack's directory that holds the query worker's `SHARE_SECRET`.
pub const SHARE_SECRET_FILE: &str = "share_secret";

/// The file in a stack's directory that holds the `ID_SECRET` of ingest and query.
pub const ID_SECRET_FILE: &str = "id_secret";

/// The `ID_SECRET` of the stack in `dir` (ingest hashes identifiers with it), as it was
/// made when that stack first started.
///
/// # Errors
///
/// When no stack has started in `dir` yet.
pub fn id_secret(dir: &Path) -> Result<String> {
    let path = dir.join(ID_SECRET_FILE);
    let secret = std::fs::read_to_string(&path)
        .with_context(|| format!("reading the identifier secret in {}", path.display()))?;
    Ok(secret.trim().to_owned())
}

/// A secret of the stack kept in `dir/file`: random, made once per stack directory, so
/// it stays the same across restarts of `cargo xtask dev` (identifier hashes stay
/// stable, and tokens handed out keep working).
fn local_secret(dir: &Path, file: &str) -> Result<String> {
    let path = dir.join(file);
    if let Ok(secret) = std::fs::read_to_string(&path) {
        return Ok(secret.trim().to_owned());
    }
    let mut bytes = [0u8; 32];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .with_context(|| format!("reading /dev/urandom for the local {file}"))?;
    let secret = tally_core::hash::hex(&bytes);
    std::fs::write(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
    Ok(secret)
}

/// Copies a child's output line by line into its log, and to the terminal if asked.
fn copy_lines(stream: Box<dyn Read + Send>, worker: &str, log: Arc<Mutex<File>>, echo: bool) {
    let prefix = format!("[{worker}] ");
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if let Ok(mut file) = log.lock() {
                let _ = writeln!(file, "{line}");
            }
            if echo {
                println!("{prefix}{line}");
            }
        }
    });
}

/// Polls `url` until any HTTP answer comes back, the child exits, or `limit` passes.
fn wait_until_answers(url: &str, child: &mut Background, limit: Duration) -> Result<()> {
    let agent = agent(Duration::from_secs(2));
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.exited() {
            bail!("{} exited before answering ({status})", child.name);
        }
        if agent.get(url).call().is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{} did not answer at {url} within {limit:?}", child.name);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// An HTTP client that treats every status as an answer, not an error.
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into()
}

/// A path segment with every byte outside RFC 3986's unreserved set percent-encoded.
pub fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The start of a body, on one line, for error messages: every HTTP client of xtask
/// quotes answers it cannot use this way.
pub fn snippet(body: &str) -> String {
    let line = body.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None if line.is_empty() => "(empty body)".into(),
        None => line,
    }
}

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
