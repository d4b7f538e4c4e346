//! The engine's table cases that go through kube-apiserver in `tests/native_parity.rs`, each
//! named after the engine test it mirrors (`src/engine/tests/<file>.rs`, function), and the
//! cases native mode cannot express, with the reason.

use serde_json::{Value, json};

/// Engine table cases native mode cannot express, `<file>::<test>` of `src/engine/tests/`, with
/// the reason (README "Native mode"). They are not run; the parity test checks that each names
/// an engine test, so the list cannot go stale.
pub const NOT_NATIVE: &[(&str, &str)] = &[
    (
        "cluster::per_node_profiles_decide_per_container_limits",
        "per candidate node: the native params hold the cluster-wide bound, CEL cannot read Nodes",
    ),
    (
        "cluster::a_pod_that_fits_no_single_node_is_denied",
        "SLICES_NO_NODE_FITS needs the pod's candidate nodes",
    ),
    (
        "cluster::required_affinity_picks_the_profile_that_applies",
        "the profile of the candidate nodes decides: CEL cannot read Nodes",
    ),
    (
        "cluster::no_gpu_node_matches",
        "NO_GPU_NODE_MATCHES needs the GPU nodes",
    ),
    (
        "cluster::never_synced_caches_deny_or_fall_back",
        "CLUSTER_STATE_UNAVAILABLE: the params are the facts",
    ),
    (
        "sharing::a_label_naming_a_missing_config_is_judged_by_the_default",
        "per node: the device-plugin profile a node's label names",
    ),
    (
        "dra::a_dra_gpu_pod_is_a_gpu_workload",
        "a DRA claim's device class is in its ResourceClaim(Template): CEL cannot read it",
    ),
    (
        "dra::counts_from_templates",
        "DRA_COUNT_EXCEEDED needs the ResourceClaimTemplates",
    ),
    (
        "dra::missing_templates_and_shared_claims_are_warned",
        "DRA_COUNT_UNKNOWN needs the ResourceClaims and templates",
    ),
    (
        "strict::a_covered_field_of_the_wrong_type_is_denied_with_its_path",
        "FIELD_INVALID: kube-apiserver does not decode a field of the wrong type, admission never sees it",
    ),
    ("strict::a_flood_of_wrong_fields_is_capped", "FIELD_INVALID, as above"),
    (
        "strict::metadata_namespace_of_the_wrong_type_is_denied",
        "FIELD_INVALID, as above",
    ),
    (
        "strict::the_namespace_is_the_contexts_and_a_mismatch_is_denied",
        "NAMESPACE_MISMATCH: kube-apiserver refuses another namespace than the request's before admission",
    ),
];

fn gpu(name: &str, count: Value) -> Value {
    json!({"name": name, "image": "cuda", "resources": {"limits": {"nvidia.com/gpu": count}}})
}

fn plain(name: &str) -> Value {
    json!({"name": name, "image": "busybox"})
}

fn with(mut c: Value, key: &str, value: Value) -> Value {
    c[key] = value;
    c
}

fn pod(ns: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns}, "spec": spec})
}

fn deployment(ns: &str, name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": spec}},
    })
}

fn host_path_pod(ns: &str, name: &str, path: &str) -> Value {
    pod(
        ns,
        name,
        json!({"containers": [with(plain("c"), "volumeMounts", json!([{"name": "h", "mountPath": "/h"}]))],
               "volumes": [{"name": "h", "hostPath": {"path": path}}]}),
    )
}

fn sidecar(name: &str, n: u64) -> Value {
    with(gpu(name, json!(n.to_string())), "restartPolicy", json!("Always"))
}

