//! What each fuzz target does with one input. Shared by the honggfuzz binaries (`fuzz/src/bin/`)
//! and the corpus regression test (`tests/fuzz_corpus.rs`): a target must never panic, whatever
//! the bytes; a panic is the finding.

use gpu_admission::admission::{self, Endpoint};
use gpu_admission::engine::Effective;
use gpu_admission::k8s::manifests::{self, SourceFile};
use gpu_admission::{Policy, offline};

/// The embedded default policy, loaded once per process.
pub fn effective() -> &'static Effective {
    static EFFECTIVE: std::sync::OnceLock<Effective> = std::sync::OnceLock::new();
    EFFECTIVE.get_or_init(|| Effective::new(Policy::embedded_default().expect("the embedded policy loads")))
}

/// An AdmissionReview body: decode, evaluate and encode, at both endpoints.
pub fn review(data: &[u8]) {
    for endpoint in [Endpoint::Mutate, Endpoint::Validate] {
        if let Ok((review, _summary)) = admission::review(effective(), endpoint, data) {
            let bytes = admission::encode(&review);
            assert!(
                serde_json::from_slice::<serde_json::Value>(&bytes).is_ok(),
                "encoded review is JSON"
            );
        }
    }
}

/// `check`'s input: a YAML or JSON manifest file, every object evaluated offline.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(source) = SourceFile::parse("fuzz.yaml", text.to_string()) else {
        return;
    };
    let Ok(found) = manifests::manifests(&source) else {
        return;
    };
    for manifest in &found {
        let _ = offline::evaluate_manifest(effective(), manifest, "default");
    }
}

/// A policy file.
pub fn policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(policy) = Policy::from_yaml_str(text, "fuzz.yaml") {
        let _ = policy.to_yaml();
    }
}
