use super::*;
use crate::certs::DevCa;

const NOW: i64 = 1_800_000_000;
const DAY: i64 = 86_400;

fn ca(name: &str, not_before: i64, not_after: i64) -> (DevCa, Cert) {
    let ca = DevCa::generate_named(name, not_before, not_after).unwrap();
    let cert = Cert::parse(&ca.cert_pem).unwrap();
    (ca, cert)
}

fn serving(ca: &DevCa, not_before: i64, not_after: i64) -> Cert {
    let leaf = ca
        .issue_server_window(&["gpu-admission.gpu-admission.svc".into()], not_before, not_after)
        .unwrap();
    Cert::parse(&leaf.cert_pem).unwrap()
}

/// A CA valid for ten years from a year ago, a serving certificate from it issued a day ago for
/// 90 days, the bundle holding the CA.
fn settled() -> (DevCa, Stored) {
    let (ca, ca_cert) = ca("ca one", NOW - 365 * DAY, NOW + 9 * 365 * DAY);
    let stored = Stored {
        serving: Some(serving(&ca, NOW - DAY, NOW + 89 * DAY)),
        bundle: vec![ca_cert.clone()],
        ca: Some(ca_cert),
        ..Stored::default()
    };
    (ca, stored)
}

#[test]
fn an_empty_secret_gets_everything() {
    assert_eq!(decide(&Stored::default(), NOW, &Timing::default()), Action::Fresh);
}

#[test]
fn an_expired_ca_is_replaced_whole() {
    let (_, mut stored) = settled();
    stored.ca.as_mut().unwrap().not_after = NOW;
    assert_eq!(decide(&stored, NOW, &Timing::default()), Action::Fresh);
}

#[test]
fn a_settled_secret_is_kept() {
    let (_, stored) = settled();
    assert_eq!(decide(&stored, NOW, &Timing::default()), Action::Keep);
}

#[test]
fn the_serving_certificate_is_reissued_within_the_rotate_before_window_only() {
    let (_, stored) = settled();
    let timing = Timing::default();
    let not_after = stored.serving.as_ref().unwrap().not_after;
    let edge = not_after - timing.serving_rotate_before_secs;
    assert_eq!(decide(&stored, edge - 1, &timing), Action::Keep);
    assert_eq!(decide(&stored, edge, &timing), Action::Reissue);
    assert_eq!(decide(&stored, not_after + 1, &timing), Action::Reissue);
}

#[test]
fn a_missing_or_foreign_serving_certificate_is_reissued() {
    let (_, mut stored) = settled();
    let (other, _) = ca("ca other", NOW - DAY, NOW + 3650 * DAY);
    stored.serving = Some(serving(&other, NOW - DAY, NOW + 89 * DAY));
    assert_eq!(decide(&stored, NOW, &Timing::default()), Action::Reissue);
    stored.serving = None;
    assert_eq!(decide(&stored, NOW, &Timing::default()), Action::Reissue);
}

#[test]
fn the_ca_rotates_by_adding_the_next_one_first_then_promoting_it_after_the_overlap() {
    let (_, mut stored) = settled();
    let timing = Timing::default();
    let ca_end = stored.ca.as_ref().unwrap().not_after;
    let due = ca_end - timing.ca_rotate_before_secs;
    // The serving certificate stays fresh throughout (not what is being tested here).
    stored.serving.as_mut().unwrap().not_after = ca_end;
    stored.serving.as_mut().unwrap().not_before = NOW;
    let at = |t: i64, s: &Stored| decide(s, t, &timing);
    assert_eq!(at(due - 1, &stored), Action::Keep);
    assert_eq!(at(due, &stored), Action::AddNextCa);

    let (_, next) = ca("ca two", due, due + timing.ca_valid_secs);
    stored.next_ca = Some(next.clone());
    stored.next_ca_added_unix = Some(due);
    stored.bundle = bundle(&stored.bundle, stored.ca.as_ref().unwrap(), Some(&next), due);
    assert_eq!(stored.bundle.len(), 2, "both CAs are trusted before the switch");
    // Within the overlap nothing more happens (the next CA is not made twice).
    assert_eq!(at(due + timing.ca_overlap_secs - 1, &stored), Action::Keep);
    assert_eq!(at(due + timing.ca_overlap_secs, &stored), Action::PromoteNextCa);
}

