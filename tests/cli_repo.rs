//! `check` on a GitOps repository laid out like the seed's, its output formats (golden files;
//! SARIF validated against the SARIF 2.1.0 schema), `--fix --write` on the corpus, `gpu-admission
//! test`, completions and the man page. Run as the built binary.
//!
//! Golden files: `tests/golden/repo.*`; `GPU_ADMISSION_UPDATE_GOLDEN=1` rewrites them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gpu_admission_testkit::paths::{repo, shared_dir};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_gpu-admission");

fn run_in(dir: &Path, args: &[&str]) -> Output {
    gpu_admission_testkit::process::run(Command::new(BIN).current_dir(dir).args(args), b"")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn write(root: &Path, file: &str, text: &str) {
    let path = root.join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

const GPU_DEPLOYMENT: &str = "# Ollama on the GPU nodes\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ollama\n  namespace: ai\nspec:\n  selector:\n    matchLabels: {app: ollama}\n  template:\n    metadata:\n      labels: {app: ollama}\n    spec:\n      containers:\n        - name: ollama\n          image: ollama/ollama:0.20.2   # pinned\n          resources:\n            limits:\n              nvidia.com/gpu: 1\n";

const ROOT_POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: debug\n  namespace: apps\nspec:\n  containers:\n    - name: sh\n      image: busybox\n  volumes:\n    - name: host\n      hostPath:\n        path: /\n";

/// A repository like the seed's: Argo CD apps, a Helm chart's Chart.yaml and values.yaml,
/// talconfig.yaml, kustomizations, a .gitignore'd folder and a symlink loop.
fn fixture_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, ".gitignore", "rendered/\n");
    write(root, ".git/HEAD", "ref: refs/heads/main\n");
    write(root, ".git/objects/pod.yaml", ROOT_POD);
    write(root, "rendered/pod.yaml", ROOT_POD);
    write(
        root,
        "talos/talconfig.yaml",
        "clusterName: home\nnodes:\n  - hostname: gpu-1\n    ipAddress: 10.0.0.2\n",
    );
    write(
        root,
        "charts/ollama/Chart.yaml",
        "apiVersion: v2\nname: ollama\nversion: 1.0.0\n",
    );
    write(
        root,
        "charts/ollama/values.yaml",
        "replicas: 1\ngpu:\n  enabled: true\n",
    );
    write(
        root,
        "argocd/apps/ollama.yaml",
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: ollama\n  namespace: argocd\nspec:\n  project: default\n  source: {repoURL: 'https://example.invalid/repo.git', path: apps/ai}\n  destination: {server: 'https://kubernetes.default.svc', namespace: ai}\n",
    );
    write(
        root,
        "apps/ai/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [ollama.yaml]\n",
    );
    write(root, "apps/ai/ollama.yaml", GPU_DEPLOYMENT);
    write(root, "apps/debug/pod.yaml", ROOT_POD);
    std::os::unix::fs::symlink("../..", root.join("apps/debug/loop")).unwrap();
    dir
}

