//! The real cluster of `scripts/cluster.sh`, with gpu-admission installed from its image the way a
//! user installs it (`deploy/overlays/real-cluster`, server-side apply, by Argo CD sync wave),
//! driven through `kubectl`.
//!
//! - `scripts/test.sh` starts the cluster before `cargo test` and tears it down after (trap), and
//!   sets `GA_CLUSTER_DIR`; the tests then use it and leave it running.
//! - Run alone (`cargo test --test e2e_real_cluster`), the first test starts it
//!   (`scripts/image.sh`, then `scripts/cluster.sh up`), and a reaper started before it, in its
//!   own session, runs `scripts/cluster.sh down` and `verify-clean` as soon as this test process
//!   is gone, however it ends (its log: `target/tmp/real-cluster-reaper.log`).
//!
//! A cluster that cannot be started or a webhook that does not become ready is a test FAILURE,
//! never a skip.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// Names from the seed and deploy/.
pub const WEBHOOK_NS: &str = "gpu-admission";
pub const WEBHOOK_DEPLOYMENT: &str = "gpu-admission";
pub const WEBHOOK_SERVICE_HOST: &str = "gpu-admission.gpu-admission.svc";
pub const SYSTEM_NODE: &str = "system-node-00";
pub const GPU_WORKERS: [&str; 2] = ["talos-cluster-gpu-worker-00", "talos-cluster-gpu-worker-01"];
pub const IMAGE: &str = "ghcr.io/gpu-admission/gpu-admission:0.1.0";

#[derive(Debug, Clone)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn success(&self) -> bool {
        self.code == 0
    }
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert!(
            self.success(),
            "command failed (code {}):\nstdout:\n{}\nstderr:\n{}",
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\nstderr:\n{}", self.stdout, self.stderr))
    }
}

pub struct Cluster {
    pub repo: PathBuf,
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    pub kubectl: PathBuf,
    /// Started by this test process (and torn down by its reaper).
    pub owned: bool,
    /// What the installation showed (for the install test and the report).
    pub install: Install,
}

#[derive(Debug, Clone, Default)]
pub struct Install {
    pub ca_bundle: String,
    /// The overlay as applied (caBundle substituted).
    pub rendered: String,
    pub seconds_to_ready: f64,
    pub cluster_up_seconds: Option<f64>,
    /// The waves and what the probe saw during the sync.
    pub sync: super::waves::WaveSync,
}

/// The sync wave of the serving Secret (deploy/components/cert-manager's Certificates): the
/// certificate step runs before it.
pub const SECRET_WAVE: i64 = 2;

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static SERIAL: Mutex<()> = Mutex::new(());

/// The scenarios share one cluster and its GPU capacity: one at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// The shared cluster with gpu-admission installed and ready; panics (fails the test) if it
/// cannot be had.
pub fn shared() -> &'static Cluster {
    match CLUSTER.get_or_init(Cluster::start) {
        Ok(c) => c,
        Err(e) => panic!("the real cluster is not available (this is a failure, not a skip):\n{e}"),
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn report_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&d).ok();
    d
}

