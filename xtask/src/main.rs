//! Tally's one entry point for project chores (`cargo xtask <task>`), in the style of
//! matklad's cargo-xtask: no shell scripts, every step printed, every failure explained.

mod admin;
mod bench;
mod deploy;
mod stack;
mod test;
mod tidy;

use anyhow::{Result, bail};

use stack::{bundle, proc, tools};

const HELP: &str = "\
cargo xtask <task>

Tasks:
  dev                 build and run the whole stack on 127.0.0.1 (Ctrl-C stops it)
  test                lint, unit tests, wasm checks and builds, end-to-end tests
                      (`test e2e [FILTER]`: only end-to-end tests; `test js`: only
                      the Worker middleware's JavaScript tests)
  build               build the four workers' wasm bundles and print their sizes
  deploy              deploy to Cloudflare: find or create D1, KV and queues, apply
                      migrations, set secrets, deploy consumers first and
                      the front last
                      [--env staging|production] [--only WORKER] [--dry-run];
                      --dry-run packages the workers offline and prints their sizes
  project             create and change projects, hand out and revoke write keys and
                      read tokens (`cargo xtask project --help`)
  alert               a project's alert rules (create, change, rotate the webhook
                      secret, delete) and alert history (`cargo xtask alert --help`)
  campaign            campaigns and their state; pause or resume one by hand
                      (`cargo xtask campaign --help`)
  digest              a project's daily or weekly digest to a webhook: show (with the
                      last run), set, delete (`cargo xtask digest --help`)
  bench [query|storage]
                      measure ingest, the pipeline, storage and queries (or only
                      queries, or only storage); writes bench/results.json and
                      bench/RESULTS.md
  setup               install the pinned toolchain into .tools/ and node_modules/
";

fn main() {
    if let Err(error) = run() {
        eprintln!("\nxtask: error: {error:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    proc::install_interrupt_handler()?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (task, rest) = match args.split_first() {
        Some((task, rest)) => (task.as_str(), rest),
        None => {
            print!("{HELP}");
            return Ok(());
        }
    };
    match task {
        "dev" => stack::dev::run(rest),
        "test" => test::run(rest),
        "build" => {
            no_args(task, rest)?;
            tools::ensure()?;
            bundle::build_all().map(drop)
        }
        "deploy" => deploy::run(rest),
        "project" => admin::project::run(rest),
        "alert" => admin::alert::run(rest),
        "campaign" => admin::campaign::run(rest),
        "digest" => admin::digest::run(rest),
        "bench" => bench::run(rest),
        "setup" => {
            no_args(task, rest)?;
            tools::ensure()
        }
        "help" | "-h" | "--help" => {
            print!("{HELP}");
            Ok(())
        }
        other => bail!("unknown task {other:?}\n\n{HELP}"),
    }
}

fn no_args(task: &str, rest: &[String]) -> Result<()> {
    if let Some(arg) = rest.first() {
        bail!("`cargo xtask {task}` takes no argument {arg:?}");
    }
    Ok(())
}

/// Prints a step header, so every task says what it is doing.
pub fn step(what: &str) {
    println!("\n==> {what}");
}
