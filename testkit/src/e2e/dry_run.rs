//! Rendering deploy/ with `kubectl kustomize` (alone or as deploy/base with components), and
//! `kubectl apply --server-side --dry-run=server` of rendered manifests on the shared control
//! plane, retried while the API server has not discovered a CRD's kind yet (it serves a kind a
//! moment after the CRD is established).

use std::path::Path;

use serde_json::Value;

use super::harness::{Output, kubectl};
use super::webhook::{WAIT, yaml_documents};
use crate::Wait;
use crate::paths::{relative, repo, s};

/// `kubectl kustomize DIR` (the shared control plane's kubectl; no server involved), asserted
/// to succeed.
pub fn kustomize(dir: &Path) -> Output {
    let out = kubectl(&["kustomize", s(dir)], None);
    out.assert_success();
    out
}

/// [`kustomize`], asserted to warn of nothing: the text and its documents.
pub fn render(dir: &Path) -> (String, Vec<Value>) {
    let out = kustomize(dir);
    assert!(out.stderr.is_empty(), "kustomize warned: {}", out.stderr);
    let docs = yaml_documents(&out.stdout);
    (out.stdout, docs)
}

/// Writes into `dir` a kustomization of deploy/base with `components` (names under
/// deploy/components, in that order); returns `dir`.
pub fn with_components<'a>(dir: &'a Path, components: &[&str]) -> &'a Path {
    std::fs::create_dir_all(dir).expect("mkdir");
    let deploy = relative(dir, &repo().join("deploy"));
    let list: Vec<String> = components
        .iter()
        .map(|c| format!("  - {}\n", deploy.join("components").join(c).display()))
        .collect();
    let text = format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - {}\ncomponents:\n{}",
        deploy.join("base").display(),
        list.concat()
    );
    std::fs::write(dir.join("kustomization.yaml"), text).expect("write kustomization");
    dir
}

/// The dry run of `text`, once no kind in it is unknown to the API server any more (or the
/// last answer after [`WAIT`]). `what` names the kinds waited for.
pub fn server_side_dry_run(what: &str, text: &str) -> Output {
    Wait::new(format!("the API server discovers {what}"), WAIT).until(|| {
        let out = kubectl(
            &[
                "apply",
                "--server-side",
                "--dry-run=server",
                "--field-manager=gpu-admission-e2e",
                "-f",
                "-",
            ],
            Some(text),
        );
        if out.stderr.contains("no matches for kind") {
            Err(format!("{out:?}"))
        } else {
            Ok(out)
        }
    })
}
