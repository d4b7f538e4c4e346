//! Children of a test die with it: each runs in its own process group, handed to a [`Reaper`].
//!
//! The reaper is a small `sh`, started before the children, that outlives this process. It reads
//! process groups from its stdin, one per line, until EOF: when this process is gone (normal
//! exit, panic, abort or SIGKILL) the kernel closes the pipe's write end. Then it sends TERM to
//! every group it was told of, KILL two seconds later, and removes its directory (unless
//! `E2E_KEEP_DIR` is set). It keeps the groups in memory, so nothing another test binary removes
//! (a stale temp dir) can make it forget one. Our end of the pipe is close-on-exec, so no other
//! child keeps it open. Dropping a [`Reaper`] (once its children are stopped) kills it.

use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `E2E_KEEP_DIR=1`: keep the temp dirs (certs, kubeconfig, logs) for a look after the run.
pub fn keep_dirs() -> bool {
    std::env::var_os("E2E_KEEP_DIR").is_some_and(|v| !v.is_empty() && v != "0")
}

/// The reaper process and the write end of its stdin.
pub struct Reaper {
    child: Child,
    pipe: Mutex<ChildStdin>,
}

impl Reaper {
    /// Starts a reaper that also removes `dir` (if given) once it has killed the groups.
    pub fn spawn(dir: Option<&Path>) -> Result<Reaper, String> {
        let script = r#"
trap '' INT TERM HUP
dir=$1 keep=$2 groups=""
while read -r g; do groups="$groups $g"; done
for g in $groups; do kill -s TERM -- "-$g" 2>/dev/null; done
sleep 2
for g in $groups; do kill -s KILL -- "-$g" 2>/dev/null; done
[ -z "$dir" ] || [ "$keep" = 1 ] || rm -rf "$dir"
"#;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("gpu-admission-e2e-reaper")
            .arg(dir.map(Path::as_os_str).unwrap_or_default())
            .arg(if keep_dirs() { "1" } else { "0" })
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot spawn reaper sh: {e}"))?;
        let pipe = child.stdin.take().expect("reaper stdin");
        Ok(Reaper {
            child,
            pipe: Mutex::new(pipe),
        })
    }

    /// Hands the process group `pgid` (a child spawned with `process_group(0)`: its pid) over.
    pub fn register(&self, pgid: u32) -> Result<(), String> {
        let mut pipe = self.pipe.lock().unwrap_or_else(|e| e.into_inner());
        writeln!(pipe, "{pgid}")
            .and_then(|()| pipe.flush())
            .map_err(|e| format!("cannot tell the reaper about process group {pgid}: {e}"))
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        // The reaper ignores TERM; its owner has stopped (and cleans up) what it registered.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `kill -s <sig> -- -<pgid>` via the shell builtin (no libc needed).
fn signal_group(pgid: u32, sig: &str) {
    let _ = Command::new("sh")
        .args(["-c", r#"kill -s "$1" -- "-$2" 2>/dev/null"#, "kill"])
        .arg(sig)
        .arg(pgid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Sends SIGTERM, then SIGKILL after `grace`, to the process group led by `child`, and reaps it.
pub fn kill_group(child: &mut Child, grace: Duration) {
    let pgid = child.id();
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    signal_group(pgid, "TERM");
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    signal_group(pgid, "KILL");
    let _ = child.kill();
    let _ = child.wait();
}
