//! What the tasks that call the admin API (`cargo xtask project`, `alert`, `campaign`)
//! share: [`run`], which parses, connects, executes and prints; operands and
//! `--option value` / `--option=value` pairs read against a task's table of options, the
//! checks every command makes of them, the query worker to talk to (`--url`, the admin
//! token), and the plain [`table`]s they print.

use anyhow::{Context, Result, bail};

use crate::admin::client::Admin;
use crate::stack::tools::root;
use crate::stack::{self, Ports};

/// A parsed command of an admin task; [`Command::HELP`] asks for the usage.
pub trait Command: PartialEq + Sized {
    const HELP: Self;
}

/// A parsed command line: the `--url` given, if any, and the command.
pub type Parsed<C> = Result<(Option<String>, C)>;

/// Runs one admin task: `parse` reads its arguments into the `--url` given (if any)
/// and a command; help prints `usage` (and what `--url` means) without connecting;
/// any other command is executed against the query worker and what it returns printed.
///
/// # Errors
///
/// A bad command line, no admin token, or the API's error answer.
pub fn run<C: Command>(
    args: &[String],
    usage: &str,
    parse: fn(&[String]) -> Parsed<C>,
    execute: fn(&Admin, C) -> Result<String>,
) -> Result<()> {
    let (url, command) = parse(args)?;
    if command == C::HELP {
        print!("{usage}{URL_HELP}");
        return Ok(());
    }
    let admin = connect(url)?;
    print!("{}", execute(&admin, command)?);
    Ok(())
}

/// A task's command line, split: operands in order and options as given.
#[derive(Debug, PartialEq, Eq)]
pub struct Line<'t> {
    /// `cargo xtask <task>`.
    pub task: &'t str,
    /// `-h`, `--help`, or `help` first: print the usage.
    pub help: bool,
    pub operands: Vec<String>,
    pub options: Vec<(&'static str, Option<String>)>,
}

/// Reads `args` against `known`, the task's options and whether each takes a value.
///
/// # Errors
///
/// An unknown option, a value missing or given to a flag.
pub fn scan<'t>(
    task: &'t str,
    args: &[String],
    known: &[(&'static str, bool)],
) -> Result<Line<'t>> {
    let mut line = Line {
        task,
        help: false,
        operands: Vec::new(),
        options: Vec::new(),
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" || (line.operands.is_empty() && arg == "help") {
            line.help = true;
            return Ok(line);
        }
        if !arg.starts_with('-') || arg == "-" {
            line.operands.push(arg.clone());
            continue;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name, Some(value.to_owned())),
            None => (arg.as_str(), None),
        };
        let Some(&(name, takes_value)) = known.iter().find(|(k, _)| *k == name) else {
            bail!("unknown option {name:?}; see `cargo xtask {task} --help`");
        };
        let value = match (takes_value, inline) {
            (true, Some(value)) => Some(value),
            (true, None) => Some(
                args.next()
                    .with_context(|| format!("{name} needs a value"))?
                    .clone(),
            ),
            (false, None) => None,
            (false, Some(_)) => bail!("{name} takes no value"),
        };
        line.options.push((name, value));
    }
    if line.operands.is_empty() {
        line.help = true;
    }
    Ok(line)
}

impl Line<'_> {
    /// The command named first, the operands after it and the options given to it;
    /// `None` when the line asks for help.
    pub fn command(&self) -> Option<(&String, &[String], Options<'_>)> {
        let (command, rest) = self.operands.split_first().filter(|_| !self.help)?;
        let given = &self.options;
        Some((
            command,
            rest,
            Options {
                task: self.task,
                command,
                given,
            },
        ))
    }
}

/// The options given to one command.
pub struct Options<'a> {
    pub task: &'a str,
    pub command: &'a str,
    pub given: &'a [(&'static str, Option<String>)],
}

impl Options<'_> {
    /// Fails on the first option `--url` and `allowed` do not include.
    pub fn allow(&self, allowed: &[&str]) -> Result<()> {
        if let Some((name, _)) = self
            .given
            .iter()
            .find(|(name, _)| *name != "--url" && !allowed.contains(name))
        {
            bail!(
                "`cargo xtask {} {}` does not take {name}; see `cargo xtask {} --help`",
                self.task,
                self.command,
                self.task
            );
        }
        Ok(())
    }

    pub fn has(&self, name: &str) -> bool {
        self.given.iter().any(|(n, _)| *n == name)
    }

    /// Every value of a repeatable option.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.given
            .iter()
            .filter(|(n, _)| *n == name)
            .filter_map(|(_, v)| v.clone())
            .collect()
    }

    /// The value of an option given at most once.
    pub fn single(&self, name: &str) -> Result<Option<String>> {
        let mut values = self.all(name);
        if values.len() > 1 {
            bail!("{name} is given {} times; give it once", values.len());
        }
        Ok(values.pop())
    }

    /// A whole number option within `range`, `default` when absent.
    pub fn number(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<u32>,
        default: u32,
    ) -> Result<u32> {
        match self.single(name)? {
            Some(text) => text
                .parse()
                .ok()
                .filter(|n| range.contains(n))
                .with_context(|| {
                    format!(
                        "{name} wants a whole number from {} to {}, not {text:?}",
                        range.start(),
                        range.end()
                    )
                }),
            None => Ok(default),
        }
    }
}

