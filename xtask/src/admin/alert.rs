//! `cargo xtask alert`: list, create, show, change, switch, rotate and delete a
//! project's alert rules, and read its alert history, through the query worker's admin
//! API. A rule is JSON (`--json`, or a file with `--json @rule.json`), with options that
//! set single fields over it.

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};
use tally_core::alerts::{Comparator, State};

use crate::admin::cli::{self, Options, table};
use crate::admin::client::{Admin, AlertEvent, AlertRule};

const TASK: &str = "alert";

const USAGE: &str = "\
cargo xtask alert <command> [--url URL]

Commands:
  list <slug>                  the project's rules and their state
  show <slug> <rule-id>        one rule in full, as JSON
  create <slug> [--json JSON | --json @FILE] [RULE OPTIONS]
                               a new rule; its webhook secret is shown this once
  set <slug> <rule-id> [--json JSON | --json @FILE] [RULE OPTIONS]
      [--no-filter] [--no-webhook] [--no-pause]
                               change the fields given
  enable <slug> <rule-id>      evaluate the rule again
  disable <slug> <rule-id>     stop evaluating it
  rotate-secret <slug> <rule-id>
                               a new webhook secret, shown this once
  delete <slug> <rule-id>      delete the rule; its alerts stay in the history
  history <slug> [--days N] [--limit N]
                               firings and resolutions, newest first, with their webhook
                               deliveries (default the last 7 days, 50 alerts)

