//! Strict input: a covered field of the wrong type, a namespace mismatch or a control character
//! in a path is denied with its path, never allowed by accident.

use serde_json::{Value, json};

use super::*;
use crate::engine::shape::MAX_REPORTED;

fn gpu16() -> Value {
    gpu(json!(16))
}

fn root_volume() -> Value {
    json!([{"name": "root", "hostPath": {"path": "/"}}])
}

/// (name, pod spec, path of the wrong field)
fn wrong_types() -> Vec<(&'static str, Value, &'static str)> {
    vec![
        (
            "containers a map",
            json!({"containers": {"a": gpu16()}}),
            "spec.containers",
        ),
        (
            "initContainers a map",
            json!({"containers": [], "initContainers": {"a": gpu16()}}),
            "spec.initContainers",
        ),
        (
            "a container a string",
            json!({"containers": ["c"]}),
            "spec.containers[0]",
        ),
        (
            "resources a list",
            json!({"containers": [{"name": "c", "resources": [{"limits": {GPU: 16}}]}]}),
            "spec.containers[0].resources",
        ),
        (
            "limits a list",
            json!({"containers": [{"name": "c", "resources": {"limits": [{GPU: 16}]}}]}),
            "spec.containers[0].resources.limits",
        ),
        (
            "requests a string",
            json!({"containers": [{"name": "c", "resources": {"requests": "16"}}]}),
            "spec.containers[0].resources.requests",
        ),
        (
            "volumes a map",
            json!({"containers": [], "volumes": {"root": {"hostPath": {"path": "/"}}}}),
            "spec.volumes",
        ),
        (
            "hostPath a string",
            json!({"containers": [], "volumes": [{"name": "v", "hostPath": "/"}]}),
            "spec.volumes[0].hostPath",
        ),
        (
            "hostPath.path a list",
            json!({"containers": [], "volumes": [{"name": "v", "hostPath": {"path": ["/"]}}]}),
            "spec.volumes[0].hostPath.path",
        ),
        (
            "env a map",
            json!({"containers": [{"name": "c", "env": {"NVIDIA_VISIBLE_DEVICES": "all"}}]}),
            "spec.containers[0].env",
        ),
        (
            "privileged a string",
            json!({"containers": [{"name": "c", "securityContext": {"privileged": "true"}}]}),
            "spec.containers[0].securityContext.privileged",
        ),
        (
            "ephemeral container a number",
            json!({"containers": [], "ephemeralContainers": [1]}),
            "spec.ephemeralContainers[0]",
        ),
        (
            "nodeName a number",
            json!({"containers": [gpu16()], "nodeName": 7}),
            "spec.nodeName",
        ),
    ]
}

#[test]
fn a_covered_field_of_the_wrong_type_is_denied_with_its_path() {
    let p = default_policy();
    for (name, spec, path) in wrong_types() {
        let d = run(&p, &pod("default", spec.clone()), Stage::Validate);
        let found: Vec<(&str, &str)> = d.violations.iter().map(|v| (v.code, v.path.as_str())).collect();
        assert_eq!(found, [("FIELD_INVALID", path)], "{name}: {d:?}");
        assert_eq!(d.outcome(), Outcome::Denied, "{name}");
        // `check` says the same.
        assert_eq!(
            run(&p, &pod("default", spec.clone()), Stage::Offline).outcome(),
            Outcome::Denied
        );
        // The mutating stage never denies and patches nothing.
        let m = run(&p, &pod("default", spec.clone()), Stage::Mutate);
        assert!(m.violations.is_empty() && m.patch.0.is_empty(), "{name}: {m:?}");
        // In a template too, with the template's path.
        let d = run(&p, &deployment("default", spec), Stage::Validate);
        let want = path.replacen("spec.", "spec.template.spec.", 1);
        assert_eq!(
            d.violations.iter().map(|v| v.path.as_str()).collect::<Vec<_>>(),
            [want.as_str()],
            "{name}"
        );
    }
}

