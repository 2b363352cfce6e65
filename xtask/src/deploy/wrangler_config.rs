//! The wrangler configs in `wrangler/`, read as data by `cargo xtask deploy`: which D1
//! databases, KV namespaces and queues the workers bind (so that deploy finds or creates
//! exactly those, whatever the configs name), and the configs deploy writes for one
//! environment, with real ids, the environment's names and paths that still resolve
//! from where they are written.
//!
//! Names: production keeps every name of `wrangler/*.toml`; staging appends `-staging`
//! to each (workers, the D1 database, queues, KV namespace titles). A worker learns the
//! names of the queues it consumes from `[vars]` (a batch says only its queue's name):
//! every var whose value is one of the config's queues is renamed with the queues, by
//! the same function, so the names a worker compares with are the names it is sent. A KV namespace has
//! no name in a config, so its title is `tally-` and its binding in lower case
//! (`CACHE` → `tally-cache`). Rate-limit namespaces are numbers shared by the whole
//! account: staging uses production's plus [`STAGING_RATELIMIT_OFFSET`]. A service
//! binding (`[[services]]`) names another of the workers by its `name`, and is renamed
//! with it; that worker must deploy first.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};
use toml::{Table, Value};

/// Added to a rate-limit `namespace_id` in staging, so that staging's counters are not
/// production's when both live in one account.
pub const STAGING_RATELIMIT_OFFSET: u64 = 1000;

/// The prefix of KV namespace titles; the binding's name follows, in lower case.
pub const KV_TITLE_PREFIX: &str = "tally-";

/// Config keys that bind or route something deploy does not know how to provision or
/// rename per environment. A config with one of them is refused rather than deployed
/// half right.
const UNSUPPORTED: [&str; 15] = [
    "env",
    "routes",
    "route",
    "r2_buckets",
    "durable_objects",
    "vectorize",
    "hyperdrive",
    "analytics_engine_datasets",
    "workflows",
    "dispatch_namespaces",
    "send_email",
    "pipelines",
    "secrets_store_secrets",
    "tail_consumers",
    "d1_databases.preview_database_id",
];

/// A deployment environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Env {
    Staging,
    Production,
}

impl Env {
    /// Reads `staging` or `production`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "staging" => Ok(Self::Staging),
            "production" => Ok(Self::Production),
            other => bail!("unknown environment {other:?}; use staging or production"),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Staging => "staging",
            Self::Production => "production",
        }
    }

    /// The name a worker, database, queue or KV namespace has in this environment.
    pub fn name(self, base: &str) -> String {
        match self {
            Self::Production => base.to_owned(),
            Self::Staging => format!("{base}-staging"),
        }
    }

    /// A rate-limit namespace id in this environment.
    pub fn ratelimit_namespace(self, id: u64) -> u64 {
        match self {
            Self::Production => id,
            Self::Staging => id + STAGING_RATELIMIT_OFFSET,
        }
    }
}

/// The title of the KV namespace bound as `binding` (production's; see [`Env::name`]).
pub fn kv_title(binding: &str) -> String {
    format!(
        "{KV_TITLE_PREFIX}{}",
        binding.to_ascii_lowercase().replace('_', "-")
    )
}

/// One worker's wrangler config, parsed.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub worker: &'static str,
    /// The file it was read from; relative paths in it are relative to its directory.
    pub path: PathBuf,
    table: Table,
}

/// A D1 binding of a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct D1Binding {
    pub binding: String,
    pub database_name: String,
}

/// A service binding of a config: another worker, by its production name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceBinding {
    pub binding: String,
    pub service: String,
}

/// A KV binding of a config, with the id the config gives (a placeholder in the repo).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvBinding {
    pub binding: String,
    pub id: String,
}

impl WorkerConfig {
    /// Reads `wrangler/<worker>.toml` under `root`.
    pub fn read(root: &Path, worker: &'static str) -> Result<Self> {
        let path = root.join("wrangler").join(format!("{worker}.toml"));
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Self::parse(worker, path, &text)
    }

    /// Parses a config's text.
    pub fn parse(worker: &'static str, path: PathBuf, text: &str) -> Result<Self> {
        let table: Table = text
            .parse()
            .with_context(|| format!("{} is not valid TOML", path.display()))?;
        let config = Self {
            worker,
            path,
            table,
        };
        config.check_supported()?;
        Ok(config)
    }

    fn check_supported(&self) -> Result<()> {
        for key in UNSUPPORTED {
            let present = match key.split_once('.') {
                None => self.table.contains_key(key),
                Some((array, member)) => self
                    .tables(array)
                    .unwrap_or_default()
                    .iter()
                    .any(|t| t.contains_key(member)),
            };
            if present {
                bail!(
                    "{} has `{key}`, which cargo xtask deploy cannot provision or name per \
                     environment yet\n  hint: teach xtask/src/deploy/wrangler_config.rs about it",
                    self.path.display()
                );
            }
        }
        Ok(())
    }

