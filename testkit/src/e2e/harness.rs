//! End-to-end test harness: a real etcd + kube-apiserver on 127.0.0.1,
//! started the way controller-runtime's envtest does it.
//!
//! Binaries come from `KUBE_APISERVER_BIN`, `ETCD_BIN` and `KUBECTL_BIN`; any
//! that is unset is taken from the bin dir printed (last line of stdout) by
//! `scripts/control-plane.sh`, which builds them on first use. A missing binary
//! or a control plane that does not come up is a test FAILURE (panic), never a
//! skip.
//!
//! One control plane is shared by all tests of a test binary ([`shared`]).
//! Every child runs in its own process group, handed to a [`Reaper`] started
//! before any child: it kills them all, then removes the temp dir, once the test
//! process is gone (normal exit, panic, abort or SIGKILL). An owned
//! [`ControlPlane`] (from [`ControlPlane::start`]) also tears down on `Drop`.
//!
//! Env knobs: `E2E_KEEP_DIR=1` keeps the temp dir (certs, kubeconfig, logs);
//! `E2E_START_TIMEOUT_SECS` (default 120) bounds start-up.

use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use super::reaper::Reaper;
use super::reaper::{keep_dirs, kill_group};
use crate::paths::repo;
use crate::process;
use crate::wait::Wait;

/// Result of a `kubectl` invocation.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit code (-1 if killed by a signal).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == 0
    }

    /// Panics (with stdout/stderr) unless the command exited 0.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        assert!(
            self.success(),
            "kubectl failed (code {}):\nstdout:\n{}\nstderr:\n{}",
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panics unless the command exited 1 with every one of `parts` in its stderr.
    #[track_caller]
    pub fn assert_fails_saying(&self, parts: &[&str]) -> &Self {
        assert_eq!(self.code, 1, "{self:?}");
        let missing: Vec<&&str> = parts.iter().filter(|p| !self.stderr.contains(**p)).collect();
        assert!(missing.is_empty(), "stderr lacks {missing:?}: {self:?}");
        self
    }

    /// Parses stdout as JSON, panicking with the raw text on error.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "kubectl stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Paths of the three control-plane binaries.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub kube_apiserver: PathBuf,
    pub etcd: PathBuf,
    pub kubectl: PathBuf,
}

impl Binaries {
    /// Resolves binaries from `KUBE_APISERVER_BIN` / `ETCD_BIN` / `KUBECTL_BIN`,
    /// falling back to `scripts/control-plane.sh` for any that is unset.
    pub fn locate() -> Result<Self, String> {
        let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        let (a, e, k) = (env("KUBE_APISERVER_BIN"), env("ETCD_BIN"), env("KUBECTL_BIN"));
        let bin_dir = if a.is_none() || e.is_none() || k.is_none() {
            Some(run_control_plane_script()?)
        } else {
            None
        };
        let pick = |v: Option<PathBuf>, name: &str| v.unwrap_or_else(|| bin_dir.as_ref().expect("bin dir").join(name));
        let bins = Binaries {
            kube_apiserver: pick(a, "kube-apiserver"),
            etcd: pick(e, "etcd"),
            kubectl: pick(k, "kubectl"),
        };
        for (var, p) in [
            ("KUBE_APISERVER_BIN", &bins.kube_apiserver),
            ("ETCD_BIN", &bins.etcd),
            ("KUBECTL_BIN", &bins.kubectl),
        ] {
            if !p.is_file() {
                return Err(format!(
                    "{var}: binary {} does not exist (set {var} or run scripts/control-plane.sh)",
                    p.display()
                ));
            }
        }
        Ok(bins)
    }
}

fn run_control_plane_script() -> Result<PathBuf, String> {
    let script = repo().join("scripts/control-plane.sh");
    eprintln!(
        "[e2e] KUBE_APISERVER_BIN/ETCD_BIN/KUBECTL_BIN not all set; running {} (slow on first use)",
        script.display()
    );
    let out = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!("{} failed with {}", script.display(), out.status));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .ok_or_else(|| format!("{} printed no bin dir", script.display()))?;
    Ok(PathBuf::from(last.trim()))
}

