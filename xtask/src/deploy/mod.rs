//! `cargo xtask deploy [--env staging|production] [--only WORKER] [--dry-run]`: put
//! Tally on a Cloudflare account, or (`--dry-run`) package it offline.
//!
//! A real run has two halves. [`prepare`] talks to Cloudflare's API: it picks the
//! account, checks the workers' secrets (before anything is created, so a refusal
//! leaves the account as it was), finds or creates every D1 database, KV namespace and
//! queue the wrangler configs name, and plans the rest: the generated configs with real
//! ids, the migrations and the deploys in order, consumers first. [`execute`] carries
//! the plan out with the pinned wrangler. Tests run `prepare` against a stand-in of the
//! API and assert the plan, and run `execute` too, wrangler and all, against the same
//! stand-in.
//!
//! A dry run writes the configs with the repository's placeholder ids to
//! `target/deploy/dry-run/<env>/` and packages each worker there
//! (`wrangler deploy --dry-run --outdir`), so the generated configs are checked by
//! wrangler offline on every `cargo xtask test`.
//!
//! Secrets reach a worker inside its deploy (`wrangler deploy --secrets-file`, which
//! adds to the secrets a worker has and deletes none), so no deployed version lacks
//! them; the generated configs list them under `[secrets] required`, so wrangler refuses
//! to deploy a worker whose secret is neither uploaded nor already there.
//!
//! Beside it: the client of Cloudflare's API ([`cloudflare`]), the wrangler configs read
//! as data and written per environment ([`wrangler_config`]) and, for tests, an
//! in-process stand-in of the API (`cf_stand_in`).

#[cfg(test)]
mod cf_stand_in;
pub mod cloudflare;
pub mod wrangler_config;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result, bail};

use crate::stack::bundle::{self, WORKERS};
use crate::stack::proc;
use crate::stack::tools::{self, root};
use crate::step;
use cloudflare::Api;
use wrangler_config::{Env, Ids, Needs, WorkerConfig, kv_title};

const USAGE: &str = "usage: cargo xtask deploy [--env staging|production] \
                     [--only ingest|aggregator|query|front] [--dry-run]";

/// A secret some workers need, and where its value may come from.
#[derive(Debug)]
pub struct SecretSpec {
    pub name: &'static str,
    /// The workers that need it; they must all hold the same value.
    pub workers: &'static [&'static str],
    /// The variable whose value, when set, is uploaded to each of them on every deploy.
    pub var: &'static str,
    /// Whether a generated value is printed, once: people need the admin token, while
    /// nobody needs to read ID_SECRET.
    pub show: bool,
}

/// Every secret of every worker.
pub const SECRETS: [SecretSpec; 3] = [
    SecretSpec {
        name: "ID_SECRET",
        workers: &["ingest", "query"],
        var: "TALLY_ID_SECRET",
        show: false,
    },
    SecretSpec {
        name: "ADMIN_TOKEN",
        workers: &["query"],
        var: "TALLY_ADMIN_TOKEN",
        show: true,
    },
    SecretSpec {
        name: "SHARE_SECRET",
        workers: &["query"],
        var: "TALLY_SHARE_SECRET",
        show: false,
    },
];

/// The secrets `worker` needs.
pub fn required_secrets(worker: &str) -> Vec<&'static str> {
    SECRETS
        .iter()
        .filter(|s| s.workers.contains(&worker))
        .map(|s| s.name)
        .collect()
}

/// The command line, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Options {
    env: Env,
    only: Option<&'static str>,
    dry_run: bool,
}

fn parse_args(args: &[String]) -> Result<Options> {
    let mut options = Options {
        env: Env::Production,
        only: None,
        dry_run: false,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag, Some(value.to_owned())),
            None => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next().cloned())
                .with_context(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag {
            "--dry-run" if inline.is_none() => options.dry_run = true,
            "--env" => options.env = Env::parse(&value()?)?,
            "--only" => {
                let worker = value()?;
                options.only = Some(
                    WORKERS
                        .into_iter()
                        .find(|w| *w == worker)
                        .with_context(|| format!("unknown worker {worker:?}\n{USAGE}"))?,
                );
            }
            other => bail!("`cargo xtask deploy` does not know {other:?}\n{USAGE}"),
        }
    }
    Ok(options)
}

