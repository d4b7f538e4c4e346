//! `gpu-admission check --live` against a real etcd + kube-apiserver (no webhook registered, so
//! the API server stores what the policy would refuse): a denied and an allowed workload, the
//! namespace filter, and a time-slicing change that turns a stored pod into a denial.

use std::process::Command;

use gpu_admission_testkit::e2e::cluster::{
    apply, complete, config_map, container, device_plugin_config, pod, set_node,
};
use gpu_admission_testkit::e2e::harness::ControlPlane;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_gpu-admission");

fn live(cp: &ControlPlane, extra: &[&str]) -> (Option<i32>, Value) {
    let kubeconfig = cp.kubeconfig_path().to_str().unwrap().to_string();
    let mut args = vec!["check", "--live", "--kubeconfig", &kubeconfig, "--output", "json"];
    args.extend_from_slice(extra);
    let out = gpu_admission_testkit::process::run(Command::new(BIN).args(&args), b"");
    let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), doc)
}

fn decision_of<'a>(doc: &'a Value, kind: &str, name: &str) -> &'a Value {
    doc["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == kind && r["name"] == name)
        .unwrap_or_else(|| panic!("{kind} {name} in {doc:#}"))
}

#[test]
fn live_audit_reports_running_workloads_with_the_clusters_facts() {
    let cp = ControlPlane::start();
    for ns in ["web", "ai", "gpu-operator"] {
        cp.kubectl(&["create", "namespace", ns], None).assert_success();
    }
    set_node(&cp, "gpu-1", &[("node-type", "gpu-worker")], &[("nvidia.com/gpu", "8")]);
    apply(&cp, &config_map(&[("any", device_plugin_config(4, false))]));
    for (name, value) in [("high-priority", 1_000_000), ("medium-priority", 100_000)] {
        let class = json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name}, "value": value});
        apply(&cp, &class);
    }
    let nginx = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "nginx", "namespace": "web"},
        "spec": {"selector": {"matchLabels": {"app": "nginx"}}, "template": {"metadata": {"labels": {"app": "nginx"}},
        "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}}}});
    let root = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "root", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "root"}}, "template": {"metadata": {"labels": {"app": "root"}},
        "spec": {"containers": [{"name": "sh", "image": "busybox"}], "volumes": [{"name": "h", "hostPath": {"path": "/"}}]}}}});
    let four = pod(
        "four-slices",
        "ai",
        complete(vec![container("cuda", &[("nvidia.com/gpu", "4")])], "medium-priority"),
    );
    for object in [&nginx, &root, &four] {
        apply(&cp, object);
    }

    let (code, doc) = live(&cp, &[]);
    assert_eq!(code, Some(1), "a stored workload is denied: {doc:#}");
    assert_eq!(decision_of(&doc, "Deployment", "nginx")["decision"], "allowed");
    let denied = decision_of(&doc, "Deployment", "root");
    assert_eq!(denied["decision"], "denied");
    assert_eq!(denied["violations"][0]["code"], "HOSTPATH_NOT_ALLOWED");
    assert_eq!(
        decision_of(&doc, "Pod", "four-slices")["decision"],
        "allowed",
        "4 slices at replicas 4"
    );

    let (code, doc) = live(&cp, &["--namespace", "web"]);
    assert_eq!(code, Some(0), "{doc:#}");
    assert_eq!(doc["summary"]["objects"], 1, "only namespace web: {doc:#}");

    // The operator lowers time-slicing to 2 replicas: the running pod would now be denied.
    apply(&cp, &config_map(&[("any", device_plugin_config(2, false))]));
    let (code, doc) = live(&cp, &["--namespace", "ai"]);
    assert_eq!(code, Some(1), "{doc:#}");
    let four = decision_of(&doc, "Pod", "four-slices");
    assert_eq!(four["decision"], "denied", "{four:#}");
    assert!(
        four["violations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["code"].as_str().unwrap().starts_with("SLICES_")),
        "{four:#}"
    );
}
