//! `cargo xtask project`: create, show and change projects, and hand out, list and revoke
//! their write keys and read tokens, through the query worker's admin API.

use anyhow::{Context, Result, bail};

use crate::admin::cli::{self, Options, table};
use crate::admin::client::{
    Admin, Erasure, Key, KeyKind, Project, RateLimit, Settings, ShareLink, key_label,
};

const TASK: &str = "project";

const USAGE: &str = "\
cargo xtask project <command> [--url URL]

Commands:
  list                       every project
  create <slug> [--retention-days N] [--origin URL]... [--rate-limit TIER] [--public]
         [--badges] [--plausible-domain DOMAIN] [--shard K]
                             a new project, on data shard K (default: the shard
                             with the fewest projects; a project's shard is kept)
  show <slug>                a project's settings
  set <slug> [--retention-days N] [--origin URL]... [--no-origins] [--rate-limit TIER]
             [--public | --private] [--badges | --no-badges]
             [--plausible-domain DOMAIN | --no-plausible-domain]
                             change a project's settings; --origin replaces the allowed
                             origins, --no-origins empties them; --public opens the
                             dashboard to anyone, --private (the default) asks for a
                             read token or a share link; --badges serves the project's
                             badges to anyone, --no-badges (the default) answers them 404
                             (--public and --private switch the badges too, unless given);
                             --plausible-domain lets Plausible's keyless trackers send
                             /api/event with that data-domain from the allowed origins,
                             --no-plausible-domain (the default) asks for a write key
  share <slug> [--days N]    a link that shows the dashboard to anyone who has it, for N
                             days (default 30, at most 366)
  share <slug> --list        the project's share links (never their URLs)
  share <slug> --revoke ID   revoke one share link at once
  key <slug> [--read] [--name NAME]
                             a new write key (a read token with --read); its secret is
                             shown this once
  keys <slug>                a project's write keys and read tokens (never their secrets)
  revoke <slug> <key-id>     revoke a write key or read token for good
  forget <slug> <user-id>    erase a person (GDPR Art. 17): the raw events, session marks
                             and dead letters of the user id events carry in `user` go
                             at the aggregator's next hourly run; rollups keep only
                             aggregates
  forget --status <slug> <id>
                             how far an erasure request has got
  move <slug> --to K [--wait]
                             move a project to data shard K: the aggregator's cron
                             copies its rows while events go to both shards, checks
                             the copy, switches, and deletes the rows from the old
                             shard (some minutes: each phase that changes where
                             reads or writes go waits a minute); --wait prints its
                             progress until it is done or failed
  move --status <slug>       how far the project's latest move has got

TIER is strict, standard, high or off.

";

/// The options `cargo xtask project` knows, and whether each takes a value.
const OPTIONS: [(&str, bool); 20] = [
    ("--to", true),
    ("--wait", false),
    ("--url", true),
    ("--shard", true),
    ("--retention-days", true),
    ("--origin", true),
    ("--no-origins", false),
    ("--rate-limit", true),
    ("--public", false),
    ("--private", false),
    ("--read", false),
    ("--name", true),
    ("--days", true),
    ("--status", false),
    ("--badges", false),
    ("--no-badges", false),
    ("--list", false),
    ("--revoke", true),
    ("--plausible-domain", true),
    ("--no-plausible-domain", false),
];

/// One `cargo xtask project` command.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    Help,
    List,
    Create {
        slug: String,
        settings: Settings,
    },
    Show {
        slug: String,
    },
    Set {
        slug: String,
        settings: Settings,
    },
    Key {
        slug: String,
        kind: KeyKind,
        name: Option<String>,
    },
    Keys {
        slug: String,
    },
    Revoke {
        slug: String,
        id: u64,
    },
    Share {
        slug: String,
        days: u32,
    },
    Forget {
        slug: String,
        user_id: String,
    },
    Erasure {
        slug: String,
        id: String,
    },
    Shares {
        slug: String,
    },
    RevokeShare {
        slug: String,
        id: String,
    },
    Move {
        slug: String,
        to: u32,
        wait: bool,
    },
    MoveStatus {
        slug: String,
    },
}

/// A command and the `--url` it was given, if any.
#[derive(Debug, PartialEq, Eq)]
struct Invocation {
    url: Option<String>,
    command: Command,
}

impl cli::Command for Command {
    const HELP: Self = Command::Help;
}

pub fn run(args: &[String]) -> Result<()> {
    cli::run(
        args,
        USAGE,
        |args| parse(args).map(|i| (i.url, i.command)),
        execute,
    )
}

