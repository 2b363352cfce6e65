//! Running commands: each prints what it runs, and a failure says what to do.
//! Long-lived children run in their own process group so the whole tree can be stopped.

use std::process::{Child, Command, ExitStatus};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Process groups of running background children; stopped on Ctrl-C or termination.
static GROUPS: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// Set once Ctrl-C (or SIGTERM) arrived; the handler is then stopping everything.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether xtask is being interrupted: children exiting now is expected, not a failure.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Stops every background child when xtask is interrupted, then exits.
pub fn install_interrupt_handler() -> Result<()> {
    ctrlc::set_handler(|| {
        INTERRUPTED.store(true, Ordering::SeqCst);
        eprintln!("\nxtask: interrupted; stopping background processes");
        let groups = std::mem::take(&mut *GROUPS.lock().unwrap_or_else(|e| e.into_inner()));
        stop_groups(&groups);
        std::process::exit(130);
    })
    .context("could not install the Ctrl-C handler")
}

/// Runs `cmd` to completion in the foreground.
///
/// # Errors
///
/// When it cannot start or exits non-zero; `hint` says what to do about it.
pub fn run(cmd: &mut Command, hint: &str) -> Result<()> {
    let status = status(cmd)?;
    if !status.success() {
        bail!("`{}` failed ({status})\n  hint: {hint}", show(cmd));
    }
    Ok(())
}

/// Runs `cmd` to completion and returns its exit status.
pub fn status(cmd: &mut Command) -> Result<ExitStatus> {
    println!("$ {}", show(cmd));
    cmd.status()
        .with_context(|| format!("could not start `{}`", show(cmd)))
}

/// Runs `cmd` and returns its stdout; stderr is passed through.
pub fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("could not start `{}`", show(cmd)))?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            show(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A command line as a person would type it, for messages.
pub fn show(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

/// A readable output stream of a child.
pub type Stream = Box<dyn std::io::Read + Send>;

/// A background child in its own process group, stopped with its whole tree on drop.
#[derive(Debug)]
pub struct Background {
    pub name: String,
    child: Child,
}

impl Background {
    /// Starts `cmd` in a new process group and registers it for Ctrl-C cleanup.
    pub fn spawn(name: &str, cmd: &mut Command) -> Result<Self> {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        // SAFETY: prctl is async-signal-safe and touches no memory of this process. It
        // asks the kernel to stop the child if xtask dies without running destructors.
        #[allow(unsafe_code)]
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("could not start {name}: `{}`", show(cmd)))?;
        let pid = child.id() as i32;
        GROUPS.lock().unwrap_or_else(|e| e.into_inner()).push(pid);
        Ok(Self {
            name: name.to_owned(),
            child,
        })
    }

    /// Takes the child's piped stdout and stderr, if they were piped.
    pub fn take_output(&mut self) -> (Option<Stream>, Option<Stream>) {
        (
            self.child.stdout.take().map(|s| Box::new(s) as Stream),
            self.child.stderr.take().map(|s| Box::new(s) as Stream),
        )
    }

    /// Whether the child has exited, and how.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Stops the child's whole process group.
    pub fn stop(&mut self) {
        let pid = self.child.id() as i32;
        GROUPS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|g| *g != pid);
        stop_groups(&[pid]);
        let _ = self.child.wait();
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends SIGTERM to each process group, waits up to five seconds, then SIGKILLs.
fn stop_groups(groups: &[i32]) {
    let alive = |g: i32| {
        // Reap exited children of the group first: a zombie still counts as a member.
        // SAFETY: waitpid with WNOHANG only collects exit statuses of our own children.
        #[allow(unsafe_code)]
        unsafe {
            while libc::waitpid(-g, std::ptr::null_mut(), libc::WNOHANG) > 0 {}
        }
        signal(g, 0)
    };
    for &g in groups {
        signal(g, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while groups.iter().any(|&g| alive(g)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for &g in groups {
        if alive(g) {
            signal(g, libc::SIGKILL);
        }
    }
}

/// Sends `sig` to process group `group`; true if the group exists.
fn signal(group: i32, sig: i32) -> bool {
    // SAFETY: kill(2) with a negative pid only signals that process group.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::kill(-group, sig) };
    rc == 0
}
