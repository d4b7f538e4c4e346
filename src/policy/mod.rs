//! The policy: the YAML file (see [`file`]) validated and compiled once, at load time.
//!
//! Regexes are compiled here, never on the request path. A [`Policy`] is immutable; reloading
//! builds a new one and swaps it in.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use regex::Regex;

use crate::k8s::device_plugin::{ConfigError, TimeSlicing};
use crate::k8s::scheduling::Taint;

mod defaults;
pub mod file;
mod rule_spec;
mod validate;

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

impl From<ConfigError> for PolicyError {
    fn from(e: ConfigError) -> Self {
        Self {
            origin: e.origin,
            path: e.path,
            message: e.message,
        }
    }
}

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
    /// `rules.tolerations.taint` as the scheduling helpers match it (built once, at load).
    gpu_taint: Taint,
}

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
            Some(path) => base.with_time_slicing(&TimeSlicing::load(path)?),
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
        validate::gpu(&spec.gpu).map_err(|e| err(&e.path, e.message))?;
        validate::rules(&spec.rules).map_err(|e| err(&e.path, e.message))?;
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
        let taint = &spec.rules.tolerations.taint;
        let gpu_taint = Taint {
            key: taint.key.clone(),
            value: taint.value.clone(),
            effect: taint.effect.clone(),
        };
        Ok(Self {
            spec,
            origin: origin.to_string(),
            host_path_allowed,
            gpu_taint,
        })
    }

    pub fn spec(&self) -> &PolicySpec {
        &self.spec
    }

    /// Where the policy came from (a file path or `<embedded default>`).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The taint GPU nodes carry (`rules.tolerations.taint`).
    pub fn gpu_taint(&self) -> &Taint {
        &self.gpu_taint
    }

    pub fn host_path_allowed(&self) -> &[HostPathAllow] {
        &self.host_path_allowed
    }

    /// The same policy with time-slicing taken from the device-plugin config.
    pub fn with_time_slicing(&self, ts: &TimeSlicing) -> Result<Self, PolicyError> {
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
        Self::from_spec(spec, &origin)
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

#[cfg(test)]
mod tests;
