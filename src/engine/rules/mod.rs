//! The rules: one file each, one line each in [`RULES`].
//!
//! A rule is a [`Rule`]: its name, whether it applies to GPU workloads only, its stable codes,
//! where its spec sits in the policy, and its check function. The engine runs the table in
//! order; a rule whose action is `off`, or whose `exemptNamespaces` hold the pod's namespace, is
//! not called. Adding a rule means one file here and one line in [`RULES`].

use json_patch::PatchOperation;
use json_patch::jsonptr::PointerBuf;
use serde_json::{Map, Value};

use super::Effective;
use crate::decision::{Action, Fix, Violation};
use crate::k8s::workload::Workload;
use crate::policy::Policy;
use crate::policy::file::{RuleSpec, RulesSpec};

pub mod candidates;
pub mod gpu;
pub mod host_path;
pub mod placement;
pub mod priority;
pub mod slices;
pub mod tolerations;
pub mod visibility;

/// One rule of the policy.
pub struct Rule {
    /// The rule family, as in violations and the README: `placement`, `hostPath`, ...
    pub name: &'static str,
    /// Whether only GPU workloads are checked (`hostPath` and `slices` check every pod).
    pub gpu_only: bool,
    /// Every code the rule can report.
    pub codes: &'static [&'static str],
    /// Its section of the policy's `rules`.
    pub spec: fn(&RulesSpec) -> &dyn RuleSpec,
    /// The check, called with the rule's action when the rule is on in the pod's namespace.
    pub check: fn(&Subject<'_>, Action, &mut Findings),
}

/// Every rule, in the order they run (and their findings are reported).
pub const RULES: &[Rule] = &[
    slices::RULE,
    host_path::RULE,
    placement::RULE,
    tolerations::RULE,
    priority::RULE,
    visibility::RULE,
];

/// Codes the engine reports itself, outside any rule.
pub const ENGINE_CODES: &[&str] = &["FIELD_INVALID", "NAMESPACE_MISMATCH", "OBJECT_INVALID"];

/// Every code the engine can report: the rules' and its own, sorted and deduplicated.
pub fn all_codes() -> Vec<&'static str> {
    let mut codes: Vec<&'static str> = RULES.iter().flat_map(|r| r.codes.iter().copied()).collect();
    codes.extend(ENGINE_CODES);
    codes.sort_unstable();
    codes.dedup();
    codes
}

/// Runs the table over one pod spec.
pub(super) fn run(subject: &Subject<'_>) -> Findings {
    let mut findings = Findings::default();
    let rules = &subject.policy.spec().rules;
    for rule in RULES {
        if rule.gpu_only && !subject.gpu.is_gpu_workload() {
            continue;
        }
        let spec = (rule.spec)(rules);
        if !spec.enabled() || spec.exempt_namespaces().iter().any(|n| n == subject.namespace) {
            continue;
        }
        let (violations, fixes) = (findings.violations.len(), findings.fixes.len());
        (rule.check)(subject, spec.action(), &mut findings);
        // Every finding carries its rule's name and one of the codes the rule declares (the
        // README table is checked against those).
        let new = findings.violations[violations..]
            .iter()
            .map(|v| (v.rule, v.code))
            .chain(findings.fixes[fixes..].iter().map(|f| (f.rule, f.code)));
        for (name, code) in new {
            debug_assert!(
                name == rule.name && rule.codes.contains(&code),
                "rule `{}` reported `{code}` as `{name}`",
                rule.name
            );
        }
    }
    findings
}

/// The pod spec under evaluation, and where it sits in the object.
pub struct Subject<'a> {
    pub effective: &'a Effective,
    pub policy: &'a Policy,
    pub spec: &'a Map<String, Value>,
    pub namespace: &'a str,
    pub is_pod: bool,
    /// Segments from the object root to the pod spec (`["spec", "template", "spec"]`).
    pub segments: &'static [&'static str],
    pub gpu: gpu::Usage,
}

// === impl Subject ===

impl<'a> Subject<'a> {
    pub(crate) fn new(
        effective: &'a Effective,
        spec: &'a Map<String, Value>,
        namespace: &'a str,
        workload: &Workload<'a>,
    ) -> Self {
        let mut subject = Self {
            effective,
            policy: effective.policy(),
            spec,
            namespace,
            is_pod: workload.is_pod(),
            segments: workload.info.spec_segments,
            gpu: gpu::Usage::default(),
        };
        subject.gpu = gpu::Usage::of(&subject);
        subject
    }

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

    /// A second action of a rule in this namespace, or `None` when it is off or exempted here.
    pub fn active(&self, action: Action, exempt: &[String]) -> Option<Action> {
        (action != Action::Off && !exempt.iter().any(|n| n == self.namespace)).then_some(action)
    }
}

/// What the rules found.
#[derive(Debug, Default)]
pub struct Findings {
    pub violations: Vec<Violation>,
    pub fixes: Vec<Fix>,
}

// === impl Findings ===

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
