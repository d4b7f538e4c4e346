//! Development certificates: a CA and serving (or client) certificates signed by it, with rcgen
//! on ring. `gpu-admission certs` and `serve --dev` write them; the tests use them too.
//!
//! Also a tiny DER reader for a certificate's `notAfter`, so the server can export it as a metric
//! without an X.509 parsing dependency.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject as _;
use time::{Duration, OffsetDateTime};

/// The development CA's subject; fixed so that a reused CA key reissues under the same name.
pub const DEV_CA_NAME: &str = "gpu-admission development CA";

/// Why certificates could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot generate certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Invalid(String),
}

// === DevCa ===

/// A CA that can issue serving and client certificates.
pub struct DevCa {
    params: CertificateParams,
    key: KeyPair,
    /// PEM of the CA certificate (the caBundle, before base64).
    pub cert_pem: String,
}

/// A certificate and its private key, as PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

// === impl DevCa ===

impl DevCa {
    /// A new CA (ECDSA P-256), valid for `valid_days` days.
    pub fn generate(valid_days: u32) -> Result<Self, CertError> {
        let key = KeyPair::generate()?;
        Self::from_key(key, valid_days)
    }

    /// Loads `ca.key` and `ca.crt` from `dir` (written by [`DevCa::write`]). The CA certificate
    /// is kept as is; new certificates are issued under the same subject and key.
    pub fn load(dir: &Path) -> Result<Self, CertError> {
        let key_path = dir.join("ca.key");
        let cert_path = dir.join("ca.crt");
        let key_pem = fs::read_to_string(&key_path).map_err(|source| CertError::Io {
            path: key_path.clone(),
            source,
        })?;
        let cert_pem = fs::read_to_string(&cert_path).map_err(|source| CertError::Io {
            path: cert_path,
            source,
        })?;
        let key = KeyPair::from_pem(&key_pem)?;
        let mut ca = Self::from_key(key, 3650)?;
        ca.cert_pem = cert_pem;
        Ok(ca)
    }

    /// A new CA (ECDSA P-256) named `common_name`, valid from `not_before_unix` to
    /// `not_after_unix` (Unix seconds): `serve --self-managed-certs` names each CA it makes
    /// differently, so that two CAs in one caBundle never share a subject.
    pub fn generate_named(common_name: &str, not_before_unix: i64, not_after_unix: i64) -> Result<Self, CertError> {
        let key = KeyPair::generate()?;
        let params = ca_params(common_name, (unix_time(not_before_unix)?, unix_time(not_after_unix)?))?;
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert.pem(),
            params,
            key,
        })
    }

    /// A CA from its certificate and key (PEM), as [`DevCa::generate_named`] made them: new
    /// certificates are issued under the certificate's subject (common name and organization).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, CertError> {
        let der = rustls_pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| CertError::Invalid(format!("CA certificate: {e}")))?;
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
            .map_err(|e| CertError::Invalid(format!("CA certificate: {e}")))?;
        let name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .ok_or_else(|| CertError::Invalid("CA certificate: no common name".into()))?;
        let validity = cert.validity();
        let window = (
            unix_time(validity.not_before.timestamp())?,
            unix_time(validity.not_after.timestamp())?,
        );
        let params = ca_params(name, window)?;
        let key = KeyPair::from_pem(key_pem)?;
        if rcgen::PublicKeyData::subject_public_key_info(&key) != cert.public_key().raw {
            return Err(CertError::Invalid("the CA key is not the CA certificate's".into()));
        }
        Ok(Self {
            cert_pem: cert_pem.to_string(),
            params,
            key,
        })
    }

    fn from_key(key: KeyPair, valid_days: u32) -> Result<Self, CertError> {
        let params = ca_params(DEV_CA_NAME, validity(valid_days))?;
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert.pem(),
            params,
            key,
        })
    }

    /// PEM of the CA's private key.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// A serving certificate for `hosts` (DNS names and IP addresses; the first is the CN).
    pub fn issue_server(&self, hosts: &[String], valid_days: u32) -> Result<Issued, CertError> {
        if hosts.is_empty() {
            return Err(CertError::Invalid("at least one --host is needed".into()));
        }
        let mut params = CertificateParams::new(hosts.to_vec())?;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, hosts[0].as_str());
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params, validity(valid_days))
    }

    /// A serving certificate for `hosts` valid from `not_before_unix` to `not_after_unix` (Unix
    /// seconds), for tests of pairs outside their validity window.
    pub fn issue_server_window(
        &self,
        hosts: &[String],
        not_before_unix: i64,
        not_after_unix: i64,
    ) -> Result<Issued, CertError> {
        let window = (unix_time(not_before_unix)?, unix_time(not_after_unix)?);
        let mut params = CertificateParams::new(hosts.to_vec())?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params, window)
    }

    /// A client certificate (for mTLS) with common name `name`.
    pub fn issue_client(&self, name: &str, valid_days: u32) -> Result<Issued, CertError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params, validity(valid_days))
    }

    fn issue(
        &self,
        mut params: CertificateParams,
        (nb, na): (OffsetDateTime, OffsetDateTime),
    ) -> Result<Issued, CertError> {
        params.not_before = nb;
        params.not_after = na;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// The base64 of the CA certificate PEM: a webhook configuration's `caBundle`.
    pub fn ca_bundle(&self) -> String {
        ca_bundle(&self.cert_pem)
    }
}

