//! The generated webhook configurations: what `deploy/` holds, and how the policy narrows them.

use serde_yaml_ng::Value;

use super::webhooks::{Service, configurations};
use super::webhooks_yaml;
use crate::policy::Policy;

fn policy(yaml: &str) -> Policy {
    Policy::from_yaml_str(yaml, "test").unwrap()
}

fn names(cfg: &Value) -> Vec<&str> {
    cfg["webhooks"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect()
}

fn selector_names(w: &Value) -> Vec<&str> {
    let exprs = w["namespaceSelector"]["matchExpressions"].as_sequence().unwrap();
    exprs
        .iter()
        .filter(|e| e["key"] == "kubernetes.io/metadata.name")
        .flat_map(|e| e["values"].as_sequence().unwrap().iter().map(|v| v.as_str().unwrap()))
        .collect()
}

fn condition(w: &Value) -> String {
    let conds = w["matchConditions"].as_sequence().unwrap();
    conds.last().unwrap()["expression"].as_str().unwrap().to_string()
}

#[test]
fn deploy_webhooks_is_what_the_default_policy_generates() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/webhooks/webhooks.yaml");
    let on_disk = std::fs::read_to_string(path).unwrap();
    let generated = webhooks_yaml(&Policy::embedded_default().unwrap(), &Service::default()).unwrap();
    assert!(
        on_disk == generated,
        "deploy/webhooks/webhooks.yaml differs from the generated configurations: run\n  cargo run -- generate deploy"
    );
}

