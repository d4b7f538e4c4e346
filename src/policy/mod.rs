//! The policy: the YAML file (see [`file`]) validated and compiled once, at load time.
//!
//! Regexes are compiled here, never on the request path. A [`Policy`] is immutable; reloading
//! builds a new one and swaps it in.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use regex::Regex;

pub mod file;
pub mod time_slicing;

pub use file::PolicySpec;

/// The policy compiled into the embedded binary (`policies/default.yaml`): the seed's cluster.
pub const DEFAULT_POLICY_YAML: &str = include_str!("../../policies/default.yaml");

/// A policy that failed to load: where (file, field path) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// The file (or `<embedded default>`).
    pub origin: String,
    /// Field path inside the document, e.g. `rules.hostPath.allowed[0].path` (may be empty).
    pub path: String,
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {}", self.origin, self.message)
        } else {
            write!(f, "{}: field `{}`: {}", self.origin, self.path, self.message)
        }
    }
}

impl std::error::Error for PolicyError {}

/// An allowed host path, compiled.
#[derive(Debug, Clone)]
pub struct HostPathAllow {
    pub path: String,
    pub namespaces: BTreeSet<String>,
    pub image_pattern: Option<Regex>,
    pub namespace_label: Option<file::KeyValue>,
}

/// A priority class as the engine applies it (from the policy, or from the cluster).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedClass {
    pub name: String,
    pub value: i32,
    pub preemption_policy: String,
}

/// A validated, compiled policy.
#[derive(Debug, Clone)]
pub struct Policy {
    spec: PolicySpec,
    origin: String,
    host_path_allowed: Vec<HostPathAllow>,
    cluster: Option<Arc<ClusterFacts>>,
}

use crate::cluster::ClusterFacts;

// === impl Policy ===

impl Policy {
    /// The embedded default policy.
    pub fn embedded_default() -> Result<Self, PolicyError> {
        Self::from_yaml_str(DEFAULT_POLICY_YAML, "<embedded default>")
    }

