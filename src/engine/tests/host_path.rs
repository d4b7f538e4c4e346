use serde_json::json;

use super::*;

/// A Coral pod in `ns` mounting host `path` (and an emptyDir before it).
fn host_path_pod(ns: &str, path: &str) -> Value {
    let tpu = Container::new("tpu", "coral/edgetpu:1").mount("usb", "/dev/bus/usb");
    Pod::new()
        .container(tpu)
        .volume(json!({"name": "data", "emptyDir": {}}))
        .host_path_volume("usb", path)
        .ns(ns)
        .build()
}

#[test]
fn host_path_table() {
    let p = default_policy();
    let cases: &[(&str, &str, &[&str])] = &[
        ("ai", "/dev/bus/usb", &[]),
        ("ai", "/dev/bus/usb/", &[]),
        ("ai", "//dev/bus/usb", &[]),
        ("ai", "/dev/bus/usb/001/002", &[]),
        ("ai", "/dev/bus/./usb", &[]),
        ("ai", "/dev/bus/usb/../../etc", &["HOSTPATH_NOT_ALLOWED"]),
        ("ai", "/dev/bus/usb/..", &["HOSTPATH_NOT_ALLOWED"]),
        ("ai", "/dev/bus/usbfs", &["HOSTPATH_NOT_ALLOWED"]),
        ("ai", "/dev", &["HOSTPATH_NOT_ALLOWED"]),
        ("ai", "/", &["HOSTPATH_NOT_ALLOWED"]),
        ("ai", "/var/run/docker.sock", &["HOSTPATH_NOT_ALLOWED"]),
        ("ai", "dev/bus/usb", &["HOSTPATH_INVALID"]),
        ("ai", "", &["HOSTPATH_INVALID"]),
        ("default", "/dev/bus/usb", &["HOSTPATH_NAMESPACE_NOT_ALLOWED"]),
        ("default", "/", &["HOSTPATH_NOT_ALLOWED"]),
        ("monitoring", "/", &[]),
        ("kube-system", "/", &[]),
        ("gpu-operator", "/", &[]),
    ];
    for (ns, path, want) in cases {
        let d = run(&p, &host_path_pod(ns, path), Stage::Validate);
        assert_eq!(codes(&d), *want, "{ns} {path:?}");
        if let Some(v) = d.violations.first() {
            assert_eq!(v.path, "spec.volumes[1].hostPath.path");
            assert_eq!(d.outcome(), Outcome::Denied);
        }
    }
}

#[test]
fn path_tricks_are_named_in_the_message() {
    let p = default_policy();
    let d = run(&p, &host_path_pod("ai", "/dev/bus/usb/../../etc"), Stage::Validate);
    assert!(
        d.violations[0]
            .message
            .contains("`/dev/bus/usb/../../etc` (that is `/dev/etc`)"),
        "{}",
        d.violations[0].message
    );
}

#[test]
fn image_pattern_limits_who_mounts_the_coral() {
    let p = policy_with(|s| s["rules"]["hostPath"]["allowed"][0]["imagePattern"] = json!("coral/.*"));
    assert_eq!(
        codes(&run(&p, &host_path_pod("ai", "/dev/bus/usb"), Stage::Validate)),
        Vec::<&str>::new()
    );
    let mut obj = host_path_pod("ai", "/dev/bus/usb");
    obj["spec"]["containers"][0]["image"] = json!("evil/coral/edgetpu");
    let d = run(&p, &obj, Stage::Validate);
    assert_eq!(codes(&d), vec!["HOSTPATH_IMAGE_NOT_ALLOWED"]);
    assert_eq!(d.violations[0].path, "spec.containers[0].image");
}

#[test]
fn applies_to_every_workload_kind() {
    let p = default_policy();
    let spec =
        json!({"containers": [{"name": "c", "image": "i"}], "volumes": [{"name": "root", "hostPath": {"path": "/"}}]});
    let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "spec": {"template": {"spec": spec}}});
    let cron = json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"}, "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": spec}}}}});
    for (obj, path) in [
        (job, "spec.template.spec.volumes[0].hostPath.path"),
        (cron, "spec.jobTemplate.spec.template.spec.volumes[0].hostPath.path"),
        (
            deployment("default", spec.clone()),
            "spec.template.spec.volumes[0].hostPath.path",
        ),
    ] {
        let d = run(&p, &obj, Stage::Validate);
        assert_eq!(codes(&d), vec!["HOSTPATH_NOT_ALLOWED"]);
        assert_eq!(d.violations[0].path, path);
    }
    for kind in ["StatefulSet", "DaemonSet", "ReplicaSet"] {
        let mut obj = deployment("default", spec.clone());
        obj["kind"] = json!(kind);
        assert_eq!(run(&p, &obj, Stage::Validate).outcome(), Outcome::Denied, "{kind}");
    }
}
