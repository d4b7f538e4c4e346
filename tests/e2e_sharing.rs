//! End to end on the real kube-apiserver (issue 11): the webhook with `serve --cluster`, so it
//! decides with the cluster's Nodes, device-plugin ConfigMap, PriorityClasses and DRA claims.
//!
//! - the visibility guard through kubectl: a wildcard-tolerating pod is stored with
//!   `NVIDIA_VISIBLE_DEVICES=void`, one asking for `all` without a GPU is refused with the code,
//!   field and message;
//! - DRA: a ResourceClaimTemplate and a pod using it are admitted and mutated; a template of
//!   three GPUs is refused on two-GPU nodes;
//! - `gpu-admission doctor --cluster` on two differently configured GPU nodes.
//!
//! The GPU nodes are API objects (no kubelet), labelled and given allocatable through the
//! status subresource, as the seed's GPU workers are.

use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use gpu_admission_testkit::Wait;
use gpu_admission_testkit::e2e::{cluster, harness, webhook};
use harness::kubectl;
use serde_json::{Value, json};
use webhook::{Webhook, WebhookOptions};

const NS: &str = "sharing";
const WAIT: Duration = Duration::from_secs(30);

/// Two GPU nodes with different device-plugin configs, the ConfigMap, the seed's
/// PriorityClasses, and the webhook deciding with them.
fn env() -> &'static Webhook {
    static ENV: OnceLock<Webhook> = OnceLock::new();
    ENV.get_or_init(|| {
        let cp = harness::shared();
        webhook::ensure_namespaces(&[NS, "gpu-operator"]);
        for (name, config) in [("gpu-ts", None), ("gpu-mps", Some("mps"))] {
            gpu_node(name, config);
        }
        apply(&config_map());
        for (name, value) in [("high-priority", 1_000_000), ("medium-priority", 100_000)] {
            apply(&json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name}, "value": value}));
        }
        let w = Webhook::start(WebhookOptions::default().cluster(cp.kubeconfig_path()));
        let configs = webhook::render_local_overlay(w.port, &w.certs.ca_pem());
        webhook::apply_webhook_configurations(&configs);
        w
    })
}

fn apply(object: &Value) {
    kubectl(&["apply", "-f", "-"], Some(&object.to_string())).assert_success();
}

fn gpu_node(name: &str, config: Option<&str>) {
    let mut labels = json!({"node-type": "gpu-worker", "nvidia.com/gpu.count": "2", "nvidia.com/gpu.replicas": "4",
                            "nvidia.com/gpu.product": "NVIDIA-GeForce-RTX-3090-SHARED"});
    if let Some(c) = config {
        labels["nvidia.com/device-plugin.config"] = json!(c);
    }
    apply(
        &json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
                  "spec": {"taints": [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]}}),
    );
    cluster::set_allocatable(harness::shared(), name, &[("nvidia.com/gpu", "8")]);
}

fn config_map() -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "time-slicing-config", "namespace": "gpu-operator"},
           "data": {
               "default": "version: v1\nsharing:\n  timeSlicing:\n    resources: [{name: nvidia.com/gpu, replicas: 4}]\n",
               "mps": "version: v1\nsharing:\n  mps:\n    resources: [{name: nvidia.com/gpu, replicas: 2}]\n"}})
}

fn create(object: &Value) -> harness::Output {
    kubectl(&["create", "-f", "-"], Some(&object.to_string()))
}

fn stored(kind: &str, name: &str) -> Value {
    kubectl(&["get", kind, name, "-n", NS, "-o", "json"], None)
        .assert_success()
        .json()
}

#[test]
fn a_wildcard_tolerating_pod_is_stored_with_void() {
    env();
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "agent", "namespace": NS},
                     "spec": {"tolerations": [{"operator": "Exists"}], "containers": [{"name": "agent", "image": "agent:1"}]}});
    create(&pod).assert_success();
    let env = &stored("pod", "agent")["spec"]["containers"][0]["env"];
    assert_eq!(env, &json!([{"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"}]));
}

