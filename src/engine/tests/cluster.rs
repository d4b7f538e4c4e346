//! The engine with cluster facts: limits, priority values and Coral namespaces from the cluster.

use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::cluster::ClusterFacts;

fn config(replicas: u32, fail_gt_one: bool) -> Value {
    json!(format!(
        "version: v1\nsharing:\n  timeSlicing:\n    failRequestsGreaterThanOne: {fail_gt_one}\n    resources: [{{name: nvidia.com/gpu, replicas: {replicas}}}]\n"
    ))
}

fn node(name: &str, labels: Value, allocatable: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}, "status": {"allocatable": allocatable}})
}

fn objects() -> Vec<Value> {
    vec![
        node(
            "gpu-0",
            json!({"node-type": "gpu-worker"}),
            json!({"nvidia.com/gpu": "8", "cpu": "32"}),
        ),
        node(
            "gpu-1",
            json!({"node-type": "gpu-worker", "nvidia.com/device-plugin.config": "two"}),
            json!({"nvidia.com/gpu": 4}),
        ),
        node("cpu-0", json!({"node-type": "cpu"}), json!({"nvidia.com/gpu": "64"})),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "time-slicing-config", "namespace": "gpu-operator"},
               "data": {"any": config(4, false), "two": config(2, true), "broken": "version: v9"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "time-slicing-config", "namespace": "elsewhere"}, "data": {"x": config(64, false)}}),
        json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "high-priority"}, "value": 2_000_000}),
        json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "medium-priority"}, "value": 200_000, "preemptionPolicy": "Never"}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "vision", "labels": {"gpu-admission/coral": "enabled"}}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ai"}}),
    ]
}

fn cluster_policy(objects: &[Value], edit: impl FnOnce(&mut Value)) -> Effective {
    let base = policy_with(|s| {
        s["cluster"]["defaultConfig"] = json!("any");
        edit(s)
    });
    let facts = ClusterFacts::from_objects(base.policy().spec(), objects);
    base.with_facts(Arc::new(facts))
}

#[test]
fn facts_are_read_from_the_objects() {
    let p = cluster_policy(&objects(), |_| {});
    let facts = p.cluster().unwrap();
    let names: Vec<&str> = facts.gpu_nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["gpu-0", "gpu-1"], "only nodes with the GPU selector");
    assert_eq!(facts.gpu_nodes[1].profile.as_deref(), Some("two"));
    assert_eq!(facts.gpu_nodes[0].profile.as_deref(), Some("any"));
    assert_eq!(facts.gpu_nodes[0].allocatable.get("cpu"), None, "only vendor resources");
    assert!(
        facts.configs["broken"].is_err(),
        "a broken key is kept as an error, not dropped"
    );
    assert_eq!(facts.configs.len(), 3, "the ConfigMap in another namespace is not read");
    let limits = facts.limits("nvidia.com/gpu").unwrap();
    assert_eq!((limits.per_container, limits.per_pod), (4, 8));
    assert!(limits.per_pod_reason.contains("gpu-0"), "{}", limits.per_pod_reason);
}

#[test]
fn slice_limits_follow_the_device_plugin_config() {
    let p = cluster_policy(&objects(), |_| {});
    let codes_for = |p: &Effective, n: u64| {
        codes(&run(
            p,
            &pod("default", compliant_spec(json!([gpu(json!(n))]))),
            Stage::Validate,
        ))
    };
    assert_eq!(codes_for(&p, 4), Vec::<&str>::new());
    assert_eq!(codes_for(&p, 5), vec!["SLICES_CONTAINER_EXCEEDED"]);
    // The ConfigMap goes from replicas 4 to 2 (and node allocatable with it): the limit follows.
    let mut changed = objects();
    changed[3]["data"]["any"] = config(2, false);
    changed[0]["status"]["allocatable"]["nvidia.com/gpu"] = json!("4");
    let p2 = cluster_policy(&changed, |_| {});
    assert_eq!(codes_for(&p2, 3), vec!["SLICES_CONTAINER_EXCEEDED"]);
    let d = run(
        &p2,
        &pod("default", compliant_spec(json!([gpu(json!(3))]))),
        Stage::Validate,
    );
    assert!(
        d.violations[0]
            .message
            .contains("device-plugin config `any`: 2 slices per GPU"),
        "{}",
        d.violations[0].message
    );
    // Per pod: the largest allocatable among GPU nodes.
    let three = json!([
        named(gpu(json!(3)), "a"),
        named(gpu(json!(3)), "b"),
        named(gpu(json!(3)), "c")
    ]);
    let d = run(&p, &pod("default", compliant_spec(three)), Stage::Validate);
    assert_eq!(codes(&d), vec!["SLICES_POD_EXCEEDED"]);
    assert!(
        d.violations[0]
            .message
            .contains("node gpu-0 has 8 nvidia.com/gpu allocatable")
    );
}

