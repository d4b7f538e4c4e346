//! The policy engine: one object plus its context in, one [`Decision`] out. No I/O.
//!
//! The server (`/mutate`, `/validate`), the `check` CLI, native-policy generation and the tests
//! are thin shells around [`evaluate`]. Each rule lives in its own file under `src/engine/rules/`
//! and is one line of the table [`rules::RULES`]. The engine owns every skip: whoever calls it
//! learns from [`Decision::skipped`] why an object was not evaluated.

use serde::Serialize;
use serde_json::Value;

pub use crate::decision::{Action, Decision, Fix, Outcome, SkipReason, Violation};

mod claims;
mod effective;
pub(crate) mod rules;
mod shape;
mod stage;

pub use effective::Effective;
pub use rules::all_codes;

use crate::k8s::workload;

/// Where the decision is being taken. The same rules run in every stage; the stage decides
/// what a missing-but-fixable field becomes (a patch, a warning or a violation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// The mutating webhook: Pods on CREATE get a patch; controllers only when the policy
    /// says `mutateTemplates: true`. Never denies.
    Mutate,
    /// The validating webhook: denials; controllers get warnings about what their pods will get.
    Validate,
    /// `gpu-admission check`: both at once. The patch fixes the object (template included).
    Offline,
}

/// The admission operation (`CREATE`, `UPDATE`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

/// Everything the engine needs besides the object.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// The namespace every decision is taken in: the request's (the API server's word), or
    /// offline the object's own (`--namespace` when it names none). An object whose
    /// `metadata.namespace` names another is denied (`NAMESPACE_MISMATCH`).
    pub namespace: &'a str,
    pub operation: Operation,
    pub stage: Stage,
    /// The subresource of the request (`status`, `binding`, ...): never evaluated.
    pub subresource: Option<&'a str>,
}

// === impl Context ===

impl<'a> Context<'a> {
    /// A CREATE of a main resource in `namespace`, at `stage`.
    pub fn create(namespace: &'a str, stage: Stage) -> Self {
        Self {
            namespace,
            operation: Operation::Create,
            stage,
            subresource: None,
        }
    }
}

/// Evaluates one object (a Pod, or a workload with a pod template) in its context.
///
/// Never panics, whatever the JSON: malformed fields become violations with their path, and a
/// covered field of the wrong type stops the evaluation (`FIELD_INVALID`, see `shape`). An
/// object that is not evaluated (see [`SkipReason`]) gets an empty decision naming the reason;
/// the reasons are checked in this order: operation, subresource, kind, Pod update, namespace.
pub fn evaluate(effective: &Effective, object: &Value, ctx: &Context<'_>) -> Decision {
    if matches!(ctx.operation, Operation::Delete | Operation::Connect) {
        return Decision::skip(SkipReason::Operation);
    }
    if ctx.subresource.is_some_and(|s| !s.is_empty()) {
        return Decision::skip(SkipReason::Subresource);
    }
    let namespace = ctx.namespace;
    let Some(workload) = workload::extract(object) else {
        if workload::unserved_version(object) {
            return Decision::skip(SkipReason::UnservedVersion);
        }
        if effective.policy().namespace_exempt(namespace) {
            return Decision::skip(SkipReason::NotCovered);
        }
        return claims::evaluate(effective.policy(), object, namespace)
            .unwrap_or(Decision::skip(SkipReason::NotCovered));
    };
    if workload.is_pod() && ctx.operation == Operation::Update {
        return Decision::skip(SkipReason::PodUpdate);
    }
    if effective.policy().namespace_exempt(namespace) {
        return Decision::skip(SkipReason::ExemptNamespace);
    }
    let spec = match &workload.pod_spec {
        Ok(spec) => *spec,
        Err(reason) => return stage::invalid_object(&workload, reason, ctx.stage),
    };
    let wrong = shape::check(object, spec, &workload.spec_path());
    if !wrong.is_empty() {
        return stage::invalid_fields(wrong, ctx.stage);
    }
    if let Some(theirs) = workload.namespace.filter(|n| !n.is_empty() && *n != namespace) {
        return stage::namespace_mismatch(theirs, namespace, ctx.stage);
    }
    let subject = rules::Subject::new(effective, spec, namespace, &workload);
    let findings = rules::run(&subject);
    stage::finish(findings, &subject, ctx.stage)
}

#[cfg(test)]
mod tests;
