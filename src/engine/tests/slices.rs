use serde_json::json;

use super::*;

fn slice_codes(policy: &Effective, spec: Value) -> Vec<&'static str> {
    let d = run(policy, &pod("default", spec), Stage::Validate);
    d.violations
        .iter()
        .filter(|v| v.rule == "slices")
        .map(|v| v.code)
        .collect()
}

#[test]
fn per_container_quantities() {
    let p = default_policy();
    let cases: &[(Value, &[&str])] = &[
        (json!(1), &[]),
        (json!("1"), &[]),
        (json!(4), &[]),
        (json!("4"), &[]),
        (json!(5), &["SLICES_CONTAINER_EXCEEDED"]),
        (json!("1e3"), &["SLICES_CONTAINER_EXCEEDED", "SLICES_POD_EXCEEDED"]),
        (json!("4Gi"), &["SLICES_CONTAINER_EXCEEDED", "SLICES_POD_EXCEEDED"]),
        (json!("0.5"), &["SLICES_INVALID_QUANTITY"]),
        (json!(0.5), &["SLICES_INVALID_QUANTITY"]),
        (json!("500m"), &["SLICES_INVALID_QUANTITY"]),
        (json!("-1"), &["SLICES_INVALID_QUANTITY"]),
        (json!(-1), &["SLICES_INVALID_QUANTITY"]),
        (json!("one"), &["SLICES_INVALID_QUANTITY"]),
        (json!(true), &["SLICES_INVALID_QUANTITY"]),
        (json!("0"), &[]),
    ];
    for (count, want) in cases {
        let got = slice_codes(&p, compliant_spec(json!([gpu(count.clone())])));
        assert_eq!(got, *want, "nvidia.com/gpu: {count}");
    }
}

#[test]
fn invalid_quantity_message_says_what_and_how() {
    let p = default_policy();
    let d = run(
        &p,
        &deployment(
            "default",
            compliant_spec(json!([named(gpu(json!(1)), "a"), named(gpu(json!("-1")), "b")])),
        ),
        Stage::Validate,
    );
    let v = &d.violations[0];
    assert_eq!(
        v.path,
        "spec.template.spec.containers[1].resources.limits[nvidia.com/gpu]"
    );
    assert!(
        v.message.contains("`-1` is negative") && v.message.contains("whole"),
        "{}",
        v.message
    );
}

#[test]
fn pod_over_the_node_with_every_container_within_its_own() {
    let p = default_policy();
    let three = json!([
        named(gpu(json!(3)), "a"),
        named(gpu(json!(3)), "b"),
        named(gpu(json!(3)), "c")
    ]);
    assert_eq!(slice_codes(&p, compliant_spec(three)), vec!["SLICES_POD_EXCEEDED"]);
    let two = json!([named(gpu(json!(4)), "a"), named(gpu(json!(4)), "b")]);
    assert_eq!(slice_codes(&p, compliant_spec(two)), Vec::<&str>::new());
}

#[test]
fn init_containers_and_sidecars_follow_kubernetes_formula() {
    let p = default_policy();
    let sidecar = |n: u64| {
        let mut c = named(gpu(json!(n)), "sidecar");
        c["restartPolicy"] = json!("Always");
        c
    };
    // (init containers, app containers, over the node?)
    let cases = [
        // A plain init container runs alone: max(4, 4) = 4.
        (json!([named(gpu(json!(4)), "init")]), json!([gpu(json!(4))]), false),
        // Sidecars run beside the app: 4 + 3 + 2 = 9 > 8.
        (
            json!([sidecar(2)]),
            json!([named(gpu(json!(4)), "a"), named(gpu(json!(3)), "b")]),
            true,
        ),
        // An init container after a sidecar runs beside it: 4 + 4 = 8, fits.
        (
            json!([sidecar(4), named(gpu(json!(4)), "init")]),
            json!([gpu(json!(1))]),
            false,
        ),
        // Two sidecars then an init container: 3 + 3 + 3 = 9 > 8 during init.
        (
            json!([sidecar(3), named(sidecar(3), "s2"), named(gpu(json!(3)), "init")]),
            json!([{"name": "app", "image": "i"}]),
            true,
        ),
    ];
    for (init, apps, over) in cases {
        let mut spec = compliant_spec(apps.clone());
        spec["initContainers"] = init.clone();
        let got = slice_codes(&p, spec);
        assert_eq!(
            got.contains(&"SLICES_POD_EXCEEDED"),
            over,
            "init {init} apps {apps}: {got:?}"
        );
    }
}

