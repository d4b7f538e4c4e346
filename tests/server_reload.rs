//! Reload without restart: certificate rotation (plain rewrite via polling, `..data` symlink swap
//! via the directory watch) with a client loop running throughout, mismatched or broken pairs kept
//! out, the server starting unready until its certificate appears, and policy reload.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use gpu_admission::server::RunningServer;
use gpu_admission_testkit::paths::{corpus, temp_file};
use gpu_admission_testkit::{Pod, Review};
use serde_json::Value;

/// Reviews sent on fresh connections in a loop, for at most 2000 requests, until
/// [`ClientLoop::stop_without_failures`].
struct ClientLoop {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(usize, Vec<String>)>,
}

impl ClientLoop {
    fn start(client: Client) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let body = Review::create(&Pod::gpu(1).name("l").ns("ai").build())
                .uid("loop")
                .to_string();
            let (mut n, mut failures) = (0, Vec::new());
            while !stopped.load(Ordering::Relaxed) && n < 2000 {
                match client.post("/mutate", body.clone()).await {
                    Ok(r) if r.status == 200 => {}
                    Ok(r) => failures.push(format!("status {}", r.status)),
                    Err(e) => failures.push(e),
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (n, failures)
        });
        ClientLoop { stop, task }
    }

    /// Stops the loop; asserts that it sent requests and that none failed.
    async fn stop_without_failures(self) {
        self.stop.store(true, Ordering::Relaxed);
        let (requests, failures) = self.task.await.unwrap();
        assert!(requests > 0);
        assert!(
            failures.is_empty(),
            "{} of {requests} requests failed during rotation: {failures:?}",
            failures.len()
        );
    }
}

async fn served_leaf(client: &Client) -> Vec<u8> {
    client.connect().await.expect("handshake").peer_leaf
}

async fn wait_for_leaf(client: &Client, want: &[u8], what: &str) {
    eventually(what, || async { (served_leaf(client).await == want).then_some(()) }).await;
}