#[test]
fn per_node_profiles_decide_per_container_limits() {
    // Only gpu-1 (profile `two`, failRequestsGreaterThanOne) is left: 1 per container.
    let only_two: Vec<Value> = objects()
        .into_iter()
        .filter(|o| o["metadata"]["name"] != "gpu-0")
        .collect();
    let p = cluster_policy(&only_two, |_| {});
    let d = run(
        &p,
        &pod("default", compliant_spec(json!([gpu(json!(2))]))),
        Stage::Validate,
    );
    assert_eq!(codes(&d), vec!["SLICES_CONTAINER_EXCEEDED"]);
    assert!(d.violations[0].message.contains("failRequestsGreaterThanOne"));
}

#[test]
fn resources_no_node_offers() {
    let p = cluster_policy(&objects(), |_| {});
    let mig = json!({"name": "c", "image": "i", "resources": {"limits": {"nvidia.com/mig-3g.20gb": 1}}});
    let d = run(
        &p,
        &pod("default", json!({"containers": [mig.clone()]})),
        Stage::Validate,
    );
    assert_eq!(codes(&d), vec!["GPU_RESOURCE_NOT_OFFERED"]);
    assert!(
        d.violations[0].message.contains("(only nvidia.com/gpu)"),
        "{}",
        d.violations[0].message
    );
    let strict = cluster_policy(&objects(), |s| {
        s["rules"]["slices"]["unknownResourceAction"] = json!("deny")
    });
    assert_eq!(
        run(&strict, &pod("default", json!({"containers": [mig]})), Stage::Validate).outcome(),
        Outcome::Denied
    );
    // No GPU node at all: GPUs themselves are not offered.
    let none: Vec<Value> = objects().into_iter().filter(|o| o["kind"] != "Node").collect();
    let p = cluster_policy(&none, |s| s["rules"]["slices"]["unknownResourceAction"] = json!("deny"));
    let d = run(
        &p,
        &pod("default", compliant_spec(json!([gpu(json!(1))]))),
        Stage::Validate,
    );
    assert_eq!(codes(&d), vec!["GPU_RESOURCE_NOT_OFFERED"]);
}

#[test]
fn priority_values_come_from_the_cluster() {
    let p = cluster_policy(&objects(), |_| {});
    let obj = pod("default", json!({"containers": [gpu(json!(1))], "priority": 0}));
    let after = patched(&obj, &run(&p, &obj, Stage::Mutate));
    assert_eq!(
        (
            after["spec"]["priority"].clone(),
            after["spec"]["preemptionPolicy"].clone()
        ),
        (json!(200_000), json!("Never"))
    );
    // A class the cluster does not have is denied with a clear reason.
    let missing: Vec<Value> = objects()
        .into_iter()
        .filter(|o| o["metadata"]["name"] != "high-priority")
        .collect();
    let p = cluster_policy(&missing, |_| {});
    let d = run(&p, &pod("ai", json!({"containers": [gpu(json!(1))]})), Stage::Offline);
    assert_eq!(codes(&d), vec!["PRIORITY_CLASS_NOT_FOUND"]);
    assert!(d.violations[0].message.contains("`high-priority` does not exist"));
}

