//! Support for tests/e2e_cluster.rs: the shared control plane and webhook, cluster objects,
//! workloads, and reading answers. The scenarios live in the test file.

use super::harness::{ControlPlane, Output, kubectl};
use super::webhook::{BIN, CertSet, s};
use super::{harness, webhook};
use base64::Engine as _;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// Upper bound of every wait for the cluster and the caches to agree.
pub(crate) const WAIT: Duration = Duration::from_secs(30);
/// Upper bound for waits that include a watch's retry backoff (up to 30 s between retries).
pub(crate) const WAIT_BACKOFF: Duration = Duration::from_secs(90);

pub(crate) const GPU_NODES: [&str; 2] = ["gpu-node-1", "gpu-node-2"];
pub(crate) const CPU_NODE: &str = "cpu-node-1";
pub(crate) const PROFILE_LABEL: &str = "nvidia.com/device-plugin.config";
/// The namespace of the webhook and its ServiceAccount (deploy/base).
pub(crate) const SA_NAMESPACE: &str = "gpu-admission";
/// Namespaces of the scenarios; `team-a` defaults to medium-priority, `ai` to high-priority.
pub(crate) const NAMESPACES: &[&str] = &["gpu-operator", "gpu-admission", "ai", "team-a", "vision", "coral-lab"];

// === the shared environment ===

/// Serialises the scenarios that change the shared cluster objects.
pub(crate) fn lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// The webhook on the shared control plane, running as the deploy/ ServiceAccount, registered.
pub(crate) fn env() -> &'static ClusterWebhook {
    static ENV: OnceLock<ClusterWebhook> = OnceLock::new();
    ENV.get_or_init(|| {
        harness::shared();
        webhook::ensure_namespaces(NAMESPACES);
        ensure_rbac();
        // The seed's PriorityClasses (deploy/webhooks), as a cluster has them before the webhook.
        kubectl(
            &[
                "apply",
                "-f",
                s(&webhook::repo().join("deploy/webhooks/priorityclasses.yaml")),
            ],
            None,
        )
        .assert_success();
        baseline();
        let kubeconfig = sa_kubeconfig(harness::shared(), "gpu-admission", "sa-gpu-admission.kubeconfig");
        let mut w = ClusterWebhook::spawn(harness::shared().dir(), &kubeconfig, &policy_file());
        w.wait_ready();
        let configs = webhook::render_local_overlay(w.port, &w.certs.ca_pem());
        webhook::apply_webhook_configurations(&configs);
        w
    })
}

/// The ServiceAccount, ClusterRole and ClusterRoleBinding of deploy/base/rbac.yaml, in the
/// webhook's namespace (as kustomize renders them).
pub(crate) fn ensure_rbac() {
    webhook::ensure_namespaces(&[SA_NAMESPACE]);
    let rbac = webhook::repo().join("deploy/base/rbac.yaml");
    kubectl(&["apply", "-n", SA_NAMESPACE, "-f", s(&rbac)], None).assert_success();
}

/// The default policy with `cluster.defaultConfig: any` (the GPU Operator's
/// `devicePlugin.config.default`, as NVIDIA's time-slicing guide sets it), in a new file.
pub(crate) fn policy_file() -> PathBuf {
    policy_file_with("fallback")
}

/// [`policy_file`] with `cluster.unsyncedAction: <unsynced>`.
pub(crate) fn policy_file_with(unsynced: &str) -> PathBuf {
    let text = fs::read_to_string(webhook::repo().join("policies/default.yaml")).expect("read default policy");
    let edits = [
        (
            "  devicePluginConfig: {namespace: gpu-operator, name: time-slicing-config}\n",
            "  devicePluginConfig: {namespace: gpu-operator, name: time-slicing-config}\n  defaultConfig: any\n"
                .to_string(),
        ),
        (
            "  unsyncedAction: fallback\n",
            format!("  unsyncedAction: {unsynced}\n"),
        ),
    ];
    let mut text = text;
    for (anchor, replacement) in edits {
        assert!(text.contains(anchor), "policies/default.yaml has no `{anchor}`");
        text = text.replace(anchor, &replacement);
    }
    let path = harness::shared()
        .dir()
        .join(format!("cluster-policy-{}.yaml", unique()));
    fs::write(&path, text).expect("write policy");
    path
}

/// Creates ServiceAccount `gpu-admission/<sa>` if it does not exist.
pub(crate) fn ensure_service_account(cp: &ControlPlane, sa: &str) {
    if !cp
        .kubectl(&["get", "serviceaccount", sa, "-n", SA_NAMESPACE], None)
        .success()
    {
        cp.kubectl(&["create", "serviceaccount", sa, "-n", SA_NAMESPACE], None)
            .assert_success();
    }
}