/// Runs a command and returns what to print.
fn execute(admin: &Admin, command: Command) -> Result<String> {
    Ok(match command {
        Command::Help => USAGE.to_owned(),
        Command::List => projects_table(&admin.projects()?),
        Command::Create { slug, settings } => {
            let project = admin.create_project(&slug, &settings)?;
            format!(
                "Created project {slug}.\n\n{}\nNext: `cargo xtask project key {slug}` makes a write key to send events with.\n",
                project_details(&project)
            )
        }
        Command::Show { slug } => project_details(&admin.project(&slug)?),
        Command::Set { slug, settings } => {
            let project = admin.update_project(&slug, &settings)?;
            format!("Updated project {slug}.\n\n{}", project_details(&project))
        }
        Command::Key { slug, kind, name } => {
            let key = admin.create_key(&slug, kind, name.as_deref())?;
            new_key(&slug, &key)?
        }
        Command::Keys { slug } => keys_table(&slug, &admin.keys(&slug)?),
        Command::Revoke { slug, id } => {
            let key = admin.revoke_key(&slug, id)?;
            format!(
                "Revoked {} {} ({}…) of project {slug}{}.\n",
                key_label(key.kind),
                key.id,
                key.prefix,
                key.revoked_at
                    .map(|at| format!(" at {at}"))
                    .unwrap_or_default()
            )
        }
        Command::Forget { slug, user_id } => {
            let erasure = admin.forget(&slug, &user_id)?;
            format!(
                "Asked to erase user {user_id:?} from project {slug}: request {}, {}.\n\n\
                 The aggregator's hourly job deletes their raw events, session marks and dead \
                 letters; rollups keep only aggregates, from which no one can be picked out.\n\
                 `cargo xtask project forget --status {slug} {}` shows how far it got.\n",
                erasure.id,
                erasure_status(&erasure),
                erasure.id
            )
        }
        Command::Erasure { slug, id } => erasure_details(&admin.erasure(&slug, &id)?),
        Command::Share { slug, days } => {
            let share = admin.share(&slug, days)?;
            format!(
                "Anyone with this link can view the dashboard of {slug} until {}:\n\n    {}\n\n\
                 `cargo xtask project share {slug} --revoke {}` revokes it.\n",
                share.expires_at, share.url, share.id
            )
        }
        Command::Shares { slug } => shares_table(&slug, &admin.share_links(&slug)?),
        Command::Move { slug, to, wait } => {
            let started = admin.start_move(&slug, to)?;
            let mut text = format!(
                "Started moving project {slug} to shard {to}.\n{}",
                move_line(&started)
            );
            if wait {
                println!("{text}");
                text = wait_for_move(admin, &slug, &started)?;
            } else {
                text.push_str(&format!(
                    "`cargo xtask project move --status {slug}` shows how far it got.\n"
                ));
            }
            text
        }
        Command::MoveStatus { slug } => move_line(&admin.project_move(&slug)?),
        Command::RevokeShare { slug, id } => {
            let link = admin.revoke_share(&slug, &id)?;
            format!(
                "Revoked share link {} of project {slug}{}.\n",
                link.id,
                link.revoked_at
                    .map(|at| format!(" at {at}"))
                    .unwrap_or_default()
            )
        }
    })
}

/// One line of where a move stands (the admin API's `move` object).
fn move_line(m: &serde_json::Value) -> String {
    let progress = &m["progress"];
    let count = |name: &str| progress[name].as_u64().unwrap_or(0);
    let mut line = format!(
        "{} from shard {} to {}: {}{} — {} rollup rows and {} session days copied, {} raw \
         events read ({} copied as rows, {} replayed), {} rows deleted; {} runs, {} D1 queries",
        m["project"].as_str().unwrap_or("?"),
        m["from_shard"],
        m["to_shard"],
        m["phase"].as_str().unwrap_or("?"),
        m["stage"]
            .as_str()
            .filter(|s| !s.is_empty() && m["phase"] == "copying")
            .map(|s| format!(" ({s})"))
            .unwrap_or_default(),
        count("rollup_rows"),
        count("session_days"),
        count("raw_events"),
        count("raw_copied"),
        count("replayed"),
        count("deleted"),
        count("runs"),
        count("queries"),
    );
    if let Some(error) = m["error"].as_str() {
        line.push_str(&format!("\n  last error: {error}"));
    }
    line.push('\n');
    line
}

