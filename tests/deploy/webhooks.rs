//! The webhook configurations deploy/ renders: the base's (Service and cert-manager) and the
//! local overlay's (a URL) (tests/e2e_deploy.rs).

use serde_json::{Value, json};

use super::{kinds, one, render};

/// The path a webhook calls, through the Service or at a URL.
fn assert_endpoint(w: &Value, path: &str) {
    let cc = &w["clientConfig"];
    let got = match cc["url"].as_str() {
        Some(url) => url.rsplit_once('/').map(|(_, p)| format!("/{p}")).unwrap_or_default(),
        None => cc["service"]["path"].as_str().unwrap_or_default().to_string(),
    };
    assert_eq!(got, path, "{}", w["name"]);
}

/// Per-webhook settings both kustomizations share (base: Service + cert-manager; local: URL).
fn check_webhook_settings(docs: &[Value]) {
    let m = one(docs, "MutatingWebhookConfiguration", "gpu-admission");
    let v = one(docs, "ValidatingWebhookConfiguration", "gpu-admission");
    let mut all = Vec::new();
    for w in m["webhooks"].as_array().unwrap() {
        assert_eq!(w["failurePolicy"], "Ignore", "{}", w["name"]);
        assert_eq!(w["reinvocationPolicy"], "IfNeeded", "{}", w["name"]);
        assert_endpoint(w, "/mutate");
        all.push(w);
    }
    for w in v["webhooks"].as_array().unwrap() {
        assert_eq!(w["failurePolicy"], "Fail", "{}", w["name"]);
        assert_endpoint(w, "/validate");
        all.push(w);
    }
    let names: Vec<_> = all.iter().map(|w| w["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "pods.mutate.gpu-admission.io",
            "pods.validate.gpu-admission.io",
            "workloads.validate.gpu-admission.io",
            "cronjobs.validate.gpu-admission.io"
        ]
    );
    for w in all {
        let name = &w["name"];
        assert_eq!(w["sideEffects"], "None", "{name}");
        assert_eq!(w["admissionReviewVersions"], json!(["v1"]), "{name}");
        assert!(
            w["timeoutSeconds"].as_u64().is_some_and(|t| (1..=30).contains(&t)),
            "{name}"
        );
        let sel = &w["namespaceSelector"]["matchExpressions"][0];
        assert_eq!(sel["key"], "kubernetes.io/metadata.name", "{name}");
        assert_eq!(sel["operator"], "NotIn", "{name}");
        let excluded = sel["values"].to_string();
        for ns in ["kube-system", "gpu-admission"] {
            assert!(excluded.contains(ns), "{name} does not exclude {ns}");
        }
        let conds = w["matchConditions"].as_array().expect("matchConditions");
        let text = serde_json::to_string(conds).unwrap();
        assert!(text.contains("nvidia.com/"), "{name}: {text}");
        assert!(text.contains("initContainers"), "{name}: {text}");
    }
}

#[test]
fn webhook_configurations_in_the_base() {
    let (_, docs) = render("deploy");
    check_webhook_settings(&docs);
    for kind in ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"] {
        let cfg = one(&docs, kind, "gpu-admission");
        assert_eq!(
            cfg["metadata"]["annotations"]["cert-manager.io/inject-ca-from"], "gpu-admission/gpu-admission-serving",
            "{kind}"
        );
        for w in cfg["webhooks"].as_array().unwrap() {
            let svc = &w["clientConfig"]["service"];
            assert_eq!(svc["name"], "gpu-admission");
            assert_eq!(svc["namespace"], "gpu-admission");
            assert_eq!(svc["port"], 443);
            assert!(w["clientConfig"]["url"].is_null());
        }
    }
    // The Certificate the annotation names exists, for the Service's DNS name.
    let cert = one(&docs, "Certificate", "gpu-admission-serving");
    let dns = cert["spec"]["dnsNames"].to_string();
    assert!(dns.contains("\"gpu-admission.gpu-admission.svc\""), "{dns}");
}

#[test]
fn local_overlay_points_at_a_url_without_cert_manager() {
    let (text, docs) = render("deploy/overlays/local");
    check_webhook_settings(&docs);
    let names = kinds(&docs);
    assert_eq!(
        names,
        [
            "MutatingWebhookConfiguration/gpu-admission",
            "ValidatingWebhookConfiguration/gpu-admission",
            "PriorityClass/high-priority",
            "PriorityClass/medium-priority",
        ]
        .map(String::from)
        .into()
    );
    assert!(!text.contains("cert-manager"), "{text}");
    for kind in ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"] {
        for w in one(&docs, kind, "gpu-admission")["webhooks"].as_array().unwrap() {
            let url = w["clientConfig"]["url"].as_str().expect("url");
            assert!(url.starts_with("https://127.0.0.1:8443/"), "{url}");
            assert_eq!(w["clientConfig"]["caBundle"], "${CA_BUNDLE}");
            assert!(w["clientConfig"]["service"].is_null());
        }
    }
}
