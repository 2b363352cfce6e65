//! Schemathesis against the local stack: requests generated from `openapi.json` (as the
//! query worker serves it) to every operation of the read, admin and ingest APIs, each
//! answer checked with `--checks all` — status codes, bodies, headers and content types
//! as documented, schema-valid requests accepted and schema-violating ones refused,
//! undeclared methods answered 405 with `Allow`, credentials enforced. Any failure fails
//! the test run. What the document cannot state (rules between fields) is in
//! `e2e/schemathesis/schemathesis.toml`, with the reason for each.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::admin::client::{Admin, KeyKind, Settings};
use crate::stack::tools::{self, root};
use crate::stack::{Stack, proc};

use super::Tally;

/// The run's settings, relative to the root.
const CONFIG: &str = "e2e/schemathesis/schemathesis.toml";

/// The project the run reads, changes and sends events to (its own, so the other tests'
/// data stays as they left it).
const PROJECT: &str = "schemathesis";

/// Fixed, so that a run is repeatable: the same requests on every machine, and a failure
/// seen in CI is the one `cargo xtask test schemathesis` shows locally.
const SEED: &str = "18";

/// Test cases per operation in the fuzzing phase (the coverage phase adds every boundary
/// of every parameter, up to a few hundred requests on the larger operations; the
/// stateful phase a few scenarios). At 30, the run is some 1,100 requests to ingest's
/// 7 operations and 4,000 to the query worker's 74: measured 25 s and 100 s on two cores
/// shared with two other builds, so the step stays within four minutes with room. One
/// worker: schemathesis's threads share hypothesis, whose source inspection fails now
/// and then under Python 3.11 with two (`AST constructor recursion depth mismatch`), and
/// one keeps the order of requests, and so the run, the same every time.
const MAX_EXAMPLES: &str = "30";

/// The ingest worker's operations (on its own host, as their `servers` say).
const INGEST_PATHS: &str = "^/(v1/events|track|api/event|healthz)$";

/// The query worker's operations but the dashboard's pages (HTML and form posts behind
/// a session cookie, which the browser tests cover): one pattern, as schemathesis takes
/// one exclusion of each kind.
const QUERY_PATHS_NOT: &str =
    "^/(v1/events|track|api/event|healthz|dashboard|dashboard/.*|admin/plugins/.*)$";

/// Makes the run's project and keys through the admin API, then runs schemathesis once
/// against the ingest worker and once against the query worker, adding each run's
/// operations to `tally`.
///
/// # Errors
///
/// When the project cannot be made or schemathesis cannot run or reports any failure.
pub fn run(stack: &Stack, tally: &mut Tally) -> Result<()> {
    let python = tools::ensure_schemathesis()?;
    let admin_token = stack.admin_token()?;
    let query = stack.url("query");
    let admin = Admin::new(&query, &admin_token);
    let (write, read) = admin.unlimited_project(PROJECT, None, "schemathesis")?;
    let (write_key, read_token) = (write.secret()?.to_owned(), read.secret()?.to_owned());
    // Public badges, so that the badge operation answers with one (checked against the
    // document) rather than 404.
    let badges = Settings {
        public_badges: Some(true),
        ..Settings::default()
    };
    admin.update_project(PROJECT, &badges)?;
    let spare = admin.create_key(PROJECT, KeyKind::Write, Some("schemathesis: to revoke"))?;

    let dir = root().join("target/schemathesis");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let env = [
        ("TALLY_PROJECT", PROJECT.to_owned()),
        ("TALLY_ADMIN_TOKEN", admin_token),
        ("TALLY_READ_TOKEN", read_token),
        ("TALLY_WRITE_KEY", write_key),
        ("TALLY_SPARE_KEY_ID", spare.id.to_string()),
        ("NO_COLOR", "1".to_owned()),
    ];
    let document = format!("{query}/openapi.json");
    let mut failed = Vec::new();
    // Ingest first: the admin run changes the project's settings as it goes.
    for (worker, filter) in [
        ("ingest", ["--include-path-regex", INGEST_PATHS]),
        ("query", ["--exclude-path-regex", QUERY_PATHS_NOT]),
    ] {
        let junit = dir.join(format!("junit-{worker}.xml"));
        let _ = std::fs::remove_file(&junit);
        let mut cmd = Command::new(&python);
        // Its example database and replay files stay out of the work tree.
        cmd.current_dir(&dir)
            .args(["-m", "schemathesis.cli"])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .arg("--config-file")
            .arg(root().join(CONFIG))
            .args(["run", &document, "--url", &stack.url(worker)])
            .args(filter)
            .args(["--checks", "all", "--seed", SEED])
            .args(["--max-examples", MAX_EXAMPLES, "--workers", "1"])
            // Every failure of an operation, not only its first.
            .arg("--continue-on-failure")
            .args(["--generation-database", "none"])
            .args(["--report", "junit", "--report-junit-path"])
            .arg(&junit);
        crate::step(&format!("Schemathesis against the {worker} worker"));
        let outcome = proc::run(
            &mut cmd,
            "see the failures above; each has a curl to reproduce it",
        );
        if let Err(e) = &outcome
            && !junit.exists()
        {
            bail!("schemathesis did not run against the {worker} worker: {e:#}");
        }
        let (passed, failures) = junit_counts(&junit)?;
        tally.passed += passed;
        tally.failed += failures;
        if outcome.is_err() || failures > 0 {
            failed.push(worker);
        }
    }
    if !failed.is_empty() {
        bail!(
            "schemathesis found requests the {} worker answers otherwise than openapi.json says\n  hint: make the document exact or fix the worker; rerun with `cargo xtask test schemathesis`",
            failed.join(" and ")
        );
    }
    Ok(())
}

/// The operations a JUnit report counts as passed and as failed (failures and errors).
fn junit_counts(path: &Path) -> Result<(u64, u64)> {
    let xml = std::fs::read_to_string(path)
        .with_context(|| format!("schemathesis wrote no report at {}", path.display()))?;
    parse_junit(&xml).with_context(|| format!("reading the counts in {}", path.display()))
}

/// Reads `<testsuites errors="2" failures="6" skipped="1" tests="68"` into (59, 8).
fn parse_junit(xml: &str) -> Option<(u64, u64)> {
    let start = xml.find("<testsuites")?;
    let tag = &xml[start..start + xml[start..].find('>')?];
    let count = |name: &str| -> Option<u64> {
        let from = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        tag[from..].split('"').next()?.parse().ok()
    };
    let (tests, failures, errors) = (count("tests")?, count("failures")?, count("errors")?);
    let skipped = count("skipped").unwrap_or(0);
    let failed = failures + errors;
    Some((tests.checked_sub(failed + skipped)?, failed))
}

#[cfg(test)]
mod tests {
    use super::parse_junit;

    #[test]
    fn reads_junit_counts() {
        let check = |xml: &str, expected| assert_eq!(parse_junit(xml), expected, "{xml}");
        check(
            r#"<?xml version="1.0"?><testsuites errors="2" failures="6" skipped="1" tests="68" time="1.0"><testsuite"#,
            Some((59, 8)),
        );
        check(
            r#"<testsuites failures="0" errors="0" tests="7">"#,
            Some((7, 0)),
        );
        check(r#"<testsuite tests="7">"#, None);
        check(r#"<testsuites errors="1" failures="1" tests="1">"#, None);
    }
}
