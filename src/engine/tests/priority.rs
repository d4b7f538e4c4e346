use serde_json::json;

use super::*;

#[test]
fn bare_pod_gets_class_priority_and_preemption_policy() {
    let p = default_policy();
    // (namespace, spec extras, expected class, expected priority)
    let cases = [
        ("ai", json!({}), "high-priority", 1_000_000),
        ("default", json!({}), "medium-priority", 100_000),
        ("ollama", json!({"priority": 0}), "medium-priority", 100_000),
        (
            "ai",
            json!({"priority": 0, "preemptionPolicy": "Never"}),
            "high-priority",
            1_000_000,
        ),
        ("ai", json!({"priorityClassName": ""}), "high-priority", 1_000_000),
    ];
    for (ns, extras, class, priority) in cases {
        let mut spec = json!({"containers": [gpu(json!(1))]});
        spec.as_object_mut()
            .unwrap()
            .extend(extras.as_object().unwrap().clone());
        let obj = pod(ns, spec);
        let d = run(&p, &obj, Stage::Mutate);
        let after = patched(&obj, &d);
        assert_eq!(after["spec"]["priorityClassName"], json!(class), "{ns} {extras}");
        assert_eq!(after["spec"]["priority"], json!(priority), "{ns} {extras}");
        assert_eq!(
            after["spec"]["preemptionPolicy"],
            json!("PreemptLowerPriority"),
            "{ns} {extras}"
        );
    }
}

#[test]
fn templates_get_only_the_class_name() {
    let p = default_policy();
    let obj = deployment("ai", json!({"containers": [gpu(json!(1))]}));
    let d = run(&p, &obj, Stage::Offline);
    let spec = &patched(&obj, &d)["spec"]["template"]["spec"];
    assert_eq!(spec["priorityClassName"], json!("high-priority"));
    assert!(spec.get("priority").is_none() && spec.get("preemptionPolicy").is_none());
}

#[test]
fn class_outside_the_allowed_set_is_denied() {
    let p = default_policy();
    for class in ["system-node-critical", "low-priority"] {
        let mut spec = compliant_spec(json!([gpu(json!(1))]));
        spec["priorityClassName"] = json!(class);
        let d = run(&p, &pod("ai", spec), Stage::Validate);
        assert_eq!(codes(&d), vec!["PRIORITY_CLASS_NOT_ALLOWED"], "{class}");
        assert!(d.violations[0].message.contains("high-priority, medium-priority"));
        assert_eq!(d.violations[0].path, "spec.priorityClassName");
    }
}

#[test]
fn allowed_class_with_wrong_resolved_values_is_fixed() {
    let p = default_policy();
    let mut spec = compliant_spec(json!([gpu(json!(1))]));
    spec["priority"] = json!(5);
    let obj = pod("default", spec);
    let d = run(&p, &obj, Stage::Mutate);
    assert_eq!(patched(&obj, &d)["spec"]["priority"], json!(100_000));
    // Right values: nothing to do.
    let mut spec = compliant_spec(json!([gpu(json!(1))]));
    spec["priority"] = json!(100_000);
    spec["preemptionPolicy"] = json!("PreemptLowerPriority");
    assert!(run(&p, &pod("default", spec), Stage::Mutate).patch.0.is_empty());
}

#[test]
fn namespace_defaults_come_from_the_policy() {
    let p = policy_with(|s| s["rules"]["priority"]["namespaceDefaults"] = json!({"vision": "high-priority"}));
    let obj = pod("vision", json!({"containers": [gpu(json!(1))]}));
    let d = run(&p, &obj, Stage::Mutate);
    assert_eq!(patched(&obj, &d)["spec"]["priorityClassName"], json!("high-priority"));
    let obj = pod("ai", json!({"containers": [gpu(json!(1))]}));
    let d = run(&p, &obj, Stage::Mutate);
    assert_eq!(patched(&obj, &d)["spec"]["priorityClassName"], json!("medium-priority"));
}
