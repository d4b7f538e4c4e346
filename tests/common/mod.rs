//! Helpers for the server integration tests: certificates in a temporary directory, an in-process
//! server on 127.0.0.1:0, a TLS client trusting the test CA (HTTP/1.1 or HTTP/2 through hyper, or
//! raw bytes), and admin-port requests. Objects, reviews and waits come from the test kit
//! (`gpu_admission_testkit`).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gpu_admission::certs::{DevCa, Issued};
use gpu_admission::server::{RunningServer, ServerConfig};
use gpu_admission_testkit::Wait;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// The upper bound of every wait in these tests: a hang fails the test instead of blocking CI.
pub const BOUND: Duration = Duration::from_secs(20);

// === Pki ===

/// A test CA and the serving certificate files (`tls.crt`, `tls.key`) in a temporary directory.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca: DevCa,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

impl Pki {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = DevCa::generate(30).expect("CA");
        let cert_path = dir.path().join("tls.crt");
        let key_path = dir.path().join("tls.key");
        let pki = Self {
            dir,
            ca,
            cert_path,
            key_path,
        };
        let leaf = pki.issue();
        pki.write_pair(&leaf);
        pki
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca.cert_pem
    }

    /// A new serving certificate for localhost / 127.0.0.1.
    pub fn issue(&self) -> Issued {
        self.ca
            .issue_server(&["localhost".into(), "127.0.0.1".into()], 10)
            .expect("leaf")
    }

    /// Writes a pair atomically, key first.
    pub fn write_pair(&self, pair: &Issued) {
        write_atomic(&self.key_path, pair.key_pem.as_bytes());
        write_atomic(&self.cert_path, pair.cert_pem.as_bytes());
    }
}

pub fn write_atomic(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension(format!("tmp{}", rand_suffix()));
    std::fs::write(&tmp, bytes).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// The DER of the first certificate in a PEM file's text.
pub fn leaf_der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .expect("PEM")
        .as_ref()
        .to_vec()
}

// === server ===

/// Test defaults: loopback, ephemeral ports, fast polling, bounded timeouts.
pub fn config(pki: &Pki) -> ServerConfig {
    let mut c = ServerConfig::new(&pki.cert_path, &pki.key_path);
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.admin_listen = "127.0.0.1:0".parse().unwrap();
    c.reload_poll = Duration::from_millis(200);
    c.shutdown_grace = Duration::from_secs(10);
    c.header_timeout = Duration::from_secs(10);
    c.body_timeout = Duration::from_secs(10);
    c
}

pub async fn start(config: ServerConfig) -> RunningServer {
    gpu_admission::server::start(config).await.expect("server starts")
}

/// A server with the test defaults as `edit` changes them, and a client trusting its CA.
pub async fn serve(pki: &Pki, edit: impl FnOnce(&mut ServerConfig)) -> (RunningServer, Client) {
    let mut c = config(pki);
    edit(&mut c);
    let server = start(c).await;
    let client = Client::new(server.addr, pki.ca_pem());
    (server, client)
}

/// `gpu-admission serve` (the binary) on ephemeral loopback ports with `pki`'s pair.
pub fn serve_command(pki: &Pki) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_gpu-admission"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .arg("--tls-cert")
        .arg(&pki.cert_path)
        .arg("--tls-key")
        .arg(&pki.key_path);
    cmd
}

/// Polls `check` until it returns `Some`, for at most [`BOUND`].
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    Wait::new(what, BOUND)
        .every(Duration::from_millis(25))
        .until_async(check)
        .await
}

// === client ===

/// A response: status, content type and body.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// A TLS client trusting the test CA, optionally with a client certificate.
#[derive(Clone)]
pub struct Client {
    pub addr: SocketAddr,
    connector: TlsConnector,
}

/// One TLS connection: the leaf certificate the server presented and the ALPN protocol.
pub struct Conn {
    pub stream: TlsStream<TcpStream>,
    pub peer_leaf: Vec<u8>,
    pub alpn: Option<Vec<u8>>,
}

impl Client {
    pub fn new(addr: SocketAddr, ca_pem: &str) -> Self {
        Self::build(addr, ca_pem, None, vec![b"http/1.1".to_vec()])
    }

    pub fn with_alpn(addr: SocketAddr, ca_pem: &str, alpn: Vec<Vec<u8>>) -> Self {
        Self::build(addr, ca_pem, None, alpn)
    }

    pub fn with_identity(addr: SocketAddr, ca_pem: &str, identity: &Issued) -> Self {
        Self::build(addr, ca_pem, Some(identity), vec![b"http/1.1".to_vec()])
    }

