use serde_json::json;

use super::*;

#[test]
fn placement_table() {
    let p = default_policy();
    // (nodeSelector, expected codes, expected nodeSelector after the offline patch)
    let cases = [
        (json!(null), vec![], Some(json!({"node-type": "gpu-worker"}))),
        (
            json!({"zone": "a"}),
            vec![],
            Some(json!({"zone": "a", "node-type": "gpu-worker"})),
        ),
        (
            json!({"node-type": "gpu-worker"}),
            vec![],
            Some(json!({"node-type": "gpu-worker"})),
        ),
        (json!({"node-type": "cpu-worker"}), vec!["PLACEMENT_CONFLICT"], None),
        (json!({"node-type": 7}), vec!["PLACEMENT_CONFLICT"], None),
        (json!(["node-type"]), vec!["FIELD_INVALID"], None),
    ];
    for (selector, want_codes, want_selector) in cases {
        let mut spec = json!({"containers": [gpu(json!(1))]});
        if !selector.is_null() {
            spec["nodeSelector"] = selector.clone();
        }
        let obj = pod("default", spec);
        let d = run(&p, &obj, Stage::Offline);
        let placement: Vec<_> = d
            .violations
            .iter()
            .filter(|v| v.rule == "placement")
            .map(|v| v.code)
            .collect();
        assert_eq!(placement, want_codes, "{selector}");
        if let Some(want) = want_selector {
            assert_eq!(patched(&obj, &d)["spec"]["nodeSelector"], want, "{selector}");
        }
    }
}

#[test]
fn conflict_names_the_field_and_both_values() {
    let p = default_policy();
    let obj = deployment(
        "ai",
        json!({"containers": [gpu(json!(1))], "nodeSelector": {"node-type": "cpu"}}),
    );
    let d = run(&p, &obj, Stage::Validate);
    let v = d
        .violations
        .iter()
        .find(|v| v.code == "PLACEMENT_CONFLICT")
        .expect("conflict");
    assert_eq!(v.path, "spec.template.spec.nodeSelector.node-type");
    assert!(
        v.message.contains("node-type=cpu") && v.message.contains("node-type=gpu-worker"),
        "{}",
        v.message
    );
    assert_eq!(d.outcome(), Outcome::Denied);
}

#[test]
fn non_gpu_pods_are_not_placed() {
    let p = default_policy();
    for count in [json!("0"), json!(0)] {
        let d = run(
            &p,
            &pod("default", json!({"containers": [gpu(count.clone())]})),
            Stage::Offline,
        );
        assert_eq!(d.outcome(), Outcome::Allowed, "{count}: {d:?}");
    }
    let plain = pod("default", json!({"containers": [{"name": "c", "image": "nginx"}]}));
    assert_eq!(run(&p, &plain, Stage::Mutate).outcome(), Outcome::Allowed);
}

#[test]
fn actions_warn_and_off() {
    let mut spec = compliant_spec(json!([gpu(json!(1))]));
    spec["nodeSelector"]["node-type"] = json!("cpu");
    let obj = pod("default", spec);
    let warn = policy_with(|s| s["rules"]["placement"]["action"] = json!("warn"));
    let d = run(&warn, &obj, Stage::Validate);
    assert!(
        d.violations
            .iter()
            .any(|v| v.code == "PLACEMENT_CONFLICT" && v.action == Action::Warn)
    );
    assert!(
        d.warnings.iter().any(|w| w.starts_with("PLACEMENT_CONFLICT")),
        "{:?}",
        d.warnings
    );
    assert_eq!(codes(&d), vec!["PLACEMENT_CONFLICT"]);
    assert_eq!(d.outcome(), Outcome::Allowed);
    let off = policy_with(|s| s["rules"]["placement"]["action"] = json!("off"));
    let d = run(&off, &obj, Stage::Offline);
    assert!(d.violations.iter().all(|v| v.rule != "placement"));
    assert_eq!(d.outcome(), Outcome::Allowed);
    let bare = pod("default", json!({"containers": [gpu(json!(1))]}));
    let d = run(&off, &bare, Stage::Offline);
    assert!(
        patched(&bare, &d)["spec"].get("nodeSelector").is_none(),
        "an `off` rule adds nothing"
    );
}

#[test]
fn required_node_affinity_that_rules_out_gpu_nodes_conflicts() {
    let p = default_policy();
    let term =
        |op: &str, values: Value| json!({"matchExpressions": [{"key": "node-type", "operator": op, "values": values}]});
    let other = json!({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]});
    // (nodeSelectorTerms, conflict?)
    let cases = [
        (json!([term("In", json!(["cpu-worker"]))]), true),
        (json!([term("NotIn", json!(["gpu-worker"]))]), true),
        (json!([term("DoesNotExist", json!(null))]), true),
        (
            json!([
                term("In", json!(["cpu-worker"])),
                term("In", json!(["gpu-worker", "x"]))
            ]),
            false,
        ),
        (json!([term("In", json!(["cpu-worker"])), other.clone()]), false),
        (json!([term("Exists", json!(null))]), false),
        (json!([other]), false),
        (json!([]), false),
    ];
    for (terms, conflict) in cases {
        let mut spec = compliant_spec(json!([gpu(json!(1))]));
        spec["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms.clone()}}});
        let d = run(&p, &pod("default", spec), Stage::Validate);
        assert_eq!(codes(&d).contains(&"PLACEMENT_CONFLICT"), conflict, "{terms}");
        if conflict {
            assert_eq!(
                d.violations[0].path,
                "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms"
            );
        }
    }
}
