//! AdmissionReview v1 in, AdmissionReview v1 out: the pure part of the webhook.
//!
//! [`review`] takes the raw request body and answers the response review (or a
//! [`ReviewError`] naming what is wrong with the body). No I/O: the server, `gpu-admission review`,
//! the tests and the benchmarks share it.
//!
//! Parsing reads only what the decision needs ([`wire`]): `oldObject`, `userInfo`, `options` are
//! skipped without building a tree, and `object` is parsed once, straight into the
//! `serde_json::Value` the engine evaluates. The response is built with kube's admission types from
//! an [`AdmissionRequest`] (so uid, apiVersion and kind are echoed), and encoded by [`encode`] with
//! the patch as base64, as kube-apiserver documents it (kube-core 5 serializes `patch` as an array
//! of numbers).

use std::fmt;

use kube::core::DynamicObject;
use kube::core::admission::{AdmissionResponse, AdmissionReview};
use kube::core::response::{Status, StatusSummary};
use serde::Serialize;

use crate::decision::{self, Action, Outcome, Violation};
pub use crate::decision::{MAX_WARNING_CHARS, SkipReason};
use crate::engine::{self, Context, Effective, Stage};

mod wire;

pub use wire::{ParsedRequest, parse};

// === Endpoint ===

/// Which webhook answered: `/mutate` or `/validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Endpoint {
    Mutate,
    Validate,
}

// === impl Endpoint ===

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Mutate => "mutate",
            Endpoint::Validate => "validate",
        }
    }

    pub fn stage(self) -> Stage {
        match self {
            Endpoint::Mutate => Stage::Mutate,
            Endpoint::Validate => Stage::Validate,
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === ReviewError ===

/// A body that is not a usable AdmissionReview v1. Answered with HTTP 400 and
/// `{"error": message, "code": code}`; never with "allowed".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ReviewError {
    /// Stable, machine-readable: `not_json`, `wrong_api_version`, `missing_uid`, ...
    pub code: &'static str,
    pub message: String,
}

// === impl ReviewError ===

impl ReviewError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The JSON body the server answers with.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "error": self.message, "code": self.code })
    }
}

// === ReviewSummary ===

/// What the review decided, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReviewDecision {
    /// Looked at, nothing to change.
    Allowed,
    /// Allowed with a patch.
    Mutated,
    /// Rejected (HTTP 200, `allowed: false`, `status.code` 403).
    Denied,
    /// Not looked at: see [`SkipReason`].
    Skipped,
}

impl ReviewDecision {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewDecision::Allowed => "allowed",
            ReviewDecision::Mutated => "mutated",
            ReviewDecision::Denied => "denied",
            ReviewDecision::Skipped => "skipped",
        }
    }
}

/// One violation, as counted in metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ViolationSummary {
    pub rule: &'static str,
    pub code: &'static str,
    pub action: Action,
}

/// Everything logs and metrics need about one review.
#[derive(Debug, Clone, Serialize)]
pub struct ReviewSummary {
    pub endpoint: Endpoint,
    pub uid: String,
    /// `request.kind.kind`, e.g. `Pod`.
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// `CREATE`, `UPDATE`, `DELETE`, `CONNECT`.
    pub operation: &'static str,
    pub dry_run: bool,
    pub decision: ReviewDecision,
    pub skip_reason: Option<SkipReason>,
    /// Size of the JSON patch (before base64), 0 when none.
    pub patch_bytes: usize,
    pub warnings: usize,
    pub violations: Vec<ViolationSummary>,
}

impl ReviewSummary {
    /// `kind` for a metrics label: a covered kind, or `other` (bounded cardinality).
    pub fn kind_label(&self) -> &str {
        if crate::k8s::workload::KINDS.iter().any(|k| k.kind == self.kind) {
            &self.kind
        } else {
            "other"
        }
    }
}

// === review ===

/// Evaluates one AdmissionReview v1 body exactly as the server does.
///
/// Returns the response review (encode it with [`encode`]) and a summary, or the reason the body
/// is not a usable review. Never panics on any input (the engine promises the same).
pub fn review(
    effective: &Effective,
    endpoint: Endpoint,
    body: &[u8],
) -> Result<(AdmissionReview<DynamicObject>, ReviewSummary), ReviewError> {
    let parsed = wire::parse(body)?;
    Ok(respond(effective, endpoint, parsed))
}