/// A running etcd + kube-apiserver pair.
pub struct ControlPlane {
    dir: PathBuf,
    server_url: String,
    etcd_url: String,
    kubeconfig: PathBuf,
    bins: Binaries,
    apiserver: Option<Child>,
    etcd: Option<Child>,
    reaper: Option<Reaper>,
}

static SHARED: OnceLock<Result<ControlPlane, String>> = OnceLock::new();

/// The control plane shared by every test in this test binary (started on
/// first use). Panics with the start-up error in every test if it can't start.
#[track_caller]
pub fn shared() -> &'static ControlPlane {
    match SHARED.get_or_init(ControlPlane::start_result) {
        Ok(cp) => cp,
        Err(e) => panic!("e2e control plane unavailable:\n{e}"),
    }
}

/// The shared control plane, started by `start` if it is not running yet (a test binary that
/// needs other binaries or flags, e.g. [`super::versions::start_k8s_137`], calls this first).
#[track_caller]
pub fn shared_with(start: fn() -> Result<ControlPlane, String>) -> &'static ControlPlane {
    match SHARED.get_or_init(start) {
        Ok(cp) => cp,
        Err(e) => panic!("e2e control plane unavailable:\n{e}"),
    }
}

/// `kubectl` against the shared control plane.
#[track_caller]
pub fn kubectl(args: &[&str], stdin: Option<&str>) -> Output {
    shared().kubectl(args, stdin)
}

/// Kubeconfig (client cert for `admin`, group `system:masters`) of the shared control plane.
pub fn kubeconfig_path() -> &'static Path {
    shared().kubeconfig_path()
}

/// `https://127.0.0.1:<port>` of the shared kube-apiserver.
pub fn server_url() -> &'static str {
    shared().server_url()
}

pub(crate) fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

fn write_file(path: &Path, contents: &str) -> Result<(), String> {
    fs::write(path, contents).map_err(|e| format!("write {}: {e}", path.display()))
}

/// Last `n` lines of a log file, for error messages.
pub fn tail(path: &Path, n: usize) -> String {
    let mut s = String::new();
    if let Ok(mut f) = fs::File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    let lines: Vec<&str> = s.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].join("\n")
}

/// Environment without HTTP proxies, so loopback traffic (apiserver -> webhook,
/// kubectl -> apiserver) never goes through one.
pub(crate) fn scrub_proxy(cmd: &mut Command) -> &mut Command {
    for k in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        cmd.env_remove(k);
    }
    cmd.env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
}

struct Pki {
    serving_ca: PathBuf,
    serving_cert: PathBuf,
    serving_key: PathBuf,
    client_ca: PathBuf,
    admin_cert: PathBuf,
    admin_key: PathBuf,
    sa_pub: PathBuf,
    sa_key: PathBuf,
}