/// A kubeconfig that authenticates as ServiceAccount `gpu-admission/<sa>` with a token from the
/// TokenRequest API.
pub(crate) fn sa_kubeconfig(cp: &ControlPlane, sa: &str, file: &str) -> PathBuf {
    let token = cp.kubectl(&["create", "token", sa, "-n", SA_NAMESPACE, "--duration=2h"], None);
    token.assert_success();
    let path = cp.dir().join(file);
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: e2e\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: {sa}\n  user:\n    token: {}\ncontexts:\n- name: {sa}\n  context:\n    cluster: e2e\n    user: {sa}\ncurrent-context: {sa}\n",
        cp.server_url(),
        cp.ca_cert_path().display(),
        token.stdout.trim()
    );
    fs::write(&path, text).expect("write kubeconfig");
    path
}

// === cluster objects ===

/// A device-plugin config with time-slicing.
pub(crate) fn device_plugin_config(replicas: u32, fail_requests_greater_than_one: bool) -> String {
    format!(
        "version: v1\nsharing:\n  timeSlicing:\n    failRequestsGreaterThanOne: {fail_requests_greater_than_one}\n    resources:\n    - name: nvidia.com/gpu\n      replicas: {replicas}\n"
    )
}

pub(crate) fn config_map(data: &[(&str, String)]) -> Value {
    let data: BTreeMap<&str, &String> = data.iter().map(|(k, v)| (*k, v)).collect();
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "time-slicing-config", "namespace": "gpu-operator"},
        "data": data,
    })
}

/// `kubectl apply` of one object (JSON).
pub(crate) fn apply(cp: &ControlPlane, object: &Value) {
    cp.kubectl(&["apply", "-f", "-"], Some(&object.to_string()))
        .assert_success();
}

/// Creates or updates a node with exactly these labels (besides kubernetes.io/hostname) and sets
/// its allocatable and capacity through the status subresource, as the kubelet would.
pub(crate) fn set_node(cp: &ControlPlane, name: &str, labels: &[(&str, &str)], allocatable: &[(&str, &str)]) {
    let mut all: BTreeMap<&str, &str> = labels.iter().copied().collect();
    all.insert("kubernetes.io/hostname", name);
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}});
    if !cp.kubectl(&["get", "node", name, "-o", "name"], None).success() {
        cp.kubectl(&["create", "-f", "-"], Some(&node.to_string()))
            .assert_success();
    }
    // A merge patch with null removes a label: first drop every label we do not want.
    let current = cp
        .kubectl(&["get", "node", name, "-o", "json"], None)
        .assert_success()
        .json();
    let mut patch_labels = serde_json::Map::new();
    if let Some(have) = current["metadata"]["labels"].as_object() {
        for key in have.keys() {
            patch_labels.insert(key.clone(), Value::Null);
        }
    }
    for (k, v) in &all {
        patch_labels.insert((*k).to_string(), json!(v));
    }
    let patch = json!({"metadata": {"labels": patch_labels}}).to_string();
    cp.kubectl(&["patch", "node", name, "--type=merge", "-p", &patch], None)
        .assert_success();
    set_allocatable(cp, name, allocatable);
}

pub(crate) fn set_allocatable(cp: &ControlPlane, name: &str, allocatable: &[(&str, &str)]) {
    let mut resources: BTreeMap<&str, &str> = [("cpu", "32"), ("memory", "128Gi"), ("pods", "110")].into();
    resources.extend(allocatable.iter().copied());
    let patch = json!({"status": {"allocatable": resources, "capacity": resources}}).to_string();
    cp.kubectl(
        &[
            "patch",
            "node",
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            &patch,
        ],
        None,
    )
    .assert_success();
}

/// Deletes a PriorityClass (if any) and creates it with `value` (the value is immutable).
pub(crate) fn recreate_priority_class(cp: &ControlPlane, name: &str, value: i64, preemption_policy: &str) {
    cp.kubectl(&["delete", "priorityclass", name, "--ignore-not-found"], None)
        .assert_success();
    apply(
        cp,
        &json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name},
                "value": value, "preemptionPolicy": preemption_policy, "globalDefault": false}),
    );
}

/// The value of a PriorityClass, if it exists.
pub(crate) fn priority_class_value(cp: &ControlPlane, name: &str) -> Option<i64> {
    let out = cp.kubectl(&["get", "priorityclass", name, "-o", "json"], None);
    out.success().then(|| out.json()["value"].as_i64()).flatten()
}