    /// The worker's script name (`name`), as in production.
    pub fn name(&self) -> Result<&str> {
        self.str(&self.table, "name")
    }

    /// The D1 databases the worker binds.
    pub fn d1(&self) -> Result<Vec<D1Binding>> {
        self.tables("d1_databases")?
            .into_iter()
            .map(|t| {
                Ok(D1Binding {
                    binding: self.str(t, "binding")?.to_owned(),
                    database_name: self.str(t, "database_name")?.to_owned(),
                })
            })
            .collect()
    }

    /// The KV namespaces the worker binds.
    pub fn kv(&self) -> Result<Vec<KvBinding>> {
        self.tables("kv_namespaces")?
            .into_iter()
            .map(|t| {
                Ok(KvBinding {
                    binding: self.str(t, "binding")?.to_owned(),
                    id: self.str(t, "id")?.to_owned(),
                })
            })
            .collect()
    }

    /// The queues the worker sends to (`[[queues.producers]]`).
    pub fn produces(&self) -> Result<Vec<String>> {
        self.queue_tables("producers")?
            .into_iter()
            .map(|t| Ok(self.str(t, "queue")?.to_owned()))
            .collect()
    }

    /// The queues the worker consumes, and the dead-letter queues its consumers name.
    pub fn consumes(&self) -> Result<(Vec<String>, Vec<String>)> {
        let (mut queues, mut dead_letters) = (Vec::new(), Vec::new());
        for t in self.queue_tables("consumers")? {
            queues.push(self.str(t, "queue")?.to_owned());
            if t.contains_key("dead_letter_queue") {
                dead_letters.push(self.str(t, "dead_letter_queue")?.to_owned());
            }
        }
        Ok((queues, dead_letters))
    }

    /// The workers this one binds (`[[services]]`): binding name and worker name, as in
    /// production.
    pub fn services(&self) -> Result<Vec<ServiceBinding>> {
        self.tables("services")?
            .into_iter()
            .map(|t| {
                if t.contains_key("environment") || t.contains_key("entrypoint") {
                    bail!(
                        "{}: a service binding names its worker only (`binding`, `service`); \
                         deploy renames the worker per environment",
                        self.path.display()
                    );
                }
                Ok(ServiceBinding {
                    binding: self.str(t, "binding")?.to_owned(),
                    service: self.str(t, "service")?.to_owned(),
                })
            })
            .collect()
    }

    /// The `[vars]` of the config whose values are strings, by name.
    pub fn vars(&self) -> Result<BTreeMap<String, String>> {
        match self.table.get("vars") {
            None => Ok(BTreeMap::new()),
            Some(Value::Table(vars)) => Ok(vars
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()),
            Some(_) => bail!("{}: `vars` must be a table", self.path.display()),
        }
    }

    /// Checks that each queue the worker consumes is named by exactly one var: the
    /// worker tells its queues apart by comparing a batch's queue name with those vars,
    /// so a consumed queue without one would be a batch it cannot place.
    pub fn check_queue_vars(&self) -> Result<()> {
        let vars = self.vars()?;
        for queue in self.consumes()?.0 {
            let naming: Vec<&str> = vars
                .iter()
                .filter(|(_, value)| **value == queue)
                .map(|(name, _)| name.as_str())
                .collect();
            if naming.len() != 1 {
                bail!(
                    "{} consumes queue {queue}, which {} of its [vars] name ({}), not exactly \
                     one; the worker tells its queues apart by those vars\n  hint: give the \
                     queue one var, such as EVENTS_QUEUE = \"{queue}\", and read it in the \
                     worker",
                    self.path.display(),
                    naming.len(),
                    naming.join(", ")
                );
            }
        }
        Ok(())
    }

    /// Every queue the worker names, as producer, consumer or dead-letter queue.
    pub fn queues(&self) -> Result<BTreeSet<String>> {
        let (consumed, dead_letters) = self.consumes()?;
        Ok(self
            .produces()?
            .into_iter()
            .chain(consumed)
            .chain(dead_letters)
            .collect())
    }

    /// The rate-limit namespace ids the worker uses.
    pub fn ratelimit_namespaces(&self) -> Result<Vec<u64>> {
        self.tables("ratelimits")?
            .into_iter()
            .map(|t| {
                let id = self.str(t, "namespace_id")?;
                id.parse().with_context(|| {
                    format!(
                        "{}: ratelimit namespace_id {id:?} is not a whole number",
                        self.path.display()
                    )
                })
            })
            .collect()
    }

