//! Carrying out a [`plan::Action`]: the Secret's new data (keys generated here).

use std::collections::BTreeMap;

use super::plan::{self, Action, Cert, Stored};
use super::{SelfCerts, new_ca};
use crate::certs::{CertError, DevCa};

/// A serving certificate starts this long before now (clock skew between replicas and the API
/// server).
const BACKDATE_SECS: i64 = 300;

/// The Secret's data after `action` (keys of ours replaced, any others kept).
pub(super) fn apply(
    action: Action,
    data: &BTreeMap<String, String>,
    stored: &Stored,
    now: i64,
    cfg: &SelfCerts,
) -> Result<BTreeMap<String, String>, CertError> {
    let timing = &cfg.timing;
    let mut out = data.clone();
    // The CA that signs, as (certificate, key) PEM; the next CA, if any.
    let current = match (data.get(plan::CA_CERT), data.get(plan::CA_KEY)) {
        (Some(c), Some(k)) if action != Action::Fresh => DevCa::from_pem(c, k).ok(),
        _ => None,
    };
    let mut next = match (data.get(plan::NEXT_CA_CERT), data.get(plan::NEXT_CA_KEY)) {
        (Some(c), Some(k)) if stored.next_ca.is_some() => DevCa::from_pem(c, k).ok(),
        _ => None,
    };
    let mut reissue = matches!(action, Action::Fresh | Action::Reissue | Action::PromoteNextCa);
    let signer = match (action, current) {
        (Action::PromoteNextCa, current) => match next.take() {
            Some(promoted) => promoted,
            // The next CA does not load after all: keep the current one (or start over).
            None => current.map_or_else(|| new_ca(now, timing), Ok)?,
        },
        (Action::AddNextCa, Some(ca)) => {
            next = Some(new_ca(now, timing)?);
            out.insert(plan::NEXT_CA_ADDED.into(), now.to_string());
            ca
        }
        (_, Some(ca)) => ca,
        // Fresh, or a CA whose key does not load: everything new.
        (_, None) => {
            reissue = true;
            next = None;
            new_ca(now, timing)?
        }
    };
    let signer_cert = Cert::parse(&signer.cert_pem)
        .ok_or_else(|| CertError::Invalid("the CA certificate made does not parse".into()))?;
    if reissue {
        let not_after = plan::serving_not_after(now, signer_cert.not_after, timing);
        let leaf = signer.issue_server_window(&cfg.hosts(), now - BACKDATE_SECS, not_after)?;
        out.insert(plan::TLS_KEY.into(), leaf.key_pem);
        out.insert(plan::TLS_CERT.into(), leaf.cert_pem);
    }
    out.insert(plan::CA_CERT.into(), signer.cert_pem.clone());
    out.insert(plan::CA_KEY.into(), signer.key_pem());
    let next_cert = match &next {
        Some(n) => {
            out.insert(plan::NEXT_CA_CERT.into(), n.cert_pem.clone());
            out.insert(plan::NEXT_CA_KEY.into(), n.key_pem());
            Cert::parse(&n.cert_pem)
        }
        None => {
            for key in [plan::NEXT_CA_CERT, plan::NEXT_CA_KEY, plan::NEXT_CA_ADDED] {
                out.remove(key);
            }
            None
        }
    };
    let existing = if action == Action::Fresh {
        &[][..]
    } else {
        &stored.bundle[..]
    };
    let bundle = plan::bundle(existing, &signer_cert, next_cert.as_ref(), now);
    out.insert(plan::BUNDLE.into(), plan::bundle_pem(&bundle));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SelfCerts {
        SelfCerts {
            secret: "gpu-admission-certs".into(),
            namespace: "gpu-admission".into(),
            service: "gpu-admission".into(),
            extra_hosts: vec!["127.0.0.1".into()],
            mutating_webhook: "gpu-admission".into(),
            validating_webhook: "gpu-admission".into(),
            timing: plan::Timing::default(),
        }
    }

    fn stored(data: &BTreeMap<String, String>) -> Stored {
        Stored::from_data(|k| data.get(k).cloned())
    }

    /// Decisions and their writes until `decide` keeps what was written (at most four), and
    /// then the next deadline is after `now`: the server never polls in a loop.
    fn step(data: &BTreeMap<String, String>, now: i64) -> (Vec<Action>, BTreeMap<String, String>) {
        let t = cfg().timing;
        let (mut actions, mut data) = (vec![], data.clone());
        loop {
            let s = stored(&data);
            let action = plan::decide(&s, now, &t);
            if action == Action::Keep {
                let next = plan::next_change(&s, &t).unwrap();
                assert!(
                    next > now,
                    "after {actions:?}: the next deadline {next} is not after {now}"
                );
                return (actions, data);
            }
            assert!(actions.len() < 4, "no settled state: {actions:?}");
            data = apply(action, &data, &s, now, &cfg()).unwrap();
            actions.push(action);
        }
    }

    /// The whole life of a Secret: created, settled, the serving certificate rotated from the
    /// same CA, the CA rotated (next CA trusted first, then signing), the old CA dropped once
    /// expired. Each written state is one that `decide` then keeps, and the pair always loads.
    #[test]
    fn a_secret_goes_through_every_rotation_and_settles_after_each() {
        let t = cfg().timing;
        let now = crate::server::unix_now();
        let (actions, data) = step(&BTreeMap::new(), now);
        assert_eq!(actions, [Action::Fresh]);
        let first = stored(&data);
        assert_eq!(plan::decide(&first, now, &t), Action::Keep);
        let pair = crate::server::tls::pair_from_pem(data[plan::TLS_CERT].as_bytes(), data[plan::TLS_KEY].as_bytes());
        assert!(pair.is_ok(), "the serving pair loads");
        assert_eq!(first.bundle, vec![first.ca.clone().unwrap()]);

        // Serving rotation: same CA, same bundle, another serial.
        let due = first.serving.as_ref().unwrap().not_after - t.serving_rotate_before_secs;
        let (actions, data2) = step(&data, due);
        assert_eq!(actions, [Action::Reissue]);
        let second = stored(&data2);
        assert_eq!(second.ca, first.ca);
        assert_eq!(second.bundle, first.bundle);
        assert_ne!(
            second.serving.as_ref().unwrap().serial,
            first.serving.as_ref().unwrap().serial
        );
        assert_eq!(
            second.serving.as_ref().unwrap().issuer,
            first.ca.as_ref().unwrap().subject
        );

        // CA rotation, step 1: the next CA joins the bundle (then, years later, the serving
        // certificate is due too: from the current CA).
        let ca_due = first.ca.as_ref().unwrap().not_after - t.ca_rotate_before_secs;
        let (actions, data3) = step(&data2, ca_due);
        assert_eq!(actions, [Action::AddNextCa, Action::Reissue]);
        let third = stored(&data3);
        assert_eq!(
            third.serving.as_ref().unwrap().issuer,
            first.ca.as_ref().unwrap().subject
        );
        assert_eq!(third.bundle.len(), 2);
        let next = third.next_ca.clone().unwrap();

        // Step 2, after the overlap: the next CA signs a new serving certificate; both trusted.
        let switch = ca_due + t.ca_overlap_secs;
        let (actions, data4) = step(&data3, switch);
        assert_eq!(actions, [Action::PromoteNextCa]);
        let fourth = stored(&data4);
        assert_eq!(fourth.ca.as_ref(), Some(&next));
        assert_eq!(fourth.next_ca, None);
        assert_eq!(fourth.serving.as_ref().unwrap().issuer, next.subject);
        assert_eq!(fourth.bundle, third.bundle);

        // Step 3: the old CA leaves the bundle when it expires.
        let old_end = first.ca.as_ref().unwrap().not_after;
        // (By then the serving certificate is due too: one write does both.)
        let (actions, data5) = step(&data4, old_end);
        assert_eq!(actions, [Action::Reissue]);
        assert_eq!(stored(&data5).bundle, vec![next]);
    }

    #[test]
    fn the_serving_certificate_names_the_service() {
        let hosts = cfg().hosts();
        assert_eq!(
            hosts,
            [
                "gpu-admission.gpu-admission.svc",
                "gpu-admission.gpu-admission.svc.cluster.local",
                "gpu-admission.gpu-admission",
                "gpu-admission",
                "127.0.0.1"
            ]
        );
    }

    #[test]
    fn keys_that_are_not_ours_are_kept() {
        let data = BTreeMap::from([("other".to_string(), "value".to_string())]);
        let (_, out) = step(&data, crate::server::unix_now());
        assert_eq!(out.get("other").map(String::as_str), Some("value"));
    }
}