/// `(name, object)`; objects without a namespace go to `default`.
pub fn cases() -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = Vec::new();
    let mut add = |name: &str, object: Value| out.push((name.to_string(), object));
    for (i, q) in ["1", "4", "5", "0", "1e3", "0.5", "500m", "-1"].iter().enumerate() {
        add(
            &format!("slices::per_container_quantities/{q}"),
            pod("default", &format!("q{i}"), json!({"containers": [gpu("c", json!(q))]})),
        );
    }
    let three: Vec<Value> = ["a", "b", "c"].iter().map(|n| gpu(n, json!("3"))).collect();
    add(
        "slices::pod_over_the_node_with_every_container_within_its_own",
        pod("default", "three", json!({"containers": three})),
    );
    add(
        "slices::init_containers_and_sidecars_follow_kubernetes_formula/sidecars-before-init",
        pod(
            "default",
            "sidecars-first",
            json!({"initContainers": [sidecar("s1", 4), sidecar("s2", 1), gpu("init", json!("4"))],
                   "containers": [gpu("app", json!("1"))]}),
        ),
    );
    add(
        "slices::init_containers_and_sidecars_follow_kubernetes_formula/init-before-sidecars",
        pod(
            "default",
            "init-first",
            json!({"initContainers": [gpu("init", json!("4")), sidecar("s1", 4), sidecar("s2", 1)],
                   "containers": [gpu("app", json!("1"))]}),
        ),
    );
    add(
        "slices::vendor_resources_no_node_offers_are_warned",
        pod(
            "default",
            "gpumem",
            json!({"containers": [with(gpu("c", json!("1")), "resources",
                json!({"limits": {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "3000"}}))]}),
        ),
    );
    add(
        "slices::shared_resource_name_when_renamed/shared-not-offered",
        pod(
            "default",
            "shared",
            json!({"containers": [with(plain("c"), "resources", json!({"limits": {"nvidia.com/gpu.shared": "1"}}))]}),
        ),
    );
    add(
        "placement::conflicting_node_type",
        pod(
            "default",
            "cpu-node",
            json!({"nodeSelector": {"node-type": "cpu"}, "containers": [gpu("c", json!("1"))]}),
        ),
    );
    let affinity = |op: &str| {
        json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "node-type", "operator": op, "values": ["gpu-worker"]}]}]}}})
    };
    add(
        "placement::affinity_that_rules_gpu_nodes_out",
        pod(
            "default",
            "not-in",
            json!({"affinity": affinity("NotIn"), "containers": [gpu("c", json!("1"))]}),
        ),
    );
    add(
        "placement::affinity_that_allows_gpu_nodes",
        pod(
            "default",
            "in",
            json!({"affinity": affinity("In"), "containers": [gpu("c", json!("1"))]}),
        ),
    );
    for (name, tol) in [
        ("wildcard", json!({"operator": "Exists"})),
        (
            "equal-other-value",
            json!({"key": "nvidia.com/gpu", "operator": "Equal", "value": "present"}),
        ),
        (
            "other-effect",
            json!({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}),
        ),
    ] {
        add(
            &format!("tolerations::kubernetes_matching_table/{name}"),
            pod(
                "default",
                &format!("tol-{name}"),
                json!({"tolerations": [tol], "containers": [gpu("c", json!("1"))]}),
            ),
        );
    }
    add(
        "priority::namespace_default",
        pod("ai", "ai-default", json!({"containers": [gpu("c", json!("1"))]})),
    );
    add(
        "priority::allowed_class_kept",
        pod(
            "ai",
            "ai-medium",
            json!({"priorityClassName": "medium-priority", "containers": [gpu("c", json!("1"))]}),
        ),
    );
    add(
        "priority::class_not_allowed",
        pod(
            "default",
            "low",
            json!({"priorityClassName": "low-priority", "containers": [gpu("c", json!("1"))]}),
        ),
    );
    for (name, ns, path) in [
        ("root", "default", "/"),
        ("coral-in-ai", "ai", "/dev/bus/usb"),
        ("coral-below-in-ai", "ai", "/dev/bus/usb/001"),
        ("coral-in-default", "default", "/dev/bus/usb"),
        ("double-slash-and-trailing", "ai", "/dev//bus/usb/"),
        ("dotdot-out-of-the-allowed-path", "ai", "/dev/bus/usb/../../etc"),
        ("dotdot-back-into-the-allowed-path", "ai", "/dev/bus/usb/x/.."),
        ("relative", "default", "dev/bus/usb"),
        ("parent-of-the-allowed-path", "ai", "/dev"),
        ("exempt-monitoring", "monitoring", "/proc"),
        ("exempt-kube-system", "kube-system", "/"),
        ("ignore-label", "opted-out", "/"),
        ("control-character", "ai", "/dev/bus/usb/\u{1}"),
    ] {
        add(
            &format!("host_path::normalised_paths/{name}"),
            host_path_pod(ns, &format!("hp-{name}"), path),
        );
    }
    add(
        "visibility::void_for_containers_without_a_gpu",
        pod(
            "default",
            "void",
            json!({"containers": [gpu("c", json!("1")), plain("sidecar")]}),
        ),
    );
    add(
        "visibility::tolerating_pod_asking_for_all_devices",
        pod(
            "default",
            "all-devices",
            json!({"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
                   "containers": [with(plain("c"), "env", json!([{"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"}]))]}),
        ),
    );
    add(
        "visibility::value_from_cannot_be_checked",
        pod(
            "default",
            "value-from",
            json!({"nodeSelector": {"node-type": "gpu-worker"},
                   "containers": [with(plain("c"), "env", json!([{"name": "NVIDIA_VISIBLE_DEVICES",
                       "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]))]}),
        ),
    );
    add(
        "visibility::gpu_container_may_not_set_the_variable",
        pod(
            "default",
            "gpu-sets",
            json!({"containers": [with(gpu("c", json!("1")), "env", json!([{"name": "NVIDIA_VISIBLE_DEVICES", "value": "0"}]))]}),
        ),
    );
    add(
        "visibility::selected_gpu_node_gets_void",
        pod(
            "default",
            "selected",
            json!({"nodeSelector": {"node-type": "gpu-worker"}, "containers": [plain("c")]}),
        ),
    );
    add(
        "visibility::privileged_is_warned",
        pod(
            "default",
            "privileged",
            json!({"containers": [with(gpu("c", json!("1")), "securityContext", json!({"privileged": true}))]}),
        ),
    );
    add(
        "stages::controllers_are_warned_not_patched",
        deployment("default", "gpu-deploy", json!({"containers": [gpu("c", json!("1"))]})),
    );
    add(
        "stages::controllers_over_the_limit_are_denied",
        deployment("default", "big-deploy", json!({"containers": [gpu("c", json!("5"))]})),
    );
    add(
        "host_path::cronjob_template",
        json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "cron-root", "namespace": "default"},
               "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                   "restartPolicy": "Never",
                   "containers": [with(plain("c"), "volumeMounts", json!([{"name": "h", "mountPath": "/h"}]))],
                   "volumes": [{"name": "h", "hostPath": {"path": "/"}}]}}}}}}),
    );
    out
}