/// A CA's parameters: subject `common_name` + organization gpu-admission, CA key usages.
fn ca_params(common_name: &str, (nb, na): (OffsetDateTime, OffsetDateTime)) -> Result<CertificateParams, CertError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "gpu-admission");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = nb;
    params.not_after = na;
    Ok(params)
}

fn unix_time(t: i64) -> Result<OffsetDateTime, CertError> {
    OffsetDateTime::from_unix_timestamp(t).map_err(|e| CertError::Invalid(format!("validity {t}: {e}")))
}

/// `notBefore` an hour ago (clock skew), `notAfter` in `days` days.
fn validity(days: u32) -> (OffsetDateTime, OffsetDateTime) {
    let now = OffsetDateTime::now_utc();
    (now - Duration::hours(1), now + Duration::days(i64::from(days)))
}

/// The base64 of a PEM bundle, as `caBundle` wants it.
pub fn ca_bundle(ca_pem: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(ca_pem.as_bytes())
}

// === files ===

/// Writes `contents` to `path` atomically (temporary file + rename), with `mode`.
pub fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), CertError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let io = |source| CertError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(contents).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    fs::rename(&tmp, path).map_err(io)
}

/// The four PEM files of a development setup.
#[derive(Debug, Clone)]
pub struct DevFiles {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca_bundle: String,
}

/// Writes a CA (new, or reused from `dir` when `reuse_ca` and it loads) and a serving certificate
/// for `hosts` into `dir`: `ca.crt`, `ca.key`, `tls.crt`, `tls.key` (keys 0600).
pub fn write_dev_certs(dir: &Path, hosts: &[String], valid_days: u32, reuse_ca: bool) -> Result<DevFiles, CertError> {
    fs::create_dir_all(dir).map_err(|source| CertError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let ca = match reuse_ca.then(|| DevCa::load(dir)) {
        Some(Ok(ca)) => ca,
        _ => {
            let ca = DevCa::generate(valid_days.saturating_mul(10))?;
            write_file(&dir.join("ca.key"), ca.key_pem().as_bytes(), 0o600)?;
            write_file(&dir.join("ca.crt"), ca.cert_pem.as_bytes(), 0o644)?;
            ca
        }
    };
    let leaf = ca.issue_server(hosts, valid_days)?;
    // Key first, then certificate: a watcher that sees the certificate change finds its key.
    write_file(&dir.join("tls.key"), leaf.key_pem.as_bytes(), 0o600)?;
    write_file(&dir.join("tls.crt"), leaf.cert_pem.as_bytes(), 0o644)?;
    Ok(DevFiles {
        ca_cert: dir.join("ca.crt"),
        ca_key: dir.join("ca.key"),
        cert: dir.join("tls.crt"),
        key: dir.join("tls.key"),
        ca_bundle: ca.ca_bundle(),
    })
}

// === validity ===

/// A certificate's validity window (`notBefore`, `notAfter`) as Unix times, read from its DER.
/// `None` if it is not a well-formed X.509 certificate.
pub fn validity_unix(der: &[u8]) -> Option<(i64, i64)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let validity = cert.validity();
    Some((validity.not_before.timestamp(), validity.not_after.timestamp()))
}

/// A certificate's `notAfter` as a Unix time (see [`validity_unix`]).
pub fn not_after_unix(der: &[u8]) -> Option<i64> {
    validity_unix(der).map(|(_, not_after)| not_after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::CertificateDer;

    #[test]
    fn not_after_matches_the_issued_validity() {
        let ca = DevCa::generate(30).unwrap();
        let leaf = ca.issue_server(&["localhost".into(), "127.0.0.1".into()], 10).unwrap();
        let der = CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap();
        let na = not_after_unix(&der).unwrap();
        let expect = (OffsetDateTime::now_utc() + Duration::days(10)).unix_timestamp();
        assert!((na - expect).abs() < 120, "not_after {na} vs {expect}");
        let ca_der = CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).unwrap();
        let ca_na = not_after_unix(&ca_der).unwrap();
        assert!((ca_na - (expect + 20 * 86_400)).abs() < 120);
    }

    #[test]
    fn validity_starts_before_now_and_ends_after() {
        let ca = DevCa::generate(30).unwrap();
        let leaf = ca.issue_server(&["localhost".into()], 10).unwrap();
        let der = CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap();
        let (not_before, not_after) = validity_unix(&der).unwrap();
        let now = OffsetDateTime::now_utc().unix_timestamp();
        assert!(not_before <= now && now < not_after, "{not_before} {now} {not_after}");
    }

    #[test]
    fn garbage_is_none() {
        assert_eq!(not_after_unix(b""), None);
        assert_eq!(not_after_unix(b"\x30\x82\xff\xff"), None);
        assert_eq!(not_after_unix(&[0x30, 0x03, 0x02, 0x01, 0x00]), None);
    }

    #[test]
    fn reused_ca_issues_under_the_same_bundle() {
        let dir = std::env::temp_dir().join(format!("gpu-admission-certs-{}", std::process::id()));
        let first = write_dev_certs(&dir, &["localhost".into()], 5, false).unwrap();
        let second = write_dev_certs(&dir, &["localhost".into()], 5, true).unwrap();
        assert_eq!(first.ca_bundle, second.ca_bundle);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(&second.key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let _ = fs::remove_dir_all(&dir);
    }
}
