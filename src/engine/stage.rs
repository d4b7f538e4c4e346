//! What the rules' findings become at each [`Stage`].
//!
//! A rule reports two things: *violations* (something wrong that no patch can fix, such as a
//! forbidden hostPath) and *fixes* (something missing that a patch adds, such as the GPU
//! toleration). The stage decides what a fix becomes: a patch (mutate, offline), a warning
//! (validate, for controllers whose pods get it on creation) or a violation (validate, for a Pod
//! that reached validation without it).

use super::Stage;
use super::rules::{Findings, Subject};
use super::shape::Mismatch;
use crate::decision::{Action, Decision, Violation, short, warning_for};
use crate::k8s::workload::Workload;

/// A workload whose pod spec cannot be reached: denied, except by the mutating stage (which
/// never denies; validation will).
pub(super) fn invalid_object(workload: &Workload<'_>, reason: &str, stage: Stage) -> Decision {
    let path = workload.spec_path();
    let message = format!("{reason}: a {} needs a pod spec at `{path}`", workload.info.kind);
    refuse(stage, [("OBJECT_INVALID", path, message)])
}

/// Covered fields of the wrong type: each a `FIELD_INVALID` denial (not by the mutating stage).
pub(super) fn invalid_fields(wrong: Vec<Mismatch>, stage: Stage) -> Decision {
    refuse(stage, wrong.into_iter().map(|m| ("FIELD_INVALID", m.path, m.message)))
}

/// An object naming another namespace than the one the decision is taken in.
pub(super) fn namespace_mismatch(theirs: &str, ours: &str, stage: Stage) -> Decision {
    let message = format!(
        "`metadata.namespace` is `{theirs}` but the request is in namespace `{ours}`: every decision is taken in the request's namespace"
    );
    refuse(
        stage,
        [("NAMESPACE_MISMATCH", "metadata.namespace".to_string(), message)],
    )
}

/// Denials of the object as a whole (rule `object`); the mutating stage never denies, and
/// leaves such an object untouched for validation to refuse.
fn refuse(stage: Stage, found: impl IntoIterator<Item = (&'static str, String, String)>) -> Decision {
    let mut decision = Decision::default();
    if stage != Stage::Mutate {
        decision.violations = found
            .into_iter()
            .map(|(code, path, message)| Violation {
                code,
                rule: "object",
                path,
                message,
                action: Action::Deny,
            })
            .collect();
    }
    decision
}

/// Turns findings into the decision for the stage.
pub(super) fn finish(findings: Findings, subject: &Subject<'_>, stage: Stage) -> Decision {
    let mut decision = Decision::default();
    let templates_mutated = subject.policy.spec().mutate_templates;
    let patch_here = subject.is_pod || templates_mutated;
    match stage {
        Stage::Mutate => {
            if patch_here {
                decision.patch.0 = findings.fixes.into_iter().flat_map(|f| f.ops).collect();
            }
        }
        Stage::Validate => {
            decision.violations = findings.violations;
            for fix in findings.fixes {
                if patch_here {
                    let message = format!(
                        "expected {}: the mutating webhook sets it on CREATE; set it in the manifest, or check that the mutating webhook is registered",
                        fix.summary
                    );
                    decision.violations.push(Violation {
                        code: fix.code,
                        rule: fix.rule,
                        path: fix.path,
                        message,
                        action: fix.action,
                    });
                } else {
                    decision
                        .warnings
                        .push(short(&format!("{}: pods will get {}", fix.code, fix.summary)));
                }
            }
        }
        Stage::Offline => {
            decision.violations = findings.violations;
            let who = if subject.is_pod {
                "pod will get"
            } else {
                "pods will get"
            };
            for fix in findings.fixes {
                decision
                    .warnings
                    .push(short(&format!("{}: {who} {}", fix.code, fix.summary)));
                decision.patch.0.extend(fix.ops.iter().cloned());
                decision.fixes.push(fix);
            }
        }
    }
    let warned = decision.violations.iter().filter(|v| v.action == Action::Warn);
    let warned: Vec<String> = warned.map(warning_for).collect();
    decision.warnings.splice(0..0, warned);
    decision
}