/// Exactly the operands `names` of `cargo xtask <task> <command>`, or an error naming
/// what is missing or extra.
pub fn operands<const N: usize>(
    task: &str,
    command: &str,
    given: &[String],
    names: &[&str; N],
) -> Result<[String; N]> {
    let usage = format!("cargo xtask {task} {command} {}", names.join(" "));
    if given.len() < N {
        bail!(
            "`{}` is missing {}",
            usage.trim_end(),
            names[given.len()..].join(" ")
        );
    }
    if given.len() > N {
        bail!("`{}` takes no argument {:?}", usage.trim_end(), given[N]);
    }
    Ok(std::array::from_fn(|i| given[i].clone()))
}

/// A client of the query worker at `url`, else $TALLY_QUERY_URL, else the dev stack's,
/// with $TALLY_ADMIN_TOKEN, else the dev stack's token.
///
/// # Errors
///
/// No token to be found, with what to do about it.
pub fn connect(url: Option<String>) -> Result<Admin> {
    let url = match url {
        Some(url) => url,
        None => default_url(non_empty_env("TALLY_QUERY_URL"))?,
    };
    let token = match non_empty_env("TALLY_ADMIN_TOKEN") {
        Some(token) => token,
        None => dev_token()?,
    };
    Ok(Admin::new(&url, &token))
}

/// What `--url` means, for the usages.
pub const URL_HELP: &str = "\
--url URL is the query worker's address: by default $TALLY_QUERY_URL, else the dev
stack's (http://127.0.0.1:8788, or TALLY_DEV_PORT + 1). The admin token is
$TALLY_ADMIN_TOKEN, else the dev stack's, in .tally/dev/admin_token.
";

/// The query worker's URL when no --url is given: `env_url` ($TALLY_QUERY_URL), else the
/// dev stack's.
fn default_url(env_url: Option<String>) -> Result<String> {
    match env_url {
        Some(url) => Ok(url),
        None => Ok(format!(
            "http://127.0.0.1:{}",
            Ports::fixed(crate::stack::dev::base_port()?).query
        )),
    }
}

/// The dev stack's admin token, or what to do when there is none.
fn dev_token() -> Result<String> {
    let dir = root().join(".tally/dev");
    stack::admin_token(&dir).map_err(|_| {
        anyhow::anyhow!(
            "no admin token: TALLY_ADMIN_TOKEN is not set and .tally/dev/admin_token does not exist\n  \
             hint: start the local stack with `cargo xtask dev` (it makes the token), or for a \
             deployed Tally set TALLY_ADMIN_TOKEN and pass --url (or set TALLY_QUERY_URL)"
        )
    })
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Left-aligned columns two spaces apart, with a header row.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows) {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// What the subcommands' parser tests share: a command line as the shell splits it, and
/// what a parser makes of it.
#[cfg(test)]
pub mod testing {
    use anyhow::Result;

    /// `line` split at white space, as the shell hands it over.
    pub fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    /// What `parse` reads from `line`; panics with the line when it refuses.
    pub fn parsed<T>(parse: impl Fn(&[String]) -> Result<T>, line: &str) -> T {
        parse(&words(line)).unwrap_or_else(|e| panic!("{line}: {e:#}"))
    }

    /// Why `parse` refuses `line`, with its causes; panics when it does not.
    pub fn refusal<T: std::fmt::Debug>(
        parse: impl Fn(&[String]) -> Result<T>,
        line: &str,
    ) -> String {
        format!("{:#}", parse(&words(line)).unwrap_err())
    }

    /// Asserts that `parse` refuses `line` with a message that says `expected`.
    pub fn assert_refused<T: std::fmt::Debug>(
        parse: impl Fn(&[String]) -> Result<T>,
        line: &str,
        expected: &str,
    ) {
        let e = refusal(parse, line);
        assert!(
            e.contains(expected),
            "{line:?} gave {e:?}, not {expected:?}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_url_is_the_environment_s() {
        assert_eq!(
            default_url(Some("https://q.example".into())).unwrap(),
            "https://q.example"
        );
    }

    #[test]
    fn tables_align_columns() {
        assert_eq!(
            table(
                &["A", "LONG HEADER"],
                &[vec!["wide cell".into(), "x".into()]]
            ),
            "A          LONG HEADER\nwide cell  x\n"
        );
    }

    #[test]
    fn numbers_are_checked_against_their_range() {
        let given = [("--days", Some("0".to_owned()))];
        let opts = Options {
            task: "alert",
            command: "history",
            given: &given,
        };
        let e = opts.number("--days", 1..=90, 7).unwrap_err().to_string();
        assert_eq!(e, "--days wants a whole number from 1 to 90, not \"0\"");
        assert_eq!(opts.number("--limit", 1..=1000, 50).unwrap(), 50);
    }
}
