//! Rule `visibility`: NVIDIA_VISIBLE_DEVICES and privileged containers in pods that can land on
//! a GPU node.

use serde_json::json;

use super::*;

fn toleration() -> Value {
    json!({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"})
}

fn plain(env: Value) -> Value {
    json!({"name": "app", "image": "cuda:12", "env": env})
}

fn visibility_codes(d: &Decision) -> Vec<&'static str> {
    d.violations
        .iter()
        .filter(|v| v.rule == "visibility")
        .map(|v| v.code)
        .collect()
}

#[test]
fn all_devices_without_a_gpu_request_is_denied() {
    let p = default_policy();
    let obj = pod(
        "default",
        json!({"containers": [plain(json!([{"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"}]))], "tolerations": [toleration()]}),
    );
    let d = run(&p, &obj, Stage::Validate);
    assert_eq!(visibility_codes(&d), vec!["VISIBILITY_DEVICES_REQUESTED"]);
    assert_eq!(d.outcome(), Outcome::Denied);
    assert_eq!(d.violations[0].path, "spec.containers[0].env[0]");
    assert!(
        d.violations[0].message.contains("NVIDIA_VISIBLE_DEVICES=all"),
        "{}",
        d.violations[0].message
    );
    // valueFrom cannot be checked: denied too.
    let from = pod(
        "default",
        json!({"containers": [plain(json!([{"name": "NVIDIA_VISIBLE_DEVICES", "valueFrom": {"configMapKeyRef": {"name": "x", "key": "y"}}}]))], "tolerations": [toleration()]}),
    );
    assert_eq!(
        visibility_codes(&run(&p, &from, Stage::Validate)),
        vec!["VISIBILITY_DEVICES_REQUESTED"]
    );
    // void and none are fine.
    for value in ["void", "none"] {
        let ok = pod(
            "default",
            json!({"containers": [plain(json!([{"name": "NVIDIA_VISIBLE_DEVICES", "value": value}]))], "tolerations": [toleration()]}),
        );
        assert_eq!(run(&p, &ok, Stage::Validate).outcome(), Outcome::Allowed, "{value}");
    }
}

#[test]
fn a_gpu_container_may_not_set_the_variable() {
    let p = default_policy();
    let mut c = gpu(json!(1));
    c["env"] = json!([{"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"}]);
    let d = run(&p, &pod("default", compliant_spec(json!([c]))), Stage::Validate);
    assert_eq!(visibility_codes(&d), vec!["VISIBILITY_SET_BY_GPU_CONTAINER"]);
    assert_eq!(d.outcome(), Outcome::Denied);
    // NVIDIA_DRIVER_CAPABILITIES is the container's own business (corpus 17 sets it).
    let mut c = gpu(json!(1));
    c["env"] = json!([{"name": "NVIDIA_DRIVER_CAPABILITIES", "value": "compute,utility"}]);
    let d = run(&p, &pod("default", compliant_spec(json!([c]))), Stage::Validate);
    assert_eq!(d.outcome(), Outcome::Allowed, "{d:?}");
}

#[test]
fn containers_without_a_gpu_get_void_and_the_patch_is_idempotent() {
    let p = default_policy();
    // A GPU pod with a sidecar that asks for no GPU: only the sidecar gets void.
    let obj = pod(
        "default",
        json!({"containers": [gpu(json!(1)), {"name": "log", "image": "busybox"}]}),
    );
    let d = run(&p, &obj, Stage::Mutate);
    let after = patched(&obj, &d);
    assert_eq!(
        after["spec"]["containers"][1]["env"],
        json!([{"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"}])
    );
    assert!(
        after["spec"]["containers"][0].get("env").is_none(),
        "the GPU container is the plugin's"
    );
    assert!(
        run(&p, &after, Stage::Mutate).patch.0.is_empty(),
        "a second pass changes nothing"
    );
    assert_eq!(run(&p, &after, Stage::Validate).outcome(), Outcome::Allowed);
    // An env list that exists gets the entry appended.
    let obj = pod(
        "default",
        json!({"containers": [plain(json!([{"name": "A", "value": "1"}]))], "tolerations": [{"operator": "Exists"}]}),
    );
    let after = patched(&obj, &run(&p, &obj, Stage::Mutate));
    assert_eq!(
        after["spec"]["containers"][0]["env"][1],
        json!({"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"})
    );
    // A Pod that reached validation without it is denied (the mutating webhook adds it).
    assert_eq!(
        visibility_codes(&run(&p, &obj, Stage::Validate)),
        vec!["VISIBILITY_VOID_MISSING"]
    );
}

#[test]
fn a_wildcard_tolerating_daemonset_gets_void() {
    let p = default_policy();
    let ds = json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}},
                 "spec": {"tolerations": [{"operator": "Exists"}], "containers": [{"name": "agent", "image": "agent:1"}]}}}
    });
    let offline = run(&p, &ds, Stage::Offline);
    assert_eq!(offline.outcome(), Outcome::Mutated);
    let fixed = patched(&ds, &offline);
    assert_eq!(
        fixed["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"],
        json!("void")
    );
    // The webhook warns about the template (its pods get it on creation), and does not deny.
    let validate = run(&p, &ds, Stage::Validate);
    assert_eq!(validate.outcome(), Outcome::Allowed);
    assert!(
        validate
            .warnings
            .iter()
            .any(|w| w.starts_with("VISIBILITY_VOID_MISSING: pods will get")),
        "{:?}",
        validate.warnings
    );
    // In an exempt namespace (the monitoring stack) nothing happens.
    let mut monitoring = ds.clone();
    monitoring["metadata"]["namespace"] = json!("monitoring");
    assert_eq!(run(&p, &monitoring, Stage::Offline).outcome(), Outcome::Allowed);
}