#[test]
fn fail_requests_greater_than_one() {
    let p = policy_with(|s| s["gpu"]["timeSlicing"]["failRequestsGreaterThanOne"] = json!(true));
    assert_eq!(
        slice_codes(&p, compliant_spec(json!([gpu(json!(1))]))),
        Vec::<&str>::new()
    );
    assert_eq!(
        slice_codes(&p, compliant_spec(json!([gpu(json!(2))]))),
        vec!["SLICES_CONTAINER_EXCEEDED"]
    );
    let d = run(
        &p,
        &pod("default", compliant_spec(json!([gpu(json!(2))]))),
        Stage::Validate,
    );
    assert!(d.violations[0].message.contains("failRequestsGreaterThanOne"));
}

#[test]
fn shared_resource_name_when_renamed() {
    let renamed = policy_with(|s| s["gpu"]["timeSlicing"]["renameByDefault"] = json!(true));
    let shared = |n: u64| json!({"name": "c", "image": "i", "resources": {"limits": {"nvidia.com/gpu.shared": n}}});
    assert_eq!(
        slice_codes(&renamed, compliant_spec(json!([shared(4)]))),
        Vec::<&str>::new()
    );
    assert_eq!(
        slice_codes(&renamed, compliant_spec(json!([shared(5)]))),
        vec!["SLICES_CONTAINER_EXCEEDED"]
    );
    // Whole GPUs are no longer offered once renamed.
    let d = run(
        &renamed,
        &pod("default", compliant_spec(json!([gpu(json!(1))]))),
        Stage::Validate,
    );
    assert_eq!(codes(&d), vec!["GPU_RESOURCE_NOT_OFFERED"]);
    assert_eq!(d.outcome(), Outcome::Allowed, "a warning by default");
    // Without renaming, `.shared` is a GPU workload too (it gets placed) but is not offered.
    let p = default_policy();
    let obj = pod("default", json!({"containers": [shared(1)]}));
    let d = run(&p, &obj, Stage::Offline);
    assert!(codes(&d).contains(&"GPU_RESOURCE_NOT_OFFERED"));
    assert_eq!(
        patched(&obj, &d)["spec"]["nodeSelector"]["node-type"],
        json!("gpu-worker")
    );
}

#[test]
fn no_time_slicing_counts_whole_gpus() {
    let p = policy_with(|s| s["gpu"]["timeSlicing"]["replicas"] = json!(1));
    assert_eq!(
        slice_codes(&p, compliant_spec(json!([gpu(json!(2))]))),
        Vec::<&str>::new()
    );
    assert_eq!(
        slice_codes(&p, compliant_spec(json!([gpu(json!(3))]))),
        vec!["SLICES_CONTAINER_EXCEEDED", "SLICES_POD_EXCEEDED"]
    );
}

#[test]
fn vendor_resources_no_node_offers_are_warned() {
    let p = default_policy();
    let c =
        json!({"name": "c", "image": "i", "resources": {"limits": {"nvidia.com/gpu": 1, "nvidia.com/gpumem": 3000}}});
    let d = run(&p, &pod("default", compliant_spec(json!([c]))), Stage::Validate);
    assert_eq!(codes(&d), vec!["GPU_RESOURCE_NOT_OFFERED"]);
    assert_eq!(d.violations[0].action, Action::Warn);
    assert!(d.warnings[0].chars().count() <= 120 && d.warnings[0].starts_with("GPU_RESOURCE_NOT_OFFERED"));
}
