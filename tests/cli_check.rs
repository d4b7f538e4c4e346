//! `gpu-admission check` and `gpu-admission policy check`, run as the built binary.
//!
//! The corpus test reads the expected decisions from `../shared/corpus/README.md`'s table, so
//! the README and the test cannot disagree.

use std::path::PathBuf;
use std::process::{Command, Output};

use gpu_admission_testkit::paths::{shared_dir, temp_file};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_gpu-admission");

fn corpus() -> PathBuf {
    shared_dir().join("corpus")
}

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    gpu_admission_testkit::process::run(Command::new(BIN).args(args), stdin.unwrap_or("").as_bytes())
}

fn json_reports(out: &Output) -> Vec<Value> {
    let doc = serde_json::from_slice::<Value>(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    doc["results"]
        .as_array()
        .unwrap_or_else(|| panic!("`results` is an array: {doc:#}"))
        .clone()
}

/// `(file, decision)` rows of the corpus README's table.
fn expected_decisions() -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(corpus().join("README.md")).expect("corpus README");
    let rows: Vec<(String, String)> = readme
        .lines()
        .filter(|l| l.starts_with("| ") && l.contains(".yaml"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells[1].to_string(), cells[3].to_string())
        })
        .collect();
    assert!(rows.len() >= 20, "the table has a row per file: {rows:?}");
    rows
}

#[test]
fn every_corpus_file_gets_the_decision_its_readme_gives() {
    for (file, want) in expected_decisions() {
        let path = corpus().join(&file);
        let out = run(&["check", "--output", "json", path.to_str().unwrap()], None);
        let reports = json_reports(&out);
        let want_code = if want == "denied" { 1 } else { 0 };
        assert_eq!(
            out.status.code(),
            Some(want_code),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if reports.is_empty() {
            assert_eq!(want, "allowed", "{file}: no workload in it, so nothing can be {want}");
        }
        for r in &reports {
            assert_eq!(r["decision"], json!(want), "{file}: {r:#}");
            for key in [
                "file",
                "document",
                "kind",
                "namespace",
                "name",
                "violations",
                "warnings",
                "patch",
            ] {
                assert!(r.get(key).is_some(), "{file}: report lacks `{key}`");
            }
        }
    }
}

#[test]
fn corpus_details_hold() {
    let out = run(&["check", "--output", "json", corpus().to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    let reports = json_reports(&out);
    let find = |file: &str| {
        reports
            .iter()
            .find(|r| r["file"].as_str().unwrap().ends_with(file))
            .unwrap_or_else(|| panic!("{file}"))
    };
    let patch_paths = |r: &Value| -> Vec<String> {
        r["patch"]
            .as_array()
            .unwrap()
            .iter()
            .map(|op| op["path"].as_str().unwrap().to_string())
            .collect()
    };
    // 09: a bare Pod gets the class and its value.
    let jupyter = find("09-gpu-operator-tf-jupyter-notebook-pod.yaml");
    assert_eq!(jupyter["document"], json!(1), "the Pod is the second document");
    assert!(
        jupyter["patch"]
            .as_array()
            .unwrap()
            .contains(&json!({"op": "add", "path": "/spec/priority", "value": 100000}))
    );
    // 08 and 12 already tolerate the taint.
    for file in [
        "08-gpu-operator-time-slicing-verification-deployment.yaml",
        "12-nvidia-readme-cuda-vectoradd-pod.yaml",
    ] {
        assert!(
            !patch_paths(find(file)).iter().any(|p| p.contains("tolerations")),
            "{file}"
        );
    }
    // 02 keeps its own selector and gets node-type beside it.
    assert!(
        patch_paths(find("02-homeiac-ollama-gpu-deployment.yaml"))
            .contains(&"/spec/template/spec/nodeSelector/node-type".to_string())
    );
    // 13 names the rule, code and field.
    let root = &find("13-badpods-hostpath-root-pod.yaml")["violations"][0];
    assert_eq!(
        (root["code"].as_str(), root["rule"].as_str(), root["path"].as_str()),
        (
            Some("HOSTPATH_NOT_ALLOWED"),
            Some("hostPath"),
            Some("spec.volumes[0].hostPath.path")
        )
    );
    // 30 warns about HAMi's resources.
    let hami = find("30-hami-gpumem-gpucores-pod.yaml");
    assert!(
        hami["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("nvidia.com/gpumem"))
    );
    // Text output: a line per object and a summary.
    let text = run(&["check", corpus().to_str().unwrap()], None);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(
        stdout.contains(
            "19 objects checked: 7 allowed, 9 mutated, 3 denied; skipped: 0 not Kubernetes objects, 7 not workloads, 0 by --skip-kind; 20 files (0 ignored, 0 symlink loops, 0 duplicates); 0 errors"
        ),
        "{stdout}"
    );
}

#[test]
fn fix_writes_manifests_that_check_clean() {
    let out = run(
        &[
            "check",
            "--fix",
            corpus()
                .join("09-gpu-operator-tf-jupyter-notebook-pod.yaml")
                .to_str()
                .unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let fixed = String::from_utf8(out.stdout).unwrap();
    assert!(
        fixed.contains("kind: Service"),
        "every document is written, not only workloads:\n{fixed}"
    );
    assert!(
        fixed.contains("node-type: gpu-worker") && fixed.contains("priority: 100000"),
        "{fixed}"
    );
    let again = run(&["check", "--output", "json", "-"], Some(&fixed));
    let reports = json_reports(&again);
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0]["decision"], json!("allowed"), "{:#}", reports[0]);
    assert_eq!(reports[0]["patch"], json!([]));
}

#[test]
fn lists_stdin_and_namespaces() {
    let list = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "gpu"}, "spec": {"containers": [{"name": "c", "image": "i", "resources": {"limits": {"nvidia.com/gpu": 1}}}]}}
    ]});
    let out = run(
        &["check", "--output", "json", "--namespace", "ai", "-"],
        Some(&list.to_string()),
    );
    assert_eq!(out.status.code(), Some(0));
    let reports = json_reports(&out);
    assert_eq!(reports.len(), 1);
    assert_eq!(
        (
            reports[0]["file"].as_str(),
            reports[0]["item"].as_u64(),
            reports[0]["namespace"].as_str()
        ),
        (Some("-"), Some(1), Some("ai"))
    );
    assert!(
        reports[0]["patch"]
            .as_array()
            .unwrap()
            .contains(&json!({"op": "add", "path": "/spec/priorityClassName", "value": "high-priority"}))
    );
}