pub fn run(args: &[String]) -> Result<()> {
    let options = parse_args(args)?;
    let workers: Vec<&'static str> = match options.only {
        Some(worker) => vec![worker],
        None => WORKERS.to_vec(),
    };
    if options.dry_run {
        tools::ensure()?;
        bundle::build_all()?;
        return package(options.env, &workers);
    }
    // What can fail before the network is checked before the build.
    let api = Api::from_env()?;
    let given = given_secrets(&workers);
    let inputs = Inputs {
        root: root().to_path_buf(),
        env: options.env,
        workers,
        account: std::env::var(cloudflare::ACCOUNT_VAR)
            .ok()
            .filter(|a| !a.trim().is_empty()),
        given,
    };
    tools::ensure()?;
    bundle::build_all()?;
    let plan = prepare(&api, &inputs, &mut random_secret)?;
    execute(&plan, &api, &inputs.root, None)
}

/// The secret values given in the environment (`TALLY_ID_SECRET`, `TALLY_ADMIN_TOKEN`,
/// `TALLY_SHARE_SECRET`) for secrets that the deployed workers need.
fn given_secrets(workers: &[&str]) -> BTreeMap<&'static str, String> {
    SECRETS
        .iter()
        .filter(|s| s.workers.iter().any(|w| workers.contains(w)))
        .filter_map(|s| {
            let value = std::env::var(s.var).ok()?;
            let value = value.trim();
            (!value.is_empty()).then(|| (s.name, value.to_owned()))
        })
        .collect()
}

/// 32 random bytes from the OS, in hex.
fn random_secret() -> Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for a new secret")?;
    Ok(tally_core::hash::hex(&bytes))
}

/// What a real run is asked to do.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// The repository: configs are read from `wrangler/`, written to `target/deploy/<env>/`.
    pub root: PathBuf,
    pub env: Env,
    /// The workers to deploy, in [`WORKERS`] order.
    pub workers: Vec<&'static str>,
    /// The account id given (`CLOUDFLARE_ACCOUNT_ID`); otherwise the token's only one.
    pub account: Option<String>,
    /// Secret values given in the environment, by secret name.
    pub given: BTreeMap<&'static str, String>,
}

impl Inputs {
    /// Where the generated configs go.
    pub fn out_dir(&self) -> PathBuf {
        self.root.join("target/deploy").join(self.env.as_str())
    }
}

/// A resource deploy looked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// `D1 database`, `KV namespace` or `queue`.
    pub kind: &'static str,
    /// Its name in the environment.
    pub name: String,
    pub id: String,
    /// Whether this run created it (else it was found).
    pub created: bool,
}

/// One wrangler command of a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `wrangler d1 migrations apply <database> --remote -c <config>`.
    Migrate { database: String, config: PathBuf },
    /// `wrangler deploy -c <config>`, with `--secrets-file` when secrets go along.
    Deploy {
        worker: &'static str,
        script: String,
        config: PathBuf,
        /// Where the secrets are written just before the deploy (and removed after).
        secrets_file: Option<PathBuf>,
    },
}

impl Step {
    /// wrangler's arguments; paths are shown relative to `root`, wrangler's directory.
    pub fn args(&self, root: &Path) -> Vec<String> {
        let rel = |p: &Path| p.strip_prefix(root).unwrap_or(p).display().to_string();
        match self {
            Self::Migrate { database, config } => {
                let mut args: Vec<String> = ["d1", "migrations", "apply", database, "--remote"]
                    .into_iter()
                    .map(str::to_owned)
                    .collect();
                args.extend(["-c".to_owned(), rel(config)]);
                args
            }
            Self::Deploy {
                config,
                secrets_file,
                ..
            } => {
                let mut args = vec!["deploy".to_owned(), "-c".to_owned(), rel(config)];
                if let Some(file) = secrets_file {
                    args.extend(["--secrets-file".to_owned(), rel(file)]);
                }
                args
            }
        }
    }
}

