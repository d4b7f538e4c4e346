//! The shared set-up of the cluster scenarios (tests/e2e_cluster.rs): the webhook running as the
//! deploy/ ServiceAccount with `--cluster`, cluster objects, workloads, and reading answers. The
//! scenarios themselves live in the test file.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use serde_json::{Value, json};

use super::harness::{self, ControlPlane, Output, kubectl};
use super::webhook::{self, Webhook, WebhookOptions, s};
pub use crate::review::patch_of;
use crate::wait::{Wait, unique_name};
use crate::{Container, Pod, Workload};

/// Upper bound of every wait for the cluster and the caches to agree.
pub const WAIT: Duration = Duration::from_secs(30);
pub use super::webhook::WAIT_BACKOFF;

pub const GPU_NODES: [&str; 2] = ["gpu-node-1", "gpu-node-2"];
pub const CPU_NODE: &str = "cpu-node-1";
pub const PROFILE_LABEL: &str = "nvidia.com/device-plugin.config";
/// The namespace of the webhook and its ServiceAccount (deploy/base).
pub const SA_NAMESPACE: &str = "gpu-admission";
/// Namespaces of the scenarios; `team-a` defaults to medium-priority, `ai` to high-priority.
pub const NAMESPACES: &[&str] = &["gpu-operator", "gpu-admission", "ai", "team-a", "vision", "coral-lab"];

// === the shared environment ===

/// What a scenario that changes the shared cluster objects (nodes, the ConfigMap,
/// PriorityClasses) starts with: the lock that serialises those scenarios (hold it to the end),
/// the registered webhook, and the shared control plane, in the [`baseline`] state.
pub fn scenario() -> (MutexGuard<'static, ()>, &'static Webhook, &'static ControlPlane) {
    let w = env();
    let guard = lock();
    baseline();
    (guard, w, harness::shared())
}

/// Serialises the scenarios that change the shared cluster objects.
pub fn lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// The webhook on the shared control plane, running as the deploy/ ServiceAccount, registered.
pub fn env() -> &'static Webhook {
    static ENV: OnceLock<Webhook> = OnceLock::new();
    ENV.get_or_init(|| {
        ensure_rbac();
        // The seed's PriorityClasses (deploy/components/priorityclasses), as a cluster has them
        // before the webhook.
        kubectl(
            &[
                "apply",
                "-f",
                s(&webhook::repo().join("deploy/components/priorityclasses/priorityclasses.yaml")),
            ],
            None,
        )
        .assert_success();
        baseline();
        let w = as_service_account("gpu-admission", &policy_file());
        let configs = webhook::render_local_overlay(w.port, &w.certs.ca_pem());
        webhook::apply_webhook_configurations(&configs);
        w
    })
}

/// `serve --cluster` on the shared control plane as ServiceAccount `gpu-admission/<sa>` (created
/// if missing) with `policy`; waits until it is ready.
pub fn as_service_account(sa: &str, policy: &Path) -> Webhook {
    Webhook::start(service_account_options(sa, policy))
}

/// The options of [`as_service_account`], for a webhook that is not ready (not waited for).
pub fn service_account_options(sa: &str, policy: &Path) -> WebhookOptions {
    let cp = harness::shared();
    webhook::ensure_namespaces(NAMESPACES);
    ensure_service_account(cp, sa);
    let kubeconfig = sa_kubeconfig(cp, sa, &format!("sa-{sa}.kubeconfig"));
    WebhookOptions::default().policy(policy).cluster(&kubeconfig)
}

/// The ServiceAccount, ClusterRole and ClusterRoleBinding of deploy/base/rbac.yaml, in the
/// webhook's namespace (as kustomize renders them), the device-plugin ConfigMap's Role and
/// RoleBinding of deploy/base/rbac-device-plugin.yaml (in gpu-operator), and the scenarios'
/// namespaces.
pub fn ensure_rbac() {
    webhook::ensure_namespaces(NAMESPACES);
    let rbac = webhook::repo().join("deploy/base/rbac.yaml");
    kubectl(&["apply", "-n", SA_NAMESPACE, "-f", s(&rbac)], None).assert_success();
    let device_plugin = webhook::repo().join("deploy/base/rbac-device-plugin.yaml");
    kubectl(&["apply", "-f", s(&device_plugin)], None).assert_success();
}

/// Binds ServiceAccount `gpu-admission/<sa>` as deploy/ binds the webhook's: the ClusterRole
/// and the device-plugin ConfigMap's Role (idempotent).
pub fn bind_like_deploy(sa: &str) {
    let subject = format!("--serviceaccount={SA_NAMESPACE}:{sa}");
    for (kind, role, ns) in [
        ("clusterrolebinding", "--clusterrole=gpu-admission", None),
        (
            "rolebinding",
            "--role=gpu-admission-device-plugin-config",
            Some("gpu-operator"),
        ),
    ] {
        let mut args = vec!["create", kind, sa, role, &subject, "--dry-run=client", "-o", "json"];
        if let Some(ns) = ns {
            args.extend(["-n", ns]);
        }
        let doc = kubectl(&args, None);
        doc.assert_success();
        kubectl(&["apply", "-f", "-"], Some(&doc.stdout)).assert_success();
    }
}

