//! The params ConfigMap of the native policies: what CEL cannot compute, computed here from the
//! policy and (with `--cluster-state`, or `serve --native-params`) the cluster's facts, with the
//! engine's own functions.
//!
//! ConfigMap data holds strings only: lists are comma-separated, numbers decimal, and keys that
//! would hold a resource name hold it with `/` written `_` (`perContainer.nvidia.com_gpu`).

use std::collections::BTreeMap;

use crate::engine::Effective;
use crate::engine::rules::slices::limits_from_policy;

/// Name and namespace of the ConfigMap every binding's `paramRef` names.
pub const NAME: &str = "gpu-admission-native-params";
pub const NAMESPACE: &str = "gpu-admission";

/// `nvidia.com/gpu` → `nvidia.com_gpu` (ConfigMap keys allow `[-._a-zA-Z0-9]`).
fn key_of(resource: &str) -> String {
    resource.replace('/', "_")
}

/// The ConfigMap's `data`, from the policy and the facts the engine would use.
///
/// `perContainer.*` and `perPod.*` are cluster-wide bounds (the most any GPU node allows): the
/// webhook decides per candidate node, the native policies cannot read Nodes.
pub fn data(effective: &Effective) -> BTreeMap<String, String> {
    let policy = effective.policy();
    let spec = policy.spec();
    let facts = effective.cluster();
    let mut out = BTreeMap::new();
    let mut put = |k: String, v: String| {
        out.insert(k, v);
    };
    let join = |items: &[String]| items.join(",");

    let mut gpu: Vec<String> = policy.gpu_resource_names().into();
    let mut offered: Vec<(String, u64, u64)> = Vec::new();
    match facts {
        None => {
            let limits = limits_from_policy(policy);
            offered.push((policy.shared_resource_name(), limits.per_container, limits.per_pod));
        }
        Some(facts) => {
            for name in &facts.offered {
                if !gpu.contains(name) {
                    gpu.push(name.clone());
                }
            }
            for name in &gpu {
                if let Some(limits) = facts.limits(name) {
                    offered.push((name.clone(), limits.per_container, limits.per_pod));
                }
            }
        }
    }
    put("gpuResources".into(), join(&gpu));
    let offered_names: Vec<String> = offered.iter().map(|(n, _, _)| n.clone()).collect();
    put("offeredResources".into(), join(&offered_names));
    for (name, per_container, per_pod) in &offered {
        put(format!("perContainer.{}", key_of(name)), per_container.to_string());
        put(format!("perPod.{}", key_of(name)), per_pod.to_string());
    }
    let nodes: Vec<String> = facts
        .map(|f| f.gpu_nodes.iter().map(|n| n.name.clone()).collect())
        .unwrap_or_default();
    put("gpuNodes".into(), join(&nodes));

    let priority = &spec.rules.priority;
    put("allowedClasses".into(), join(&priority.allowed));
    put("defaultClass".into(), priority.default_class.clone());
    for (ns, class) in &priority.namespace_defaults {
        put(format!("defaultClass.{ns}"), class.clone());
    }
    let mut candidates: Vec<String> = priority.classes.iter().map(|c| c.name.clone()).collect();
    if let Some(f) = facts.filter(|f| f.synced) {
        candidates = f.priority_classes.keys().cloned().collect();
    }
    let mut known = Vec::new();
    for name in candidates {
        if let Some(class) = effective.resolve_priority_class(&name) {
            put(format!("classValue.{name}"), class.value.to_string());
            put(format!("classPreemption.{name}"), class.preemption_policy.clone());
            known.push(name);
        }
    }
    put("knownClasses".into(), join(&known));

    for (i, allow) in policy.host_path_allowed().iter().enumerate() {
        let mut namespaces: Vec<String> = allow.namespaces.iter().cloned().collect();
        if let (Some(label), Some(f)) = (&allow.namespace_label, facts) {
            for ns in f.namespaces.keys() {
                if f.namespace_has_label(ns, &label.key, &label.value) && !namespaces.contains(ns) {
                    namespaces.push(ns.clone());
                }
            }
        }
        put(format!("hostPathNamespaces.{i}"), join(&namespaces));
    }
    put("exemptNamespaces".into(), join(&spec.exempt_namespaces));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;

    #[test]
    fn the_default_policy_without_facts() {
        let d = data(&Effective::new(Policy::embedded_default().unwrap()));
        assert_eq!(d["gpuResources"], "nvidia.com/gpu,nvidia.com/gpu.shared");
        assert_eq!(d["offeredResources"], "nvidia.com/gpu");
        assert_eq!(d["perContainer.nvidia.com_gpu"], "4");
        assert_eq!(d["perPod.nvidia.com_gpu"], "8");
        assert_eq!(d["gpuNodes"], "");
        assert_eq!(d["defaultClass.ai"], "high-priority");
        assert_eq!(d["classValue.medium-priority"], "100000");
        assert_eq!(d["classPreemption.high-priority"], "PreemptLowerPriority");
        assert_eq!(d["knownClasses"], "high-priority,medium-priority");
        assert_eq!(d["hostPathNamespaces.0"], "ai");
        for k in d.keys() {
            assert!(
                k.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c)),
                "not a ConfigMap key: {k}"
            );
        }
    }
}
