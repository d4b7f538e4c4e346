//! mTLS (`--client-ca`): no client certificate, or one from another CA, is refused; a certificate
//! issued by the configured CA is served. TLS versions and ALPN are as documented.

mod common;

use std::sync::Arc;

use common::*;
use gpu_admission::certs::DevCa;
use gpu_admission_testkit::{Pod, Review};
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_required_and_verified() {
    let pki = Pki::new();
    let client_ca = DevCa::generate(30).unwrap();
    let ca_file = pki.dir.path().join("client-ca.crt");
    std::fs::write(&ca_file, &client_ca.cert_pem).unwrap();
    let (server, anonymous) = serve(&pki, |c| c.client_ca = Some(ca_file)).await;
    let body = Review::create(&Pod::gpu(1).ns("ai").build()).uid("mtls").to_string();

    // No client certificate: refused (the handshake or the first request fails).
    let refused = anonymous.post("/mutate", body.clone()).await;
    assert!(refused.is_err(), "served without a client certificate: {refused:?}");

    // A certificate from another CA: refused.
    let stranger = DevCa::generate(30).unwrap().issue_client("kube-apiserver", 5).unwrap();
    let impostor = Client::with_identity(server.addr, pki.ca_pem(), &stranger);
    assert!(impostor.post("/mutate", body.clone()).await.is_err());

    // A certificate from the configured CA: served.
    let identity = client_ca.issue_client("kube-apiserver", 5).unwrap();
    let apiserver = Client::with_identity(server.addr, pki.ca_pem(), &identity);
    let resp = apiserver
        .post("/mutate", body)
        .await
        .expect("served with a client certificate");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["response"]["uid"], "mtls");

    assert_errors_counted(&metrics_text(&server).await, &[("tls_handshake", 2.0)]);
    server.shutdown().await;
}

/// Connects with only `version` enabled and `alpn` offered; returns the negotiated ALPN.
async fn handshake(
    addr: std::net::SocketAddr,
    ca_pem: &str,
    version: &'static rustls::SupportedProtocolVersion,
    alpn: &[&[u8]],
) -> std::io::Result<Option<Vec<u8>>> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    Ok(tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls12_tls13_and_alpn() {
    let pki = Pki::new();
    let server = start(config(&pki)).await;
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let alpn = handshake(server.addr, pki.ca_pem(), version, &[b"h2", b"http/1.1"])
            .await
            .unwrap();
        assert_eq!(alpn.as_deref(), Some(&b"h2"[..]), "{version:?}");
        let alpn = handshake(server.addr, pki.ca_pem(), version, &[b"http/1.1"])
            .await
            .unwrap();
        assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
        let alpn = handshake(server.addr, pki.ca_pem(), version, &[]).await.unwrap();
        assert_eq!(alpn, None);
    }
    // No ALPN: HTTP/1.1.
    let conn = Client::with_alpn(server.addr, pki.ca_pem(), vec![])
        .connect()
        .await
        .unwrap();
    let mut http = conn.into_http().await.unwrap();
    let body = Review::create(&Pod::gpu(1).ns("ai").build()).uid("noalpn").to_string();
    assert_eq!(http.request("POST", "/mutate", body.into()).await.unwrap().status, 200);
    server.shutdown().await;
}
