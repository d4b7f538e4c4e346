//! `gpu-admission serve`: flags (each also an environment variable), logging, `--dev`
//! certificates, signals.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{CliError, Done, PolicyFlags};
use crate::certs::{CertError, DevFiles};
use crate::server::self_certs::{SelfCerts, plan::Timing};
use crate::server::{ClusterSource, ServerConfig, shutdown, start, tls};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Run the HTTPS admission webhook (and the admin port).
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Webhook (HTTPS) listen address.
    #[arg(long, env = "GPU_ADMISSION_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// Admin (plain HTTP: /livez, /readyz, /metrics) listen address.
    #[arg(long, env = "GPU_ADMISSION_ADMIN_LISTEN", default_value = "0.0.0.0:8080")]
    pub admin_listen: SocketAddr,
    /// Serving certificate chain (PEM); reloaded when it changes.
    #[arg(
        long,
        env = "GPU_ADMISSION_TLS_CERT",
        value_name = "FILE",
        required_unless_present_any = ["dev", "self_managed_certs"]
    )]
    pub tls_cert: Option<PathBuf>,
    /// Serving private key (PEM); reloaded when it changes.
    #[arg(
        long,
        env = "GPU_ADMISSION_TLS_KEY",
        value_name = "FILE",
        required_unless_present_any = ["dev", "self_managed_certs"]
    )]
    pub tls_key: Option<PathBuf>,
    /// Serve only clients presenting a certificate issued by this CA (mTLS).
    #[arg(long, env = "GPU_ADMISSION_CLIENT_CA", value_name = "FILE")]
    pub client_ca: Option<PathBuf>,
    #[command(flatten)]
    pub policy: PolicyFlags,
    /// Log format (one line per review either way). Filter with RUST_LOG (default `info`).
    #[arg(long, env = "GPU_ADMISSION_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Largest request body accepted (UPDATE reviews carry two objects); larger gets 413.
    #[arg(long, env = "GPU_ADMISSION_MAX_BODY_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Body bytes of large reviews (over 256 KiB) read and decoded at once (at least one body
    /// of --max-body-bytes); the others wait, up to half --body-timeout-ms, then get 503.
    #[arg(long, env = "GPU_ADMISSION_MAX_INFLIGHT_BODY_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub max_inflight_body_bytes: usize,
    /// Time allowed for the TLS handshake and for each request's headers (HTTP/1.1; also closes
    /// keep-alive connections idle that long).
    #[arg(long, env = "GPU_ADMISSION_HEADER_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_timeout_ms: u64,
    /// Time allowed for a request's whole body; slower gets 408.
    #[arg(long, env = "GPU_ADMISSION_BODY_TIMEOUT_MS", default_value_t = 10_000)]
    pub body_timeout_ms: u64,
    /// Open webhook connections at most; over it, new ones are closed at accept (before TLS).
    #[arg(long, env = "GPU_ADMISSION_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// Pending connections the kernel queues before they are accepted (listen backlog).
    #[arg(long, env = "GPU_ADMISSION_LISTEN_BACKLOG", default_value_t = 1024)]
    pub listen_backlog: u32,
    /// A connection with no request in flight for this long is closed (HTTP/2: GOAWAY).
    #[arg(long, env = "GPU_ADMISSION_IDLE_TIMEOUT_MS", default_value_t = 60_000)]
    pub idle_timeout_ms: u64,
    /// A response not delivered, with no write progress, for this long closes the connection
    /// (the client stopped reading, or holds its HTTP/2 window at zero).
    #[arg(long, env = "GPU_ADMISSION_WRITE_TIMEOUT_MS", default_value_t = 10_000)]
    pub write_timeout_ms: u64,
    /// HTTP/2: a keep-alive PING after this long without frames.
    #[arg(long, env = "GPU_ADMISSION_KEEPALIVE_INTERVAL_MS", default_value_t = 30_000)]
    pub keepalive_interval_ms: u64,
    /// HTTP/2: a PING not answered within this closes the connection.
    #[arg(long, env = "GPU_ADMISSION_KEEPALIVE_TIMEOUT_MS", default_value_t = 20_000)]
    pub keepalive_timeout_ms: u64,
    /// Request line and headers (HTTP/1.1: 431 over it) or header list (HTTP/2), in bytes.
    #[arg(long, env = "GPU_ADMISSION_MAX_HEADER_BYTES", default_value_t = 16 * 1024)]
    pub max_header_bytes: usize,
    /// After SIGTERM/SIGINT: time in-flight requests get to finish before the process exits.
    #[arg(long, env = "GPU_ADMISSION_SHUTDOWN_GRACE_MS", default_value_t = 20_000)]
    pub shutdown_grace_ms: u64,
    /// Poll interval for the certificate and policy files (directory events act at once).
    #[arg(long, env = "GPU_ADMISSION_RELOAD_POLL_MS", default_value_t = 10_000)]
    pub reload_poll_ms: u64,
    /// Take GPU limits, PriorityClass values and Coral namespaces from the cluster (watch caches
    /// of nodes, the device-plugin ConfigMap, priorityclasses, namespaces; in-cluster config).
    #[arg(long, env = "GPU_ADMISSION_CLUSTER")]
    pub cluster: bool,
    /// With --cluster: keep the native policies' params ConfigMap
    /// (gpu-admission/gpu-admission-native-params) equal to the watch caches.
    #[arg(long, env = "GPU_ADMISSION_NATIVE_PARAMS", requires = "cluster")]
    pub native_params: bool,
    #[command(flatten)]
    pub self_certs: Box<SelfCertsArgs>,
    /// With --cluster: the kubeconfig to use instead of the in-cluster service account.
    #[arg(long, env = "GPU_ADMISSION_KUBECONFIG", value_name = "FILE", requires = "cluster")]
    pub kubeconfig: Option<PathBuf>,
    /// Development mode: write a development CA and a serving certificate into --dev-dir
    /// (reusing the CA there), print the caBundle and webhook URLs, serve the embedded policy
    /// unless --policy is given.
    #[arg(long, env = "GPU_ADMISSION_DEV", conflicts_with_all = ["tls_cert", "tls_key"])]
    pub dev: bool,
    /// Where --dev writes its certificates (a temporary directory if it cannot be written).
    #[arg(long, env = "GPU_ADMISSION_DEV_DIR", value_name = "DIR", default_value = "certs/dev")]
    pub dev_dir: PathBuf,
    /// SANs of the --dev serving certificate (repeatable).
    #[arg(long = "dev-host", value_name = "NAME", default_values_t = ["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()])]
    pub dev_hosts: Vec<String>,
}

