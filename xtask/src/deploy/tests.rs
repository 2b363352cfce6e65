//! Tests of `cargo xtask deploy`: the plan a real run carries out, computed against the
//! stand-in of Cloudflare's API (`cf_stand_in`) from fixture configs in a temporary
//! repository, and the secrets rules on their own.

use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;

use super::*;
use crate::deploy::cf_stand_in::{Script, StandIn, State};
use crate::deploy::wrangler_config::fixtures::{AGGREGATOR, FRONT, INGEST, QUERY};

const TOKEN: &str = "test-token";
const ACCOUNT: &str = "0123456789abcdef0123456789abcdef";

/// A repository holding only `wrangler/` with the fixture configs, removed on drop.
struct Repo(PathBuf);

impl Repo {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tally-xtask-deploy-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("wrangler")).unwrap();
        for (worker, text) in [
            ("aggregator", AGGREGATOR),
            ("ingest", INGEST),
            ("query", QUERY),
            ("front", FRONT),
        ] {
            std::fs::write(dir.join(format!("wrangler/{worker}.toml")), text).unwrap();
        }
        Self(dir)
    }

    /// Adds what wrangler reads besides the configs: a tiny JavaScript Worker as each
    /// bundle, and two migrations.
    fn with_bundles_and_migrations(self) -> Self {
        for worker in WORKERS {
            let build = self.0.join(format!("workers/{worker}/build"));
            std::fs::create_dir_all(&build).unwrap();
            std::fs::write(
                build.join("index.js"),
                "export default {\n  async fetch() { return new Response(\"ok\"); },\n  \
                 async queue(batch) { batch.ackAll(); },\n  async scheduled() {},\n};\n",
            )
            .unwrap();
        }
        std::fs::create_dir_all(self.0.join("migrations")).unwrap();
        std::fs::write(
            self.0.join("migrations/0001_a.sql"),
            "CREATE TABLE a (x);\n",
        )
        .unwrap();
        std::fs::write(
            self.0.join("migrations/0002_b.sql"),
            "CREATE TABLE b (y);\n",
        )
        .unwrap();
        self
    }

    fn inputs(&self, env: Env, workers: &[&'static str]) -> Inputs {
        Inputs {
            root: self.0.clone(),
            env,
            workers: workers.to_vec(),
            account: None,
            given: BTreeMap::new(),
        }
    }
}

