//! Unit tests of the pure review path (the HTTPS contract is in tests/server_*.rs).

use super::*;

fn policy() -> Effective {
    Effective::new(crate::policy::Policy::embedded_default().expect("embedded default policy"))
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

/// Every skip is the engine's, and each is reported as `skipped` with its reason, whichever it
/// is (a Pod UPDATE was once reported as `allowed`).
#[test]
fn skips_are_reported_with_the_engines_reason() {
    let gpu_pod = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"NS"},
        "spec":{"containers":[{"name":"c","image":"i","resources":{"limits":{"nvidia.com/gpu":99}}}]}}"#;
    let service = r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"s","namespace":"ai"},"spec":{}}"#;
    let cases = [
        ("Pod", "pods", "ai", "UPDATE", "", gpu_pod, SkipReason::PodUpdate),
        (
            "Pod",
            "pods",
            "kube-system",
            "CREATE",
            "",
            gpu_pod,
            SkipReason::ExemptNamespace,
        ),
        (
            "Pod",
            "pods",
            "ai",
            "UPDATE",
            "status",
            gpu_pod,
            SkipReason::Subresource,
        ),
        (
            "Service",
            "services",
            "ai",
            "CREATE",
            "",
            service,
            SkipReason::NotCovered,
        ),
    ];
    let v2_pod = gpu_pod.replace(r#""apiVersion":"v1""#, r#""apiVersion":"v2""#);
    let v1beta1 = r#"{"apiVersion":"apps/v1beta1","kind":"Deployment","metadata":{"name":"d","namespace":"NS"},
        "spec":{"template":{"spec":{"containers":[{"name":"c","image":"i","resources":{"limits":{"nvidia.com/gpu":99}}}]}}}}"#;
    let unserved = [
        ("Pod", "", "v2", "pods", v2_pod.as_str()),
        ("Deployment", "apps", "v1beta1", "deployments", v1beta1),
    ];
    let unserved = unserved.map(|(kind, group, version, resource, object)| {
        (
            kind,
            group,
            version,
            resource,
            "ai",
            "CREATE",
            "",
            object,
            SkipReason::UnservedVersion,
        )
    });
    let cases = cases
        .map(|(kind, resource, ns, op, sub, object, reason)| (kind, "", "v1", resource, ns, op, sub, object, reason));
    for (kind, group, version, resource, ns, op, sub, object, reason) in cases.into_iter().chain(unserved) {
        let object = object.replace("NS", ns);
        let body = format!(
            r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"u",
            "kind":{{"group":"{group}","version":"{version}","kind":"{kind}"}},"resource":{{"group":"{group}","version":"{version}","resource":"{resource}"}},
            "subResource":"{sub}","namespace":"{ns}","operation":"{op}","object":{object},"oldObject":{object}}}}}"#
        );
        let (resp, summary) = review(&policy(), Endpoint::Validate, body.as_bytes()).unwrap();
        assert!(resp.response.unwrap().allowed, "{kind} {op} {sub}");
        assert_eq!(summary.decision, ReviewDecision::Skipped, "{kind} {op} {sub}");
        assert_eq!(summary.skip_reason, Some(reason), "{kind} {op} {sub}");
    }
}

/// `encode` as first written: the whole review through `serde_json::to_value` (the patch as an
/// array of numbers), then the patch replaced by its base64.
fn encode_reference(review: &AdmissionReview<DynamicObject>) -> Vec<u8> {
    use base64::Engine as _;
    let mut value = serde_json::to_value(review).unwrap();
    if let Some(patch) = review.response.as_ref().and_then(|r| r.patch.as_ref())
        && let Some(slot) = value.pointer_mut("/response/patch")
    {
        *slot = serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(patch));
    }
    serde_json::to_vec(&value).unwrap()
}

#[test]
fn encode_is_byte_identical_to_the_reference() {
    let gpu = r#"{"name":"c","image":"i","resources":{"limits":{"nvidia.com/gpu":"1"}}}"#;
    let pod = |ns: &str, spec: &str| {
        format!(
            r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"u-{ns}",
            "kind":{{"group":"","version":"v1","kind":"Pod"}},"resource":{{"group":"","version":"v1","resource":"pods"}},
            "namespace":"{ns}","operation":"CREATE","object":{{"apiVersion":"v1","kind":"Pod",
            "metadata":{{"name":"p","namespace":"{ns}"}},"spec":{spec}}}}}}}"#
        )
    };
    let deployment = format!(
        r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"u-d",
        "kind":{{"group":"apps","version":"v1","kind":"Deployment"}},"namespace":"ai","operation":"CREATE",
        "object":{{"apiVersion":"apps/v1","kind":"Deployment","metadata":{{"name":"d"}},
        "spec":{{"template":{{"spec":{{"containers":[{gpu}]}}}}}}}}}}}}"#
    );
    let bodies = [
        pod("ai", &format!(r#"{{"containers":[{gpu}]}}"#)),
        pod(
            "default",
            &format!(r#"{{"containers":[{gpu}],"tolerations":[{{"key":"x","operator":"Exists"}}]}}"#),
        ),
        pod("ai", r#"{"containers":[{"name":"c","image":"i"}]}"#),
        pod(
            "ai",
            r#"{"containers":[{"name":"c","image":"i"}],"volumes":[{"name":"v","hostPath":{"path":"/"}}]}"#,
        ),
        pod("kube-system", r#"{"containers":[]}"#),
        deployment,
    ];
    let mut patched = 0;
    for body in &bodies {
        for endpoint in [Endpoint::Mutate, Endpoint::Validate] {
            let (review, summary) = review(&policy(), endpoint, body.as_bytes()).expect(body);
            assert_eq!(
                String::from_utf8(encode(&review)).unwrap(),
                String::from_utf8(encode_reference(&review)).unwrap(),
                "{endpoint} {body}"
            );
            if let Some(patch) = review.response.as_ref().and_then(|r| r.patch.as_ref()) {
                patched += 1;
                let parsed = parse(body.as_bytes()).unwrap();
                let decision = crate::engine::evaluate(
                    &policy(),
                    &parsed.object.unwrap(),
                    &crate::engine::Context::create(&parsed.namespace, Stage::Mutate),
                );
                assert_eq!(summary.patch_bytes, serde_json::to_vec(&decision.patch).unwrap().len());
                assert_eq!(summary.patch_bytes, patch.len());
            }
        }
    }
    assert!(patched >= 2, "the table must exercise patches");
}
