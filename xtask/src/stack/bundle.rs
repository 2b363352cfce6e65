//! Building the four workers' wasm bundles with the pinned worker-build.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result};

use crate::stack::proc;
use crate::stack::tools::{self, root};
use crate::step;

/// The four workers, in the order they start and deploy: the queue consumer first, the
/// front last, after the two workers it binds.
pub const WORKERS: [&str; 4] = ["aggregator", "ingest", "query", "front"];

/// The size of one built worker.
#[derive(Debug, Clone)]
pub struct Size {
    pub worker: &'static str,
    pub raw: u64,
    pub gzip: u64,
}

/// The worker's crate directory.
pub fn crate_dir(worker: &str) -> PathBuf {
    root().join("workers").join(worker)
}

/// Builds every worker that changed since its last build and prints each one's size.
pub fn build_all() -> Result<Vec<Size>> {
    let mut sizes = Vec::new();
    for worker in WORKERS {
        build(worker)?;
        sizes.push(size(worker)?);
    }
    step("Bundle sizes (wasm + JavaScript shim)");
    for s in &sizes {
        println!(
            "{:<11} {:>8.1} KiB raw  {:>7.1} KiB gzip",
            s.worker,
            s.raw as f64 / 1024.0,
            s.gzip as f64 / 1024.0
        );
    }
    Ok(sizes)
}

fn build(worker: &'static str) -> Result<()> {
    let dir = crate_dir(worker);
    let output = dir.join("build/index.js");
    if let (Ok(built), Some(newest)) = (modified(&output), newest_input(worker)?)
        && built > newest
    {
        println!("{worker}: up to date ({})", rel(&output));
        return Ok(());
    }
    step(&format!("Building the {worker} worker (release wasm)"));
    proc::run(
        tools::tool("worker-build")
            .arg("--release")
            .current_dir(&dir),
        "read the compiler errors above; `cargo xtask setup` reinstalls the toolchain",
    )
}

/// The files and folders a worker's bundle is built from: the workspace's manifests, the
/// libraries, the migrations, and everything in the worker's crate but its `build/`
/// output — files beside `src/` too, such as the query worker's `openapi.json`, which
/// `include_str!` compiles in.
fn inputs(worker: &str) -> Result<Vec<PathBuf>> {
    let mut inputs = vec![
        root().join("Cargo.toml"),
        root().join("Cargo.lock"),
        root().join("crates"),
        root().join("migrations"),
    ];
    let dir = crate_dir(worker);
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path != dir.join("build") {
            inputs.push(path);
        }
    }
    Ok(inputs)
}

/// The newest modification time among the sources a worker's bundle depends on.
fn newest_input(worker: &str) -> Result<Option<SystemTime>> {
    let mut newest = None;
    for input in inputs(worker)? {
        visit(&input, &mut |t| newest = newest.max(Some(t)))?;
    }
    Ok(newest)
}

fn visit(path: &Path, f: &mut dyn FnMut(SystemTime)) -> Result<()> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            visit(&entry?.path(), f)?;
        }
    } else {
        f(meta.modified()?);
    }
    Ok(())
}

fn modified(path: &Path) -> std::io::Result<SystemTime> {
    std::fs::metadata(path)?.modified()
}

/// Raw and gzip size of a built worker (its wasm module plus the JavaScript shim).
pub fn size(worker: &'static str) -> Result<Size> {
    let build = crate_dir(worker).join("build");
    let (mut raw, mut gzip) = (0, 0);
    for file in ["index.js", "index_bg.wasm"] {
        let bytes = std::fs::read(build.join(file))
            .with_context(|| format!("{worker}: build/{file} is missing; run cargo xtask build"))?;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(&bytes)?;
        raw += bytes.len() as u64;
        gzip += encoder.finish()?.len() as u64;
    }
    Ok(Size { worker, raw, gzip })
}

/// A path relative to the repository root, for messages.
pub fn rel(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::{crate_dir, inputs};

    #[test]
    fn a_bundle_is_rebuilt_when_a_file_it_compiles_in_changes() {
        // `openapi.json` lies beside the query worker's `src/`; a change to it alone
        // once left the served document stale.
        let query = inputs("query").unwrap();
        let spec = crate_dir("query").join("openapi.json");
        assert!(
            query.iter().any(|input| spec.starts_with(input)),
            "{query:?}"
        );
        assert!(query.contains(&crate_dir("query").join("src")));
        assert!(!query.contains(&crate_dir("query").join("build")));
    }
}
