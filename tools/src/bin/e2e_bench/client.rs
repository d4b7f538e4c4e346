//! Part of the e2e benchmark (tools/src/bin/e2e_bench/main.rs).

#[allow(unused_imports)]
use super::*;

// === HTTPS client ===

/// One client's connection to kube-apiserver.
pub(crate) enum Conn {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

pub(crate) struct Target {
    pub(crate) tls: TlsConnector,
    pub(crate) addr: SocketAddr,
    pub(crate) http1: bool,
}

pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Bytes,
}

impl Answer {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Target {
    pub(crate) fn new(cp: &harness::ControlPlane, http1: bool) -> Result<Target, String> {
        let url = cp.server_url();
        let addr: SocketAddr = url
            .strip_prefix("https://")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("unexpected server URL {url}"))?;
        if !addr.ip().is_loopback() {
            return Err(format!("{addr}: the benchmark only talks to 127.0.0.1"));
        }
        let mut roots = rustls::RootCertStore::empty();
        let ca = cp.ca_cert_path();
        for cert in CertificateDer::pem_file_iter(&ca).map_err(|e| format!("{}: {e}", ca.display()))? {
            roots
                .add(cert.map_err(|e| format!("{}: {e}", ca.display()))?)
                .map_err(|e| format!("{}: {e}", ca.display()))?;
        }
        // The harness' admin client certificate (group system:masters: exempt from API Priority
        // and Fairness, as a controller's would not be).
        let (cert, key) = (cp.dir().join("admin.crt"), cp.dir().join("admin.key"));
        let chain = CertificateDer::pem_file_iter(&cert)
            .and_then(|c| c.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("{}: {e}", cert.display()))?;
        let key = PrivateKeyDer::from_pem_file(&key).map_err(|e| format!("{}: {e}", key.display()))?;
        let mut config =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_client_auth_cert(chain, key)
                .map_err(|e| e.to_string())?;
        config.alpn_protocols = vec![if http1 { b"http/1.1".to_vec() } else { b"h2".to_vec() }];
        Ok(Target {
            tls: TlsConnector::from(Arc::new(config)),
            addr,
            http1,
        })
    }

    pub(crate) async fn connect(&self) -> Result<Conn, String> {
        let tcp = tokio::net::TcpStream::connect(self.addr)
            .await
            .map_err(|e| format!("connect {}: {e}", self.addr))?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from("127.0.0.1").map_err(|e| e.to_string())?;
        let tls = self.tls.connect(name, tcp).await.map_err(|e| format!("TLS: {e}"))?;
        let io = TokioIo::new(tls);
        if self.http1 {
            let (send, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| format!("HTTP/1.1 handshake: {e}"))?;
            tokio::spawn(conn);
            Ok(Conn::H1(send))
        } else {
            let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
            tokio::spawn(conn);
            Ok(Conn::H2(send))
        }
    }

    pub(crate) async fn request(
        &self,
        conn: &mut Conn,
        method: &str,
        path: &str,
        body: Bytes,
    ) -> Result<Answer, String> {
        let uri = match conn {
            Conn::H1(_) => path.to_string(),
            Conn::H2(_) => format!("https://{}{path}", self.addr),
        };
        let req = hyper::Request::builder()
            .method(method)
            .uri(uri)
            .header(hyper::header::HOST, self.addr.to_string())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::ACCEPT, "application/json")
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        let exchange = async {
            let response = match conn {
                Conn::H1(s) => {
                    s.ready().await.map_err(|e| format!("connection: {e}"))?;
                    s.send_request(req).await
                }
                Conn::H2(s) => {
                    s.ready().await.map_err(|e| format!("connection: {e}"))?;
                    s.send_request(req).await
                }
            }
            .map_err(|e| format!("send: {e}"))?;
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("body: {e}"))?
                .to_bytes();
            Ok(Answer { status, body })
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {REQUEST_TIMEOUT:?}")))
    }

    pub(crate) async fn create_dry_run(&self, conn: &mut Conn, ns: &str, pod: Bytes) -> Result<Answer, String> {
        let path = format!("/api/v1/namespaces/{ns}/pods?dryRun=All");
        self.request(conn, "POST", &path, pod).await
    }

    /// One dry-run create on a fresh connection.
    pub(crate) async fn create_once(&self, ns: &str, pod: &Value) -> Result<Answer, String> {
        let mut conn = self.connect().await?;
        self.create_dry_run(&mut conn, ns, Bytes::from(pod.to_string())).await
    }

    pub(crate) async fn metrics(&self) -> Result<String, String> {
        let mut conn = self.connect().await?;
        let a = self.request(&mut conn, "GET", "/metrics", Bytes::new()).await?;
        if a.status != 200 {
            return Err(format!("GET /metrics: {} {}", a.status, a.text()));
        }
        Ok(a.text())
    }
}
