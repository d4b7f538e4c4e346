//! The HTTPS admission webhook server and its admin port.
//!
//! [`start`] binds both listeners, loads the certificate and the policy, and serves until its
//! [`ShutdownHandle`] is triggered; [`run`] is `gpu-admission serve` around it (logging, signals,
//! `--dev` certificates). Tests start servers in-process with [`start`] on `127.0.0.1:0`.
//!
//! - [`args`]: flags and environment variables.
//! - [`tls`]: rustls configuration and the swappable certificate resolver.
//! - [`reload`]: certificate and policy reload (directory watch + poll).
//! - [`conn`]: listeners (backlog, connection limit), TCP_NODELAY, HTTP/1.1 and HTTP/2
//!   connections, graceful drain; [`guard`]: the per-connection watchdog (HTTP/2 first request,
//!   idle timeout, write stall, drain of HTTP/1.1 keep-alive connections).
//! - [`routes`]: `/mutate`, `/validate`, error bodies, the panic guard.
//! - [`admin`]: `/livez`, `/readyz`, `/metrics`; [`metrics`]: the registry.
//! - [`shutdown`]: the shutdown handle and signals.
//! - [`self_certs`]: `--self-managed-certs` (a CA and serving pair kept in a Secret, caBundles).

use std::borrow::Cow;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use tokio::task::JoinHandle;

use crate::cluster::watch::{ClusterWatch, now_unix_ms};
use crate::engine::Effective;
use crate::policy::Policy;

mod admin;
mod budget;
mod conn;
mod error;
mod guard;
mod metrics;
mod native_params;
mod reload;
mod routes;
pub mod self_certs;
pub(crate) mod shutdown;
pub mod tls;

pub use error::ApiError;
pub use metrics::Metrics;
pub use shutdown::ShutdownHandle;

// === ServerConfig ===

/// Everything [`start`] needs. [`ServerConfig::new`] gives the `serve` defaults.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The webhook (HTTPS) listener.
    pub listen: SocketAddr,
    /// The admin (plain HTTP) listener.
    pub admin_listen: SocketAddr,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    /// Require client certificates issued by this CA (mTLS).
    pub client_ca: Option<PathBuf>,
    /// The policy file (`None`: the embedded default).
    pub policy: Option<PathBuf>,
    /// The device-plugin time-slicing config applied on top of the policy.
    pub time_slicing: Option<PathBuf>,
    pub max_body_bytes: usize,
    /// Body bytes of large reviews (over 256 KiB) read and decoded at once; at least one body
    /// of `max_body_bytes`. Small reviews have a pool of their own (4 MiB).
    pub max_inflight_body_bytes: usize,
    /// TLS handshake and HTTP/1 request-header read (idle keep-alive connections included).
    pub header_timeout: Duration,
    /// Reading the whole request body.
    pub body_timeout: Duration,
    /// Open connections per webhook listener; over it, new ones are closed at accept.
    pub max_connections: usize,
    /// Pending connections the kernel queues before accept (`listen(2)` backlog).
    pub listen_backlog: u32,
    /// A connection with no request in flight for this long is closed (HTTP/2 with GOAWAY).
    pub idle_timeout: Duration,
    /// A response not delivered, with no write progress, for this long closes the connection
    /// (a client that stopped reading, or an HTTP/2 flow-control window held at zero).
    pub write_timeout: Duration,
    /// HTTP/2 keep-alive: a PING after this long without frames...
    pub keepalive_interval: Duration,
    /// ...that must be answered within this, or the connection is closed.
    pub keepalive_timeout: Duration,
    /// Request line and headers (HTTP/1.1), header list (HTTP/2): larger gets 431 / a reset.
    pub max_header_bytes: usize,
    /// How long in-flight requests may take to finish after shutdown starts.
    pub shutdown_grace: Duration,
    /// Poll interval for the certificate and policy files (the directory watch is immediate).
    pub reload_poll: Duration,
    /// Watch the files' directories (inotify) in addition to polling.
    pub watch_files: bool,
    /// `serve --cluster`: take limits, priority classes and Coral namespaces from watch caches.
    pub cluster: Option<ClusterSource>,
    /// With `cluster`: keep the native policies' params ConfigMap equal to the caches.
    pub native_params: bool,
    /// With `cluster`: keep the serving pair and CA in a Secret and the caBundles (self_certs).
    pub self_managed_certs: Option<self_certs::SelfCerts>,
    /// Route `POST /debug/panic` (a handler that panics), for tests of the panic guard.
    #[doc(hidden)]
    pub debug_panic_route: bool,
}

