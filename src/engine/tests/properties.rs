//! Properties: a mutated object evaluates to an empty patch; nothing panics on any JSON.

use proptest::prelude::*;
use serde_json::{Map, json};

use super::*;

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        prop_oneof![".*", "[0-9]{1,3}(m|Gi|e3)?", Just("/dev/bus/usb/..".to_string())].prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let keys = prop_oneof![
            "[a-z]{1,8}",
            Just("spec".to_string()),
            Just("containers".to_string()),
            Just("resources".to_string()),
            Just("limits".to_string()),
            Just("nvidia.com/gpu".to_string()),
            Just("volumes".to_string()),
            Just("hostPath".to_string()),
            Just("tolerations".to_string()),
            Just("nodeSelector".to_string()),
            Just("initContainers".to_string()),
            Just("template".to_string()),
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(keys, inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A covered object whose body is arbitrary.
fn arb_object() -> impl Strategy<Value = Value> {
    let kinds = prop_oneof![
        Just(("v1", "Pod")),
        Just(("apps/v1", "Deployment")),
        Just(("apps/v1", "DaemonSet")),
        Just(("batch/v1", "CronJob")),
        Just(("v1", "Service")),
    ];
    (kinds, arb_json()).prop_map(|((api, kind), spec)| json!({"apiVersion": api, "kind": kind, "metadata": {"name": "x", "namespace": "ai"}, "spec": spec}))
}

fn arb_gpu_pod() -> impl Strategy<Value = Value> {
    let count = prop_oneof![Just(json!(1)), Just(json!("2")), Just(json!(0)), Just(json!("4"))];
    let selector = prop_oneof![
        Just(None),
        Just(Some(json!({}))),
        Just(Some(json!({"zone": "a"}))),
        Just(Some(json!({"node-type": "gpu-worker"})))
    ];
    let tolerations = prop_oneof![
        Just(None),
        Just(Some(json!([]))),
        Just(Some(json!([{"key": "other", "operator": "Exists"}]))),
        Just(Some(json!([{"key": "nvidia.com/gpu", "operator": "Exists"}]))),
    ];
    let class = prop_oneof![Just(None), Just(Some("high-priority")), Just(Some("medium-priority"))];
    let priority = prop_oneof![Just(None), Just(Some(0)), Just(Some(100_000))];
    let ns = prop_oneof![Just("ai"), Just("default"), Just("ollama")];
    let kind = prop_oneof![Just(true), Just(false)];
    (count, selector, tolerations, class, priority, ns, kind).prop_map(
        |(count, selector, tolerations, class, priority, ns, is_pod)| {
            let mut spec = json!({"containers": [gpu(count)]});
            if let Some(s) = selector {
                spec["nodeSelector"] = s;
            }
            if let Some(t) = tolerations {
                spec["tolerations"] = t;
            }
            if let Some(c) = class {
                spec["priorityClassName"] = json!(c);
            }
            if let Some(p) = priority {
                spec["priority"] = json!(p);
            }
            if is_pod { pod(ns, spec) } else { deployment(ns, spec) }
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_on_arbitrary_json(object in arb_object(), raw in arb_json()) {
        let p = default_policy();
        for stage in [Stage::Mutate, Stage::Validate, Stage::Offline] {
            for obj in [&object, &raw] {
                let d = run(&p, obj, stage);
                // Whatever it decided, a patch it returns applies.
                let mut copy = obj.clone();
                prop_assert!(json_patch::patch(&mut copy, &d.patch).is_ok(), "{obj} {:?}", d.patch);
                prop_assert!(d.warnings.iter().all(|w| w.chars().count() <= 120));
            }
        }
    }

    #[test]
    fn mutation_is_idempotent(object in arb_gpu_pod()) {
        let p = default_policy();
        for stage in [Stage::Mutate, Stage::Offline] {
            let first = run(&p, &object, stage);
            let mutated = patched(&object, &first);
            let second = run(&p, &mutated, stage);
            prop_assert!(second.patch.0.is_empty(), "{stage:?}: second pass patched {:?}", second.patch);
        }
        let templates = policy_with(|s| s["mutateTemplates"] = json!(true));
        let first = run(&templates, &object, Stage::Mutate);
        let second = run(&templates, &patched(&object, &first), Stage::Mutate);
        prop_assert!(second.patch.0.is_empty());
        // And what validation sees after mutation of a pod is never a missing-field denial.
        let after = run(&templates, &patched(&object, &first), Stage::Validate);
        prop_assert!(after.violations.iter().all(|v| !v.code.ends_with("_MISSING")), "{:?}", after.violations);
    }
}