fn run(cmd: &mut Command) -> Out {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Cluster {
    fn start() -> Result<Cluster, String> {
        let repo = repo();
        let dir =
            PathBuf::from(std::env::var("GA_CLUSTER_DIR").unwrap_or_else(|_| "/tmp/gpu-admission-cluster".into()));
        let kubeconfig = dir.join("etc/admin.kubeconfig");
        let kubectl = dir.join("bin/kubectl");
        let mut cluster = Cluster {
            repo: repo.clone(),
            dir: dir.clone(),
            kubeconfig,
            kubectl,
            owned: false,
            install: Install::default(),
        };
        let running = cluster.kubeconfig.exists()
            && cluster.kubectl.exists()
            && cluster.kubectl(&["get", "--raw=/readyz"]).success();
        if !running {
            if std::env::var_os("GA_CLUSTER_DIR").is_some() && std::env::var_os("GA_CLUSTER_START").is_none() {
                return Err(format!(
                    "GA_CLUSTER_DIR={} is set but no cluster answers there (scripts/test.sh starts it; \
                     unset GA_CLUSTER_DIR to let the test start its own)",
                    dir.display()
                ));
            }
            cluster.owned = true;
            cluster.install.cluster_up_seconds = Some(start_owned(&repo, &dir)?);
        }
        cluster.install_webhook()?;
        Ok(cluster)
    }

    /// `kubectl --kubeconfig ... ARGS`.
    pub fn kubectl(&self, args: &[&str]) -> Out {
        run(Command::new(&self.kubectl)
            .arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .arg("--request-timeout=60s")
            .args(args))
    }

    /// `kubectl ARGS` with STDIN.
    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> Out {
        let mut child = Command::new(&self.kubectl)
            .arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .arg("--request-timeout=60s")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kubectl");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .expect("write kubectl stdin");
        let out = child.wait_with_output().expect("kubectl");
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    #[track_caller]
    pub fn get(&self, args: &[&str]) -> Value {
        let mut a = vec!["get"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["-o", "json"]);
        self.kubectl(&a).ok().json()
    }

    /// A script of this repository with the cluster's environment.
    pub fn script(&self, name: &str, args: &[&str]) -> Out {
        run(Command::new(self.repo.join("scripts").join(name))
            .args(args)
            .env("GA_CLUSTER_DIR", &self.dir)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("KUBECTL", &self.kubectl))
    }

    /// The overlay as a user renders it, with the caBundle substituted.
    pub fn render_overlay(&self, ca_bundle: &str) -> Result<String, String> {
        let out = self.kubectl(&[
            "kustomize",
            self.repo.join("deploy/overlays/real-cluster").to_str().unwrap(),
        ]);
        if !out.success() {
            return Err(format!(
                "kubectl kustomize deploy/overlays/real-cluster failed: {}",
                out.stderr
            ));
        }
        Ok(out.stdout.replace("${CA_BUNDLE}", ca_bundle))
    }

    /// The installation as Argo CD syncs it (tests/real_cluster/waves.rs): the overlay by sync
    /// wave, each healthy before the next, the certificate step (the Secret and the caBundle,
    /// which cert-manager or the self-managed mode would make) before the Secret's wave, and a
    /// probe of GPU pods all along, none of which may be refused.
    fn install_webhook(&mut self) -> Result<(), String> {
        let t0 = Instant::now();
        let rendered = self.render_overlay("${CA_BUNDLE}")?;
        let mut ca_bundle = String::new();
        let sync = super::waves::sync(self, &rendered, |wave| {
            if wave != SECRET_WAVE {
                return Ok(vec![]);
            }
            let certs = self.script("webhook-certs.sh", &["create"]);
            if !certs.success() {
                return Err(format!(
                    "scripts/webhook-certs.sh create failed:\n{}{}",
                    certs.stdout, certs.stderr
                ));
            }
            ca_bundle = certs.stdout.lines().last().unwrap_or_default().trim().to_string();
            Ok(vec![("${CA_BUNDLE}".to_string(), ca_bundle.clone())])
        });
        let sync = match sync {
            Ok(s) => s,
            Err(e) => {
                let pods = self.kubectl(&["get", "pods", "-n", WEBHOOK_NS, "-o", "wide"]);
                let events = self.kubectl(&["get", "events", "-n", WEBHOOK_NS]);
                let logs = self.kubectl(&[
                    "logs",
                    "-n",
                    WEBHOOK_NS,
                    "-l",
                    "app.kubernetes.io/name=gpu-admission",
                    "--tail=30",
                ]);
                return Err(format!(
                    "the sync by waves failed: {e}\n{}\n{}\n{}",
                    pods.stdout, events.stdout, logs.stdout
                ));
            }
        };
        self.install = Install {
            rendered: rendered.replace("${CA_BUNDLE}", &ca_bundle),
            ca_bundle,
            seconds_to_ready: t0.elapsed().as_secs_f64(),
            cluster_up_seconds: self.install.cluster_up_seconds,
            sync,
        };
        Ok(())
    }

    /// The webhook's pods (JSON items), with their IPs.
    pub fn webhook_pods(&self) -> Vec<Value> {
        let list = self.get(&["pods", "-n", WEBHOOK_NS, "-l", "app.kubernetes.io/name=gpu-admission"]);
        list["items"].as_array().cloned().unwrap_or_default()
    }

    /// Ready webhook pods' IPs.
    pub fn ready_webhook_ips(&self) -> Vec<String> {
        self.webhook_pods()
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null() && is_ready(p))
            .filter_map(|p| p["status"]["podIP"].as_str().map(str::to_string))
            .collect()
    }

    pub fn service_ip(&self) -> String {
        self.get(&["service", "-n", WEBHOOK_NS, WEBHOOK_DEPLOYMENT])["spec"]["clusterIP"]
            .as_str()
            .expect("clusterIP")
            .to_string()
    }

    /// The API server's /metrics.
    pub fn apiserver_metrics(&self) -> String {
        self.kubectl(&["get", "--raw=/metrics"]).ok().stdout.clone()
    }

    /// Waits for the Deployment's rollout.
    #[track_caller]
    pub fn rollout(&self, ns: &str, what: &str, timeout_s: u64) {
        self.kubectl(&["rollout", "status", "-n", ns, what, &format!("--timeout={timeout_s}s")])
            .ok();
    }

    /// Events (JSON items) about one object.
    pub fn events_for(&self, ns: &str, kind: &str, name: &str) -> Vec<Value> {
        let sel = format!("involvedObject.kind={kind},involvedObject.name={name}");
        let list = self.get(&["events", "-n", ns, "--field-selector", &sel]);
        list["items"].as_array().cloned().unwrap_or_default()
    }

    /// Deletes every pod matching SELECTOR in NS at once (pods bound to an API-only node have no
    /// kubelet to finish a graceful deletion).
    pub fn force_delete_pods(&self, ns: &str, selector: &str) {
        self.kubectl(&[
            "delete",
            "pods",
            "-n",
            ns,
            "-l",
            selector,
            "--grace-period=0",
            "--force",
            "--ignore-not-found",
            "--wait=false",
        ]);
    }

    /// Deletes a namespace and everything in it, force-deleting its pods, and waits until gone.
    pub fn delete_namespace(&self, ns: &str) {
        self.kubectl(&["delete", "namespace", ns, "--ignore-not-found", "--wait=false"]);
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.kubectl(&["get", "namespace", ns]).success() {
            self.kubectl(&[
                "delete",
                "pods",
                "--all",
                "-n",
                ns,
                "--grace-period=0",
                "--force",
                "--ignore-not-found",
                "--wait=false",
            ]);
            assert!(Instant::now() < deadline, "namespace {ns} was not deleted within 120 s");
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Every pod bound to NODE that is not finished (JSON items).
    pub fn pods_on(&self, node: &str) -> Vec<Value> {
        let sel = format!("spec.nodeName={node}");
        let list = self.get(&["pods", "-A", "--field-selector", &sel]);
        list["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|p| !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed")))
            .collect()
    }
}

/// Polls F until it gives Some, every 200 ms; panics naming WHAT after TIMEOUT.
#[track_caller]
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .map(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
        .unwrap_or(false)
}

/// A bare pod asking for SLICES nvidia.com/gpu, as JSON text.
pub fn gpu_pod_json(name: &str, ns: &str, slices: u32) -> String {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"containers": [{
            "name": "c", "image": "localhost/gpu-admission-test/stub:1", "imagePullPolicy": "Never",
            "resources": {"limits": {"nvidia.com/gpu": slices.to_string()}}
        }]}
    })
    .to_string()
}