    /// Reads and validates a policy file.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let (text, origin) = read_file(path)?;
        Self::from_yaml_str(&text, &origin)
    }

    /// The policy `serve`, `check` and `review` use: `policy` (or the embedded default), with
    /// time-slicing from the device-plugin config file on top when one is given.
    pub fn load_files(policy: Option<&Path>, time_slicing: Option<&Path>) -> Result<Self, PolicyError> {
        let base = match policy {
            Some(path) => Self::load(path)?,
            None => Self::embedded_default()?,
        };
        match time_slicing {
            None => Ok(base),
            Some(path) => base.with_time_slicing(&time_slicing::TimeSlicing::load(path)?),
        }
    }

    /// Parses and validates a policy document. `origin` names it in errors.
    pub fn from_yaml_str(text: &str, origin: &str) -> Result<Self, PolicyError> {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        let spec: PolicySpec = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            // serde_yaml_ng prefixes some messages with the path or its parent: say it once.
            let message = e.into_inner().to_string();
            let message = match message.split_once(": ") {
                Some((head, rest)) if !head.is_empty() && path.starts_with(head) => rest.to_string(),
                _ => message,
            };
            PolicyError {
                origin: origin.to_string(),
                path,
                message,
            }
        })?;
        Self::from_spec(spec, origin)
    }

    /// Validates a spec and compiles what it needs.
    pub fn from_spec(spec: PolicySpec, origin: &str) -> Result<Self, PolicyError> {
        let err = |path: &str, message: String| PolicyError {
            origin: origin.to_string(),
            path: path.to_string(),
            message,
        };
        if spec.api_version != file::API_VERSION {
            return Err(err(
                "apiVersion",
                format!("must be `{}`, found `{}`", file::API_VERSION, spec.api_version),
            ));
        }
        if spec.kind != file::KIND {
            return Err(err("kind", format!("must be `{}`, found `{}`", file::KIND, spec.kind)));
        }
        validate_gpu(&spec.gpu).map_err(|(p, m)| err(&p, m))?;
        validate_rules(&spec.rules).map_err(|(p, m)| err(&p, m))?;
        let mut host_path_allowed = Vec::new();
        for (i, allow) in spec.rules.host_path.allowed.iter().enumerate() {
            let path = format!("rules.hostPath.allowed[{i}]");
            let image_pattern = match &allow.image_pattern {
                None => None,
                Some(p) => Some(
                    Regex::new(&format!("^(?:{p})$"))
                        .map_err(|e| err(&format!("{path}.imagePattern"), format!("not a valid regex: {e}")))?,
                ),
            };
            host_path_allowed.push(HostPathAllow {
                path: allow.path.clone(),
                namespaces: allow.namespaces.iter().cloned().collect(),
                image_pattern,
                namespace_label: allow.namespace_label.clone(),
            });
        }
        Ok(Self {
            spec,
            origin: origin.to_string(),
            host_path_allowed,
            cluster: None,
        })
    }

    pub fn spec(&self) -> &PolicySpec {
        &self.spec
    }

    /// Where the policy came from (a file path or `<embedded default>`).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn host_path_allowed(&self) -> &[HostPathAllow] {
        &self.host_path_allowed
    }

    /// The same policy with time-slicing taken from the device-plugin config.
    pub fn with_time_slicing(&self, ts: &time_slicing::TimeSlicing) -> Result<Self, PolicyError> {
        let mut spec = self.spec.clone();
        if ts.resource_name != spec.gpu.resource_name {
            return Err(PolicyError {
                origin: ts.origin.clone(),
                path: ts.field.clone(),
                message: format!(
                    "time-slicing is configured for `{}` but the policy's gpu.resourceName is `{}`",
                    ts.resource_name, spec.gpu.resource_name
                ),
            });
        }
        spec.gpu.time_slicing = ts.spec.clone();
        let origin = format!("{} + time-slicing from {}", self.origin, ts.origin);
        let mut policy = Self::from_spec(spec, &origin)?;
        policy.cluster = self.cluster.clone();
        Ok(policy)
    }

    /// The same policy deciding with cluster facts (cheap: the compiled parts are shared).
    pub fn with_cluster(&self, facts: Arc<ClusterFacts>) -> Self {
        Self {
            cluster: Some(facts),
            ..self.clone()
        }
    }

    /// Cluster facts the engine should use, if any. Facts that never synced are used only when
    /// `cluster.unsyncedAction` is `deny` (to deny); with `fallback` the file's numbers apply.
    pub fn cluster(&self) -> Option<&ClusterFacts> {
        let facts = self.cluster.as_deref()?;
        (facts.synced || self.spec.cluster.unsynced_action == file::UnsyncedAction::Deny).then_some(facts)
    }

    /// A priority class by name: from the cluster when it has synced facts, else from the policy.
    pub fn resolve_priority_class(&self, name: &str) -> Option<ResolvedClass> {
        if let Some(facts) = self.cluster().filter(|f| f.synced) {
            let fact = facts.priority_classes.get(name)?;
            return Some(ResolvedClass {
                name: name.to_string(),
                value: fact.value,
                preemption_policy: fact.preemption_policy.clone(),
            });
        }
        self.priority_class(name).map(|c| ResolvedClass {
            name: c.name.clone(),
            value: c.value,
            preemption_policy: c.preemption_policy.clone(),
        })
    }

    /// The effective policy as YAML (every default spelled out).
    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(&self.spec).unwrap_or_else(|e| format!("# cannot render policy: {e}\n"))
    }

    /// Whether no rule at all applies in `namespace`.
    pub fn namespace_exempt(&self, namespace: &str) -> bool {
        self.spec.exempt_namespaces.iter().any(|n| n == namespace)
    }

    /// The resource name pods ask for to get a time-sliced GPU.
    pub fn shared_resource_name(&self) -> String {
        let gpu = &self.spec.gpu;
        if gpu.time_slicing.rename_by_default && gpu.time_slicing.replicas > 1 {
            format!("{}.shared", gpu.resource_name)
        } else {
            gpu.resource_name.clone()
        }
    }

    /// Every resource name that makes a container a GPU workload.
    pub fn gpu_resource_names(&self) -> [String; 2] {
        let base = self.spec.gpu.resource_name.clone();
        let shared = format!("{base}.shared");
        [base, shared]
    }

    /// The priority class a GPU workload in `namespace` gets when it has none.
    pub fn default_priority_class(&self, namespace: &str) -> &str {
        let p = &self.spec.rules.priority;
        p.namespace_defaults.get(namespace).unwrap_or(&p.default_class)
    }

    pub fn priority_class(&self, name: &str) -> Option<&file::PriorityClassSpec> {
        self.spec.rules.priority.classes.iter().find(|c| c.name == name)
    }
}