#[test]
fn asking_for_all_devices_without_a_gpu_is_refused() {
    env();
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sneaky", "namespace": NS},
                     "spec": {"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
                              "containers": [{"name": "app", "image": "cuda:12", "env": [{"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"}]}]}});
    let out = create(&pod);
    assert!(!out.success(), "{}", out.stdout);
    assert!(
        out.stderr
            .contains("admission webhook \"pods.validate.gpu-admission.io\" denied the request"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("[VISIBILITY_DEVICES_REQUESTED] spec.containers[0].env[0]: container `app` asks for no GPU but sets NVIDIA_VISIBLE_DEVICES=all"),
        "{}",
        out.stderr
    );
    let gone = kubectl(&["get", "pod", "sneaky", "-n", NS], None);
    assert!(!gone.success(), "nothing is stored");
}

#[test]
fn a_dra_template_and_its_pod_are_admitted_and_mutated() {
    let w = env();
    for (name, count) in [("one-gpu", 1), ("three-gpus", 3)] {
        apply(
            &json!({"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaimTemplate", "metadata": {"name": name, "namespace": NS},
                      "spec": {"spec": {"devices": {"requests": [{"name": "gpu", "exactly": {"deviceClassName": "gpu.nvidia.com", "count": count}}]}}}}),
        );
    }
    let pod = |name: &str, template: &str| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
               "spec": {"resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": template}],
                        "containers": [{"name": "cuda", "image": "cuda:12", "resources": {"claims": [{"name": "gpu"}]}}]}})
    };
    // The webhook's cache sees the templates within moments: until then the claim is unknown.
    let three = pod("dra-three", "three-gpus");
    let refused = Wait::new("the webhook counts the three-GPU template", WAIT).until(|| {
        let out = kubectl(&["create", "--dry-run=server", "-f", "-"], Some(&three.to_string()));
        if out.success() {
            Err(format!("accepted: {}{}", out.stdout, out.stderr))
        } else {
            Ok(out.stderr)
        }
    });
    assert!(
        refused.contains("[DRA_COUNT_EXCEEDED] spec.resourceClaims: the pod's DRA claims ask for 3 GPUs"),
        "{refused}"
    );
    create(&pod("dra-one", "one-gpu")).assert_success();
    let spec = stored("pod", "dra-one")["spec"].clone();
    assert_eq!(spec["nodeSelector"]["node-type"], json!("gpu-worker"), "{spec}");
    assert!(
        spec["tolerations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["key"] == "nvidia.com/gpu"),
        "{spec}"
    );
    assert_eq!(spec["priorityClassName"], json!("medium-priority"));
    assert_eq!(spec["priority"], json!(100_000));
    assert!(
        spec["containers"][0].get("env").is_none(),
        "the claiming container's GPU comes from DRA"
    );
    assert!(!w.reviews_of(NS, "dra-one").is_empty(), "the webhook saw it");
}

#[test]
fn doctor_reads_two_differently_configured_nodes() {
    let cp = harness::shared();
    env();
    let out = Command::new(webhook::bin())
        .args(["doctor", "--cluster", "--output", "json", "--kubeconfig"])
        .arg(cp.kubeconfig_path())
        .env_remove("GPU_ADMISSION_POLICY")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .output()
        .expect("run doctor");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "inconsistent: exit 1\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(&stdout).expect("JSON report");
    let node = |name: &str| {
        report["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == name)
            .cloned()
            .unwrap()
    };
    let ts = node("gpu-ts");
    assert_eq!(
        (ts["config"].clone(), ts["sharing"].clone()),
        (json!("default"), json!("timeSlicing"))
    );
    assert_eq!(ts["problems"], json!([]), "{ts}");
    let mps = node("gpu-mps");
    assert_eq!(
        (mps["config"].clone(), mps["sharing"].clone()),
        (json!("mps"), json!("mps"))
    );
    let problems = mps["problems"].to_string();
    assert!(
        problems.contains("nvidia.com/gpu.replicas=4, but its config gives 2"),
        "{problems}"
    );
    assert_eq!(report["configMapFound"], json!(true));
}
