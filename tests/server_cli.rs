//! The server's command-line shells: `gpu-admission review` (exit 0 with the response review, 2 on
//! bad input), `gpu-admission certs` (PEM files, 0600 keys, caBundle on stdout), and `serve`'s
//! start-up errors.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

use base64::Engine as _;
use common::*;
use gpu_admission_testkit::paths::temp_file;
use gpu_admission_testkit::process::run;
use gpu_admission_testkit::review::apply_patch;
use gpu_admission_testkit::{Pod, Review};
use rustls::client::danger::ServerCertVerifier as _;
use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gpu-admission"))
}

/// A policy file the loader refuses (an unknown key).
const BOGUS_POLICY: &str = "apiVersion: gpu-admission.io/v1alpha1\nkind: Policy\nbogus: 1\n";

#[test]
fn review_prints_the_response_review() {
    let dir = tempfile::tempdir().unwrap();
    let pod = Pod::gpu(1).ns("ai").build();
    let file = dir.path().join("review.json");
    std::fs::write(&file, Review::create(&pod).uid("cli-1").to_string()).unwrap();

    let out = bin()
        .args(["review", "--endpoint", "mutate"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let resp: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(resp["response"]["uid"], "cli-1");
    assert_eq!(resp["response"]["patchType"], "JSONPatch");
    let patched = apply_patch(&resp["response"], &pod);
    assert_eq!(patched["spec"]["nodeSelector"]["node-type"], "gpu-worker");

    // Default endpoint: validate; `-` reads stdin.
    let bad = Review::create(&Pod::host_path("/").name("r").ns("default").build())
        .uid("cli-2")
        .to_string();
    let out = run(bin().args(["review", "-", "--compact"]), bad.as_bytes());
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.trim().lines().count(), 1, "--compact is one line");
    let resp: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(resp["response"]["allowed"], false);
    assert_eq!(resp["response"]["status"]["code"], 403);
}

#[test]
fn review_exits_2_on_bad_input() {
    for (input, code) in [
        (&b"not json"[..], "not_json"),
        (b"{}", "wrong_api_version"),
        (b"", "empty_body"),
    ] {
        let out = run(bin().arg("review"), input);
        assert_eq!(out.status.code(), Some(2));
        let err: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(err["code"], code);
        assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("error[{code}]")));
    }
    let out = bin().args(["review", "/nonexistent/review.json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let (_dir, policy) = temp_file("policy.yaml", BOGUS_POLICY);
    let out = run(bin().arg("review").arg("--policy").arg(&policy), b"{}");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("policy.yaml"));
}

#[test]
fn certs_writes_pem_files_and_prints_the_ca_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("dev");
    let out = bin()
        .args([
            "certs",
            "--host",
            "webhook.gpu-admission.svc",
            "--host",
            "127.0.0.1",
            "--out",
        ])
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bundle = String::from_utf8(out.stdout).unwrap();
    let ca_pem = base64::engine::general_purpose::STANDARD.decode(bundle.trim()).unwrap();
    assert_eq!(ca_pem, std::fs::read(out_dir.join("ca.crt")).unwrap());
    for (name, mode) in [
        ("ca.key", 0o600),
        ("tls.key", 0o600),
        ("ca.crt", 0o644),
        ("tls.crt", 0o644),
    ] {
        let meta = std::fs::metadata(out_dir.join(name)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, mode, "{name}");
        let text = std::fs::read_to_string(out_dir.join(name)).unwrap();
        assert!(text.starts_with("-----BEGIN "), "{name} is PEM");
    }
    // The pair loads, matches, and chains to the CA for both SANs.
    let cert = std::fs::read_to_string(out_dir.join("tls.crt")).unwrap();
    let key = std::fs::read_to_string(out_dir.join("tls.key")).unwrap();
    gpu_admission::server::tls::pair_from_pem(cert.as_bytes(), key.as_bytes()).expect("a matching pair");
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(leaf_der(
            std::str::from_utf8(&ca_pem).unwrap(),
        )))
        .unwrap();
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        std::sync::Arc::new(roots),
        std::sync::Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .unwrap();
    let leaf = rustls::pki_types::CertificateDer::from(leaf_der(&cert));
    for name in ["webhook.gpu-admission.svc", "127.0.0.1"] {
        let server_name = rustls::pki_types::ServerName::try_from(name).unwrap();
        verifier
            .verify_server_cert(&leaf, &[], &server_name, &[], rustls::pki_types::UnixTime::now())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    // --reuse-ca keeps the bundle.
    let again = bin()
        .args(["certs", "--reuse-ca", "--host", "localhost", "--out"])
        .arg(&out_dir)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(again.stdout).unwrap(), bundle);
}

#[test]
fn serve_refuses_an_invalid_policy_and_unusable_flags() {
    let (dir, policy) = temp_file("policy.yaml", BOGUS_POLICY);
    let pki = Pki::new();
    let out = serve_command(&pki).arg("--policy").arg(&policy).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bogus"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Neither certificate flags nor --dev.
    let out = bin()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("GPU_ADMISSION_DEV")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // A client CA that is not a certificate.
    let bad_ca = dir.path().join("ca.crt");
    std::fs::write(&bad_ca, "nope").unwrap();
    let out = serve_command(&pki).arg("--client-ca").arg(&bad_ca).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ca.crt"));
}

#[test]
fn serve_self_managed_certs_needs_the_cluster_no_files_and_a_rotation_window_inside_the_validity() {
    let serve = |args: &[&str]| {
        let out = bin()
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("GPU_ADMISSION_DEV")
            .env_remove("KUBECONFIG")
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, stderr) = serve(&["--self-managed-certs=c"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--cluster"), "{stderr}");
    let (code, stderr) = serve(&["--cluster", "--self-managed-certs=c", "--tls-cert=a", "--tls-key=b"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("cannot be used with"), "{stderr}");
    let (code, stderr) = serve(&[
        "--cluster",
        "--self-managed-certs=c",
        "--serving-valid-secs=100",
        "--serving-rotate-before-secs=100",
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr
            .contains("--serving-rotate-before-secs (100) must be at least 0 and less than --serving-valid-secs (100)"),
        "{stderr}"
    );
    let (code, stderr) = serve(&["--cluster", "--self-managed-certs=c", "--ca-rotate-before-secs=-1"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--ca-rotate-before-secs (-1)"), "{stderr}");
}
