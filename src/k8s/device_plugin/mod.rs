//! The NVIDIA device-plugin config, the source of truth for time-slicing, so that `replicas`
//! is not typed twice. Three shapes are read:
//! - a ConfigMap whose `data` keys each hold a device-plugin config (`version: v1`, `sharing`);
//! - GPU Operator Helm values: `devicePlugin.config.sharing.timeSlicing` (the seed's shape), or
//!   `devicePlugin.config.data.<key>` holding a device-plugin config, with `devicePlugin.config.default`;
//! - a bare device-plugin config file.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

mod config;

pub use config::{DeviceConfig, MigStrategy, SharingMode};

/// The node label that picks a device-plugin config key (a per-node profile).
pub const CONFIG_LABEL: &str = "nvidia.com/device-plugin.config";

/// The config key the device plugin uses when neither the node label nor a default names one
/// (its `named` fallback strategy).
pub const NAMED_FALLBACK: &str = "default";

/// The device plugin's `sharing.timeSlicing`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TimeSlicingSpec {
    /// Slices per physical GPU (1 = no time-slicing).
    #[serde(default = "default_replicas")]
    pub replicas: u32,
    /// When true, shared GPUs are advertised as `<resourceName>.shared`.
    #[serde(default)]
    pub rename_by_default: bool,
    /// When true, a container may ask for at most one shared GPU.
    #[serde(default)]
    pub fail_requests_greater_than_one: bool,
}

impl Default for TimeSlicingSpec {
    fn default() -> Self {
        Self {
            replicas: default_replicas(),
            rename_by_default: false,
            fail_requests_greater_than_one: false,
        }
    }
}

fn default_replicas() -> u32 {
    4
}

/// A device-plugin config that cannot be read: where (file, field path) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub origin: String,
    /// Field path inside the document (may be empty).
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {}", self.origin, self.message)
        } else {
            write!(f, "{}: field `{}`: {}", self.origin, self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Time-slicing as read from a file.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeSlicing {
    /// The resource that is time-sliced (`nvidia.com/gpu`).
    pub resource_name: String,
    pub spec: TimeSlicingSpec,
    /// The file.
    pub origin: String,
    /// Where in the file it was read (`data.any` → `sharing.timeSlicing`).
    pub field: String,
}

/// (field path, message).
pub type Located = (String, String);

impl TimeSlicing {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            origin: origin.clone(),
            path: String::new(),
            message: format!("cannot read: {e}"),
        })?;
        Self::from_yaml_str(&text, &origin)
    }

    pub fn from_yaml_str(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let err = |(path, message): Located| ConfigError {
            origin: origin.to_string(),
            path,
            message,
        };
        let doc: Value = serde_yaml_ng::from_str(text).map_err(|e| err((String::new(), format!("not YAML: {e}"))))?;
        let (prefix, config) = locate(&doc).map_err(err)?;
        let (resource_name, spec, field) = read_config(&config, &prefix).map_err(err)?;
        Ok(Self {
            resource_name,
            spec,
            origin: origin.to_string(),
            field,
        })
    }
}

/// Finds the device-plugin config in the document: (field prefix, config value).
fn locate(doc: &Value) -> Result<(String, Value), Located> {
    if doc.get("kind").and_then(Value::as_str) == Some("ConfigMap") {
        let data = doc
            .get("data")
            .and_then(Value::as_object)
            .ok_or(("data".to_string(), "a ConfigMap with no data".to_string()))?;
        return pick_key(data, None, "data");
    }
    if let Some(config) = doc.get("devicePlugin").and_then(|d| d.get("config")) {
        if config.get("sharing").is_some() {
            return Ok(("devicePlugin.config.".into(), config.clone()));
        }
        if let Some(data) = config.get("data").and_then(Value::as_object) {
            let default = config.get("default").and_then(Value::as_str).filter(|s| !s.is_empty());
            return pick_key(data, default, "devicePlugin.config.data");
        }
        return Err(("devicePlugin.config".into(), "has neither `sharing` nor `data`".into()));
    }
    if doc.get("sharing").is_some() || doc.get("version").is_some() {
        return Ok((String::new(), doc.clone()));
    }
    Err((
        String::new(),
        "not a device-plugin config: expected a ConfigMap, GPU Operator Helm values (devicePlugin.config) or a config with `sharing`".into(),
    ))
}

/// Chooses the config key as the device plugin does: the named default, else the only key.
fn pick_key(
    data: &serde_json::Map<String, Value>,
    default: Option<&str>,
    field: &str,
) -> Result<(String, Value), Located> {
    let key = match default.map(str::to_string).or_else(|| fallback_config(data.keys())) {
        Some(k) => k,
        None => {
            let keys: Vec<&str> = data.keys().map(String::as_str).collect();
            return Err((
                field.into(),
                format!(
                    "holds several configs ({}), none is named as the default and none is called `default`",
                    keys.join(", ")
                ),
            ));
        }
    };
    let path = format!("{field}.{key}");
    let text = data
        .get(&key)
        .and_then(Value::as_str)
        .ok_or((path.clone(), "missing, or not a string".to_string()))?;
    let config: Value =
        serde_yaml_ng::from_str(text).map_err(|e| (path.clone(), format!("not a device-plugin config: {e}")))?;
    Ok((format!("{path} → "), config))
}

/// The one shared resource of a config, for the policy's single `gpu.timeSlicing`.
fn read_config(config: &Value, prefix: &str) -> Result<(String, TimeSlicingSpec, String), Located> {
    let parsed = DeviceConfig::read(config, prefix)?;
    if parsed.mode == SharingMode::None {
        return Err((format!("{prefix}sharing.timeSlicing"), "missing".to_string()));
    }
    let [resource] = parsed.resources.as_slice() else {
        return Err((
            format!("{}.resources", parsed.field),
            "more than one shared resource: --time-slicing reads one; use --cluster-state for the whole config".into(),
        ));
    };
    let spec = TimeSlicingSpec {
        replicas: resource.replicas,
        rename_by_default: parsed.rename_by_default,
        fail_requests_greater_than_one: parsed.fail_requests_greater_than_one,
    };
    Ok((resource.name.clone(), spec, format!("{}.resources[0]", parsed.field)))
}

/// The key the device plugin's config-manager falls back to for a node without the label when no
/// default is set, with the Helm chart's `fallbackStrategies: [named, single]`: the key named
/// `default`, else the only key. A ConfigMap read offline chooses its key the same way.
pub fn fallback_config<'a>(keys: impl IntoIterator<Item = &'a String>) -> Option<String> {
    let keys: Vec<&String> = keys.into_iter().collect();
    if keys.iter().any(|k| *k == NAMED_FALLBACK) {
        return Some(NAMED_FALLBACK.to_string());
    }
    match keys.as_slice() {
        [only] => Some((*only).clone()),
        _ => None,
    }
}
