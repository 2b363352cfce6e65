//! `cargo xtask test`: every check, from formatting to end-to-end tests against the
//! four workers under local workerd, and schemathesis against them ([`schemathesis`]).
//! It stops the stack whatever happens and ends with one summary line of every test run.

mod schemathesis;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::deploy::wrangler_config::Env;
use crate::stack::tools::{self, cargo, root};
use crate::stack::{Config, Ports, Stack, tail};
use crate::stack::{bundle, proc};
use crate::step;

/// Passed and failed counts summed over every test binary run.
#[derive(Debug, Default)]
pub struct Tally {
    passed: u64,
    failed: u64,
}

pub fn run(args: &[String]) -> Result<()> {
    // `cargo xtask test e2e [FILTER]`: only the end-to-end tests (whose names contain
    // FILTER), for quick iteration; CI runs everything.
    // `cargo xtask test js`: only the Worker middleware's JavaScript unit tests.
    // `cargo xtask test schemathesis`: only schemathesis against a fresh stack.
    let mut tally = Tally::default();
    let outcome = match args {
        [] => all_checks(&mut tally),
        [e2e] if e2e == "e2e" => run_end_to_end(&mut tally, Some(E2e::All)),
        [e2e, filter] if e2e == "e2e" => run_end_to_end(&mut tally, Some(E2e::Named(filter))),
        [js] if js == "js" => tools::ensure().and_then(|()| middleware_unit_tests(&mut tally)),
        [st] if st == "schemathesis" => {
            tools::ensure().and_then(|()| end_to_end(&mut tally, None, true))
        }
        _ => bail!(
            "usage: `cargo xtask test` (everything), `cargo xtask test e2e [FILTER]`, \
             `cargo xtask test js` or `cargo xtask test schemathesis`"
        ),
    };
    println!();
    if let Err(e) = &outcome {
        eprintln!("xtask: error: {e:#}");
    }
    // The closing line: the sum of every test runner summary above.
    println!("test: {} passed, {} failed", tally.passed, tally.failed);
    if outcome.is_err() || tally.failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}

/// Which end-to-end tests to run.
#[derive(Debug, Clone, Copy)]
enum E2e<'a> {
    All,
    /// Those whose names contain this.
    Named(&'a str),
}

fn run_end_to_end(tally: &mut Tally, tests: Option<E2e<'_>>) -> Result<()> {
    tools::ensure()?;
    tools::ensure_browser()?;
    end_to_end(tally, tests, false)
}

fn all_checks(tally: &mut Tally) -> Result<()> {
    tools::ensure()?;
    tools::ensure_browser()?;

    step("Formatting (cargo fmt --check)");
    proc::run(
        cargo().args(["fmt", "--all", "--", "--check"]),
        "run `cargo fmt --all` and commit the result",
    )?;

    step("Lints (cargo clippy, warnings are errors)");
    proc::run(
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
        "fix the lints above",
    )?;

    step("Native unit tests");
    run_tests(
        cargo().args(["test", "--workspace", "--exclude", "tally-e2e"]),
        tally,
    )?;

    step("wasm32 check of core and storage (no native-only code in them)");
    proc::run(
        cargo().args([
            "check",
            "-p",
            "tally-core",
            "--target",
            "wasm32-unknown-unknown",
        ]),
        "tally-core must compile to wasm32: no IO, clock or native-only dependency",
    )?;
    proc::run(
        cargo().args([
            "check",
            "-p",
            "tally-storage",
            "--no-default-features",
            "--features",
            "cloudflare",
            "--target",
            "wasm32-unknown-unknown",
        ]),
        "tally-storage's D1 side must compile to wasm32",
    )?;

    step("Unit tests of the Worker middleware (node --test)");
    middleware_unit_tests(tally)?;

    bundle::build_all()?;
    crate::deploy::package_all()?;
    end_to_end(tally, Some(E2e::All), true)
}

