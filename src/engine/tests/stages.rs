//! What each stage does with the same findings, and what is left alone.

use serde_json::json;

use super::*;
use crate::decision::SkipReason;

#[test]
fn mutate_patches_pods_on_create_only() {
    let p = default_policy();
    let obj = pod("ai", json!({"containers": [gpu(json!(1))]}));
    let d = run(&p, &obj, Stage::Mutate);
    assert_eq!(d.outcome(), Outcome::Mutated);
    assert!(d.violations.is_empty() && d.warnings.is_empty());
    for op in [Operation::Update, Operation::Delete, Operation::Connect] {
        let d = run_op(&p, &obj, Stage::Mutate, op);
        assert!(d.patch.0.is_empty(), "{op:?}");
    }
}

#[test]
fn mutate_never_denies() {
    let p = default_policy();
    let obj = pod(
        "default",
        json!({"containers": [gpu(json!(99))], "volumes": [{"name": "r", "hostPath": {"path": "/"}}]}),
    );
    let d = run(&p, &obj, Stage::Mutate);
    assert_ne!(d.outcome(), Outcome::Denied);
}

#[test]
fn controllers_are_warned_not_patched_by_default() {
    let p = default_policy();
    let obj = deployment("ai", json!({"containers": [gpu(json!(1))]}));
    assert!(run(&p, &obj, Stage::Mutate).patch.0.is_empty());
    let d = run(&p, &obj, Stage::Validate);
    assert_eq!(d.outcome(), Outcome::Allowed);
    let want = [
        "PLACEMENT_MISSING: pods will get nodeSelector node-type=gpu-worker",
        "TOLERATION_MISSING: pods will get toleration nvidia.com/gpu:NoSchedule (operator Exists)",
        "PRIORITY_MISSING: pods will get priorityClassName high-priority",
    ];
    assert_eq!(d.warnings, want);
    // Updates of controllers are validated too.
    let d = run_op(&p, &obj, Stage::Validate, Operation::Update);
    assert_eq!(d.warnings.len(), 3);
}

#[test]
fn mutate_templates_when_switched_on() {
    let p = policy_with(|s| s["mutateTemplates"] = json!(true));
    let obj = deployment("ai", json!({"containers": [gpu(json!(1))]}));
    let d = run(&p, &obj, Stage::Mutate);
    let spec = &patched(&obj, &d)["spec"]["template"]["spec"];
    assert_eq!(spec["nodeSelector"]["node-type"], json!("gpu-worker"));
    // Validation of an unpatched template then denies, like a Pod's.
    assert_eq!(run(&p, &obj, Stage::Validate).outcome(), Outcome::Denied);
}

#[test]
fn exempt_namespaces_and_unknown_kinds_are_untouched() {
    let p = default_policy();
    let bad = json!({"containers": [gpu(json!(99))], "volumes": [{"name": "r", "hostPath": {"path": "/"}}]});
    for ns in ["kube-system", "gpu-operator", "gpu-admission"] {
        let d = run(&p, &pod(ns, bad.clone()), Stage::Offline);
        assert!(
            d.skipped == Some(SkipReason::ExemptNamespace) && d.patch.0.is_empty() && d.violations.is_empty(),
            "{ns}"
        );
    }
    let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {}});
    for obj in [service, json!({}), json!([1, 2]), json!("pod")] {
        let d = run(&p, &obj, Stage::Validate);
        assert!(
            d.skipped == Some(SkipReason::NotCovered) && d.outcome() == Outcome::Allowed,
            "{obj}"
        );
    }
    // A covered kind under another group or version, or spelt otherwise: skipped with its own
    // reason, never evaluated as the served kind.
    let template = json!({"template": {"spec": bad}});
    let unserved = [
        ("extensions/v1beta1", "Deployment", template.clone()),
        ("apps/v1beta1", "Deployment", template.clone()),
        ("apps/v1beta2", "DaemonSet", template.clone()),
        ("batch/v1beta1", "CronJob", template.clone()),
        ("v2", "Pod", bad.clone()),
        ("apps/v1", "Pod", bad.clone()),
        ("v1", "pod", bad.clone()),
        ("apps/v1", "deployment", template),
    ];
    for (api_version, kind, spec) in unserved {
        let obj = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}, "spec": spec});
        for stage in [Stage::Mutate, Stage::Validate, Stage::Offline] {
            let d = run(&p, &obj, stage);
            assert!(
                d.skipped == Some(SkipReason::UnservedVersion) && d.patch.0.is_empty() && d.violations.is_empty(),
                "{api_version} {kind}: {d:?}"
            );
        }
    }
}

#[test]
fn namespace_comes_from_the_context() {
    let p = default_policy();
    let mut obj = pod("ai", json!({"containers": [gpu(json!(1))]}));
    obj["metadata"].as_object_mut().unwrap().remove("namespace");
    let ctx = Context::create("ai", Stage::Mutate);
    let d = evaluate(&p, &obj, &ctx);
    assert_eq!(patched(&obj, &d)["spec"]["priorityClassName"], json!("high-priority"));
}

#[test]
fn a_workload_without_a_pod_spec_is_denied_not_allowed() {
    let p = default_policy();
    let cases = [
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"template": "x"}}),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}),
    ];
    for obj in cases {
        let d = run(&p, &obj, Stage::Validate);
        assert_eq!(codes(&d), vec!["OBJECT_INVALID"], "{obj}");
        assert_eq!(d.outcome(), Outcome::Denied);
    }
}

#[test]
fn patches_escape_pointer_tokens() {
    let p = policy_with(|s| {
        s["rules"]["placement"]["nodeSelector"] = json!({"key": "gpu.example/node~type", "value": "yes"})
    });
    let obj = pod(
        "default",
        json!({"containers": [gpu(json!(1))], "nodeSelector": {"zone": "a"}}),
    );
    let d = run(&p, &obj, Stage::Mutate);
    let text = serde_json::to_string(&d.patch).unwrap();
    assert!(text.contains("/spec/nodeSelector/gpu.example~1node~0type"), "{text}");
    assert_eq!(
        patched(&obj, &d)["spec"]["nodeSelector"]["gpu.example/node~type"],
        json!("yes")
    );
}