impl ServerConfig {
    pub fn new(tls_cert: impl Into<PathBuf>, tls_key: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8443)),
            admin_listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            tls_cert: tls_cert.into(),
            tls_key: tls_key.into(),
            client_ca: None,
            policy: None,
            time_slicing: None,
            max_body_bytes: 8 * 1024 * 1024,
            max_inflight_body_bytes: 8 * 1024 * 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            max_connections: 1024,
            listen_backlog: 1024,
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(20),
            max_header_bytes: 16 * 1024,
            shutdown_grace: Duration::from_secs(20),
            reload_poll: Duration::from_secs(10),
            watch_files: true,
            cluster: None,
            native_params: false,
            self_managed_certs: None,
            debug_panic_route: false,
        }
    }
}

/// Where `serve --cluster` finds the API server.
#[derive(Debug, Clone, Default)]
pub struct ClusterSource {
    /// A kubeconfig file; `None`: the in-cluster service account (or `KUBECONFIG`/`~/.kube/config`).
    pub kubeconfig: Option<PathBuf>,
}

// === Shared ===

/// State shared by the routes, the reloader and the admin port.
pub struct Shared {
    pub config: ServerConfig,
    /// What the routes decide with: the file's policy, with cluster facts when `--cluster`.
    pub policy: ArcSwapOption<Effective>,
    /// The policy as loaded from the file (or the embedded default).
    pub base_policy: ArcSwapOption<Policy>,
    /// The watch caches (`--cluster` only), set once at start.
    pub cluster: OnceLock<ClusterWatch>,
    pub started_unix_ms: u64,
    pub certs: Arc<tls::CertResolver>,
    /// Why the last serving pair was refused (cleared when one is taken): `/readyz` names it.
    pub cert_error: Mutex<Option<String>>,
    /// The decode budget: body bytes and decoding threads.
    pub budget: budget::Budget,
    /// The webhook's TLS configuration, rebuilt when the client CA changes.
    pub tls: ArcSwap<rustls::ServerConfig>,
    pub metrics: Metrics,
    pub shutting_down: AtomicBool,
}

impl Shared {
    /// What keeps `/readyz` from answering 200 (empty: ready).
    pub fn not_ready_reasons(&self) -> Vec<Cow<'static, str>> {
        let mut missing: Vec<Cow<'static, str>> = Vec::new();
        if !self.certs.is_loaded() {
            let why = self.cert_error();
            missing.push(match why {
                Some(error) => format!("serving certificate not loaded: {error}").into(),
                None => "serving certificate not loaded".into(),
            });
        } else if let Some(not_after) = self.certs.not_after().filter(|na| unix_now() >= *na) {
            missing.push(format!("serving certificate expired (notAfter {not_after}): waiting for a new pair").into());
        }
        if self.policy.load().is_none() {
            missing.push("policy not loaded".into());
        }
        if let Some(watch) = self.cluster.get().filter(|w| !w.synced()) {
            // Name them: a list refused by RBAC leaves exactly that cache unsynced.
            missing.push(format!("cluster caches not synced: {}", watch.unsynced().join(", ")).into());
        }
        if self.config.cluster.is_some() && self.cluster.get().is_none() {
            missing.push("cluster caches not started".into());
        }
        if self.shutting_down.load(Ordering::Relaxed) {
            missing.push("shutting down".into());
        }
        missing
    }

    /// Installs a newly loaded base policy and republishes the effective one.
    pub fn set_base_policy(&self, policy: Arc<Policy>) {
        self.base_policy.store(Some(policy));
        self.publish_policy();
    }

    /// Recomputes the effective policy: the base policy, with the caches' facts when `--cluster`.
    /// Runs on every policy reload and cache change, never on the request path.
    pub fn publish_policy(&self) {
        let Some(base) = self.base_policy.load_full() else {
            return;
        };
        let facts = self.cluster.get().map(|watch| Arc::new(watch.facts(base.spec())));
        self.policy.store(Some(Arc::new(Effective::from_parts(base, facts))));
    }
}