/// The decision for an already parsed request.
pub fn respond(
    effective: &Effective,
    endpoint: Endpoint,
    parsed: ParsedRequest,
) -> (AdmissionReview<DynamicObject>, ReviewSummary) {
    let ParsedRequest {
        request,
        object,
        namespace,
    } = parsed;
    let mut summary = ReviewSummary {
        endpoint,
        uid: request.uid.clone(),
        kind: request.kind.kind.clone(),
        namespace: namespace.clone(),
        name: request.name.clone(),
        operation: wire::operation_str(&request.operation),
        dry_run: request.dry_run,
        decision: ReviewDecision::Skipped,
        skip_reason: None,
        patch_bytes: 0,
        warnings: 0,
        violations: Vec::new(),
    };
    let response = AdmissionResponse::from(&request);
    let skip = |summary: &mut ReviewSummary, reason| {
        summary.skip_reason = Some(reason);
        (response.clone().into_review(), summary.clone())
    };

    let operation = wire::engine_operation(&request.operation);
    let ctx = Context {
        namespace: &namespace,
        operation,
        stage: endpoint.stage(),
        subresource: request.sub_resource.as_deref(),
    };
    // `wire::parse` refuses CREATE/UPDATE of a main resource without an object; whatever else
    // comes without one, the engine skips by its operation or subresource.
    let null = serde_json::Value::Null;
    let mut decision = engine::evaluate(effective, object.as_ref().unwrap_or(&null), &ctx);
    if let Some(reason) = decision.skipped {
        return skip(&mut summary, reason);
    }
    // Pods are immutable after creation (apart from a few fields): never patch anything but a
    // CREATE, whatever the engine says. The validating stage never patches.
    let is_pod = request.kind.kind == "Pod" && request.kind.group.is_empty();
    if endpoint == Endpoint::Validate || (is_pod && operation != engine::Operation::Create) {
        decision.patch.0.clear();
    }

    summary.violations = decision
        .violations
        .iter()
        .map(|v| ViolationSummary {
            rule: v.rule,
            code: v.code,
            action: v.action,
        })
        .collect();
    let warnings: Vec<String> = decision.warnings.iter().map(|w| clamp_warning(w)).collect();
    summary.warnings = warnings.len();

    let mut response = response;
    if !warnings.is_empty() {
        response.warnings = Some(warnings);
    }
    match decision.outcome() {
        Outcome::Denied => {
            summary.decision = ReviewDecision::Denied;
            let message = denial_message(&decision.violations);
            response = response.deny(&message);
            response.result = Status::failure(&message, "Forbidden").with_code(403);
            response.result.status = Some(StatusSummary::Failure);
        }
        Outcome::Mutated => {
            match response.clone().with_patch(decision.patch) {
                Ok(patched) => {
                    response = patched;
                    summary.decision = ReviewDecision::Mutated;
                    // The patch as serialized by `with_patch`.
                    summary.patch_bytes = response.patch.as_ref().map_or(0, Vec::len);
                }
                Err(e) => {
                    // Cannot happen for a json_patch::Patch; never allow silently.
                    summary.decision = ReviewDecision::Denied;
                    let message = format!("internal error: cannot encode the patch: {e}");
                    response = response.deny(&message);
                    response.result = Status::failure(&message, "InternalError").with_code(500);
                }
            }
        }
        Outcome::Allowed => summary.decision = ReviewDecision::Allowed,
    }
    (response.into_review(), summary)
}

/// `N violation(s): [CODE] path: message; ...` — every violation, denying ones first.
pub fn denial_message(violations: &[Violation]) -> String {
    let mut ordered: Vec<&Violation> = violations.iter().filter(|v| v.action == Action::Deny).collect();
    ordered.extend(violations.iter().filter(|v| v.action != Action::Deny));
    let parts: Vec<String> = ordered
        .iter()
        .map(|v| {
            let tag = if v.action == Action::Deny { "" } else { " (warning)" };
            if v.path.is_empty() {
                format!("[{}]{tag} {}", v.code, v.message)
            } else {
                format!("[{}]{tag} {}: {}", v.code, v.path, v.message)
            }
        })
        .collect();
    let n = parts.len();
    let noun = if n == 1 { "violation" } else { "violations" };
    format!("gpu-admission: {n} policy {noun}: {}", parts.join("; "))
}

/// At most [`MAX_WARNING_CHARS`] characters, no `Warning:` prefix (kubectl adds its own).
pub fn clamp_warning(w: &str) -> String {
    let mut w = w.trim();
    for prefix in ["Warning:", "warning:", "WARNING:"] {
        if let Some(rest) = w.strip_prefix(prefix) {
            w = rest.trim_start();
        }
    }
    decision::short(w)
}

// === encode ===

/// Serializes a response review as kube-apiserver reads it: `response.patch` is the base64 of
/// the JSON patch (kube-core serializes `Vec<u8>` as an array of numbers).
pub fn encode(review: &AdmissionReview<DynamicObject>) -> Vec<u8> {
    use base64::Engine as _;
    let patch = review.response.as_ref().and_then(|r| r.patch.as_ref());
    let value = match patch {
        None => serde_json::to_value(review),
        // The patch stays out of the tree (kube-core would make it one JSON number per byte); its
        // base64 goes in its place below. Same bytes out (the map keeps its keys sorted).
        Some(_) => {
            let mut bare = review.clone();
            if let Some(r) = bare.response.as_mut() {
                r.patch = None;
            }
            serde_json::to_value(&bare)
        }
    };
    let mut value = match value {
        Ok(v) => v,
        Err(e) => return internal_error_review(review, &e.to_string()),
    };
    if let Some(patch) = patch
        && let Some(response) = value.get_mut("response").and_then(serde_json::Value::as_object_mut)
    {
        let patch = base64::engine::general_purpose::STANDARD.encode(patch);
        response.insert("patch".into(), serde_json::Value::String(patch));
    }
    serde_json::to_vec(&value).unwrap_or_else(|e| internal_error_review(review, &e.to_string()))
}

/// A denial with the request's uid, for the (unreachable) case where encoding fails.
fn internal_error_review(review: &AdmissionReview<DynamicObject>, error: &str) -> Vec<u8> {
    let uid = review.response.as_ref().map(|r| r.uid.as_str()).unwrap_or_default();
    let v = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {
            "uid": uid,
            "allowed": false,
            "status": {"status": "Failure", "code": 500, "reason": "InternalError",
                       "message": format!("gpu-admission: cannot encode the response: {error}")},
        }
    });
    v.to_string().into_bytes()
}

#[cfg(test)]
mod tests;