#[test]
fn a_namespace_label_switches_coral_on() {
    let p = cluster_policy(&objects(), |_| {});
    let coral = |ns: &str| {
        pod(
            ns,
            json!({"containers": [{"name": "c", "image": "i"}], "volumes": [{"name": "usb", "hostPath": {"path": "/dev/bus/usb"}}]}),
        )
    };
    assert_eq!(run(&p, &coral("vision"), Stage::Validate).outcome(), Outcome::Allowed);
    assert_eq!(
        run(&p, &coral("ai"), Stage::Validate).outcome(),
        Outcome::Allowed,
        "the name list still applies"
    );
    let d = run(&p, &coral("default"), Stage::Validate);
    assert_eq!(codes(&d), vec!["HOSTPATH_NAMESPACE_NOT_ALLOWED"]);
    assert!(d.violations[0].message.contains("labelled gpu-admission/coral=enabled"));
    // Without cluster facts the label is not known: the name list alone decides.
    assert_eq!(
        run(&default_policy(), &coral("vision"), Stage::Validate).outcome(),
        Outcome::Denied
    );
}

#[test]
fn never_synced_caches_deny_or_fall_back() {
    let unsynced = |action: &str| {
        let base = policy_with(|s| s["cluster"]["unsyncedAction"] = json!(action));
        base.with_facts(Arc::new(ClusterFacts::default()))
    };
    let obj = pod("default", compliant_spec(json!([gpu(json!(4))])));
    let d = run(&unsynced("deny"), &obj, Stage::Validate);
    assert_eq!(codes(&d), vec!["CLUSTER_STATE_UNAVAILABLE"]);
    let plain = pod("default", json!({"containers": [{"name": "c", "image": "nginx"}]}));
    assert_eq!(
        run(&unsynced("deny"), &plain, Stage::Validate).outcome(),
        Outcome::Allowed,
        "only GPU workloads"
    );
    let d = run(&unsynced("fallback"), &obj, Stage::Validate);
    assert_eq!(d.outcome(), Outcome::Allowed, "{d:?}");
    assert_eq!(
        run(
            &unsynced("fallback"),
            &pod("default", compliant_spec(json!([gpu(json!(5))]))),
            Stage::Validate
        )
        .violations[0]
            .code,
        "SLICES_CONTAINER_EXCEEDED"
    );
}

// === candidate nodes ===

/// Two GPU nodes with different profiles: `big` (replicas 4, 8 allocatable) and `strict`
/// (failRequestsGreaterThanOne, 16 allocatable), labelled `zone`.
fn two_profiles() -> Vec<Value> {
    let mut objects = vec![
        node(
            "big",
            json!({"node-type": "gpu-worker", "zone": "a"}),
            json!({"nvidia.com/gpu": "8"}),
        ),
        node(
            "strict",
            json!({"node-type": "gpu-worker", "zone": "b", "nvidia.com/device-plugin.config": "two"}),
            json!({"nvidia.com/gpu": "16"}),
        ),
    ];
    objects.extend(objects_without_nodes());
    objects
}

fn objects_without_nodes() -> Vec<Value> {
    objects().into_iter().filter(|o| o["kind"] != "Node").collect()
}

fn in_zone(spec: Value, zones: &[&str]) -> Value {
    let mut spec = spec;
    spec["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": zones}]}]}}});
    spec
}

#[test]
fn a_pod_that_fits_no_single_node_is_denied() {
    // Per container, `big` allows 4; per pod, `strict` allows 16. Two containers of 4 (8 in all)
    // pass both cluster-wide bounds, but `big` has 8... so take three: 12 > 8 on big, 4 > 1 on strict.
    let p = cluster_policy(&two_profiles(), |_| {});
    let three = json!([
        named(gpu(json!(4)), "a"),
        named(gpu(json!(4)), "b"),
        named(gpu(json!(4)), "c")
    ]);
    let d = run(&p, &pod("default", compliant_spec(three)), Stage::Validate);
    assert_eq!(codes(&d), vec!["SLICES_NO_NODE_FITS"], "{d:?}");
    let message = &d.violations[0].message;
    assert!(
        message.contains("big: the pod asks for 12 nvidia.com/gpu, 8 allocatable"),
        "{message}"
    );
    assert!(
        message.contains("strict: container `a` asks for 4 nvidia.com/gpu, at most 1 per container"),
        "{message}"
    );
    // Two containers of 4 fit on `big`.
    let two = json!([named(gpu(json!(4)), "a"), named(gpu(json!(4)), "b")]);
    assert_eq!(
        codes(&run(&p, &pod("default", compliant_spec(two)), Stage::Validate)),
        Vec::<&str>::new()
    );
}