/// The admin port on a thread and runtime of its own: `/livez` and `/readyz` answer however
/// busy the webhook's runtime is. The returned receiver resolves when its loop has ended.
fn admin_thread(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<tokio::sync::oneshot::Receiver<()>> {
    let listener = listener.into_std()?;
    let (done, ended) = tokio::sync::oneshot::channel();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    std::thread::Builder::new().name("admin".into()).spawn(move || {
        runtime.block_on(async move {
            match tokio::net::TcpListener::from_std(listener) {
                Ok(listener) => {
                    let router = admin::router(shared.clone());
                    let grace = Duration::from_secs(1);
                    conn::accept_loop(conn::Kind::Admin, listener, router, shared, shutdown, grace).await;
                }
                Err(error) => tracing::error!(%error, "admin port: cannot serve"),
            }
        });
        let _ = done.send(());
    })?;
    Ok(ended)
}

/// Now, in Unix seconds.
pub(crate) fn unix_now() -> i64 {
    i64::try_from(now_unix_ms() / 1000).unwrap_or(i64::MAX)
}

// === RunningServer ===

/// A started server: its bound addresses, and how to stop it.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    shutdown: ShutdownHandle,
    done: JoinHandle<()>,
    shared: Arc<Shared>,
}

impl RunningServer {
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Triggers the graceful shutdown and waits for it.
    pub async fn shutdown(self) {
        self.shutdown.trigger();
        self.wait().await;
    }

    /// Waits until the server has shut down (after a trigger).
    pub async fn wait(self) {
        let _ = self.done.await;
    }

    /// Whether `/readyz` would answer 200.
    pub fn is_ready(&self) -> bool {
        self.shared.not_ready_reasons().is_empty()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }
}

