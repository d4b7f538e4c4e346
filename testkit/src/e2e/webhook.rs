//! The real `gpu-admission serve` behind the e2e control plane (`harness.rs`).
//!
//! Include after the harness:
//! ```ignore
//! #[path = "e2e/harness.rs"]
//! mod harness;
//! #[path = "e2e/webhook.rs"]
//! mod webhook;
//! ```
//!
//! - [`Webhook::start`] runs the test binary's `gpu-admission serve` on free 127.0.0.1 ports, its
//!   serving certificate published the way the kubelet publishes a Secret volume (`tls.crt` →
//!   `..data/tls.crt`, `..data` → a timestamped directory, swapped atomically), so rotations in
//!   the tests are the ones cert-manager causes in a cluster. Its process group is handed to the
//!   harness' reaper, so it dies with the test process even on SIGKILL.
//! - [`render_local_overlay`] renders `deploy/overlays/local` with kubectl's kustomize and points
//!   it at a port and CA; [`apply_webhook_configurations`] applies it and waits, without sleeping,
//!   until the API server uses exactly that version (see [`apply_webhook_configurations`]).
//! - Failures panic with the webhook's and the API server's log tails: a component that cannot
//!   start fails the test, never skips it.
#![allow(dead_code)]

use std::fs;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::harness::{self, ControlPlane, Output};

/// The binary under test (built by cargo for this test run). Examples get no `CARGO_BIN_EXE_*`
/// from cargo: `examples/e2e_bench/` runs the release build `scripts/bench-e2e.sh` makes.
pub const BIN: &str = match option_env!("CARGO_BIN_EXE_gpu-admission") {
    Some(bin) => bin,
    None => concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/gpu-admission"),
};

/// Upper bound of every wait for a state change (a hang fails the test; it asserts no duration).
pub const WAIT: Duration = Duration::from_secs(60);

/// The repository root.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared/corpus/<file>` (the real-world manifests next to the repository).
pub fn corpus(file: &str) -> PathBuf {
    let p = repo().join("../shared/corpus").join(file);
    assert!(p.is_file(), "corpus file {} is missing", p.display());
    p
}

/// `tests/fixtures/e2e/<file>`.
pub fn fixture(file: &str) -> PathBuf {
    let p = repo().join("tests/fixtures/e2e").join(file);
    assert!(p.is_file(), "fixture {} is missing", p.display());
    p
}

/// A path as a `&str` for kubectl arguments.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

fn unique() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

// === certificates ===

/// A CA and one serving certificate for 127.0.0.1, written by `gpu-admission certs`.
pub struct CertSet {
    pub dir: PathBuf,
}

impl CertSet {
    /// A new CA and serving certificate in `dir`.
    pub fn new_ca(dir: &Path) -> CertSet {
        run_certs(dir, false, 2);
        CertSet { dir: dir.to_path_buf() }
    }

    /// A new serving certificate from the CA already in `self.dir` (the CA stays).
    pub fn reissue(&self) {
        run_certs(&self.dir, true, 2);
    }

    /// Like [`CertSet::reissue`], valid for `days` (so that its notAfter differs).
    pub fn reissue_valid_days(&self, days: u32) {
        run_certs(&self.dir, true, days);
    }

    pub fn ca_pem(&self) -> String {
        read(&self.dir.join("ca.crt"))
    }

    pub fn cert_pem(&self) -> String {
        read(&self.dir.join("tls.crt"))
    }

