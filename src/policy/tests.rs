use super::*;
use crate::k8s::device_plugin::TimeSlicing;

const HEAD: &str = "apiVersion: gpu-admission.io/v1alpha1\nkind: Policy\n";

fn load(body: &str) -> Result<Policy, PolicyError> {
    Policy::from_yaml_str(&format!("{HEAD}{body}"), "test.yaml")
}

#[test]
fn embedded_default_spells_out_the_built_in_defaults() {
    let embedded = Policy::embedded_default().unwrap();
    let minimal = load("").unwrap();
    assert_eq!(
        embedded.spec(),
        minimal.spec(),
        "policies/default.yaml and the serde defaults must agree"
    );
    assert_eq!(embedded.shared_resource_name(), "nvidia.com/gpu");
    assert_eq!(embedded.default_priority_class("ai"), "high-priority");
    assert_eq!(embedded.default_priority_class("anything"), "medium-priority");
}

#[test]
fn effective_policy_round_trips() {
    let p = Policy::embedded_default().unwrap();
    let again = Policy::from_yaml_str(&p.to_yaml(), "rendered").unwrap();
    assert_eq!(p.spec(), again.spec());
}

#[test]
fn errors_name_the_field_and_the_reason() {
    // (policy body, expected field path, words the message must hold)
    let cases: &[(&str, &str, &[&str])] = &[
        ("rulez: {}\n", "rulez", &["unknown field `rulez`"]),
        (
            "rules:\n  hostPath:\n    alowed: []\n",
            "rules.hostPath.alowed",
            &["unknown field `alowed`", "allowed"],
        ),
        ("gpu:\n  gpusPerNode: two\n", "gpu.gpusPerNode", &["invalid type"]),
        (
            "gpu:\n  timeSlicing:\n    replicas: -4\n",
            "gpu.timeSlicing.replicas",
            &["invalid type: integer `-4`, expected u32", "line 5"],
        ),
        (
            "rules:\n  slices:\n    action: block\n",
            "rules.slices.action",
            &["unknown variant `block`", "deny"],
        ),
        ("gpu:\n  gpusPerNode: 0\n", "gpu.gpusPerNode", &["at least 1"]),
        (
            "gpu:\n  resourceName: 'nvidia gpu'\n",
            "gpu.resourceName",
            &["not a resource name"],
        ),
        (
            "rules:\n  hostPath:\n    allowed:\n      - {path: /, namespaces: [ai]}\n",
            "rules.hostPath.allowed[0].path",
            &["whole host"],
        ),
        (
            "rules:\n  hostPath:\n    allowed:\n      - {path: /dev/bus/usb/, namespaces: [ai]}\n",
            "rules.hostPath.allowed[0].path",
            &["write `/dev/bus/usb`"],
        ),
        (
            "rules:\n  hostPath:\n    allowed:\n      - {path: dev, namespaces: [ai]}\n",
            "rules.hostPath.allowed[0].path",
            &["absolute"],
        ),
        (
            "rules:\n  hostPath:\n    allowed:\n      - {path: /dev/bus/usb, namespaces: [ai], imagePattern: 'coral/(.*'}\n",
            "rules.hostPath.allowed[0].imagePattern",
            &["not a valid regex"],
        ),
        (
            "rules:\n  priority:\n    allowed: [low-priority]\n",
            "rules.priority.allowed[0]",
            &["`low-priority` is not in rules.priority.classes"],
        ),
        (
            "rules:\n  priority:\n    defaultClass: nope\n",
            "rules.priority.defaultClass",
            &["not in rules.priority.allowed"],
        ),
        (
            "rules:\n  priority:\n    namespaceDefaults: {ai: nope}\n",
            "rules.priority.namespaceDefaults.ai",
            &["not in rules.priority.allowed"],
        ),
        (
            "rules:\n  tolerations:\n    taint: {key: nvidia.com/gpu, effect: Sometimes}\n",
            "rules.tolerations.taint.effect",
            &["NoSchedule"],
        ),
    ];
    for (body, path, words) in cases {
        let err = load(body).expect_err(body);
        assert!(
            !err.message.starts_with("rules") && !err.message.starts_with("gpu"),
            "path said twice: {err}"
        );
        assert_eq!(err.origin, "test.yaml");
        assert_eq!(err.path, *path, "{body}: {err}");
        for w in *words {
            assert!(err.message.contains(w), "{body}: `{}` lacks `{w}`", err.message);
        }
    }
    let wrong_kind = Policy::from_yaml_str("apiVersion: v1\nkind: Policy\n", "x.yaml").unwrap_err();
    assert_eq!(wrong_kind.path, "apiVersion");
    assert!(
        wrong_kind
            .to_string()
            .starts_with("x.yaml: field `apiVersion`: must be"),
        "{wrong_kind}"
    );
}

#[test]
fn missing_file_is_a_clear_error() {
    let err = Policy::load(std::path::Path::new("/nonexistent/policy.yaml")).unwrap_err();
    assert!(
        err.to_string().starts_with("/nonexistent/policy.yaml: cannot read"),
        "{err}"
    );
}

// === time-slicing ===

const CONFIG: &str = "version: v1\nsharing:\n  timeSlicing:\n    failRequestsGreaterThanOne: true\n    resources:\n      - name: nvidia.com/gpu\n        replicas: 2\n";

fn indent(text: &str, by: usize) -> String {
    text.lines().map(|l| format!("{}{l}\n", " ".repeat(by))).collect()
}

