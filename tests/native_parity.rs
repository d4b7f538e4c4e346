//! Native mode on a real kube-apiserver 1.37 (MutatingAdmissionPolicy is GA there; the suite's
//! default 1.34 lacks it): `gpu-admission generate native` output is accepted by a server-side
//! dry run, and every corpus document and the engine's table cases (tests/native_cases) get the
//! same decision (allowed with the same mutated fields, or denied with the same codes) through
//! `kubectl apply --dry-run=server` from the webhooks, from the native policies, and in hybrid
//! mode (the native policies with the narrowed validating webhook of deploy/components/hybrid).
//!
//! Needs `GPU_ADMISSION_K8S_137_DIR` (scripts/test.sh exports it): without it, the tests FAIL.
//! Not named `e2e_*`: scripts/test.sh's loop over Kubernetes versions would run it on 1.34.

mod native_cases;

use std::collections::BTreeSet;
use std::path::Path;

use gpu_admission_testkit::e2e::harness::{self, ControlPlane, Output};
use gpu_admission_testkit::e2e::{native, versions, webhook};
use gpu_admission_testkit::{Wait, assert_none_failed};
use serde_json::{Value, json};
use webhook::{WAIT, Webhook, WebhookOptions, repo, s, yaml_documents};

fn cp() -> &'static ControlPlane {
    harness::shared_with(versions::start_k8s_137)
}

fn kubectl(args: &[&str], stdin: Option<&str>) -> Output {
    cp().kubectl(args, stdin)
}

/// What kube-apiserver answered to a dry-run apply.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// Stored (dry run): the fields the rules patch, as they would be stored.
    Allowed(Value),
    /// Refused by admission, with the codes its message names.
    Denied(BTreeSet<String>),
    /// Refused without a code (the API's own validation): the error text.
    Refused(String),
}

/// The `[CODE]`s in `text`.
fn codes_in(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for part in text.split('[').skip(1) {
        if let Some((code, _)) = part.split_once(']')
            && !code.is_empty()
            && code.chars().all(|c| c.is_ascii_uppercase() || c == '_')
        {
            out.insert(code.to_string());
        }
    }
    out
}

/// The pod spec of any covered kind, else `None`.
fn pod_spec(object: &Value) -> Option<&Value> {
    let spec = match object["kind"].as_str()? {
        "Pod" => &object["spec"],
        "CronJob" => &object["spec"]["jobTemplate"]["spec"]["template"]["spec"],
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" | "Job" | "ReplicationController" => {
            &object["spec"]["template"]["spec"]
        }
        _ => return None,
    };
    spec.is_object().then_some(spec)
}

/// What the rules may patch, as stored.
fn project(object: &Value) -> Value {
    let Some(spec) = pod_spec(object) else {
        return json!({"kind": object["kind"]});
    };
    let devices = |list: &str| -> Value {
        let containers = spec[list].as_array().cloned().unwrap_or_default();
        containers
            .iter()
            .map(|c| {
                let env = c["env"].as_array().cloned().unwrap_or_default();
                let found: Vec<Value> = env
                    .into_iter()
                    .filter(|e| e["name"] == "NVIDIA_VISIBLE_DEVICES")
                    .collect();
                json!({"name": c["name"], "NVIDIA_VISIBLE_DEVICES": found})
            })
            .collect()
    };
    json!({
        "kind": object["kind"],
        "nodeSelector": spec["nodeSelector"],
        "tolerations": spec["tolerations"],
        "priorityClassName": spec["priorityClassName"],
        "priority": spec["priority"],
        "preemptionPolicy": spec["preemptionPolicy"],
        "initContainers": devices("initContainers"),
        "containers": devices("containers"),
    })
}

fn decide(object: &Value) -> Outcome {
    let out = kubectl(
        &["apply", "--dry-run=server", "-o", "json", "-f", "-"],
        Some(&object.to_string()),
    );
    if out.success() {
        return Outcome::Allowed(project(&out.json()));
    }
    let errors: Vec<&str> = out.stderr.lines().filter(|l| !l.starts_with("Warning:")).collect();
    let text = errors.join("\n");
    let codes = codes_in(&text);
    if codes.is_empty() {
        Outcome::Refused(text)
    } else {
        Outcome::Denied(codes)
    }
}

/// Every document of every corpus file, then the engine's table cases.
fn cases() -> Vec<(String, Value)> {
    let dir = repo().join("../shared/corpus");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "the corpus is missing: {files:?}");
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("corpus file");
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        for (i, doc) in yaml_documents(&text).into_iter().enumerate() {
            out.push((format!("corpus/{name} doc {i}"), doc));
        }
    }
    out.extend(native_cases::cases());
    out
}

