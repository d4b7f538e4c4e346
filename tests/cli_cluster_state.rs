//! `check --cluster-state DIR`: a dump without the device-plugin ConfigMap is warned about,
//! not silently judged as if time-slicing were unknown by design.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_gpu-admission");

const NODE: &str = "apiVersion: v1\nkind: Node\nmetadata:\n  name: gpu-0\n  labels: {node-type: gpu-worker}\nstatus:\n  allocatable: {nvidia.com/gpu: \"8\"}\n";

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: default}\nspec:\n  containers:\n    - name: c\n      image: cuda\n      resources: {limits: {nvidia.com/gpu: 1}}\n";

const CONFIG_MAP: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: time-slicing-config, namespace: gpu-operator}\ndata:\n  any: |\n    version: v1\n    sharing:\n      timeSlicing:\n        resources: [{name: nvidia.com/gpu, replicas: 4}]\n";

fn check(state: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    std::fs::create_dir(&state_dir).unwrap();
    for (i, doc) in state.iter().enumerate() {
        std::fs::write(state_dir.join(format!("{i}.yaml")), doc).unwrap();
    }
    let pod = dir.path().join("pod.yaml");
    std::fs::write(&pod, POD).unwrap();
    let out = Command::new(BIN)
        .arg("check")
        .arg("--cluster-state")
        .arg(&state_dir)
        .arg(&pod)
        .env_remove("GPU_ADMISSION_POLICY")
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_state_without_the_device_plugin_config_map_is_warned() {
    let (code, stderr) = check(&[NODE]);
    assert!(code.is_some_and(|c| c <= 1), "check ran: {code:?} {stderr}");
    assert!(
        stderr.contains("no device-plugin ConfigMap gpu-operator/time-slicing-config"),
        "{stderr}"
    );
    let (_, stderr) = check(&[NODE, CONFIG_MAP]);
    assert!(!stderr.contains("no device-plugin ConfigMap"), "{stderr}");
}
