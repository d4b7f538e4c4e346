//! The release (`.github/workflows/release.yml`), which cannot run here: actionlint (built by
//! `scripts/actionlint.sh` from the Go module proxy, with shellcheck on every `run:` script) must
//! find nothing in it, and what it publishes must be what `deploy/` names: one image reference,
//! in `deploy/base/kustomization.yaml`'s `images:`, tagged with the crate's version, under the
//! crate's repository.
//!
//! actionlint missing is a failure, never a skip: `scripts/test.sh` builds it when it is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml_ng::Value;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml(path: &str) -> Value {
    serde_yaml_ng::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

const WORKFLOW: &str = ".github/workflows/release.yml";

/// `ACTIONLINT_BIN`, else where `scripts/actionlint.sh` caches it (its default version).
fn actionlint() -> PathBuf {
    if let Some(p) = std::env::var_os("ACTIONLINT_BIN") {
        return PathBuf::from(p);
    }
    let script = read("scripts/actionlint.sh");
    let version = script
        .lines()
        .find_map(|l| l.strip_prefix("ACTIONLINT_VERSION=\"${ACTIONLINT_VERSION:-"))
        .and_then(|rest| rest.strip_suffix("}\""))
        .expect("scripts/actionlint.sh sets a default ACTIONLINT_VERSION");
    let cache = std::env::var_os("GPU_ADMISSION_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/gpu-admission"));
    cache.join("actionlint").join(version).join("actionlint")
}

/// `actionlint -shellcheck=<shellcheck> FILE` in the repository: (exit code, stdout + stderr).
fn lint(file: &Path) -> (i32, String) {
    let bin = actionlint();
    assert!(
        bin.is_file(),
        "actionlint is not at {} (run scripts/actionlint.sh, or set ACTIONLINT_BIN): this is a failure, not a skip",
        bin.display()
    );
    let shellcheck = ["/usr/bin/shellcheck", "/usr/local/bin/shellcheck"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .expect("shellcheck is not installed (scripts/actionlint.sh installs it): actionlint would not check the run: scripts");
    let out = Command::new(&bin)
        .current_dir(repo())
        .args(["-no-color", &format!("-shellcheck={shellcheck}")])
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn release_workflow_is_clean_under_actionlint() {
    let (code, text) = lint(Path::new(WORKFLOW));
    assert_eq!((code, text.as_str()), (0, ""), "actionlint on {WORKFLOW}");

    // The same linter does read this file's kind of mistakes: an input build-push-action does
    // not have, a job output that does not exist, and a shellcheck finding in a run: script.
    let broken = read(WORKFLOW)
        .replacen(
            "          sbom: true\n",
            "          sbom: true\n          sboms: true\n",
            1,
        )
        .replacen("needs.version.outputs.version", "needs.version.outputs.nope", 1)
        .replacen(
            "          mkdir -p dist digests\n",
            "          mkdir -p dist digests\n          cd $ROOTFS\n",
            1,
        );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("release.yml");
    std::fs::write(&path, broken).unwrap();
    let (code, text) = lint(&path);
    assert_eq!(code, 1, "{text}");
    for want in [
        "input \"sboms\" is not defined in action \"docker/build-push-action@v6\"",
        "property \"nope\" is not defined",
        "SC2086",
    ] {
        assert!(text.contains(want), "actionlint did not report `{want}`:\n{text}");
    }
}

fn step_using<'a>(job: &'a Value, action: &str) -> Vec<&'a Value> {
    job["steps"]
        .as_sequence()
        .expect("steps")
        .iter()
        .filter(|s| s["uses"].as_str().is_some_and(|u| u.split('@').next() == Some(action)))
        .collect()
}