    /// The config for one environment: the environment's names, the real ids of
    /// `ids`, `[secrets] required` set to `secrets`, and `main` and `migrations_dir`
    /// rewritten to resolve from `out_dir`, where the file will be written.
    pub fn generate(
        &self,
        env: Env,
        ids: &Ids,
        secrets: &[&str],
        out_dir: &Path,
    ) -> Result<String> {
        let from = self
            .path
            .parent()
            .context("a config path has a directory")?;
        let mut t = self.table.clone();
        t.insert("name".into(), Value::String(env.name(self.name()?)));
        let main = self.str(&self.table, "main")?;
        t.insert("main".into(), Value::String(rebase(from, main, out_dir)));
        for db in array_tables(&mut t, "d1_databases") {
            let name = self.str(db, "database_name")?.to_owned();
            let id = ids.databases.get(&name).with_context(|| {
                format!("no id for D1 database {name:?} of {}", self.path.display())
            })?;
            db.insert("database_name".into(), Value::String(env.name(&name)));
            db.insert("database_id".into(), Value::String(id.clone()));
            // Wrangler's default is `migrations` next to the config: keep it pointing at
            // the same directory from the new place.
            let dir = match db.get("migrations_dir") {
                Some(dir) => dir.as_str().map(str::to_owned).with_context(|| {
                    format!("{}: migrations_dir is not a string", self.path.display())
                })?,
                None => "migrations".to_owned(),
            };
            db.insert(
                "migrations_dir".into(),
                Value::String(rebase(from, &dir, out_dir)),
            );
        }
        for kv in array_tables(&mut t, "kv_namespaces") {
            let binding = self.str(kv, "binding")?.to_owned();
            let id = ids.kv.get(&binding).with_context(|| {
                format!(
                    "no id for KV binding {binding:?} of {}",
                    self.path.display()
                )
            })?;
            kv.insert("id".into(), Value::String(id.clone()));
        }
        // Queues and the vars that name them are renamed by this one function, so the
        // names a worker dispatches by are the names of the queues it is sent.
        let queue_names = self.queues()?;
        let rename_queue = |value: &mut Value| {
            if let Some(name) = value.as_str().filter(|n| queue_names.contains(*n)) {
                *value = Value::String(env.name(name));
            }
        };
        if let Some(Value::Table(queues)) = t.get_mut("queues") {
            for (kind, members) in [
                ("producers", &["queue"][..]),
                ("consumers", &["queue", "dead_letter_queue"][..]),
            ] {
                for q in array_tables(queues, kind) {
                    for member in members {
                        if let Some(value) = q.get_mut(*member) {
                            rename_queue(value);
                        }
                    }
                }
            }
        }
        if let Some(Value::Table(vars)) = t.get_mut("vars") {
            vars.iter_mut().for_each(|(_, value)| rename_queue(value));
        }
        // A bound worker has its environment's name, as it is deployed under it.
        for service in array_tables(&mut t, "services") {
            let name = self.str(service, "service")?.to_owned();
            service.insert("service".into(), Value::String(env.name(&name)));
        }
        for limit in array_tables(&mut t, "ratelimits") {
            let id: u64 = self
                .str(limit, "namespace_id")?
                .parse()
                .with_context(|| format!("{}: bad namespace_id", self.path.display()))?;
            let id = env.ratelimit_namespace(id).to_string();
            limit.insert("namespace_id".into(), Value::String(id));
        }
        if !secrets.is_empty() {
            let mut section = Table::new();
            let names = secrets.iter().map(|s| Value::String((*s).into())).collect();
            section.insert("required".into(), Value::Array(names));
            t.insert("secrets".into(), Value::Table(section));
        }
        let body = toml::to_string(&t)
            .with_context(|| format!("writing the {} config as TOML", self.worker))?;
        let source = self
            .path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        Ok(format!(
            "# Generated by `cargo xtask deploy --env {}` from wrangler/{source}; every run\n\
             # writes it anew, so change wrangler/{source} instead.\n\n{body}",
            env.as_str()
        ))
    }

    fn str<'a>(&self, t: &'a Table, key: &str) -> Result<&'a str> {
        t.get(key)
            .and_then(Value::as_str)
            .with_context(|| format!("{}: `{key}` must be a string", self.path.display()))
    }

    /// The tables of an array of tables such as `[[d1_databases]]`; none if absent.
    fn tables(&self, key: &str) -> Result<Vec<&Table>> {
        tables_of(&self.table, key, &self.path)
    }

    fn queue_tables(&self, kind: &str) -> Result<Vec<&Table>> {
        match self.table.get("queues") {
            None => Ok(Vec::new()),
            Some(Value::Table(queues)) => tables_of(queues, kind, &self.path),
            Some(_) => bail!("{}: `queues` must be a table", self.path.display()),
        }
    }
}

