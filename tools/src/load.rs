//! The load generator of `benchkit load` (webhook vs floor): hyper's HTTP/1.1 client over
//! tokio-rustls (ring), N keep-alive connections, closed loop at full speed or open loop at a
//! fixed rate, latency in an HdrHistogram. Not gpu-admission code: nothing here comes from the
//! crate under test.
//!
//! Bounded: a run lasts at most [`MAX_RUN`], a request at most [`REQUEST_TIMEOUT`], a connection
//! reconnects at most [`MAX_RECONNECTS`] times.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

/// Longest a run may last, whatever is asked.
pub const MAX_RUN: Duration = Duration::from_secs(120);
/// Longest one request may take before it counts as a timeout error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Reconnects one connection may make in a run before it gives up.
pub const MAX_RECONNECTS: u32 = 20;

/// Error kinds, counted separately (index into [`Outcome::errors`]).
#[derive(Clone, Copy, Debug)]
pub enum ErrorKind {
    Connect,
    Send,
    Timeout,
    Status,
    Body,
}

pub const ERROR_KINDS: [&str; 5] = ["connect", "send", "timeout", "status", "body"];

// === Client ===

/// TLS settings for every connection of a run.
#[derive(Clone)]
pub struct Client {
    tls: TlsConnector,
    server_name: ServerName<'static>,
}

pub type Sender = SendRequest<Full<Bytes>>;

impl Client {
    /// Trusts `ca` (PEM), offers `client_cert` (PEM chain and key) if given, ALPN `http/1.1`
    /// (kube-apiserver calls webhooks over HTTP/1.1 keep-alive), server name 127.0.0.1.
    pub fn new(ca: &Path, client_cert: Option<(&Path, &Path)>) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).map_err(|e| format!("{}: {e}", ca.display()))? {
            let cert = cert.map_err(|e| format!("{}: {e}", ca.display()))?;
            roots.add(cert).map_err(|e| format!("{}: {e}", ca.display()))?;
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots);
        let mut config = match client_cert {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .and_then(|c| c.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| format!("{}: {e}", cert.display()))?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
                builder.with_client_auth_cert(chain, key).map_err(|e| e.to_string())?
            }
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            tls: TlsConnector::from(Arc::new(config)),
            server_name: ServerName::try_from("127.0.0.1").map_err(|e| e.to_string())?.to_owned(),
        })
    }

    pub async fn connect(&self, addr: SocketAddr) -> Result<Sender, String> {
        if !addr.ip().is_loopback() {
            return Err(format!(
                "{addr}: the load generator connects to loopback addresses only"
            ));
        }
        let tcp = TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let tls = self
            .tls
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("HTTP handshake: {e}"))?;
        tokio::spawn(conn);
        Ok(sender)
    }
}

// === Request ===

/// What every request of a run sends, and what makes its answer a success.
#[derive(Clone)]
pub struct Request {
    /// Path and query, e.g. `/validate` or `/api/v1/namespaces/ai/pods?dryRun=All`.
    pub path: String,
    pub body: Bytes,
    pub expect_status: u16,
    /// Bytes the answer must contain (e.g. `"uid":"..."`).
    pub expect_body: Vec<u8>,
}

/// One request; `Ok` only for the expected status with the expected bytes in the body.
pub async fn send(sender: &mut Sender, req: &Request) -> Result<(), ErrorKind> {
    let request = hyper::Request::post(req.path.as_str())
        .header(hyper::header::HOST, "127.0.0.1")
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::ACCEPT, "application/json")
        .body(Full::new(req.body.clone()))
        .map_err(|_| ErrorKind::Send)?;
    let exchange = async {
        sender.ready().await.map_err(|_| ErrorKind::Send)?;
        let response = sender.send_request(request).await.map_err(|_| ErrorKind::Send)?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|_| ErrorKind::Send)?
            .to_bytes();
        if status.as_u16() != req.expect_status {
            return Err(ErrorKind::Status);
        }
        if !req.expect_body.is_empty() && !bytes.windows(req.expect_body.len()).any(|w| w == req.expect_body) {
            return Err(ErrorKind::Body);
        }
        Ok(())
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .unwrap_or(Err(ErrorKind::Timeout))
}