#[test]
fn every_generated_deploy_file_is_what_the_default_policy_generates() {
    let files = super::deploy_files(&Policy::embedded_default().unwrap()).unwrap();
    assert_eq!(files.len(), 5);
    let mut stale = Vec::new();
    for (name, generated) in files {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(&name);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(generated.as_str()) {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "{stale:?} differ from what the default policy generates: run\n  cargo run -- generate deploy"
    );
}

#[test]
fn hybrid_sends_only_what_needs_nodes_and_claims() {
    let patch = super::webhooks::hybrid_patch(&Policy::embedded_default().unwrap());
    let ops = patch.as_sequence().unwrap();
    assert_eq!(ops.len(), 3);
    for (i, op) in ops.iter().enumerate() {
        assert_eq!(op["path"], format!("/webhooks/{i}/matchConditions").as_str());
        let text = op["value"].as_sequence().unwrap().last().unwrap()["expression"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            text.contains("resourceClaims") && text.contains("nvidia.com/"),
            "{text}"
        );
        assert!(!text.contains("hostPath") && !text.contains("tolerations"), "{text}");
    }
}

#[test]
fn every_webhook_leaves_out_the_exempt_and_the_ignored_namespaces() {
    let [m, v] = configurations(&Policy::embedded_default().unwrap(), &Service::default());
    assert_eq!(names(&m), ["pods.mutate.gpu-admission.io"]);
    assert_eq!(
        names(&v),
        [
            "pods.validate.gpu-admission.io",
            "workloads.validate.gpu-admission.io",
            "cronjobs.validate.gpu-admission.io"
        ]
    );
    for w in m["webhooks"]
        .as_sequence()
        .unwrap()
        .iter()
        .chain(v["webhooks"].as_sequence().unwrap())
    {
        assert_eq!(selector_names(w), ["kube-system", "gpu-operator", "gpu-admission"]);
        let ignore = &w["namespaceSelector"]["matchExpressions"][1];
        assert_eq!(ignore["key"], "gpu-admission.io/ignore");
        assert_eq!(ignore["operator"], "NotIn");
        assert_eq!(ignore["values"][0], "true");
    }
    assert_eq!(m["webhooks"][0]["failurePolicy"], "Ignore");
    assert_eq!(m["webhooks"][0]["timeoutSeconds"], 5);
    assert_eq!(v["webhooks"][0]["failurePolicy"], "Fail");
}

#[test]
fn a_rule_exemption_narrows_its_clause_and_a_shared_one_the_selector() {
    // Default: monitoring skips hostPath and visibility only, so in monitoring only GPU pods
    // are sent.
    let [m, v] = configurations(&Policy::embedded_default().unwrap(), &Service::default());
    let pods = condition(&v["webhooks"][0]);
    let guarded: Vec<&str> = pods
        .split("(!(request.namespace in ['monitoring']) &&")
        .skip(1)
        .map(|rest| rest.trim_start().lines().next().unwrap_or(""))
        .collect();
    assert_eq!(guarded.len(), 2, "{pods}");
    assert!(guarded[0].contains("has(object.spec.volumes)"), "{pods}");
    assert!(guarded[1].contains("has(object.spec.tolerations)"), "{pods}");
    assert!(pods.contains("startsWith('nvidia.com/')"), "{pods}");
    // The mutating webhook has no hostPath clause.
    assert!(!condition(&m["webhooks"][0]).contains("hostPath"));

    // Every rule skips `batch`: left out by the selector, and no clause names it.
    let p = policy(
        "apiVersion: gpu-admission.io/v1alpha1\nkind: Policy\nrules:\n  placement: {exemptNamespaces: [batch]}\n  tolerations: {exemptNamespaces: [batch]}\n  priority: {exemptNamespaces: [batch]}\n  slices: {exemptNamespaces: [batch]}\n  hostPath: {exemptNamespaces: [batch]}\n  visibility: {exemptNamespaces: [batch]}\n",
    );
    let [_, v] = configurations(&p, &Service::default());
    let w = &v["webhooks"][0];
    assert_eq!(
        selector_names(w),
        ["kube-system", "gpu-operator", "gpu-admission", "batch"]
    );
    assert!(!condition(w).contains("request.namespace"), "{}", condition(w));
}

#[test]
fn rules_that_are_off_send_nothing() {
    let p = policy(
        "apiVersion: gpu-admission.io/v1alpha1\nkind: Policy\nrules:\n  hostPath: {action: off}\n  visibility: {action: off, privilegedAction: off}\n",
    );
    let [m, v] = configurations(&p, &Service::default());
    let pods = condition(&v["webhooks"][0]);
    assert!(!pods.contains("hostPath") && !pods.contains("tolerations"), "{pods}");
    assert!(pods.contains("resourceClaims"), "{pods}");
    // Only GPU rules patch now; nothing at all is on: the condition is `false`.
    assert!(condition(&m["webhooks"][0]).contains("nvidia.com/"));
    let none = policy(
        "apiVersion: gpu-admission.io/v1alpha1\nkind: Policy\nrules:\n  placement: {action: off}\n  tolerations: {action: off}\n  priority: {action: off}\n  slices: {action: off, unknownResourceAction: off, noNodeMatchesAction: off}\n  hostPath: {action: off}\n  visibility: {action: off, privilegedAction: off}\n",
    );
    let [m, _] = configurations(&none, &Service::default());
    assert_eq!(condition(&m["webhooks"][0]), "false");
}

#[test]
fn templates_are_sent_to_the_mutating_webhook_only_when_the_policy_patches_them() {
    let p = policy("apiVersion: gpu-admission.io/v1alpha1\nkind: Policy\nmutateTemplates: true\n");
    let [m, _] = configurations(&p, &Service::default());
    assert_eq!(
        names(&m),
        [
            "pods.mutate.gpu-admission.io",
            "workloads.mutate.gpu-admission.io",
            "cronjobs.mutate.gpu-admission.io"
        ]
    );
    let cron = &m["webhooks"][2];
    assert_eq!(cron["matchConditions"][0]["name"], "template-changed");
    assert!(condition(cron).contains("object.spec.jobTemplate.spec.template.spec.containers"));
    assert_eq!(cron["rules"][0]["resources"][0], "cronjobs");
}
