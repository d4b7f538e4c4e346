//! Accept loops and connections: TCP_NODELAY on every accepted socket, TLS handshakes bounded by
//! the header timeout, HTTP/1.1 (keep-alive, header-read timeout) or HTTP/2 by ALPN, and graceful
//! shutdown of every connection through hyper-util's `GracefulShutdown`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::Shared;
use super::shutdown::triggered;

// === Http ===

/// The HTTP/1.1-only and HTTP/2-only connection builders (the protocol comes from ALPN).
pub struct Http {
    h1: auto::Builder<TokioExecutor>,
    h2: auto::Builder<TokioExecutor>,
}

// === impl Http ===

impl Http {
    pub fn new(header_timeout: Duration) -> Self {
        let make = || {
            let mut b = auto::Builder::new(TokioExecutor::new());
            b.http1()
                .keep_alive(true)
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            b.http2()
                .timer(TokioTimer::new())
                .max_concurrent_streams(256)
                .keep_alive_interval(Some(Duration::from_secs(30)))
                .keep_alive_timeout(Duration::from_secs(20));
            b
        };
        Self {
            h1: make().http1_only(),
            h2: make().http2_only(),
        }
    }
}

/// Which listener a loop serves.
#[derive(Clone, Copy, Debug)]
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
    let graceful = GracefulShutdown::new();
    let http = Arc::new(Http::new(shared.config.header_timeout));
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    // The webhook's TLS configuration as it is now (the client CA may have changed).
                    let tls = match kind {
                        Kind::Webhook => Some(TlsAcceptor::from(shared.tls.load_full())),
                        Kind::Admin => None,
                    };
                    let task = serve(kind, stream, peer, router.clone(), tls, http.clone(),
                                     shared.clone(), graceful.watcher());
                    tokio::spawn(task);
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
    tracing::info!(
        ?kind,
        open_connections = graceful.count(),
        "stopped accepting; draining connections"
    );
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(
            ?kind,
            grace_ms = grace.as_millis() as u64,
            "grace period over; closing remaining connections"
        );
    }
}

#[allow(clippy::too_many_arguments)]
async fn serve(
    kind: Kind,
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    tls: Option<TlsAcceptor>,
    http: Arc<Http>,
    shared: Arc<Shared>,
    watcher: Watcher,
) {
    let service = TowerToHyperService::new(router);
    let result = match tls {
        None => {
            let conn = http.h1.serve_connection(TokioIo::new(stream), service);
            watcher.watch(conn).await
        }
        Some(acceptor) => {
            let handshake = tokio::time::timeout(shared.config.header_timeout, acceptor.accept(stream)).await;
            let stream = match handshake {
                Ok(Ok(s)) => s,
                Ok(Err(error)) => {
                    shared.metrics.error("tls_handshake");
                    tracing::debug!(%peer, %error, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    shared.metrics.error("tls_handshake_timeout");
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
            let builder = if h2 { &http.h2 } else { &http.h1 };
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            watcher.watch(conn).await
        }
    };
    if let Err(error) = result {
        let timeout = error
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_timeout);
        if timeout {
            shared.metrics.error("header_timeout");
            tracing::debug!(?kind, %peer, "client too slow sending headers; connection dropped");
        } else {
            tracing::debug!(?kind, %peer, %error, "connection ended with an error");
        }
    }
}
