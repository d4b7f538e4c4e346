//! Unit tests of the pure review path (the HTTPS contract is in tests/server_*.rs).

use super::*;

fn policy() -> Policy {
    Policy::embedded_default().expect("embedded default policy")
}

#[test]
fn malformed_bodies_are_errors_never_allowed() {
    for (body, code) in [
        (&b""[..], "empty_body"),
        (b"{", "not_json"),
        (b"[]", "not_an_object"),
        (
            b"{\"apiVersion\":\"admission.k8s.io/v1beta1\",\"kind\":\"AdmissionReview\"}",
            "wrong_api_version",
        ),
        (
            b"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\"}",
            "missing_request",
        ),
        (
            b"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{}}",
            "missing_uid",
        ),
        (
            b"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\"} x",
            "not_json",
        ),
    ] {
        let err = review(&policy(), Endpoint::Validate, body).expect_err(std::str::from_utf8(body).unwrap());
        assert_eq!(err.code, code, "{}", err.message);
    }
}

#[test]
fn warnings_are_clamped_without_prefix() {
    assert_eq!(clamp_warning("Warning: short"), "short");
    let long = "x".repeat(300);
    let w = clamp_warning(&long);
    assert_eq!(w.chars().count(), MAX_WARNING_CHARS);
    assert!(w.ends_with('…'));
}

#[test]
fn delete_is_allowed_untouched() {
    let body = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u1",
        "kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},
        "namespace":"ai","operation":"DELETE","oldObject":{"apiVersion":"v1","kind":"Pod"}}}"#;
    let (resp, summary) = review(&policy(), Endpoint::Validate, body).unwrap();
    let r = resp.response.unwrap();
    assert!(r.allowed);
    assert_eq!(r.uid, "u1");
    assert!(r.patch.is_none());
    assert_eq!(summary.decision, ReviewDecision::Skipped);
    assert_eq!(summary.skip_reason, Some(SkipReason::Operation));
}