impl Drop for Repo {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// New secret values that count: `secret-1`, `secret-2`, …
fn counter() -> impl FnMut() -> Result<String> {
    let mut n = 0;
    move || {
        n += 1;
        Ok(format!("secret-{n}"))
    }
}

fn plan(stand_in: &StandIn, inputs: &Inputs) -> Result<Plan> {
    prepare(&Api::new(&stand_in.url, TOKEN), inputs, &mut counter())
}

/// What the deploys of `plan` would leave at Cloudflare, as far as xtask looks: every
/// deployed worker exists and holds the secrets uploaded to it.
fn pretend_deployed(stand_in: &StandIn, plan: &Plan) {
    let mut state = stand_in.state();
    for s in &plan.steps {
        if let Step::Deploy { worker, script, .. } = s {
            let secrets = &mut state.scripts.entry(script.clone()).or_default().secrets;
            if let Some(uploaded) = plan.secrets.upload.get(worker) {
                secrets.extend(uploaded.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
            }
        }
    }
}

/// The plan's wrangler commands, as typed.
fn commands(plan: &Plan, root: &Path) -> Vec<String> {
    plan.steps
        .iter()
        .map(|s| format!("wrangler {}", s.args(root).join(" ")))
        .collect()
}

/// The resources as (kind, name, created).
fn outcomes(plan: &Plan) -> Vec<(&'static str, &str, bool)> {
    plan.resources
        .iter()
        .map(|o| (o.kind, o.name.as_str(), o.created))
        .collect()
}

/// The generated config of `worker`, parsed.
fn config_of(plan: &Plan, worker: &str) -> toml::Table {
    let (_, text) = plan
        .configs
        .iter()
        .find(|(path, _)| path.ends_with(format!("{worker}.toml")))
        .unwrap_or_else(|| panic!("no config for {worker}"));
    text.parse().unwrap()
}

fn database_id(plan: &Plan, worker: &str) -> String {
    config_of(plan, worker)["d1_databases"][0]["database_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn kv_id(plan: &Plan, worker: &str) -> String {
    config_of(plan, worker)["kv_namespaces"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn secrets(items: &[(&'static str, &str)]) -> BTreeMap<&'static str, String> {
    items.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

/// The workers with resources and secrets; most tests deploy them without the front,
/// which binds only the other two.
const ALL: [&str; 3] = ["aggregator", "ingest", "query"];

#[test]
fn nothing_exists_so_everything_is_created_and_the_ids_reach_the_configs() {
    let repo = Repo::new();
    let mut state = State::new(TOKEN, ACCOUNT);
    state.page_size = 2;
    let stand_in = StandIn::start(state);
    let plan = plan(&stand_in, &repo.inputs(Env::Production, &ALL)).unwrap();

    assert_eq!(plan.account, ACCOUNT, "the token's only account");
    assert_eq!(
        outcomes(&plan),
        [
            ("D1 database", "tally", true),
            ("KV namespace", "tally-cache", true),
            ("queue", "tally-alerts", true),
            ("queue", "tally-alerts-dlq", true),
            ("queue", "tally-events", true),
            ("queue", "tally-events-dlq", true),
            ("queue", "tally-jobs", true),
        ]
    );
    let state = stand_in.state().clone();
    let a = format!("POST /accounts/{ACCOUNT}");
    assert_eq!(
        state.creations(),
        [
            format!(r#"{a}/d1/database {{"name":"tally"}}"#),
            format!(r#"{a}/storage/kv/namespaces {{"title":"tally-cache"}}"#),
            format!(r#"{a}/queues {{"queue_name":"tally-alerts"}}"#),
            format!(r#"{a}/queues {{"queue_name":"tally-alerts-dlq"}}"#),
            format!(r#"{a}/queues {{"queue_name":"tally-events"}}"#),
            format!(r#"{a}/queues {{"queue_name":"tally-events-dlq"}}"#),
            format!(r#"{a}/queues {{"queue_name":"tally-jobs"}}"#),
        ]
    );
    let (uuid, kv) = (&state.databases[0].0, &state.kv[0].0);
    for worker in ALL {
        assert_eq!(&database_id(&plan, worker), uuid, "{worker}");
        assert_eq!(&kv_id(&plan, worker), kv, "{worker}");
    }
    assert_eq!(
        commands(&plan, &repo.0),
        [
            "wrangler d1 migrations apply tally --remote -c target/deploy/production/aggregator.toml",
            "wrangler deploy -c target/deploy/production/aggregator.toml",
            "wrangler deploy -c target/deploy/production/ingest.toml --secrets-file target/deploy/production/ingest.secrets.json",
            "wrangler deploy -c target/deploy/production/query.toml --secrets-file target/deploy/production/query.secrets.json",
        ]
    );
    // One generated ID_SECRET for both; the admin token, generated, is shown once; the
    // share links' secret is generated and shown to nobody.
    assert_eq!(
        plan.secrets.upload,
        BTreeMap::from([
            ("ingest", secrets(&[("ID_SECRET", "secret-1")])),
            (
                "query",
                secrets(&[
                    ("ID_SECRET", "secret-1"),
                    ("ADMIN_TOKEN", "secret-2"),
                    ("SHARE_SECRET", "secret-3")
                ])
            ),
        ])
    );
    assert_eq!(
        plan.secrets.show,
        [("query", "ADMIN_TOKEN", "secret-2".to_owned())]
    );
    let query = config_of(&plan, "query");
    assert_eq!(
        query["secrets"]["required"].as_array().unwrap().len(),
        3,
        "{query}"
    );
}

#[test]
fn everything_exists_so_nothing_is_created_and_the_ids_are_the_existing_ones() {
    let repo = Repo::new();
    let mut state = State::new(TOKEN, ACCOUNT);
    state.page_size = 2;
    state.databases = vec![
        ("uuid-of-staging".into(), "tally-staging".into()),
        ("uuid-of-tally".into(), "tally".into()),
    ];
    state.kv = (0..5)
        .map(|i| (format!("kv-{i}"), format!("someone-else-{i}")))
        .chain([("kv-of-cache".to_owned(), "tally-cache".to_owned())])
        .collect();
    state.queues = [
        "tally-events",
        "tally-events-dlq",
        "other",
        "tally-alerts",
        "tally-alerts-dlq",
        "tally-jobs",
    ]
    .iter()
    .map(|q| (format!("id-{q}"), (*q).to_owned()))
    .collect();
    state.scripts = BTreeMap::from([
        ("tally-aggregator".into(), Script::default()),
        ("tally-ingest".into(), Script::with_secrets(&["ID_SECRET"])),
        (
            "tally-query".into(),
            Script::with_secrets(&["ID_SECRET", "ADMIN_TOKEN", "SHARE_SECRET"]),
        ),
    ]);
    let stand_in = StandIn::start(state);
    let inputs = Inputs {
        account: Some(ACCOUNT.into()),
        ..repo.inputs(Env::Production, &ALL)
    };
    let first = plan(&stand_in, &inputs).unwrap();

    assert!(
        stand_in.state().creations().is_empty(),
        "{:?}",
        stand_in.state().creations()
    );
    assert!(
        first.resources.iter().all(|o| !o.created),
        "{:?}",
        first.resources
    );
    assert_eq!(
        database_id(&first, "ingest"),
        "uuid-of-tally",
        "not tally-staging's"
    );
    assert_eq!(
        kv_id(&first, "query"),
        "kv-of-cache",
        "found on the third page"
    );
    let queue = first
        .resources
        .iter()
        .find(|o| o.name == "tally-events-dlq")
        .unwrap();
    assert_eq!(queue.id, "id-tally-events-dlq");
    assert!(first.secrets.upload.is_empty(), "{:?}", first.secrets);
    assert_eq!(
        first.secrets.notes,
        [
            "ID_SECRET: found in tally-ingest, tally-query → kept",
            "ADMIN_TOKEN: found in tally-query → kept",
            "SHARE_SECRET: found in tally-query → kept",
        ]
    );
    assert!(
        commands(&first, &repo.0)
            .iter()
            .all(|c| !c.contains("--secrets-file")),
        "{:?}",
        commands(&first, &repo.0)
    );
    let requests = stand_in.state().requests.clone();
    assert!(
        !requests.iter().any(|r| r.starts_with("GET /accounts?")),
        "the account was given, so none is looked up: {requests:?}"
    );

    let again = plan(&stand_in, &inputs).unwrap();
    assert!(stand_in.state().creations().is_empty());
    assert_eq!(again.resources, first.resources);
    assert_eq!(again.configs, first.configs);
    assert_eq!(again.steps, first.steps);
}

#[test]
fn a_rerun_after_a_first_deploy_creates_and_uploads_nothing() {
    let repo = Repo::new();
    let stand_in = StandIn::start(State::new(TOKEN, ACCOUNT));
    let inputs = repo.inputs(Env::Production, &ALL);
    let first = plan(&stand_in, &inputs).unwrap();
    pretend_deployed(&stand_in, &first);
    let posts = stand_in.state().creations().len();

    let second = plan(&stand_in, &inputs).unwrap();
    assert_eq!(stand_in.state().creations().len(), posts, "nothing created");
    assert!(second.resources.iter().all(|o| !o.created));
    let ids = |p: &Plan| p.resources.iter().map(|o| o.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&second), ids(&first));
    assert_eq!(
        second.configs, first.configs,
        "the same configs, so the same ids"
    );
    assert!(second.secrets.upload.is_empty(), "{:?}", second.secrets);
    assert!(second.secrets.show.is_empty());
}

#[test]
fn a_queue_exists_but_the_database_does_not_so_only_the_missing_are_created() {
    let repo = Repo::new();
    let mut state = State::new(TOKEN, ACCOUNT);
    state.queues = vec![("existing-events".into(), "tally-events".into())];
    let stand_in = StandIn::start(state);
    let plan = plan(&stand_in, &repo.inputs(Env::Production, &ALL)).unwrap();

    assert_eq!(
        outcomes(&plan),
        [
            ("D1 database", "tally", true),
            ("KV namespace", "tally-cache", true),
            ("queue", "tally-alerts", true),
            ("queue", "tally-alerts-dlq", true),
            ("queue", "tally-events", false),
            ("queue", "tally-events-dlq", true),
            ("queue", "tally-jobs", true),
        ]
    );
    let posts = stand_in.state().creations();
    assert_eq!(posts.len(), 6, "{posts:?}");
    assert!(
        !posts.iter().any(|p| p.contains(r#""tally-events""#)),
        "{posts:?}"
    );
    let events = plan
        .resources
        .iter()
        .find(|o| o.name == "tally-events")
        .unwrap();
    assert_eq!(events.id, "existing-events");
    assert_eq!(
        stand_in.state().queues.len(),
        5,
        "one queue of each name, no duplicate"
    );
}

#[test]
fn a_bad_token_is_a_clear_error_and_creates_nothing() {
    let repo = Repo::new();
    let stand_in = StandIn::start(State::new(TOKEN, ACCOUNT));
    let e = prepare(
        &Api::new(&stand_in.url, "not-the-token"),
        &repo.inputs(Env::Production, &ALL),
        &mut counter(),
    )
    .unwrap_err();
    let text = format!("{e:#}");
    assert!(
        text.starts_with(
            "Cloudflare answered 403 to GET /accounts: Authentication error (code 10000)\n  hint: CLOUDFLARE_API_TOKEN must be"
        ),
        "{text}"
    );
    assert!(text.contains("Workers Scripts: Edit, D1: Edit"), "{text}");
    assert!(stand_in.state().creations().is_empty());

    // With the account given, the first call is a secrets list: refused the same way.
    let inputs = Inputs {
        account: Some(ACCOUNT.into()),
        ..repo.inputs(Env::Production, &ALL)
    };
    let e = prepare(&Api::new(&stand_in.url, "nope"), &inputs, &mut counter()).unwrap_err();
    assert!(
        e.to_string().starts_with(&format!(
            "Cloudflare answered 403 to GET /accounts/{ACCOUNT}/workers/scripts/tally-ingest/secrets"
        )),
        "{e}"
    );
    assert!(stand_in.state().creations().is_empty());
}

#[test]
fn several_accounts_need_the_account_id() {
    let repo = Repo::new();
    let mut state = State::new(TOKEN, ACCOUNT);
    state
        .accounts
        .push(("fedcba9876543210fedcba9876543210".into(), "Other".into()));
    let stand_in = StandIn::start(state);
    let e = plan(&stand_in, &repo.inputs(Env::Production, &ALL)).unwrap_err();
    let text = e.to_string();
    assert!(text.starts_with("the token can use 2 accounts:"), "{text}");
    assert!(text.contains(&format!("  {ACCOUNT}  Tally Test")), "{text}");
    assert!(
        text.contains("fedcba9876543210fedcba9876543210  Other"),
        "{text}"
    );
    assert!(text.contains("set CLOUDFLARE_ACCOUNT_ID"), "{text}");
    assert!(stand_in.state().creations().is_empty());
}

#[test]
fn staging_has_its_own_names_and_resources() {
    let repo = Repo::new();
    let mut state = State::new(TOKEN, ACCOUNT);
    // Production's resources exist; staging must not use them.
    state.databases = vec![("uuid-of-tally".into(), "tally".into())];
    state.queues = vec![("id-events".into(), "tally-events".into())];
    state.kv = vec![("kv-of-cache".into(), "tally-cache".into())];
    let stand_in = StandIn::start(state);
    let plan = plan(&stand_in, &repo.inputs(Env::Staging, &ALL)).unwrap();

    assert_eq!(
        outcomes(&plan),
        [
            ("D1 database", "tally-staging", true),
            ("KV namespace", "tally-cache-staging", true),
            ("queue", "tally-alerts-staging", true),
            ("queue", "tally-alerts-dlq-staging", true),
            ("queue", "tally-events-staging", true),
            ("queue", "tally-events-dlq-staging", true),
            ("queue", "tally-jobs-staging", true),
        ]
    );
    assert_ne!(database_id(&plan, "ingest"), "uuid-of-tally");
    let ingest = config_of(&plan, "ingest");
    assert_eq!(ingest["name"].as_str(), Some("tally-ingest-staging"));
    assert_eq!(
        ingest["ratelimits"][0]["namespace_id"].as_str(),
        Some("2001")
    );
    let requests = stand_in.state().requests.clone();
    assert!(
        requests.contains(&format!(
            "GET /accounts/{ACCOUNT}/workers/scripts/tally-query-staging/secrets"
        )),
        "{requests:?}"
    );
    assert_eq!(
        commands(&plan, &repo.0)[..2],
        [
            "wrangler d1 migrations apply tally-staging --remote -c target/deploy/staging/aggregator.toml",
            "wrangler deploy -c target/deploy/staging/aggregator.toml",
        ]
    );
}

/// The data shards as `wrangler/aggregator.toml` and `wrangler/query.toml` bind them:
/// shard 0 is the control database, shard 1 a database of its own.
const SHARDS: &str = r#"
[[d1_databases]]
binding = "SHARD_0"
database_name = "tally"
database_id = "00000000-0000-4000-8000-00000000d1db"
migrations_dir = "../migrations"

[[d1_databases]]
binding = "SHARD_1"
database_name = "tally-shard-1"
database_id = "00000000-0000-4000-8000-0000000d1db1"
migrations_dir = "../migrations"
"#;

#[test]
fn an_existing_deployment_gains_its_shard_database_migrated_and_bound() {
    let repo = Repo::new();
    for worker in ["aggregator", "query"] {
        let path = repo.0.join(format!("wrangler/{worker}.toml"));
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("{text}{SHARDS}")).unwrap();
    }
    for env in [Env::Production, Env::Staging] {
        let mut state = State::new(TOKEN, ACCOUNT);
        // A deployment from before shards: its one database exists.
        let control = env.name("tally");
        state.databases = vec![("uuid-of-control".into(), control.clone())];
        let stand_in = StandIn::start(state);
        let plan = plan(&stand_in, &repo.inputs(env, &ALL)).unwrap();

        let shard_1 = env.name("tally-shard-1");
        let databases: Vec<_> = outcomes(&plan)
            .into_iter()
            .filter(|(kind, _, _)| *kind == "D1 database")
            .collect();
        assert_eq!(
            databases,
            [
                (("D1 database"), control.as_str(), false),
                ("D1 database", shard_1.as_str(), true)
            ],
            "only the new shard is created"
        );
        let created = stand_in.state().databases[1].0.clone();
        let dir = format!("target/deploy/{}", env.as_str());
        assert_eq!(
            commands(&plan, &repo.0)[..2],
            [
                format!("wrangler d1 migrations apply {control} --remote -c {dir}/aggregator.toml"),
                format!("wrangler d1 migrations apply {shard_1} --remote -c {dir}/aggregator.toml"),
            ],
            "every database migrated once, before any deploy"
        );
        for worker in ["aggregator", "query"] {
            let config = config_of(&plan, worker);
            let bound: Vec<(&str, &str, &str)> = config["d1_databases"]
                .as_array()
                .unwrap()
                .iter()
                .map(|db| {
                    (
                        db["binding"].as_str().unwrap(),
                        db["database_name"].as_str().unwrap(),
                        db["database_id"].as_str().unwrap(),
                    )
                })
                .collect();
            assert_eq!(
                bound,
                [
                    ("DB", control.as_str(), "uuid-of-control"),
                    ("SHARD_0", control.as_str(), "uuid-of-control"),
                    ("SHARD_1", shard_1.as_str(), created.as_str()),
                ],
                "{worker}: shard 0 keeps the old data, shard 1 is the new database"
            );
        }
    }
}

#[test]
fn one_worker_alone_needs_its_shared_secret_given() {
    let repo = Repo::new();
    let stand_in = StandIn::start(State::new(TOKEN, ACCOUNT));
    let e = plan(&stand_in, &repo.inputs(Env::Production, &["query"])).unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with("ID_SECRET is set in none of tally-ingest, tally-query, and only tally-query is being deployed"),
        "{text}"
    );
    assert!(text.contains("TALLY_ID_SECRET"), "{text}");
    assert!(
        stand_in.state().creations().is_empty(),
        "secrets are settled before creating"
    );

    let inputs = Inputs {
        given: secrets(&[("ID_SECRET", "given-id")]),
        ..repo.inputs(Env::Production, &["query"])
    };
    let plan = plan(&stand_in, &inputs).unwrap();
    assert_eq!(
        outcomes(&plan),
        [
            ("D1 database", "tally", true),
            ("KV namespace", "tally-cache", true),
        ],
        "the query worker binds no queue"
    );
    assert_eq!(
        commands(&plan, &repo.0),
        [
            "wrangler d1 migrations apply tally --remote -c target/deploy/production/query.toml",
            "wrangler deploy -c target/deploy/production/query.toml --secrets-file target/deploy/production/query.secrets.json",
        ]
    );
    assert_eq!(
        plan.secrets.upload["query"],
        secrets(&[
            ("ID_SECRET", "given-id"),
            ("ADMIN_TOKEN", "secret-1"),
            ("SHARE_SECRET", "secret-2")
        ])
    );
}

/// The secrets rules, case by case: who is deployed, which workers exist with which
/// secrets, what is given, and the uploads expected (or the start of the error).
#[test]
fn secrets_rules() {
    type Uploads = BTreeMap<&'static str, BTreeMap<&'static str, String>>;
    fn check(
        deploying: &[&'static str],
        exist: &[(&'static str, Option<&[&str]>)],
        given: &[(&'static str, &str)],
        expected: Result<Uploads, &str>,
    ) {
        let existing: BTreeMap<&'static str, Existing> = exist
            .iter()
            .map(|(w, secrets)| {
                (
                    *w,
                    Existing {
                        script: format!("tally-{w}"),
                        secrets: secrets.map(|s| s.iter().map(|x| (*x).to_owned()).collect()),
                    },
                )
            })
            .collect();
        let got = plan_secrets(deploying, &existing, &secrets(given), &mut counter());
        match (got, expected) {
            (Ok(plan), Ok(uploads)) => assert_eq!(plan.upload, uploads, "{deploying:?} {exist:?}"),
            (Err(e), Err(start)) => {
                assert!(e.to_string().starts_with(start), "{e}\nexpected: {start}");
            }
            (got, expected) => {
                panic!("{deploying:?} {exist:?}: got {got:?}, expected {expected:?}")
            }
        }
    }
    let up = |items: &[(&'static str, &[(&'static str, &str)])]| -> Uploads {
        items.iter().map(|(w, s)| (*w, secrets(s))).collect()
    };
    let both: &[&str] = &["ID_SECRET", "ADMIN_TOKEN", "SHARE_SECRET"];
    let before_share: &[&str] = &["ID_SECRET", "ADMIN_TOKEN"];
    let id: &[&str] = &["ID_SECRET"];
    let none: &[&str] = &[];

    // All there: nothing to upload.
    check(
        &ALL,
        &[("ingest", Some(id)), ("query", Some(both))],
        &[],
        Ok(up(&[])),
    );
    // Nothing exists: one ID_SECRET for both, an admin token for query.
    check(
        &ALL,
        &[("ingest", None), ("query", None)],
        &[],
        Ok(up(&[
            ("ingest", &[("ID_SECRET", "secret-1")]),
            (
                "query",
                &[
                    ("ID_SECRET", "secret-1"),
                    ("ADMIN_TOKEN", "secret-2"),
                    ("SHARE_SECRET", "secret-3"),
                ],
            ),
        ])),
    );
    // A deployment made before share links had their own secret gets one.
    check(
        &ALL,
        &[("ingest", Some(id)), ("query", Some(before_share))],
        &[],
        Ok(up(&[("query", &[("SHARE_SECRET", "secret-1")])])),
    );
    // Only the admin token is missing.
    check(
        &ALL,
        &[
            ("ingest", Some(id)),
            ("query", Some(&["ID_SECRET", "SHARE_SECRET"])),
        ],
        &[],
        Ok(up(&[("query", &[("ADMIN_TOKEN", "secret-1")])])),
    );
    // One holds ID_SECRET, the other exists without it: it cannot be copied.
    check(
        &ALL,
        &[("ingest", Some(id)), ("query", Some(none))],
        &[],
        Err("ID_SECRET is set in tally-ingest but not in tally-query; secrets cannot be read back"),
    );
    check(
        &ALL,
        &[("ingest", None), ("query", Some(both))],
        &[],
        Err("ID_SECRET is set in tally-query but not in tally-ingest"),
    );
    // Given values go to every deployed worker that needs them, present or not.
    check(
        &ALL,
        &[("ingest", Some(id)), ("query", Some(none))],
        &[
            ("ID_SECRET", "v"),
            ("ADMIN_TOKEN", "t"),
            ("SHARE_SECRET", "s"),
        ],
        Ok(up(&[
            ("ingest", &[("ID_SECRET", "v")]),
            (
                "query",
                &[
                    ("ID_SECRET", "v"),
                    ("ADMIN_TOKEN", "t"),
                    ("SHARE_SECRET", "s"),
                ],
            ),
        ])),
    );
    // Deploying the aggregator alone touches no secret.
    check(&["aggregator"], &[], &[], Ok(up(&[])));
    // Ingest alone, holding its secret, while query does not exist yet: fine.
    check(
        &["ingest"],
        &[("ingest", Some(id)), ("query", None)],
        &[],
        Ok(up(&[])),
    );
    // Ingest alone, and neither holds it: a value made now would reach ingest only.
    check(
        &["ingest"],
        &[("ingest", None), ("query", None)],
        &[],
        Err("ID_SECRET is set in none of tally-ingest, tally-query, and only tally-ingest"),
    );
    check(
        &["ingest"],
        &[("ingest", None), ("query", None)],
        &[("ID_SECRET", "v")],
        Ok(up(&[("ingest", &[("ID_SECRET", "v")])])),
    );
}

#[test]
fn a_failure_half_way_prints_the_shared_generated_secret() {
    let secrets = SecretPlan {
        shared_generated: BTreeMap::from([("ID_SECRET", "abc".to_owned())]),
        ..SecretPlan::default()
    };
    let uploaded = BTreeMap::from([("ID_SECRET", vec!["tally-ingest".to_owned()])]);
    let e = half_way(anyhow::anyhow!("wrangler failed"), &secrets, &uploaded);
    assert_eq!(
        format!("{e:#}"),
        "ID_SECRET was generated and is now set in tally-ingest only; re-run with \
         TALLY_ID_SECRET=abc so that the other workers get the same value: wrangler failed"
    );
    let e = half_way(
        anyhow::anyhow!("wrangler failed"),
        &secrets,
        &BTreeMap::new(),
    );
    assert_eq!(
        format!("{e:#}"),
        "wrangler failed",
        "nothing was uploaded yet"
    );
}

#[test]
fn secrets_files_are_private_json_and_removed_after() {
    use std::os::unix::fs::PermissionsExt;
    let repo = Repo::new();
    let path = repo.0.join("query.secrets.json");
    let file = SecretsFile::write(
        &path,
        &secrets(&[("ADMIN_TOKEN", "t$x"), ("ID_SECRET", "i")]),
    )
    .unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        r#"{"ADMIN_TOKEN":"t$x","ID_SECRET":"i"}"#
    );
    drop(file);
    assert!(!path.exists());
}

#[test]
fn arguments() {
    let parse =
        |args: &[&str]| parse_args(&args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>());
    let o = parse(&[]).unwrap();
    assert_eq!((o.env, o.only, o.dry_run), (Env::Production, None, false));
    let o = parse(&["--env", "staging", "--only=query", "--dry-run"]).unwrap();
    assert_eq!(
        (o.env, o.only, o.dry_run),
        (Env::Staging, Some("query"), true)
    );
    let o = parse(&["--env=production", "--only", "aggregator"]).unwrap();
    assert_eq!((o.env, o.only), (Env::Production, Some("aggregator")));
    for (args, error) in [
        (&["--env"][..], "--env needs a value"),
        (&["--env", "prod"], "unknown environment \"prod\""),
        (&["--only", "dashboard"], "unknown worker \"dashboard\""),
        (
            &["--force"],
            "`cargo xtask deploy` does not know \"--force\"",
        ),
        (
            &["--dry-run=yes"],
            "`cargo xtask deploy` does not know \"--dry-run\"",
        ),
    ] {
        let e = parse(args).unwrap_err().to_string();
        assert!(e.starts_with(error), "{args:?}: {e}");
    }
}

#[test]
fn upload_sizes_are_read_from_wrangler() {
    let out = "Attaching...\nTotal Upload: 491.87 KiB / gzip: 180.05 KiB\nYour Worker has access";
    assert_eq!(
        upload_size(out),
        Some(("491.87 KiB".to_owned(), "180.05 KiB".to_owned()))
    );
    assert_eq!(upload_size("no sizes"), None);
}

#[test]
fn the_secrets_table_matches_the_configs_comments() {
    for worker in WORKERS {
        let text = std::fs::read_to_string(root().join(format!("wrangler/{worker}.toml"))).unwrap();
        let named: BTreeSet<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# Secrets:"))
            .flat_map(|l| l.split(|c: char| !(c.is_ascii_uppercase() || c == '_')))
            .filter(|w| w.len() > 2)
            .collect();
        let required: BTreeSet<&str> = required_secrets(worker).into_iter().collect();
        assert_eq!(
            named, required,
            "wrangler/{worker}.toml's `# Secrets:` line vs SECRETS"
        );
    }
}

/// The whole command, wrangler included: `execute` runs the pinned wrangler's `d1
/// migrations apply --remote` and `deploy` against the stand-in (through
/// `CLOUDFLARE_API_BASE_URL`), which keeps what they upload.
#[test]
fn wrangler_migrates_and_deploys_through_the_stand_in_and_a_rerun_changes_nothing() {
    assert!(
        root().join("node_modules/.bin/wrangler").exists(),
        "this test drives the pinned wrangler: run `cargo xtask setup` first"
    );
    let repo = Repo::new().with_bundles_and_migrations();
    let stand_in = StandIn::start(State::new(TOKEN, ACCOUNT));
    let api = Api::new(&stand_in.url, TOKEN);
    let inputs = repo.inputs(Env::Production, &WORKERS);
    let log = repo.0.join("wrangler.log");
    let run = |plan: &Plan| {
        let result = execute(plan, &api, &repo.0, Some(&log));
        if result.is_err() {
            println!(
                "--- wrangler's output ---\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        result
    };
    let first = prepare(&api, &inputs, &mut counter()).unwrap();
    run(&first).unwrap();

    let state = stand_in.state().clone();
    let (uuid, kv) = (state.databases[0].0.clone(), state.kv[0].0.clone());
    assert_eq!(state.migrations[&uuid], ["0001_a.sql", "0002_b.sql"]);
    let script = |name: &str| {
        state
            .scripts
            .get(name)
            .unwrap_or_else(|| panic!("{name} not deployed"))
    };
    for name in ["tally-aggregator", "tally-ingest", "tally-query"] {
        let s = script(name);
        assert_eq!(s.binding("DB").unwrap()["id"], uuid.as_str(), "{name}");
        assert_eq!(
            s.binding("CACHE").unwrap()["namespace_id"],
            kv.as_str(),
            "{name}"
        );
        assert_eq!(s.uploads, 1, "{name}");
    }
    assert_eq!(script("tally-aggregator").crons, ["* * * * *"]);
    assert!(script("tally-aggregator").secrets.is_empty());
    let ingest = script("tally-ingest");
    assert_eq!(
        ingest.binding("EVENTS").unwrap()["queue_name"],
        "tally-events"
    );
    assert_eq!(
        ingest.binding("RATE_LIMIT_STRICT").unwrap()["namespace_id"],
        "1001"
    );
    let values = |s: &Script| {
        s.secrets
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<Vec<_>>()
    };
    let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    assert_eq!(values(ingest), [pair("ID_SECRET", "secret-1")]);
    assert_eq!(
        values(script("tally-query")),
        [
            pair("ADMIN_TOKEN", "secret-2"),
            pair("ID_SECRET", "secret-1"),
            pair("SHARE_SECRET", "secret-3")
        ]
    );
    // The front, deployed last, binds the two workers as services, and nothing else.
    let front = script("tally-front");
    let bindings = front.metadata["bindings"].as_array().unwrap();
    assert_eq!(bindings.len(), 2, "{bindings:?}");
    for (binding, service) in [("INGEST", "tally-ingest"), ("QUERY", "tally-query")] {
        let b = front.binding(binding).unwrap();
        assert_eq!(
            (&b["type"], &b["service"]),
            (&json!("service"), &json!(service))
        );
    }
    assert!(front.secrets.is_empty());
    let events = state
        .queues
        .iter()
        .find(|(_, n)| n == "tally-events")
        .unwrap();
    let consumers: Vec<_> = state
        .consumers
        .iter()
        .filter(|c| c.queue_id == events.0)
        .collect();
    assert_eq!(consumers.len(), 1, "{consumers:?}");
    assert_eq!(consumers[0].script, "tally-aggregator");
    assert_eq!(
        consumers[0].dead_letter_queue.as_deref(),
        Some("tally-events-dlq")
    );
    let out = inputs.out_dir();
    assert!(out.join("query.toml").exists());
    assert!(
        !out.join("query.secrets.json").exists(),
        "secrets files are removed"
    );

    // A re-run: nothing created, no secret uploaded, no migration applied again.
    let second = prepare(&api, &inputs, &mut counter()).unwrap();
    assert!(second.secrets.upload.is_empty(), "{:?}", second.secrets);
    run(&second).unwrap();
    let again = stand_in.state().clone();
    assert_eq!(again.creations(), state.creations());
    assert_eq!(again.migrations, state.migrations);
    assert_eq!(
        again.consumers.len(),
        state.consumers.len(),
        "updated, not added"
    );
    for (name, s) in &again.scripts {
        assert_eq!(s.uploads, 2, "{name}: one new version");
        assert_eq!(
            s.secrets, state.scripts[name].secrets,
            "{name}: secrets kept"
        );
    }
    let uploaded = |name: &str| {
        let requests = &again.requests[state.requests.len()..];
        requests
            .iter()
            .filter(|r| r.contains(&format!("/workers/scripts/{name}")))
            .count()
    };
    assert!(
        uploaded("tally-query") > 0,
        "the re-run deployed query again"
    );

    // A worker whose required secret went missing is not deployed without it.
    stand_in
        .state()
        .scripts
        .get_mut("tally-query")
        .unwrap()
        .secrets
        .remove("ADMIN_TOKEN");
    let query_only = Plan {
        steps: second
            .steps
            .iter()
            .filter(|s| {
                matches!(
                    s,
                    Step::Deploy {
                        worker: "query",
                        ..
                    }
                )
            })
            .cloned()
            .collect(),
        ..second
    };
    std::fs::write(&log, "").unwrap();
    let e = execute(&query_only, &api, &repo.0, Some(&log)).unwrap_err();
    assert!(e.to_string().contains("wrangler deploy"), "{e:#}");
    let output = std::fs::read_to_string(&log).unwrap();
    assert!(
        output.contains("The following required secrets have not been set: ADMIN_TOKEN"),
        "{output}"
    );
    assert_eq!(
        stand_in.state().scripts["tally-query"].uploads,
        2,
        "refused"
    );
}

/// The front alone, to an account without the workers it binds: the upload is refused as
/// Cloudflare refuses it, through wrangler, and nothing is deployed; once they exist, it
/// deploys, in staging bound to staging's workers.
#[test]
fn the_front_deploys_only_once_the_workers_it_binds_exist() {
    let repo = Repo::new().with_bundles_and_migrations();
    let stand_in = StandIn::start(State::new(TOKEN, ACCOUNT));
    let api = Api::new(&stand_in.url, TOKEN);
    let inputs = repo.inputs(Env::Staging, &["front"]);
    let log = repo.0.join("wrangler.log");
    let plan = prepare(&api, &inputs, &mut counter()).unwrap();
    assert!(plan.resources.is_empty(), "{:?}", plan.resources);
    assert_eq!(
        commands(&plan, &repo.0),
        ["wrangler deploy -c target/deploy/staging/front.toml"]
    );
    let e = execute(&plan, &api, &repo.0, Some(&log)).unwrap_err();
    assert!(e.to_string().contains("wrangler deploy"), "{e:#}");
    let output = std::fs::read_to_string(&log).unwrap();
    assert!(
        output.contains("Target script 'tally-ingest-staging' not found")
            && output.contains("10143"),
        "{output}"
    );
    assert!(!stand_in.state().scripts.contains_key("tally-front-staging"));

    for worker in ["tally-ingest-staging", "tally-query-staging"] {
        stand_in
            .state()
            .scripts
            .insert(worker.into(), Script::default());
    }
    execute(&plan, &api, &repo.0, Some(&log)).unwrap();
    let state = stand_in.state().clone();
    let front = &state.scripts["tally-front-staging"];
    assert_eq!(
        front.binding("QUERY").unwrap()["service"],
        "tally-query-staging"
    );
    assert_eq!(
        front.binding("INGEST").unwrap()["service"],
        "tally-ingest-staging"
    );
}