RULE OPTIONS set one field each, over --json:
  --name TEXT
  --metric error_rate|p95|p99|count|ratio
  --event NAME                 the event a count counts (default: every event)
  --numerator NAME --denominator NAME
                               the events of a ratio (click-through: click / open)
  --filter DIMENSION=VALUE     only one route, campaign, source or medium
  --comparator OP              <, <=, >, >= (or below, at-most, above, at-least)
  --threshold NUMBER           rates and ratios are fractions: 0.01 is 1%
  --window MINUTES             5 to 1440
  --min-volume N               below N events (of the denominator, for a ratio) the
                               rule neither fires nor resolves
  --cooldown MINUTES           no second firing within this long (default 60)
  --webhook URL                POST signed alerts here
  --pause-campaign NAME|true   mark this campaign (true: the filter's) paused on firing

Example, click-through of campaign spring below 1%:
  cargo xtask alert create shop --name 'spring CTR' --metric ratio \\
    --numerator click --denominator open --filter campaign=spring \\
    --comparator '<' --threshold 0.01 --window 15 --min-volume 100 \\
    --webhook https://hooks.example/tally --pause-campaign true

";

/// The options `cargo xtask alert` knows, and whether each takes a value.
const OPTIONS: [(&str, bool); 20] = [
    ("--url", true),
    ("--json", true),
    ("--name", true),
    ("--metric", true),
    ("--event", true),
    ("--numerator", true),
    ("--denominator", true),
    ("--filter", true),
    ("--comparator", true),
    ("--threshold", true),
    ("--window", true),
    ("--min-volume", true),
    ("--cooldown", true),
    ("--webhook", true),
    ("--pause-campaign", true),
    ("--no-filter", false),
    ("--no-webhook", false),
    ("--no-pause", false),
    ("--days", true),
    ("--limit", true),
];

/// The options that set a field of a rule.
const RULE_OPTIONS: [&str; 14] = [
    "--json",
    "--name",
    "--metric",
    "--event",
    "--numerator",
    "--denominator",
    "--filter",
    "--comparator",
    "--threshold",
    "--window",
    "--min-volume",
    "--cooldown",
    "--webhook",
    "--pause-campaign",
];

/// One `cargo xtask alert` command.
#[derive(Debug, PartialEq)]
enum Command {
    Help,
    List {
        slug: String,
    },
    Show {
        slug: String,
        id: String,
    },
    Create {
        slug: String,
        rule: Value,
    },
    Set {
        slug: String,
        id: String,
        change: Value,
    },
    RotateSecret {
        slug: String,
        id: String,
    },
    Delete {
        slug: String,
        id: String,
    },
    History {
        slug: String,
        days: u32,
        limit: u32,
    },
}

impl cli::Command for Command {
    const HELP: Self = Command::Help;
}

pub fn run(args: &[String]) -> Result<()> {
    cli::run(args, USAGE, parse, execute)
}

/// Runs a command and returns what to print.
fn execute(admin: &Admin, command: Command) -> Result<String> {
    Ok(match command {
        Command::Help => USAGE.to_owned(),
        Command::List { slug } => rules_table(&slug, &admin.alert_rules(&slug)?),
        Command::Show { slug, id } => {
            let rule = admin.alert_rule(&slug, &id)?;
            format!("{:#}\n", rule.json)
        }
        Command::Create { slug, rule } => {
            let rule = admin.create_alert_rule(&slug, &rule)?;
            format!(
                "Created alert rule {} ({}) of project {slug}: {}.\n{}",
                rule.id,
                rule.name,
                rule.condition(),
                secret_note(&slug, &rule)
            )
        }
        Command::Set { slug, id, change } => {
            let rule = admin.update_alert_rule(&slug, &id, &change)?;
            format!(
                "Updated alert rule {id} of project {slug}: {}{}.\n{}",
                rule.condition(),
                if rule.enabled { "" } else { " (disabled)" },
                secret_note(&slug, &rule)
            )
        }
        Command::RotateSecret { slug, id } => {
            let rule = admin.update_alert_rule(&slug, &id, &json!({"rotate_secret": true}))?;
            let note = secret_note(&slug, &rule);
            if note.is_empty() {
                bail!("the admin API did not return the new secret of alert rule {id}");
            }
            format!(
                "Rotated the webhook secret of alert rule {id}; the old one no longer signs.\n{note}"
            )
        }
        Command::Delete { slug, id } => {
            let rule = admin.delete_alert_rule(&slug, &id)?;
            format!(
                "Deleted alert rule {id} ({}) of project {slug}; its alerts stay in the history.\n",
                rule.name
            )
        }
        Command::History { slug, days, limit } => {
            history_table(&slug, days, &admin.alerts(&slug, days, limit)?)
        }
    })
}

/// Reads the arguments after `cargo xtask alert`.
fn parse(args: &[String]) -> Result<(Option<String>, Command)> {
    let line = cli::scan(TASK, args, &OPTIONS)?;
    let Some((command, rest, opts)) = line.command() else {
        return Ok((None, Command::Help));
    };
    let url = opts.single("--url")?;
    let slug_and_id = |opts: &Options<'_>| -> Result<(String, String)> {
        opts.allow(&[])?;
        let [slug, id] = cli::operands(TASK, command, rest, &["<slug>", "<rule-id>"])?;
        Ok((slug, id))
    };
    let command = match command.as_str() {
        "list" => {
            opts.allow(&[])?;
            let [slug] = cli::operands(TASK, command, rest, &["<slug>"])?;
            Command::List { slug }
        }
        "show" => {
            let (slug, id) = slug_and_id(&opts)?;
            Command::Show { slug, id }
        }
        "create" => {
            opts.allow(&RULE_OPTIONS)?;
            let [slug] = cli::operands(TASK, command, rest, &["<slug>"])?;
            let rule = rule_body(&opts)?;
            if rule.as_object().is_some_and(Map::is_empty) {
                bail!(
                    "`cargo xtask alert create {slug}` needs the rule: --json, or options such \
                     as --name, --metric, --comparator, --threshold and --window"
                );
            }
            Command::Create { slug, rule }
        }
        "set" => {
            let mut allowed = RULE_OPTIONS.to_vec();
            allowed.extend(["--no-filter", "--no-webhook", "--no-pause"]);
            opts.allow(&allowed)?;
            let [slug, id] = cli::operands(TASK, command, rest, &["<slug>", "<rule-id>"])?;
            let change = rule_body(&opts)?;
            if change.as_object().is_some_and(Map::is_empty) {
                bail!(
                    "`cargo xtask alert set {slug} {id}` changes nothing: give --json or a rule \
                     option (see `cargo xtask alert --help`)"
                );
            }
            Command::Set { slug, id, change }
        }
        "enable" | "disable" => {
            let (slug, id) = slug_and_id(&opts)?;
            let change = json!({"enabled": command == "enable"});
            Command::Set { slug, id, change }
        }
        "rotate-secret" => {
            let (slug, id) = slug_and_id(&opts)?;
            Command::RotateSecret { slug, id }
        }
        "delete" => {
            let (slug, id) = slug_and_id(&opts)?;
            Command::Delete { slug, id }
        }
        "history" => {
            opts.allow(&["--days", "--limit"])?;
            let [slug] = cli::operands(TASK, command, rest, &["<slug>"])?;
            Command::History {
                slug,
                days: opts.number("--days", 1..=3660, 7)?,
                limit: opts.number("--limit", 1..=1000, 50)?,
            }
        }
        other => bail!("unknown command {other:?}\n\n{USAGE}"),
    };
    Ok((url, command))
}