#[test]
fn broken_input_exits_2_naming_file_and_document() {
    let dir = tempfile::tempdir().unwrap();
    let good = "apiVersion: v1\nkind: Pod\nmetadata: {name: ok}\nspec: {containers: [{name: c, image: i}]}\n";
    // (file, text, flag, error): documents that are not Kubernetes objects are errors under --strict.
    let cases: &[(&str, String, &str, &str)] = &[
        (
            "bad.yaml",
            format!("{good}---\nkind: Pod\nmetadata: [unclosed\n"),
            "--namespace=default",
            "bad.yaml:8: document 1: not valid YAML",
        ),
        (
            "nokind.yaml",
            format!("{good}---\napiVersion: v1\nmetadata: {{name: x}}\n"),
            "--strict",
            "nokind.yaml: document 1: not a Kubernetes object: `kind` is missing",
        ),
        (
            "scalar.yaml",
            "just a string\n".to_string(),
            "--strict",
            "scalar.yaml: document 0: not a Kubernetes object: the document is a string",
        ),
        (
            "list.json",
            r#"{"apiVersion": "v1", "kind": "List", "items": [3]}"#.to_string(),
            "--namespace=default",
            "list.json: document 0: items[0]: expected a Kubernetes object",
        ),
    ];
    for (name, text, flag, want) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let out = run(&["check", flag, path.to_str().unwrap()], None);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.contains(want), "{name}: {stderr}");
    }
    let missing = run(&["check", "/nonexistent.yaml"], None);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent.yaml: cannot read"));
}

#[test]
fn directories_are_read_recursively_and_policy_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: root}\nspec:\n  containers: [{name: c, image: i}]\n  volumes: [{name: r, hostPath: {path: /}}]\n";
    std::fs::write(dir.path().join("sub/pod.yml"), pod).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a manifest").unwrap();
    let out = run(&["check", "--output", "json", dir.path().to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json_reports(&out).len(), 1);
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: gpu-admission.io/v1alpha1\nkind: Policy\nrules: {slices: {acton: deny}}\n",
    )
    .unwrap();
    let out = run(
        &[
            "check",
            "--policy",
            policy.to_str().unwrap(),
            dir.path().to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("policy.yaml: field `rules.slices.acton`: unknown field `acton`"),
        "{stderr}"
    );
}

#[test]
fn time_slicing_file_changes_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: i, resources: {limits: {nvidia.com/gpu: 3}}}]\n";
    let path = dir.path().join("pod.yaml");
    std::fs::write(&path, pod).unwrap();
    assert_eq!(run(&["check", path.to_str().unwrap()], None).status.code(), Some(0));
    let cm = "kind: ConfigMap\napiVersion: v1\ndata:\n  any: |\n    version: v1\n    sharing:\n      timeSlicing:\n        resources: [{name: nvidia.com/gpu, replicas: 2}]\n";
    let ts = dir.path().join("ts.yaml");
    std::fs::write(&ts, cm).unwrap();
    let out = run(
        &["check", "--time-slicing", ts.to_str().unwrap(), path.to_str().unwrap()],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("SLICES_CONTAINER_EXCEEDED"));
    let corpus_cm = corpus().join("07-time-slicing-configmap-replicas4.yaml");
    let out = run(
        &["policy", "check", "--time-slicing", corpus_cm.to_str().unwrap()],
        None,
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("replicas: 4"));
}

#[test]
fn policy_check_prints_the_effective_policy_or_the_error() {
    let out = run(&["policy", "check", "policies/default.yaml"], None);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("gpusPerNode: 2") && stdout.contains("high-priority"),
        "{stdout}"
    );
    let (_dir, bad) = temp_file(
        "bad.yaml",
        "apiVersion: gpu-admission.io/v1alpha1\nkind: Policy\ngpu: {gpusPerNode: many}\n",
    );
    let out = run(&["policy", "check", bad.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("field `gpu.gpusPerNode`: invalid type"));
}