    fn build(addr: SocketAddr, ca_pem: &str, identity: Option<&Issued>, alpn: Vec<Vec<u8>>) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let mut cfg = match identity {
            None => builder.with_no_client_auth(),
            Some(id) => {
                let chain = CertificateDer::pem_slice_iter(id.cert_pem.as_bytes())
                    .map(Result::unwrap)
                    .collect();
                let key = PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes()).unwrap();
                builder.with_client_auth_cert(chain, key).unwrap()
            }
        };
        cfg.alpn_protocols = alpn;
        // Every connect is a full handshake, so it shows the certificate served now (a resumed
        // TLS 1.3 session reports the certificate of the session it resumes).
        cfg.resumption = rustls::client::Resumption::disabled();
        Self {
            addr,
            connector: TlsConnector::from(Arc::new(cfg)),
        }
    }

    /// A new TCP + TLS connection (a fresh handshake).
    pub async fn connect(&self) -> std::io::Result<Conn> {
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from("localhost").unwrap();
        let stream = self.connector.connect(name, tcp).await?;
        let (_, session) = stream.get_ref();
        let peer_leaf = session
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.as_ref().to_vec())
            .unwrap_or_default();
        let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
        Ok(Conn {
            stream,
            peer_leaf,
            alpn,
        })
    }

    /// POST on a new connection (HTTP/1.1 or HTTP/2, as negotiated).
    pub async fn post(&self, path: &str, body: impl Into<Bytes>) -> Result<Resp, String> {
        self.request("POST", path, body.into()).await
    }

    pub async fn request(&self, method: &str, path: &str, body: Bytes) -> Result<Resp, String> {
        let conn = self.connect().await.map_err(|e| format!("connect: {e}"))?;
        let mut h = conn.into_http().await?;
        h.request(method, path, body).await
    }
}

/// A hyper client connection over one TLS connection (keep-alive: several requests).
pub enum Http {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl Conn {
    pub async fn into_http(self) -> Result<Http, String> {
        let h2 = self.alpn.as_deref() == Some(b"h2");
        let io = TokioIo::new(self.stream);
        if h2 {
            let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| format!("h2 handshake: {e}"))?;
            tokio::spawn(conn);
            Ok(Http::H2(send))
        } else {
            let (send, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| format!("h1 handshake: {e}"))?;
            tokio::spawn(conn);
            Ok(Http::H1(send))
        }
    }

    /// Writes raw bytes, then reads until the server closes (or [`BOUND`]).
    pub async fn raw(mut self, bytes: &[u8]) -> Vec<u8> {
        self.stream.write_all(bytes).await.expect("write");
        self.stream.flush().await.expect("flush");
        let (out, closed) = self.read_to_close().await;
        assert!(closed, "server did not close the connection");
        out
    }

    /// [`raw`](Self::raw) without its asserts, for a server that may answer and close before
    /// all of `bytes` is written: what was read when the server closed (or at [`BOUND`]).
    pub async fn raw_lenient(mut self, bytes: &[u8]) -> Vec<u8> {
        let _ = self.stream.write_all(bytes).await;
        let _ = self.stream.flush().await;
        self.read_to_close().await.0
    }

    /// Reads until the server closes or [`BOUND`] passes; what was read, and whether it closed.
    async fn read_to_close(&mut self) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        let read = tokio::time::timeout(BOUND, self.stream.read_to_end(&mut out)).await;
        (out, read.is_ok())
    }
}

impl Http {
    pub async fn request(&mut self, method: &str, path: &str, body: Bytes) -> Result<Resp, String> {
        let uri = match self {
            Http::H1(_) => path.to_string(),
            Http::H2(_) => format!("https://localhost{path}"),
        };
        let req = hyper::Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "localhost")
            .header("content-type", "application/json")
            .body(Full::new(body))
            .unwrap();
        let resp = match self {
            Http::H1(s) => {
                // HTTP/1.1: one request at a time; wait until the previous one is done.
                s.ready().await.map_err(|e| format!("connection not ready: {e}"))?;
                s.send_request(req).await
            }
            Http::H2(s) => {
                s.ready().await.map_err(|e| format!("connection not ready: {e}"))?;
                s.send_request(req).await
            }
        }
        .map_err(|e| format!("request: {e}"))?;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes()
            .to_vec();
        Ok(Resp {
            status,
            content_type,
            body,
        })
    }
}

/// Parses a raw HTTP/1.1 response (status and body; `Content-Length` framing).
pub fn parse_raw(raw: &[u8]) -> Resp {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP response in {text:?}"));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status");
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type:")
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default();
    Resp {
        status,
        content_type,
        body: body.as_bytes().to_vec(),
    }
}

/// GET on the admin port (plain HTTP/1.1).
pub async fn admin_get(addr: SocketAddr, path: &str) -> Resp {
    let mut tcp = TcpStream::connect(addr).await.expect("admin connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(BOUND, tcp.read_to_end(&mut out))
        .await
        .expect("admin response in time")
        .unwrap();
    parse_raw(&out)
}

/// Asserts that `/metrics` counted at least `n` request errors of each `(cause, n)`.
#[track_caller]
pub fn assert_errors_counted(text: &str, causes: &[(&str, f64)]) {
    for (cause, n) in causes {
        assert!(
            errors_counted(text, cause) >= *n,
            "{} < {n} in\n{text}",
            errors_sample(cause)
        );
    }
}

/// `gpu_admission_request_errors_total{cause}` in Prometheus text (0 when absent).
pub fn errors_counted(text: &str, cause: &str) -> f64 {
    metric(text, &errors_sample(cause))
}

fn errors_sample(cause: &str) -> String {
    format!("gpu_admission_request_errors_total{{cause=\"{cause}\"}}")
}

/// The value of one sample in Prometheus text (`name{labels}`), 0 when absent.
pub fn metric(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name_and_labels)
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

pub async fn metrics_text(server: &RunningServer) -> String {
    String::from_utf8(admin_get(server.admin_addr, "/metrics").await.body).unwrap()
}