#[test]
fn required_affinity_picks_the_profile_that_applies() {
    let p = cluster_policy(&two_profiles(), |_| {});
    let four = || compliant_spec(json!([gpu(json!(4))]));
    let decide = |zones: &[&str]| codes(&run(&p, &pod("default", in_zone(four(), zones)), Stage::Validate));
    assert_eq!(decide(&["a"]), Vec::<&str>::new(), "big gives 4 per container");
    assert_eq!(decide(&["b"]), vec!["SLICES_CONTAINER_EXCEEDED"], "strict gives 1");
    assert_eq!(decide(&["a", "b"]), Vec::<&str>::new(), "either node: big can host it");
    let d = run(&p, &pod("default", in_zone(four(), &["b"])), Stage::Validate);
    assert!(
        d.violations[0]
            .message
            .contains("node strict uses device-plugin config `two`"),
        "{:?}",
        d.violations
    );
}

#[test]
fn no_gpu_node_matches() {
    let p = cluster_policy(&two_profiles(), |_| {});
    let d = run(
        &p,
        &pod("default", in_zone(compliant_spec(json!([gpu(json!(1))])), &["c"])),
        Stage::Validate,
    );
    assert_eq!(codes(&d), vec!["NO_GPU_NODE_MATCHES"]);
    assert!(
        d.violations[0]
            .message
            .contains("big: the required node affinity excludes it"),
        "{:?}",
        d.violations
    );
    // A taint the pod does not tolerate rules a node out; the webhook's own toleration counts.
    let mut tainted = two_profiles();
    for n in tainted.iter_mut().filter(|o| o["kind"] == "Node") {
        n["spec"] = json!({"taints": [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}, {"key": "maintenance", "value": "yes", "effect": "NoExecute"}]});
    }
    let p = cluster_policy(&tainted, |_| {});
    let bare = pod("default", json!({"containers": [gpu(json!(1))]}));
    let d = run(&p, &bare, Stage::Offline);
    assert!(codes(&d).contains(&"NO_GPU_NODE_MATCHES"), "{d:?}");
    assert!(
        d.violations[0]
            .message
            .contains("taint maintenance=yes:NoExecute not tolerated")
    );
    let mut tolerant = bare.clone();
    tolerant["spec"]["tolerations"] = json!([{"key": "maintenance", "operator": "Exists"}]);
    assert!(!codes(&run(&p, &tolerant, Stage::Offline)).contains(&"NO_GPU_NODE_MATCHES"));
    // nodeName: only that node is a candidate.
    let mut pinned = compliant_spec(json!([gpu(json!(4))]));
    pinned["nodeName"] = json!("strict");
    let p = cluster_policy(&two_profiles(), |_| {});
    assert_eq!(
        codes(&run(&p, &pod("default", pinned), Stage::Validate)),
        vec!["SLICES_CONTAINER_EXCEEDED"]
    );
    // Its own action.
    let off = cluster_policy(&two_profiles(), |s| {
        s["rules"]["slices"]["noNodeMatchesAction"] = json!("warn")
    });
    let d = run(
        &off,
        &pod("default", in_zone(compliant_spec(json!([gpu(json!(1))])), &["c"])),
        Stage::Validate,
    );
    assert_eq!(d.outcome(), Outcome::Allowed);
    assert_eq!(codes(&d), vec!["NO_GPU_NODE_MATCHES"]);
}