/// The state every locked scenario starts from: two GPU nodes with 8 `nvidia.com/gpu` each (2
/// GPUs x 4 slices) and no profile label, a CPU node (its GPUs do not count: no GPU label),
/// the ConfigMap with key `any` at 4 replicas, the seed's PriorityClass values, no Coral label.
pub(crate) fn baseline() {
    let cp = harness::shared();
    for node in GPU_NODES {
        set_node(cp, node, &[("node-type", "gpu-worker")], &[("nvidia.com/gpu", "8")]);
    }
    set_node(cp, CPU_NODE, &[("node-type", "cpu")], &[("nvidia.com/gpu", "64")]);
    apply(cp, &config_map(&[("any", device_plugin_config(4, false))]));
    for (name, value) in [("high-priority", 1_000_000), ("medium-priority", 100_000)] {
        if priority_class_value(cp, name) != Some(value) {
            recreate_priority_class(cp, name, value, "PreemptLowerPriority");
        }
    }
    for ns in ["vision", "coral-lab"] {
        kubectl(&["label", "namespace", ns, "gpu-admission/coral-", "--overwrite"], None).assert_success();
    }
}

// === workloads ===

pub(crate) fn unique() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A GPU container asking for `resources` (limits).
pub(crate) fn container(name: &str, resources: &[(&str, &str)]) -> Value {
    let limits: BTreeMap<&str, &str> = resources.iter().copied().collect();
    json!({"name": name, "image": "nvcr.io/nvidia/k8s/cuda-sample:vectoradd-cuda12.5.0",
           "resources": {"limits": limits}})
}

/// A pod spec carrying everything the mutating webhook would add (placement, toleration, class).
pub(crate) fn complete_spec(containers: Vec<Value>, class: &str) -> Value {
    json!({
        "restartPolicy": "Never",
        "priorityClassName": class,
        "nodeSelector": {"node-type": "gpu-worker"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "containers": containers,
    })
}

pub(crate) fn pod(name: &str, namespace: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace}, "spec": spec})
}

/// A complete GPU pod (medium-priority) asking for `slices` of nvidia.com/gpu.
pub(crate) fn slices_pod(namespace: &str, slices: u32) -> Value {
    let name = format!("slices-{slices}-{}", unique());
    let spec = complete_spec(
        vec![container("cuda", &[("nvidia.com/gpu", &slices.to_string())])],
        "medium-priority",
    );
    pod(&name, namespace, spec)
}

pub(crate) fn deployment(name: &str, namespace: &str, mut spec: Value) -> Value {
    // A Deployment's pods restart: `Always` (the default) is the only value it accepts.
    spec.as_object_mut().expect("spec").remove("restartPolicy");
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": spec}},
    })
}

/// A pod mounting the Coral USB TPU (`/dev/bus/usb`); no GPU.
pub(crate) fn coral_pod(namespace: &str) -> Value {
    let name = format!("coral-{}", unique());
    pod(
        &name,
        namespace,
        json!({
            "restartPolicy": "Never",
            "containers": [{"name": "tpu", "image": "gcr.io/coral-project/edgetpu:latest",
                            "volumeMounts": [{"name": "usb", "mountPath": "/dev/bus/usb"}]}],
            "volumes": [{"name": "usb", "hostPath": {"path": "/dev/bus/usb"}}],
        }),
    )
}

/// `kubectl create --dry-run=server` of one object through the API server (and so the webhooks).
pub(crate) fn dry_run(object: &Value) -> Output {
    kubectl(&["create", "--dry-run=server", "-f", "-"], Some(&object.to_string()))
}