#[test]
fn after_promotion_the_old_ca_stays_trusted_until_it_expires() {
    let (_, old) = ca("ca old", NOW - 10 * DAY, NOW + 10 * DAY);
    let (new_ca, new) = ca("ca new", NOW - DAY, NOW + 3650 * DAY);
    let trusted = bundle(&[old.clone(), new.clone()], &new, None, NOW);
    assert_eq!(trusted, vec![old.clone(), new.clone()]);
    let stored = Stored {
        ca: Some(new.clone()),
        serving: Some(serving(&new_ca, NOW - DAY, NOW + 89 * DAY)),
        bundle: trusted,
        ..Stored::default()
    };
    assert_eq!(decide(&stored, NOW, &Timing::default()), Action::Keep);
    // Once it has expired, it leaves the bundle.
    let later = old.not_after;
    assert_eq!(decide(&stored, later, &Timing::default()), Action::RewriteBundle);
    assert_eq!(bundle(&stored.bundle, &new, None, later), vec![new]);
}

#[test]
fn the_bundle_always_holds_the_ca_and_the_next_ca_once() {
    let (_, ca_cert) = ca("ca a", NOW - DAY, NOW + DAY);
    let (_, next) = ca("ca b", NOW - DAY, NOW + 2 * DAY);
    assert_eq!(
        bundle(&[], &ca_cert, Some(&next), NOW),
        vec![ca_cert.clone(), next.clone()]
    );
    let twice = [ca_cert.clone(), ca_cert.clone(), next.clone()];
    assert_eq!(
        bundle(&twice, &ca_cert, Some(&next), NOW),
        vec![ca_cert.clone(), next.clone()]
    );
    assert_eq!(
        bundle_pem(&[ca_cert.clone(), next.clone()]),
        format!("{}{}", ca_cert.pem, next.pem)
    );
    // A bundle read back from its PEM is the same bundle.
    assert_eq!(Cert::parse_bundle(&bundle_pem(&twice)), twice.to_vec());
}

#[test]
fn a_serving_certificate_never_outlives_its_ca() {
    let timing = Timing::default();
    assert_eq!(serving_not_after(NOW, NOW + 10 * DAY, &timing), NOW + 10 * DAY);
    assert_eq!(
        serving_not_after(NOW, NOW + 3650 * DAY, &timing),
        NOW + timing.serving_valid_secs
    );
}

#[test]
fn the_next_change_is_the_earliest_deadline() {
    let (_, stored) = settled();
    let timing = Timing::default();
    let serving_due = stored.serving.as_ref().unwrap().not_after - timing.serving_rotate_before_secs;
    assert_eq!(next_change(&stored, &timing), Some(serving_due));
    assert_eq!(decide(&stored, serving_due, &timing), Action::Reissue);
    assert_eq!(next_change(&Stored::default(), &timing), None);
}

#[test]
fn a_ca_loaded_from_its_pem_issues_under_the_same_subject() {
    let (original, cert) = ca("ca reloaded", NOW - DAY, NOW + DAY);
    let loaded = DevCa::from_pem(&original.cert_pem, &original.key_pem()).unwrap();
    let leaf = serving(&loaded, NOW - DAY, NOW + DAY);
    assert_eq!(leaf.issuer, cert.subject);
}

#[test]
fn entries_without_their_key_do_not_count() {
    let (ca, stored) = settled();
    let pem = stored.ca.as_ref().unwrap().pem.clone();
    let key = ca.key_pem();
    let data = |with_key: bool| {
        let (pem, key) = (pem.clone(), key.clone());
        move |k: &str| match k {
            CA_CERT => Some(pem.clone()),
            CA_KEY if with_key => Some(key.clone()),
            _ => None,
        }
    };
    assert!(Stored::from_data(data(true)).ca.is_some());
    assert!(Stored::from_data(data(false)).ca.is_none());
    assert_eq!(Stored::from_data(|_| Some("garbage".into())), Stored::default());
}
