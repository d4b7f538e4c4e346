//! The processes the benchmark programs start and watch: loopback ports, `gpu-admission certs`
//! and `gpu-admission serve`, and `/proc/PID/status`.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Command, Stdio};

/// A loopback port free at the time of the call.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A `/proc/PID/status` field in KiB (`VmHWM`, `VmRSS`).
pub fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// `BIN certs --out DIR`: a dev CA (`ca.crt`) and a serving certificate (`tls.crt`, `tls.key`).
pub fn make_certs(server_bin: &Path, out: &Path) -> Result<(), String> {
    let made = Command::new(server_bin)
        .args(["certs", "--out"])
        .arg(out)
        .stdout(Stdio::null())
        .status();
    if made.is_ok_and(|s| s.success()) {
        Ok(())
    } else {
        Err(format!("`{} certs` failed", server_bin.display()))
    }
}

/// `BIN serve` on `addr` (admin port `admin`) with the certificate of [`make_certs`] in `certs`,
/// stdin closed, stdout and stderr to `log`. The caller adds flags and the environment, and
/// spawns it.
pub fn serve_command(server_bin: &Path, certs: &Path, addr: SocketAddr, admin: SocketAddr, log: File) -> Command {
    let mut cmd = Command::new(server_bin);
    cmd.arg("serve")
        .args(["--listen", &addr.to_string(), "--admin-listen", &admin.to_string()])
        .arg("--tls-cert")
        .arg(certs.join("tls.crt"))
        .arg("--tls-key")
        .arg(certs.join("tls.key"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log);
    cmd
}
