//! The decision vocabulary: what a rule finds and what the engine answers.
//!
//! A leaf module: it depends on nothing else in the crate, and every layer above it (policy,
//! cluster facts, engine, admission, server, CLI) speaks these types.

use json_patch::PatchOperation;
use serde::{Deserialize, Serialize};

/// Longest warning kube-apiserver users should see (kubectl prints each on its own line).
pub const MAX_WARNING_CHARS: usize = 120;

/// `allowed`, `mutated` or `denied`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Allowed,
    Mutated,
    Denied,
}

// === impl Outcome ===

impl Outcome {
    /// The word reports print (the same as its JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Mutated => "mutated",
            Outcome::Denied => "denied",
        }
    }
}

/// What a rule does when it finds a violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

/// Something missing that a patch adds (`check --output json` prints it as
/// `{code, rule, path, summary, patch}`).
#[derive(Debug, Clone, Serialize)]
pub struct Fix {
    pub code: &'static str,
    pub rule: &'static str,
    pub path: String,
    /// What the pods get, e.g. `nodeSelector node-type=gpu-worker` (short: used in warnings).
    pub summary: String,
    #[serde(rename = "patch")]
    pub ops: Vec<PatchOperation>,
    #[serde(skip)]
    pub action: Action,
}

/// Why an object was not evaluated. Whoever meets the object (server, `check`, tests), the
/// engine names the reason, so logs and metrics say `skipped` with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The engine does not cover this kind.
    NotCovered,
    /// DELETE or CONNECT.
    Operation,
    /// An UPDATE of a Pod: its spec is immutable where the rules look.
    PodUpdate,
    /// The namespace is exempt from every rule.
    ExemptNamespace,
    /// `pods/status`, `pods/binding`, `pods/ephemeralcontainers`, ...
    Subresource,
    /// A covered kind's name under another group or version (`apps/v1beta1` Deployment, a `v2`
    /// Pod) or spelling (`pod`): only `v1`, `apps/v1` and `batch/v1` are evaluated.
    UnservedVersion,
}

// === impl SkipReason ===

impl SkipReason {
    pub const ALL: [SkipReason; 6] = [
        SkipReason::NotCovered,
        SkipReason::Operation,
        SkipReason::PodUpdate,
        SkipReason::ExemptNamespace,
        SkipReason::Subresource,
        SkipReason::UnservedVersion,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::NotCovered => "not_covered",
            SkipReason::Operation => "operation",
            SkipReason::PodUpdate => "pod_update",
            SkipReason::ExemptNamespace => "exempt_namespace",
            SkipReason::Subresource => "subresource",
            SkipReason::UnservedVersion => "unserved_version",
        }
    }
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
    /// The fixes behind the patch, one by one (offline stage only: `check` reports them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fixes: Vec<Fix>,
    /// Why the object was not evaluated (`None`: it was, and the fields above are the answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<SkipReason>,
}

// === impl Decision ===

impl Decision {
    /// A decision for an object the engine did not evaluate.
    pub fn skip(reason: SkipReason) -> Self {
        Self {
            skipped: Some(reason),
            ..Self::default()
        }
    }

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

/// Cuts a warning to [`MAX_WARNING_CHARS`] on a character boundary.
pub fn short(text: &str) -> String {
    if text.chars().count() <= MAX_WARNING_CHARS {
        return text.to_string();
    }
    let mut out: String = text.chars().take(MAX_WARNING_CHARS - 1).collect();
    out.push('…');
    out
}

/// The warning a `warn` violation becomes: `CODE: message`, like the fix warnings (`CODE: pods
/// will get …`). The field path stays in `check` output and denial messages; a warning has 120
/// characters, better spent on what is wrong.
pub fn warning_for(v: &Violation) -> String {
    short(&format!("{}: {}", v.code, v.message))
}