fn tables_of<'a>(t: &'a Table, key: &str, path: &Path) -> Result<Vec<&'a Table>> {
    match t.get(key) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_table().with_context(|| {
                    format!("{}: `{key}` must be an array of tables", path.display())
                })
            })
            .collect(),
        Some(_) => bail!("{}: `{key}` must be an array of tables", path.display()),
    }
}

/// The tables of an array of tables, to change in place; none if absent.
fn array_tables<'a>(t: &'a mut Table, key: &str) -> Vec<&'a mut Table> {
    match t.get_mut(key) {
        Some(Value::Array(items)) => items.iter_mut().filter_map(Value::as_table_mut).collect(),
        _ => Vec::new(),
    }
}

/// The ids deploy found or made, by production name: D1 databases by name, KV
/// namespaces by binding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ids {
    pub databases: BTreeMap<String, String>,
    pub kv: BTreeMap<String, String>,
}

impl Ids {
    /// The ids the configs themselves give (placeholders in the repository), for a dry
    /// run, which looks nothing up.
    pub fn placeholders(configs: &[WorkerConfig]) -> Result<Self> {
        let mut ids = Self::default();
        for config in configs {
            for (db, t) in config.d1()?.into_iter().zip(config.tables("d1_databases")?) {
                let id = config.str(t, "database_id").unwrap_or("unknown");
                ids.databases.insert(db.database_name, id.to_owned());
            }
            for kv in config.kv()? {
                ids.kv.insert(kv.binding, kv.id);
            }
        }
        Ok(ids)
    }
}

/// What the selected workers need to exist, by production name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    /// D1 database names.
    pub databases: BTreeSet<String>,
    /// KV bindings (each one namespace, titled [`kv_title`]).
    pub kv: BTreeSet<String>,
    /// Queue names, from producers, consumers and dead-letter queues.
    pub queues: BTreeSet<String>,
}

/// What `configs` bind, checked for consistency: one KV binding name means one
/// namespace everywhere, and staging's rate-limit namespaces stay clear of production's.
pub fn needs(configs: &[WorkerConfig]) -> Result<Needs> {
    let mut needs = Needs::default();
    let mut kv_ids: BTreeMap<String, (String, &Path)> = BTreeMap::new();
    let mut ratelimits = BTreeSet::new();
    for config in configs {
        config.name()?;
        config.str(&config.table, "main")?;
        for db in config.d1()? {
            needs.databases.insert(db.database_name);
        }
        for kv in config.kv()? {
            if let Some((id, other)) = kv_ids.get(&kv.binding)
                && *id != kv.id
            {
                bail!(
                    "KV binding {} has id {id} in {} but {} in {}; deploy gives one binding \
                     name one namespace\n  hint: use the same id, or different binding names",
                    kv.binding,
                    other.display(),
                    kv.id,
                    config.path.display()
                );
            }
            kv_ids.insert(kv.binding.clone(), (kv.id, &config.path));
            needs.kv.insert(kv.binding);
        }
        needs.queues.extend(config.queues()?);
        config.check_queue_vars()?;
        ratelimits.extend(config.ratelimit_namespaces()?);
    }
    for id in &ratelimits {
        let staging = Env::Staging.ratelimit_namespace(*id);
        if ratelimits.contains(&staging) {
            bail!(
                "rate-limit namespace {staging} is production's, and staging's too (production's \
                 {id} plus {STAGING_RATELIMIT_OFFSET})\n  hint: keep production's namespace_ids \
                 below {STAGING_RATELIMIT_OFFSET} apart, or change STAGING_RATELIMIT_OFFSET"
            );
        }
    }
    Ok(needs)
}

/// Checks that every queue's consumers deploy before its producers, in `order`: a
/// producer deployed first would send to a queue nobody reads yet. And that a worker
/// bound by another deploys before it: Cloudflare refuses a service binding to a worker
/// that does not exist yet.
pub fn check_order(configs: &[WorkerConfig]) -> Result<()> {
    for (i, config) in configs.iter().enumerate() {
        for service in config.services()? {
            for later in &configs[i + 1..] {
                if later.name()? == service.service {
                    bail!(
                        "{} binds worker {} ({}), which deploys after it\n  hint: put {} \
                         before {} in bundle::WORKERS",
                        config.worker,
                        service.service,
                        service.binding,
                        later.worker,
                        config.worker
                    );
                }
            }
        }
    }
    for (i, producer) in configs.iter().enumerate() {
        for queue in producer.produces()? {
            for consumer in &configs[i + 1..] {
                if consumer.consumes()?.0.contains(&queue) {
                    bail!(
                        "{} sends to queue {queue}, which {} consumes, yet deploys first\n  \
                         hint: put consumers before producers in bundle::WORKERS",
                        producer.worker,
                        consumer.worker
                    );
                }
            }
        }
    }
    Ok(())
}

