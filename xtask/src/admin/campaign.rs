//! `cargo xtask campaign`: the campaigns of a project with their state, and pausing or
//! resuming one by hand. An alert rule with `pause_campaign` pauses its campaign when it
//! fires; only a person resumes it, here or with the admin API.

use anyhow::{Result, bail};

use crate::admin::cli::{self, table};
use crate::admin::client::{Admin, Campaign};

const TASK: &str = "campaign";

const USAGE: &str = "\
cargo xtask campaign <command> [--url URL]

Commands:
  list <slug>                          campaigns seen in the last 30 days or ever paused,
                                       with their state
  show <slug> <campaign>               one campaign: may it be sent?
  pause <slug> <campaign> [--reason TEXT]
                                       mark it paused, for the sending system to see
  resume <slug> <campaign> [--reason TEXT]
                                       mark it active again (also after an alert paused it)

Sending systems read GET /v1/projects/{slug}/campaigns/{campaign} with a read token;
the answer is never cached.

";

const OPTIONS: [(&str, bool); 2] = [("--url", true), ("--reason", true)];

/// One `cargo xtask campaign` command.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    Help,
    List {
        slug: String,
    },
    Show {
        slug: String,
        campaign: String,
    },
    Set {
        slug: String,
        campaign: String,
        paused: bool,
        reason: Option<String>,
    },
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
        Command::List { slug } => campaigns_table(&slug, &admin.campaigns(&slug)?),
        Command::Show { slug, campaign } => details(&admin.campaign(&slug, &campaign)?),
        Command::Set {
            slug,
            campaign,
            paused,
            reason,
        } => {
            let now = admin.set_campaign(&slug, &campaign, paused, reason.as_deref())?;
            let verb = if paused { "Paused" } else { "Resumed" };
            format!(
                "{verb} campaign {campaign:?} of project {slug}.\n\n{}",
                details(&now)
            )
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
        "list" => {
            opts.allow(&[])?;
            let [slug] = cli::operands(TASK, command, rest, &["<slug>"])?;
            Command::List { slug }
        }
        "show" => {
            opts.allow(&[])?;
            let [slug, campaign] = cli::operands(TASK, command, rest, &["<slug>", "<campaign>"])?;
            Command::Show { slug, campaign }
        }
        "pause" | "resume" => {
            opts.allow(&["--reason"])?;
            let [slug, campaign] = cli::operands(TASK, command, rest, &["<slug>", "<campaign>"])?;
            Command::Set {
                slug,
                campaign,
                paused: command == "pause",
                reason: opts.single("--reason")?,
            }
        }
        other => bail!("unknown command {other:?}\n\n{USAGE}"),
    };
    Ok((url, command))
}

fn status(c: &Campaign) -> &'static str {
    if c.paused { "PAUSED" } else { "active" }
}

fn details(c: &Campaign) -> String {
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    format!(
        "campaign    {}\nstatus      {}\nreason      {}\nalert       {}\nupdated     {}\nevents 30d  {}\n",
        c.campaign,
        status(c),
        dash(&c.reason),
        dash(&c.alert_id),
        dash(&c.updated_at),
        c.events_30d
    )
}

fn campaigns_table(slug: &str, campaigns: &[Campaign]) -> String {
    if campaigns.is_empty() {
        return format!(
            "Project {slug} has no campaigns in the last 30 days and none was ever paused.\n"
        );
    }
    let rows: Vec<Vec<String>> = campaigns
        .iter()
        .map(|c| {
            vec![
                c.campaign.clone(),
                status(c).to_owned(),
                c.events_30d.to_string(),
                c.updated_at.clone().unwrap_or_else(|| "-".to_owned()),
                c.reason.clone().unwrap_or_else(|| "-".to_owned()),
            ]
        })
        .collect();
    table(
        &["CAMPAIGN", "STATUS", "EVENTS 30D", "SINCE", "REASON"],
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
    fn reads_every_command() {
        assert_eq!(parsed(""), Command::Help);
        assert_eq!(
            parsed("list shop"),
            Command::List {
                slug: "shop".into()
            }
        );
        assert_eq!(
            parsed("show shop spring"),
            Command::Show {
                slug: "shop".into(),
                campaign: "spring".into()
            }
        );
        assert_eq!(
            parsed("resume shop spring"),
            Command::Set {
                slug: "shop".into(),
                campaign: "spring".into(),
                paused: false,
                reason: None
            }
        );
        assert_eq!(
            parsed("pause shop spring --reason=budget"),
            Command::Set {
                slug: "shop".into(),
                campaign: "spring".into(),
                paused: true,
                reason: Some("budget".into())
            }
        );
        for (line, expected) in [
            (
                "resume shop",
                "`cargo xtask campaign resume <slug> <campaign>` is missing <campaign>",
            ),
            (
                "list shop --reason x",
                "`cargo xtask campaign list` does not take --reason",
            ),
            ("stop shop spring", "unknown command \"stop\""),
        ] {
            cli::testing::assert_refused(parse, line, expected);
        }
    }

    #[test]
    fn campaigns_show_their_state() {
        let paused = Campaign {
            campaign: "spring".into(),
            paused: true,
            reason: Some("alert rule \"CTR\" fired".into()),
            alert_id: Some("ar_1.fired.1".into()),
            updated_at: Some("2026-01-01T00:02:00.000Z".into()),
            events_30d: 1200,
        };
        let fresh = Campaign {
            campaign: "autumn".into(),
            paused: false,
            reason: None,
            alert_id: None,
            updated_at: None,
            events_30d: 3,
        };
        assert_eq!(
            campaigns_table("shop", &[fresh, paused.clone()]),
            "\
CAMPAIGN  STATUS  EVENTS 30D  SINCE                     REASON
autumn    active  3           -                         -
spring    PAUSED  1200        2026-01-01T00:02:00.000Z  alert rule \"CTR\" fired
"
        );
        assert!(details(&paused).contains("alert       ar_1.fired.1\n"));
        assert!(campaigns_table("shop", &[]).contains("none was ever paused"));
    }
}
