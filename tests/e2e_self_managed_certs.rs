//! `serve --cluster --self-managed-certs` on a real kube-apiserver (issue 14, item 1), as the
//! ServiceAccount of deploy/components/self-managed-certs with exactly that component's RBAC
//! (resourceNames only) and its empty Secret: the server fills the Secret, writes the caBundle of
//! every webhook of both configurations, and GPU pods sent through the API server are mutated.
//! Then, with dry-run creates flowing all along, a forced serving rotation (the test deletes
//! `tls.crt` from the Secret) and a CA rotation (the server restarted with a CA rotation window
//! the CA is already in): 0 failed requests, a new serial served each time, the caBundle holding
//! the new CA before any certificate from it is served, and the old CA still trusted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use gpu_admission_testkit::Wait;
use gpu_admission_testkit::e2e::cluster;
use gpu_admission_testkit::e2e::harness::{self, Output, kubectl};
use gpu_admission_testkit::e2e::load::Load;
use gpu_admission_testkit::e2e::webhook::{self, WAIT, Webhook, fixture, repo, s, yaml_documents};
use rustls::pki_types::pem::PemObject as _;
use serde_json::{Value, json};

const SA: &str = "self-managed-certs";
const SECRET: &str = "gpu-admission-certs";
const NS: &str = "gpu-admission";
const KINDS: [&str; 2] = ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"];

/// A file of the component: its RBAC bound to [`SA`] instead of `gpu-admission`, or its Secret.
fn apply_component_file(file: &str) {
    let path = repo().join("deploy/components/self-managed-certs").join(file);
    let mut items = yaml_documents(&std::fs::read_to_string(path).unwrap());
    for item in &mut items {
        if let Some(subjects) = item["subjects"].as_array_mut() {
            subjects[0]["name"] = json!(SA);
        }
    }
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string();
    kubectl(&["apply", "-f", "-"], Some(&list)).assert_success();
}

fn can_i(verb: &str, what: &str, namespace: Option<&str>) -> bool {
    let who = format!("--as=system:serviceaccount:{NS}:{SA}");
    let mut args = vec!["auth", "can-i", verb, what, who.as_str()];
    if let Some(ns) = namespace {
        args.extend(["-n", ns]);
    }
    kubectl(&args, None).stdout.trim() == "yes"
}