    pub fn key_pem(&self) -> String {
        read(&self.dir.join("tls.key"))
    }
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

fn run_certs(dir: &Path, reuse_ca: bool, days: u32) {
    let mut cmd = Command::new(BIN);
    cmd.args(["certs", "--out"])
        .arg(dir)
        .args(["--host", "127.0.0.1", "--host", "localhost", "--valid-days"])
        .arg(days.to_string());
    if reuse_ca {
        cmd.arg("--reuse-ca");
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {BIN} certs: {e}"));
    assert!(
        out.status.success(),
        "gpu-admission certs failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// base64 of PEM text: a `caBundle` value.
pub fn ca_bundle(pem: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(pem.as_bytes())
}

/// A directory laid out like a kubelet-mounted Secret volume: `tls.crt` and `tls.key` are
/// symlinks into `..data`, itself a symlink to the current generation, swapped by `rename(2)`.
pub struct SecretVolume {
    pub dir: PathBuf,
    generation: u64,
}

impl SecretVolume {
    pub fn new(dir: &Path, cert_pem: &str, key_pem: &str) -> SecretVolume {
        fs::create_dir_all(dir).expect("mkdir secret volume");
        let mut v = SecretVolume {
            dir: dir.to_path_buf(),
            generation: 0,
        };
        v.publish(cert_pem, key_pem);
        for f in ["tls.crt", "tls.key"] {
            std::os::unix::fs::symlink(format!("..data/{f}"), dir.join(f)).expect("symlink");
        }
        v
    }

    pub fn cert_path(&self) -> PathBuf {
        self.dir.join("tls.crt")
    }

    pub fn key_path(&self) -> PathBuf {
        self.dir.join("tls.key")
    }

    /// Writes a new generation and swaps `..data` to it in one `rename`, as the kubelet does.
    pub fn publish(&mut self, cert_pem: &str, key_pem: &str) {
        self.generation += 1;
        let gen_name = format!("..gen_{:04}", self.generation);
        let gen_dir = self.dir.join(&gen_name);
        fs::create_dir(&gen_dir).expect("mkdir generation");
        fs::write(gen_dir.join("tls.crt"), cert_pem).expect("write tls.crt");
        fs::write(gen_dir.join("tls.key"), key_pem).expect("write tls.key");
        let tmp = self.dir.join("..data_tmp");
        let _ = fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&gen_name, &tmp).expect("symlink ..data_tmp");
        fs::rename(&tmp, self.dir.join("..data")).expect("swap ..data");
    }
}

// === the webhook process ===

/// How to start the webhook.
pub struct WebhookOptions {
    /// `--policy`; `None` serves the embedded default policy.
    pub policy: Option<PathBuf>,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        WebhookOptions {
            policy: Some(repo().join("policies/default.yaml")),
        }
    }
}

/// A running `gpu-admission serve`.
pub struct Webhook {
    pub dir: PathBuf,
    pub port: u16,
    pub admin_port: u16,
    pub certs: CertSet,
    pub volume: SecretVolume,
    log: PathBuf,
    child: Option<Child>,
    cp: &'static ControlPlane,
    options: WebhookOptions,
}

impl Webhook {
    /// Starts the webhook with a fresh CA for the shared control plane and waits for `/readyz`.
    pub fn start(options: WebhookOptions) -> Webhook {
        Self::start_for(harness::shared(), options)
    }

    pub fn start_for(cp: &'static ControlPlane, options: WebhookOptions) -> Webhook {
        let dir = cp.dir().join(format!("webhook-{}", unique()));
        fs::create_dir_all(&dir).expect("mkdir webhook dir");
        let certs = CertSet::new_ca(&dir.join("ca"));
        let volume = SecretVolume::new(&dir.join("tls"), &certs.cert_pem(), &certs.key_pem());
        let mut w = Webhook {
            log: dir.join("webhook.log"),
            cp,
            dir,
            port: 0,
            admin_port: 0,
            certs,
            volume,
            child: None,
            options,
        };
        w.spawn();
        w
    }

    /// Starts the process again on the same ports and certificates (after [`Webhook::stop`]).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "webhook is still running");
        self.spawn();
    }

    fn spawn(&mut self) {
        if self.port == 0 {
            self.port = free_port();
            self.admin_port = free_port();
        }
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open webhook log");
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .arg(format!("--listen=127.0.0.1:{}", self.port))
            .arg(format!("--admin-listen=127.0.0.1:{}", self.admin_port))
            .arg(format!("--tls-cert={}", self.volume.cert_path().display()))
            .arg(format!("--tls-key={}", self.volume.key_path().display()))
            .arg("--log-format=json")
            // Directory events reload at once; polling is the fallback.
            .arg("--reload-poll-ms=500")
            .arg("--shutdown-grace-ms=2000")
            .env("RUST_LOG", "info")
            .env_remove("GPU_ADMISSION_POLICY")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .process_group(0);
        if let Some(p) = &self.options.policy {
            cmd.arg(format!("--policy={}", p.display()));
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {BIN} serve: {e}"));
        // The harness' reaper kills it once the test process is gone (even on SIGKILL).
        self.cp
            .register_process_group(child.id())
            .expect("register with the reaper");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("gpu-admission serve exited early ({status}):\n{}", self.log_tail(40));
            }
            if let Ok((200, _)) = self.admin_get("/readyz") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "gpu-admission serve not ready within {WAIT:?}:\n{}",
                self.log_tail(40)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, and wait until the process is gone (the ports are then closed).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let _ = Command::new("sh")
            .args(["-c", r#"kill -s TERM "$1""#, "kill"])
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + WAIT;
        while !matches!(child.try_wait(), Ok(Some(_))) {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// GET on the admin port over HTTP/1.0: (status, body).
    pub fn admin_get(&self, path: &str) -> std::io::Result<(u16, String)> {
        let mut c = TcpStream::connect((Ipv4Addr::LOCALHOST, self.admin_port))?;
        c.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(c, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
        let mut buf = String::new();
        c.read_to_string(&mut buf)?;
        let (head, body) = buf.split_once("\r\n\r\n").unwrap_or((&buf, ""));
        let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        Ok((status, body.to_string()))
    }

    /// The `/metrics` text.
    pub fn metrics(&self) -> String {
        match self.admin_get("/metrics") {
            Ok((200, body)) => body,
            other => panic!("GET /metrics: {other:?}\n{}", self.log_tail(20)),
        }
    }

    /// Sum of the samples of `name` whose labels include every `key="value"` in `labels`.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric_sum(&self.metrics(), name, labels)
    }

    /// The whole log (JSON lines).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_tail(&self, n: usize) -> String {
        harness::tail(&self.log, n)
    }

    /// The `fields` of every review log line (`"message": "review"`).
    pub fn reviews(&self) -> Vec<Value> {
        self.log()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            // tracing-subscriber's JSON puts the event's fields under "fields", or at the top
            // level when flattened.
            .map(|v| v.get("fields").cloned().unwrap_or(v))
            .filter(|f| f["message"] == "review")
            .collect()
    }

    /// Reviews of the object `namespace/name`.
    pub fn reviews_of(&self, namespace: &str, name: &str) -> Vec<Value> {
        self.reviews()
            .into_iter()
            .filter(|f| f["namespace"] == namespace && f["name"] == name)
            .collect()
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sum of matching samples in a Prometheus/OpenMetrics text exposition.
pub fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
            if metric != name {
                return None;
            }
            let label_text = rest.strip_suffix('}')?;
            let all = labels
                .iter()
                .all(|(k, v)| label_text.split(',').any(|kv| kv == format!("{k}=\"{v}\"")));
            all.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

// === webhook configurations ===

/// `deploy/overlays/local` rendered by kubectl's kustomize, pointed at `port` and `ca_pem`:
/// the `MutatingWebhookConfiguration` and `ValidatingWebhookConfiguration` (and the
/// PriorityClasses) as one JSON `List`.
pub fn render_local_overlay(port: u16, ca_pem: &str) -> Value {
    let overlay = repo().join("deploy/overlays/local");
    let out = harness::kubectl(&["kustomize", s(&overlay)], None);
    out.assert_success();
    let yaml = out
        .stdout
        .replace("https://127.0.0.1:8443/", &format!("https://127.0.0.1:{port}/"))
        .replace("${CA_BUNDLE}", &ca_bundle(ca_pem));
    let items = yaml_documents(&yaml);
    assert!(
        items.iter().any(|i| i["kind"] == "MutatingWebhookConfiguration")
            && items.iter().any(|i| i["kind"] == "ValidatingWebhookConfiguration"),
        "the local overlay rendered no webhook configurations:\n{yaml}"
    );
    json!({"apiVersion": "v1", "kind": "List", "items": items})
}

/// Every non-empty document of a multi-document YAML stream, as JSON.
pub fn yaml_documents(yaml: &str) -> Vec<Value> {
    use serde::Deserialize as _;
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|doc| Value::deserialize(doc).expect("YAML document"))
        .filter(|v| !v.is_null())
        .collect()
}

/// The items of `list` with `kind`.
pub fn items_of_kind<'a>(list: &'a mut Value, kind: &str) -> impl Iterator<Item = &'a mut Value> {
    let kind = kind.to_string();
    list["items"]
        .as_array_mut()
        .expect("List items")
        .iter_mut()
        .filter(move |i| i["kind"] == kind)
}

/// Sets `caBundle` of every webhook in `list`.
pub fn set_ca_bundle(list: &mut Value, ca_pem: &str) {
    let bundle = ca_bundle(ca_pem);
    for kind in ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"] {
        for cfg in items_of_kind(list, kind) {
            for w in cfg["webhooks"].as_array_mut().expect("webhooks") {
                w["clientConfig"]["caBundle"] = json!(bundle);
            }
        }
    }
}

/// Sets the port of every webhook URL in `list`.
pub fn set_port(list: &mut Value, port: u16) {
    for kind in ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"] {
        for cfg in items_of_kind(list, kind) {
            for w in cfg["webhooks"].as_array_mut().expect("webhooks") {
                let url = w["clientConfig"]["url"].as_str().expect("url").to_string();
                let path = url.splitn(4, '/').nth(3).unwrap_or_default();
                w["clientConfig"]["url"] = json!(format!("https://127.0.0.1:{port}/{path}"));
            }
        }
    }
}

/// Applies webhook configurations (a `List`, e.g. from [`render_local_overlay`]) and returns once
/// the API server admits with exactly this version of both.
///
/// The API server picks configurations up from a watch, a moment after they are stored. To know
/// when, without sleeping, each configuration gets one extra webhook unique to this call: it
/// matches only ConfigMaps labelled with this call's marker and calls a closed port with
/// `failurePolicy: Fail`. A dry-run create of such a ConfigMap fails naming that webhook exactly
/// when the API server uses this version of the configuration, which replaces the previous one as
/// a whole (its `caBundle`, URLs and rules included).
pub fn apply_webhook_configurations(list: &Value) {
    let marker = format!("{}-{}", std::process::id(), unique());
    let mut list = list.clone();
    let mut probes = Vec::new();
    for (kind, tag) in [
        ("MutatingWebhookConfiguration", "m"),
        ("ValidatingWebhookConfiguration", "v"),
    ] {
        for cfg in items_of_kind(&mut list, kind) {
            let name = format!("{tag}-{marker}.probe.e2e.gpu-admission.io");
            let label = format!("{tag}-{marker}");
            cfg["webhooks"].as_array_mut().expect("webhooks").push(json!({
                "name": name,
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "timeoutSeconds": 1,
                "failurePolicy": "Fail",
                "clientConfig": {"url": "https://127.0.0.1:1/probe"},
                "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                           "resources": ["configmaps"]}],
                "objectSelector": {"matchLabels": {"gpu-admission-e2e/probe": label}},
            }));
            probes.push((name, label));
        }
    }
    assert!(!probes.is_empty(), "no webhook configuration in {list}");
    let out = harness::kubectl(&["apply", "-f", "-"], Some(&list.to_string()));
    out.assert_success();
    // What is stored is exactly what was applied (earlier probes are pruned by the apply).
    for kind in ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"] {
        for cfg in items_of_kind(&mut list, kind) {
            let name = cfg["metadata"]["name"].as_str().expect("name").to_string();
            let stored = harness::kubectl(&["get", kind, &name, "-o", "json"], None)
                .assert_success()
                .json();
            let names = |c: &Value| -> Vec<Value> {
                c["webhooks"]
                    .as_array()
                    .expect("webhooks")
                    .iter()
                    .map(|w| w["name"].clone())
                    .collect()
            };
            assert_eq!(names(&stored), names(cfg), "{kind}/{name} as stored");
        }
    }
    for (name, label) in probes {
        let cm = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "probe", "namespace": "default",
                         "labels": {"gpu-admission-e2e/probe": label}},
        })
        .to_string();
        let deadline = Instant::now() + WAIT;
        loop {
            let out = harness::kubectl(&["create", "--dry-run=server", "-f", "-"], Some(&cm));
            if !out.success() && out.stderr.contains(&format!("failed calling webhook \"{name}\"")) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the API server did not pick up webhook {name} within {WAIT:?}; last attempt: {out:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Deletes both webhook configurations (and waits until the API server stopped calling them).
pub fn delete_webhook_configurations() {
    harness::kubectl(
        &[
            "delete",
            "mutatingwebhookconfiguration,validatingwebhookconfiguration",
            "gpu-admission",
            "--ignore-not-found",
        ],
        None,
    )
    .assert_success();
}

/// Creates namespaces (idempotent).
pub fn ensure_namespaces(names: &[&str]) {
    for ns in names {
        let doc = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}).to_string();
        harness::kubectl(&["apply", "-f", "-"], Some(&doc)).assert_success();
    }
}

// === assertions on kubectl output ===

/// Asserts exit code, and that stdout / stderr are exactly the given lines (order kept).
#[track_caller]
pub fn assert_output(out: &Output, code: i32, stdout: &[&str], stderr: &[&str]) {
    let lines = |s: &str| s.lines().map(str::to_string).collect::<Vec<_>>();
    let want = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(
        out.code == code && lines(&out.stdout) == want(stdout) && lines(&out.stderr) == want(stderr),
        "kubectl output differs\n--- want (code {code}) stdout:\n{}\n--- stderr:\n{}\n--- got (code {}) stdout:\n{}\n--- stderr:\n{}",
        stdout.join("\n"),
        stderr.join("\n"),
        out.code,
        out.stdout,
        out.stderr
    );
}

/// The `kubectl get` NotFound answer for `resource "name"`.
#[track_caller]
pub fn assert_not_found(out: &Output, resource: &str, name: &str) {
    assert_output(
        out,
        1,
        &[],
        &[&format!(
            "Error from server (NotFound): {resource} \"{name}\" not found"
        )],
    );
}
