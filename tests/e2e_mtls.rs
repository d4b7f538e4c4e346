//! mTLS end to end (issue 15, item 4): kube-apiserver presents a client certificate to a webhook
//! started with `--client-ca`. The API server's `--admission-control-config-file` has a
//! `WebhookAdmissionConfiguration` whose kubeconfig gives it the certificate for every webhook
//! (`name: '*'`); the webhook serves only clients with a certificate from that CA, and a GPU pod
//! created through the API server comes back mutated.

use std::path::Path;

use gpu_admission::certs::DevCa;
use gpu_admission_testkit::Wait;
use gpu_admission_testkit::e2e::harness::{Binaries, ControlPlane};
use gpu_admission_testkit::e2e::webhook::{WAIT, Webhook, WebhookOptions, ca_bundle, fixture, https_post, s};
use serde_json::{Value, json};

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

#[test]
fn kube_apiserver_presents_its_client_certificate_to_a_webhook_with_client_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let client_ca = DevCa::generate(30).unwrap();
    let identity = client_ca.issue_client("kube-apiserver", 5).unwrap();
    write(&d.join("client-ca.crt"), &client_ca.cert_pem);
    write(&d.join("apiserver-client.crt"), &identity.cert_pem);
    write(&d.join("apiserver-client.key"), &identity.key_pem);
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nusers:\n- name: '*'\n  user:\n    client-certificate: {}\n    client-key: {}\n",
        d.join("apiserver-client.crt").display(),
        d.join("apiserver-client.key").display()
    );
    write(&d.join("webhook-kubeconfig.yaml"), &kubeconfig);
    let plugin = |name: &str| {
        format!(
            "- name: {name}\n  configuration:\n    apiVersion: apiserver.config.k8s.io/v1\n    kind: WebhookAdmissionConfiguration\n    kubeConfigFile: {}\n",
            d.join("webhook-kubeconfig.yaml").display()
        )
    };
    let admission = format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins:\n{}{}",
        plugin("MutatingAdmissionWebhook"),
        plugin("ValidatingAdmissionWebhook")
    );
    write(&d.join("admission.yaml"), &admission);

    let flag = format!("--admission-control-config-file={}", d.join("admission.yaml").display());
    let cp = ControlPlane::start_with(Binaries::locate().expect("control-plane binaries"), &[&flag])
        .expect("etcd and kube-apiserver start");
    let ca_flag = d.join("client-ca.crt");
    let webhook = Webhook::start(
        WebhookOptions::default()
            .under(cp.dir())
            .arg("--client-ca")
            .arg(s(&ca_flag)),
    );

    // Without a client certificate the webhook refuses (the handshake or the request fails).
    let body = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#;
    assert!(https_post(webhook.port, &webhook.certs.ca_pem(), "/mutate", body).is_err());

    let classes = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "high-priority"}, "value": 1000000},
        {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "medium-priority"}, "value": 100000}
    ]});
    cp.kubectl(&["apply", "-f", "-"], Some(&classes.to_string()))
        .assert_success();
    let config = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "gpu-admission-mtls"},
        "webhooks": [{
            "name": "mutate.gpu-admission.mtls",
            "clientConfig": {
                "url": format!("https://127.0.0.1:{}/mutate", webhook.port),
                "caBundle": ca_bundle(&webhook.certs.ca_pem()),
            },
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}],
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "failurePolicy": "Fail",
            "timeoutSeconds": 10,
        }],
    });
    cp.kubectl(&["apply", "-f", "-"], Some(&config.to_string()))
        .assert_success();

    // Once the API server uses the configuration, a GPU pod comes back mutated: the API server
    // completed a handshake that requires its client certificate.
    let pod = fixture("gpu-pod.yaml");
    let mutated: Value = Wait::new("a GPU pod mutated through the mTLS webhook", WAIT).until(|| {
        let out = cp.kubectl(
            &[
                "create",
                "--dry-run=server",
                "-n",
                "default",
                "-o",
                "json",
                "-f",
                s(&pod),
            ],
            None,
        );
        let json = out.success().then(|| out.json())?;
        (json["spec"]["nodeSelector"]["node-type"] == "gpu-worker").then_some(json)
    });
    assert_eq!(mutated["spec"]["priorityClassName"], "medium-priority", "{mutated}");
    let reviews = webhook.reviews();
    assert!(
        reviews.iter().any(|r| r["decision"] == "mutated"),
        "the webhook logged no mutated review: {}",
        webhook.log_tail(20)
    );
    drop(webhook);
    drop(cp);
}