/// Polls the move every 5 s, printing each change, until it is done or failed.
fn wait_for_move(admin: &Admin, slug: &str, started: &serde_json::Value) -> Result<String> {
    let mut last = move_line(started);
    loop {
        std::thread::sleep(std::time::Duration::from_secs(5));
        let m = admin.project_move(slug)?;
        let line = move_line(&m);
        if line != last {
            print!("{line}");
            last = line;
        }
        match (m["phase"].as_str(), m["finished_at"].is_null()) {
            (Some("done"), _) => {
                return Ok(format!(
                    "Project {slug} lives on shard {} now.\n",
                    m["to_shard"]
                ));
            }
            (Some("failed"), false) => bail!(
                "the move of {slug} failed and its copy is deleted; {slug} stays on shard {}: {}",
                m["from_shard"],
                m["error"].as_str().unwrap_or("no reason recorded")
            ),
            _ => {}
        }
    }
}

/// Reads the arguments after `cargo xtask project`.
fn parse(args: &[String]) -> Result<Invocation> {
    let line = cli::scan(TASK, args, &OPTIONS)?;
    let Some((command, rest, opts)) = line.command() else {
        return Ok(Invocation {
            url: None,
            command: Command::Help,
        });
    };
    let url = opts.single("--url")?;
    let command = match command.as_str() {
        "list" => {
            opts.allow(&[])?;
            cli::operands(TASK, command, rest, &[])?;
            Command::List
        }
        "create" => {
            opts.allow(&[
                "--retention-days",
                "--origin",
                "--rate-limit",
                "--public",
                "--badges",
                "--plausible-domain",
                "--shard",
            ])?;
            let [slug] = cli::operands(TASK, command, rest, &["<slug>"])?;
            Command::Create {
                slug,
                settings: settings(&opts)?,
            }
        }
        "show" => {
            opts.allow(&[])?;
            let [slug] = cli::operands(TASK, command, rest, &["<slug>"])?;
            Command::Show { slug }
        }
        "set" => {
            opts.allow(&[
                "--retention-days",
                "--origin",
                "--no-origins",
                "--rate-limit",
                "--public",
                "--private",
                "--badges",
                "--no-badges",
                "--plausible-domain",
                "--no-plausible-domain",
            ])?;
            let [slug] = cli::operands(TASK, command, rest, &["<slug>"])?;
            let settings = settings(&opts)?;
            if settings.is_empty() {
                bail!(
                    "`cargo xtask project set {slug}` changes nothing: give --retention-days, \
                     --origin, --no-origins, --rate-limit, --public, --private, --badges, \
                     --no-badges, --plausible-domain or --no-plausible-domain"
                );
            }
            Command::Set { slug, settings }
        }
        "key" => {
            opts.allow(&["--read", "--name"])?;
            let [slug] = cli::operands(TASK, command, rest, &["<slug>"])?;
            let kind = if opts.has("--read") {
                KeyKind::Read
            } else {
                KeyKind::Write
            };
            Command::Key {
                slug,
                kind,
                name: opts.single("--name")?,
            }
        }
        "keys" => {
            opts.allow(&[])?;
            let [slug] = cli::operands(TASK, command, rest, &["<slug>"])?;
            Command::Keys { slug }
        }
        "revoke" => {
            opts.allow(&[])?;
            let [slug, id] = cli::operands(TASK, command, rest, &["<slug>", "<key-id>"])?;
            let id = id.parse().with_context(|| {
                format!(
                    "the key id must be a number, as `cargo xtask project keys {slug}` lists, not {id:?}"
                )
            })?;
            Command::Revoke { slug, id }
        }
        "move" => {
            opts.allow(&["--to", "--wait", "--status"])?;
            let [slug] = cli::operands(TASK, command, rest, &["<slug>"])?;
            if opts.has("--status") {
                if opts.has("--to") || opts.has("--wait") {
                    bail!("--status shows a move: give it without --to and --wait");
                }
                Command::MoveStatus { slug }
            } else {
                let to = opts
                    .single("--to")?
                    .with_context(|| format!("move {slug} where? Give --to K, a shard's number"))?;
                let to = to.parse().with_context(|| {
                    format!("--to takes a shard's number (0, 1, ...), not {to:?}")
                })?;
                Command::Move {
                    slug,
                    to,
                    wait: opts.has("--wait"),
                }
            }
        }
        "share" => {
            opts.allow(&["--days", "--list", "--revoke"])?;
            let [slug] = cli::operands(TASK, command, rest, &["<slug>"])?;
            let revoke = opts.single("--revoke")?;
            let given = [opts.has("--days"), opts.has("--list"), revoke.is_some()];
            if given.iter().filter(|g| **g).count() > 1 {
                bail!("--days, --list and --revoke contradict each other: give one");
            }
            if opts.has("--list") {
                return Ok(Invocation {
                    url,
                    command: Command::Shares { slug },
                });
            }
            if let Some(id) = revoke {
                return Ok(Invocation {
                    url,
                    command: Command::RevokeShare { slug, id },
                });
            }
            let days = match opts.single("--days")? {
                Some(days) => days
                    .parse()
                    .ok()
                    .filter(|d| (1..=366).contains(d))
                    .with_context(|| {
                        format!("--days wants a whole number from 1 to 366, not {days:?}")
                    })?,
                None => 30,
            };
            Command::Share { slug, days }
        }
        "forget" => {
            opts.allow(&["--status"])?;
            if opts.has("--status") {
                let [slug, id] = cli::operands(TASK, command, rest, &["<slug>", "<id>"])?;
                Command::Erasure { slug, id }
            } else {
                let [slug, user_id] = cli::operands(TASK, command, rest, &["<slug>", "<user-id>"])?;
                if user_id.is_empty() {
                    bail!("the user id is empty; give the `user` your events carry");
                }
                Command::Forget { slug, user_id }
            }
        }
        other => bail!("unknown command {other:?}\n\n{USAGE}"),
    };
    Ok(Invocation { url, command })
}

