//! The pure half of `serve --self-managed-certs`: what the Secret holds, what to do about it at a
//! given time, and the caBundle it implies. No I/O and no clock: `now` is an argument, so every
//! replica reading the same Secret at the same time decides the same thing.

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;

/// The Secret's keys.
pub const CA_CERT: &str = "ca.crt";
pub const CA_KEY: &str = "ca.key";
pub const NEXT_CA_CERT: &str = "ca-next.crt";
pub const NEXT_CA_KEY: &str = "ca-next.key";
/// When the next CA was added to the bundle (Unix seconds, decimal).
pub const NEXT_CA_ADDED: &str = "ca-next-added-unix";
pub const BUNDLE: &str = "ca-bundle.crt";
pub const TLS_CERT: &str = "tls.crt";
pub const TLS_KEY: &str = "tls.key";

/// Lifetimes and margins, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// A new serving certificate is valid this long (at most until its CA expires).
    pub serving_valid_secs: i64,
    /// It is replaced this long before its notAfter (the overlap: the old one still verifies).
    pub serving_rotate_before_secs: i64,
    /// A new CA is valid this long.
    pub ca_valid_secs: i64,
    /// The next CA is made (and added to the caBundle) this long before the CA's notAfter.
    pub ca_rotate_before_secs: i64,
    /// The next CA signs serving certificates once it has been in the caBundle this long.
    pub ca_overlap_secs: i64,
}

impl Default for Timing {
    fn default() -> Self {
        const DAY: i64 = 86_400;
        Timing {
            serving_valid_secs: 90 * DAY,
            serving_rotate_before_secs: 30 * DAY,
            ca_valid_secs: 3650 * DAY,
            ca_rotate_before_secs: 365 * DAY,
            ca_overlap_secs: DAY,
        }
    }
}

/// One certificate of the Secret: its PEM and what the decisions need of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cert {
    pub pem: String,
    pub not_before: i64,
    pub not_after: i64,
    /// Subject and issuer, DER-encoded (a serving certificate is the CA's when its issuer is
    /// the CA's subject: every CA made here has a subject of its own).
    pub subject: Vec<u8>,
    pub issuer: Vec<u8>,
    /// The serial number, hex with colons.
    pub serial: String,
}

impl Cert {
    /// The first certificate of `pem`, or `None` if there is none that parses. `pem` is kept
    /// re-encoded from the DER, so equal certificates have equal PEM.
    pub fn parse(pem: &str) -> Option<Cert> {
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).ok()?;
        Cert::from_der(der.as_ref())
    }

    fn from_der(der: &[u8]) -> Option<Cert> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let validity = cert.validity();
        Some(Cert {
            pem: der_to_pem(der),
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
            subject: cert.subject().as_raw().to_vec(),
            issuer: cert.issuer().as_raw().to_vec(),
            serial: cert.raw_serial_as_string(),
        })
    }

    /// Every certificate of a PEM bundle that parses, in order.
    pub fn parse_bundle(pem: &str) -> Vec<Cert> {
        CertificateDer::pem_slice_iter(pem.as_bytes())
            .filter_map(Result::ok)
            .filter_map(|der| Cert::from_der(der.as_ref()))
            .collect()
    }

    fn valid_at(&self, now: i64) -> bool {
        self.not_before <= now && now < self.not_after
    }
}

fn der_to_pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// What the Secret holds, parsed (keys are checked when used: a CA whose key does not load is
/// replaced by the caller).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    pub ca: Option<Cert>,
    pub next_ca: Option<Cert>,
    pub next_ca_added_unix: Option<i64>,
    pub serving: Option<Cert>,
    pub bundle: Vec<Cert>,
}

impl Stored {
    /// Parses the Secret's data (`key → bytes`); a missing or unparsable entry is `None`.
    pub fn from_data(get: impl Fn(&str) -> Option<String>) -> Stored {
        let cert_with_key = |cert: &str, key: &str| get(key).and(get(cert)).and_then(|pem| Cert::parse(&pem));
        Stored {
            ca: cert_with_key(CA_CERT, CA_KEY),
            next_ca: cert_with_key(NEXT_CA_CERT, NEXT_CA_KEY),
            next_ca_added_unix: get(NEXT_CA_ADDED).and_then(|s| s.trim().parse().ok()),
            serving: cert_with_key(TLS_CERT, TLS_KEY),
            bundle: get(BUNDLE).map(|pem| Cert::parse_bundle(&pem)).unwrap_or_default(),
        }
    }
}