/// GET http://ADDR/PATH (the webhook's admin port): (status, body).
pub fn http_get(addr: &str, path: &str) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect_timeout(
        &addr.parse().map_err(|e| format!("{addr}: {e}"))?,
        Duration::from_secs(3),
    )
    .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(|e| format!("read {addr}{path}: {e}"))?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status line from {addr}{path}: {text}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// The serial (hex, upper case as openssl prints it) of the certificate served at ADDR
/// (host:port) for the webhook's Service name.
pub fn served_serial(addr: &str) -> Result<String, String> {
    let out = run(Command::new("sh").arg("-c").arg(format!(
        "openssl s_client -connect {addr} -servername {WEBHOOK_SERVICE_HOST} </dev/null 2>/dev/null | openssl x509 -noout -serial"
    )));
    let serial = out
        .stdout
        .trim()
        .strip_prefix("serial=")
        .unwrap_or_default()
        .to_string();
    if serial.is_empty() {
        Err(format!("no certificate from {addr}: {}{}", out.stdout, out.stderr))
    } else {
        Ok(serial)
    }
}

/// Sum of the values of metric NAME whose label set contains every FILTER (`key="value"`).
pub fn metric_sum(text: &str, name: &str, filters: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b'{') | Some(b' ')))
        .filter(|l| filters.iter().all(|f| l.contains(f)))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.trim().parse::<f64>().ok()))
        .sum()
}

