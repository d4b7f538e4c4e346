//! The GPU nodes a pod can land on: the scheduler's filter over the cluster's GPU nodes, with
//! the nodeSelector and toleration this webhook adds to the pod applied first.

use serde_json::{Value, json};

use super::Subject;
use crate::cluster::{ClusterFacts, GpuNode};
use crate::decision::Action;
use crate::k8s::scheduling::{self, Mismatch};

/// Most nodes named in one message; the rest are counted.
pub const MAX_NODES_NAMED: usize = 3;

/// Every GPU node, with whether the pod can land on it (and why not).
pub fn judge<'f>(subject: &Subject<'_>, facts: &'f ClusterFacts) -> Vec<(&'f GpuNode, Result<(), Mismatch>)> {
    let rules = &subject.policy.spec().rules;
    let on = |action: Action, exempt: &[String]| subject.active(action, exempt).is_some();
    let gpu = subject.gpu.is_gpu_workload();
    let selector = &rules.placement.node_selector;
    let extra_selector: Vec<(&str, &str)> = if gpu && on(rules.placement.action, &rules.placement.exempt_namespaces) {
        vec![(selector.key.as_str(), selector.value.as_str())]
    } else {
        Vec::new()
    };
    let taint = &rules.tolerations.taint;
    let extra_tolerations: Vec<Value> = if gpu && on(rules.tolerations.action, &rules.tolerations.exempt_namespaces) {
        vec![json!({"key": taint.key, "operator": "Exists", "effect": taint.effect})]
    } else {
        Vec::new()
    };
    facts
        .gpu_nodes
        .iter()
        .map(|node| {
            let verdict = scheduling::filter(
                subject.spec,
                ClusterFacts::view(node),
                &extra_selector,
                &extra_tolerations,
            );
            (node, verdict)
        })
        .collect()
}

/// `a: why; b: why; c: why and N more`.
pub fn list(items: &[String]) -> String {
    let mut out = items
        .iter()
        .take(MAX_NODES_NAMED)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if items.len() > MAX_NODES_NAMED {
        out.push_str(&format!(" and {} more", items.len() - MAX_NODES_NAMED));
    }
    out
}