fn runs(job: &Value) -> String {
    job["steps"]
        .as_sequence()
        .expect("steps")
        .iter()
        .filter_map(|s| s["run"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn release_publishes_what_deploy_names() {
    // One image reference: deploy/base/kustomization.yaml's `images:`, with the crate's version.
    let kustomization = yaml("deploy/base/kustomization.yaml");
    let images = kustomization["images"].as_sequence().expect("images: in deploy/base");
    assert_eq!(images.len(), 1, "{images:?}");
    let name = images[0]["name"].as_str().unwrap();
    assert!(images[0]["newName"].is_null(), "the base renames the image: {images:?}");
    assert_eq!(
        images[0]["newTag"].as_str(),
        Some(env!("CARGO_PKG_VERSION")),
        "deploy/ must run the version a release of this crate publishes"
    );
    let deployment = read("deploy/base/deployment.yaml");
    assert!(
        deployment.contains(&format!("image: {name}\n")),
        "deploy/base/deployment.yaml names another image than `images:`"
    );
    // scripts/image.sh (the real-cluster suite's image, the workflow's check) reads the same.
    let out = Command::new(repo().join("scripts/image.sh"))
        .arg("--ref")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reference = format!("{name}:{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), reference);

    // The repository, and the registry path under it.
    let repository = env!("CARGO_PKG_REPOSITORY");
    assert_eq!(repository, "https://github.com/gpu-admission/gpu-admission");
    let owner_repo = repository.strip_prefix("https://github.com/").unwrap();
    assert_eq!(name, format!("ghcr.io/{owner_repo}"));
    assert!(
        read("Dockerfile").contains(&format!("LABEL org.opencontainers.image.source=\"{repository}\"")),
        "the image does not name its repository"
    );

    let w = yaml(WORKFLOW);
    assert_eq!(
        w["env"]["IMAGE"].as_str(),
        Some(name),
        "the workflow pushes another image"
    );
    let tags = w["on"]["push"]["tags"].as_sequence().expect("on.push.tags");
    assert_eq!(tags.len(), 1);
    let jobs = &w["jobs"];
    // The version job refuses a tag that is not the crate's version or not what deploy/ names.
    let check = runs(&jobs["version"]);
    assert!(
        check.contains("Cargo.toml") && check.contains("scripts/image.sh --ref"),
        "{check}"
    );

    // Each architecture built from the Dockerfile on its own runner, pushed by digest, with an
    // SBOM; its binary copied out of the same build, checked static, checksummed.
    let build = &jobs["build"];
    let arches: Vec<_> = build["strategy"]["matrix"]["include"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|m| m["arch"].as_str().unwrap())
        .collect();
    assert_eq!(arches, ["amd64", "arm64"]);
    let builds = step_using(build, "docker/build-push-action");
    assert_eq!(builds.len(), 2);
    for b in &builds {
        assert_eq!(b["with"]["file"].as_str(), Some("Dockerfile"));
        assert_eq!(b["with"]["context"].as_str(), Some("."));
        assert_eq!(b["with"]["platforms"].as_str(), Some("linux/${{ matrix.arch }}"));
    }
    let push = builds[0]["with"]["outputs"].as_str().unwrap();
    assert!(
        push.contains("name=${{ env.IMAGE }}") && push.contains("push=true"),
        "{push}"
    );
    assert_eq!(builds[0]["with"]["sbom"].as_bool(), Some(true));
    assert!(builds[1]["with"]["outputs"].as_str().unwrap().starts_with("type=local"));
    let files = runs(build);
    for want in ["usr/local/bin/gpu-admission", "program interpreter", "sha256sum"] {
        assert!(files.contains(want), "the build job does not `{want}`:\n{files}");
    }

    // One tag, both platforms.
    let join = runs(&jobs["image"]);
    assert!(join.contains("imagetools create -t \"$IMAGE:$VERSION\""), "{join}");
    assert!(join.contains("linux/amd64,linux/arm64"), "{join}");

    // The release: binaries, checksums and the SBOM attached.
    let release = &jobs["release"];
    let sbom = step_using(release, "anchore/sbom-action");
    assert_eq!(sbom.len(), 1);
    assert_eq!(sbom[0]["with"]["format"].as_str(), Some("spdx-json"));
    assert!(sbom[0]["with"]["output-file"].as_str().unwrap().starts_with("dist/"));
    let publish = runs(release);
    for want in ["SHA256SUMS", "gh release create", "dist/*"] {
        assert!(publish.contains(want), "the release job does not `{want}`:\n{publish}");
    }
    assert_eq!(release["permissions"]["contents"].as_str(), Some("write"));
    assert_eq!(build["permissions"]["packages"].as_str(), Some("write"));
}

/// The README's CI examples are the files in examples/ci/, verbatim; the GitHub one lints clean,
/// and the pre-commit hooks run `check`.
#[test]
fn the_readme_ci_examples_are_the_linted_files() {
    let readme = read("README.md");
    for file in ["examples/ci/github-actions.yaml", "examples/ci/gitlab-ci.yml"] {
        let text = read(file);
        assert!(
            readme.contains(&format!("```yaml\n{text}```")),
            "README shows {file} verbatim"
        );
    }
    let (code, text) = lint(Path::new("examples/ci/github-actions.yaml"));
    assert_eq!(
        (code, text.as_str()),
        (0, ""),
        "actionlint on examples/ci/github-actions.yaml"
    );
    let gitlab = yaml("examples/ci/gitlab-ci.yml");
    let script = gitlab["gpu-admission-check"]["script"].as_sequence().expect("a script");
    assert!(script.iter().any(|l| {
        l.as_str()
            .unwrap_or_default()
            .contains("gpu-admission check --output junit")
    }));
    let repository = format!("--git {}", env!("CARGO_PKG_REPOSITORY"));
    assert!(
        read("examples/ci/github-actions.yaml").contains(&repository),
        "installs from Cargo.toml's repository"
    );
    let hooks = yaml(".pre-commit-hooks.yaml");
    let hooks = hooks.as_sequence().expect("a list of hooks");
    assert!(
        hooks.iter().any(|h| h["id"] == "gpu-admission-check"
            && h["entry"] == "gpu-admission check"
            && h["language"] == "rust")
    );
}