/// `serve --cluster --self-managed-certs SECRET`: certificates without cert-manager (README
/// "Self-managed certificates"). The defaults match deploy/components/self-managed-certs.
#[derive(Debug, Clone, clap::Args)]
pub struct SelfCertsArgs {
    /// With --cluster: keep a CA and the serving certificate in this Secret of --namespace
    /// (made when missing), serve it, write its CA into both webhook configurations' caBundle,
    /// rotate before expiry. Replaces --tls-cert/--tls-key.
    #[arg(long, env = "GPU_ADMISSION_SELF_MANAGED_CERTS", value_name = "SECRET", requires = "cluster",
          conflicts_with_all = ["tls_cert", "tls_key", "dev"])]
    pub self_managed_certs: Option<String>,
    /// The server's namespace (the Secret's and the Service's).
    #[arg(long, env = "GPU_ADMISSION_NAMESPACE", default_value = "gpu-admission")]
    pub namespace: String,
    /// The Service the API server calls: the serving certificate's SANs are its DNS names.
    #[arg(long, env = "GPU_ADMISSION_SERVICE", default_value = "gpu-admission")]
    pub service: String,
    /// Another SAN of the serving certificate (DNS name or IP address; repeatable).
    #[arg(long = "serving-host", value_name = "NAME")]
    pub serving_hosts: Vec<String>,
    /// The MutatingWebhookConfiguration whose webhooks get the caBundle.
    #[arg(long, env = "GPU_ADMISSION_MUTATING_WEBHOOK", default_value = "gpu-admission")]
    pub mutating_webhook: String,
    /// The ValidatingWebhookConfiguration whose webhooks get the caBundle.
    #[arg(long, env = "GPU_ADMISSION_VALIDATING_WEBHOOK", default_value = "gpu-admission")]
    pub validating_webhook: String,
    /// Validity of a new serving certificate (90 days).
    #[arg(long, env = "GPU_ADMISSION_SERVING_VALID_SECS", default_value_t = Timing::default().serving_valid_secs)]
    pub serving_valid_secs: i64,
    /// A serving certificate is replaced this long before its notAfter (30 days).
    #[arg(long, env = "GPU_ADMISSION_SERVING_ROTATE_BEFORE_SECS", default_value_t = Timing::default().serving_rotate_before_secs)]
    pub serving_rotate_before_secs: i64,
    /// Validity of a new CA (10 years).
    #[arg(long, env = "GPU_ADMISSION_CA_VALID_SECS", default_value_t = Timing::default().ca_valid_secs)]
    pub ca_valid_secs: i64,
    /// The next CA joins the caBundle this long before the CA's notAfter (1 year).
    #[arg(long, env = "GPU_ADMISSION_CA_ROTATE_BEFORE_SECS", default_value_t = Timing::default().ca_rotate_before_secs)]
    pub ca_rotate_before_secs: i64,
    /// ...and signs serving certificates once it has been in the caBundle this long (1 day).
    #[arg(long, env = "GPU_ADMISSION_CA_OVERLAP_SECS", default_value_t = Timing::default().ca_overlap_secs)]
    pub ca_overlap_secs: i64,
}

