//! The real `gpu-admission serve` behind the e2e control plane ([`super::harness`]).
//!
//! - [`Webhook::start`] runs `gpu-admission serve` ([`bin`]) on free 127.0.0.1 ports, its
//!   serving certificate published the way the kubelet publishes a Secret volume (`tls.crt` →
//!   `..data/tls.crt`, `..data` → a timestamped directory, swapped atomically), so rotations in
//!   the tests are the ones cert-manager causes in a cluster. With [`WebhookOptions::cluster`]
//!   it runs `serve --cluster --kubeconfig FILE`. Its process group is handed to its own
//!   [`Reaper`], so it dies with the test process even on SIGKILL.
//! - [`render_local_overlay`] renders `deploy/overlays/local` with kubectl's kustomize and points
//!   it at a port and CA; [`apply_webhook_configurations`] applies it and waits, without sleeping,
//!   until the API server uses exactly that version (see [`apply_webhook_configurations`]).
//! - Failures panic with the webhook's and the API server's log tails: a component that cannot
//!   start fails the test, never skips it.

use std::fs;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use super::harness::{self, Output, free_port, scrub_proxy};
use super::reaper::{Reaper, kill_group};
pub use crate::paths::{corpus, fixture, repo, s};
use crate::wait::{Wait, unique_name};

/// The binary under test: `$GPU_ADMISSION_BIN`, else `gpu-admission` in the directory of the
/// running executable (cargo's `target/<profile>/` for a tool, its parent for a test in
/// `target/<profile>/deps/`), which cargo builds for the package's integration tests.
pub fn bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("GPU_ADMISSION_BIN").filter(|v| !v.is_empty()) {
            return PathBuf::from(p);
        }
        let exe = std::env::current_exe().expect("the running executable");
        let mut dir = exe.parent().expect("its directory").to_path_buf();
        if dir.ends_with("deps") {
            dir.pop();
        }
        dir.join("gpu-admission")
    })
}

/// Upper bound of every wait for a state change (a hang fails the test; it asserts no duration).
pub const WAIT: Duration = Duration::from_secs(60);
/// Upper bound of waits that include a watch's retry backoff (up to 30 s between retries).
pub const WAIT_BACKOFF: Duration = Duration::from_secs(90);

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
    let mut cmd = Command::new(bin());
    cmd.args(["certs", "--out"])
        .arg(dir)
        .args(["--host", "127.0.0.1", "--host", "localhost", "--valid-days"])
        .arg(days.to_string());
    if reuse_ca {
        cmd.arg("--reuse-ca");
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} certs: {e}", bin().display()));
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
#[derive(Clone, Debug)]
pub struct WebhookOptions {
    /// `--policy`; `None` serves the embedded default policy.
    pub policy: Option<PathBuf>,
    /// `--cluster --kubeconfig <this>`: decide with the cluster's facts.
    pub kubeconfig: Option<PathBuf>,
    /// Where its files go (certificates, log); default: the shared control plane's directory.
    pub parent: Option<PathBuf>,
    /// Wait for `/readyz` before [`Webhook::start`] returns (default).
    pub wait_ready: bool,
    /// More `serve` flags (e.g. `--native-params`).
    pub args: Vec<String>,
    /// `--tls-cert`/`--tls-key` of the published Secret volume (default); off for
    /// `--self-managed-certs`, which takes its pair from the API.
    pub tls_files: bool,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        WebhookOptions {
            policy: Some(repo().join("policies/default.yaml")),
            kubeconfig: None,
            parent: None,
            wait_ready: true,
            args: Vec::new(),
            tls_files: true,
        }
    }
}

impl WebhookOptions {
    pub fn policy(mut self, policy: &Path) -> Self {
        self.policy = Some(policy.to_path_buf());
        self
    }

    /// `serve --cluster` with this kubeconfig.
    pub fn cluster(mut self, kubeconfig: &Path) -> Self {
        self.kubeconfig = Some(kubeconfig.to_path_buf());
        self
    }

    /// Files under `parent` (which must outlive the webhook).
    pub fn under(mut self, parent: &Path) -> Self {
        self.parent = Some(parent.to_path_buf());
        self
    }

    /// One more `serve` flag.
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_string());
        self
    }

    /// No `--tls-cert`/`--tls-key` (for `--self-managed-certs`).
    pub fn without_tls_files(mut self) -> Self {
        self.tls_files = false;
        self
    }

    /// Return as soon as the process is started (e.g. to see `/readyz` answer 503 first).
    pub fn without_waiting(mut self) -> Self {
        self.wait_ready = false;
        self
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
    reaper: Reaper,
    options: WebhookOptions,
}

