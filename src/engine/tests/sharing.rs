//! The device-plugin config as the plugin reads it, per node: MPS, MIG under `mixed`,
//! `renameByDefault`, and a node label naming a config the ConfigMap lacks.

use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::cluster::ClusterFacts;

fn gpu_node(name: &str, profile: Option<&str>, allocatable: Value) -> Value {
    let mut labels = json!({"node-type": "gpu-worker"});
    if let Some(p) = profile {
        labels["nvidia.com/device-plugin.config"] = json!(p);
    }
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}, "status": {"allocatable": allocatable}})
}

fn config_map(data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "time-slicing-config", "namespace": "gpu-operator"}, "data": data})
}

/// The policy with facts from `objects` plus the seed's PriorityClasses.
fn with_facts(objects: &[Value]) -> Effective {
    let base = default_policy();
    let classes = [("high-priority", 1_000_000), ("medium-priority", 100_000)]
        .map(|(name, value)| json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name}, "value": value}));
    let facts = ClusterFacts::from_objects(base.policy().spec(), objects.iter().chain(&classes));
    base.with_facts(Arc::new(facts))
}

fn asking(resource: &str, n: u64) -> Value {
    let c = json!({"name": "c", "image": "i", "resources": {"limits": {resource: n}}});
    pod("default", compliant_spec(json!([c])))
}

#[test]
fn mps_with_fail_requests_greater_than_one_unset_allows_one_per_container() {
    let mps = "version: v1\nsharing:\n  mps:\n    resources:\n      - {name: nvidia.com/gpu, replicas: 4}\n";
    let p = with_facts(&[
        gpu_node("mps-0", None, json!({"nvidia.com/gpu": "8"})),
        config_map(json!({"default": mps})),
    ]);
    assert_eq!(
        codes(&run(&p, &asking("nvidia.com/gpu", 1), Stage::Validate)),
        Vec::<&str>::new()
    );
    let d = run(&p, &asking("nvidia.com/gpu", 2), Stage::Validate);
    assert_eq!(codes(&d), vec!["SLICES_CONTAINER_EXCEEDED"]);
    assert!(
        d.violations[0]
            .message
            .contains("with MPS and failRequestsGreaterThanOne"),
        "{}",
        d.violations[0].message
    );
    // Relaxed explicitly: replicas apply.
    let relaxed = mps.replace("  mps:\n", "  mps:\n    failRequestsGreaterThanOne: false\n");
    let p = with_facts(&[
        gpu_node("mps-0", None, json!({"nvidia.com/gpu": "8"})),
        config_map(json!({"default": relaxed})),
    ]);
    assert_eq!(
        codes(&run(&p, &asking("nvidia.com/gpu", 4), Stage::Validate)),
        Vec::<&str>::new()
    );
    assert_eq!(
        codes(&run(&p, &asking("nvidia.com/gpu", 5), Stage::Validate)),
        vec!["SLICES_CONTAINER_EXCEEDED"]
    );
}

#[test]
fn mig_under_the_mixed_strategy_is_a_time_sliced_gpu_resource() {
    let mixed = "version: v1\nflags: {migStrategy: mixed}\nsharing:\n  timeSlicing:\n    resources:\n      - {name: nvidia.com/mig-1g.5gb, replicas: 2}\n";
    let p = with_facts(&[
        gpu_node(
            "a100",
            None,
            json!({"nvidia.com/mig-1g.5gb": "14", "nvidia.com/gpu": "1"}),
        ),
        config_map(json!({"default": mixed})),
    ]);
    let bare = json!({"name": "c", "image": "i", "resources": {"limits": {"nvidia.com/mig-1g.5gb": 1}}});
    // A GPU workload: placed, tolerated, prioritised.
    let d = run(&p, &pod("default", json!({"containers": [bare]})), Stage::Offline);
    assert!(codes(&d).is_empty(), "{d:?}");
    assert!(
        d.warnings.iter().any(|w| w.starts_with("PLACEMENT_MISSING")),
        "{:?}",
        d.warnings
    );
    assert_eq!(
        codes(&run(&p, &asking("nvidia.com/mig-1g.5gb", 2), Stage::Validate)),
        Vec::<&str>::new()
    );
    let d = run(&p, &asking("nvidia.com/mig-1g.5gb", 3), Stage::Validate);
    assert_eq!(codes(&d), vec!["SLICES_CONTAINER_EXCEEDED"]);
    assert!(
        d.violations[0].message.contains("2 slices per GPU"),
        "{}",
        d.violations[0].message
    );
}

#[test]
fn renamed_shared_gpus_are_limited_under_their_shared_name() {
    let renamed = "version: v1\nsharing:\n  timeSlicing:\n    renameByDefault: true\n    resources:\n      - {name: nvidia.com/gpu, replicas: 4}\n";
    let p = with_facts(&[
        gpu_node("gpu-0", None, json!({"nvidia.com/gpu.shared": "8"})),
        config_map(json!({"default": renamed})),
    ]);
    assert_eq!(
        codes(&run(&p, &asking("nvidia.com/gpu.shared", 4), Stage::Validate)),
        Vec::<&str>::new()
    );
    assert_eq!(
        codes(&run(&p, &asking("nvidia.com/gpu.shared", 5), Stage::Validate)),
        vec!["SLICES_CONTAINER_EXCEEDED"]
    );
}

#[test]
fn a_label_naming_a_missing_config_is_judged_by_the_default() {
    let strict = "version: v1\nsharing:\n  timeSlicing:\n    failRequestsGreaterThanOne: true\n    resources:\n      - {name: nvidia.com/gpu, replicas: 4}\n";
    let p = with_facts(&[
        gpu_node("gpu-0", Some("does-not-exist"), json!({"nvidia.com/gpu": "8"})),
        config_map(json!({"default": strict})),
    ]);
    let d = run(&p, &asking("nvidia.com/gpu", 2), Stage::Validate);
    assert_eq!(
        codes(&d),
        vec!["SLICES_CONTAINER_EXCEEDED"],
        "never more permissive than the default"
    );
    let message = &d.violations[0].message;
    assert!(
        message.contains("`does-not-exist` (missing from the ConfigMap; judged by the default `default`)"),
        "{message}"
    );
}