#[test]
fn time_slicing_from_the_corpus_configmap() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/corpus/07-time-slicing-configmap-replicas4.yaml"
    );
    let ts = TimeSlicing::load(std::path::Path::new(path)).unwrap();
    assert_eq!(ts.resource_name, "nvidia.com/gpu");
    assert_eq!(ts.spec.replicas, 4);
    assert!(!ts.spec.fail_requests_greater_than_one && !ts.spec.rename_by_default);
    assert_eq!(ts.field, "data.any → sharing.timeSlicing.resources[0]");
}

#[test]
fn time_slicing_shapes() {
    let configmap_many = format!(
        "kind: ConfigMap\napiVersion: v1\nmetadata: {{name: c}}\ndata:\n  a: |\n{}  b: |\n{}",
        indent(CONFIG, 4),
        indent(CONFIG, 4)
    );
    let helm_seed = "devicePlugin:\n  config:\n    name: time-slicing-config\n    default: \"0\"\n    sharing:\n      timeSlicing:\n        renameByDefault: true\n        resources:\n          - name: nvidia.com/gpu\n            replicas: 3\n";
    let helm_data = format!(
        "devicePlugin:\n  config:\n    name: x\n    default: b\n    data:\n      a: |\n{}      b: |\n{}",
        indent("version: v1\nsharing: {}", 8),
        indent(CONFIG, 8)
    );
    let ts = TimeSlicing::from_yaml_str(helm_seed, "values.yaml").unwrap();
    assert_eq!((ts.spec.replicas, ts.spec.rename_by_default), (3, true));
    let ts = TimeSlicing::from_yaml_str(&helm_data, "values.yaml").unwrap();
    assert_eq!((ts.spec.replicas, ts.spec.fail_requests_greater_than_one), (2, true));
    let ts = TimeSlicing::from_yaml_str(CONFIG, "config.yaml").unwrap();
    assert_eq!(ts.spec.replicas, 2);
    // A key named `default` is the device plugin's fallback, as for unlabelled nodes.
    let with_default = configmap_many.replace("  b: |", "  default: |");
    let ts = TimeSlicing::from_yaml_str(&with_default, "cm.yaml").unwrap();
    assert_eq!(ts.field, "data.default → sharing.timeSlicing.resources[0]");
    let err = TimeSlicing::from_yaml_str(&configmap_many, "cm.yaml").unwrap_err();
    assert_eq!(err.path, "data");
    assert!(err.message.contains("several configs (a, b)"), "{err}");
}

#[test]
fn time_slicing_errors_name_the_field() {
    let cases: &[(&str, &str, &str)] = &[
        ("version: v1\nsharing: {}\n", "sharing.timeSlicing", "missing"),
        ("version: v2\nsharing: {}\n", "version", "unsupported"),
        (
            "sharing:\n  timeSlicing:\n    resources: []\n",
            "sharing.timeSlicing.resources",
            "missing or empty",
        ),
        (
            "sharing:\n  timeSlicing:\n    resources:\n      - name: nvidia.com/gpu\n",
            "sharing.timeSlicing.resources[0].replicas",
            "whole number",
        ),
        (
            "sharing:\n  timeSlicing:\n    resources:\n      - {name: nvidia.com/gpu, replicas: \"4\"}\n",
            "sharing.timeSlicing.resources[0].replicas",
            "whole number",
        ),
        (
            "sharing:\n  timeSlicing:\n    resources:\n      - {name: nvidia.com/gpu, replicas: 0}\n",
            "sharing.timeSlicing.resources[0].replicas",
            "at least 2",
        ),
        (
            // The device plugin refuses a config with fewer than 2 replicas (and does not start).
            "sharing:\n  timeSlicing:\n    resources:\n      - {name: nvidia.com/gpu, replicas: 1}\n",
            "sharing.timeSlicing.resources[0].replicas",
            "at least 2",
        ),
        (
            "sharing:\n  timeSlicing:\n    renameByDefault: yes please\n    resources:\n      - {name: nvidia.com/gpu, replicas: 2}\n",
            "sharing.timeSlicing.renameByDefault",
            "true or false",
        ),
        (
            "sharing:\n  timeSlicing:\n    resources:\n      - {replicas: 2}\n",
            "sharing.timeSlicing.resources[0].name",
            "missing",
        ),
        ("kind: ConfigMap\ndata: {}\n", "data", "several configs"),
        ("kind: Service\n", "", "not a device-plugin config"),
    ];
    for (text, path, words) in cases {
        let err = TimeSlicing::from_yaml_str(text, "ts.yaml").expect_err(text);
        assert_eq!(err.path, *path, "{text}: {err}");
        assert!(err.message.contains(words), "{text}: {err}");
    }
}

#[test]
fn time_slicing_feeds_the_policy() {
    let p = Policy::embedded_default().unwrap();
    let ts = TimeSlicing::from_yaml_str(CONFIG, "config.yaml").unwrap();
    let merged = p.with_time_slicing(&ts).unwrap();
    assert_eq!(merged.spec().gpu.time_slicing.replicas, 2);
    assert!(merged.origin().contains("config.yaml"));
    let other = TimeSlicing {
        resource_name: "amd.com/gpu".into(),
        ..ts
    };
    let err = p.with_time_slicing(&other).unwrap_err();
    assert!(err.message.contains("amd.com/gpu"), "{err}");
}