/// The Secret's data, decoded.
fn secret_data() -> BTreeMap<String, String> {
    let secret = kubectl(&["get", "secret", SECRET, "-n", NS, "-o", "json"], None)
        .assert_success()
        .json();
    let b64 = base64::engine::general_purpose::STANDARD;
    secret["data"]
        .as_object()
        .map(|d| {
            d.iter()
                .map(|(k, v)| {
                    let bytes = b64.decode(v.as_str().unwrap_or_default()).unwrap_or_default();
                    (k.clone(), String::from_utf8(bytes).unwrap_or_default())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every caBundle of both configurations (base64), one per webhook.
fn ca_bundles() -> Vec<String> {
    let mut out = Vec::new();
    for kind in KINDS {
        let cfg = kubectl(&["get", kind, "gpu-admission", "-o", "json"], None)
            .assert_success()
            .json();
        for w in cfg["webhooks"].as_array().unwrap() {
            out.push(w["clientConfig"]["caBundle"].as_str().unwrap_or_default().to_string());
        }
    }
    out
}

/// Waits until every webhook's caBundle is the Secret's `ca-bundle.crt`; returns it (PEM).
fn wait_for_injected_bundle(w: &Webhook, step: &str, want: impl Fn(&str) -> bool) -> String {
    Wait::new(format!("{step}: the caBundle of every webhook"), WAIT).until(|| {
        let data = secret_data();
        let pem = data.get("ca-bundle.crt").cloned().unwrap_or_default();
        let bundles = ca_bundles();
        let expected = webhook::ca_bundle(&pem);
        if want(&pem) && bundles.iter().all(|b| *b == expected) {
            Ok(pem)
        } else {
            Err(format!(
                "{} CAs in the Secret; caBundles {bundles:?}\n{}",
                pem_count(&pem),
                w.log_tail(20)
            ))
        }
    })
}

fn pem_count(pem: &str) -> usize {
    pem.matches("-----BEGIN CERTIFICATE-----").count()
}

/// The serial of a certificate (PEM or DER).
fn serial_of_der(der: &[u8]) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(der).expect("an X.509 certificate");
    cert.raw_serial_as_string()
}

fn serial_of_pem(pem: &str) -> String {
    serial_of_der(
        rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
            .expect("PEM")
            .as_ref(),
    )
}

/// The serial of the certificate the webhook serves, verified against `roots_pem`.
fn served_serial(port: u16, roots_pem: &str) -> Result<String, String> {
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(roots_pem.as_bytes()) {
        roots.add(cert.map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]).into());
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).map_err(|e| format!("handshake: {e}"))?;
    }
    let leaf = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or("no certificate")?;
    Ok(serial_of_der(leaf.as_ref()))
}

/// Waits until the webhook serves the Secret's `tls.crt` and that is not `old_serial`.
fn wait_for_new_serial(w: &Webhook, old_serial: &str, roots_pem: &str) -> String {
    Wait::new("the webhook serves the new certificate", WAIT).until(|| {
        let data = secret_data();
        let stored = data.get("tls.crt").map(|p| serial_of_pem(p));
        let served = served_serial(w.port, roots_pem);
        match (&stored, &served) {
            (Some(stored), Ok(served)) if stored == served && served != old_serial => Ok(served.clone()),
            _ => Err(format!("stored {stored:?}, served {served:?}\n{}", w.log_tail(20))),
        }
    })
}

// === load ===

/// Two threads sending dry-run creates of a GPU pod (both webhooks) in a loop.
fn start_load() -> Load<Output> {
    Load::start([create_gpu_pod; 2])
}

/// Stops the threads; asserts every request was mutated and admitted by the webhook.
fn finish_load(load: Load<Output>, w: &Webhook, step: &str) {
    let results = load.finish();
    let failed: Vec<&Output> = results.iter().filter(|o| !mutated_and_admitted(o)).collect();
    assert!(
        failed.is_empty(),
        "{step}: {} of {} requests failed; first: {:?}\nwebhook log:\n{}",
        failed.len(),
        results.len(),
        failed.first(),
        w.log_tail(30)
    );
    assert!(results.len() >= 10, "{step}: {} requests", results.len());
}

/// A dry-run create of a GPU pod in `ai` through the API server (both webhooks).
fn create_gpu_pod() -> Output {
    let file = fixture("gpu-pod.yaml");
    kubectl(
        &["create", "--dry-run=server", "-n", "ai", "-o", "json", "-f", s(&file)],
        None,
    )
}

fn mutated_and_admitted(out: &Output) -> bool {
    let Ok(obj) = serde_json::from_str::<Value>(&out.stdout) else {
        return false;
    };
    out.code == 0 && obj["spec"]["nodeSelector"]["node-type"] == "gpu-worker" && obj["spec"]["priority"] == 1_000_000
}

#[test]
fn self_managed_certificates_are_made_injected_and_rotated_with_no_failed_request() {
    harness::shared();
    let options = cluster::service_account_options(SA, &cluster::policy_file());
    cluster::ensure_rbac();
    cluster::bind_like_deploy(SA);
    cluster::baseline();
    apply_component_file("rbac.yaml");
    kubectl(&["delete", "secret", SECRET, "-n", NS, "--ignore-not-found"], None).assert_success();
    // The component's RBAC: that Secret and those configurations, by name, and no create.
    assert!(can_i("update", &format!("secret/{SECRET}"), Some(NS)));
    assert!(!can_i("get", "secret/other", Some(NS)));
    assert!(!can_i("create", "secrets", Some(NS)));
    assert!(can_i("update", "validatingwebhookconfiguration/gpu-admission", None));
    assert!(!can_i("update", "mutatingwebhookconfiguration/other", None));

    // Without the component's Secret the server would have to create it, which that RBAC
    // refuses: /readyz says so.
    let mut w = Webhook::start(
        options
            .without_tls_files()
            .without_waiting()
            .arg(&format!("--self-managed-certs={SECRET}"))
            .arg("--serving-host=127.0.0.1"),
    );
    Wait::new("/readyz names the refused create", WAIT).until(|| {
        w.assert_running();
        match w.admin_get("/readyz") {
            Ok((503, body)) if body.contains("cannot create resource \"secrets\"") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    // The component's empty Secret: the server fills it (on its watch event) and is ready.
    apply_component_file("secret.yaml");
    w.wait_ready();
    // Ready means the Secret was filled and its pair is served.
    let data = secret_data();
    for key in ["ca.crt", "ca.key", "tls.crt", "tls.key", "ca-bundle.crt"] {
        assert!(data.contains_key(key), "the Secret has no {key}: {:?}", data.keys());
    }
    let first_ca = data["ca.crt"].clone();
    assert_eq!(served_serial(w.port, &first_ca), Ok(serial_of_pem(&data["tls.crt"])));

    // Configurations with no caBundle, as the component renders them: the server writes it.
    let configs = webhook::render_local_overlay(w.port, "");
    webhook::apply_webhook_configurations(&configs);
    let bundle = wait_for_injected_bundle(&w, "install", |pem| pem_count(pem) == 1);
    assert_eq!(bundle, first_ca);
    cluster::eventually(
        "a GPU pod mutated and admitted through the API server",
        WAIT,
        &w,
        || {
            let out = create_gpu_pod();
            cluster::seen(mutated_and_admitted(&out), (), &out)
        },
    );

    // 1. A serving rotation forced under load: tls.crt deleted from the Secret.
    let load = start_load();
    load.wait_for_more(4, "start");
    let old_serial = serial_of_pem(&data["tls.crt"]);
    let patch = r#"[{"op": "remove", "path": "/data/tls.crt"}]"#;
    kubectl(&["patch", "secret", SECRET, "-n", NS, "--type=json", "-p", patch], None).assert_success();
    let new_serial = wait_for_new_serial(&w, &old_serial, &first_ca);
    load.wait_for_more(6, "serving rotation");
    finish_load(load, &w, "serving rotation");
    let after = secret_data();
    assert_eq!(
        after["ca.crt"], first_ca,
        "the same CA signs the new serving certificate"
    );
    assert_eq!(ca_bundles(), vec![webhook::ca_bundle(&first_ca); ca_bundles().len()]);
    assert_ne!(new_serial, old_serial);

    // 2. A CA rotation: restarted with a rotation window the CA is already in and a 10 s overlap.
    w.stop();
    w.restart_with_args(&[
        "--ca-rotate-before-secs=315360000",
        "--ca-valid-secs=630720000",
        "--ca-overlap-secs=10",
    ]);
    let load = start_load();
    load.wait_for_more(2, "CA rotation");
    // a) the next CA joins every caBundle, next to the old one...
    let both = wait_for_injected_bundle(&w, "next CA", |pem| pem_count(pem) >= 2);
    assert!(both.contains(&first_ca), "the old CA stays trusted");
    // b) ...and only then signs the served certificate (the old CA still in the bundle).
    let ca_serial = wait_for_new_serial(&w, &new_serial, &both);
    let promoted = secret_data();
    assert_ne!(promoted["ca.crt"], first_ca, "the next CA signs now");
    assert!(both.contains(&promoted["ca.crt"]));
    assert!(
        served_serial(w.port, &first_ca).is_err(),
        "the old CA did not sign what is served"
    );
    assert_eq!(served_serial(w.port, &promoted["ca.crt"]), Ok(ca_serial));
    load.wait_for_more(6, "CA rotation");
    finish_load(load, &w, "CA rotation");
    assert!(webhook::ca_bundle(&promoted["ca-bundle.crt"]) == ca_bundles()[0]);
    w.stop();
}
