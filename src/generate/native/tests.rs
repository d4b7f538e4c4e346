//! Native mode: every engine code is expressed or listed, and the objects are what the
//! bindings and the API expect.

use std::collections::BTreeSet;

use super::validate::{families, template_fixes};
use super::{NOT_EXPRESSED, generate};
use crate::engine::{Effective, all_codes};
use crate::policy::Policy;

fn everything_on() -> Policy {
    Policy::from_yaml_str(
        "apiVersion: gpu-admission.io/v1alpha1\nkind: Policy\nrules:\n  hostPath:\n    allowed:\n      - {path: /dev/bus/usb, namespaces: [ai], imagePattern: 'coral/.*'}\n",
        "test",
    )
    .unwrap()
}

#[test]
fn every_engine_code_is_expressed_natively_or_listed_with_its_reason() {
    let policy = everything_on();
    let mut expressed = BTreeSet::new();
    for f in families(&policy).into_iter().chain([template_fixes(&policy)]) {
        for c in f.checks {
            assert!(c.message.starts_with(&format!("'[{}] '", c.code)), "{}", c.message);
            expressed.insert(c.code);
        }
    }
    let listed: BTreeSet<&str> = NOT_EXPRESSED.iter().map(|(c, _)| *c).collect();
    assert!(expressed.is_disjoint(&listed), "{:?}", expressed.intersection(&listed));
    let all: BTreeSet<&str> = all_codes().into_iter().collect();
    let covered: BTreeSet<&str> = expressed.union(&listed).copied().collect();
    assert_eq!(covered, all, "codes neither expressed nor listed, or not the engine's");
}

#[test]
fn bindings_follow_each_rule_action() {
    let warn = Policy::from_yaml_str(
        "apiVersion: gpu-admission.io/v1alpha1\nkind: Policy\nrules:\n  placement: {action: warn}\n  tolerations: {action: off}\n",
        "test",
    )
    .unwrap();
    let native = generate(&Effective::new(warn));
    let action_of = |name: &str| {
        native
            .validating
            .iter()
            .find(|d| d["kind"] == "ValidatingAdmissionPolicyBinding" && d["metadata"]["name"] == name)
            .map(|d| d["spec"]["validationActions"][0].as_str().unwrap().to_string())
    };
    assert_eq!(action_of("gpu-admission-placement").as_deref(), Some("Warn"));
    assert_eq!(action_of("gpu-admission-host-path").as_deref(), Some("Deny"));
    assert_eq!(
        action_of("gpu-admission-slices-unknown-resource").as_deref(),
        Some("Warn")
    );
    assert_eq!(action_of("gpu-admission-tolerations"), None);
    assert_eq!(action_of("gpu-admission-template-fixes").as_deref(), Some("Warn"));
    // The mutating policy: JSON patches, reinvoked if needed, the same exemptions as the webhook.
    let m = &native.mutating[0];
    assert_eq!(m["spec"]["reinvocationPolicy"], "IfNeeded");
    for mutation in m["spec"]["mutations"].as_sequence().unwrap() {
        assert_eq!(mutation["patchType"], "JSONPatch");
    }
    let expr = &m["spec"]["matchConstraints"]["namespaceSelector"]["matchExpressions"];
    assert_eq!(expr[1]["key"], "gpu-admission.io/ignore");
}

#[test]
fn a_rule_exemption_is_its_policy_namespace_selector() {
    let native = generate(&Effective::new(Policy::embedded_default().unwrap()));
    let selector = |name: &str| {
        let vap = native
            .validating
            .iter()
            .find(|d| d["kind"] == "ValidatingAdmissionPolicy" && d["metadata"]["name"] == name)
            .unwrap();
        let values = &vap["spec"]["matchConstraints"]["namespaceSelector"]["matchExpressions"][0]["values"];
        values
            .as_sequence()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        selector("gpu-admission-placement"),
        ["kube-system", "gpu-operator", "gpu-admission"]
    );
    assert_eq!(
        selector("gpu-admission-host-path"),
        ["kube-system", "gpu-operator", "gpu-admission", "monitoring"]
    );
}
