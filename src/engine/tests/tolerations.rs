use serde_json::json;

use super::*;

#[test]
fn toleration_table() {
    let p = default_policy();
    let wanted = json!({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"});
    // (tolerations, expected tolerations after the offline patch; None = unchanged)
    let cases = [
        (None, Some(json!([wanted]))),
        (Some(json!([])), Some(json!([wanted]))),
        (
            Some(json!([{"key": "other", "operator": "Exists"}])),
            Some(json!([{"key": "other", "operator": "Exists"}, wanted])),
        ),
        (Some(json!([{"operator": "Exists"}])), None),
        (Some(json!([{"key": "nvidia.com/gpu", "operator": "Exists"}])), None),
        (
            Some(json!([{"key": "nvidia.com/gpu", "value": "", "effect": "NoSchedule"}])),
            None,
        ),
        (
            Some(json!([{"key": "nvidia.com/gpu", "operator": "Equal", "value": "x", "effect": "NoSchedule"}])),
            Some(json!(null)),
        ),
        (
            Some(json!([{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}])),
            Some(json!(null)),
        ),
    ];
    for (tolerations, want) in cases {
        let mut spec = json!({"containers": [gpu(json!(1))]});
        if let Some(t) = &tolerations {
            spec["tolerations"] = t.clone();
        }
        let obj = pod("default", spec);
        let d = run(&p, &obj, Stage::Offline);
        let after = patched(&obj, &d)["spec"]["tolerations"].clone();
        match want {
            None => assert_eq!(Some(&after), tolerations.as_ref(), "{tolerations:?} must be left alone"),
            Some(Value::Null) => {
                let list = after.as_array().unwrap();
                assert_eq!(
                    list.last(),
                    Some(&wanted),
                    "{tolerations:?}: the GPU toleration is appended"
                );
            }
            Some(w) => assert_eq!(after, w, "{tolerations:?}"),
        }
    }
}

#[test]
fn validating_a_pod_without_the_toleration_denies() {
    let p = default_policy();
    let mut spec = compliant_spec(json!([gpu(json!(1))]));
    spec.as_object_mut().unwrap().remove("tolerations");
    let d = run(&p, &pod("default", spec), Stage::Validate);
    assert_eq!(codes(&d), vec!["TOLERATION_MISSING"]);
    assert_eq!(d.violations[0].path, "spec.tolerations");
    assert_eq!(d.outcome(), Outcome::Denied);
}

#[test]
fn tolerations_of_wrong_type_are_reported() {
    let p = default_policy();
    let d = run(
        &p,
        &pod("default", json!({"containers": [gpu(json!(1))], "tolerations": "all"})),
        Stage::Offline,
    );
    assert!(
        d.violations
            .iter()
            .any(|v| v.rule == "tolerations" && v.code == "FIELD_INVALID")
    );
}