/// Removes what [`bind_like_deploy`] made (idempotent).
pub fn unbind_like_deploy(sa: &str) {
    kubectl(&["delete", "clusterrolebinding", sa, "--ignore-not-found"], None).assert_success();
    kubectl(
        &["delete", "rolebinding", sa, "-n", "gpu-operator", "--ignore-not-found"],
        None,
    )
    .assert_success();
}

/// The default policy with `cluster.defaultConfig: any` (the GPU Operator's
/// `devicePlugin.config.default`, as NVIDIA's time-slicing guide sets it), in a new file.
pub fn policy_file() -> PathBuf {
    policy_file_with("fallback")
}

/// [`policy_file`] with `cluster.unsyncedAction: <unsynced>`.
pub fn policy_file_with(unsynced: &str) -> PathBuf {
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
        .join(format!("{}.yaml", unique_name("cluster-policy")));
    fs::write(&path, text).expect("write policy");
    path
}

/// Creates ServiceAccount `gpu-admission/<sa>` if it does not exist.
pub fn ensure_service_account(cp: &ControlPlane, sa: &str) {
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
pub fn sa_kubeconfig(cp: &ControlPlane, sa: &str, file: &str) -> PathBuf {
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
pub fn device_plugin_config(replicas: u32, fail_requests_greater_than_one: bool) -> String {
    format!(
        "version: v1\nsharing:\n  timeSlicing:\n    failRequestsGreaterThanOne: {fail_requests_greater_than_one}\n    resources:\n    - name: nvidia.com/gpu\n      replicas: {replicas}\n"
    )
}

pub fn config_map(data: &[(&str, String)]) -> Value {
    let data: BTreeMap<&str, &String> = data.iter().map(|(k, v)| (*k, v)).collect();
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "time-slicing-config", "namespace": "gpu-operator"},
        "data": data,
    })
}

/// [`config_map`] with the default profile `any` at `replicas`, and a second profile, `strict`
/// (4 replicas, failRequestsGreaterThanOne), that nodes choose with [`PROFILE_LABEL`].
pub fn config_map_with_strict(replicas: u32) -> Value {
    config_map(&[
        ("any", device_plugin_config(replicas, false)),
        ("strict", device_plugin_config(4, true)),
    ])
}

/// `kubectl apply` of one object (JSON).
pub fn apply(cp: &ControlPlane, object: &Value) {
    cp.kubectl(&["apply", "-f", "-"], Some(&object.to_string()))
        .assert_success();
}

/// Creates or updates a node with exactly these labels (besides kubernetes.io/hostname) and sets
/// its allocatable and capacity through the status subresource, as the kubelet would.
pub fn set_node(cp: &ControlPlane, name: &str, labels: &[(&str, &str)], allocatable: &[(&str, &str)]) {
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

pub fn set_allocatable(cp: &ControlPlane, name: &str, allocatable: &[(&str, &str)]) {
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

/// Time-slicing at `replicas` slices per GPU: the ConfigMap's `any` profile, and every GPU
/// node's allocatable (2 GPUs each), as the device plugin re-advertises it.
pub fn set_replicas(cp: &ControlPlane, replicas: u32) {
    apply(cp, &config_map(&[("any", device_plugin_config(replicas, false))]));
    for node in GPU_NODES {
        set_allocatable(cp, node, &[("nvidia.com/gpu", &(2 * replicas).to_string())]);
    }
}

/// Deletes a PriorityClass (if any) and creates it with `value` (the value is immutable).
pub fn recreate_priority_class(cp: &ControlPlane, name: &str, value: i64, preemption_policy: &str) {
    cp.kubectl(&["delete", "priorityclass", name, "--ignore-not-found"], None)
        .assert_success();
    apply(
        cp,
        &json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name},
                "value": value, "preemptionPolicy": preemption_policy, "globalDefault": false}),
    );
}

/// The value of a PriorityClass, if it exists.
pub fn priority_class_value(cp: &ControlPlane, name: &str) -> Option<i64> {
    let out = cp.kubectl(&["get", "priorityclass", name, "-o", "json"], None);
    out.success().then(|| out.json()["value"].as_i64()).flatten()
}