/// The rule JSON the options give: `--json` (inline or `@file`), then each option's field
/// over it. The API checks the rule; this only builds it.
fn rule_body(opts: &Options<'_>) -> Result<Value> {
    let mut rule = match opts.single("--json")? {
        None => Map::new(),
        Some(text) => {
            let text = match text.strip_prefix('@') {
                Some(path) => std::fs::read_to_string(path)
                    .with_context(|| format!("reading the rule from {path}"))?,
                None => text,
            };
            match serde_json::from_str(&text) {
                Ok(Value::Object(map)) => map,
                Ok(other) => bail!("--json must be a JSON object, not {other}"),
                Err(e) => bail!("--json is not JSON: {e}"),
            }
        }
    };
    let mut set = |key: &str, value: Value| {
        rule.insert(key.to_owned(), value);
    };
    if let Some(name) = opts.single("--name")? {
        set("name", json!(name));
    }
    let metric_parts = ["--event", "--numerator", "--denominator"];
    match opts.single("--metric")? {
        Some(kind) => {
            let mut metric = json!({"type": kind});
            for (option, field) in metric_parts
                .iter()
                .zip(["name", "numerator", "denominator"])
            {
                if let Some(value) = opts.single(option)? {
                    metric[field] = json!(value);
                }
            }
            set("metric", metric);
        }
        None => {
            if let Some(option) = metric_parts.iter().find(|o| opts.has(o)) {
                bail!("{option} belongs to a metric: give --metric too");
            }
        }
    }
    match (opts.single("--filter")?, opts.has("--no-filter")) {
        (Some(_), true) => bail!("--filter and --no-filter contradict each other"),
        (Some(filter), false) => {
            let (dimension, value) = filter.split_once('=').with_context(|| {
                format!("--filter wants DIMENSION=VALUE, such as campaign=spring, not {filter:?}")
            })?;
            set("filter", json!({"dimension": dimension, "value": value}));
        }
        (None, true) => set("filter", Value::Null),
        (None, false) => {}
    }
    if let Some(op) = opts.single("--comparator")? {
        set("comparator", json!(comparator(&op)?));
    }
    if let Some(t) = opts.single("--threshold")? {
        let n: f64 = t
            .parse()
            .ok()
            .filter(|n: &f64| n.is_finite())
            .with_context(|| format!("--threshold wants a number, not {t:?}"))?;
        set("threshold", json!(n));
    }
    for (option, field) in [
        ("--window", "window_minutes"),
        ("--min-volume", "min_volume"),
        ("--cooldown", "cooldown_minutes"),
    ] {
        if let Some(text) = opts.single(option)? {
            let n: u64 = text
                .parse()
                .with_context(|| format!("{option} wants a whole number, not {text:?}"))?;
            set(field, json!(n));
        }
    }
    match (opts.single("--webhook")?, opts.has("--no-webhook")) {
        (Some(_), true) => bail!("--webhook and --no-webhook contradict each other"),
        (Some(url), false) => set("webhook", json!({"url": url})),
        (None, true) => set("webhook", Value::Null),
        (None, false) => {}
    }
    match (opts.single("--pause-campaign")?, opts.has("--no-pause")) {
        (Some(_), true) => bail!("--pause-campaign and --no-pause contradict each other"),
        (Some(c), false) if c == "true" => set("pause_campaign", json!(true)),
        (Some(c), false) => set("pause_campaign", json!(c)),
        (None, true) => set("pause_campaign", Value::Null),
        (None, false) => {}
    }
    Ok(Value::Object(rule))
}