#[test]
fn a_gitops_repository_checks_with_one_denial_and_every_skip_counted() {
    let dir = fixture_repo();
    let out = run_in(dir.path(), &["check", "--output", "json", "."]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "one real denial: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let summary = &doc["summary"];
    assert_eq!(summary["denied"], 1, "{summary:#}");
    assert_eq!(summary["mutated"], 1, "{summary:#}");
    assert_eq!(
        summary["objects"], 2,
        "each file is read once, the loop is not walked: {doc:#}"
    );
    let skipped = &summary["skipped"];
    assert_eq!(
        skipped["not_kubernetes"], 3,
        "Chart.yaml, values.yaml, talconfig.yaml: {skipped:#}"
    );
    assert_eq!(
        skipped["not_workloads"], 2,
        "the Application and the Kustomization: {skipped:#}"
    );
    assert_eq!(
        skipped["ignored_files"], 1,
        "rendered/ (.gitignore); .git is never entered: {skipped:#}"
    );
    assert_eq!(skipped["symlink_loops"], 1, "{skipped:#}");
    assert_eq!(doc["errors"], serde_json::json!([]));
    let denied = doc["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["decision"] == "denied")
        .unwrap();
    assert_eq!(denied["file"], "./apps/debug/pod.yaml");
    assert_eq!(denied["line"], 1);
    assert_eq!(
        denied["violations"][0]["line"], 13,
        "the line of hostPath.path: {denied:#}"
    );

    // --strict: the three YAML files that are not objects become errors (exit 2).
    let strict = run_in(dir.path(), &["check", "--strict", "--output", "json", "."]);
    assert_eq!(strict.status.code(), Some(2));
    let doc: Value = serde_json::from_slice(&strict.stdout).unwrap();
    assert_eq!(doc["errors"].as_array().unwrap().len(), 3, "{doc:#}");
    // --exclude and --skip-kind.
    let out = run_in(
        dir.path(),
        &[
            "check",
            "--exclude",
            "apps/debug/**",
            "--skip-kind",
            "deployment",
            "--output",
            "json",
            ".",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["summary"]["objects"], 0, "{doc:#}");
    assert_eq!(doc["summary"]["skipped"]["skipped_kind"], 1);
    assert_eq!(doc["summary"]["skipped"]["ignored_files"], 2);
}

#[test]
fn fail_on_picks_what_fails() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "gpu.yaml", GPU_DEPLOYMENT);
    let code = |level: &str| {
        run_in(dir.path(), &["check", "--fail-on", level, "gpu.yaml"])
            .status
            .code()
    };
    assert_eq!(code("deny"), Some(0), "a pending fix is no denial");
    assert_eq!(code("warn"), Some(0), "nor a warning");
    assert_eq!(code("fix"), Some(1), "but it is a pending fix");
    let help = stdout(&run_in(dir.path(), &["check", "--help"]));
    assert!(help.contains("Exit codes:") && help.contains("--fail-on"), "{help}");
}

/// Every format of the fixture repository equals its golden file.
#[test]
fn output_formats_match_their_golden_files() {
    let dir = fixture_repo();
    let golden = repo().join("tests/golden");
    for (format, ext) in [
        ("text", "txt"),
        ("json", "json"),
        ("junit", "xml"),
        ("sarif", "sarif"),
        ("github", "github"),
    ] {
        let out = run_in(dir.path(), &["check", "--output", format, "."]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{format}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got = stdout(&out);
        let path = golden.join(format!("repo.{ext}"));
        if std::env::var_os("GPU_ADMISSION_UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(&golden).unwrap();
            std::fs::write(&path, &got).unwrap();
        }
        let want = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(got, want, "{format}: differs from {}", path.display());
    }
}

/// The SARIF 2.1.0 schema (OASIS errata01), as the Go module github.com/owenrumney/go-sarif
/// embeds it, fetched through the Go module proxy.
fn sarif_schema() -> Value {
    let out = gpu_admission_testkit::process::run(
        Command::new("go").args(["mod", "download", "-json", "github.com/owenrumney/go-sarif/v3@v3.3.1"]),
        b"",
    );
    assert!(
        out.status.success(),
        "go mod download: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info: Value = serde_json::from_slice(&out.stdout).unwrap();
    let dir = PathBuf::from(info["Dir"].as_str().expect("Dir"));
    let go = std::fs::read_to_string(dir.join("pkg/report/v210/sarif/schema.go")).unwrap();
    let start = go.find('`').expect("the schema's opening backquote") + 1;
    let end = go.rfind('`').expect("its closing backquote");
    let schema: Value = serde_json::from_str(&go[start..end]).unwrap();
    assert_eq!(
        schema["title"],
        "Static Analysis Results Format (SARIF) Version 2.1.0 JSON Schema"
    );
    schema
}

#[test]
fn sarif_output_validates_against_the_sarif_2_1_0_schema() {
    let schema = sarif_schema();
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    let dir = fixture_repo();
    write(dir.path(), "broken.yaml", "a: [1\n");
    let out = run_in(dir.path(), &["check", "--output", "sarif", "."]);
    assert_eq!(out.status.code(), Some(2), "the broken file is an input error");
    let sarif: Value = serde_json::from_slice(&out.stdout).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&sarif)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert!(
        results
            .iter()
            .any(|r| r["ruleId"] == "HOSTPATH_NOT_ALLOWED" && r["level"] == "error")
    );
    assert!(
        results
            .iter()
            .any(|r| r["ruleId"] == "PLACEMENT_MISSING" && r["level"] == "note")
    );
    assert_eq!(sarif["runs"][0]["invocations"][0]["executionSuccessful"], false);
    // A document that is not SARIF fails the validator: the check above can fail.
    assert!(!validator.is_valid(&serde_json::json!({"version": "2.1.0", "runs": [{"results": []}]})));
}

#[test]
fn fix_write_on_the_corpus_adds_lines_only_and_checks_clean_again() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = shared_dir().join("corpus");
    let mut originals = Vec::new();
    for entry in std::fs::read_dir(&corpus).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            std::fs::write(dir.path().join(path.file_name().unwrap()), &text).unwrap();
            originals.push((path.file_name().unwrap().to_owned(), text));
        }
    }
    let out = run_in(dir.path(), &["check", "--fix", "--write", "."]);
    let report = stdout(&out);
    assert!(
        !report.contains("not fixed"),
        "every mutated corpus file is editable:\n{report}"
    );
    let mut changed = 0;
    for (name, before) in &originals {
        let after = std::fs::read_to_string(dir.path().join(name)).unwrap();
        if after == *before {
            continue;
        }
        changed += 1;
        let diff = similar::TextDiff::from_lines(before.as_str(), after.as_str());
        for change in diff.iter_all_changes() {
            assert_ne!(
                change.tag(),
                similar::ChangeTag::Delete,
                "{name:?}: a line was removed or changed: {change}"
            );
        }
    }
    assert_eq!(changed, 9, "the nine mutated files of the corpus README:\n{report}");
    let again = run_in(dir.path(), &["check", "--output", "json", "."]);
    let doc: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(
        doc["summary"]["mutated"], 0,
        "a fixed file checks clean (idempotent): {:#}",
        doc["summary"]
    );
    assert_eq!(doc["summary"]["denied"], 3, "denials are not fixes");
    // --diff prints what --write would do, and changes nothing.
    let diff = run_in(dir.path(), &["check", "--fix", "--diff", "."]);
    assert!(stdout(&diff).is_empty(), "nothing left to fix: {}", stdout(&diff));
}