/// The JavaScript middleware's own tests, `clients/worker-middleware/test/*.test.js`,
/// under the pinned Node; their counts join the closing line.
fn middleware_unit_tests(tally: &mut Tally) -> Result<()> {
    let dir = root().join("clients/worker-middleware/test");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".test.js"))
        .collect();
    files.sort();
    let mut node = tools::tool("node");
    node.arg("--test").args(&files);
    println!("$ {}", proc::show(&node));
    let out = node
        .output()
        .with_context(|| format!("could not start `{}`", proc::show(&node)))?;
    let text = String::from_utf8_lossy(&out.stdout);
    print!("{text}");
    let (passed, failed) = parse_node_summary(&text).unwrap_or((0, 0));
    tally.passed += passed;
    tally.failed += failed;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}\n  hint: fix the middleware or its tests in clients/worker-middleware/",
            proc::show(&node),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Reads node's TAP summary (`# pass 11`, `# fail 0`) into (11, 0).
fn parse_node_summary(text: &str) -> Option<(u64, u64)> {
    let count = |word: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix("# ")?
                .strip_prefix(word)?
                .trim()
                .parse()
                .ok()
        })
    };
    Some((count("pass ")?, count("fail ")?))
}

/// How long the end-to-end stack's workers keep a project's placement, and so how long
/// each wait of a move between shards lasts there.
const E2E_PLACEMENT_TTL_MS: u64 = 5_000;

/// The raw events one filtered read may scan on the end-to-end stack; e2e's
/// `filters.rs` reads it as `TALLY_FILTER_ROW_BUDGET`.
const E2E_FILTER_ROW_BUDGET: u64 = 1_500;

/// The rows one funnel may read on the end-to-end stack (`TALLY_FUNNEL_ROW_BUDGET` in
/// e2e): an exact funnel of three steps costs its events and 1,794 rows of seeks
/// (`tally_storage::funnels`), so the tests' funnels of a few hundred step events are
/// exact, and those of some 1,000 with a filter (two rows an event) are sampled.
const E2E_FUNNEL_ROW_BUDGET: u64 = 3_400;

/// End-to-end tests that load the stack so heavily, or break it for a while, that they
/// run alone, after the others.
const RUN_ALONE: &[&str] = &[
    "hostile::hostile_and_heavy_load_loses_and_duplicates_nothing",
    // It makes a whole shard unwritable for a few seconds.
    "shards::a_failing_shard_holds_back_only_its_projects_and_they_arrive_once_it_heals",
    // It makes shard 0's (the control database's) day rolls fail for a while.
    "shards::a_shard_whose_cron_work_fails_holds_back_no_other_shard",
];