/// What the secrets need: values to upload, and what was found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretPlan {
    /// The values uploaded with each worker's deploy, by worker and secret name.
    pub upload: BTreeMap<&'static str, BTreeMap<&'static str, String>>,
    /// One line per secret: what was found and what will be done.
    pub notes: Vec<String>,
    /// Generated values printed once their worker is deployed: worker, name, value.
    pub show: Vec<(&'static str, &'static str, String)>,
    /// Generated values going to more than one worker, by name: if a deploy fails half
    /// way, the value is printed so that a re-run can give the others the same one.
    pub shared_generated: BTreeMap<&'static str, String>,
}

/// A worker's script name and the names of its secrets (`None`: no such worker yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    pub script: String,
    pub secrets: Option<BTreeSet<String>>,
}

impl Existing {
    fn has(&self, secret: &str) -> bool {
        self.secrets.as_ref().is_some_and(|s| s.contains(secret))
    }
}

/// Decides what to do about every secret the `deploying` workers need.
///
/// A given value (from its variable) is uploaded to each deploying worker that needs
/// it. Otherwise a secret the deploying workers all hold is kept. A secret no worker
/// holds is generated, if every worker that needs it is being deployed (so all get the
/// same value). A secret some hold and a deploying one lacks cannot be copied (secrets
/// are write-only): that is an error saying which variable to set.
///
/// # Errors
///
/// In that last case, and when generating fails.
pub fn plan_secrets(
    deploying: &[&'static str],
    existing: &BTreeMap<&'static str, Existing>,
    given: &BTreeMap<&'static str, String>,
    generate: &mut dyn FnMut() -> Result<String>,
) -> Result<SecretPlan> {
    let mut plan = SecretPlan::default();
    for spec in &SECRETS {
        let needing: Vec<&'static str> = spec.workers.to_vec();
        let targets: Vec<&'static str> = needing
            .iter()
            .copied()
            .filter(|w| deploying.contains(w))
            .collect();
        if targets.is_empty() {
            continue;
        }
        let script = |w: &str| {
            existing
                .get(w)
                .map_or_else(|| w.to_owned(), |e| e.script.clone())
        };
        let scripts = |ws: &[&'static str]| ws.iter().map(|w| script(w)).collect::<Vec<_>>();
        let holders: Vec<&'static str> = needing
            .iter()
            .copied()
            .filter(|w| existing.get(w).is_some_and(|e| e.has(spec.name)))
            .collect();
        let lacking: Vec<&'static str> = targets
            .iter()
            .copied()
            .filter(|w| !holders.contains(w))
            .collect();
        let name = spec.name;
        if let Some(value) = given.get(name) {
            for w in &targets {
                plan.upload
                    .entry(w)
                    .or_default()
                    .insert(name, value.clone());
            }
            let mut note = format!(
                "{name}: from {} → uploaded to {}",
                spec.var,
                scripts(&targets).join(", ")
            );
            let others: Vec<&'static str> = needing
                .iter()
                .copied()
                .filter(|w| !targets.contains(w))
                .collect();
            if !others.is_empty() {
                note.push_str(&format!(
                    " (not deployed now: {}, which must hold the same value)",
                    scripts(&others).join(", ")
                ));
            }
            plan.notes.push(note);
        } else if lacking.is_empty() {
            plan.notes.push(format!(
                "{name}: found in {} → kept",
                scripts(&targets).join(", ")
            ));
        } else if holders.is_empty() && targets.len() == needing.len() {
            let value = generate()?;
            for w in &targets {
                plan.upload
                    .entry(w)
                    .or_default()
                    .insert(name, value.clone());
            }
            plan.notes.push(format!(
                "{name}: in none of {} → generated and uploaded{}",
                scripts(&targets).join(", "),
                if spec.show { ", shown once below" } else { "" }
            ));
            if spec.show {
                plan.show.push((targets[0], name, value.clone()));
            }
            if targets.len() > 1 {
                plan.shared_generated.insert(name, value);
            }
        } else if holders.is_empty() {
            bail!(
                "{name} is set in none of {}, and only {} is being deployed: one generated \
                 value must go to all of them\n  hint: deploy them together (without --only), \
                 or give the value in {}",
                scripts(&needing).join(", "),
                scripts(&targets).join(", "),
                spec.var
            );
        } else {
            bail!(
                "{name} is set in {} but not in {}; secrets cannot be read back, so xtask \
                 cannot copy it, and the workers must hold the same value\n  hint: pass the \
                 existing value as {var}=… cargo xtask deploy …, or a new one (uploaded to \
                 all of them; changing ID_SECRET changes every user, instance and session \
                 hash from then on)",
                scripts(&holders).join(", "),
                scripts(&lacking).join(", "),
                var = spec.var
            );
        }
    }
    Ok(plan)
}

/// Everything a real run will do once the resources exist.
#[derive(Debug, Clone)]
pub struct Plan {
    pub env: Env,
    pub account: String,
    pub resources: Vec<Outcome>,
    pub secrets: SecretPlan,
    /// Generated configs: where each is written, and its text.
    pub configs: Vec<(PathBuf, String)>,
    pub steps: Vec<Step>,
}

/// Picks the account, checks the secrets, finds or creates the resources, and plans
/// the configs and wrangler commands. `generate` makes new secret values.
///
/// # Errors
///
/// When the configs are inconsistent, Cloudflare refuses a call, the account is
/// ambiguous, or a secret cannot be settled; nothing is created in the last two cases.
pub fn prepare(
    api: &Api,
    inputs: &Inputs,
    generate: &mut dyn FnMut() -> Result<String>,
) -> Result<Plan> {
    let env = inputs.env;
    let configs = inputs
        .workers
        .iter()
        .map(|w| WorkerConfig::read(&inputs.root, w))
        .collect::<Result<Vec<_>>>()?;
    let needs = wrangler_config::needs(&configs)?;
    wrangler_config::check_order(&configs)?;
    let all = WORKERS
        .iter()
        .map(|w| WorkerConfig::read(&inputs.root, w))
        .collect::<Result<Vec<_>>>()?;
    wrangler_config::check_services(&configs, &all)?;

    step(&format!("Cloudflare account ({})", api.base()));
    let account = account(api, inputs.account.as_deref())?;

    step("Secrets");
    let mut existing = BTreeMap::new();
    for spec in &SECRETS {
        if !spec.workers.iter().any(|w| inputs.workers.contains(w)) {
            continue;
        }
        for worker in spec.workers {
            if existing.contains_key(worker) {
                continue;
            }
            let script = env.name(WorkerConfig::read(&inputs.root, worker)?.name()?);
            let secrets = api.secret_names(&account, &script)?;
            existing.insert(*worker, Existing { script, secrets });
        }
    }
    let secrets = plan_secrets(&inputs.workers, &existing, &inputs.given, generate)?;
    for note in &secrets.notes {
        println!("{note}");
    }

    step(&format!("Resources ({})", env.as_str()));
    let (resources, ids) = find_or_create(api, &account, env, &needs)?;

    let out_dir = inputs.out_dir();
    let mut planned = Vec::new();
    let mut steps = Vec::new();
    let mut migrated = BTreeSet::new();
    for config in &configs {
        let path = out_dir.join(format!("{}.toml", config.worker));
        let text = config.generate(env, &ids, &required_secrets(config.worker), &out_dir)?;
        planned.push((path.clone(), text));
        for db in config.d1()? {
            if migrated.insert(db.database_name.clone()) {
                steps.push(Step::Migrate {
                    database: env.name(&db.database_name),
                    config: path.clone(),
                });
            }
        }
    }
    for (config, (path, _)) in configs.iter().zip(&planned) {
        let uploads = secrets.upload.contains_key(config.worker);
        steps.push(Step::Deploy {
            worker: config.worker,
            script: env.name(config.name()?),
            config: path.clone(),
            secrets_file: uploads.then(|| out_dir.join(format!("{}.secrets.json", config.worker))),
        });
    }
    // Migrations run before any deploy: a new worker may need the new schema.
    steps.sort_by_key(|s| matches!(s, Step::Deploy { .. }));
    Ok(Plan {
        env,
        account,
        resources,
        secrets,
        configs: planned,
        steps,
    })
}

/// The account given, or the token's only account.
fn account(api: &Api, given: Option<&str>) -> Result<String> {
    if let Some(id) = given {
        println!("account {id} (from {})", cloudflare::ACCOUNT_VAR);
        return Ok(id.to_owned());
    }
    let accounts = api.accounts()?;
    match accounts.as_slice() {
        [one] => {
            println!("account {} ({}), the token's only one", one.id, one.name);
            Ok(one.id.clone())
        }
        [] => bail!(
            "the token can use no account\n  hint: {}",
            cloudflare::TOKEN_HINT
        ),
        many => {
            let list: Vec<String> = many
                .iter()
                .map(|a| format!("  {}  {}", a.id, a.name))
                .collect();
            bail!(
                "the token can use {} accounts:\n{}\n  hint: set {} to the one to deploy to",
                many.len(),
                list.join("\n"),
                cloudflare::ACCOUNT_VAR
            )
        }
    }
}

/// Finds each resource `needs` names (in `env`), creating what is missing.
fn find_or_create(
    api: &Api,
    account: &str,
    env: Env,
    needs: &Needs,
) -> Result<(Vec<Outcome>, Ids)> {
    let mut outcomes = Vec::new();
    let mut ids = Ids::default();
    for base in &needs.databases {
        let name = env.name(base);
        let found = api.d1_databases(account, &name)?;
        let (id, created) = match found.as_slice() {
            [] => (api.create_d1_database(account, &name)?.id, true),
            [db] => (db.id.clone(), false),
            _ => bail!("Cloudflare lists {} D1 databases named {name}", found.len()),
        };
        ids.databases.insert(base.clone(), id.clone());
        report(
            Outcome {
                kind: "D1 database",
                name,
                id,
                created,
            },
            &mut outcomes,
        );
    }
    if !needs.kv.is_empty() {
        let namespaces = api.kv_namespaces(account)?;
        for binding in &needs.kv {
            let title = env.name(&kv_title(binding));
            let (id, created) = match namespaces.iter().find(|n| n.name == title) {
                Some(found) => (found.id.clone(), false),
                None => (api.create_kv_namespace(account, &title)?.id, true),
            };
            ids.kv.insert(binding.clone(), id.clone());
            report(
                Outcome {
                    kind: "KV namespace",
                    name: title,
                    id,
                    created,
                },
                &mut outcomes,
            );
        }
    }
    if !needs.queues.is_empty() {
        let queues = api.queues(account)?;
        for base in &needs.queues {
            let name = env.name(base);
            let (id, created) = match queues.iter().find(|q| q.name == name) {
                Some(found) => (found.id.clone(), false),
                None => (api.create_queue(account, &name)?.id, true),
            };
            report(
                Outcome {
                    kind: "queue",
                    name,
                    id,
                    created,
                },
                &mut outcomes,
            );
        }
    }
    Ok((outcomes, ids))
}

/// Prints what was found or created, and keeps it.
fn report(outcome: Outcome, outcomes: &mut Vec<Outcome>) {
    println!(
        "{:<13} {:<28} {:<8} {}",
        outcome.kind,
        outcome.name,
        if outcome.created { "created" } else { "found" },
        outcome.id
    );
    outcomes.push(outcome);
}

/// Writes the configs and runs the plan's wrangler commands, in order. Wrangler's
/// output goes to the terminal, or is appended to `log` if given (tests give one).
pub fn execute(plan: &Plan, api: &Api, root: &Path, log: Option<&Path>) -> Result<()> {
    step(&format!("Writing the {} configs", plan.env.as_str()));
    for (path, text) in &plan.configs {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        println!("{}", bundle::rel(path));
    }
    let mut uploaded: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for s in &plan.steps {
        let mut cmd = tools::tool("wrangler");
        cmd.args(s.args(root))
            .current_dir(root)
            .stdin(Stdio::null())
            .env(cloudflare::ACCOUNT_VAR, &plan.account)
            .env(cloudflare::TOKEN_VAR, api.token());
        if api.base() != cloudflare::DEFAULT_BASE_URL {
            cmd.env(cloudflare::BASE_URL_VAR, api.base());
        }
        if let Some(log) = log {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .with_context(|| format!("opening {}", log.display()))?;
            cmd.stdout(file.try_clone()?).stderr(file);
        }
        let result = match s {
            Step::Migrate { database, .. } => {
                step(&format!("Applying D1 migrations to {database}"));
                proc::run(
                    &mut cmd,
                    "read wrangler's message above; a failed migration is rolled back, and a \
                     re-run applies the migrations still missing",
                )
            }
            Step::Deploy {
                worker,
                script,
                secrets_file,
                ..
            } => {
                step(&format!("Deploying {worker} as {script}"));
                let secrets = plan.secrets.upload.get(worker);
                let _file = match (secrets_file, secrets) {
                    (Some(file), Some(secrets)) => Some(SecretsFile::write(file, secrets)?),
                    _ => None,
                };
                let result = proc::run(
                    &mut cmd,
                    "read wrangler's message above; re-running finds what exists and changes \
                     nothing that is already right",
                );
                if result.is_ok() {
                    for name in secrets.into_iter().flat_map(|s| s.keys()) {
                        uploaded.entry(name).or_default().push(script.clone());
                    }
                    for (_, name, value) in plan.secrets.show.iter().filter(|(w, ..)| w == worker) {
                        println!(
                            "\n{name} of {script}, shown this once (keep it; the project \
                             commands read it from TALLY_ADMIN_TOKEN):\n  {value}\n"
                        );
                    }
                }
                result
            }
        };
        if let Err(e) = result {
            return Err(half_way(e, &plan.secrets, &uploaded));
        }
    }
    step("Deployed");
    for outcome in &plan.resources {
        println!(
            "{:<13} {:<28} {}",
            outcome.kind,
            outcome.name,
            if outcome.created { "created" } else { "found" }
        );
    }
    println!(
        "configs in {}",
        bundle::rel(&root.join("target/deploy").join(plan.env.as_str()))
    );
    Ok(())
}

/// A failure after some workers got a generated shared secret: the value is printed so
/// that a re-run (with its variable) gives the others the same one.
fn half_way(
    error: anyhow::Error,
    secrets: &SecretPlan,
    uploaded: &BTreeMap<&'static str, Vec<String>>,
) -> anyhow::Error {
    let mut error = error;
    for (name, value) in &secrets.shared_generated {
        if let (Some(holders), Some(spec)) =
            (uploaded.get(name), SECRETS.iter().find(|s| s.name == *name))
        {
            error = error.context(format!(
                "{name} was generated and is now set in {} only; re-run with {}={value} so \
                 that the other workers get the same value",
                holders.join(", "),
                spec.var
            ));
        }
    }
    error
}

/// A file of secrets for `wrangler deploy --secrets-file`, readable only by its owner
/// and removed when dropped, whatever the deploy did.
struct SecretsFile(PathBuf);

impl SecretsFile {
    fn write(path: &Path, secrets: &BTreeMap<&'static str, String>) -> Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::remove_file(path);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        let file_guard = Self(path.to_owned());
        // JSON, not dotenv: wrangler expands `$VAR` in dotenv values.
        let json = serde_json::to_string(secrets)?;
        file.write_all(json.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(file_guard)
    }
}

impl Drop for SecretsFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Packages every built worker with `wrangler deploy --dry-run` into
/// `target/deploy/dry-run/production/`, from generated production configs.
pub fn package_all() -> Result<()> {
    package(Env::Production, &WORKERS)
}

/// Every worker's config as a deploy to `env` writes it into `dir`, but with the
/// repository's placeholder ids, as nothing is looked up: for dry runs and for the local
/// stack, which so runs the names and vars a deploy gives. The configs are checked as a
/// deploy checks them first.
///
/// # Errors
///
/// When a config cannot be read, or the configs are inconsistent.
pub fn placeholder_configs(env: Env, dir: &Path) -> Result<Vec<(WorkerConfig, String)>> {
    let configs = WORKERS
        .iter()
        .map(|w| WorkerConfig::read(root(), w))
        .collect::<Result<Vec<_>>>()?;
    wrangler_config::needs(&configs)?;
    wrangler_config::check_order(&configs)?;
    wrangler_config::check_services(&configs, &configs)?;
    let ids = Ids::placeholders(&configs)?;
    configs
        .into_iter()
        .map(|config| {
            let text = config.generate(env, &ids, &required_secrets(config.worker), dir)?;
            Ok((config, text))
        })
        .collect()
}

/// Packages `workers` for `env` offline: generated configs (see [`placeholder_configs`])
/// and `wrangler deploy --dry-run --outdir`, printing each worker's upload and gzip size.
fn package(env: Env, workers: &[&'static str]) -> Result<()> {
    let dir = root().join("target/deploy/dry-run").join(env.as_str());
    let selected: Vec<(WorkerConfig, String)> = placeholder_configs(env, &dir)?
        .into_iter()
        .filter(|(c, _)| workers.contains(&c.worker))
        .collect();
    let selected_configs: Vec<WorkerConfig> = selected.iter().map(|(c, _)| c.clone()).collect();
    let needs = wrangler_config::needs(&selected_configs)?;
    step(&format!(
        "What a real deploy to {} finds or creates",
        env.as_str()
    ));
    for db in &needs.databases {
        println!("D1 database   {}", env.name(db));
    }
    for binding in &needs.kv {
        println!(
            "KV namespace  {} (bound as {binding})",
            env.name(&kv_title(binding))
        );
    }
    for queue in &needs.queues {
        println!("queue         {}", env.name(queue));
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut sizes = Vec::new();
    for (config, text) in &selected {
        let worker = config.worker;
        step(&format!("Packaging {worker} (wrangler deploy --dry-run)"));
        let path = dir.join(format!("{worker}.toml"));
        let text = format!(
            "# A dry run's: the ids are the repository's placeholders, as nothing is looked up.\n{text}"
        );
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        let outdir = dir.join(worker);
        if outdir.exists() {
            std::fs::remove_dir_all(&outdir)
                .with_context(|| format!("clearing {}", outdir.display()))?;
        }
        let out = proc::output(
            tools::tool("wrangler")
                .args(["deploy", "--dry-run", "-c"])
                .arg(bundle::rel(&path))
                .arg("--outdir")
                .arg(&outdir)
                .stdin(Stdio::null()),
        )?;
        let (upload, gzip) = upload_size(&out).with_context(|| {
            format!("wrangler's dry run of {worker} printed no `Total Upload` line:\n{out}")
        })?;
        println!("{worker}: packaged into {}", bundle::rel(&outdir));
        sizes.push((worker, upload, gzip));
    }
    step("Upload sizes (wrangler's count)");
    for (worker, upload, gzip) in sizes {
        println!("{worker:<11} {upload:>12} upload  {gzip:>12} gzip");
    }
    Ok(())
}

/// Reads wrangler's `Total Upload: 491.87 KiB / gzip: 180.05 KiB`.
fn upload_size(output: &str) -> Option<(String, String)> {
    let line = output
        .lines()
        .find_map(|l| l.trim().strip_prefix("Total Upload:"))?;
    let (upload, gzip) = line.split_once("/ gzip:")?;
    Some((upload.trim().to_owned(), gzip.trim().to_owned()))
}

#[cfg(test)]
mod tests;