impl SelfCertsArgs {
    /// The configuration, if `--self-managed-certs` is given; a rotation window that is not
    /// shorter than the validity (a certificate due the moment it is made) is refused.
    fn config(&self) -> Result<Option<SelfCerts>, CliError> {
        let Some(secret) = self.self_managed_certs.clone() else {
            return Ok(None);
        };
        for (before, valid, name) in [
            (self.serving_rotate_before_secs, self.serving_valid_secs, "--serving"),
            (self.ca_rotate_before_secs, self.ca_valid_secs, "--ca"),
        ] {
            if before < 0 || before >= valid {
                return Err(CliError::Input(format!(
                    "{name}-rotate-before-secs ({before}) must be at least 0 and less than {name}-valid-secs ({valid})"
                )));
            }
        }
        if self.ca_overlap_secs < 0 {
            return Err(CliError::Input("--ca-overlap-secs must be at least 0".into()));
        }
        Ok(Some(SelfCerts {
            secret,
            namespace: self.namespace.clone(),
            service: self.service.clone(),
            extra_hosts: self.serving_hosts.clone(),
            mutating_webhook: self.mutating_webhook.clone(),
            validating_webhook: self.validating_webhook.clone(),
            timing: Timing {
                serving_valid_secs: self.serving_valid_secs,
                serving_rotate_before_secs: self.serving_rotate_before_secs,
                ca_valid_secs: self.ca_valid_secs,
                ca_rotate_before_secs: self.ca_rotate_before_secs,
                ca_overlap_secs: self.ca_overlap_secs,
            },
        }))
    }
}

