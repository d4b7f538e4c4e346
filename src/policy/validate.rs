//! Validation of a parsed policy file: every error names its field path.

use std::collections::BTreeSet;

use super::file;

/// A field of the policy file that is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FieldError {
    pub path: String,
    pub message: String,
}

impl FieldError {
    fn at(path: String, message: String) -> Self {
        Self { path, message }
    }
}

pub(super) fn gpu(gpu: &file::GpuSpec) -> Result<(), FieldError> {
    if !is_resource_name(&gpu.resource_name) {
        return Err(FieldError::at(
            "gpu.resourceName".into(),
            format!("`{}` is not a resource name like `nvidia.com/gpu`", gpu.resource_name),
        ));
    }
    if gpu.gpus_per_node == 0 {
        return Err(FieldError::at("gpu.gpusPerNode".into(), "must be at least 1".into()));
    }
    if gpu.time_slicing.replicas == 0 {
        return Err(FieldError::at(
            "gpu.timeSlicing.replicas".into(),
            "must be at least 1 (1 means no time-slicing)".into(),
        ));
    }
    for (i, p) in gpu.vendor_prefixes.iter().enumerate() {
        if p.is_empty() || !p.ends_with('/') {
            return Err(FieldError::at(
                format!("gpu.vendorPrefixes[{i}]"),
                format!("`{p}` must be a domain ending in `/`, like `nvidia.com/`"),
            ));
        }
    }
    Ok(())
}

pub(super) fn rules(rules: &file::RulesSpec) -> Result<(), FieldError> {
    let sel = &rules.placement.node_selector;
    if sel.key.is_empty() {
        return Err(FieldError::at(
            "rules.placement.nodeSelector.key".into(),
            "must not be empty".into(),
        ));
    }
    let taint = &rules.tolerations.taint;
    if taint.key.is_empty() {
        return Err(FieldError::at(
            "rules.tolerations.taint.key".into(),
            "must not be empty".into(),
        ));
    }
    if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&taint.effect.as_str()) {
        return Err(FieldError::at(
            "rules.tolerations.taint.effect".into(),
            format!(
                "`{}` is not one of NoSchedule, PreferNoSchedule, NoExecute",
                taint.effect
            ),
        ));
    }
    priority(&rules.priority)?;
    for (i, allow) in rules.host_path.allowed.iter().enumerate() {
        let path = format!("rules.hostPath.allowed[{i}].path");
        match crate::k8s::host_path::normalize(&allow.path) {
            None => {
                return Err(FieldError::at(
                    path,
                    format!("`{}` must be an absolute path", allow.path),
                ));
            }
            Some(n) if n == "/" => {
                return Err(FieldError::at(path, "`/` would allow the whole host filesystem".into()));
            }
            Some(n) if n != allow.path => {
                return Err(FieldError::at(
                    path,
                    format!("`{}` is not normalised: write `{n}`", allow.path),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn priority(p: &file::PrioritySpec) -> Result<(), FieldError> {
    let mut names = BTreeSet::new();
    for (i, class) in p.classes.iter().enumerate() {
        if !names.insert(class.name.as_str()) {
            return Err(FieldError::at(
                format!("rules.priority.classes[{i}].name"),
                format!("`{}` is listed twice", class.name),
            ));
        }
        if !["PreemptLowerPriority", "Never"].contains(&class.preemption_policy.as_str()) {
            return Err(FieldError::at(
                format!("rules.priority.classes[{i}].preemptionPolicy"),
                format!(
                    "`{}` is not one of PreemptLowerPriority, Never",
                    class.preemption_policy
                ),
            ));
        }
        if class.value > 1_000_000_000 {
            return Err(FieldError::at(
                format!("rules.priority.classes[{i}].value"),
                "user-defined PriorityClasses may not exceed 1000000000".into(),
            ));
        }
    }
    for (i, name) in p.allowed.iter().enumerate() {
        if !names.contains(name.as_str()) {
            return Err(FieldError::at(
                format!("rules.priority.allowed[{i}]"),
                format!("`{name}` is not in rules.priority.classes"),
            ));
        }
    }
    let allowed = |n: &str| p.allowed.iter().any(|a| a == n);
    if !allowed(&p.default_class) {
        return Err(FieldError::at(
            "rules.priority.defaultClass".into(),
            format!("`{}` is not in rules.priority.allowed", p.default_class),
        ));
    }
    for (ns, class) in &p.namespace_defaults {
        if !allowed(class) {
            return Err(FieldError::at(
                format!("rules.priority.namespaceDefaults.{ns}"),
                format!("`{class}` is not in rules.priority.allowed"),
            ));
        }
    }
    Ok(())
}

/// `prefix/name` or `name`, as Kubernetes resource names are written.
fn is_resource_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/'))
        && s.matches('/').count() <= 1
        && !s.starts_with('/')
        && !s.ends_with('/')
}
