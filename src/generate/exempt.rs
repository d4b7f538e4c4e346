//! Who is not sent to gpu-admission at all: the policy's exempt namespaces, each rule's own, and
//! namespaces labelled `gpu-admission.io/ignore=true`. One selector for the webhooks and the
//! native policies alike.

use serde_yaml_ng::Value;

use super::yaml::{list, map, s, strs};
use crate::engine::rules::RULES;
use crate::policy::Policy;

/// The namespace label that opts a namespace out of every rule, webhook and native policy.
/// Whoever may label namespaces (`patch` on `namespaces`) can give a namespace this exemption.
const IGNORE_LABEL: &str = "gpu-admission.io/ignore";

/// The label every namespace carries with its own name (set by kube-apiserver, immutable).
const NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// What, in a pod spec, makes a rule look at the pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A vendor resource in a container, or a DRA claim: a GPU workload (or an unknown vendor
    /// resource).
    GpuAsk,
    /// Tolerations, a node selector, affinity or node name that may put it on a GPU node.
    Lands,
    /// A hostPath volume.
    HostPath,
}

/// One rule of the engine's table, as the generators see it.
#[derive(Debug)]
pub struct RuleSend {
    pub rule: &'static str,
    /// What in a pod makes the rule report anything.
    pub triggers: &'static [Trigger],
    /// Whether the rule patches Pods (so the mutating webhook needs it).
    pub mutates: bool,
}

/// Every rule of [`RULES`] (a test checks that none is missing).
const SENDS: &[RuleSend] = &[
    RuleSend {
        rule: "slices",
        triggers: &[Trigger::GpuAsk],
        mutates: false,
    },
    RuleSend {
        rule: "hostPath",
        triggers: &[Trigger::HostPath],
        mutates: false,
    },
    RuleSend {
        rule: "placement",
        triggers: &[Trigger::GpuAsk],
        mutates: true,
    },
    RuleSend {
        rule: "tolerations",
        triggers: &[Trigger::GpuAsk],
        mutates: true,
    },
    RuleSend {
        rule: "priority",
        triggers: &[Trigger::GpuAsk],
        mutates: true,
    },
    RuleSend {
        rule: "visibility",
        triggers: &[Trigger::GpuAsk, Trigger::Lands],
        mutates: true,
    },
];

/// A rule that is on, with the namespaces it skips.
pub struct Active {
    pub send: &'static RuleSend,
    pub exempt: Vec<String>,
}

/// The rules that are on in the policy (all of them, or only those that patch Pods).
pub fn active(policy: &Policy, mutating_only: bool) -> Vec<Active> {
    let rules = &policy.spec().rules;
    let mut out = Vec::new();
    for rule in RULES {
        let spec = (rule.spec)(rules);
        let Some(send) = SENDS.iter().find(|s| s.rule == rule.name) else {
            continue;
        };
        if !spec.enabled() || (mutating_only && !send.mutates) {
            continue;
        }
        out.push(Active {
            send,
            exempt: spec.exempt_namespaces().to_vec(),
        });
    }
    out
}

/// The policy's exempt namespaces, then each of `extra` not already there.
pub fn union(policy: &Policy, extra: &[String]) -> Vec<String> {
    let mut out = policy.spec().exempt_namespaces.clone();
    for ns in extra {
        if !out.contains(ns) {
            out.push(ns.clone());
        }
    }
    out
}

/// The namespaces every one of `rules` skips (none when `rules` is empty).
pub fn common<'a>(rules: impl IntoIterator<Item = &'a Active>) -> Vec<String> {
    let mut iter = rules.into_iter();
    let Some(first) = iter.next() else {
        return Vec::new();
    };
    let mut out = first.exempt.clone();
    for rule in iter {
        out.retain(|ns| rule.exempt.contains(ns));
    }
    out
}

/// Namespaces not named in `exempt` and not labelled `gpu-admission.io/ignore=true`.
pub fn namespace_selector(exempt: &[String]) -> Value {
    let mut exprs = Vec::new();
    if !exempt.is_empty() {
        exprs.push(map([
            ("key", s(NAME_LABEL)),
            ("operator", s("NotIn")),
            ("values", strs(exempt)),
        ]));
    }
    exprs.push(map([
        ("key", s(IGNORE_LABEL)),
        ("operator", s("NotIn")),
        ("values", strs(["true"])),
    ]));
    map([("matchExpressions", list(exprs))])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_engine_rule_says_what_sends_a_pod_to_it() {
        for rule in RULES {
            assert!(
                SENDS.iter().any(|s| s.rule == rule.name),
                "rule `{}` has no entry in generate::exempt::SENDS",
                rule.name
            );
        }
        assert_eq!(SENDS.len(), RULES.len(), "SENDS names a rule the engine does not have");
    }

    #[test]
    fn a_namespace_is_left_out_only_when_every_rule_skips_it() {
        let policy = Policy::embedded_default().unwrap();
        let all = active(&policy, false);
        assert_eq!(all.len(), 6);
        // hostPath and visibility skip monitoring, the GPU rules do not.
        assert!(common(&all).is_empty());
        let skip_monitoring: Vec<&Active> = all.iter().filter(|a| !a.exempt.is_empty()).collect();
        assert_eq!(common(skip_monitoring), ["monitoring"]);
        assert_eq!(
            union(&policy, &["monitoring".into(), "kube-system".into()]),
            ["kube-system", "gpu-operator", "gpu-admission", "monitoring"]
        );
    }
}