async fn reload_count(server: &RunningServer, target: &'static str, ok: bool) -> u64 {
    server.metrics().reload_count(target, ok)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewritten_files_are_picked_up_by_polling_without_failed_requests() {
    let pki = Pki::new();
    let (server, client) = serve(&pki, |c| {
        c.watch_files = false; // polling alone
        c.reload_poll = Duration::from_millis(100);
    })
    .await;
    let first = served_leaf(&client).await;
    assert_eq!(first, leaf_der(&std::fs::read_to_string(&pki.cert_path).unwrap()));

    let running = ClientLoop::start(client.clone());
    let mut previous = first;
    for round in 0..3 {
        let next = pki.issue();
        pki.write_pair(&next);
        let want = leaf_der(&next.cert_pem);
        assert_ne!(want, previous);
        wait_for_leaf(&client, &want, &format!("rotation {round} served")).await;
        previous = want;
    }
    running.stop_without_failures().await;
    assert!(reload_count(&server, "certificate", true).await >= 4); // initial + 3
    let text = metrics_text(&server).await;
    let not_after = metric(&text, "gpu_admission_certificate_not_after_seconds") as i64;
    assert_eq!(Some(not_after), gpu_admission::certs::not_after_unix(&previous));
    server.shutdown().await;
}

/// Lays out `dir` like a Secret volume: `..<ts>/` with the files, `..data -> ..<ts>`, and
/// `tls.crt -> ..data/tls.crt`, `tls.key -> ..data/tls.key`. Swaps `..data` atomically.
fn secret_volume_write(dir: &Path, generation: u32, cert_pem: &str, key_pem: &str) {
    let ts = format!("..2026_11_28_00_00_{generation:02}.000000000");
    let ts_dir = dir.join(&ts);
    std::fs::create_dir(&ts_dir).unwrap();
    std::fs::write(ts_dir.join("tls.crt"), cert_pem).unwrap();
    std::fs::write(ts_dir.join("tls.key"), key_pem).unwrap();
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(&ts, &tmp).unwrap();
    let old = std::fs::read_link(dir.join("..data")).ok();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for name in ["tls.crt", "tls.key"] {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new("..data").join(name), &link).unwrap();
        }
    }
    if let Some(old) = old {
        std::fs::remove_dir_all(dir.join(old)).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_volume_symlink_swap_is_seen_by_the_watch() {
    let pki = Pki::new();
    let vol = tempfile::tempdir().unwrap();
    let first = pki.issue();
    secret_volume_write(vol.path(), 1, &first.cert_pem, &first.key_pem);
    let (server, client) = serve(&pki, |c| {
        c.tls_cert = vol.path().join("tls.crt");
        c.tls_key = vol.path().join("tls.key");
        c.reload_poll = Duration::from_secs(3600); // the watch alone
    })
    .await;
    assert_eq!(served_leaf(&client).await, leaf_der(&first.cert_pem));

    let running = ClientLoop::start(client.clone());
    for generation in 2..5 {
        let next = pki.issue();
        secret_volume_write(vol.path(), generation, &next.cert_pem, &next.key_pem);
        wait_for_leaf(
            &client,
            &leaf_der(&next.cert_pem),
            &format!("generation {generation} served"),
        )
        .await;
    }
    running.stop_without_failures().await;
    assert_eq!(reload_count(&server, "certificate", false).await, 0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mismatched_or_broken_pair_keeps_the_old_one() {
    let pki = Pki::new();
    let (server, client) = serve(&pki, |_| {}).await;
    let original = served_leaf(&client).await;

    // A key that belongs to another certificate.
    let stranger = pki.issue();
    write_atomic(&pki.key_path, stranger.key_pem.as_bytes());
    eventually("mismatch counted", || async {
        (reload_count(&server, "certificate", false).await >= 1).then_some(())
    })
    .await;
    assert_eq!(served_leaf(&client).await, original, "a mismatched pair was swapped in");
    let body = Review::create(&Pod::gpu(1).ns("ai").build())
        .uid("after-mismatch")
        .to_string();
    assert_eq!(client.post("/mutate", body.clone()).await.unwrap().status, 200);

    // A certificate file that is not PEM.
    write_atomic(&pki.cert_path, b"-----BEGIN CERTIFICATE-----\nnot base64\n");
    eventually("broken file counted", || async {
        (reload_count(&server, "certificate", false).await >= 2).then_some(())
    })
    .await;
    assert_eq!(served_leaf(&client).await, original);
    let text = metrics_text(&server).await;
    assert!(
        metric(
            &text,
            r#"gpu_admission_reloads_total{target="certificate",result="failure"}"#
        ) >= 2.0,
        "{text}"
    );
    assert!(
        admin_get(server.admin_addr, "/readyz").await.status == 200,
        "still ready with the old pair"
    );

    // A good pair again is taken.
    let good = pki.issue();
    pki.write_pair(&good);
    wait_for_leaf(&client, &leaf_der(&good.cert_pem), "the good pair served").await;
    assert_eq!(client.post("/mutate", body).await.unwrap().status, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unready_until_the_certificate_appears() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let (server, client) = serve(&pki, |c| {
        c.tls_cert = dir.path().join("tls.crt");
        c.tls_key = dir.path().join("tls.key");
    })
    .await;
    let ready = admin_get(server.admin_addr, "/readyz").await;
    assert_eq!(ready.status, 503);
    assert!(String::from_utf8_lossy(&ready.body).contains("certificate"));
    assert_eq!(admin_get(server.admin_addr, "/livez").await.status, 200);
    assert!(
        client.connect().await.is_err(),
        "handshake without a certificate must fail"
    );

    let pair = pki.issue();
    std::fs::write(dir.path().join("tls.key"), &pair.key_pem).unwrap();
    std::fs::write(dir.path().join("tls.crt"), &pair.cert_pem).unwrap();
    eventually("ready", || async {
        (admin_get(server.admin_addr, "/readyz").await.status == 200).then_some(())
    })
    .await;
    let body = Review::create(&Pod::gpu(1).ns("ai").build()).uid("late").to_string();
    assert_eq!(client.post("/mutate", body).await.unwrap().status, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_reload_changes_a_decision_without_restart() {
    let default = gpu_admission::policy::DEFAULT_POLICY_YAML;
    let (_dir, policy_path) = temp_file("policy.yaml", default);
    let (server, client) = serve(&Pki::new(), |c| c.policy = Some(policy_path.clone())).await;
    let body = Review::create(&Pod::host_path("/").name("r").ns("default").build())
        .uid("pol")
        .to_string();
    let decide = || async {
        let resp = client.post("/validate", body.clone()).await.unwrap();
        assert_eq!(resp.status, 200);
        resp.json()
    };
    assert_eq!(decide().await["response"]["allowed"], false);

    // hostPath: deny -> warn
    let section = default.find("  hostPath:\n").expect("hostPath section");
    let mut relaxed = default.to_string();
    let action = section + relaxed[section..].find("action: deny").expect("hostPath action");
    relaxed.replace_range(action..action + "action: deny".len(), "action: warn");
    write_atomic(&policy_path, relaxed.as_bytes());
    let resp: Value = eventually("policy reloaded", || async {
        let r = decide().await;
        (r["response"]["allowed"] == true).then_some(r)
    })
    .await;
    let warnings = resp["response"]["warnings"]
        .as_array()
        .expect("a warning instead of a denial");
    assert!(!warnings.is_empty());

    // An invalid policy is not taken: the decision stays, the failure is counted.
    write_atomic(
        &policy_path,
        b"apiVersion: gpu-admission.io/v1alpha1\nkind: Policy\nnoSuchKey: 1\n",
    );
    eventually("failure counted", || async {
        (reload_count(&server, "policy", false).await >= 1).then_some(())
    })
    .await;
    assert_eq!(decide().await["response"]["allowed"], true);
    assert!(reload_count(&server, "policy", true).await >= 2);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_slicing_reload_changes_the_slice_limit() {
    let replicas4 = std::fs::read_to_string(corpus("07-time-slicing-configmap-replicas4.yaml")).unwrap();
    let (_dir, ts_path) = temp_file("time-slicing.yaml", &replicas4);
    let (server, client) = serve(&Pki::new(), |c| c.time_slicing = Some(ts_path.clone())).await;
    // 6 slices in one container: over replicas 4, within replicas 8.
    let mut pod = Pod::gpu(6).name("six").ns("ai").build();
    pod["spec"]["nodeSelector"] = serde_json::json!({"node-type": "gpu-worker"});
    let body = Review::create(&pod).uid("ts").to_string();
    let message = |r: &Value| {
        r["response"]["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let resp = client.post("/validate", body.clone()).await.unwrap().json();
    assert!(message(&resp).contains("SLICES_CONTAINER_EXCEEDED"), "{resp}");

    write_atomic(&ts_path, replicas4.replace("replicas: 4", "replicas: 8").as_bytes());
    eventually("replicas 8 in force", || async {
        let r = client.post("/validate", body.clone()).await.unwrap().json();
        (!message(&r).contains("SLICES_CONTAINER_EXCEEDED")).then_some(())
    })
    .await;
    assert!(reload_count(&server, "policy", true).await >= 2);
    server.shutdown().await;
}