/// Checks that every service binding of `configs` names one of the workers of `all` (the
/// repository's configs): deploy renames only those per environment.
pub fn check_services(configs: &[WorkerConfig], all: &[WorkerConfig]) -> Result<()> {
    let names = all
        .iter()
        .map(|c| c.name().map(str::to_owned))
        .collect::<Result<BTreeSet<_>>>()?;
    for config in configs {
        for service in config.services()? {
            if !names.contains(&service.service) {
                bail!(
                    "{} binds {} to worker {:?}, which is none of Tally's workers ({})\n  \
                     hint: name a worker by the `name` in its wrangler/<worker>.toml",
                    config.path.display(),
                    service.binding,
                    service.service,
                    names.iter().cloned().collect::<Vec<_>>().join(", ")
                );
            }
        }
    }
    Ok(())
}

/// `path`, relative to `from` (a directory), made relative to `to` (another one). Both
/// are compared lexically; an absolute `path` stays as it is.
pub fn rebase(from: &Path, path: &str, to: &Path) -> String {
    if Path::new(path).is_absolute() {
        return path.to_owned();
    }
    let target = normalize(&from.join(path));
    let to = normalize(to);
    let (target_parts, to_parts): (Vec<_>, Vec<_>) =
        (target.components().collect(), to.components().collect());
    let common = target_parts
        .iter()
        .zip(&to_parts)
        .take_while(|(a, b)| a == b)
        .count();
    let mut out = PathBuf::new();
    for _ in common..to_parts.len() {
        out.push("..");
    }
    for part in &target_parts[common..] {
        out.push(part);
    }
    out.to_string_lossy().into_owned()
}

/// `path` with `.` and `..` resolved lexically.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Configs for tests: the repository's, trimmed, with the alerts queues another change
/// adds to the aggregator (so tests also show that nothing is hard-coded).
#[cfg(test)]
pub mod fixtures {
    /// The aggregator's config as it is about to be, with the alerts queues.
    pub const AGGREGATOR: &str = r#"
name = "tally-aggregator"
main = "../workers/aggregator/build/index.js"
compatibility_date = "2025-10-01"

[triggers]
crons = ["* * * * *"]

[[queues.producers]]
binding = "ALERTS"
queue = "tally-alerts"

[[queues.consumers]]
queue = "tally-events"
max_batch_size = 100
dead_letter_queue = "tally-events-dlq"

[[queues.consumers]]
queue = "tally-events-dlq"

[[queues.consumers]]
queue = "tally-alerts"
dead_letter_queue = "tally-alerts-dlq"

[[queues.consumers]]
queue = "tally-alerts-dlq"

[[queues.producers]]
binding = "JOBS"
queue = "tally-jobs"

[[queues.consumers]]
queue = "tally-jobs"
max_batch_size = 1

[vars]
EVENTS_QUEUE = "tally-events"
EVENTS_DLQ = "tally-events-dlq"
ALERTS_QUEUE = "tally-alerts"
ALERTS_DLQ = "tally-alerts-dlq"
JOBS_QUEUE = "tally-jobs"
GREETING = "tally-events is not renamed here"

[[d1_databases]]
binding = "DB"
database_name = "tally"
database_id = "00000000-0000-4000-8000-00000000d1db"
migrations_dir = "../migrations"

[[kv_namespaces]]
binding = "CACHE"
id = "00000000000000000000000000000ca1"
"#;

    pub const INGEST: &str = r#"
name = "tally-ingest"
main = "../workers/ingest/build/index.js"
compatibility_date = "2025-10-01"

[[queues.producers]]
binding = "EVENTS"
queue = "tally-events"

[[d1_databases]]
binding = "DB"
database_name = "tally"
database_id = "00000000-0000-4000-8000-00000000d1db"

[[kv_namespaces]]
binding = "CACHE"
id = "00000000000000000000000000000ca1"

[[ratelimits]]
name = "RATE_LIMIT_STRICT"
namespace_id = "1001"
simple = { limit = 10, period = 10 }
"#;

    pub const FRONT: &str = r#"
name = "tally-front"
main = "../workers/front/build/index.js"
compatibility_date = "2025-10-01"

[[services]]
binding = "INGEST"
service = "tally-ingest"

[[services]]
binding = "QUERY"
service = "tally-query"
"#;

