//! `cargo xtask deploy --dry-run`: package every worker as `wrangler deploy` would,
//! offline, and print the upload sizes.

use anyhow::{Context, Result, bail};

use crate::bundle::{self, WORKERS};
use crate::tools::{self, root};
use crate::{proc, step};

pub fn run(args: &[String]) -> Result<()> {
    let mut dry_run = false;
    for arg in args {
        match arg.as_str() {
            "--dry-run" => dry_run = true,
            other => bail!("`cargo xtask deploy` does not know {other:?}; try --dry-run"),
        }
    }
    if !dry_run {
        bail!(
            "deploying to a Cloudflare account is not built yet (tracked as issue 8); \
             `cargo xtask deploy --dry-run` packages the workers offline"
        );
    }
    tools::ensure()?;
    bundle::build_all()?;
    package_all()
}

/// Packages every built worker with `wrangler deploy --dry-run` into `target/deploy/`.
pub fn package_all() -> Result<()> {
    for worker in WORKERS {
        step(&format!("Packaging {worker} (wrangler deploy --dry-run)"));
        let outdir = root().join("target/deploy").join(worker);
        if outdir.exists() {
            std::fs::remove_dir_all(&outdir)
                .with_context(|| format!("clearing {}", outdir.display()))?;
        }
        let out = proc::output(
            tools::tool("wrangler")
                .args([
                    "deploy",
                    "--dry-run",
                    "-c",
                    &format!("wrangler/{worker}.toml"),
                ])
                .arg("--outdir")
                .arg(&outdir),
        )?;
        for line in out.lines().filter(|l| l.contains("Total Upload")) {
            println!("{worker}: {}", line.trim());
        }
        println!("{worker}: packaged into {}", bundle::rel(&outdir));
    }
    Ok(())
}
