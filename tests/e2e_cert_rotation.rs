//! Rotating the webhook's serving certificate, and then its CA and the configurations' caBundle,
//! while the API server keeps sending reviews loses no request.
//!
//! The certificate files are published the way the kubelet updates a Secret volume that
//! cert-manager rewrote (`..data` symlink swap). The CA rotation is done in the only order that
//! cannot fail: trust both CAs, serve the new certificate, then trust only the new CA.
//! Each step waits until it took effect (the server's reload counter; the API server using the
//! new configuration version) and until more requests went through, without sleeping.

use std::time::Duration;

use gpu_admission_testkit::Wait;
use gpu_admission_testkit::e2e::load::Load;
use gpu_admission_testkit::e2e::{harness, webhook};

use harness::{Output, kubectl};
use webhook::{CertSet, WAIT, Webhook, WebhookOptions, fixture, s};

/// A sender of dry-run creates for a load thread: a GPU Pod (mutating + validating webhooks) or
/// a GPU Deployment (validating webhook, warnings).
fn dry_run_create(what: &'static str) -> impl FnMut() -> (&'static str, Output) + Send + 'static {
    let (file, ns) = match what {
        "pod" => (fixture("gpu-pod.yaml"), "ai"),
        _ => (
            webhook::corpus("34-vllm-docs-mistral-7b-gpu-deployment.yaml"),
            "default",
        ),
    };
    move || {
        let out = kubectl(
            &["create", "--dry-run=server", "-n", ns, "-o", "json", "-f", s(&file)],
            None,
        );
        (what, out)
    }
}

/// A request answered as the webhook answers when it is reachable.
fn answered_by_webhook(what: &str, out: &Output) -> bool {
    if out.code != 0 {
        return false;
    }
    let Ok(obj) = serde_json::from_str::<serde_json::Value>(&out.stdout) else {
        return false;
    };
    match what {
        // Mutated (mutating webhook reached) and admitted (validating webhook reached).
        "pod" => {
            obj["spec"]["nodeSelector"]["node-type"] == "gpu-worker"
                && obj["spec"]["priority"] == 1_000_000
                && out.stderr.is_empty()
        }
        // Admitted with the validating webhook's warnings.
        _ => obj["kind"] == "Deployment" && out.stderr.contains("Warning: PLACEMENT_MISSING: "),
    }
}

fn wait_for_certificate_reload(w: &Webhook, successes: f64, step: &str) {
    Wait::new(format!("{step}: the webhook reloads its certificate"), WAIT)
        .every(Duration::from_millis(20))
        .until(|| {
            let n = certificate_loads(w);
            if n >= successes {
                Ok(())
            } else {
                Err(format!("{n} successful loads:\n{}", w.log_tail(20)))
            }
        })
}

fn certificate_loads(w: &Webhook) -> f64 {
    w.metric(
        "gpu_admission_reloads_total",
        &[("target", "certificate"), ("result", "success")],
    )
}

#[test]
fn rotating_certificate_and_ca_loses_no_request() {
    harness::shared();
    webhook::ensure_namespaces(&["ai"]);
    let mut w = Webhook::start(WebhookOptions::default());
    let ca1 = w.certs.ca_pem();
    let mut configs = webhook::render_local_overlay(w.port, &ca1);
    webhook::apply_webhook_configurations(&configs);
    let not_after = |w: &Webhook| w.metric("gpu_admission_certificate_not_after_seconds", &[]);
    let mut expected_loads = certificate_loads(&w);
    assert!(expected_loads >= 1.0, "the initial certificate load is counted");

    let load = Load::start(["pod", "deployment"].map(dry_run_create));
    load.wait_for_more(4, "start");

    // 1. A new serving certificate from the same CA (cert-manager renewing it).
    let before = not_after(&w);
    // A different validity, so that the served certificate is visibly another one.
    w.certs.reissue_valid_days(3);
    let (cert, key) = (w.certs.cert_pem(), w.certs.key_pem());
    w.volume.publish(&cert, &key);
    expected_loads += 1.0;
    wait_for_certificate_reload(&w, expected_loads, "certificate renewal");
    assert_ne!(not_after(&w), before, "the served certificate did not change");
    load.wait_for_more(6, "certificate renewal");

    // 2. A new CA. a) trust both CAs. The API server keeps one client (and its keep-alive
    //    connections) per caBundle: a new bundle means new connections, so from here on the
    //    renewed certificate of step 1 is verified by fresh TLS handshakes.
    let ca2_set = CertSet::new_ca(&w.dir.join("ca2"));
    let ca2 = ca2_set.ca_pem();
    webhook::set_ca_bundle(&mut configs, &format!("{ca1}{ca2}"));
    webhook::apply_webhook_configurations(&configs);
    load.wait_for_more(6, "caBundle = old CA + new CA");

    // b) serve a certificate from the new CA.
    w.volume.publish(&ca2_set.cert_pem(), &ca2_set.key_pem());
    expected_loads += 1.0;
    wait_for_certificate_reload(&w, expected_loads, "certificate from the new CA");
    load.wait_for_more(6, "serving from the new CA");

    // c) trust only the new CA (new connections from the API server must verify against it).
    webhook::set_ca_bundle(&mut configs, &ca2);
    webhook::apply_webhook_configurations(&configs);
    load.wait_for_more(6, "caBundle = new CA");

    let results = load.finish();
    let failed: Vec<_> = results
        .iter()
        .filter(|(what, out)| !answered_by_webhook(what, out))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed during the rotation; first: {:?}\nwebhook log:\n{}",
        failed.len(),
        results.len(),
        failed.first(),
        w.log_tail(30)
    );
    assert!(results.len() >= 34, "{} requests", results.len());

    // Negative control: a caBundle the API server has not used before makes it open new
    // connections, and a CA that did not issue the served certificate fails them (validating
    // webhook: Fail). (The API server keeps one client per caBundle, with its keep-alive
    // connections: going back to the old CA could reuse a connection verified before.)
    let other = CertSet::new_ca(&w.dir.join("ca3"));
    webhook::set_ca_bundle(&mut configs, &other.ca_pem());
    webhook::apply_webhook_configurations(&configs);
    let out = kubectl(
        &[
            "create",
            "--dry-run=server",
            "-n",
            "ai",
            "-f",
            s(&fixture("gpu-pod.yaml")),
        ],
        None,
    );
    out.assert_fails_saying(&[
        "failed calling webhook \"pods.validate.gpu-admission.io\"",
        "x509: certificate signed by unknown authority",
    ]);
    w.stop();
}