/// Builds the bundles, starts a fresh stack on free ports and runs the end-to-end tests
/// (`tests`, if any) against it, then schemathesis if asked.
fn end_to_end(tally: &mut Tally, tests: Option<E2e<'_>>, with_schemathesis: bool) -> Result<()> {
    bundle::build_all()?; // Up to date already when called from `all_checks`.
    if tests.is_some() {
        step("Compiling the end-to-end tests");
        proc::run(
            cargo().args(["test", "-p", "tally-e2e", "--no-run"]),
            "fix the compile errors in e2e/",
        )?;
    }

    let dir = root().join("target/e2e");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    let mut stack = Stack::start(Config {
        dir: dir.clone(),
        ports: Ports::free()?,
        echo: false,
        // Staging's names: every queue, database and worker named as `cargo xtask deploy
        // --env staging` names them, so the tests show staging works end to end.
        env: Env::Staging,
        // Small enough that a test's few thousand events are past it and answered from
        // a sample (e2e/tests/filters.rs), the path production takes past 200,000.
        query_vars: vec![
            ("FILTER_ROW_BUDGET", E2E_FILTER_ROW_BUDGET.to_string()),
            ("FUNNEL_ROW_BUDGET", E2E_FUNNEL_ROW_BUDGET.to_string()),
        ],
        // Placements kept for 5 s rather than a minute, in both workers alike, so that a
        // move's three waits (e2e/tests/moves.rs) take seconds.
        shared_vars: vec![("PLACEMENT_TTL_MS", E2E_PLACEMENT_TTL_MS.to_string())],
    })
    .context("the local stack for the end-to-end tests did not start")?;

    if tests.is_some() {
        step("End-to-end tests against the local stack");
    }
    let admin_token = stack.admin_token()?;
    let e2e = |args: &[&str]| {
        let mut e2e = cargo();
        e2e.args(["test", "-p", "tally-e2e", "--"])
            .args(args)
            .env("TALLY_INGEST_URL", stack.url("ingest"))
            .env("TALLY_QUERY_URL", stack.url("query"))
            .env("TALLY_FRONT_URL", stack.url("front"))
            .env("TALLY_AGGREGATOR_URL", stack.url("aggregator"))
            .env("TALLY_ADMIN_TOKEN", &admin_token)
            .env("TALLY_CHROMIUM", tools::CHROMIUM)
            .env("TALLY_CHROMEDRIVER", tools::CHROMEDRIVER)
            .env("TALLY_ARTIFACTS_DIR", dir.join("artifacts"))
            .env("TALLY_STATE_DIR", dir.join("state"))
            .env("TALLY_FILTER_ROW_BUDGET", E2E_FILTER_ROW_BUDGET.to_string())
            .env("TALLY_FUNNEL_ROW_BUDGET", E2E_FUNNEL_ROW_BUDGET.to_string());
        e2e
    };
    let result = match tests {
        None => Ok(()),
        Some(E2e::Named(filter)) => run_tests(&mut e2e(&[filter]), tally),
        // The heaviest tests run alone, after the others: locally the three workers
        // share one SQLite file, and a test beside them would meet a busy database
        // (D1 itself serializes writes).
        Some(E2e::All) => {
            let mut others = vec![];
            for name in RUN_ALONE {
                others.extend(["--skip", name]);
            }
            run_tests(&mut e2e(&others), tally).and_then(|()| {
                step("End-to-end tests that run alone");
                RUN_ALONE
                    .iter()
                    .try_for_each(|name| run_tests(&mut e2e(&["--exact", name]), tally))
            })
        }
    };
    // After the end-to-end tests, on the same stack: it changes only a project of its own.
    let result = result.and_then(|()| {
        if with_schemathesis {
            schemathesis::run(&stack, tally)
        } else {
            Ok(())
        }
    });
    list_artifacts(&dir.join("artifacts"));
    let crashed = stack.exited();
    stack.stop();
    if result.is_err() || crashed.is_some() {
        for worker in bundle::WORKERS {
            let log = stack.log_path(worker);
            eprintln!(
                "--- last lines of {} ---\n{}",
                bundle::rel(&log),
                tail(&log, 20)
            );
        }
    }
    if let Some((worker, status)) = crashed {
        bail!("{worker} exited during the end-to-end tests ({status})");
    }
    result
}

/// Prints the files the end-to-end tests left in `dir` (screenshots of the dashboard).
fn list_artifacts(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    if !files.is_empty() {
        println!("Test artifacts:");
        for file in files {
            println!("  {}", bundle::rel(&file));
        }
    }
}

/// Runs a `cargo test` command, echoing its output and adding its summaries to `tally`.
fn run_tests(cmd: &mut Command, tally: &mut Tally) -> Result<()> {
    println!("$ {}", proc::show(cmd));
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start `{}`", proc::show(cmd)))?;
    let stdout = child.stdout.take().context("no stdout")?;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        if let Some((passed, failed)) = parse_summary(&line) {
            tally.passed += passed;
            tally.failed += failed;
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("`{}` failed ({status})", proc::show(cmd));
    }
    Ok(())
}

/// Reads `test result: ok. 17 passed; 0 failed; ...` into (17, 0).
fn parse_summary(line: &str) -> Option<(u64, u64)> {
    let rest = line.strip_prefix("test result: ")?;
    let count = |word: &str| {
        rest.split(';').find_map(|part| {
            let mut tokens = part.split_whitespace().rev();
            let (w, n) = (tokens.next()?, tokens.next()?);
            if w == word { n.parse().ok() } else { None }
        })
    };
    Some((count("passed")?, count("failed")?))
}

#[cfg(test)]
mod tests {
    use super::{parse_node_summary, parse_summary};

    #[test]
    fn reads_node_test_summaries() {
        let tap = "ok 1 - a\n1..11\n# tests 11\n# suites 0\n# pass 10\n# fail 1\n# cancelled 0\n";
        assert_eq!(parse_node_summary(tap), Some((10, 1)));
        assert_eq!(parse_node_summary("# Subtest: a passing test\n"), None);
    }

    #[test]
    fn reads_cargo_test_summaries() {
        let check = |line, expected| assert_eq!(parse_summary(line), expected, "{line}");
        check(
            "test result: ok. 17 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s",
            Some((17, 0)),
        );
        check(
            "test result: FAILED. 16 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out",
            Some((16, 1)),
        );
        check("running 17 tests", None);
    }
}