/// Namespaces the cases use (one opted out by label), and the cluster's PriorityClasses.
fn set_up(cases: &[(String, Value)]) {
    let mut namespaces: BTreeSet<String> = ["ai", "monitoring", "gpu-admission", "default"]
        .map(String::from)
        .into();
    for (_, doc) in cases {
        if let Some(ns) = doc["metadata"]["namespace"].as_str() {
            namespaces.insert(ns.to_string());
        }
    }
    for ns in namespaces {
        let doc = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        kubectl(&["apply", "-f", "-"], Some(&doc.to_string())).assert_success();
    }
    let opted_out = json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "opted-out", "labels": {"gpu-admission.io/ignore": "true"}}});
    kubectl(&["apply", "-f", "-"], Some(&opted_out.to_string())).assert_success();
    for (name, value) in [
        ("high-priority", 1_000_000),
        ("medium-priority", 100_000),
        ("low-priority", 1000),
    ] {
        let pc = json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name}, "value": value, "globalDefault": false});
        kubectl(&["apply", "-f", "-"], Some(&pc.to_string())).assert_success();
    }
}

fn gpu_pod() -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probe-gpu", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "cuda", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}})
}

/// `gpu-admission generate native -o DIR` for the default policy.
fn generate_native(dir: &Path) {
    native::generate(&["-o", s(dir)]);
}

/// Every case native mode cannot express names an engine test (and is not run here).
#[test]
fn cases_native_mode_cannot_express_are_engine_tests() {
    let run: BTreeSet<String> = native_cases::cases().into_iter().map(|(n, _)| n).collect();
    let mut failures = Vec::new();
    for (name, why) in native_cases::NOT_NATIVE {
        assert!(!why.is_empty());
        let (file, test) = name.split_once("::").expect("<file>::<test>");
        let path = repo().join(format!("src/engine/tests/{file}.rs"));
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if !text.contains(&format!("fn {test}()")) {
            failures.push(format!("{name}: no such test in {}", path.display()));
        }
        if run.iter().any(|r| r.starts_with(name)) {
            failures.push(format!("{name}: listed as not native, but run"));
        }
    }
    assert_none_failed("NOT_NATIVE entries", &failures);
}

#[test]
fn generated_native_output_is_accepted_by_a_server_side_dry_run() {
    cp();
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gpu-admission"}});
    kubectl(&["apply", "-f", "-"], Some(&ns.to_string())).assert_success();
    let dir = tempfile::tempdir().expect("tempdir");
    generate_native(dir.path());
    let out = kubectl(&["apply", "--dry-run=server", "-f", s(dir.path())], None);
    out.assert_success();
    for want in [
        "configmap/gpu-admission-native-params created (server dry run)",
        "mutatingadmissionpolicy.admissionregistration.k8s.io/gpu-admission-pods created (server dry run)",
        "mutatingadmissionpolicybinding.admissionregistration.k8s.io/gpu-admission-pods created (server dry run)",
        "validatingadmissionpolicy.admissionregistration.k8s.io/gpu-admission-host-path created (server dry run)",
        "validatingadmissionpolicybinding.admissionregistration.k8s.io/gpu-admission-template-fixes created (server dry run)",
    ] {
        assert!(out.stdout.contains(want), "{want} not in\n{}", out.stdout);
    }
    let n = |kind: &str| out.stdout.lines().filter(|l| l.starts_with(kind)).count();
    assert_eq!(
        n("validatingadmissionpolicy.admissionregistration.k8s.io/"),
        9,
        "{}",
        out.stdout
    );
    assert_eq!(n("validatingadmissionpolicybinding."), 9, "{}", out.stdout);
}

