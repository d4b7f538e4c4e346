//! The policy engine: one object plus its context in, one [`Decision`] out. No I/O.
//!
//! The server (`/mutate`, `/validate`), the `check` CLI and the tests are thin shells around
//! [`evaluate`]. Each rule lives in its own module under `src/engine/rules/`.

use serde::Serialize;

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
    /// The namespace of the request (or `--namespace` offline); used when the object has none.
    pub namespace: &'a str,
    pub operation: Operation,
    pub stage: Stage,
}

/// `allowed`, `mutated` or `denied`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Allowed,
    Mutated,
    Denied,
}

/// What a rule does when it finds a violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Deny,
    Warn,
    Off,
}

/// One broken rule, with a stable code and the field it is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Stable, documented code, e.g. `HOSTPATH_NOT_ALLOWED`.
    pub code: &'static str,
    /// The rule family: `placement`, `tolerations`, `priority`, `slices`, `hostPath`.
    pub rule: &'static str,
    /// Field path in the object, e.g. `spec.template.spec.containers[1].resources.limits`.
    pub path: String,
    /// What was found, what is allowed, and how to fix it.
    pub message: String,
    /// `deny` or `warn` (an `off` rule reports nothing).
    pub action: Action,
}

/// The engine's answer for one object.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Decision {
    /// Every violation, denying and warning ones alike.
    pub violations: Vec<Violation>,
    /// Human-readable warnings (already short enough for kubectl: at most 120 characters).
    pub warnings: Vec<String>,
    /// RFC 6902 patch against the object as given (empty when nothing is mutated).
    pub patch: json_patch::Patch,
    /// Whether the object is a workload this policy covers (false: skipped, nothing applies).
    pub covered: bool,
}

impl Decision {
    pub fn outcome(&self) -> Outcome {
        if self.violations.iter().any(|v| v.action == Action::Deny) {
            Outcome::Denied
        } else if !self.patch.0.is_empty() {
            Outcome::Mutated
        } else {
            Outcome::Allowed
        }
    }
}

pub mod rules;

use crate::policy::Policy;

/// Evaluates one object (a Pod, or a workload with a pod template) in its context.
///
/// Never panics, whatever the JSON: malformed fields become violations with their path.
pub fn evaluate(policy: &Policy, object: &serde_json::Value, ctx: &Context<'_>) -> Decision {
    rules::evaluate(policy, object, ctx)
}

#[cfg(test)]
mod tests;
