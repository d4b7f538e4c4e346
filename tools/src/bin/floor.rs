//! The floor server for the load benchmark (BENCHMARKS.md): the least an HTTPS admission webhook
//! built from the same crates can do. It reads the body, parses it into `serde_json::Value`
//! (nothing less is a webhook), and answers a constant allowed review with the request's uid.
//!
//! Same crates and settings as `gpu-admission serve`: axum router, hyper-util HTTP/1.1 or HTTP/2
//! by ALPN, tokio-rustls on ring with TLS 1.3 and 1.2, TCP_NODELAY on every accepted socket, the
//! default multi-threaded tokio runtime. What it leaves out is the webhook's work: decoding into
//! the fields the rules need, the policy, the response review, logging, metrics, timeouts.
//!
//! `floor --listen 127.0.0.1:0 --tls-cert tls.crt --tls-key tls.key` prints `listening on ADDR`.
//! Loopback addresses only.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use clap::Parser;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

#[derive(Parser)]
struct Args {
    /// Listen address (loopback only).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    #[arg(long)]
    tls_cert: PathBuf,
    #[arg(long)]
    tls_key: PathBuf,
}

async fn review(body: Bytes) -> Response {
    let json = [(header::CONTENT_TYPE, "application/json")];
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(value) => {
            let uid = value.pointer("/request/uid").and_then(serde_json::Value::as_str);
            let answer = serde_json::json!({
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "response": {"uid": uid.unwrap_or(""), "allowed": true},
            });
            (json, answer.to_string()).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, json, format!("{{\"error\":\"{e}\"}}")).into_response(),
    }
}

fn main() {
    let args = Args::parse();
    if !args.listen.ip().is_loopback() {
        eprintln!("error: the floor server listens on loopback addresses only");
        std::process::exit(2);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&args.tls_cert)
        .and_then(|certs| certs.collect())
        .unwrap_or_else(|e| panic!("{}: {e}", args.tls_cert.display()));
    let key = PrivateKeyDer::from_pem_file(&args.tls_key).unwrap_or_else(|e| panic!("{}: {e}", args.tls_key.display()));
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("certificate and key");
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(tls));

    let router = Router::new()
        .route("/mutate", post(review))
        .route("/validate", post(review))
        .layer(DefaultBodyLimit::max(8 * 1024 * 1024));
    let h1 = Arc::new(auto::Builder::new(TokioExecutor::new()).http1_only());
    let h2 = Arc::new(auto::Builder::new(TokioExecutor::new()).http2_only());

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let listener = TcpListener::bind(args.listen).await.expect("bind");
        println!("listening on {}", listener.local_addr().expect("local address"));
        loop {
            let Ok((stream, _peer)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let (acceptor, router, h1, h2) = (acceptor.clone(), router.clone(), h1.clone(), h2.clone());
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let builder = if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                    h2
                } else {
                    h1
                };
                let service = TowerToHyperService::new(router);
                let _ = builder.serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
}