/// A file's text and its name for errors.
fn read_file(path: &Path) -> Result<(String, String), PolicyError> {
    let origin = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((text, origin)),
        Err(e) => Err(PolicyError {
            origin,
            path: String::new(),
            message: format!("cannot read: {e}"),
        }),
    }
}

// === validation ===

type FieldError = (String, String);

fn validate_gpu(gpu: &file::GpuSpec) -> Result<(), FieldError> {
    if !is_resource_name(&gpu.resource_name) {
        return Err((
            "gpu.resourceName".into(),
            format!("`{}` is not a resource name like `nvidia.com/gpu`", gpu.resource_name),
        ));
    }
    if gpu.gpus_per_node == 0 {
        return Err(("gpu.gpusPerNode".into(), "must be at least 1".into()));
    }
    if gpu.time_slicing.replicas == 0 {
        return Err((
            "gpu.timeSlicing.replicas".into(),
            "must be at least 1 (1 means no time-slicing)".into(),
        ));
    }
    for (i, p) in gpu.vendor_prefixes.iter().enumerate() {
        if p.is_empty() || !p.ends_with('/') {
            return Err((
                format!("gpu.vendorPrefixes[{i}]"),
                format!("`{p}` must be a domain ending in `/`, like `nvidia.com/`"),
            ));
        }
    }
    Ok(())
}

fn validate_rules(rules: &file::RulesSpec) -> Result<(), FieldError> {
    let sel = &rules.placement.node_selector;
    if sel.key.is_empty() {
        return Err(("rules.placement.nodeSelector.key".into(), "must not be empty".into()));
    }
    let taint = &rules.tolerations.taint;
    if taint.key.is_empty() {
        return Err(("rules.tolerations.taint.key".into(), "must not be empty".into()));
    }
    if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&taint.effect.as_str()) {
        return Err((
            "rules.tolerations.taint.effect".into(),
            format!(
                "`{}` is not one of NoSchedule, PreferNoSchedule, NoExecute",
                taint.effect
            ),
        ));
    }
    validate_priority(&rules.priority)?;
    for (i, allow) in rules.host_path.allowed.iter().enumerate() {
        let path = format!("rules.hostPath.allowed[{i}].path");
        match crate::engine::rules::host_path::normalize(&allow.path) {
            None => return Err((path, format!("`{}` must be an absolute path", allow.path))),
            Some(n) if n == "/" => return Err((path, "`/` would allow the whole host filesystem".into())),
            Some(n) if n != allow.path => {
                return Err((path, format!("`{}` is not normalised: write `{n}`", allow.path)));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn validate_priority(p: &file::PrioritySpec) -> Result<(), FieldError> {
    let mut names = BTreeSet::new();
    for (i, class) in p.classes.iter().enumerate() {
        if !names.insert(class.name.as_str()) {
            return Err((
                format!("rules.priority.classes[{i}].name"),
                format!("`{}` is listed twice", class.name),
            ));
        }
        if !["PreemptLowerPriority", "Never"].contains(&class.preemption_policy.as_str()) {
            return Err((
                format!("rules.priority.classes[{i}].preemptionPolicy"),
                format!(
                    "`{}` is not one of PreemptLowerPriority, Never",
                    class.preemption_policy
                ),
            ));
        }
        if class.value > 1_000_000_000 {
            return Err((
                format!("rules.priority.classes[{i}].value"),
                "user-defined PriorityClasses may not exceed 1000000000".into(),
            ));
        }
    }
    for (i, name) in p.allowed.iter().enumerate() {
        if !names.contains(name.as_str()) {
            return Err((
                format!("rules.priority.allowed[{i}]"),
                format!("`{name}` is not in rules.priority.classes"),
            ));
        }
    }
    let allowed = |n: &str| p.allowed.iter().any(|a| a == n);
    if !allowed(&p.default_class) {
        return Err((
            "rules.priority.defaultClass".into(),
            format!("`{}` is not in rules.priority.allowed", p.default_class),
        ));
    }
    for (ns, class) in &p.namespace_defaults {
        if !allowed(class) {
            return Err((
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

#[cfg(test)]
mod tests;