/// The API server's admission-webhook metrics for gpu-admission's webhooks, as report lines.
pub fn webhook_metric_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| {
            (l.starts_with("apiserver_admission_webhook_rejection_count")
                || l.starts_with("apiserver_admission_webhook_fail_open_count")
                || l.starts_with("apiserver_admission_webhook_request_total"))
                && l.contains("gpu-admission.io")
        })
        .map(str::to_string)
        .collect()
}

fn start_owned(repo: &Path, dir: &Path) -> Result<f64, String> {
    // The reaper first: whatever happens from here on, the cluster goes when this process does.
    // It waits for EOF on its stdin, whose write end only this process holds (std's pipes are
    // close-on-exec): the kernel closes it when this process ends, however it ends. (Polling the
    // pid would wait forever on a zombie that nobody reaps, as PID 1 does not here.)
    let log = report_dir().join("real-cluster-reaper.log");
    let script = format!(
        "trap '' INT TERM HUP; cat >/dev/null; \
         GA_CLUSTER_DIR='{dir}' '{repo}/scripts/cluster.sh' down; GA_CLUSTER_DIR='{dir}' '{repo}/scripts/cluster.sh' verify-clean",
        dir = dir.display(),
        repo = repo.display()
    );
    let log_file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut reaper = Command::new("setsid")
        .arg("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(log_file.try_clone().map_err(|e| e.to_string())?)
        .stderr(log_file)
        .spawn()
        .map_err(|e| format!("cannot start the reaper: {e}"))?;
    // Held open until this process exits.
    std::mem::forget(reaper.stdin.take());
    let image = match std::env::var("GA_CLUSTER_IMAGE") {
        Ok(p) => p,
        Err(_) => {
            let out = run(&mut Command::new(repo.join("scripts/image.sh")));
            if !out.success() {
                return Err(format!("scripts/image.sh failed:\n{}", out.stderr));
            }
            out.stdout.lines().last().unwrap_or_default().to_string()
        }
    };
    let t0 = Instant::now();
    let up = run(Command::new(repo.join("scripts/cluster.sh"))
        .arg("up")
        .env("GA_CLUSTER_DIR", dir)
        .env("GA_CLUSTER_IMAGE", &image));
    if !up.success() {
        return Err(format!(
            "scripts/cluster.sh up failed:\n{}\n--- kube-apiserver.log ---\n{}\n--- kubelet.log ---\n{}",
            up.stderr,
            tail(&dir.join("logs/kube-apiserver.log"), 20),
            tail(&dir.join("logs/kubelet.log"), 20)
        ));
    }
    Ok(t0.elapsed().as_secs_f64())
}