#[test]
fn native_policies_decide_as_the_webhooks() {
    cp();
    let cases = cases();
    set_up(&cases);

    // 1. The webhooks (deploy/overlays/local, generated configurations).
    let w = Webhook::start(WebhookOptions::default());
    webhook::apply_webhook_configurations(&webhook::render_local_overlay(w.port, &w.certs.ca_pem()));
    let by_webhook: Vec<Outcome> = cases.iter().map(|(_, o)| decide(o)).collect();
    webhook::delete_webhook_configurations();
    Wait::new("the API server stops calling the webhooks", WAIT).until(|| match decide(&gpu_pod()) {
        Outcome::Allowed(p) if p["nodeSelector"].is_null() => Ok(()),
        other => Err(format!("{other:?}")),
    });

    // 2. The native policies, applied as generated.
    let dir = tempfile::tempdir().expect("tempdir");
    generate_native(dir.path());
    kubectl(&["apply", "-f", s(dir.path())], None).assert_success();
    // Applied in file order: once the last policy and binding answer (and the mutating policy
    // patches), the API server has every earlier one too.
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "probe-deploy", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "image": "cuda", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}}});
    Wait::new("the API server uses the native policies", WAIT).until(|| {
        let out = kubectl(&["apply", "--dry-run=server", "-f", "-"], Some(&deployment.to_string()));
        let warned = out
            .stderr
            .contains("ValidatingAdmissionPolicy 'gpu-admission-template-fixes'");
        match decide(&gpu_pod()) {
            Outcome::Allowed(p) if warned && p["nodeSelector"]["node-type"] == "gpu-worker" => Ok(()),
            other => Err(format!("{other:?} {out:?}")),
        }
    });
    let natively: Vec<Outcome> = cases.iter().map(|(_, o)| decide(o)).collect();

    assert_none_failed("native decisions", &differences(&cases, &by_webhook, &natively));

    // The comparison was not vacuous: both modes denied and mutated.
    let outcome = |name: &str| {
        let i = cases.iter().position(|(n, _)| n == name).expect(name);
        (by_webhook[i].clone(), natively[i].clone())
    };
    let (hook, native) = outcome("host_path::normalised_paths/root");
    assert_eq!(hook, Outcome::Denied(["HOSTPATH_NOT_ALLOWED".to_string()].into()));
    assert_eq!(native, hook);
    match outcome("priority::namespace_default") {
        (Outcome::Allowed(h), Outcome::Allowed(n)) => {
            assert_eq!(h["priorityClassName"], "high-priority");
            assert_eq!(h["priority"], 1_000_000);
            assert_eq!(n, h);
        }
        other => panic!("{other:?}"),
    }
    let denied = natively.iter().filter(|o| matches!(o, Outcome::Denied(_))).count();
    assert!(denied >= 10, "only {denied} native denials");

    // 3. Hybrid (deploy/components/hybrid): the native policies stay; the validating webhook
    // comes back narrowed by the generated patch to GPU workloads and DRA claims; no mutating
    // webhook.
    let configs = webhook::render_local_overlay(w.port, &w.certs.ca_pem());
    let path = repo().join("deploy/components/hybrid/validating-webhooks-patch.yaml");
    let text = std::fs::read_to_string(&path).expect("the hybrid patch");
    let ops: json_patch::Patch = serde_yaml_ng::from_str(&text).expect("a JSON patch");
    let mut validating = configs["items"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["kind"] == "ValidatingWebhookConfiguration"))
        .cloned()
        .expect("the validating configuration");
    json_patch::patch(&mut validating, &ops).expect("the hybrid patch applies");
    webhook::apply_webhook_configurations(&json!({"apiVersion": "v1", "kind": "List", "items": [validating]}));
    let before = |name: &str| w.reviews_of("default", name).len();
    let (gpu_reviews, host_path_reviews) = (before("q0"), before("hp-root"));
    let hybrid: Vec<Outcome> = cases.iter().map(|(_, o)| decide(o)).collect();
    assert_none_failed("hybrid decisions", &differences(&cases, &by_webhook, &hybrid));
    // The webhook was asked about the GPU pod, not about the hostPath one (native only).
    Wait::new("the hybrid webhook's review of a GPU pod", WAIT).until(|| {
        let n = before("q0");
        if n == gpu_reviews + 1 {
            Ok(())
        } else {
            Err(format!("{n} reviews of q0, {gpu_reviews} before"))
        }
    });
    assert_eq!(
        before("hp-root"),
        host_path_reviews,
        "hybrid sent a hostPath pod to the webhook"
    );
    webhook::delete_webhook_configurations();
    drop(w);
}

/// Where `other` does not decide as the webhooks did: allowed alike (the same fields), denied
/// with codes among the webhooks', or refused by the API alike.
fn differences(cases: &[(String, Value)], by_webhook: &[Outcome], other: &[Outcome]) -> Vec<String> {
    let mut failures = Vec::new();
    for (((name, _), hook), got) in cases.iter().zip(by_webhook).zip(other) {
        let same = match (hook, got) {
            (Outcome::Denied(h), Outcome::Denied(n)) => n.is_subset(h),
            (h, n) => h == n,
        };
        if !same {
            failures.push(format!("{name}:\n  webhook: {hook:?}\n  other:   {got:?}"));
        }
    }
    failures
}