#[test]
fn pods_that_cannot_land_on_gpu_nodes_are_untouched() {
    let p = default_policy();
    let obj = pod(
        "default",
        json!({"containers": [plain(json!([{"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"}]))]}),
    );
    let d = run(&p, &obj, Stage::Offline);
    assert_eq!(d.outcome(), Outcome::Allowed);
    assert!(d.patch.0.is_empty() && d.violations.is_empty());
    // Selecting GPU nodes (nodeSelector or required affinity) counts as landing there.
    let mut selected = obj.clone();
    selected["spec"]["nodeSelector"] = json!({"node-type": "gpu-worker"});
    assert_eq!(
        visibility_codes(&run(&p, &selected, Stage::Validate)),
        vec!["VISIBILITY_DEVICES_REQUESTED"]
    );
    let mut affine = obj.clone();
    affine["spec"]["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "node-type", "operator": "In", "values": ["gpu-worker"]}]}]}}});
    assert_eq!(
        visibility_codes(&run(&p, &affine, Stage::Validate)),
        vec!["VISIBILITY_DEVICES_REQUESTED"]
    );
}

#[test]
fn privileged_containers_on_gpu_nodes_are_warned_outside_the_allowed_namespaces() {
    let p = default_policy();
    let spec = |sc: Value| {
        json!({"containers": [{"name": "tpu", "image": "tf", "securityContext": sc, "env": [{"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"}]}],
               "tolerations": [toleration()]})
    };
    for sc in [
        json!({"privileged": true}),
        json!({"capabilities": {"add": ["SYS_ADMIN"]}}),
    ] {
        let d = run(&p, &pod("default", spec(sc.clone())), Stage::Validate);
        assert_eq!(visibility_codes(&d), vec!["PRIVILEGED_ON_GPU_NODE"], "{sc}");
        assert_eq!(d.outcome(), Outcome::Allowed, "warn by default");
        assert!(d.warnings[0].starts_with("PRIVILEGED_ON_GPU_NODE:"));
        let ai = run(&p, &pod("ai", spec(sc)), Stage::Validate);
        assert!(visibility_codes(&ai).is_empty(), "the Coral's namespace may");
    }
    let strict = policy_with(|s| s["rules"]["visibility"]["privilegedAction"] = json!("deny"));
    let d = run(
        &strict,
        &pod("default", spec(json!({"privileged": true}))),
        Stage::Validate,
    );
    assert_eq!(d.outcome(), Outcome::Denied);
}