/// The project settings among the options.
fn settings(opts: &Options<'_>) -> Result<Settings> {
    let retention_days = match opts.single("--retention-days")? {
        Some(days) => Some(days.parse().ok().filter(|d| *d > 0).with_context(|| {
            format!("--retention-days wants a whole number of days, not {days:?}")
        })?),
        None => None,
    };
    let origins = opts.all("--origin");
    let allowed_origins = match (origins.is_empty(), opts.has("--no-origins")) {
        (false, true) => bail!("--origin and --no-origins contradict each other"),
        (false, false) => Some(origins),
        (true, true) => Some(Vec::new()),
        (true, false) => None,
    };
    let rate_limit = match opts.single("--rate-limit")? {
        Some(tier) => Some(RateLimit::parse(&tier).with_context(|| {
            let tiers: Vec<&str> = RateLimit::ALL.iter().map(|t| t.as_str()).collect();
            format!(
                "--rate-limit wants one of {}, not {tier:?}",
                tiers.join(", ")
            )
        })?),
        None => None,
    };
    let public_dashboard = match (opts.has("--public"), opts.has("--private")) {
        (true, true) => bail!("--public and --private contradict each other"),
        (true, false) => Some(true),
        (false, true) => Some(false),
        (false, false) => None,
    };
    let public_badges = match (opts.has("--badges"), opts.has("--no-badges")) {
        (true, true) => bail!("--badges and --no-badges contradict each other"),
        (true, false) => Some(true),
        (false, true) => Some(false),
        (false, false) => None,
    };
    let plausible_domain = match (
        opts.single("--plausible-domain")?,
        opts.has("--no-plausible-domain"),
    ) {
        (Some(_), true) => {
            bail!("--plausible-domain and --no-plausible-domain contradict each other")
        }
        (Some(domain), false) => Some(Some(domain)),
        (None, true) => Some(None),
        (None, false) => None,
    };
    let shard = match opts.single("--shard")? {
        Some(k) => Some(
            k.parse()
                .with_context(|| format!("--shard wants a shard's number (0, 1, …), not {k:?}"))?,
        ),
        None => None,
    };
    Ok(Settings {
        retention_days,
        allowed_origins,
        rate_limit,
        public_dashboard,
        public_badges,
        plausible_domain,
        shard,
    })
}

fn origins(project: &Project) -> String {
    if project.allowed_origins.is_empty() {
        "(none)".into()
    } else {
        project.allowed_origins.join(", ")
    }
}

fn projects_table(projects: &[Project]) -> String {
    if projects.is_empty() {
        return "No projects yet; `cargo xtask project create <slug>` makes one.\n".into();
    }
    let rows: Vec<Vec<String>> = projects
        .iter()
        .map(|p| {
            vec![
                p.slug.clone(),
                format!("{} days", p.retention_days),
                p.rate_limit.as_str().to_owned(),
                dashboard(p).to_owned(),
                origins(p),
                p.created_at.clone(),
            ]
        })
        .collect();
    table(
        &[
            "SLUG",
            "RETENTION",
            "RATE LIMIT",
            "DASHBOARD",
            "ALLOWED ORIGINS",
            "CREATED",
        ],
        &rows,
    )
}

