//! Certificates that will work, or readiness that says so (issue 15, item 4): a serving pair
//! outside its validity window is refused at reload (counted, logged, the old pair stays), leaves
//! a server that has no other pair unready with the reason, and is taken once it is valid; the
//! client CA (`--client-ca`) is reloaded like the serving pair.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use gpu_admission::certs::{DevCa, Issued};
use gpu_admission_testkit::{Pod, Review};

const DAY: i64 = 86_400;

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn hosts() -> Vec<String> {
    vec!["localhost".into(), "127.0.0.1".into()]
}

fn expired(pki: &Pki) -> Issued {
    pki.ca
        .issue_server_window(&hosts(), now() - 2 * DAY, now() - DAY)
        .unwrap()
}

fn not_yet_valid(pki: &Pki) -> Issued {
    pki.ca
        .issue_server_window(&hosts(), now() + DAY, now() + 2 * DAY)
        .unwrap()
}

fn body() -> String {
    Review::create(&Pod::gpu(1).ns("ai").build()).uid("window").to_string()
}

async fn readyz(server: &gpu_admission::server::RunningServer) -> (u16, String) {
    let r = admin_get(server.admin_addr, "/readyz").await;
    (r.status, String::from_utf8_lossy(&r.body).to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_outside_its_validity_window_is_refused_and_the_old_one_stays() {
    let pki = Pki::new();
    let (server, client) = serve(&pki, |c| c.watch_files = false).await;
    let good = leaf_der(&std::fs::read_to_string(&pki.cert_path).unwrap());
    assert_eq!(client.connect().await.unwrap().peer_leaf, good);

    let mut failures = 0;
    for (what, pair) in [("expired", expired(&pki)), ("not yet valid", not_yet_valid(&pki))] {
        pki.write_pair(&pair);
        failures += 1;
        eventually(&format!("the {what} pair refused"), || async {
            (server.metrics().reload_count("certificate", false) >= failures).then_some(())
        })
        .await;
        // The old pair is still served, and the server stays ready.
        assert_eq!(client.connect().await.unwrap().peer_leaf, good, "{what}");
        assert_eq!(client.post("/mutate", body()).await.unwrap().status, 200, "{what}");
        assert_eq!(readyz(&server).await.0, 200, "{what}");
    }
    // Refused once per content, not on every poll.
    assert_eq!(server.metrics().reload_count("certificate", true), 1);

    let next = pki.issue();
    pki.write_pair(&next);
    let want = leaf_der(&next.cert_pem);
    eventually("a valid pair taken", || async {
        (client.connect().await.ok()?.peer_leaf == want).then_some(())
    })
    .await;
    assert_eq!(server.metrics().reload_count("certificate", false), failures);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_with_a_pair_outside_its_window_is_unready_and_says_why() {
    for (what, reason) in [("expired", "has expired"), ("not yet valid", "not valid yet")] {
        let pki = Pki::new();
        let pair = if what == "expired" {
            expired(&pki)
        } else {
            not_yet_valid(&pki)
        };
        pki.write_pair(&pair);
        let (server, client) = serve(&pki, |c| c.watch_files = false).await;
        let (status, text) = readyz(&server).await;
        assert_eq!(status, 503, "{what}: {text}");
        assert!(
            text.contains("serving certificate not loaded") && text.contains(reason),
            "{what}: {text}"
        );
        assert!(!server.is_ready());
        // No pair: every handshake fails, none is served with the refused pair.
        assert!(client.post("/mutate", body()).await.is_err(), "{what}");
        assert_eq!(server.metrics().reload_count("certificate", false), 1);

        // A valid pair makes it ready.
        pki.write_pair(&pki.issue());
        eventually(&format!("{what}: ready with a valid pair"), || async {
            (readyz(&server).await.0 == 200).then_some(())
        })
        .await;
        assert_eq!(client.post("/mutate", body()).await.unwrap().status, 200);
        server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_ca_is_reloaded_and_a_broken_one_is_kept_out() {
    let pki = Pki::new();
    let (first_ca, second_ca) = (DevCa::generate(30).unwrap(), DevCa::generate(30).unwrap());
    let ca_file = pki.dir.path().join("client-ca.crt");
    write_atomic(&ca_file, first_ca.cert_pem.as_bytes());
    let (server, _anonymous) = serve(&pki, |c| {
        c.client_ca = Some(ca_file.clone());
        c.watch_files = false;
    })
    .await;
    let first = Client::with_identity(
        server.addr,
        pki.ca_pem(),
        &first_ca.issue_client("apiserver", 5).unwrap(),
    );
    let second = Client::with_identity(
        server.addr,
        pki.ca_pem(),
        &second_ca.issue_client("apiserver", 5).unwrap(),
    );
    assert_eq!(first.post("/mutate", body()).await.unwrap().status, 200);
    assert!(second.post("/mutate", body()).await.is_err());

    // Rotated to the second CA: its clients are served, the first CA's are refused.
    write_atomic(&ca_file, second_ca.cert_pem.as_bytes());
    eventually("the second CA's client served", || async {
        second.post("/mutate", body()).await.ok().filter(|r| r.status == 200)
    })
    .await;
    assert!(first.post("/mutate", body()).await.is_err());
    assert_eq!(server.metrics().reload_count("client_ca", true), 1);

    // A broken CA file is refused and counted; the second CA stays in force.
    write_atomic(&ca_file, b"not a certificate");
    eventually("the broken CA refused", || async {
        (server.metrics().reload_count("client_ca", false) == 1).then_some(())
    })
    .await;
    assert_eq!(second.post("/mutate", body()).await.unwrap().status, 200);
    assert!(first.post("/mutate", body()).await.is_err());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_refused_as_not_valid_yet_is_taken_once_its_not_before_passes() {
    let pki = Pki::new();
    let (server, client) = serve(&pki, |c| c.watch_files = false).await;
    // Valid two seconds from now (X.509 times have whole seconds); the file never changes again.
    let soon = pki.ca.issue_server_window(&hosts(), now() + 2, now() + DAY).unwrap();
    pki.write_pair(&soon);
    eventually("refused while not valid yet", || async {
        (server.metrics().reload_count("certificate", false) == 1).then_some(())
    })
    .await;
    let want = leaf_der(&soon.cert_pem);
    eventually("taken once valid", || async {
        (client.connect().await.ok()?.peer_leaf == want).then_some(())
    })
    .await;
    assert_eq!(server.metrics().reload_count("certificate", false), 1);
    server.shutdown().await;
}