/// Retries one request on fresh connections until it succeeds (a server starting up, a
/// configuration being picked up), at most `wait`.
pub async fn wait_until_ok(client: &Client, addr: SocketAddr, req: &Request, wait: Duration) -> Result<(), String> {
    let deadline = Instant::now() + wait;
    let mut last = String::new();
    while Instant::now() < deadline {
        match client.connect(addr).await {
            Ok(mut s) => match send(&mut s, req).await {
                Ok(()) => return Ok(()),
                Err(kind) => last = format!("{kind:?}"),
            },
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("no successful answer within {wait:?}: {last}"))
}

// === run ===

/// What a run measured.
pub struct Outcome {
    pub ok: u64,
    pub errors: [u64; 5],
    /// The measured window.
    pub seconds: f64,
    /// From sending a request to its whole answer.
    pub latency: Histogram<u64>,
    /// Fixed rate only: from the request's scheduled time (includes waiting for a free
    /// connection, so a slow server cannot hide queueing; coordinated omission corrected).
    pub corrected: Histogram<u64>,
}

impl Outcome {
    pub fn throughput(&self) -> f64 {
        self.ok as f64 / self.seconds
    }
    pub fn error_total(&self) -> u64 {
        self.errors.iter().sum()
    }
    /// Latency percentile in milliseconds.
    pub fn p(&self, q: f64) -> f64 {
        ms(&self.latency, q)
    }
    pub fn corrected_p(&self, q: f64) -> f64 {
        ms(&self.corrected, q)
    }
}

/// A latency histogram: 1 µs .. 60 s, 3 significant digits. Record nanoseconds
/// (`Duration::as_nanos`); read it with [`ms`].
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1_000, 60_000_000_000, 3).expect("histogram bounds")
}

/// The `q` quantile of a [`histogram`] (nanoseconds), in milliseconds.
pub fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1e6
}

/// Opens `conns` connections, warms each with one request (handshakes are not measured), calls
/// `window_starts`, then sends for `duration`: back to back on every connection (`rate: None`),
/// or at `rate` requests per second spread over the connections.
pub async fn run(
    client: &Client,
    addr: SocketAddr,
    req: &Request,
    conns: usize,
    duration: Duration,
    rate: Option<f64>,
    window_starts: impl FnOnce(),
) -> Outcome {
    let duration = duration.min(MAX_RUN);
    let errors: Arc<[AtomicU64; 5]> = Arc::new(Default::default());
    let count = |kind: ErrorKind| {
        errors[kind as usize].fetch_add(1, Ordering::Relaxed);
    };
    let mut senders = Vec::with_capacity(conns);
    for _ in 0..conns {
        match client.connect(addr).await {
            Ok(mut s) => {
                if let Err(kind) = send(&mut s, req).await {
                    count(kind);
                }
                senders.push(s);
            }
            Err(_) => count(ErrorKind::Connect),
        }
    }
    window_starts();
    let start = Instant::now() + Duration::from_millis(20);
    let deadline = start + duration;
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(senders.len());
    for mut sender in senders {
        let (client, req, errors, next) = (client.clone(), req.clone(), errors.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let (mut latency, mut corrected) = (histogram(), histogram());
            let mut ok = 0u64;
            let mut reconnects = 0;
            tokio::time::sleep_until(start).await;
            loop {
                let scheduled = rate.map(|rate| {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    start + Duration::from_secs_f64(i as f64 / rate)
                });
                if let Some(at) = scheduled {
                    if at >= deadline {
                        break;
                    }
                    tokio::time::sleep_until(at).await;
                }
                let sent = Instant::now();
                if sent >= deadline {
                    break;
                }
                match send(&mut sender, &req).await {
                    Ok(()) => {
                        let done = Instant::now();
                        ok += 1;
                        let _ = latency.record((done - sent).as_nanos() as u64);
                        if let Some(at) = scheduled {
                            let _ = corrected.record((done - at).as_nanos() as u64);
                        }
                    }
                    Err(kind) => {
                        errors[kind as usize].fetch_add(1, Ordering::Relaxed);
                        if sender.is_closed() {
                            reconnects += 1;
                            if reconnects > MAX_RECONNECTS {
                                break;
                            }
                            match client.connect(addr).await {
                                Ok(s) => sender = s,
                                Err(_) => {
                                    errors[ErrorKind::Connect as usize].fetch_add(1, Ordering::Relaxed);
                                    break;
                                }
                            }
                        }
                    }
                }
            }
            (ok, latency, corrected)
        }));
    }
    let (mut latency, mut corrected) = (histogram(), histogram());
    let mut ok = 0;
    for task in tasks {
        if let Ok((n, l, c)) = task.await {
            ok += n;
            let _ = latency.add(&l);
            let _ = corrected.add(&c);
        }
    }
    let seconds = (Instant::now() - start).as_secs_f64();
    Outcome {
        ok,
        errors: std::array::from_fn(|i| errors[i].load(Ordering::Relaxed)),
        seconds,
        latency,
        corrected,
    }
}

/// Median of a set of figures (0 when empty).
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}