fn dashboard(project: &Project) -> &'static str {
    if project.public_dashboard {
        "public"
    } else {
        "private"
    }
}

fn badges(project: &Project) -> &'static str {
    if project.public_badges {
        "public"
    } else {
        "off"
    }
}

fn plausible_domain(project: &Project) -> String {
    match &project.plausible_domain {
        Some(domain) => format!("{domain} (keyless /api/event from the allowed origins)"),
        None => "(off: /api/event asks for a write key)".into(),
    }
}

fn project_details(p: &Project) -> String {
    format!(
        "project          {}\nshard            {}\nretention        {} days\nrate limit       {}\ndashboard        {}\nbadges           {}\nallowed origins  {}\nplausible domain {}\ncreated          {}\n",
        p.slug,
        p.shard,
        p.retention_days,
        p.rate_limit.as_str(),
        dashboard(p),
        badges(p),
        origins(p),
        plausible_domain(p),
        p.created_at
    )
}

fn shares_table(slug: &str, links: &[ShareLink]) -> String {
    if links.is_empty() {
        return format!(
            "Project {slug} has no share links; `cargo xtask project share {slug}` makes one.\n"
        );
    }
    let rows: Vec<Vec<String>> = links
        .iter()
        .map(|l| {
            vec![
                l.id.clone(),
                l.created_at.clone(),
                l.expires_at.clone(),
                match &l.revoked_at {
                    Some(at) => format!("revoked {at}"),
                    None => l.status.clone(),
                },
            ]
        })
        .collect();
    table(&["ID", "CREATED", "EXPIRES", "STATUS"], &rows)
}

fn keys_table(slug: &str, keys: &[Key]) -> String {
    if keys.is_empty() {
        return format!(
            "Project {slug} has no keys yet; `cargo xtask project key {slug}` makes a write key.\n"
        );
    }
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            vec![
                k.id.to_string(),
                key_label(k.kind).to_owned(),
                k.name.clone().unwrap_or_else(|| "-".into()),
                format!("{}…", k.prefix),
                k.created_at.clone(),
                match &k.revoked_at {
                    Some(at) => format!("revoked {at}"),
                    None => "active".into(),
                },
            ]
        })
        .collect();
    table(
        &["ID", "KIND", "NAME", "PREFIX", "CREATED", "STATUS"],
        &rows,
    )
}

fn erasure_status(e: &Erasure) -> &'static str {
    if e.done { "done" } else { "pending" }
}

fn erasure_details(e: &Erasure) -> String {
    format!(
        "request        {}\nproject        {}\nstatus         {}\nrequested      {}\n\
         done           {}\nraw events     {} deleted\n\
         session marks  {} deleted (dead letters included)\n",
        e.id,
        e.project,
        erasure_status(e),
        e.requested_at,
        e.done_at.as_deref().unwrap_or("-"),
        e.raw_deleted,
        e.marks_deleted
    )
}