/// A comparator from its sign or its name.
fn comparator(text: &str) -> Result<&'static str> {
    let sign = match text {
        "lt" | "below" => "<",
        "le" | "at-most" => "<=",
        "gt" | "above" => ">",
        "ge" | "at-least" => ">=",
        sign => sign,
    };
    Comparator::parse(sign)
        .map(Comparator::name)
        .with_context(|| {
            format!(
                "--comparator wants <, <=, >, >= (or below, at-most, above, at-least), not {text:?}"
            )
        })
}

/// The warning that goes with a secret the API just showed; empty without one.
fn secret_note(slug: &str, rule: &AlertRule) -> String {
    match &rule.secret {
        Some(secret) => format!(
            "\nWebhook secret (copy it now: it will not be shown again):\n\n    {secret}\n\n\
             Receivers check `Tally-Signature: t=<unix seconds>,v1=<hex>`, the HMAC-SHA256 of \
             \"<t>.<body>\" under this secret\n(see README, Alerts). \
             `cargo xtask alert rotate-secret {slug} {}` replaces it.\n",
            rule.id
        ),
        None => String::new(),
    }
}

fn rules_table(slug: &str, rules: &[AlertRule]) -> String {
    if rules.is_empty() {
        return format!(
            "Project {slug} has no alert rules; `cargo xtask alert create {slug} ...` makes one \
             (see `cargo xtask alert --help`).\n"
        );
    }
    let rows: Vec<Vec<String>> = rules
        .iter()
        .map(|r| {
            let state = match (r.enabled, r.state, &r.state_since) {
                (false, _, _) => "disabled".to_owned(),
                (true, State::Firing, Some(since)) => format!("FIRING since {since}"),
                (true, state, _) => state.name().to_owned(),
            };
            let last = match (&r.evaluated_at, r.last_value, &r.last_error) {
                (None, _, _) => "-".to_owned(),
                (Some(at), _, Some(error)) => format!("FAILED at {at}: {error}"),
                (Some(at), Some(v), None) => format!("{v} at {at}"),
                (Some(at), None, None) => format!("no data at {at}"),
            };
            vec![r.id.clone(), r.name.clone(), r.condition(), state, last]
        })
        .collect();
    table(&["ID", "NAME", "CONDITION", "STATE", "LAST VALUE"], &rows)
}

