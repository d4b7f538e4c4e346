//! `gpu-admission generate`: what each subcommand writes, and how it fails.

use std::process::Command;

use gpu_admission_testkit::e2e::webhook::yaml_documents;

const BIN: &str = env!("CARGO_BIN_EXE_gpu-admission");

const NODE: &str = "apiVersion: v1\nkind: Node\nmetadata:\n  name: gpu-0\n  labels: {node-type: gpu-worker}\nstatus:\n  allocatable: {nvidia.com/gpu: \"8\"}\n";

const CONFIG_MAP: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: time-slicing-config, namespace: gpu-operator}\ndata:\n  any: |\n    version: v1\n    sharing:\n      timeSlicing:\n        resources: [{name: nvidia.com/gpu, replicas: 2}]\n";

fn generate(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN)
        .arg("generate")
        .args(args)
        .env_remove("GPU_ADMISSION_POLICY")
        .env_remove("GPU_ADMISSION_TIME_SLICING")
        .output()
        .expect("run gpu-admission generate");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn generate_webhooks_prints_what_deploy_holds() {
    let (code, stdout, stderr) = generate(&["webhooks"]);
    assert_eq!(code, Some(0), "{stderr}");
    let deploy =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/webhooks/webhooks.yaml")).unwrap();
    assert!(
        stdout == deploy,
        "generate webhooks differs from deploy/webhooks/webhooks.yaml"
    );
}

#[test]
fn generate_native_takes_the_params_from_a_cluster_state() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::write(state.join("node.yaml"), NODE).unwrap();
    std::fs::write(state.join("cm.yaml"), CONFIG_MAP).unwrap();
    let (code, stdout, stderr) = generate(&["native", "--cluster-state", state.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stderr}");
    let docs = yaml_documents(&stdout);
    let params = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap")
        .expect("the params ConfigMap");
    let data = &params["data"];
    assert_eq!(data["gpuNodes"], "gpu-0");
    // The cluster-wide bound: the device plugin's 2 replicas, the node's 8 allocatable.
    assert_eq!(data["perContainer.nvidia.com_gpu"], "2");
    assert_eq!(data["perPod.nvidia.com_gpu"], "8");
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "MutatingAdmissionPolicy").count(), 1);
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == "ValidatingAdmissionPolicyBinding")
            .count(),
        9
    );
}

#[test]
fn generate_native_writes_three_files_into_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("native");
    let (code, stdout, stderr) = generate(&["native", "-o", out.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    for (file, deployed) in ["params.yaml", "validating.yaml", "mutating.yaml"].map(|f| {
        (
            f,
            format!("{}/deploy/components/native-policies/{f}", env!("CARGO_MANIFEST_DIR")),
        )
    }) {
        let written = std::fs::read_to_string(out.join(file)).unwrap();
        assert_eq!(written, std::fs::read_to_string(deployed).unwrap(), "{file}");
    }
}

#[test]
fn a_bad_policy_exits_2_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: gpu-admission.io/v1alpha1\nkind: Policy\nrules:\n  placement: {acton: deny}\n",
    )
    .unwrap();
    let (policy, root) = (policy.to_str().unwrap(), dir.path().to_str().unwrap());
    for sub in ["webhooks", "native", "deploy"] {
        let mut args = vec![sub, "--policy", policy];
        if sub == "deploy" {
            args.extend(["--root", root]);
        }
        let (code, _, stderr) = generate(&args);
        assert_eq!(code, Some(2), "{sub}: {stderr}");
        assert!(stderr.contains("acton"), "{sub}: {stderr}");
    }
}
