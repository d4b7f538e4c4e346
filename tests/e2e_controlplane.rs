//! Smoke test for the e2e harness: a real etcd + kube-apiserver come up and
//! answer kubectl. Fails (never skips) when the binaries are unavailable.

use gpu_admission_testkit::e2e::harness;

#[test]
fn control_plane_serves_kubectl() {
    let cp = harness::shared();
    assert!(cp.server_url().starts_with("https://127.0.0.1:"));
    assert!(cp.kubeconfig_path().is_file());

    harness::kubectl(&["create", "namespace", "ai"], None).assert_success();

    let ns = harness::kubectl(&["get", "namespace", "ai", "-o", "json"], None)
        .assert_success()
        .json();
    assert_eq!(ns["metadata"]["name"], "ai", "unexpected namespace object: {ns}");

    let cm = r#"{
  "apiVersion": "v1",
  "kind": "ConfigMap",
  "metadata": {"name": "smoke", "namespace": "ai"},
  "data": {"k": "v"}
}"#;
    let out = harness::kubectl(&["create", "--dry-run=server", "-o", "json", "-f", "-"], Some(cm));
    out.assert_success();
    let obj = out.json();
    assert_eq!(obj["kind"], "ConfigMap");
    assert_eq!(obj["metadata"]["name"], "smoke");
    assert_eq!(obj["metadata"]["namespace"], "ai");

    // Dry run: nothing was persisted.
    let get = harness::kubectl(&["get", "configmap", "smoke", "-n", "ai"], None);
    assert!(!get.success(), "dry-run ConfigMap was persisted: {get:?}");
    assert!(
        get.stderr.contains("NotFound") || get.stderr.contains("not found"),
        "{get:?}"
    );
}

#[test]
fn admin_is_system_masters() {
    let out = harness::kubectl(&["auth", "can-i", "*", "*", "--all-namespaces"], None);
    out.assert_success();
    assert_eq!(out.stdout.trim(), "yes");
    let who = harness::kubectl(&["auth", "whoami", "-o", "json"], None)
        .assert_success()
        .json();
    assert_eq!(who["status"]["userInfo"]["username"], "admin", "{who}");
    let groups = who["status"]["userInfo"]["groups"].to_string();
    assert!(groups.contains("system:masters"), "{who}");
}
