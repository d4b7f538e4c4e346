//! Unit tests of the AdmissionReview decoder.
use super::*;

/// What `parse` answered when every body was parsed with path tracking.
fn tracked(body: &[u8]) -> Option<ReviewError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize::<_, MapOnly<Envelope<'_>>>(&mut de) {
        Err(e) => {
            let path = e.path().to_string();
            Some(classify(&path, e.into_inner()))
        }
        Ok(_) => None,
    }
}

#[test]
fn untracked_parse_reports_the_tracked_error() {
    let review = |request: &str| format!(r#"{{"apiVersion":"{API_VERSION}","kind":"{KIND}","request":{request}}}"#);
    let cases: Vec<(String, &str, &str)> = vec![
        ("{".into(), "not_json", ""),
        ("[]".into(), "not_an_object", ""),
        ("\"x\"".into(), "not_an_object", ""),
        (r#"{"apiVersion":1}"#.into(), "invalid_field", "`apiVersion`"),
        (r#"{"kind":[]}"#.into(), "invalid_field", "`kind`"),
        (r#"{"kind":"a","kind":"b"}"#.into(), "invalid_review", "duplicate field"),
        (review("[]"), "invalid_request", "`request`"),
        (review("7"), "invalid_request", "`request`"),
        (review(r#"{"uid":5}"#), "invalid_field", "`request.uid`"),
        (review(r#"{"uid":"u","kind":"Pod"}"#), "invalid_field", "`request.kind`"),
        (
            review(r#"{"uid":"u","kind":{"group":"","version":1}}"#),
            "invalid_field",
            "`request.kind.version`",
        ),
        (
            review(r#"{"uid":"u","dryRun":"yes"}"#),
            "invalid_field",
            "`request.dryRun`",
        ),
        (review(r#"{"uid":"u","object":{"a":[1,2,}}"#), "not_json", ""),
        (review(r#"{"uid":"u","oldObject":{"a":tru}}"#), "not_json", ""),
        (review(r#"{"uid":"u","object":{"a":"\ud800"}}"#), "not_json", ""),
    ];
    for (body, code, in_message) in cases {
        let got = parse(body.as_bytes()).expect_err(&body);
        assert_eq!(Some(got.clone()), tracked(body.as_bytes()), "{body}");
        assert_eq!(got.code, code, "{body}: {}", got.message);
        assert!(got.message.contains(in_message), "{body}: {}", got.message);
    }
}