/// Why [`start`] failed (a certificate or policy that fails to load does not fail the start:
/// the server runs unready and keeps retrying).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("TLS configuration: {0}")]
    Tls(#[from] tls::TlsError),
    #[error("cluster (--cluster): {0}")]
    Cluster(#[from] KubeSetupError),
    #[error("the embedded policy: {0}")]
    Policy(#[from] crate::policy::PolicyError),
}

/// Why no client for the API server could be made.
#[derive(Debug, thiserror::Error)]
pub enum KubeSetupError {
    #[error("{}: {source}", path.display())]
    Kubeconfig {
        path: PathBuf,
        source: kube::config::KubeconfigError,
    },
    #[error("no kubeconfig and not in a cluster: {0}")]
    Infer(#[from] kube::config::InferConfigError),
    #[error("{0}")]
    Client(#[from] kube::Error),
}

/// A client for the API server: the kubeconfig file given, else in-cluster or the usual
/// kubeconfig locations. Only get, list and watch are ever sent.
pub(crate) async fn kube_client(source: &ClusterSource) -> Result<kube::Client, KubeSetupError> {
    let config = match &source.kubeconfig {
        Some(path) => {
            let at = |source| KubeSetupError::Kubeconfig {
                path: path.clone(),
                source,
            };
            let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(at)?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(at)?
        }
        None => kube::Config::infer().await?,
    };
    Ok(kube::Client::try_from(config)?)
}

/// Binds the webhook and admin listeners, loads the certificate and policy (retried by the
/// reloader if they fail), and serves until the returned server's shutdown is triggered.
/// Must be called inside a tokio runtime.
pub async fn start(config: ServerConfig) -> Result<RunningServer, StartError> {
    let certs = Arc::new(tls::CertResolver::default());
    let (tls_config, client_ca_pem) = tls::initial_config(certs.clone(), config.client_ca.as_deref())?;
    let backlog = config.listen_backlog.max(1);
    let bind = |addr: SocketAddr| conn::bind(addr, backlog).map_err(|source| StartError::Bind { addr, source });
    let listener = bind(config.listen)?;
    let admin_listener = bind(config.admin_listen)?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    let admin_addr = admin_listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.admin_listen,
        source,
    })?;

    let cores = budget::Budget::cores();
    let budget = budget::Budget::new(config.max_inflight_body_bytes, config.max_body_bytes, cores);
    let shared = Arc::new(Shared {
        config,
        policy: ArcSwapOption::empty(),
        base_policy: ArcSwapOption::empty(),
        cluster: OnceLock::new(),
        started_unix_ms: now_unix_ms(),
        certs,
        cert_error: Mutex::new(None),
        budget,
        tls: ArcSwap::from_pointee(tls_config),
        metrics: Metrics::new(),
        shutting_down: AtomicBool::new(false),
    });
    let mut reloader = reload::Reloader::new(shared.clone(), client_ca_pem);
    reloader.check_all();

    let shutdown = ShutdownHandle::new();
    if let Some(source) = &shared.config.cluster {
        let client = kube_client(source).await?;
        let spec = match shared.base_policy.load_full() {
            Some(p) => p.spec().clone(),
            None => Policy::embedded_default()?.spec().clone(),
        };
        let watch = ClusterWatch::spawn(client.clone(), &spec);
        let mut changes = watch.changes();
        let native = shared.config.native_params.then(|| watch.changes());
        let _ = shared.cluster.set(watch);
        if let Some(native) = native {
            tokio::spawn(native_params::run(
                client.clone(),
                shared.clone(),
                native,
                shutdown.subscribe(),
            ));
        }
        if let Some(certs) = shared.config.self_managed_certs.clone() {
            tokio::spawn(self_certs::run(
                client.clone(),
                shared.clone(),
                certs,
                shutdown.subscribe(),
            ));
        }
        shared.publish_policy();
        let (publisher, mut stop) = (shared.clone(), shutdown.subscribe());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown::triggered(&mut stop) => break,
                    changed = changes.changed() => {
                        if changed.is_err() { break }
                        publisher.publish_policy();
                    }
                }
            }
        });
        tracing::info!(device_plugin_config = ?spec.cluster.device_plugin_config, "cluster watch caches started");
    }
    let admin_shutdown = ShutdownHandle::new();
    let cfg = &shared.config;
    tokio::spawn(reloader.run(cfg.reload_poll, cfg.watch_files, shutdown.subscribe()));
    let webhook = tokio::spawn(conn::accept_loop(
        conn::Kind::Webhook,
        listener,
        routes::router(shared.clone()),
        shared.clone(),
        shutdown.subscribe(),
        cfg.shutdown_grace,
    ));
    let admin = admin_thread(admin_listener, shared.clone(), admin_shutdown.subscribe()).map_err(|source| {
        StartError::Bind {
            addr: admin_addr,
            source,
        }
    })?;
    tracing::info!(%addr, %admin_addr, "listening (webhook HTTPS, admin HTTP)");

    let mut rx = shutdown.subscribe();
    let supervisor_shared = shared.clone();
    let done = tokio::spawn(async move {
        shutdown::triggered(&mut rx).await;
        let deadline = Instant::now() + supervisor_shared.config.shutdown_grace;
        // /readyz answers 503 while the webhook drains; the admin port closes last.
        supervisor_shared.shutting_down.store(true, Ordering::Relaxed);
        let _ = webhook.await;
        admin_shutdown.trigger();
        let _ = tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), admin).await;
        tracing::info!("server stopped");
    });
    Ok(RunningServer {
        addr,
        admin_addr,
        shutdown,
        done,
        shared,
    })
}