/// Polls `attempt` until it returns `Ok`, for at most `bound`; panics with the last `Err` and the
/// webhook's log tail.
#[track_caller]
pub(crate) fn eventually<T>(
    what: &str,
    bound: Duration,
    w: &ClusterWebhook,
    mut attempt: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + bound;
    loop {
        match attempt() {
            Ok(v) => return v,
            Err(last) if Instant::now() > deadline => panic!(
                "{what}: not within {bound:?}; last seen:\n{last}\n--- webhook log (tail) ---\n{}",
                w.log_tail(30)
            ),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Waits until a dry-run create of `object` is admitted; returns kubectl's output.
#[track_caller]
pub(crate) fn until_admitted(w: &ClusterWebhook, what: &str, object: &Value) -> Output {
    eventually(what, WAIT, w, || {
        let out = dry_run(object);
        if out.success() {
            Ok(out)
        } else {
            Err(format!("{out:?}"))
        }
    })
}

/// Waits until a dry-run create of `object` is denied by our webhook with `code`; returns stderr.
#[track_caller]
pub(crate) fn until_denied(w: &ClusterWebhook, what: &str, object: &Value, code: &str) -> String {
    eventually(what, WAIT, w, || {
        let out = dry_run(object);
        let ours = out.stderr.contains("denied the request: gpu-admission:");
        if !out.success() && ours && out.stderr.contains(&format!("[{code}]")) {
            Ok(out.stderr)
        } else {
            Err(format!("{out:?}"))
        }
    })
}

// === the webhook process ===

pub(crate) fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// A running `gpu-admission serve --cluster --kubeconfig FILE`.
pub(crate) struct ClusterWebhook {
    pub(crate) port: u16,
    pub(crate) admin_port: u16,
    pub(crate) certs: CertSet,
    pub(crate) log: PathBuf,
    pub(crate) child: Child,
    /// Kills the webhook's process group once the test process is gone (even on SIGKILL).
    pub(crate) reaper: Child,
}

impl ClusterWebhook {
    /// Starts the webhook (files under `parent`); does not wait for readiness.
    pub(crate) fn spawn(parent: &Path, kubeconfig: &Path, policy: &Path) -> ClusterWebhook {
        let dir = parent.join(format!("cluster-webhook-{}", unique()));
        fs::create_dir_all(&dir).expect("mkdir webhook dir");
        let certs = CertSet::new_ca(&dir);
        let (port, admin_port) = (free_port(), free_port());
        let log_path = dir.join("webhook.log");
        let log = fs::File::create(&log_path).expect("create webhook log");
        let child = Command::new(BIN)
            .arg("serve")
            .arg(format!("--listen=127.0.0.1:{port}"))
            .arg(format!("--admin-listen=127.0.0.1:{admin_port}"))
            .arg(format!("--tls-cert={}", dir.join("tls.crt").display()))
            .arg(format!("--tls-key={}", dir.join("tls.key").display()))
            .arg(format!("--policy={}", policy.display()))
            .arg("--cluster")
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .arg("--log-format=json")
            .arg("--shutdown-grace-ms=1000")
            .env("RUST_LOG", "info")
            .env_remove("GPU_ADMISSION_POLICY")
            .env_remove("KUBECONFIG")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BIN} serve --cluster: {e}"));
        let script = r#"trap '' INT TERM HUP
while kill -0 "$1" 2>/dev/null; do sleep 1; done
kill -s KILL -- "-$2" 2>/dev/null"#;
        let reaper = Command::new("sh")
            .args(["-c", script, "cluster-webhook-reaper"])
            .arg(std::process::id().to_string())
            .arg(child.id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn reaper");
        ClusterWebhook {
            port,
            admin_port,
            certs,
            log: log_path,
            child,
            reaper,
        }
    }

    /// Panics (with the log) if the process has exited.
    #[track_caller]
    pub(crate) fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "gpu-admission serve --cluster exited ({status}):\n{}",
                self.log_tail(40)
            );
        }
    }

    /// Waits for `/readyz` 200.
    #[track_caller]
    pub(crate) fn wait_ready(&mut self) {
        let deadline = Instant::now() + WAIT_BACKOFF;
        loop {
            self.assert_running();
            let got = self.admin_get("/readyz");
            if matches!(got, Ok((200, _))) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "serve --cluster not ready within {WAIT_BACKOFF:?} (last: {got:?}):\n{}",
                self.log_tail(40)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn log_tail(&self, n: usize) -> String {
        harness::tail(&self.log, n)
    }

    /// GET on the admin port over HTTP/1.0: (status, body).
    pub(crate) fn admin_get(&self, path: &str) -> std::io::Result<(u16, String)> {
        let mut c = TcpStream::connect((Ipv4Addr::LOCALHOST, self.admin_port))?;
        c.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(c, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
        let mut buf = String::new();
        c.read_to_string(&mut buf)?;
        let (head, body) = buf.split_once("\r\n\r\n").unwrap_or((&buf, ""));
        let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        Ok((status, body.to_string()))
    }

    #[track_caller]
    pub(crate) fn metrics(&self) -> String {
        match self.admin_get("/metrics") {
            Ok((200, body)) => body,
            other => panic!("GET /metrics: {other:?}\n{}", self.log_tail(20)),
        }
    }

    /// One `{resource="..."}` sample of a cluster metric.
    #[track_caller]
    pub(crate) fn cluster_metric(&self, name: &str, resource: &str) -> f64 {
        let text = self.metrics();
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("{name}{{resource=\"{resource}\"}}"))),
            "/metrics has no {name}{{resource=\"{resource}\"}}:\n{text}"
        );
        webhook::metric_sum(&text, name, &[("resource", resource)])
    }

    /// POSTs an AdmissionReview to `/mutate` or `/validate` over HTTPS; returns its `response`.
    #[track_caller]
    pub(crate) fn review(&self, endpoint: &str, object: &Value) -> Value {
        let namespace = object["metadata"]["namespace"].as_str().unwrap_or("default");
        let body = admission_review(object, namespace).to_string();
        let (status, bytes) = https_post(self.port, &self.certs.ca_pem(), endpoint, body.as_bytes())
            .unwrap_or_else(|e| panic!("POST {endpoint}: {e}\n{}", self.log_tail(20)));
        let text = String::from_utf8_lossy(&bytes);
        assert_eq!(status, 200, "POST {endpoint}: HTTP {status}: {text}");
        let review: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("POST {endpoint}: {e}: {text}"));
        review["response"].clone()
    }
}

