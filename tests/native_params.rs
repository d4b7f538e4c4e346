//! `serve --cluster --native-params` on a real kube-apiserver 1.37, with no webhook registered:
//! the params ConfigMap of the generated native policies follows the watch caches, so a change
//! of the time-slicing ConfigMap changes a native decision within the wait's bound; the
//! ServiceAccount may update that one ConfigMap and nothing else (deploy/components/native-policies).
//!
//! Also: the three install modes (deploy/components/webhook, native, hybrid) render with
//! kustomize and pass a server-side dry run.
//!
//! Needs `GPU_ADMISSION_K8S_137_DIR` (scripts/test.sh exports it): without it, the tests FAIL.

use std::path::PathBuf;

use gpu_admission_testkit::Wait;
use gpu_admission_testkit::e2e::harness::{self, ControlPlane, Output};
use gpu_admission_testkit::e2e::{cluster, dry_run, native, versions, webhook};
use serde_json::{Value, json};
use webhook::{Webhook, repo, s};

fn cp() -> &'static ControlPlane {
    harness::shared_with(versions::start_k8s_137)
}

fn kubectl(args: &[&str], stdin: Option<&str>) -> Output {
    cp().kubectl(args, stdin)
}

fn gpu_pod(name: &str, gpus: u32) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "cuda",
            "resources": {"limits": {"nvidia.com/gpu": gpus.to_string()}}}]}})
}

fn dry_run(object: &Value) -> Output {
    kubectl(&["apply", "--dry-run=server", "-f", "-"], Some(&object.to_string()))
}

fn param(key: &str) -> String {
    let cm = kubectl(
        &[
            "get",
            "configmap",
            "gpu-admission-native-params",
            "-n",
            "gpu-admission",
            "-o",
            "json",
        ],
        None,
    )
    .assert_success()
    .json();
    cm["data"][key].as_str().unwrap_or_default().to_string()
}

fn can_i(verb: &str, resource: &str) -> String {
    let who = "--as=system:serviceaccount:gpu-admission:gpu-admission";
    let out = kubectl(&["auth", "can-i", verb, resource, "-n", "gpu-admission", who], None);
    out.stdout.trim().to_string()
}

#[test]
fn a_time_slicing_change_reaches_the_native_policies_without_a_webhook() {
    let cp = cp();
    // The nodes and the time-slicing ConfigMap are shared with the other tests here.
    let _guard = native::exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    native::generate(&["-o", s(dir.path())]);
    kubectl(&["apply", "-f", s(dir.path())], None).assert_success();
    let rbac = repo().join("deploy/components/native-policies/rbac.yaml");
    kubectl(&["apply", "-f", s(&rbac)], None).assert_success();
    // The generated params know no GPU node (no --cluster-state).
    assert_eq!(param("gpuNodes"), "");

    let options = cluster::service_account_options("gpu-admission", &cluster::policy_file()).arg("--native-params");
    let _server = Webhook::start(options);
    let hooks = kubectl(
        &[
            "get",
            "mutatingwebhookconfigurations,validatingwebhookconfigurations",
            "-o",
            "name",
        ],
        None,
    );
    assert_eq!(hooks.assert_success().stdout.trim(), "", "no webhook may be registered");

    // The params follow the caches: the GPU nodes are there.
    Wait::new("serve --native-params writes the caches' params", cluster::WAIT).until(|| {
        let nodes = param("gpuNodes");
        if nodes == "gpu-node-1,gpu-node-2" {
            Ok(())
        } else {
            Err(nodes)
        }
    });
    assert_eq!(param("perContainer.nvidia.com_gpu"), "4");
    // The native policies decide: 5 slices are over 4 replicas, 3 are not.
    Wait::new("the native policies refuse 5 slices", cluster::WAIT).until(|| {
        let out = dry_run(&gpu_pod("five", 5));
        if out.stderr.contains("[SLICES_CONTAINER_EXCEEDED]") {
            Ok(())
        } else {
            Err(format!("{out:?}"))
        }
    });
    let three = gpu_pod("three", 3);
    dry_run(&three).assert_success();

    // Time-slicing at 2 replicas: the same pod is refused, natively.
    cluster::apply(
        cp,
        &cluster::config_map(&[("any", cluster::device_plugin_config(2, false))]),
    );
    Wait::new("the native decision follows the time-slicing ConfigMap", cluster::WAIT).until(|| {
        let out = dry_run(&three);
        if !out.success()
            && out.stderr.contains("ValidatingAdmissionPolicy 'gpu-admission-slices'")
            && out.stderr.contains("[SLICES_CONTAINER_EXCEEDED]")
        {
            Ok(())
        } else {
            Err(format!("{out:?}"))
        }
    });
    assert_eq!(param("perContainer.nvidia.com_gpu"), "2");

    // RBAC: update on that one ConfigMap, by name; nothing else.
    assert_eq!(can_i("update", "configmaps/gpu-admission-native-params"), "yes");
    for (verb, resource) in [
        ("update", "configmaps/other"),
        ("create", "configmaps"),
        ("patch", "configmaps/gpu-admission-native-params"),
        ("delete", "configmaps/gpu-admission-native-params"),
    ] {
        assert_eq!(can_i(verb, resource), "no", "{verb} {resource}");
    }
    cluster::baseline();
}