#[test]
fn fix_diff_prints_a_unified_diff_and_flow_style_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "gpu.yaml", GPU_DEPLOYMENT);
    write(
        dir.path(),
        "flow.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: i, resources: {limits: {nvidia.com/gpu: 1}}}]}\n",
    );
    let out = run_in(dir.path(), &["check", "--fix", "--diff", "."]);
    let diff = stdout(&out);
    assert!(diff.contains("--- a/./gpu.yaml\n+++ b/./gpu.yaml\n"), "{diff}");
    assert!(
        diff.contains("+      nodeSelector:\n+        node-type: gpu-worker\n"),
        "{diff}"
    );
    assert!(!diff.contains("flow.yaml"), "{diff}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not fixed ./flow.yaml") && stderr.contains("flow style"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("gpu.yaml")).unwrap(),
        GPU_DEPLOYMENT,
        "--diff writes nothing"
    );
}

#[test]
fn the_shipped_corpus_suite_passes_and_a_changed_expectation_fails() {
    let suites = repo().join("tests/suites");
    let out = run_in(repo(), &["test", suites.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout(&out).contains("19 passed, 0 failed, 1 suites"),
        "{}",
        stdout(&out)
    );
    let text = std::fs::read_to_string(suites.join("corpus/gpu-admission-test.yaml")).unwrap();
    let corpus = shared_dir().join("corpus");
    let changed = text
        .replace("[../../../../shared/corpus]", &format!("[{}]", corpus.display()))
        .replacen("decision: denied", "decision: allowed", 1);
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "gpu-admission-test.yaml", &changed);
    let out = run_in(dir.path(), &["test", "."]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("| denied [HOSTPATH_NOT_ALLOWED] | FAIL"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn completions_and_the_man_page_are_generated() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run_in(repo(), &["completions", shell]);
        assert!(out.status.success());
        assert!(
            stdout(&out).contains("fail-on"),
            "{shell}: the check flags are completed"
        );
    }
    let man = stdout(&run_in(repo(), &["man"]));
    assert!(
        man.starts_with(".ie") || man.contains(".TH gpu-admission"),
        "{}",
        &man[..man.len().min(200)]
    );
}
