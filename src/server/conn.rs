//! Listeners and connections: the listen backlog, a connection limit per listener (over it, a new
//! connection is closed at accept, before TLS), TCP_NODELAY, TLS handshakes bounded by the header
//! timeout, HTTP/1.1 or HTTP/2 by ALPN, the per-connection watchdog ([`guard`]), and graceful
//! shutdown: HTTP/2 gets a GOAWAY, HTTP/1.1 answers its next request with `Connection: close`.
//!
//! [`guard`]: super::guard

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, Request, Response, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use super::guard::{self, Activity, GuardedBody, Limits};
use super::shutdown::triggered;
use super::{ServerConfig, Shared};

/// Connections the admin port holds at most (its own limit: the kubelet's probes are never
/// crowded out by webhook clients, nor the other way round).
pub const ADMIN_MAX_CONNECTIONS: usize = 64;

/// HTTP/2 flow-control windows (connection and stream).
const WINDOW_BYTES: u32 = 256 * 1024;

/// Binds `addr` with `backlog` pending connections at most (SO_REUSEADDR, as std does).
pub fn bind(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

// === Http ===

/// The HTTP/1.1-only and HTTP/2-only connection builders (the protocol comes from ALPN).
pub struct Http {
    h1: auto::Builder<TokioExecutor>,
    h2: auto::Builder<TokioExecutor>,
}

impl Http {
    pub fn new(config: &ServerConfig) -> Self {
        let make = || {
            let mut b = auto::Builder::new(TokioExecutor::new());
            // The request line and headers share hyper's read buffer: its size is the limit.
            b.http1()
                .keep_alive(true)
                .timer(TokioTimer::new())
                .header_read_timeout(config.header_timeout)
                .max_buf_size(config.max_header_bytes.max(8192));
            b.http2()
                .timer(TokioTimer::new())
                .max_concurrent_streams(256)
                // Body bytes buffered before the handler reads them (it waits for the decode
                // budget first): 256 KiB per connection, not hyper's 1 MiB.
                .initial_connection_window_size(WINDOW_BYTES)
                .initial_stream_window_size(WINDOW_BYTES)
                .max_header_list_size(u32::try_from(config.max_header_bytes).unwrap_or(u32::MAX))
                .keep_alive_interval(Some(config.keepalive_interval))
                .keep_alive_timeout(config.keepalive_timeout);
            b
        };
        Self {
            h1: make().http1_only(),
            h2: make().http2_only(),
        }
    }
}

/// Which listener a loop serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Webhook,
    Admin,
}

/// Accepts until shutdown, then lets connections finish for at most the grace period.
pub async fn accept_loop(
    kind: Kind,
    listener: TcpListener,
    router: Router,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let max = match kind {
        Kind::Webhook => shared.config.max_connections.max(1),
        Kind::Admin => ADMIN_MAX_CONNECTIONS,
    };
    let open = Arc::new(Semaphore::new(max));
    let (kill, killed) = watch::channel(false);
    let http = Arc::new(Http::new(&shared.config));
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(permit) = open.clone().try_acquire_owned() else {
                        // Over the limit: closed now, before any TLS work.
                        shared.metrics.error("connection_limit");
                        tracing::debug!(?kind, %peer, max, "connection limit reached; connection closed");
                        drop(stream);
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    // The webhook's TLS configuration as it is now (the client CA may have changed).
                    let tls = match kind {
                        Kind::Webhook => Some(TlsAcceptor::from(shared.tls.load_full())),
                        Kind::Admin => None,
                    };
                    let conn = Conn { kind, peer, shared: shared.clone(), http: http.clone() };
                    let (stop, killed) = (shutdown.clone(), killed.clone());
                    let router = router.clone();
                    tokio::spawn(async move {
                        conn.serve(stream, tls, router, stop, killed).await;
                        drop(permit);
                    });
                }
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(?kind, %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = triggered(&mut shutdown) => break,
        }
    }
    drop(listener);
    let open_connections = max - open.available_permits();
    tracing::info!(?kind, open_connections, "stopped accepting; draining connections");
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, open.acquire_many(all)).await.is_err() {
        tracing::warn!(
            ?kind,
            grace_ms = grace.as_millis() as u64,
            "grace period over; closing remaining connections"
        );
        kill.send_replace(true);
    }
}

/// One accepted connection.
struct Conn {
    kind: Kind,
    peer: SocketAddr,
    shared: Arc<Shared>,
    http: Arc<Http>,
}