/// `gpu-admission serve`: exit 0 after a graceful shutdown, 1 if the server cannot start,
/// 2 if the policy or the --dev certificates cannot be loaded.
pub fn run(args: ServeArgs) -> Result<Done, CliError> {
    init_logging(args.log_format);
    let _ = tls::provider();

    // A policy mistake is the operator's: say so now rather than serve unready.
    if let Err(error) = args.policy.load() {
        tracing::error!(%error, "cannot load the policy");
        return Err(error);
    }
    let (cert, key, dev) = match (&args.tls_cert, &args.tls_key, args.dev) {
        (_, _, true) => match dev_certs(&args.dev_dir, &args.dev_hosts) {
            Ok((files, dir)) => (files.cert.clone(), files.key.clone(), Some((files, dir))),
            Err(e) => return Err(CliError::Input(format!("--dev: {e}"))),
        },
        (Some(c), Some(k), false) => (c.clone(), k.clone(), None),
        // --self-managed-certs: no files (the pair comes from the Secret).
        _ if args.self_certs.self_managed_certs.is_some() => (PathBuf::new(), PathBuf::new(), None),
        _ => {
            return Err(CliError::Input(
                "--tls-cert and --tls-key are required (or --dev, or --self-managed-certs with --cluster)".into(),
            ));
        }
    };

    let mut config = ServerConfig::new(cert, key);
    config.listen = args.listen;
    config.admin_listen = args.admin_listen;
    config.client_ca = args.client_ca.clone();
    config.policy = args.policy.policy.clone();
    config.time_slicing = args.policy.time_slicing.clone();
    config.max_body_bytes = args.max_body_bytes;
    config.max_inflight_body_bytes = args.max_inflight_body_bytes;
    config.header_timeout = Duration::from_millis(args.header_timeout_ms.max(1));
    config.body_timeout = Duration::from_millis(args.body_timeout_ms.max(1));
    config.max_connections = args.max_connections.max(1);
    config.listen_backlog = args.listen_backlog.max(1);
    config.idle_timeout = Duration::from_millis(args.idle_timeout_ms.max(1));
    config.write_timeout = Duration::from_millis(args.write_timeout_ms.max(1));
    config.keepalive_interval = Duration::from_millis(args.keepalive_interval_ms.max(1));
    config.keepalive_timeout = Duration::from_millis(args.keepalive_timeout_ms.max(1));
    config.max_header_bytes = args.max_header_bytes.max(1024);
    config.shutdown_grace = Duration::from_millis(args.shutdown_grace_ms);
    config.reload_poll = Duration::from_millis(args.reload_poll_ms.max(10));
    if args.cluster {
        config.cluster = Some(ClusterSource {
            kubeconfig: args.kubeconfig.clone(),
        });
        config.native_params = args.native_params;
        config.self_managed_certs = match args.self_certs.config() {
            Ok(certs) => certs,
            Err(error) => {
                tracing::error!(%error, "--self-managed-certs");
                return Err(error);
            }
        };
    }
    let grace = config.shutdown_grace;

    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return Err(CliError::Failed(format!("cannot start the async runtime: {e}"))),
    };
    let code = runtime.block_on(async move {
        let server = match start(config).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot start");
                return Err(CliError::Failed(e.to_string()));
            }
        };
        if let Some((files, dir)) = &dev {
            print_dev_banner(files, dir, server.addr, server.admin_addr);
        }
        let handle = server.shutdown_handle();
        let signal = shutdown::signal().await;
        tracing::info!(
            signal,
            grace_ms = grace.as_millis() as u64,
            "shutdown signal received; draining"
        );
        handle.trigger();
        server.wait().await;
        Ok(Done::Clean)
    });
    runtime.shutdown_timeout(Duration::from_millis(100));
    code
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
    };
}

/// `--dev`: certificates in `dir` (or a temporary directory if `dir` cannot be written).
fn dev_certs(dir: &Path, hosts: &[String]) -> Result<(DevFiles, PathBuf), CertError> {
    match crate::certs::write_dev_certs(dir, hosts, 365, true) {
        Ok(files) => Ok((files, dir.to_path_buf())),
        Err(e) => {
            let tmp = std::env::temp_dir().join("gpu-admission-dev");
            tracing::warn!(dir = %dir.display(), error = %e, fallback = %tmp.display(), "cannot write dev certificates");
            crate::certs::write_dev_certs(&tmp, hosts, 365, true).map(|f| (f, tmp))
        }
    }
}

fn print_dev_banner(files: &DevFiles, dir: &Path, addr: SocketAddr, admin: SocketAddr) {
    let host = |a: SocketAddr| {
        if a.ip().is_unspecified() || a.ip().is_loopback() {
            format!("localhost:{}", a.port())
        } else {
            a.to_string()
        }
    };
    let (web, adm) = (host(addr), host(admin));
    println!(
        "gpu-admission serve --dev: development certificates in {}",
        dir.display()
    );
    println!("  mutate webhook:   https://{web}/mutate");
    println!("  validate webhook: https://{web}/validate");
    println!("  admin:            http://{adm}/readyz  http://{adm}/metrics");
    println!("  caBundle (base64 of {}):", files.ca_cert.display());
    println!("{}", files.ca_bundle);
    println!(
        "  try: curl --cacert {} -H 'Content-Type: application/json' --data-binary @review.json https://{web}/validate",
        files.ca_cert.display()
    );
}
