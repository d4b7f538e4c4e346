//! Development certificates: a CA and serving (or client) certificates signed by it, with rcgen
//! on ring. `gpu-admission certs` and `serve --dev` write them; the tests use them too.
//!
//! Also a tiny DER reader for a certificate's `notAfter`, so the server can export it as a metric
//! without an X.509 parsing dependency.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// The development CA's subject; fixed so that a reused CA key reissues under the same name.
pub const DEV_CA_NAME: &str = "gpu-admission development CA";

/// Write a development CA and a serving certificate (PEM), print the base64 caBundle.
#[derive(Debug, Clone, clap::Args)]
pub struct CertsArgs {
    /// Directory to write `ca.crt`, `ca.key`, `tls.crt`, `tls.key` into (created if missing).
    #[arg(long, value_name = "DIR", default_value = "certs/dev")]
    pub out: PathBuf,
    /// DNS name or IP address for the serving certificate's SANs (repeatable).
    /// The first one is also its common name.
    #[arg(long = "host", value_name = "NAME", default_values_t = [String::from("localhost"), String::from("127.0.0.1")])]
    pub hosts: Vec<String>,
    /// Validity of the serving certificate, in days (the CA gets ten times as long).
    #[arg(long, value_name = "DAYS", default_value_t = 365)]
    pub valid_days: u32,
    /// Reuse `ca.crt`/`ca.key` already in DIR (the caBundle stays the same); only the serving
    /// certificate is new.
    #[arg(long)]
    pub reuse_ca: bool,
}

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

    fn from_key(key: KeyPair, valid_days: u32) -> Result<Self, CertError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, DEV_CA_NAME);
        dn.push(DnType::OrganizationName, "gpu-admission");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let (nb, na) = validity(valid_days);
        params.not_before = nb;
        params.not_after = na;
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
        self.issue(params, valid_days)
    }

    /// A client certificate (for mTLS) with common name `name`.
    pub fn issue_client(&self, name: &str, valid_days: u32) -> Result<Issued, CertError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params, valid_days)
    }

    fn issue(&self, mut params: CertificateParams, valid_days: u32) -> Result<Issued, CertError> {
        let (nb, na) = validity(valid_days);
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

/// `gpu-admission certs`.
pub fn run(args: CertsArgs) -> ExitCode {
    match write_dev_certs(&args.out, &args.hosts, args.valid_days, args.reuse_ca) {
        Ok(files) => {
            eprintln!(
                "wrote {}, {}, {}, {} (SANs: {}); caBundle:",
                files.ca_cert.display(),
                files.ca_key.display(),
                files.cert.display(),
                files.key.display(),
                args.hosts.join(", ")
            );
            println!("{}", files.ca_bundle);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

// === DER: notAfter ===

/// A certificate's `notAfter` as a Unix time, read from its DER. `None` if it is not a
/// well-formed X.509 certificate.
pub fn not_after_unix(der: &[u8]) -> Option<i64> {
    // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber,
    //   signature, issuer, validity SEQUENCE { notBefore, notAfter }, ... }, ... }
    let (0x30, cert, _) = der_next(der)? else {
        return None;
    };
    let (0x30, mut tbs, _) = der_next(cert)? else {
        return None;
    };
    let (tag, _, rest) = der_next(tbs)?;
    if tag == 0xa0 {
        tbs = rest; // the explicit version
    }
    for _ in 0..3 {
        let (_, _, rest) = der_next(tbs)?; // serialNumber, signature, issuer
        tbs = rest;
    }
    let (0x30, validity, _) = der_next(tbs)? else {
        return None;
    };
    let (_, _, rest) = der_next(validity)?; // notBefore
    let (tag, not_after, _) = der_next(rest)?;
    parse_time(tag, not_after)
}

/// One TLV: (tag, contents, rest). Definite lengths only (DER).
fn der_next(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&len0, mut rest) = rest.split_first()?;
    let len = if len0 < 0x80 {
        usize::from(len0)
    } else {
        let n = usize::from(len0 & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let mut len = 0usize;
        for &b in &rest[..n] {
            len = (len << 8) | usize::from(b);
        }
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// UTCTime (0x17, `YYMMDDHHMMSSZ`) or GeneralizedTime (0x18, `YYYYMMDDHHMMSSZ`).
fn parse_time(tag: u8, bytes: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(bytes).ok()?;
    let s = s.strip_suffix('Z')?;
    let digits = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (year, off) = match (tag, s.len()) {
        (0x17, 12) => {
            let yy = digits(0..2)?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, 2)
        }
        (0x18, 14) => (digits(0..4)?, 4),
        _ => return None,
    };
    let month = digits(off..off + 2)?;
    let day = digits(off + 2..off + 4)?;
    let hour = digits(off + 4..off + 6)?;
    let min = digits(off + 6..off + 8)?;
    let sec = digits(off + 8..off + 10)?;
    let month = time::Month::try_from(u8::try_from(month).ok()?).ok()?;
    let date = time::Date::from_calendar_date(i32::try_from(year).ok()?, month, u8::try_from(day).ok()?).ok()?;
    let t = date
        .with_hms(
            u8::try_from(hour).ok()?,
            u8::try_from(min).ok()?,
            u8::try_from(sec).ok()?,
        )
        .ok()?;
    Some(t.assume_utc().unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;

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
    fn times_parse() {
        assert_eq!(parse_time(0x17, b"700101000000Z"), Some(0));
        assert_eq!(parse_time(0x18, b"20380119031408Z"), Some(2_147_483_648));
        assert_eq!(parse_time(0x17, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(parse_time(0x17, b"4912312359Z"), None);
        assert_eq!(parse_time(0x18, b"2038011903140xZ"), None);
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