fn history_table(slug: &str, days: u32, alerts: &[AlertEvent]) -> String {
    if alerts.is_empty() {
        return format!("No alerts of project {slug} in the last {days} days.\n");
    }
    let rows: Vec<Vec<String>> = alerts
        .iter()
        .map(|a| {
            let value = a.value.map_or_else(|| "-".to_owned(), |v| v.to_string());
            let mut delivery = a.delivery.clone();
            if let Some(last) = a.attempts.last() {
                let outcome = match (last.status, &last.error) {
                    (Some(status), _) => format!("HTTP {status}"),
                    (None, Some(error)) => error.clone(),
                    (None, None) => "no answer".to_owned(),
                };
                delivery.push_str(&format!(
                    " ({} attempt{}, last {outcome} at {})",
                    a.attempts.len(),
                    if a.attempts.len() == 1 { "" } else { "s" },
                    last.at
                ));
            }
            vec![
                a.at.clone(),
                a.kind.clone(),
                a.rule.clone(),
                format!("{value} (volume {})", a.volume),
                delivery,
                a.campaign_paused
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), |c| format!("paused {c}")),
            ]
        })
        .collect();
    table(
        &["AT", "KIND", "RULE", "VALUE", "WEBHOOK", "CAMPAIGN"],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(line: &str) -> Command {
        cli::testing::parsed(parse, line).1
    }

    #[test]
    fn no_command_or_help_prints_usage() {
        for line in ["", "--help", "help", "create shop --help"] {
            assert_eq!(parsed(line), Command::Help, "{line:?}");
        }
    }

    #[test]
    fn rules_are_built_from_json_and_options() {
        let line = "create shop --name CTR --metric ratio --numerator click \
             --denominator open --filter campaign=spring --comparator below --threshold 0.01 \
             --window 15 --min-volume 100 --cooldown 30 --webhook https://h.example/t \
             --pause-campaign true";
        assert_eq!(
            parsed(line),
            Command::Create {
                slug: "shop".into(),
                rule: json!({
                    "name": "CTR",
                    "metric": {"type": "ratio", "numerator": "click", "denominator": "open"},
                    "filter": {"dimension": "campaign", "value": "spring"},
                    "comparator": "<", "threshold": 0.01, "window_minutes": 15,
                    "min_volume": 100, "cooldown_minutes": 30,
                    "webhook": {"url": "https://h.example/t"}, "pause_campaign": true,
                }),
            }
        );
        // Options set fields over --json.
        let with_json = vec![
            "create".to_owned(),
            "shop".to_owned(),
            "--json".to_owned(),
            r#"{"name": "a", "threshold": 1, "window_minutes": 5}"#.to_owned(),
            "--threshold=2".to_owned(),
            "--metric".to_owned(),
            "count".to_owned(),
            "--event".to_owned(),
            "heartbeat".to_owned(),
        ];
        assert_eq!(
            parse(&with_json).unwrap().1,
            Command::Create {
                slug: "shop".into(),
                rule: json!({"name": "a", "threshold": 2.0, "window_minutes": 5,
                    "metric": {"type": "count", "name": "heartbeat"}}),
            }
        );
        assert_eq!(
            parsed("set shop ar_1 --no-webhook --no-filter --pause-campaign spring"),
            Command::Set {
                slug: "shop".into(),
                id: "ar_1".into(),
                change: json!({"webhook": null, "filter": null, "pause_campaign": "spring"}),
            }
        );
    }

    #[test]
    fn every_command_reads() {
        let with = |slug: &str, id: &str| (slug.to_owned(), id.to_owned());
        assert_eq!(
            parsed("list shop"),
            Command::List {
                slug: "shop".into()
            }
        );
        let (slug, id) = with("shop", "ar_1");
        assert_eq!(
            parsed("show shop ar_1"),
            Command::Show {
                slug: slug.clone(),
                id: id.clone()
            }
        );
        assert_eq!(
            parsed("disable shop ar_1"),
            Command::Set {
                slug: slug.clone(),
                id: id.clone(),
                change: json!({"enabled": false})
            }
        );
        assert_eq!(
            parsed("enable shop ar_1"),
            Command::Set {
                slug: slug.clone(),
                id: id.clone(),
                change: json!({"enabled": true})
            }
        );
        assert_eq!(
            parsed("rotate-secret shop ar_1"),
            Command::RotateSecret {
                slug: slug.clone(),
                id: id.clone()
            }
        );
        assert_eq!(
            parsed("delete shop ar_1"),
            Command::Delete {
                slug: slug.clone(),
                id
            }
        );
        assert_eq!(
            parsed("history shop"),
            Command::History {
                slug: slug.clone(),
                days: 7,
                limit: 50
            }
        );
        assert_eq!(
            parsed("history shop --days 30 --limit 5"),
            Command::History {
                slug,
                days: 30,
                limit: 5
            }
        );
    }

    #[test]
    fn mistakes_are_named() {
        let check =
            |line: &str, expected: &str| cli::testing::assert_refused(parse, line, expected);
        check("create shop", "needs the rule");
        check("set shop ar_1", "changes nothing");
        check(
            "show shop",
            "`cargo xtask alert show <slug> <rule-id>` is missing <rule-id>",
        );
        check(
            "list shop --threshold 1",
            "`cargo xtask alert list` does not take --threshold",
        );
        check("enable shop ar_1 --name x", "does not take --name");
        check(
            "create shop --comparator ==",
            "--comparator wants <, <=, >, >=",
        );
        check("create shop --threshold lots", "--threshold wants a number");
        check("create shop --window 1.5", "--window wants a whole number");
        check(
            "create shop --filter campaign",
            "--filter wants DIMENSION=VALUE",
        );
        check(
            "create shop --event heartbeat",
            "--event belongs to a metric",
        );
        check("create shop --json [1]", "--json must be a JSON object");
        check("create shop --json {", "--json is not JSON");
        check(
            "create shop --json @/no/such/file.json",
            "reading the rule from",
        );
        check("create shop --no-webhook", "does not take --no-webhook");
        check("set shop ar_1 --webhook x --no-webhook", "contradict");
        check("set shop ar_1 --no-pause --pause-campaign=x", "contradict");
        check("set shop ar_1 --no-filter --filter route=/a", "contradict");
        check(
            "history shop --days 0",
            "--days wants a whole number from 1 to 3660",
        );
        check("frobnicate shop", "unknown command \"frobnicate\"");
        check(
            "list shop --verbose",
            "unknown option \"--verbose\"; see `cargo xtask alert --help`",
        );
    }

    fn rule(secret: Option<&str>) -> AlertRule {
        let mut json = json!({
            "id": "ar_0123456789abcdef", "name": "spring CTR", "enabled": true,
            "metric": {"type": "ratio", "numerator": "click", "denominator": "open"},
            "filter": {"dimension": "campaign", "value": "spring"},
            "comparator": "<", "threshold": 0.01, "window_minutes": 15,
            "webhook": {"url": "https://h.example/t", "secret_prefix": "whsec_01234567"},
            "state": "firing", "state_since": "2026-01-01T00:02:00.000Z",
            "last_value": 0.004, "evaluated_at": "2026-01-01T00:05:00.000Z",
        });
        if let Some(secret) = secret {
            json["webhook"]["secret"] = json!(secret);
        }
        AlertRule::from_json(&json).unwrap()
    }

    #[test]
    fn rules_list_as_a_table_and_secrets_come_with_a_warning() {
        assert_eq!(
            rules_table("shop", &[rule(None)]),
            "\
ID                   NAME        CONDITION                                             STATE                                  LAST VALUE
ar_0123456789abcdef  spring CTR  ratio click/open < 0.01 over 15 min, campaign=spring  FIRING since 2026-01-01T00:02:00.000Z  0.004 at 2026-01-01T00:05:00.000Z
"
        );
        assert!(rules_table("shop", &[]).contains("has no alert rules"));
        let mut failed = rule(None);
        failed.last_error = Some("could not decode a stored row".into());
        assert!(
            rules_table("shop", &[failed])
                .contains("FAILED at 2026-01-01T00:05:00.000Z: could not decode a stored row")
        );
        assert_eq!(secret_note("shop", &rule(None)), "");
        let note = secret_note("shop", &rule(Some("whsec_abc")));
        assert!(note.contains("\n    whsec_abc\n"), "{note}");
        assert!(note.contains("it will not be shown again"), "{note}");
        assert!(
            note.contains("rotate-secret shop ar_0123456789abcdef"),
            "{note}"
        );
    }

    #[test]
    fn history_lists_deliveries() {
        let fired = AlertEvent::from_json(&json!({
            "id": "ar_1.fired.1", "rule_id": "ar_1", "rule_name": null, "kind": "fired",
            "at": "2026-01-01T00:02:00.000Z", "value": 0.004, "volume": 300,
            "delivery": "delivered", "delivered_at": "2026-01-01T00:02:11.000Z",
            "attempts": [
                {"attempt": 1, "at": "2026-01-01T00:02:01.000Z", "status": 500, "error": "HTTP 500", "duration_ms": 3},
                {"attempt": 2, "at": "2026-01-01T00:02:11.000Z", "status": 200, "error": null, "duration_ms": 3},
            ],
            "campaign_paused": "spring",
        }))
        .unwrap();
        let text = history_table("shop", 7, &[fired]);
        assert!(text.contains("ar_1 (deleted)"), "{text}");
        assert!(
            text.contains("delivered (2 attempts, last HTTP 200 at 2026-01-01T00:02:11.000Z)"),
            "{text}"
        );
        assert!(text.contains("0.004 (volume 300)"), "{text}");
        assert!(text.contains("paused spring"), "{text}");
        assert_eq!(
            history_table("shop", 7, &[]),
            "No alerts of project shop in the last 7 days.\n"
        );
    }
}
