//! `cargo xtask digest`: a project's daily or weekly digest — show it with how its last
//! run went, set it (the signing secret is printed once, when made or rotated), delete
//! it. The admin API checks every value and names the field at fault.

use anyhow::{Result, bail};
use serde_json::{Value, json};

use crate::admin::cli;
use crate::admin::client::Admin;

const TASK: &str = "digest";

const USAGE: &str = "\
cargo xtask digest <command> [--url URL]

Commands:
  show <slug>                          the digest and its last run: delivered, pending
                                       or failed, attempts and the last error
  set <slug> --period daily|weekly --hour H --webhook URL [--weekday D] [--disabled]
             [--rotate-secret]
                                       make or replace the digest: daily for the
                                       previous UTC day, weekly for the previous ISO week,
                                       sent at hour H (0-23 UTC) and, weekly, on day D
                                       (1 Monday .. 7 Sunday, default 1); the webhook is
                                       https (or http to a loopback host). The secret is
                                       printed when made or rotated, never again
  delete <slug>                        stop the digests (runs already sent stay)

The body is signed as alert webhooks are (Tally-Signature) and carries a `text` a
Slack incoming webhook shows as it is.

";

const OPTIONS: [(&str, bool); 7] = [
    ("--url", true),
    ("--period", true),
    ("--hour", true),
    ("--weekday", true),
    ("--webhook", true),
    ("--disabled", false),
    ("--rotate-secret", false),
];

/// One `cargo xtask digest` command.
#[derive(Debug, PartialEq)]
enum Command {
    Help,
    Show { slug: String },
    Set { slug: String, body: Value },
    Delete { slug: String },
}

impl cli::Command for Command {
    const HELP: Self = Command::Help;
}

pub fn run(args: &[String]) -> Result<()> {
    cli::run(args, USAGE, parse, execute)
}

fn execute(admin: &Admin, command: Command) -> Result<String> {
    Ok(match command {
        Command::Help => USAGE.to_owned(),
        Command::Show { slug } => {
            let answer = admin.digest(&slug)?;
            format!(
                "{}\n{}",
                details(&answer["digest"]),
                last_run(&answer["last_run"])
            )
        }
        Command::Set { slug, body } => {
            let answer = admin.put_digest(&slug, body)?;
            let digest = &answer["digest"];
            let mut out = format!("Digest of project {slug} set.\n\n{}", details(digest));
            if let Some(secret) = digest["secret"].as_str() {
                out.push_str(&format!(
                    "\nsecret      {secret}\n(shown once: keep it to check Tally-Signature)\n"
                ));
            }
            out
        }
        Command::Delete { slug } => {
            admin.delete_digest(&slug)?;
            format!("Deleted the digest of project {slug}.\n")
        }
    })
}

fn parse(args: &[String]) -> Result<(Option<String>, Command)> {
    let line = cli::scan(TASK, args, &OPTIONS)?;
    let Some((command, rest, opts)) = line.command() else {
        return Ok((None, Command::Help));
    };
    let url = opts.single("--url")?;
    let command = match command.as_str() {
        "show" | "delete" => {
            opts.allow(&[])?;
            let [slug] = cli::operands(TASK, command, rest, &["<slug>"])?;
            if command == "show" {
                Command::Show { slug }
            } else {
                Command::Delete { slug }
            }
        }
        "set" => {
            opts.allow(&[
                "--period",
                "--hour",
                "--weekday",
                "--webhook",
                "--disabled",
                "--rotate-secret",
            ])?;
            let [slug] = cli::operands(TASK, command, rest, &["<slug>"])?;
            let required = |name: &str| -> Result<String> {
                match opts.single(name)? {
                    Some(value) => Ok(value),
                    None => bail!("`cargo xtask digest set` needs {name}\n\n{USAGE}"),
                }
            };
            let period = required("--period")?;
            let webhook = required("--webhook")?;
            required("--hour")?;
            let mut body = json!({
                "period": period,
                "hour_utc": opts.number("--hour", 0..=23, 0)?,
                "webhook_url": webhook,
                "enabled": !opts.has("--disabled"),
            });
            if opts.has("--weekday") {
                body["weekday"] = json!(opts.number("--weekday", 1..=7, 1)?);
            }
            if opts.has("--rotate-secret") {
                body["rotate_secret"] = json!(true);
            }
            Command::Set { slug, body }
        }
        other => bail!("unknown command {other:?}\n\n{USAGE}"),
    };
    Ok((url, command))
}