impl Drop for ClusterWebhook {
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .args(["-c", r#"kill -s TERM "$1" 2>/dev/null"#, "kill"])
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !matches!(self.child.try_wait(), Ok(Some(_))) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = self.reaper.kill();
        let _ = self.reaper.wait();
    }
}

/// An AdmissionReview v1 request (CREATE) for `object`, as the API server sends it.
pub(crate) fn admission_review(object: &Value, namespace: &str) -> Value {
    let api_version = object["apiVersion"].as_str().unwrap_or("v1");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let kind = object["kind"].as_str().unwrap_or("Pod");
    let resource = format!("{}s", kind.to_ascii_lowercase());
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": format!("e2e-cluster-{}", unique()),
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": resource},
            "requestKind": {"group": group, "version": version, "kind": kind},
            "requestResource": {"group": group, "version": version, "resource": resource},
            "name": object["metadata"]["name"].as_str().unwrap_or(""),
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "e2e"},
            "object": object,
            "oldObject": null,
            "dryRun": true,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    })
}

/// HTTPS POST (HTTP/1.0, so the body is not chunked) trusting `ca_pem`: (status, body).
pub(crate) fn https_post(port: u16, ca_pem: &str, path: &str, body: &[u8]) -> Result<(u16, Vec<u8>), String> {
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

// === reading answers ===

/// What a review response says, in the terms `check --output json` uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub(crate) denied: bool,
    /// Codes reported: violations (denying and warning) and fixes given as warnings.
    pub(crate) codes: BTreeSet<String>,
}

/// The code a warning starts with (`CODE: ...`, for violations and fixes alike).
pub(crate) fn warning_code(w: &str) -> Option<String> {
    let (code, _) = w.split_once(": ")?;
    code.chars()
        .all(|c| c.is_ascii_uppercase() || c == '_')
        .then(|| code.to_string())
}

/// The codes in a response: `[CODE]` in a denial's message (every violation is listed there),
/// and the warnings' codes (`warn` violations, and fixes templates' pods will get).
pub(crate) fn verdict_of(response: &Value) -> Verdict {
    let denied = response["allowed"] == false;
    let mut codes = BTreeSet::new();
    if denied {
        let message = response["status"]["message"].as_str().unwrap_or("");
        let re = regex::Regex::new(r"\[([A-Z_]+)\]").expect("regex");
        codes.extend(re.captures_iter(message).map(|c| c[1].to_string()));
    }
    let warnings = response["warnings"].as_array().into_iter().flatten();
    codes.extend(warnings.filter_map(|w| warning_code(w.as_str()?)));
    Verdict { denied, codes }
}

pub(crate) fn code_set(codes: &[&str]) -> BTreeSet<String> {
    codes.iter().map(|c| c.to_string()).collect()
}

/// The JSON patch of a `/mutate` response (empty when none).
pub(crate) fn patch_of(response: &Value) -> Value {
    match response["patch"].as_str() {
        Some(b64) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .expect("patch base64");
            serde_json::from_slice(&bytes).expect("patch JSON")
        }
        None => json!([]),
    }
}

/// The pod spec of a Pod read back from the API server.
#[track_caller]
pub(crate) fn get_pod(namespace: &str, name: &str) -> Value {
    kubectl(&["get", "pod", name, "-n", namespace, "-o", "json"], None)
        .assert_success()
        .json()
}