    pub const QUERY: &str = r#"
name = "tally-query"
main = "../workers/query/build/index.js"
compatibility_date = "2025-10-01"

[[d1_databases]]
binding = "DB"
database_name = "tally"
database_id = "00000000-0000-4000-8000-00000000d1db"
migrations_dir = "../migrations"

[[kv_namespaces]]
binding = "CACHE"
id = "00000000000000000000000000000ca1"
"#;
}

#[cfg(test)]
mod tests {
    use super::fixtures::{AGGREGATOR, FRONT, INGEST, QUERY};
    use super::*;

    fn config(worker: &'static str, text: &str) -> WorkerConfig {
        WorkerConfig::parse(
            worker,
            PathBuf::from(format!("/repo/wrangler/{worker}.toml")),
            text,
        )
        .unwrap()
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn needs_come_from_every_section_of_every_config() {
        let configs = [config("aggregator", AGGREGATOR), config("ingest", INGEST)];
        let needs = needs(&configs).unwrap();
        assert_eq!(needs.databases, set(&["tally"]));
        assert_eq!(needs.kv, set(&["CACHE"]));
        assert_eq!(
            needs.queues,
            set(&[
                "tally-alerts",
                "tally-alerts-dlq",
                "tally-events",
                "tally-events-dlq",
                "tally-jobs"
            ])
        );
        assert_eq!(
            configs[0].produces().unwrap(),
            ["tally-alerts", "tally-jobs"]
        );
        check_order(&configs).unwrap();
    }

    #[test]
    fn producers_before_their_consumers_are_refused() {
        let configs = [config("ingest", INGEST), config("aggregator", AGGREGATOR)];
        let e = check_order(&configs).unwrap_err().to_string();
        assert!(
            e.starts_with("ingest sends to queue tally-events, which aggregator consumes"),
            "{e}"
        );
    }

    #[test]
    fn service_bindings_are_renamed_with_their_workers_which_deploy_first() {
        let services = |t: &Table| -> Vec<(String, String)> {
            t["services"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    (
                        s["binding"].as_str().unwrap().to_owned(),
                        s["service"].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        };
        let pair = |b: &str, s: &str| (b.to_owned(), s.to_owned());
        assert_eq!(
            services(&generated("front", FRONT, Env::Staging, &[])),
            [
                pair("INGEST", "tally-ingest-staging"),
                pair("QUERY", "tally-query-staging")
            ]
        );
        assert_eq!(
            services(&generated("front", FRONT, Env::Production, &[])),
            [pair("INGEST", "tally-ingest"), pair("QUERY", "tally-query")]
        );
        // Binding the other workers needs nothing created.
        assert_eq!(needs(&[config("front", FRONT)]).unwrap(), Needs::default());

        let all = [
            config("ingest", INGEST),
            config("query", QUERY),
            config("front", FRONT),
        ];
        check_order(&all).unwrap();
        check_services(&all, &all).unwrap();
        let e = check_order(&[
            config("ingest", INGEST),
            config("front", FRONT),
            config("query", QUERY),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("front binds worker tally-query (QUERY), which deploys after it"),
            "{e}"
        );
        let typo = config(
            "front",
            &FRONT.replace("\"tally-query\"", "\"tally-qeury\""),
        );
        let e = check_services(std::slice::from_ref(&typo), &all)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("binds QUERY to worker \"tally-qeury\", which is none of Tally's workers"),
            "{e}"
        );
        let text = format!("{FRONT}environment = \"production\"\n");
        let e = config("front", &text).services().unwrap_err().to_string();
        assert!(e.contains("names its worker only"), "{e}");
    }

    #[test]
    fn one_kv_binding_must_be_one_namespace() {
        let other = INGEST.replace("00000000000000000000000000000ca1", "beef");
        let e = needs(&[config("aggregator", AGGREGATOR), config("ingest", &other)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("KV binding CACHE has id"), "{e}");
    }

    #[test]
    fn staging_ratelimit_namespaces_may_not_be_production_ones() {
        let clash = format!(
            "{INGEST}\n[[ratelimits]]\nname = \"B\"\nnamespace_id = \"2001\"\nsimple = {{ limit = 1, period = 10 }}\n"
        );
        let e = needs(&[config("ingest", &clash)]).unwrap_err().to_string();
        assert!(
            e.contains("rate-limit namespace 2001 is production's"),
            "{e}"
        );
    }

    #[test]
    fn unsupported_bindings_are_refused_by_name() {
        let text = format!("{INGEST}\n[[r2_buckets]]\nbinding = \"B\"\nbucket_name = \"b\"\n");
        let e = WorkerConfig::parse("ingest", "/repo/wrangler/ingest.toml".into(), &text)
            .unwrap_err()
            .to_string();
        assert!(e.contains("has `r2_buckets`"), "{e}");
    }

    #[test]
    fn paths_are_rebased_lexically() {
        let check = |from: &str, path: &str, to: &str, expected: &str| {
            assert_eq!(
                rebase(Path::new(from), path, Path::new(to)),
                expected,
                "{path}"
            );
        };
        check(
            "/r/wrangler",
            "../workers/a/build/index.js",
            "/r/target/deploy/staging",
            "../../../workers/a/build/index.js",
        );
        check(
            "/r/wrangler",
            "../migrations",
            "/r/target/deploy/production",
            "../../../migrations",
        );
        check(
            "/r/wrangler",
            "migrations",
            "/r/target/deploy/production",
            "../../../wrangler/migrations",
        );
        check("/r/wrangler", "./x/../y", "/r/wrangler", "y");
        check("/r/wrangler", "/abs/main.js", "/elsewhere", "/abs/main.js");
    }

    fn ids() -> Ids {
        Ids {
            databases: [("tally".to_owned(), "d1-uuid".to_owned())].into(),
            kv: [("CACHE".to_owned(), "kv-id".to_owned())].into(),
        }
    }

    /// The generated config, parsed back.
    fn generated(worker: &'static str, text: &str, env: Env, secrets: &[&str]) -> Table {
        let out = Path::new("/repo/target/deploy").join(env.as_str());
        let text = config(worker, text)
            .generate(env, &ids(), secrets, &out)
            .unwrap();
        assert!(
            text.starts_with("# Generated by `cargo xtask deploy --env"),
            "{text}"
        );
        text.parse().unwrap()
    }

    #[test]
    fn production_configs_keep_names_and_get_ids() {
        let t = generated("aggregator", AGGREGATOR, Env::Production, &[]);
        assert_eq!(t["name"].as_str(), Some("tally-aggregator"));
        assert_eq!(
            t["main"].as_str(),
            Some("../../../workers/aggregator/build/index.js")
        );
        let db = &t["d1_databases"][0];
        assert_eq!(db["database_name"].as_str(), Some("tally"));
        assert_eq!(db["database_id"].as_str(), Some("d1-uuid"));
        assert_eq!(db["migrations_dir"].as_str(), Some("../../../migrations"));
        assert_eq!(t["kv_namespaces"][0]["id"].as_str(), Some("kv-id"));
        assert_eq!(
            t["queues"]["consumers"][0]["max_batch_size"].as_integer(),
            Some(100)
        );
        assert_eq!(t["triggers"]["crons"][0].as_str(), Some("* * * * *"));
        assert!(!t.contains_key("secrets"), "the aggregator has no secrets");
    }

    #[test]
    fn staging_configs_rename_everything_and_move_rate_limits() {
        let t = generated("aggregator", AGGREGATOR, Env::Staging, &[]);
        assert_eq!(t["name"].as_str(), Some("tally-aggregator-staging"));
        assert_eq!(
            t["d1_databases"][0]["database_name"].as_str(),
            Some("tally-staging")
        );
        assert_eq!(
            t["queues"]["producers"][0]["queue"].as_str(),
            Some("tally-alerts-staging")
        );
        let consumers = t["queues"]["consumers"].as_array().unwrap();
        let named: Vec<(Option<&str>, Option<&str>)> = consumers
            .iter()
            .map(|c| {
                (
                    c["queue"].as_str(),
                    c.get("dead_letter_queue").and_then(Value::as_str),
                )
            })
            .collect();
        assert_eq!(
            named,
            [
                (
                    Some("tally-events-staging"),
                    Some("tally-events-dlq-staging")
                ),
                (Some("tally-events-dlq-staging"), None),
                (
                    Some("tally-alerts-staging"),
                    Some("tally-alerts-dlq-staging")
                ),
                (Some("tally-alerts-dlq-staging"), None),
                (Some("tally-jobs-staging"), None),
            ]
        );

        let t = generated("ingest", INGEST, Env::Staging, &["ID_SECRET"]);
        assert_eq!(t["ratelimits"][0]["namespace_id"].as_str(), Some("2001"));
        assert_eq!(t["ratelimits"][0]["simple"]["limit"].as_integer(), Some(10));
        // Ingest's config names no migrations_dir: wrangler's default, next to the config.
        assert_eq!(
            t["d1_databases"][0]["migrations_dir"].as_str(),
            Some("../../../wrangler/migrations")
        );
        assert_eq!(t["secrets"]["required"][0].as_str(), Some("ID_SECRET"));
        let t = generated("ingest", INGEST, Env::Production, &[]);
        assert_eq!(t["ratelimits"][0]["namespace_id"].as_str(), Some("1001"));
    }

    /// The names of the queues a generated config's consumers are sent, and the values
    /// of its vars that name one of them.
    fn consumed_and_named(t: &Table) -> (BTreeSet<String>, BTreeSet<String>) {
        let consumed: BTreeSet<String> = t["queues"]["consumers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["queue"].as_str().unwrap().to_owned())
            .collect();
        let named = t
            .get("vars")
            .and_then(Value::as_table)
            .into_iter()
            .flat_map(Table::values)
            .filter_map(Value::as_str)
            .filter(|v| consumed.contains(*v))
            .map(str::to_owned)
            .collect();
        (consumed, named)
    }

    #[test]
    fn queue_vars_are_renamed_with_the_queues() {
        let t = generated("aggregator", AGGREGATOR, Env::Staging, &[]);
        let vars = t["vars"].as_table().unwrap();
        let var = |name: &str| vars[name].as_str().unwrap();
        assert_eq!(var("EVENTS_QUEUE"), "tally-events-staging");
        assert_eq!(var("EVENTS_DLQ"), "tally-events-dlq-staging");
        assert_eq!(var("ALERTS_QUEUE"), "tally-alerts-staging");
        assert_eq!(var("ALERTS_DLQ"), "tally-alerts-dlq-staging");
        assert_eq!(var("JOBS_QUEUE"), "tally-jobs-staging");
        // A var that is not exactly a queue's name keeps its value.
        assert_eq!(var("GREETING"), "tally-events is not renamed here");
        let (consumed, named) = consumed_and_named(&t);
        assert_eq!(named, consumed);

        let t = generated("aggregator", AGGREGATOR, Env::Production, &[]);
        assert_eq!(t["vars"]["ALERTS_QUEUE"].as_str(), Some("tally-alerts"));
    }

    #[test]
    fn a_consumed_queue_named_by_no_var_or_two_is_refused() {
        let check = |text: &str, expected: &str| {
            let e = needs(&[config("aggregator", text)])
                .unwrap_err()
                .to_string();
            assert!(e.contains(expected), "{e}");
        };
        check(
            &AGGREGATOR.replace("ALERTS_DLQ = \"tally-alerts-dlq\"\n", ""),
            "consumes queue tally-alerts-dlq, which 0 of its [vars] name",
        );
        check(
            &AGGREGATOR.replace("GREETING = ", "AGAIN = \"tally-events\"\nGREETING = "),
            "consumes queue tally-events, which 2 of its [vars] name (AGAIN, EVENTS_QUEUE)",
        );
    }

    /// The repository's aggregator, as deployed to each environment: every queue its
    /// consumers are sent is named by its vars, so its dispatch knows every batch.
    #[test]
    fn the_generated_configs_vars_name_every_consumed_queue() {
        let aggregator = WorkerConfig::read(crate::stack::tools::root(), "aggregator").unwrap();
        let ids = Ids::placeholders(std::slice::from_ref(&aggregator)).unwrap();
        for env in [Env::Staging, Env::Production] {
            let out = crate::stack::tools::root()
                .join("target/deploy")
                .join(env.as_str());
            let t: Table = aggregator
                .generate(env, &ids, &[], &out)
                .unwrap()
                .parse()
                .unwrap();
            let (consumed, named) = consumed_and_named(&t);
            assert_eq!(consumed.len(), 5, "{consumed:?}");
            assert_eq!(named, consumed, "{}", env.as_str());
        }
    }

    #[test]
    fn kv_titles_and_env_names() {
        assert_eq!(kv_title("CACHE"), "tally-cache");
        assert_eq!(kv_title("SHARE_LINKS"), "tally-share-links");
        assert_eq!(Env::Staging.name(&kv_title("CACHE")), "tally-cache-staging");
        assert_eq!(Env::Production.name("tally-events"), "tally-events");
        assert!(Env::parse("prod").is_err());
    }

    #[test]
    fn placeholder_ids_come_from_the_configs() {
        let ids = Ids::placeholders(&[config("aggregator", AGGREGATOR)]).unwrap();
        assert_eq!(
            ids.databases["tally"],
            "00000000-0000-4000-8000-00000000d1db"
        );
        assert_eq!(ids.kv["CACHE"], "00000000000000000000000000000ca1");
    }

    #[test]
    fn the_repository_configs_deploy_cleanly() {
        let configs: Vec<WorkerConfig> = crate::stack::bundle::WORKERS
            .iter()
            .map(|w| WorkerConfig::read(crate::stack::tools::root(), w).unwrap())
            .collect();
        let needs = needs(&configs).unwrap();
        assert!(needs.databases.contains("tally"), "{needs:?}");
        assert!(needs.queues.contains("tally-events"), "{needs:?}");
        check_order(&configs).unwrap();
        check_services(&configs, &configs).unwrap();
    }
}
