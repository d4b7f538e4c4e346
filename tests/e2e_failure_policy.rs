//! With the webhook unreachable, each webhook configuration does what its `failurePolicy` says
//! (deploy/webhooks/webhooks.yaml):
//! - mutating, `Ignore`: the request goes on unmutated, and the validating webhook decides;
//! - validating, `Fail`: GPU and hostPath objects are refused; everything matchConditions and the
//!   namespaceSelector keep from the webhook is not affected.
//!
//! The configurations change during the test, so this binary has a single test that goes
//! through the steps in order.

use std::path::Path;

use gpu_admission_testkit::e2e::cluster::get_pod;
use gpu_admission_testkit::e2e::harness::{self, Output, kubectl};
use gpu_admission_testkit::e2e::webhook;
use serde_json::{Value, json};
use webhook::{Webhook, WebhookOptions, assert_output, corpus, fixture, items_of_kind, s};

const MUTATING: &str = "MutatingWebhookConfiguration";
const VALIDATING: &str = "ValidatingWebhookConfiguration";

/// Points every webhook of the configurations of `kind` at `w`.
fn point(list: &mut Value, kind: &str, w: &Webhook) {
    let bundle = webhook::ca_bundle(&w.certs.ca_pem());
    for cfg in items_of_kind(list, kind) {
        for hook in cfg["webhooks"].as_array_mut().expect("webhooks") {
            let url = hook["clientConfig"]["url"].as_str().expect("url").to_string();
            let path = url.rsplit_once('/').map(|(_, p)| p).unwrap_or_default();
            hook["clientConfig"]["url"] = json!(w.url(&format!("/{path}")));
            hook["clientConfig"]["caBundle"] = json!(bundle);
        }
    }
}

/// kubectl's line when the API server could not reach `webhook` at `url` (connection refused).
fn unreachable(file: &str, webhook: &str, url: &str, timeout: u32, port: u16) -> String {
    format!(
        "Error from server (InternalError): error when creating \"{file}\": Internal error occurred: failed calling webhook \"{webhook}\": failed to call webhook: Post \"{url}?timeout={timeout}s\": dial tcp 127.0.0.1:{port}: connect: connection refused"
    )
}

/// Asserts that creating `file` failed, and only because `webhook` was unreachable at `(url, port)`.
#[track_caller]
fn assert_unreachable(out: &Output, file: &Path, webhook: &str, (url, port): (&str, u16)) {
    assert_output(out, 1, &[], &[&unreachable(s(file), webhook, url, 10, port)]);
}

