//! The rules, one module each, and the orchestration that turns their findings into a
//! [`Decision`] for a [`Stage`].
//!
//! A rule reports two things: *violations* (something wrong that no patch can fix, such as a
//! forbidden hostPath) and *fixes* (something missing that a patch adds, such as the GPU
//! toleration). The stage decides what a fix becomes: a patch (mutate, offline), a warning
//! (validate, for controllers whose pods get it on creation) or a violation (validate, for a Pod
//! that reached validation without it).

use json_patch::PatchOperation;
use json_patch::jsonptr::PointerBuf;
use serde_json::{Map, Value};

use super::{Action, Context, Decision, Operation, Stage, Violation};
use crate::policy::Policy;
use crate::workload;

pub mod gpu;
pub mod host_path;
pub mod placement;
pub mod priority;
pub mod slices;
pub mod tolerations;

/// Longest warning kube-apiserver users should see (kubectl prints each on its own line).
pub const MAX_WARNING_CHARS: usize = 120;

/// The pod spec under evaluation, and where it sits in the object.
pub struct Subject<'a> {
    pub policy: &'a Policy,
    pub spec: &'a Map<String, Value>,
    pub namespace: &'a str,
    pub is_pod: bool,
    /// Segments from the object root to the pod spec (`["spec", "template", "spec"]`).
    pub segments: &'static [&'static str],
    pub gpu: gpu::Usage,
}

// === impl Subject ===

impl Subject<'_> {
    /// Field path below the pod spec: `field("tolerations")` → `spec.template.spec.tolerations`.
    pub fn field(&self, rest: &str) -> String {
        let base = self.segments.join(".");
        if rest.is_empty() {
            base
        } else {
            format!("{base}.{rest}")
        }
    }

    /// JSON pointer below the pod spec; tokens are escaped (`nvidia.com/gpu` → `nvidia.com~1gpu`).
    pub fn pointer(&self, tokens: &[&str]) -> PointerBuf {
        PointerBuf::from_tokens(self.segments.iter().copied().chain(tokens.iter().copied()))
    }

    /// The action of a rule in this namespace, or `None` when it is off or exempted here.
    pub fn active(&self, action: Action, exempt: &[String]) -> Option<Action> {
        (action != Action::Off && !exempt.iter().any(|n| n == self.namespace)).then_some(action)
    }
}

/// Something missing that a patch adds.
#[derive(Debug, Clone)]
pub struct Fix {
    pub code: &'static str,
    pub rule: &'static str,
    pub path: String,
    /// What the pods get, e.g. `nodeSelector node-type=gpu-worker` (short: used in warnings).
    pub summary: String,
    pub ops: Vec<PatchOperation>,
    pub action: Action,
}

/// What the rules found.
#[derive(Debug, Default)]
pub struct Findings {
    pub violations: Vec<Violation>,
    pub fixes: Vec<Fix>,
}

impl Findings {
    pub fn violation(&mut self, action: Action, rule: &'static str, code: &'static str, path: String, message: String) {
        self.violations.push(Violation {
            code,
            rule,
            path,
            message,
            action,
        });
    }
}

/// `add` operation (replaces an existing member, which is what we want for scalars).
pub fn add(path: PointerBuf, value: Value) -> PatchOperation {
    PatchOperation::Add(json_patch::AddOperation { path, value })
}

/// `replace` operation, for a member known to exist.
pub fn replace(path: PointerBuf, value: Value) -> PatchOperation {
    PatchOperation::Replace(json_patch::ReplaceOperation { path, value })
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

/// See [`crate::engine::evaluate`].
pub fn evaluate(policy: &Policy, object: &Value, ctx: &Context<'_>) -> Decision {
    let Some(workload) = workload::extract(object) else {
        return Decision::default();
    };
    let mut decision = Decision {
        covered: true,
        ..Decision::default()
    };
    let namespace = workload.namespace.filter(|n| !n.is_empty()).unwrap_or(ctx.namespace);
    let skip_operation = matches!(ctx.operation, Operation::Delete | Operation::Connect)
        || (workload.is_pod() && ctx.operation == Operation::Update);
    if skip_operation || policy.namespace_exempt(namespace) {
        return decision;
    }
    let spec = match &workload.pod_spec {
        Ok(spec) => *spec,
        Err(reason) => {
            if ctx.stage != Stage::Mutate {
                let path = workload.spec_path();
                let message = format!("{reason}: a {} needs a pod spec at `{path}`", workload.info.kind);
                decision.violations.push(Violation {
                    code: "OBJECT_INVALID",
                    rule: "object",
                    path,
                    message,
                    action: Action::Deny,
                });
            }
            return decision;
        }
    };
    let mut subject = Subject {
        policy,
        spec,
        namespace,
        is_pod: workload.is_pod(),
        segments: workload.info.spec_segments,
        gpu: gpu::Usage::default(),
    };
    subject.gpu = gpu::Usage::of(&subject);
    let mut findings = Findings::default();
    slices::check(&subject, &mut findings);
    host_path::check(&subject, &mut findings);
    if subject.gpu.is_gpu_workload() {
        placement::check(&subject, &mut findings);
        tolerations::check(&subject, &mut findings);
        priority::check(&subject, &mut findings);
    }
    finish(decision, findings, &subject, ctx)
}

/// Turns findings into the decision for the stage.
fn finish(mut decision: Decision, findings: Findings, subject: &Subject<'_>, ctx: &Context<'_>) -> Decision {
    let templates_mutated = subject.policy.spec().mutate_templates;
    let patch_here = subject.is_pod || templates_mutated;
    match ctx.stage {
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
            for fix in findings.fixes {
                let who = if subject.is_pod {
                    "pod will get"
                } else {
                    "pods will get"
                };
                decision
                    .warnings
                    .push(short(&format!("{}: {who} {}", fix.code, fix.summary)));
                decision.patch.0.extend(fix.ops);
            }
        }
    }
    let warned = decision.violations.iter().filter(|v| v.action == Action::Warn);
    let warned: Vec<String> = warned.map(warning_for).collect();
    decision.warnings.splice(0..0, warned);
    decision
}