fn gen_pki(dir: &Path) -> Result<Pki, String> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
        SanType,
    };
    let e = |what: &str| {
        let what = what.to_string();
        move |err: rcgen::Error| format!("rcgen ({what}): {err}")
    };

    let new_ca = |cn: &str| -> Result<(String, Issuer<'static, KeyPair>), String> {
        let key = KeyPair::generate().map_err(e("ca key"))?;
        let mut p = CertificateParams::new(Vec::<String>::new()).map_err(e("ca params"))?;
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = p.self_signed(&key).map_err(e("ca self-sign"))?;
        Ok((cert.pem(), Issuer::new(p, key)))
    };

    let pki = Pki {
        serving_ca: dir.join("serving-ca.crt"),
        serving_cert: dir.join("apiserver.crt"),
        serving_key: dir.join("apiserver.key"),
        client_ca: dir.join("client-ca.crt"),
        admin_cert: dir.join("admin.crt"),
        admin_key: dir.join("admin.key"),
        sa_pub: dir.join("sa-signer.pub"),
        sa_key: dir.join("sa-signer.key"),
    };

    // Serving CA + kube-apiserver serving cert.
    let (serving_ca_pem, serving_ca) = new_ca("gpu-admission-e2e-serving-ca")?;
    write_file(&pki.serving_ca, &serving_ca_pem)?;
    let key = KeyPair::generate().map_err(e("serving key"))?;
    let mut p = CertificateParams::new(vec![
        "localhost".to_string(),
        "kubernetes".to_string(),
        "kubernetes.default".to_string(),
        "kubernetes.default.svc".to_string(),
        "kubernetes.default.svc.cluster.local".to_string(),
    ])
    .map_err(e("serving params"))?;
    p.subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    p.subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))));
    p.distinguished_name.push(DnType::CommonName, "kube-apiserver");
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = p.signed_by(&key, &serving_ca).map_err(e("serving sign"))?;
    write_file(&pki.serving_cert, &cert.pem())?;
    write_file(&pki.serving_key, &key.serialize_pem())?;

    // Client CA + admin (system:masters) client cert.
    let (client_ca_pem, client_ca) = new_ca("gpu-admission-e2e-client-ca")?;
    write_file(&pki.client_ca, &client_ca_pem)?;
    let key = KeyPair::generate().map_err(e("admin key"))?;
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(e("admin params"))?;
    p.distinguished_name.push(DnType::CommonName, "admin");
    p.distinguished_name.push(DnType::OrganizationName, "system:masters");
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = p.signed_by(&key, &client_ca).map_err(e("admin sign"))?;
    write_file(&pki.admin_cert, &cert.pem())?;
    write_file(&pki.admin_key, &key.serialize_pem())?;

    // Service-account token signing key pair (ECDSA P-256 / ES256).
    let key = KeyPair::generate().map_err(e("sa key"))?;
    write_file(&pki.sa_pub, &key.public_key_pem())?;
    write_file(&pki.sa_key, &key.serialize_pem())?;
    Ok(pki)
}

/// Removes temp dirs of earlier runs whose test process is gone (their reaper
/// may have been killed before it could clean up, e.g. by a job runner that
/// kills every leftover process). Skipped when E2E_KEEP_DIR is set.
fn remove_stale_dirs() {
    if keep_dirs() {
        return;
    }
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("gpu-admission-e2e-")) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

impl ControlPlane {
    /// Starts a private control plane (torn down on `Drop`). Panics on failure.
    #[track_caller]
    pub fn start() -> ControlPlane {
        Self::start_result().unwrap_or_else(|e| panic!("e2e control plane failed to start:\n{e}"))
    }

    /// Like [`ControlPlane::start`] but returns the error text.
    pub fn start_result() -> Result<ControlPlane, String> {
        Self::start_with(Binaries::locate()?, &[])
    }

    /// A private control plane from `bins`, kube-apiserver getting `apiserver_args` too (see
    /// [`super::versions`]).
    pub fn start_with(bins: Binaries, apiserver_args: &[&str]) -> Result<ControlPlane, String> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        remove_stale_dirs();
        let dir = std::env::temp_dir().join(format!("gpu-admission-e2e-{}-{nanos}", std::process::id()));
        fs::create_dir_all(dir.join("etcd-data")).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        // Resolve symlinks so the reaper's `rm -rf` gets the real path.
        let dir = fs::canonicalize(&dir).map_err(|e| e.to_string())?;

        let mut cp = ControlPlane {
            server_url: String::new(),
            etcd_url: String::new(),
            kubeconfig: dir.join("kubeconfig"),
            dir,
            bins,
            apiserver: None,
            etcd: None,
            reaper: None,
        };
        // From here on, an early return drops `cp`, which kills what was started.
        cp.reaper = Some(Reaper::spawn(Some(&cp.dir))?);
        let pki = gen_pki(&cp.dir)?;