#[test]
fn null_is_absent_and_right_types_pass() {
    let p = default_policy();
    let spec = json!({"containers": [{"name": "c", "image": "i", "resources": null, "env": null}], "volumes": null});
    let d = run(&p, &pod("default", spec), Stage::Validate);
    assert!(d.violations.iter().all(|v| v.code != "FIELD_INVALID"), "{d:?}");
}

#[test]
fn a_flood_of_wrong_fields_is_capped() {
    let p = default_policy();
    let spec = json!({"containers": vec![json!("x"); 100_000]});
    let d = run(&p, &pod("default", spec), Stage::Validate);
    assert_eq!(d.violations.len(), MAX_REPORTED);
    assert!(d.violations.last().unwrap().message.contains("only the first"));
}

#[test]
fn metadata_namespace_of_the_wrong_type_is_denied() {
    let p = default_policy();
    let mut obj = pod("default", json!({"containers": [gpu16()]}));
    obj["metadata"]["namespace"] = json!(["kube-system"]);
    let d = run(&p, &obj, Stage::Validate);
    assert_eq!(codes(&d), ["FIELD_INVALID"]);
    assert_eq!(d.violations[0].path, "metadata.namespace");
}

#[test]
fn the_namespace_is_the_contexts_and_a_mismatch_is_denied() {
    let p = default_policy();
    // kube-system and gpu-operator are exempt; ai may mount /dev/bus/usb. None of that applies
    // to a request in `default`.
    let cases = [
        (
            "kube-system",
            json!({"containers": [gpu16()], "volumes": root_volume()}),
        ),
        (
            "gpu-operator",
            json!({"containers": [gpu16()], "volumes": root_volume()}),
        ),
        ("monitoring", json!({"containers": [gpu16()], "volumes": root_volume()})),
        (
            "ai",
            json!({"containers": [{"name": "c", "image": "i"}], "volumes": [{"name": "u", "hostPath": {"path": "/dev/bus/usb"}}]}),
        ),
    ];
    for (theirs, spec) in cases {
        let obj = pod(theirs, spec);
        let ctx = Context::create("default", Stage::Validate);
        let d = evaluate(&p, &obj, &ctx);
        assert_eq!(codes(&d), ["NAMESPACE_MISMATCH"], "{theirs}: {d:?}");
        assert_eq!(d.violations[0].path, "metadata.namespace");
        let m = evaluate(&p, &obj, &Context::create("default", Stage::Mutate));
        assert!(m.violations.is_empty() && m.patch.0.is_empty(), "{theirs}");
    }
    // The request's namespace decides exemption: a request in kube-system is skipped, whatever
    // the object says.
    let obj = pod("default", json!({"containers": [gpu16()]}));
    let d = evaluate(&p, &obj, &Context::create("kube-system", Stage::Validate));
    assert_eq!(d.skipped, Some(crate::decision::SkipReason::ExemptNamespace));
}

#[test]
fn a_host_path_with_a_control_character_is_invalid() {
    let p = default_policy();
    for path in [
        "/dev/bus/usb/\u{0}",
        "/dev/bus/usb\u{0}/../../..",
        "/dev/bus/usb/\n",
        "/dev/bus/usb/\u{7f}x",
        "/dev/bus/usb/\u{85}",
    ] {
        let spec = json!({"containers": [{"name": "c", "image": "i"}], "volumes": [{"name": "u", "hostPath": {"path": path}}]});
        let d = run(&p, &pod("ai", spec), Stage::Validate);
        assert_eq!(codes(&d), ["HOSTPATH_INVALID"], "{path:?}: {d:?}");
        assert!(d.violations[0].message.contains("control character"), "{path:?}");
    }
    // The allowed path itself is still allowed in `ai`.
    let spec = json!({"containers": [{"name": "c", "image": "i"}], "volumes": [{"name": "u", "hostPath": {"path": "/dev/bus/usb/001"}}]});
    let d = run(&p, &pod("ai", spec), Stage::Validate);
    assert!(!codes(&d).contains(&"HOSTPATH_INVALID"), "{d:?}");
}