#[test]
fn each_configuration_follows_its_failure_policy() {
    harness::shared();
    webhook::ensure_namespaces(&["ai"]);
    let mut a = Webhook::start(WebhookOptions::default());
    let b = Webhook::start(WebhookOptions::default());
    let configs = webhook::render_local_overlay(a.port, &a.certs.ca_pem());
    webhook::apply_webhook_configurations(&configs);

    let gpu_pod = fixture("gpu-pod.yaml");
    let complete = fixture("complete-gpu-pod.yaml");
    let plain = fixture("plain-pod.yaml");
    let hostpath = corpus("13-badpods-hostpath-root-pod.yaml");
    let gpu_deployment = corpus("34-vllm-docs-mistral-7b-gpu-deployment.yaml");

    // 0. Reachable: a GPU pod is mutated (the configuration is live and points at `a`).
    let out = kubectl(
        &[
            "create",
            "--dry-run=server",
            "-n",
            "ai",
            "-o",
            "json",
            "-f",
            s(&gpu_pod),
        ],
        None,
    );
    assert_eq!(out.json()["spec"]["nodeSelector"]["node-type"], "gpu-worker", "{out:?}");

    // 1. Both configurations point at a stopped webhook.
    a.stop();
    let a_validate = a.url("/validate");
    let stopped = (a_validate.as_str(), a.port);

    // A GPU pod is refused, and the refusal names the *validating* webhook: the mutating one,
    // called first, failed open (Ignore).
    let out = kubectl(&["create", "-n", "ai", "-f", s(&gpu_pod)], None);
    assert_unreachable(&out, &gpu_pod, "pods.validate.gpu-admission.io", stopped);
    // So is a pod already complete, a hostPath pod, and a GPU Deployment (even as a dry run).
    for (file, ns, hook) in [
        (&complete, "ai", "pods.validate.gpu-admission.io"),
        (&hostpath, "default", "pods.validate.gpu-admission.io"),
        (&gpu_deployment, "default", "workloads.validate.gpu-admission.io"),
    ] {
        let out = kubectl(&["create", "--dry-run=server", "-n", ns, "-f", s(file)], None);
        assert_unreachable(&out, file, hook, stopped);
    }
    // Nothing the webhook is not asked about is affected.
    let out = kubectl(&["create", "-n", "ai", "-f", s(&plain)], None);
    assert_output(&out, 0, &["pod/plain-pod created"], &[]);
    let out = kubectl(&["create", "-n", "kube-system", "-f", s(&hostpath)], None);
    assert_output(&out, 0, &["pod/hostpath-exec-pod created"], &[]);

    // 2. Only the mutating webhook is down (validating → `b`).
    let mut only_mutating_down = configs.clone();
    point(&mut only_mutating_down, VALIDATING, &b);
    webhook::apply_webhook_configurations(&only_mutating_down);

    // A pod that needs no patch is created as it is: the mutating failure is ignored.
    let out = kubectl(&["create", "-n", "ai", "-f", s(&complete)], None);
    assert_output(&out, 0, &["pod/complete-gpu-pod created"], &[]);
    let pod = get_pod("ai", "complete-gpu-pod");
    assert_eq!(pod["spec"]["priority"], 1_000_000, "{pod}");
    let reviews = b.reviews_of("ai", "complete-gpu-pod");
    assert_eq!(reviews.len(), 1, "{reviews:?}");
    assert_eq!(reviews[0]["endpoint"], "validate");
    assert_eq!(reviews[0]["decision"], "allowed");

    // A bare GPU pod reaches validation unmutated, and validation refuses it, naming what the
    // mutation would have added.
    let out = kubectl(&["create", "-n", "ai", "-f", s(&gpu_pod)], None);
    assert_output(
        &out,
        1,
        &[],
        &[&format!(
            "Error from server (Forbidden): error when creating \"{}\": admission webhook \"pods.validate.gpu-admission.io\" denied the request: gpu-admission: 3 policy violations: [PLACEMENT_MISSING] spec.nodeSelector: expected nodeSelector node-type=gpu-worker: the mutating webhook sets it on CREATE; set it in the manifest, or check that the mutating webhook is registered; [TOLERATION_MISSING] spec.tolerations: expected toleration nvidia.com/gpu:NoSchedule (operator Exists): the mutating webhook sets it on CREATE; set it in the manifest, or check that the mutating webhook is registered; [PRIORITY_MISSING] spec.priorityClassName: expected priorityClassName high-priority (priority 1000000): the mutating webhook sets it on CREATE; set it in the manifest, or check that the mutating webhook is registered",
            s(&gpu_pod)
        )],
    );

    // 3. Only the validating webhook is down (mutating → `b`, validating → stopped `a`).
    let mut only_validating_down = configs.clone();
    point(&mut only_validating_down, MUTATING, &b);
    webhook::apply_webhook_configurations(&only_validating_down);
    let out = kubectl(&["create", "-n", "ai", "-f", s(&gpu_pod)], None);
    assert_unreachable(&out, &gpu_pod, "pods.validate.gpu-admission.io", stopped);
    // The mutating webhook did run (and patched) before validation failed closed.
    let reviews = b.reviews_of("ai", "gpu-pod");
    assert!(
        reviews
            .iter()
            .any(|r| r["endpoint"] == "mutate" && r["decision"] == "mutated"),
        "{reviews:?}"
    );

    // 4. Back up: the same pod is admitted.
    a.restart();
    webhook::apply_webhook_configurations(&configs);
    let out = kubectl(&["create", "-n", "ai", "-f", s(&gpu_pod)], None);
    assert_output(&out, 0, &["pod/gpu-pod created"], &[]);
    assert_eq!(get_pod("ai", "gpu-pod")["spec"]["priority"], 1_000_000);
}