        let timeout = Duration::from_secs(
            std::env::var("E2E_START_TIMEOUT_SECS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(120),
        );
        let deadline = Instant::now() + timeout;

        // etcd
        let client_port = free_port()?;
        let peer_port = free_port()?;
        cp.etcd_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let etcd_log = cp.dir.join("etcd.log");
        let mut cmd = Command::new(&cp.bins.etcd);
        cmd.arg("--name=default")
            .arg(format!("--data-dir={}", cp.dir.join("etcd-data").display()))
            .arg(format!("--listen-client-urls={}", cp.etcd_url))
            .arg(format!("--advertise-client-urls={}", cp.etcd_url))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=default={peer_url}"))
            .arg("--unsafe-no-fsync=true")
            .arg("--log-level=warn");
        cp.etcd = Some(cp.spawn_logged(cmd, &etcd_log, "etcd")?);

        // kube-apiserver
        let secure_port = free_port()?;
        cp.server_url = format!("https://127.0.0.1:{secure_port}");
        let apiserver_log = cp.dir.join("kube-apiserver.log");
        let mut cmd = Command::new(&cp.bins.kube_apiserver);
        let p = |x: &PathBuf| x.display().to_string();
        cmd.arg("--advertise-address=127.0.0.1")
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--secure-port={secure_port}"))
            .arg(format!("--etcd-servers={}", cp.etcd_url))
            .arg(format!("--cert-dir={}", cp.dir.display()))
            .arg(format!("--tls-cert-file={}", p(&pki.serving_cert)))
            .arg(format!("--tls-private-key-file={}", p(&pki.serving_key)))
            .arg(format!("--client-ca-file={}", p(&pki.client_ca)))
            .arg("--service-cluster-ip-range=10.0.0.0/24")
            .arg("--allow-privileged=true")
            .arg("--authorization-mode=RBAC")
            // envtest: no controller-manager creates default ServiceAccounts.
            .arg("--disable-admission-plugins=ServiceAccount")
            .arg("--enable-admission-plugins=NamespaceLifecycle,MutatingAdmissionWebhook,ValidatingAdmissionWebhook")
            .arg(format!("--service-account-issuer={}/", cp.server_url))
            .arg(format!("--service-account-key-file={}", p(&pki.sa_pub)))
            .arg(format!("--service-account-signing-key-file={}", p(&pki.sa_key)))
            .args(apiserver_args);
        cp.apiserver = Some(cp.spawn_logged(cmd, &apiserver_log, "kube-apiserver")?);

        cp.write_kubeconfig(&pki)?;
        cp.wait_ready(deadline)?;
        Ok(cp)
    }

    fn spawn_logged(&self, mut cmd: Command, log: &Path, name: &str) -> Result<Child, String> {
        let f = fs::File::create(log).map_err(|e| format!("create {}: {e}", log.display()))?;
        let f2 = f.try_clone().map_err(|e| e.to_string())?;
        scrub_proxy(&mut cmd)
            .stdin(Stdio::null())
            .stdout(f)
            .stderr(f2)
            .process_group(0);
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {name} ({:?}): {e}", cmd.get_program()))?;
        // Hand the process group to the reaper before anything else can fail.
        self.register_process_group(child.id())?;
        Ok(child)
    }

    fn write_kubeconfig(&self, pki: &Pki) -> Result<(), String> {
        let mut s = String::new();
        let _ = write!(
            s,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: e2e\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\nusers:\n- name: admin\n  user:\n    client-certificate: {cert}\n    client-key: {key}\ncontexts:\n- name: e2e\n  context:\n    cluster: e2e\n    user: admin\n    namespace: default\ncurrent-context: e2e\n",
            server = self.server_url,
            ca = pki.serving_ca.display(),
            cert = pki.admin_cert.display(),
            key = pki.admin_key.display(),
        );
        write_file(&self.kubeconfig, &s)
    }

