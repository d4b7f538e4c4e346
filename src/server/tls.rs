//! TLS: rustls on ring (installed once as the process default), TLS 1.2 and 1.3, ALPN h2 and
//! http/1.1, an optional client CA (mTLS, the configuration rebuilt when it changes), and a
//! certificate resolver whose pair can be swapped while the server runs: new handshakes get the
//! new pair, established connections keep theirs. A pair outside its validity window is refused.

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwapOption;
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The one crypto provider: ring. Installed as the process default the first time it is asked
/// for (kube and rcgen use ring too; `cargo tree -i aws-lc-rs` finds nothing).
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            // Err: some other code installed a default first; ours is still used explicitly.
            let _ = rustls::crypto::ring::default_provider().install_default();
            Arc::new(rustls::crypto::ring::default_provider())
        })
        .clone()
}

/// A certificate, key or client CA that cannot be used, and why.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{0}")]
    Read(String),
    #[error("certificate: not PEM: {0}")]
    CertificateNotPem(String),
    #[error("certificate: no CERTIFICATE block in the file")]
    NoCertificate,
    #[error("key: no usable private key: {0}")]
    KeyNotPem(String),
    #[error("key: unsupported private key: {0}")]
    KeyUnsupported(String),
    #[error("the key does not match the certificate: {0}")]
    KeyMismatch(String),
    #[error("TLS versions: {0}")]
    Versions(String),
    #[error("{}: {reason}", path.display())]
    ClientCa { path: std::path::PathBuf, reason: String },
    #[error("the certificate is not valid yet: notBefore is {}, now is {}", rfc3339(*not_before), rfc3339(*now))]
    NotYetValid { not_before: i64, now: i64 },
    #[error("the certificate has expired: notAfter was {}, now is {}", rfc3339(*not_after), rfc3339(*now))]
    Expired { not_after: i64, now: i64 },
}

/// A Unix time as RFC 3339 (UTC), or the number if it is out of range.
fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// A certificate chain and key that parse and belong together.
pub struct LoadedPair {
    pub key: Arc<CertifiedKey>,
    /// The leaf's `notBefore` (Unix time), if readable.
    pub not_before: Option<i64>,
    /// The leaf's `notAfter` (Unix time), if readable.
    pub not_after: Option<i64>,
}

// === impl LoadedPair ===

impl LoadedPair {
    /// Whether the leaf is within its validity window at `now` (Unix time): a pair outside it
    /// would fail every verified handshake, so it is never served.
    pub fn check_window(&self, now: i64) -> Result<(), TlsError> {
        if let Some(not_before) = self.not_before.filter(|nb| now < *nb) {
            return Err(TlsError::NotYetValid { not_before, now });
        }
        if let Some(not_after) = self.not_after.filter(|na| now >= *na) {
            return Err(TlsError::Expired { not_after, now });
        }
        Ok(())
    }
}

/// Parses a PEM certificate chain and PEM private key and checks that the key is the
/// certificate's (rustls `CertifiedKey::keys_match`). The error says which part is wrong.
pub fn pair_from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<LoadedPair, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::CertificateNotPem(e.to_string()))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::KeyNotPem(e.to_string()))?;
    let signing_key = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::KeyUnsupported(e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing_key);
    certified
        .keys_match()
        .map_err(|e| TlsError::KeyMismatch(e.to_string()))?;
    let window = crate::certs::validity_unix(certified.cert[0].as_ref());
    Ok(LoadedPair {
        key: Arc::new(certified),
        not_before: window.map(|w| w.0),
        not_after: window.map(|w| w.1),
    })
}

/// A pair that may be served at `now` (Unix time): [`pair_from_pem`], then
/// [`LoadedPair::check_window`].
pub fn usable_pair(cert_pem: &[u8], key_pem: &[u8], now: i64) -> Result<LoadedPair, TlsError> {
    let pair = pair_from_pem(cert_pem, key_pem)?;
    pair.check_window(now)?;
    Ok(pair)
}

// === CertResolver ===

/// Hands every new handshake the current pair (none until one has loaded: handshakes fail).
#[derive(Default)]
pub struct CertResolver {
    current: ArcSwapOption<CertifiedKey>,
    /// `notAfter` of the pair in use (Unix time; 0 when unknown).
    not_after: AtomicI64,
}

// === impl CertResolver ===

impl CertResolver {
    pub fn set(&self, pair: LoadedPair) {
        self.not_after.store(pair.not_after.unwrap_or(0), Ordering::Relaxed);
        self.current.store(Some(pair.key));
    }

    /// `notAfter` of the pair in use, when known.
    pub fn not_after(&self) -> Option<i64> {
        Some(self.not_after.load(Ordering::Relaxed)).filter(|t| *t != 0)
    }

    pub fn current(&self) -> Option<Arc<CertifiedKey>> {
        self.current.load_full()
    }

    pub fn is_loaded(&self) -> bool {
        self.current.load().is_some()
    }
}

impl fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertResolver")
            .field("loaded", &self.is_loaded())
            .finish()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.load_full()
    }
}

// === server config ===

/// The verifier of client certificates issued by a CA in `pem` (the file at `path`).
pub fn client_verifier(path: &Path, pem: &[u8]) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let ca_error = |reason: String| TlsError::ClientCa {
        path: path.to_path_buf(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| ca_error(format!("not PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| ca_error(format!("not a usable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(ca_error("no CA certificate in the file".into()));
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| ca_error(e.to_string()))
}

/// The rustls server configuration: TLS 1.3 and 1.2, ALPN h2 + http/1.1, certificates from
/// `resolver`, and client certificates required (and verified by `client_auth`) if given.
/// Rebuilt when the client CA changes; the resolver is the same one throughout.
pub fn server_config(
    resolver: Arc<CertResolver>,
    client_auth: Option<Arc<dyn ClientCertVerifier>>,
) -> Result<rustls::ServerConfig, TlsError> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Versions(e.to_string()))?;
    let builder = match client_auth {
        None => builder.with_no_client_auth(),
        Some(verifier) => builder.with_client_cert_verifier(verifier),
    };
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The server configuration for `client_ca` (a path, read now), for the start-up.
pub fn initial_config(
    resolver: Arc<CertResolver>,
    client_ca: Option<&Path>,
) -> Result<(rustls::ServerConfig, Option<Vec<u8>>), TlsError> {
    let Some(path) = client_ca else {
        return Ok((server_config(resolver, None)?, None));
    };
    let pem = std::fs::read(path).map_err(|e| TlsError::ClientCa {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let verifier = client_verifier(path, &pem)?;
    Ok((server_config(resolver, Some(verifier))?, Some(pem)))
}