/// A key just created, with its secret and the warning that it is shown only now.
fn new_key(slug: &str, key: &Key) -> Result<String> {
    let named = key
        .name
        .as_ref()
        .map(|n| format!(" ({n})"))
        .unwrap_or_default();
    let usage = match key.kind {
        KeyKind::Write => "send events with it: POST /v1/events with `authorization: Bearer <key>`",
        KeyKind::Read => &format!(
            "read with it: GET /v1/projects/{slug}/overview with `authorization: Bearer <token>`"
        ),
    };
    Ok(format!(
        "Created {} {}{named} for project {slug}:\n\n    {}\n\n\
         Copy it now: it will not be shown again. To {usage}.\n\
         `cargo xtask project revoke {slug} {}` revokes it.\n",
        key_label(key.kind),
        key.id,
        key.secret()?,
        key.id,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(line: &str) -> Invocation {
        cli::testing::parsed(parse, line)
    }

    #[test]
    fn no_command_or_help_prints_usage() {
        for line in [
            "",
            "--help",
            "-h",
            "help",
            "create demo --help",
            "--url http://x",
        ] {
            assert_eq!(parsed(line).command, Command::Help, "{line:?}");
        }
    }

    #[test]
    fn reads_every_command() {
        assert_eq!(
            parsed("list"),
            Invocation {
                url: None,
                command: Command::List
            }
        );
        assert_eq!(
            parsed(
                "--url http://q:1 create demo --retention-days 30 --origin https://a.example --origin=https://b.example --rate-limit off --public --shard 1"
            ),
            Invocation {
                url: Some("http://q:1".into()),
                command: Command::Create {
                    slug: "demo".into(),
                    settings: Settings {
                        retention_days: Some(30),
                        allowed_origins: Some(vec![
                            "https://a.example".into(),
                            "https://b.example".into()
                        ]),
                        rate_limit: Some(RateLimit::Off),
                        public_dashboard: Some(true),
                        public_badges: None,
                        plausible_domain: None,
                        shard: Some(1),
                    },
                },
            }
        );
        assert_eq!(
            parsed("create demo").command,
            Command::Create {
                slug: "demo".into(),
                settings: Settings::default()
            }
        );
        assert_eq!(
            parsed("show demo --url=http://q").command,
            Command::Show {
                slug: "demo".into()
            }
        );
        assert_eq!(
            parsed("set demo --no-origins").command,
            Command::Set {
                slug: "demo".into(),
                settings: Settings {
                    allowed_origins: Some(vec![]),
                    ..Settings::default()
                },
            }
        );
        assert_eq!(
            parsed("key demo").command,
            Command::Key {
                slug: "demo".into(),
                kind: KeyKind::Write,
                name: None
            }
        );
        assert_eq!(
            parsed("key demo --read --name dashboard").command,
            Command::Key {
                slug: "demo".into(),
                kind: KeyKind::Read,
                name: Some("dashboard".into())
            }
        );
        assert_eq!(
            parsed("keys demo").command,
            Command::Keys {
                slug: "demo".into()
            }
        );
        assert_eq!(
            parsed("revoke demo 12").command,
            Command::Revoke {
                slug: "demo".into(),
                id: 12
            }
        );
        assert_eq!(
            parsed("set demo --public").command,
            Command::Set {
                slug: "demo".into(),
                settings: Settings {
                    public_dashboard: Some(true),
                    ..Settings::default()
                },
            }
        );
        assert_eq!(
            parsed("set demo --private").command,
            Command::Set {
                slug: "demo".into(),
                settings: Settings {
                    public_dashboard: Some(false),
                    ..Settings::default()
                },
            }
        );
        assert_eq!(
            parsed("share demo").command,
            Command::Share {
                slug: "demo".into(),
                days: 30
            }
        );
        assert_eq!(
            parsed("forget demo alice@example.com").command,
            Command::Forget {
                slug: "demo".into(),
                user_id: "alice@example.com".into()
            }
        );
        assert_eq!(
            parsed("forget --status demo 0123456789abcdef0123456789abcdef").command,
            Command::Erasure {
                slug: "demo".into(),
                id: "0123456789abcdef0123456789abcdef".into()
            }
        );
        assert_eq!(
            parsed("forget demo 0123 --status").command,
            Command::Erasure {
                slug: "demo".into(),
                id: "0123".into()
            }
        );
        assert_eq!(
            parsed("share demo --days 7").command,
            Command::Share {
                slug: "demo".into(),
                days: 7
            }
        );
        assert_eq!(
            parsed("share demo --list").command,
            Command::Shares {
                slug: "demo".into()
            }
        );
        assert_eq!(
            parsed("share demo --revoke sh_0123456789abcdef").command,
            Command::RevokeShare {
                slug: "demo".into(),
                id: "sh_0123456789abcdef".into()
            }
        );
        assert_eq!(
            parsed("set demo --badges").command,
            Command::Set {
                slug: "demo".into(),
                settings: Settings {
                    public_badges: Some(true),
                    ..Settings::default()
                },
            }
        );
        assert_eq!(
            parsed("create demo --badges").command,
            Command::Create {
                slug: "demo".into(),
                settings: Settings {
                    public_badges: Some(true),
                    ..Settings::default()
                },
            }
        );
        assert_eq!(
            parsed("set demo --plausible-domain shop.example").command,
            Command::Set {
                slug: "demo".into(),
                settings: Settings {
                    plausible_domain: Some(Some("shop.example".into())),
                    ..Settings::default()
                },
            }
        );
        assert_eq!(
            parsed("set demo --no-plausible-domain").command,
            Command::Set {
                slug: "demo".into(),
                settings: Settings {
                    plausible_domain: Some(None),
                    ..Settings::default()
                },
            }
        );
        assert_eq!(
            parsed("set demo --no-badges").command,
            Command::Set {
                slug: "demo".into(),
                settings: Settings {
                    public_badges: Some(false),
                    ..Settings::default()
                },
            }
        );
    }

    #[test]
    fn reads_moves() {
        assert_eq!(
            parsed("move demo --to 1").command,
            Command::Move {
                slug: "demo".into(),
                to: 1,
                wait: false
            }
        );
        assert_eq!(
            parsed("move demo --to=0 --wait").command,
            Command::Move {
                slug: "demo".into(),
                to: 0,
                wait: true
            }
        );
        assert_eq!(
            parsed("move --status demo").command,
            Command::MoveStatus {
                slug: "demo".into()
            }
        );
        let check =
            |line: &str, expected: &str| cli::testing::assert_refused(parse, line, expected);
        check("move demo", "Give --to K");
        check("move demo --to one", "--to takes a shard's number");
        check("move --status demo --to 1", "--status shows a move");
        check("move demo --to 1 --read", "does not take --read");
    }

    #[test]
    fn shows_where_a_move_stands() {
        let m = serde_json::json!({
            "project": "demo", "from_shard": 0, "to_shard": 1, "phase": "copying",
            "stage": "events", "error": "shard 1 is busy",
            "progress": {"rollup_rows": 120, "session_days": 3, "raw_events": 900,
                         "raw_copied": 100, "replayed": 800, "deleted": 0, "runs": 4,
                         "queries": 310}
        });
        assert_eq!(
            move_line(&m),
            "demo from shard 0 to 1: copying (events) — 120 rollup rows and 3 session days \
             copied, 900 raw events read (100 copied as rows, 800 replayed), 0 rows deleted; \
             4 runs, 310 D1 queries\n  last error: shard 1 is busy\n"
        );
    }

    #[test]
    fn mistakes_are_named() {
        let check =
            |line: &str, expected: &str| cli::testing::assert_refused(parse, line, expected);
        check("frobnicate", "unknown command \"frobnicate\"");
        check("list --verbose", "unknown option \"--verbose\"");
        check("list -v", "unknown option \"-v\"");
        check(
            "list --read",
            "`cargo xtask project list` does not take --read",
        );
        check("create demo --no-origins", "does not take --no-origins");
        check(
            "create",
            "`cargo xtask project create <slug>` is missing <slug>",
        );
        check("show a b", "takes no argument \"b\"");
        check("revoke demo", "is missing <key-id>");
        check("revoke demo tw_ab12", "the key id must be a number");
        check(
            "create demo --rate-limit fast",
            "--rate-limit wants one of strict, standard, high, off",
        );
        check(
            "create demo --retention-days 0",
            "--retention-days wants a whole number",
        );
        check(
            "create demo --retention-days",
            "--retention-days needs a value",
        );
        check("set demo", "changes nothing");
        check("set demo --origin x --no-origins", "contradict");
        check("set demo --public --private", "contradict");
        check("create demo --private", "does not take --private");
        check(
            "share demo --days 0",
            "--days wants a whole number from 1 to 366",
        );
        check(
            "share demo --days 400",
            "--days wants a whole number from 1 to 366",
        );
        check("share demo --public", "does not take --public");
        check("share demo --list --revoke sh_1", "contradict");
        check("share demo --days 3 --list", "contradict");
        check("share demo --revoke", "--revoke needs a value");
        check("set demo --badges --no-badges", "contradict");
        check(
            "set demo --plausible-domain a.example --no-plausible-domain",
            "contradict",
        );
        check("create demo --no-badges", "does not take --no-badges");
        check("key demo --read=yes", "--read takes no value");
        check("list --url a --url b", "--url is given 2 times");
        check("forget demo", "is missing <user-id>");
        check("forget --status demo", "is missing <id>");
        check("forget demo u1 u2", "takes no argument \"u2\"");
        check("forget demo u1 --read", "does not take --read");
        check("keys demo --status", "does not take --status");
    }

    fn project(slug: &str, origins: &[&str]) -> Project {
        Project {
            slug: slug.into(),
            retention_days: 90,
            allowed_origins: origins.iter().map(|o| (*o).to_owned()).collect(),
            rate_limit: RateLimit::Standard,
            public_dashboard: false,
            public_badges: false,
            plausible_domain: None,
            shard: 1,
            created_at: "2025-01-02T03:04:05Z".into(),
        }
    }

    fn key(id: u64, kind: KeyKind, revoked: bool) -> Key {
        Key {
            id,
            kind,
            name: (id == 1).then(|| "ci".into()),
            prefix: "tw_ab12cd".into(),
            created_at: "2025-01-02T03:04:05Z".into(),
            revoked_at: revoked.then(|| "2025-02-01T00:00:00Z".into()),
            secret: None,
        }
    }

    #[test]
    fn lists_projects_as_a_table() {
        assert_eq!(
            projects_table(&[
                Project {
                    public_dashboard: true,
                    ..project("demo", &["*"])
                },
                project("shop-web", &[])
            ]),
            "\
SLUG      RETENTION  RATE LIMIT  DASHBOARD  ALLOWED ORIGINS  CREATED
demo      90 days    standard    public     *                2025-01-02T03:04:05Z
shop-web  90 days    standard    private    (none)           2025-01-02T03:04:05Z
"
        );
        assert!(projects_table(&[]).starts_with("No projects yet"));
        assert_eq!(
            project_details(&project(
                "demo",
                &["https://a.example", "https://b.example"]
            )),
            "\
project          demo
shard            1
retention        90 days
rate limit       standard
dashboard        private
badges           off
allowed origins  https://a.example, https://b.example
plausible domain (off: /api/event asks for a write key)
created          2025-01-02T03:04:05Z
"
        );
        let keyless = Project {
            plausible_domain: Some("shop.example".into()),
            ..project("demo", &["https://shop.example"])
        };
        assert!(
            project_details(&keyless).contains(
                "plausible domain shop.example (keyless /api/event from the allowed origins)\n"
            ),
            "{}",
            project_details(&keyless)
        );
    }

    #[test]
    fn lists_keys_as_a_table() {
        assert_eq!(
            keys_table(
                "demo",
                &[key(1, KeyKind::Write, false), key(2, KeyKind::Read, true)]
            ),
            "\
ID  KIND        NAME  PREFIX      CREATED               STATUS
1   write key   ci    tw_ab12cd…  2025-01-02T03:04:05Z  active
2   read token  -     tw_ab12cd…  2025-01-02T03:04:05Z  revoked 2025-02-01T00:00:00Z
"
        );
        assert!(keys_table("demo", &[]).contains("`cargo xtask project key demo`"));
    }

    #[test]
    fn shows_an_erasure_request() {
        let mut e = Erasure {
            id: "0123456789abcdef0123456789abcdef".into(),
            project: "demo".into(),
            done: false,
            requested_at: "2025-01-02T03:04:05.000Z".into(),
            done_at: None,
            raw_deleted: 0,
            marks_deleted: 0,
        };
        assert_eq!(
            erasure_details(&e),
            "\
request        0123456789abcdef0123456789abcdef
project        demo
status         pending
requested      2025-01-02T03:04:05.000Z
done           -
raw events     0 deleted
session marks  0 deleted (dead letters included)
"
        );
        e.done = true;
        e.done_at = Some("2025-01-02T04:05:00.000Z".into());
        e.raw_deleted = 12;
        let text = erasure_details(&e);
        assert!(text.contains("status         done\n"), "{text}");
        assert!(
            text.contains("done           2025-01-02T04:05:00.000Z\n"),
            "{text}"
        );
        assert!(text.contains("raw events     12 deleted\n"), "{text}");
    }

    #[test]
    fn lists_share_links_as_a_table() {
        let link = |id: &str, status: &str, revoked: Option<&str>| ShareLink {
            id: id.into(),
            created_at: "2025-01-02T03:04:05.000Z".into(),
            expires_at: "2025-01-09T03:04:05.000Z".into(),
            status: status.into(),
            revoked_at: revoked.map(str::to_owned),
        };
        assert_eq!(
            shares_table(
                "demo",
                &[
                    link("sh_00000000000000a1", "active", None),
                    link("sh_00000000000000a2", "revoked", Some("2025-01-03T00:00:00.000Z")),
                ]
            ),
            "\
ID                   CREATED                   EXPIRES                   STATUS
sh_00000000000000a1  2025-01-02T03:04:05.000Z  2025-01-09T03:04:05.000Z  active
sh_00000000000000a2  2025-01-02T03:04:05.000Z  2025-01-09T03:04:05.000Z  revoked 2025-01-03T00:00:00.000Z
"
        );
        assert!(shares_table("demo", &[]).contains("`cargo xtask project share demo`"));
    }

    #[test]
    fn shows_a_new_secret_once_with_a_warning() {
        let created = Key {
            secret: Some("tw_ab12cdef".into()),
            ..key(1, KeyKind::Write, false)
        };
        let text = new_key("demo", &created).unwrap();
        assert!(
            text.starts_with("Created write key 1 (ci) for project demo:\n\n    tw_ab12cdef\n\n"),
            "{text}"
        );
        assert!(text.contains("it will not be shown again"), "{text}");
        assert!(new_key("demo", &key(1, KeyKind::Write, false)).is_err());
    }
}