    fn check_alive(&mut self) -> Result<(), String> {
        for (name, child, log) in [
            ("etcd", self.etcd.as_mut(), "etcd.log"),
            ("kube-apiserver", self.apiserver.as_mut(), "kube-apiserver.log"),
        ] {
            if let Some(c) = child
                && let Ok(Some(status)) = c.try_wait()
            {
                return Err(format!(
                    "{name} exited early ({status}); last log lines:\n{}",
                    tail(&self.dir.join(log), 40)
                ));
            }
        }
        Ok(())
    }

    fn wait_ready(&mut self, deadline: Instant) -> Result<(), String> {
        // 1. /readyz (authenticated with the admin client cert), then 2. the `default`
        // namespace (created by a post-start controller).
        for (what, args, ready) in [
            (
                "/readyz",
                &["get", "--raw=/readyz", "--request-timeout=5s"][..],
                Some("ok"),
            ),
            (
                "namespace/default",
                &["get", "namespace", "default", "-o", "name", "--request-timeout=5s"][..],
                None,
            ),
        ] {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut died = None;
            let waited = Wait::new(format!("{what} at {}", self.server_url), left)
                .every(Duration::from_millis(250))
                .try_until(|| {
                    if let Err(e) = self.check_alive() {
                        died = Some(e);
                        return Ok(());
                    }
                    let out = self.kubectl(args, None);
                    if out.success() && ready.is_none_or(|r| out.stdout.trim() == r) {
                        Ok(())
                    } else {
                        Err(format!("{}{}", out.stdout, out.stderr))
                    }
                });
            if let Some(e) = died {
                return Err(e);
            }
            waited.map_err(|e| self.start_error(&e))?;
        }
        Ok(())
    }

    fn start_error(&self, e: &str) -> String {
        format!(
            "{e}\n--- kube-apiserver.log (tail) ---\n{}\n--- etcd.log (tail) ---\n{}",
            tail(&self.dir.join("kube-apiserver.log"), 40),
            tail(&self.dir.join("etcd.log"), 20)
        )
    }

    /// Runs `kubectl --kubeconfig=<this> <args>` with optional stdin.
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(&self.bins.kubectl);
        scrub_proxy(&mut cmd)
            .env("KUBECONFIG", &self.kubeconfig)
            .env_remove("KUBECTL_EXTERNAL_DIFF")
            .arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .args(args);
        let out = process::run(&mut cmd, stdin.unwrap_or_default().as_bytes());
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    pub fn etcd_url(&self) -> &str {
        &self.etcd_url
    }

    /// Temp dir holding certs, kubeconfig and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// PEM CA that signed the apiserver's serving cert.
    pub fn ca_cert_path(&self) -> PathBuf {
        self.dir.join("serving-ca.crt")
    }

    pub fn apiserver_log_path(&self) -> PathBuf {
        self.dir.join("kube-apiserver.log")
    }

    pub fn apiserver_log_tail(&self, lines: usize) -> String {
        tail(&self.apiserver_log_path(), lines)
    }

    pub fn binaries(&self) -> &Binaries {
        &self.bins
    }

    /// Hands the process group `pgid` (a child spawned with `process_group(0)`, so its pid) to
    /// the reaper, which kills it with the control plane once the test process is gone.
    pub fn register_process_group(&self, pgid: u32) -> Result<(), String> {
        self.reaper.as_ref().ok_or("the reaper is not running")?.register(pgid)
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Some(mut c) = self.apiserver.take() {
            kill_group(&mut c, Duration::from_secs(10));
        }
        if let Some(mut c) = self.etcd.take() {
            kill_group(&mut c, Duration::from_secs(5));
        }
        // Everything is stopped: the reaper has nothing left to do.
        drop(self.reaper.take());
        if !keep_dirs() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