impl Webhook {
    /// Starts the webhook with a fresh CA and (unless told not to) waits for `/readyz`.
    pub fn start(options: WebhookOptions) -> Webhook {
        let parent = match &options.parent {
            Some(p) => p.clone(),
            None => harness::shared().dir().to_path_buf(),
        };
        let dir = parent.join(unique_name("webhook"));
        fs::create_dir_all(&dir).expect("mkdir webhook dir");
        let certs = CertSet::new_ca(&dir.join("ca"));
        let volume = SecretVolume::new(&dir.join("tls"), &certs.cert_pem(), &certs.key_pem());
        let mut w = Webhook {
            log: dir.join("webhook.log"),
            dir,
            port: free_port().expect("a free port"),
            admin_port: free_port().expect("a free port"),
            certs,
            volume,
            child: None,
            reaper: Reaper::spawn(None).expect("the webhook's reaper"),
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

    /// [`Webhook::restart`] with more `serve` flags (kept for later restarts).
    pub fn restart_with_args(&mut self, args: &[&str]) {
        self.options.args.extend(args.iter().map(|a| a.to_string()));
        self.restart();
    }

    fn spawn(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open webhook log");
        let mut cmd = Command::new(bin());
        cmd.arg("serve")
            .arg(format!("--listen=127.0.0.1:{}", self.port))
            .arg(format!("--admin-listen=127.0.0.1:{}", self.admin_port))
            .arg("--log-format=json")
            // Directory events reload at once; polling is the fallback.
            .arg("--reload-poll-ms=500")
            .arg("--shutdown-grace-ms=2000")
            .env("RUST_LOG", "info")
            .env_remove("GPU_ADMISSION_POLICY")
            .env_remove("KUBECONFIG");
        scrub_proxy(&mut cmd)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .process_group(0);
        if self.options.tls_files {
            cmd.arg(format!("--tls-cert={}", self.volume.cert_path().display()))
                .arg(format!("--tls-key={}", self.volume.key_path().display()));
        }
        if let Some(p) = &self.options.policy {
            cmd.arg(format!("--policy={}", p.display()));
        }
        if let Some(k) = &self.options.kubeconfig {
            cmd.arg("--cluster").arg(format!("--kubeconfig={}", k.display()));
        }
        cmd.args(&self.options.args);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} serve: {e}", bin().display()));
        // The reaper kills it once the test process is gone (even on SIGKILL).
        self.reaper.register(child.id()).expect("register with the reaper");
        self.child = Some(child);
        if self.options.wait_ready {
            self.wait_ready();
        }
    }

    /// Panics (with the log) if the process has exited.
    #[track_caller]
    pub fn assert_running(&mut self) {
        if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
            panic!("gpu-admission serve exited ({status}):\n{}", self.log_tail(40));
        }
    }

    /// Waits for `/readyz` 200 (with `--cluster`, that includes the caches' first sync).
    #[track_caller]
    pub fn wait_ready(&mut self) {
        Wait::new("gpu-admission serve ready", WAIT_BACKOFF).until(|| {
            self.assert_running();
            match self.admin_get("/readyz") {
                Ok((200, _)) => Ok(()),
                other => Err(format!("{other:?}\n{}", self.log_tail(40))),
            }
        })
    }

    /// SIGTERM, and wait until the process is gone (the ports are then closed).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&mut child, WAIT);
        }
    }

    /// The process id (the same throughout: the webhook was not restarted).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the webhook is running").id()
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
    #[track_caller]
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

    /// One `{resource="..."}` sample of a cluster metric; panics if there is none.
    #[track_caller]
    pub fn cluster_metric(&self, name: &str, resource: &str) -> f64 {
        let text = self.metrics();
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("{name}{{resource=\"{resource}\"}}"))),
            "/metrics has no {name}{{resource=\"{resource}\"}}:\n{text}"
        );
        metric_sum(&text, name, &[("resource", resource)])
    }

    /// POSTs a dry-run CREATE review of `object` to `/mutate` or `/validate` over HTTPS, as the
    /// API server would; returns its `response`.
    #[track_caller]
    pub fn review(&self, endpoint: &str, object: &Value) -> Value {
        let body = crate::Review::create(object)
            .uid(&unique_name("e2e-cluster"))
            .user("e2e")
            .dry_run(true)
            .build()
            .to_string();
        let (status, bytes) = https_post(self.port, &self.certs.ca_pem(), endpoint, body.as_bytes())
            .unwrap_or_else(|e| panic!("POST {endpoint}: {e}\n{}", self.log_tail(20)));
        let text = String::from_utf8_lossy(&bytes);
        assert_eq!(status, 200, "POST {endpoint}: HTTP {status}: {text}");
        let review: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("POST {endpoint}: {e}: {text}"));
        review["response"].clone()
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

/// HTTPS POST (HTTP/1.0, so the body is not chunked) trusting `ca_pem`: (status, body).
pub fn https_post(port: u16, ca_pem: &str, path: &str, body: &[u8]) -> Result<(u16, Vec<u8>), String> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(cert.map_err(|e| format!("CA PEM: {e}"))?)
            .map_err(|e| format!("CA: {e}"))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::IpAddress(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST).into());
    let conn = rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let sock = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).map_err(|e| format!("connect: {e}"))?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let head = format!(
        "POST {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).map_err(|e| format!("write: {e}"))?;
    tls.write_all(body).map_err(|e| format!("write: {e}"))?;
    tls.flush().map_err(|e| format!("flush: {e}"))?;
    let mut buf = Vec::new();
    if let Err(e) = tls.read_to_end(&mut buf) {
        // A peer that closes without close_notify still sent the whole response.
        if e.kind() != std::io::ErrorKind::UnexpectedEof || buf.is_empty() {
            return Err(format!("read: {e}"));
        }
    }
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no HTTP head in {:?}", String::from_utf8_lossy(&buf)))?;
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok((status, buf[split + 4..].to_vec()))
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
    let marker = unique_name(&std::process::id().to_string());
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
        Wait::new(format!("the API server picks up webhook {name}"), WAIT).until(|| {
            let out = harness::kubectl(&["create", "--dry-run=server", "-f", "-"], Some(&cm));
            if !out.success() && out.stderr.contains(&format!("failed calling webhook \"{name}\"")) {
                Ok(())
            } else {
                Err(format!("{out:?}"))
            }
        });
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