/// What to write, decided from the Secret and the time. At most one step per decision: after a
/// write, the next decision starts from what was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing to write.
    Keep,
    /// No usable CA: a new CA, a serving certificate from it, the bundle with it.
    Fresh,
    /// The CA nears its end: make the next CA and add it to the bundle (still serving from the
    /// current CA).
    AddNextCa,
    /// The next CA has been in the bundle for the overlap: it becomes the CA and issues a new
    /// serving certificate; the old CA stays in the bundle until it expires.
    PromoteNextCa,
    /// A new serving certificate from the current CA (missing, not the CA's, or within
    /// `serving_rotate_before_secs` of its notAfter).
    Reissue,
    /// Only the bundle differs from [`bundle`] (an expired CA to drop, a CA missing from it).
    RewriteBundle,
}

/// The one rule every replica applies.
pub fn decide(stored: &Stored, now: i64, timing: &Timing) -> Action {
    let Some(ca) = stored.ca.as_ref().filter(|ca| ca.valid_at(now)) else {
        return Action::Fresh;
    };
    match (&stored.next_ca, stored.next_ca_added_unix) {
        (Some(next), Some(added)) if next.valid_at(now) => {
            if now >= added.saturating_add(timing.ca_overlap_secs) {
                return Action::PromoteNextCa;
            }
        }
        // No next CA (or a broken one): make it when the CA nears its end.
        _ => {
            if now >= ca.not_after.saturating_sub(timing.ca_rotate_before_secs) {
                return Action::AddNextCa;
            }
        }
    }
    let serving_ok = stored.serving.as_ref().is_some_and(|s| {
        s.issuer == ca.subject && s.valid_at(now) && now < s.not_after.saturating_sub(timing.serving_rotate_before_secs)
    });
    if !serving_ok {
        return Action::Reissue;
    }
    if stored.bundle != bundle(&stored.bundle, ca, stored.next_ca.as_ref(), now) {
        return Action::RewriteBundle;
    }
    Action::Keep
}

/// The caBundle's certificates: those already in it that have not expired, then the CA and the
/// next CA if missing (no duplicates). A CA leaves the bundle only when it has expired, so a
/// serving certificate it signed verifies for as long as it is valid.
pub fn bundle(existing: &[Cert], ca: &Cert, next: Option<&Cert>, now: i64) -> Vec<Cert> {
    let mut out: Vec<Cert> = Vec::new();
    for cert in existing.iter().chain(std::iter::once(ca)).chain(next) {
        if now < cert.not_after && !out.iter().any(|c| c.pem == cert.pem) {
            out.push(cert.clone());
        }
    }
    out
}

/// The PEM text of a bundle (the caBundle, before base64).
pub fn bundle_pem(certs: &[Cert]) -> String {
    certs.iter().map(|c| c.pem.as_str()).collect()
}

/// A serving certificate's notAfter: `serving_valid_secs` from now, but never after its CA's.
pub fn serving_not_after(now: i64, ca_not_after: i64, timing: &Timing) -> i64 {
    now.saturating_add(timing.serving_valid_secs).min(ca_not_after)
}

/// When [`decide`] will next answer something other than `Keep`, if nothing else changes.
pub fn next_change(stored: &Stored, timing: &Timing) -> Option<i64> {
    let ca = stored.ca.as_ref()?;
    let mut times = vec![];
    // While a next CA waits for its overlap, the CA's rotation time has passed: not a deadline.
    match (&stored.next_ca, stored.next_ca_added_unix) {
        (Some(_), Some(added)) => times.push(added.saturating_add(timing.ca_overlap_secs)),
        _ => times.push(ca.not_after.saturating_sub(timing.ca_rotate_before_secs)),
    }
    if let Some(s) = &stored.serving {
        times.push(s.not_after.saturating_sub(timing.serving_rotate_before_secs));
    }
    times.extend(stored.bundle.iter().map(|c| c.not_after));
    times.into_iter().min()
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