impl Conn {
    async fn serve(
        self,
        stream: TcpStream,
        tls: Option<TlsAcceptor>,
        router: Router,
        shutdown: watch::Receiver<bool>,
        killed: watch::Receiver<bool>,
    ) {
        let Conn { kind, peer, .. } = self;
        let activity = Activity::new();
        let result = match tls {
            None => {
                let io = TokioIo::new(guard::Tracked::new(stream, activity.clone()));
                self.drive(io, router, activity, false, shutdown, killed).await
            }
            Some(acceptor) => {
                let config = &self.shared.config;
                let handshake = tokio::time::timeout(config.header_timeout, acceptor.accept(stream)).await;
                let stream = match handshake {
                    Ok(Ok(s)) => s,
                    Ok(Err(error)) => {
                        self.shared.metrics.error("tls_handshake");
                        tracing::debug!(%peer, %error, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        self.shared.metrics.error("tls_handshake_timeout");
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
                let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                let io = TokioIo::new(guard::Tracked::new(stream, activity.clone()));
                self.drive(io, router, activity, h2, shutdown, killed).await
            }
        };
        if let Err(error) = result {
            let timeout = error
                .downcast_ref::<hyper::Error>()
                .is_some_and(hyper::Error::is_timeout);
            if timeout {
                self.shared.metrics.error("header_timeout");
                tracing::debug!(?kind, %peer, "client too slow sending headers; connection dropped");
            } else if chain_mentions(error.as_ref(), "keep-alive timed out") {
                self.shared.metrics.error("keepalive_timeout");
                tracing::debug!(?kind, %peer, "HTTP/2 keep-alive ping not answered; connection closed");
            } else {
                tracing::debug!(?kind, %peer, %error, "connection ended with an error");
            }
        }
    }

    /// Serves the connection beside its watchdog, until it ends, is closed by the watchdog, or
    /// the grace period is over.
    async fn drive<IO>(
        &self,
        io: TokioIo<IO>,
        router: Router,
        activity: Arc<Activity>,
        h2: bool,
        mut shutdown: watch::Receiver<bool>,
        mut killed: watch::Receiver<bool>,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let config = &self.shared.config;
        let limits = Limits {
            first_request: config.header_timeout,
            idle: config.idle_timeout,
            write_stall: config.write_timeout,
        };
        let service = Service {
            inner: TowerToHyperService::new(router),
            activity: activity.clone(),
            h2,
        };
        let builder = if h2 { &self.http.h2 } else { &self.http.h1 };
        let conn = builder.serve_connection(io, service);
        tokio::pin!(conn);
        let mut ticker = tokio::time::interval(guard::tick(&limits, false));
        let (mut draining, mut closing) = (false, false);
        loop {
            tokio::select! {
                result = conn.as_mut() => return result,
                _ = triggered(&mut shutdown), if !draining => {
                    draining = true;
                    activity.drain();
                    // HTTP/2: GOAWAY now (the client retries what it had not sent). HTTP/1.1: the
                    // next response says `Connection: close`; the watchdog closes it when idle.
                    if h2 {
                        conn.as_mut().graceful_shutdown();
                    } else {
                        ticker = tokio::time::interval(guard::tick(&limits, true));
                    }
                }
                _ = triggered(&mut killed) => return Ok(()),
                _ = ticker.tick() => {
                    let Some(verdict) = activity.verdict(&limits, h2) else { continue };
                    if verdict.graceful() && closing {
                        continue; // already asked; the write-stall cap still applies
                    }
                    if let Some(cause) = verdict.cause() {
                        self.shared.metrics.error(cause);
                    }
                    tracing::debug!(kind = ?self.kind, peer = %self.peer, ?verdict, "watchdog closes the connection");
                    if !verdict.graceful() {
                        return Ok(()); // dropped: the socket closes
                    }
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// The router as a hyper service that tells the watchdog about each request and response.
struct Service {
    inner: TowerToHyperService<Router>,
    activity: Arc<Activity>,
    h2: bool,
}

type Answer = Result<Response<GuardedBody<axum::body::Body>>, Infallible>;

impl hyper::service::Service<Request<Incoming>> for Service {
    type Response = Response<GuardedBody<axum::body::Body>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Answer> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let guard = self.activity.begin();
        let activity = self.activity.clone();
        let h2 = self.h2;
        let answer = self.inner.call(req);
        Box::pin(async move {
            let Ok(mut resp) = answer.await;
            if !h2 && activity.draining.load(std::sync::atomic::Ordering::Acquire) {
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(resp.map(|body| GuardedBody::new(body, guard)))
        })
    }
}

/// Whether an error or one of its sources displays `text`.
fn chain_mentions(error: &(dyn std::error::Error + 'static), text: &str) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.to_string().contains(text) {
            return true;
        }
        next = e.source();
    }
    false
}