/// A field of an answer as text, `-` when null or absent.
fn field(v: &Value, name: &str) -> String {
    match &v[name] {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn details(digest: &Value) -> String {
    let hour = digest["hour_utc"].as_u64().unwrap_or(0);
    let when = match digest["weekday"].as_u64() {
        Some(day) => format!("weekly, on day {day} (1 = Monday) at {hour:02}:00 UTC"),
        None => format!("daily at {hour:02}:00 UTC"),
    };
    format!(
        "project     {}\nsent        {when}\nwebhook     {}\nenabled     {}\nsecret      {}…\nupdated     {}\n",
        field(digest, "project"),
        field(digest, "webhook_url"),
        field(digest, "enabled"),
        field(digest, "secret_prefix"),
        field(digest, "updated_at"),
    )
}

fn last_run(run: &Value) -> String {
    if run.is_null() {
        return "last run    none yet\n".to_owned();
    }
    format!(
        "last run    {} to {}: {} after {} attempt(s)\nlast status {}\nlast error  {}\n",
        field(run, "from"),
        field(run, "to"),
        field(run, "delivery"),
        field(run, "attempts"),
        field(run, "last_status"),
        field(run, "last_error"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(line: &str) -> Command {
        cli::testing::parsed(parse, line).1
    }

    #[test]
    fn reads_every_command() {
        assert_eq!(parsed(""), Command::Help);
        assert_eq!(
            parsed("show shop"),
            Command::Show {
                slug: "shop".into()
            }
        );
        assert_eq!(
            parsed("delete shop"),
            Command::Delete {
                slug: "shop".into()
            }
        );
        assert_eq!(
            parsed("set shop --period daily --hour 9 --webhook https://h.example/d"),
            Command::Set {
                slug: "shop".into(),
                body: json!({"period": "daily", "hour_utc": 9,
                             "webhook_url": "https://h.example/d", "enabled": true}),
            }
        );
        assert_eq!(
            parsed(
                "set shop --period=weekly --hour=7 --weekday=3 --webhook=https://h.example/d \
                 --disabled --rotate-secret"
            ),
            Command::Set {
                slug: "shop".into(),
                body: json!({"period": "weekly", "hour_utc": 7, "weekday": 3,
                             "webhook_url": "https://h.example/d", "enabled": false,
                             "rotate_secret": true}),
            }
        );
        for (line, expected) in [
            ("set shop --period daily --hour 9", "needs --webhook"),
            (
                "set shop --period daily --webhook https://h/",
                "needs --hour",
            ),
            (
                "set shop --period daily --hour 24 --webhook https://h/",
                "--hour wants a whole number from 0 to 23",
            ),
            (
                "show shop --hour 3",
                "`cargo xtask digest show` does not take --hour",
            ),
            ("send shop", "unknown command \"send\""),
        ] {
            cli::testing::assert_refused(parse, line, expected);
        }
    }

    #[test]
    fn a_digest_shows_its_schedule_and_last_run() {
        let digest = json!({"project": "shop", "period": "weekly", "hour_utc": 7, "weekday": 2,
            "webhook_url": "https://h.example/d", "enabled": true,
            "secret_prefix": "whsec_0123abcd", "updated_at": "2026-03-01T00:00:00.000Z"});
        let text = details(&digest);
        assert!(
            text.contains("sent        weekly, on day 2 (1 = Monday) at 07:00 UTC\n"),
            "{text}"
        );
        assert!(text.contains("secret      whsec_0123abcd…\n"), "{text}");
        assert_eq!(last_run(&Value::Null), "last run    none yet\n");
        let run = json!({"from": "a", "to": "b", "delivery": "pending", "attempts": 2,
                         "last_status": 503, "last_error": "HTTP 503"});
        assert!(
            last_run(&run)
                .contains("pending after 2 attempt(s)\nlast status 503\nlast error  HTTP 503\n")
        );
    }
}