/// deploy/base with the provided-certs component and the mode's, rendered by kustomize.
fn render_mode(mode: &str) -> Vec<Value> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("install-modes")
        .join(mode);
    let out = dry_run::kustomize(dry_run::with_components(&dir, &["provided-certs", mode]));
    let yaml = out.stdout.replace("${CA_BUNDLE}", &webhook::ca_bundle("not a real CA"));
    webhook::yaml_documents(&yaml)
}

#[test]
fn the_three_install_modes_render_and_pass_a_server_side_dry_run() {
    cp();
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gpu-admission"}});
    kubectl(&["apply", "-f", "-"], Some(&ns.to_string())).assert_success();
    for (mode, mutating_webhook, validating_webhook, native) in [
        ("webhook", true, true, false),
        ("native", false, false, true),
        ("hybrid", false, true, true),
    ] {
        let docs = render_mode(mode);
        let count = |kind: &str| docs.iter().filter(|d| d["kind"] == kind).count();
        assert_eq!(
            count("MutatingWebhookConfiguration"),
            usize::from(mutating_webhook),
            "{mode}"
        );
        assert_eq!(
            count("ValidatingWebhookConfiguration"),
            usize::from(validating_webhook),
            "{mode}"
        );
        assert_eq!(count("MutatingAdmissionPolicy"), usize::from(native), "{mode}");
        assert_eq!(count("ValidatingAdmissionPolicy"), if native { 9 } else { 0 }, "{mode}");
        let deployment = docs.iter().find(|d| d["kind"] == "Deployment").expect("Deployment");
        let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
        assert_eq!(args.contains("--native-params"), native, "{mode}: {args}");
        if mode == "hybrid" {
            // The webhook gets GPU workloads and DRA claims only: no hostPath, no tolerations.
            let v = docs
                .iter()
                .find(|d| d["kind"] == "ValidatingWebhookConfiguration")
                .unwrap();
            for w in v["webhooks"].as_array().unwrap() {
                let text = w["matchConditions"].to_string();
                assert!(text.contains("resourceClaims") && !text.contains("hostPath"), "{text}");
            }
        }
        let list = json!({"apiVersion": "v1", "kind": "List", "items": docs}).to_string();
        // --force-conflicts: the other tests of this binary may have applied (client-side) the
        // same policies for real; a dry run takes them over without storing anything.
        let args = [
            "apply",
            "--server-side",
            "--force-conflicts",
            "--dry-run=server",
            "-f",
            "-",
        ];
        let out = kubectl(&args, Some(&list));
        assert!(out.success(), "{mode}: {out:?}");
    }
}

/// `generate native --cluster`: the params from the live cluster, through the same watch caches
/// as `serve --cluster` (the GPU nodes, their allocatable as the per-pod bound).
#[test]
fn generate_native_reads_the_params_from_the_live_cluster() {
    let cp = cp();
    let _guard = native::exclusive();
    let stdout = native::generate(&["--cluster", "--kubeconfig", s(cp.kubeconfig_path())]);
    let docs = webhook::yaml_documents(&stdout);
    let params = docs.iter().find(|d| d["kind"] == "ConfigMap").expect("the params");
    assert_eq!(params["data"]["gpuNodes"], "gpu-node-1,gpu-node-2");
    assert_eq!(params["data"]["perPod.nvidia.com_gpu"], "8");
    let known = params["data"]["knownClasses"].as_str().unwrap_or_default();
    assert!(
        known.contains("high-priority") && known.contains("medium-priority"),
        "{known}"
    );
    assert!(
        known.contains("system-node-critical"),
        "the cluster's classes, not the policy's: {known}"
    );
}
