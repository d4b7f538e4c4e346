//! DRA (`resource.k8s.io/v1`): pods that ask for GPUs through ResourceClaimTemplates and
//! ResourceClaims, with cluster facts.

use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::cluster::ClusterFacts;

fn template(name: &str, exactly: Value) -> Value {
    json!({"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaimTemplate", "metadata": {"name": name, "namespace": "default"},
           "spec": {"spec": {"devices": {"requests": [{"name": "gpu", "exactly": exactly}]}}}})
}

fn facts() -> Effective {
    let base = default_policy();
    let objects = [
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "gpu-0", "labels": {"node-type": "gpu-worker", "nvidia.com/gpu.count": "2"}},
               "status": {"allocatable": {"nvidia.com/gpu": "8"}}}),
        template("one", json!({"deviceClassName": "gpu.nvidia.com"})),
        template("three", json!({"deviceClassName": "gpu.nvidia.com", "count": 3})),
        template(
            "all",
            json!({"deviceClassName": "gpu.nvidia.com", "allocationMode": "All"}),
        ),
        template("nic", json!({"deviceClassName": "nic.example.com", "count": 4})),
        json!({"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim", "metadata": {"name": "shared", "namespace": "default"},
               "spec": {"devices": {"requests": [{"name": "g", "firstAvailable": [{"name": "big", "deviceClassName": "gpu.nvidia.com", "count": 2}]}]}}}),
        json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "medium-priority"}, "value": 100000}),
    ];
    let facts = ClusterFacts::from_objects(base.policy().spec(), &objects);
    base.with_facts(Arc::new(facts))
}

fn claim_pod(source: Value) -> Value {
    pod(
        "default",
        json!({
            "resourceClaims": [source],
            "containers": [
                {"name": "cuda", "image": "cuda", "resources": {"claims": [{"name": "g"}]}},
                {"name": "log", "image": "busybox"}
            ]
        }),
    )
}

#[test]
fn a_dra_gpu_pod_is_a_gpu_workload() {
    let p = facts();
    let obj = claim_pod(json!({"name": "g", "resourceClaimTemplateName": "one"}));
    let d = run(&p, &obj, Stage::Mutate);
    let after = patched(&obj, &d);
    let spec = &after["spec"];
    assert_eq!(spec["nodeSelector"]["node-type"], json!("gpu-worker"), "{d:?}");
    assert_eq!(spec["tolerations"][0]["key"], json!("nvidia.com/gpu"));
    assert_eq!(spec["priorityClassName"], json!("medium-priority"));
    assert!(
        spec["containers"][0].get("env").is_none(),
        "the claiming container gets its GPU from DRA"
    );
    assert_eq!(
        spec["containers"][1]["env"][0]["value"],
        json!("void"),
        "the other one gets void"
    );
    assert_eq!(run(&p, &after, Stage::Validate).outcome(), Outcome::Allowed);
}

#[test]
fn counts_from_templates() {
    let p = facts();
    let decide = |t: &str| {
        codes(&run(
            &p,
            &claim_pod(json!({"name": "g", "resourceClaimTemplateName": t})),
            Stage::Offline,
        ))
    };
    assert_eq!(decide("one"), Vec::<&str>::new());
    assert_eq!(decide("three"), vec!["DRA_COUNT_EXCEEDED"], "gpu-0 has 2 GPUs");
    assert_eq!(decide("all"), vec!["DRA_COUNT_UNKNOWN"]);
    let all = claim_pod(json!({"name": "g", "resourceClaimTemplateName": "all"}));
    let mutated = patched(&all, &run(&p, &all, Stage::Mutate));
    let d = run(&p, &mutated, Stage::Validate);
    assert_eq!(d.outcome(), Outcome::Allowed, "a warning, not a denial: {d:?}");
    assert!(d.warnings[0].starts_with("DRA_COUNT_UNKNOWN"), "{:?}", d.warnings);
    // Another device class: not a GPU workload at all.
    let nic = run(
        &p,
        &claim_pod(json!({"name": "g", "resourceClaimTemplateName": "nic"})),
        Stage::Offline,
    );
    assert_eq!(nic.outcome(), Outcome::Allowed);
    assert!(nic.patch.0.is_empty());
}

#[test]
fn missing_templates_and_shared_claims_are_warned() {
    let p = facts();
    let d = run(
        &p,
        &claim_pod(json!({"name": "g", "resourceClaimTemplateName": "nope"})),
        Stage::Validate,
    );
    assert_eq!(codes(&d), vec!["DRA_COUNT_UNKNOWN"]);
    assert!(
        d.violations[0]
            .message
            .contains("ResourceClaimTemplate `nope` does not exist"),
        "{}",
        d.violations[0].message
    );
    assert_eq!(d.outcome(), Outcome::Allowed);
    let shared = run(
        &p,
        &claim_pod(json!({"name": "g", "resourceClaimName": "shared"})),
        Stage::Offline,
    );
    assert_eq!(
        codes(&shared),
        vec!["DRA_COUNT_UNKNOWN"],
        "firstAvailable: decided at allocation"
    );
    assert!(shared.violations[0].message.contains("firstAvailable"));
}

#[test]
fn check_judges_claim_templates_in_manifests() {
    let p = default_policy();
    let decide = |exactly: Value| run(&p, &template("t", exactly), Stage::Offline);
    assert_eq!(
        decide(json!({"deviceClassName": "gpu.nvidia.com", "count": 2})).outcome(),
        Outcome::Allowed
    );
    let d = decide(json!({"deviceClassName": "gpu.nvidia.com", "count": 3}));
    assert_eq!(codes(&d), vec!["DRA_COUNT_EXCEEDED"]);
    assert_eq!(d.violations[0].path, "spec.spec.devices.requests[0]");
    assert_eq!(d.outcome(), Outcome::Denied);
    let d = decide(json!({"deviceClassName": "gpu.nvidia.com", "allocationMode": "All"}));
    assert_eq!(codes(&d), vec!["DRA_COUNT_UNKNOWN"]);
    assert_eq!(d.outcome(), Outcome::Allowed);
    assert!(
        decide(json!({"deviceClassName": "nic.example.com", "count": 9}))
            .violations
            .is_empty()
    );
}