/// The state every locked scenario starts from: two GPU nodes with 8 `nvidia.com/gpu` each (2
/// GPUs x 4 slices) and no profile label, a CPU node (its GPUs do not count: no GPU label),
/// the ConfigMap with key `any` at 4 replicas, the seed's PriorityClass values, no Coral label.
pub fn baseline() {
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

/// A GPU container (`cuda`, unless named otherwise) asking for `resources` in its limits.
pub fn container(name: &str, resources: &[(&str, &str)]) -> Value {
    let c = Container::new(name, "nvcr.io/nvidia/k8s/cuda-sample:vectoradd-cuda12.5.0");
    resources.iter().fold(c, |c, (r, q)| c.limit(r, *q)).build()
}

/// A pod of `containers` that runs once and carries everything the mutating webhook would add
/// (placement, toleration, `class`).
pub fn complete(containers: Vec<Value>, class: &str) -> Pod {
    containers
        .into_iter()
        .fold(Pod::new(), Pod::container)
        .restart_never()
        .complete(class)
}

/// A pod of `containers` that runs once, with nothing else set.
pub fn bare(containers: Vec<Value>) -> Pod {
    containers.into_iter().fold(Pod::new(), Pod::container).restart_never()
}

/// `template` as Pod `namespace/name`.
pub fn pod(name: &str, namespace: &str, template: Pod) -> Value {
    template.name(name).ns(namespace).build()
}

/// A complete GPU pod (medium-priority) asking for `slices` of nvidia.com/gpu.
pub fn slices_pod(namespace: &str, slices: u32) -> Value {
    complete(
        vec![container("cuda", &[("nvidia.com/gpu", &slices.to_string())])],
        "medium-priority",
    )
    .name(&unique_name(&format!("slices-{slices}")))
    .ns(namespace)
    .build()
}

/// A Deployment of one replica with this pod template (its restart policy left to the default,
/// `Always`, the only value a Deployment accepts).
pub fn deployment(name: &str, namespace: &str, template: Pod) -> Value {
    let mut spec = template.into_spec();
    spec.as_object_mut().expect("spec").remove("restartPolicy");
    Workload::deployment(name)
        .ns(namespace)
        .replicas(1)
        .template(spec)
        .build()
}

/// A pod mounting the Coral USB TPU (`/dev/bus/usb`); no GPU.
pub fn coral_pod(namespace: &str) -> Value {
    Pod::new()
        .restart_never()
        .container(Container::new("tpu", "gcr.io/coral-project/edgetpu:latest").mount("usb", "/dev/bus/usb"))
        .host_path_volume("usb", "/dev/bus/usb")
        .name(&unique_name("coral"))
        .ns(namespace)
        .build()
}

/// `kubectl create --dry-run=server` of one object through the API server (and so the webhooks).
pub fn dry_run(object: &Value) -> Output {
    kubectl(&["create", "--dry-run=server", "-f", "-"], Some(&object.to_string()))
}

/// Polls `attempt` every 200 ms until it returns `Ok`, for at most `bound`; panics with the last
/// `Err` and the webhook's log tail.
#[track_caller]
pub fn eventually<T>(what: &str, bound: Duration, w: &Webhook, attempt: impl FnMut() -> Result<T, String>) -> T {
    Wait::new(what, bound)
        .every(Duration::from_millis(200))
        .try_until(attempt)
        .unwrap_or_else(|e| panic!("{e}\n--- webhook log (tail) ---\n{}", w.log_tail(30)))
}

/// `Ok(value)` if `ok`, else `Err` with what was seen: one attempt of [`eventually`].
pub fn seen<T>(ok: bool, value: T, seen: impl std::fmt::Debug) -> Result<T, String> {
    if ok { Ok(value) } else { Err(format!("{seen:?}")) }
}

/// Waits until a dry-run create of `object` is admitted; returns kubectl's output.
#[track_caller]
pub fn until_admitted(w: &Webhook, what: &str, object: &Value) -> Output {
    eventually(what, WAIT, w, || {
        let out = dry_run(object);
        seen(out.success(), out.clone(), &out)
    })
}

/// Waits until a dry-run create of `object` is denied by our webhook with `code`; returns stderr.
#[track_caller]
pub fn until_denied(w: &Webhook, what: &str, object: &Value, code: &str) -> String {
    eventually(what, WAIT, w, || {
        let out = dry_run(object);
        let ours = out.stderr.contains("denied the request: gpu-admission:");
        seen(
            !out.success() && ours && out.stderr.contains(&format!("[{code}]")),
            out.stderr.clone(),
            &out,
        )
    })
}

// === reading answers ===

/// What a review response says, in the terms `check --output json` uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub denied: bool,
    /// Codes reported: violations (denying and warning) and fixes given as warnings.
    pub codes: BTreeSet<String>,
}

/// The code a warning starts with (`CODE: ...`, for violations and fixes alike).
pub fn warning_code(w: &str) -> Option<String> {
    let (code, _) = w.split_once(": ")?;
    code.chars()
        .all(|c| c.is_ascii_uppercase() || c == '_')
        .then(|| code.to_string())
}

/// The codes in a response: `[CODE]` in a denial's message (every violation is listed there),
/// and the warnings' codes (`warn` violations, and fixes templates' pods will get).
pub fn verdict_of(response: &Value) -> Verdict {
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

pub fn code_set(codes: &[&str]) -> BTreeSet<String> {
    codes.iter().map(|c| c.to_string()).collect()
}

/// A Pod read back from the API server.
#[track_caller]
pub fn get_pod(namespace: &str, name: &str) -> Value {
    kubectl(&["get", "pod", name, "-n", namespace, "-o", "json"], None)
        .assert_success()
        .json()
}
